"""The host side of `hicgen spectra`: reading and resampling initial states, writing spectra records.

    python benchmarks/spectra_io.py --spectra spectra.h5 --trento ic.h5 --records 4096 --threads 1 2 8 --repeats 3 --json out.json

With --trento, first the input side: microseconds per initial state of read_trento (the whole file) and of
resample_profile to the 64 x 64 model grid, best of --repeats; and the host's ceiling: run_spectra (everything
`hicgen spectra` does after loading the model) on --trento with the shipped model's network replaced by a stub that
returns the spectra and histograms of --spectra after sleeping --device-us per spectrum (a stand-in for the wait on a
GPU), in spectra/s for each --samples-per-ic, --read-processes (0: the reading thread; N: N reader processes,
their start included; and after the first block, which leaves their start out) and --particles (none, or the
particle lists too, into that format), best of --repeats (JSON: "host_ceiling", one row per setting); with
--particles also the particle sampling alone (sample_record_particles, as `hicgen spectra --particles` runs it) on the
histograms of --spectra on each --threads count (JSON: "particle_sampling", microseconds per record); and the reading
stage alone for each --read-processes (JSON: "reading_stage":
microseconds per IC over the pass and after its first block, and this process's CPU per IC, which the workers
take off it). With --real-layout all this runs on a copy of --trento
in the layout the real trento program writes (float64, each event one gzip-4 chunk), which costs more to read.

The image columns of a hicgen-spectra file (histogram, spectrum, ic) are written in blocks of --block records into
a scratch file, (a) by h5py with its gzip level 1 + shuffle filters (the way the writers did before 2026-12-05),
in chunks of as many records as RecordColumns takes, and
(b) by hicgen.io.h5columns.RecordColumns with each --threads count, in turn, --repeats times. The records are those
of --spectra, repeated up to --records (so the compression works on real spectra). Reported per way: microseconds
per record (best and all repeats) and the file size per record; every file is read back and checked equal to the
input. A GPU making spectra faster than the writer stores them waits for it, so compare the figures with the
sampler's rate (benchmarks/spectra.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import h5py
import numpy as np

from hicgen.environment import WEIGHTS_DIR
from hicgen.io.h5columns import DEFLATE_LEVEL, RecordColumns, image_chunk_rows, usable_cpus
from hicgen.spectra import pipeline
from hicgen.spectra.generate import load_spectra_model, sample_record_particles
from hicgen.truth.spectra_data import bin_measure
from hicgen.truth.trento_io import ResampledBlocks, TrentoReader, read_trento, resample_profile

IMAGE_COLUMNS = ("histogram", "spectrum", "ic")


def load_images(path: Path, records: int) -> dict[str, np.ndarray]:
    """The image columns of a hicgen-spectra file, repeated (or cut) to `records` rows."""
    with h5py.File(path, "r") as f:
        columns = {name: f[name][()] for name in IMAGE_COLUMNS}
    index = np.arange(records) % len(columns["spectrum"])
    return {name: np.ascontiguousarray(values[index]) for name, values in columns.items()}


def write_h5py(path: Path, columns: dict[str, np.ndarray], block: int, chunk_rows: int) -> None:
    """Append in blocks through h5py's own gzip + shuffle filters (compression on the calling thread)."""
    with h5py.File(path, "w") as f:
        datasets = {name: f.create_dataset(name, (0,) + v.shape[1:], v.dtype, maxshape=(None,) + v.shape[1:],
                                           chunks=(chunk_rows,) + v.shape[1:], compression="gzip",
                                           compression_opts=DEFLATE_LEVEL, shuffle=True)
                    for name, v in columns.items()}
        for start in range(0, len(columns["spectrum"]), block):
            for name, ds in datasets.items():
                part = columns[name][start : start + block]
                ds.resize(start + len(part), axis=0)
                ds[start:] = part


def write_columns(path: Path, columns: dict[str, np.ndarray], block: int, threads: int) -> None:
    """Append in blocks through RecordColumns with `threads` compression threads."""
    with h5py.File(path, "w") as f:
        writer = RecordColumns(f, {name: (v.shape[1:], v.dtype) for name, v in columns.items()}, threads=threads)
        for start in range(0, len(columns["spectrum"]), block):
            writer.append({name: v[start : start + block] for name, v in columns.items()})
        writer.close()


def time_write(write, path: Path, columns: dict[str, np.ndarray]) -> tuple[float, float]:
    """(seconds, bytes) of one write into `path`, checked by reading it back."""
    start = time.perf_counter()
    write(path)
    seconds = time.perf_counter() - start
    with h5py.File(path, "r") as f:
        for name, values in columns.items():
            if not np.array_equal(f[name][()], values):
                raise RuntimeError(f"{path}: column {name} does not read back equal")
    return seconds, path.stat().st_size


def time_input(trento: Path, repeats: int) -> dict:
    """Microseconds per initial state of reading `trento` and of resampling its profiles to 64 x 64 (best of
    `repeats`)."""
    read, resample = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        states = read_trento(trento)
        read.append(time.perf_counter() - start)
        start = time.perf_counter()
        resample_profile(states.profiles, states.grid_max, 64)
        resample.append(time.perf_counter() - start)
    n = len(states.profiles)
    return {"initial_states": n, "grid": list(states.profiles.shape[1:]),
            "read_us_per_ic": min(read) / n * 1e6, "resample_us_per_ic": min(resample) / n * 1e6}


def time_blocks(trento: Path, processes: int, repeats: int) -> dict:
    """The reading stage alone: microseconds per initial state of taking every block of 256 ICs of `trento`, read
    and resampled to 64 x 64, from ResampledBlocks with `processes` workers (0: its thread), over the whole pass
    (the workers' start included: a spawned worker imports the main script again, ~0.2 s for `hicgen`, ~1.3 s for
    this benchmark, which imports torch) and after the first block; and the CPU time this process spends per IC
    after the first block (what workers take off it). Best of `repeats`."""
    whole, later, own_cpu = [], [], []
    for _ in range(repeats):
        with TrentoReader(trento) as reader:
            start = time.perf_counter()
            blocks = ResampledBlocks(reader, 256, 64, reader.grid_max, processes)
            n = first = 0
            for block in blocks:
                if not first:
                    first, first_at, cpu = len(block.ic), time.perf_counter(), time.process_time()
                n += len(block.ic)
            end, cpu = time.perf_counter(), time.process_time() - cpu
            blocks.close()
        whole.append((end - start) / n * 1e6)
        if n > first:
            later.append((end - first_at) / (n - first) * 1e6)
            own_cpu.append(cpu / (n - first) * 1e6)
    best = lambda values: {"best": min(values), "all": values} if values else None  # noqa: E731
    return {"us_per_ic": best(whole), "after_first_block_us_per_ic": best(later), "own_cpu_us_per_ic": best(own_cpu)}


def copy_as_real_trento(trento: Path, out: Path) -> Path:
    """`trento`'s events in the real trento program's HDF5 layout (its src/output.cxx): each event float64, stored
    as one chunk of the whole grid through gzip level 4, attributes b, npart, mult, e2.. per event."""
    states = read_trento(trento)
    with h5py.File(out, "w") as f:
        for i, grid in enumerate(states.profiles):
            event = f.create_dataset(f"event_{i}", data=grid.astype(np.float64), chunks=grid.shape, compression="gzip",
                                     compression_opts=4)
            event.attrs.update({k: v[i] for k, v in states.attrs.items() if np.isfinite(v[i])})
        f.attrs["grid_step"] = states.grid_step
    return out


def host_ceiling(trento: Path, spectra: Path, samples_per_ic: int, out: Path, device_us: float = 0.0,
                 read_processes: int = 0, particles: str | None = None) -> tuple[float, float | None]:
    """Spectra/s of run_spectra on `trento` when the network is replaced by a stub that returns the first spectra
    and histograms of `spectra` (repeated as needed) after sleeping `device_us` microseconds per spectrum. The
    sleep releases the GIL, as the host's wait on a GPU does, so device_us = 100 stands for a GPU that makes
    10,000 spectra/s and shows how much of the host work overlaps it; device_us = 0 is the host's own ceiling.
    Returned twice: over the whole run, and after its first block (None for a run of one block), which leaves out
    the start of reader processes. With `particles` (a suffix: .h5, .hepmc, .hepmc.gz, .root) the run also samples
    and writes the particles of every record, as `hicgen spectra --particles` does."""
    with h5py.File(spectra, "r") as f:
        smooth, counts = f["spectrum"][()], f["histogram"][()]

    def stub(model, ic, *args, **kwargs):
        index = np.arange(len(ic) * samples_per_ic) % len(smooth)
        time.sleep(device_us * 1e-6 * len(index))
        return smooth[index], counts[index]

    model = load_spectra_model(WEIGHTS_DIR / "spectra", "cpu")
    with mock.patch.object(pipeline, "generate_records", stub):
        start = time.perf_counter()
        summary = pipeline.run_spectra(trento, 0.1, out, model, samples_per_ic, overwrite=True,
                                       read_processes=read_processes, allow_extrapolation=True,  # a stub: any IC scale
                                       particles=out.with_name("particles" + particles) if particles else None)
        whole = summary["spectra"] / (time.perf_counter() - start)
    first_spectra, first_seconds = summary["first_block"]
    if first_spectra == summary["spectra"]:
        return whole, None
    return whole, (summary["spectra"] - first_spectra) / (summary["seconds"] - first_seconds)


def time_particle_sampling(spectra: Path, records: int, repeats: int, threads: int) -> dict:
    """Microseconds per record of sample_record_particles (what `hicgen spectra --particles` runs per block) on the
    histograms of `spectra` (repeated up to `records`) with the shipped model's species mixture at each record's
    eta/s and smooth spectrum on `threads` threads, best and all of `repeats`; and the particles per record."""
    images = load_images(spectra, records)
    histograms = images["histogram"]
    with h5py.File(spectra, "r") as f:
        eta_s = f["eta_s"][()][np.arange(len(histograms)) % len(f["eta_s"])]
        expected = images["spectrum"] * bin_measure(f["pt_edges"][()], f["phi_edges"][()]).astype(np.float32)
    model = load_spectra_model(WEIGHTS_DIR / "spectra", "cpu")
    rows = np.arange(len(histograms))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batch = sample_record_particles(histograms, 0, rows, np.zeros_like(rows), model.pt_edges, model.phi_edges,
                                        model.species, threads, expected=expected, eta_s=eta_s)
        times.append((time.perf_counter() - start) / len(histograms) * 1e6)
    return {"records": len(histograms), "threads": threads, "particles_per_record": batch.offsets[-1] / len(histograms),
            "us_per_record": {"best": min(times), "all": times}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=Path, required=True, help="a hicgen-spectra file (hicgen spectra --out)")
    ap.add_argument("--trento", type=Path, help="an initial-state file: also time reading and resampling it")
    ap.add_argument("--samples-per-ic", type=int, nargs="+", default=[1, 2], help="K of the host ceiling (--trento)")
    ap.add_argument("--real-layout", action="store_true",
                    help="time a copy of --trento in the real trento program's HDF5 layout (float64, gzip 4)")
    ap.add_argument("--device-us", type=float, nargs="+", default=[0.0, 100.0],
                    help="simulated device time per spectrum of the host ceiling [us] (--trento)")
    ap.add_argument("--read-processes", type=int, nargs="+", default=[0],
                    help="reader processes of the host ceiling (0: one thread) (--trento)")
    ap.add_argument("--particles", nargs="+", default=["none"],
                    help="host ceiling also with --particles into these formats (.h5, .hepmc, .hepmc.gz, .root; "
                    "none: without) (--trento)")
    ap.add_argument("--records", type=int, default=4096)
    ap.add_argument("--block", type=int, default=256, help="records per append (hicgen spectra: 256 x K)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "command": "python benchmarks/spectra_io.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                       "machine": f"{platform.processor() or platform.machine()}, {usable_cpus()} usable CPUs"}}
    scratch = tempfile.TemporaryDirectory()
    if args.trento and args.real_layout:
        args.trento = copy_as_real_trento(args.trento, Path(scratch.name) / "real_trento.h5")
        result["input_layout"] = "real trento (float64, one gzip-4 chunk per event)"
    if args.trento:
        result["input"] = time_input(args.trento, args.repeats)
        result["reading_stage"] = {str(p): time_blocks(args.trento, p, args.repeats) for p in args.read_processes}
        for p, stage in result["reading_stage"].items():
            later = (f", {stage['after_first_block_us_per_ic']['best']:.1f} after the first block, this process's CPU "
                     f"{stage['own_cpu_us_per_ic']['best']:.1f}" if stage["after_first_block_us_per_ic"] else "")
            print(f"reading stage, {p} read processes: {stage['us_per_ic']['best']:.1f} us/IC{later} "
                  f"(best of {args.repeats})")
        print(f"read_trento {result['input']['read_us_per_ic']:.1f} us/IC, resample_profile "
              f"{result['input']['resample_us_per_ic']:.1f} us/IC ({result['input']['initial_states']} ICs of "
              f"{result['input']['grid']}, best of {args.repeats})")
        formats = [None if f == "none" else f for f in args.particles]
        if any(formats):
            result["particle_sampling"] = [time_particle_sampling(args.spectra, args.records, args.repeats, t)
                                           for t in args.threads]
            for sampling in result["particle_sampling"]:
                print(f"particle sampling, {sampling['threads']} threads: {sampling['us_per_record']['best']:.1f} "
                      f"us/record ({sampling['particles_per_record']:.0f} particles/record, best of {args.repeats})")
        settings = [(p, us, k, f) for p in args.read_processes for us in args.device_us for k in args.samples_per_ic
                    for f in formats]
        rates: dict[tuple, list[float]] = {s: [] for s in settings}
        later: dict[tuple, list[float]] = {s: [] for s in settings}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeats):  # the settings in turn, so drifts of a shared machine hit all alike
                for setting in settings:
                    p, us, k, f = setting
                    whole, after = host_ceiling(args.trento, args.spectra, k, Path(tmp) / "ceiling.h5", us, p, f)
                    rates[setting].append(whole)
                    if after is not None:
                        later[setting].append(after)
        result["host_ceiling"] = [{"read_processes": p, "device_us": us, "samples_per_ic": k, "particles": f,
                                   "spectra_per_s": {"best": max(r), "all": r},
                                   "after_first_block": {"best": max(later[p, us, k, f]), "all": later[p, us, k, f]}
                                   if later[p, us, k, f] else None} for (p, us, k, f), r in rates.items()]
        for (p, us, k, f), r in rates.items():
            after = f", {max(later[p, us, k, f]):,.0f} after the first block" if later[p, us, k, f] else ""
            with_particles = f", particles into {f}" if f else ""
            print(f"host ceiling, {p} read processes, device {us:g} us/spectrum, K = {k}{with_particles}: "
                  f"{max(r):,.0f} spectra/s{after} (best of {args.repeats})")
    columns = load_images(args.spectra, args.records)
    chunk_rows = image_chunk_rows(columns["spectrum"].shape[1:], columns["spectrum"].dtype)  # as RecordColumns'
    ways = {"h5py filters": lambda p: write_h5py(p, columns, args.block, chunk_rows)}
    ways.update({f"RecordColumns, {t} threads": (lambda p, t=t: write_columns(p, columns, args.block, t))
                 for t in args.threads})
    times = {name: [] for name in ways}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # the ways in turn, so drifts of a shared machine hit all alike
            for name, write in ways.items():
                seconds, size = time_write(write, Path(tmp) / "w.h5", columns)
                times[name].append(seconds / args.records * 1e6)
                sizes[name] = size / args.records / 1024
    result |= {"records": args.records, "block": args.block, "chunk_rows": chunk_rows,
              "columns": list(IMAGE_COLUMNS), "source": str(args.spectra),
              "us_per_record": {name: {"best": min(t), "all": t} for name, t in times.items()},
              "kib_per_record": sizes}
    for name in ways:
        print(f"{name:28s} {min(times[name]):8.1f} us/record (best of {args.repeats})  {sizes[name]:6.2f} KiB/record")
    scratch.cleanup()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
