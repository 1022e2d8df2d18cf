"""`hicgen run` speed against Pythia 8 Angantyr, writer throughput per format, and memory over a long run — one script.

    python benchmarks/run.py                                  # CPU, one thread, shipped O-O model if present
    python benchmarks/run.py --model weights/oo --json run.json
    python benchmarks/run.py --device cuda --events 65536 --batch-sizes 4096 16384 --precisions bf16 fp32

In one run it measures, on this machine:
1. Angantyr O-O 5.36 TeV, one core (this process): seconds per event after initialisation; its events are
   also the data of the writer benchmark and, without a trained model, fit the stand-in's normalisation;
2. `hicgen run` (sampling + writing HDF5 through the background writer) in events/s and particles/s for every
   sampler x steps, and on CUDA also for every precision x CUDA graphs on/off x batch size;
3. writer throughput in particles/s and bytes per particle for HDF5, HepMC3, HepMC3.gz, ROOT, and HepMC3
   through pyhepmc's GenEvent.from_hepevt path (the reference), plus projections for 10^6 Pb-Pb events;
4. resident memory while `--memory-events` O-O events are written (flat = no growth with the event count),
   with a tiny untrained network (the pipeline's memory does not depend on the network) to keep it quick.

Without --model and no shipped O-O model, an untrained network of the 'small' training preset is timed,
with its normalisation fitted on the Angantyr events: the cost per network call does not depend on the
weights, but the multiplicities it draws do, so events/s of a stand-in are indicative only (particles/s is
the robust figure).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hicgen.data.batch import EventBatch
from hicgen.io.h5columns import compression_threads


# -- Angantyr ---------------------------------------------------------------------------------------------
def angantyr_events(n_events: int, seed: int) -> tuple[EventBatch, float]:
    """n_events Angantyr O-O events generated in this process (one core) and the seconds per event."""
    from hicgen.truth.angantyr import AngantyrConfig, angantyr_fit, generate_chunks, make_pythia, pythia_settings

    config = AngantyrConfig(system="OO")
    fit = angantyr_fit(config)
    with tempfile.TemporaryDirectory() as tmp:
        pythia = make_pythia(pythia_settings(config, seed, fit), Path(tmp) / "pythia.log")
        start = time.perf_counter()
        chunks = [b for b, _ in generate_chunks(pythia, config, n_events, n_events)]
        seconds = time.perf_counter() - start
    return EventBatch.concat(chunks), seconds / n_events


# -- model ------------------------------------------------------------------------------------------------
def stand_in_model(truth: EventBatch, directory: Path, tiny: bool = False) -> Path:
    """An untrained 'small'-preset (or, with tiny, a 16-wide one-block) point-cloud checkpoint with normalisation
    and centrality fitted on `truth`."""
    from hicgen.checkpoint import save_checkpoint
    from hicgen.data.centrality import Centrality
    from hicgen.data.transforms import EVENT_DIM, NUM_FEATURES, PointCloudTransforms
    from hicgen.models import build_pointcloud_models, pointcloud_config
    from hicgen.training.config import preset_config

    transforms = PointCloudTransforms.fit(truth, eta_max=2.5, pt_min=0.15)
    sizes = dict(event_width=16, event_blocks=1, pet_dim=16, pet_heads=2, pet_layers=1, pet_head_layers=1) if tiny else {}
    architecture = preset_config("small", **sizes).architecture(transforms.phi_period, EVENT_DIM, NUM_FEATURES)
    torch.manual_seed(0)
    models = build_pointcloud_models(architecture)
    centrality = Centrality.fit(truth.events["b"], truth.events["mult"])
    provenance = {"data_attrs": {"system": "OO", "sqrt_s": 5360.0}, "note": "untrained stand-in for timing"}
    return save_checkpoint(directory, models, pointcloud_config(architecture, transforms, centrality, provenance=provenance))


def find_model(args, truth: EventBatch, tmp: Path) -> tuple[Path, bool]:
    """(checkpoint, trained?) — --model, else the shipped O-O model, else the stand-in."""
    from hicgen.engine.models import default_model
    from hicgen.errors import CheckpointError

    if args.model:
        return Path(args.model), True
    try:
        return default_model("OO"), True
    except CheckpointError:
        return stand_in_model(truth, tmp / "stand_in"), False


def rss_mb() -> float:
    """Resident set size of this process now [MB] (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_run(model: Path, out: Path, events: int, **settings) -> dict:
    """One `hicgen run` into `out` (HDF5) of events + one warm-up chunk; the rate is measured from the end of the
    first chunk (model warm-up, CUDA-graph capture) to the closed file."""
    from hicgen.engine.generate import RunSettings, prepare, write_events

    probe = prepare("OO", RunSettings(events=1, **settings), model).generator
    plan = prepare("OO", RunSettings(events=events + probe.batch_size, seed=1, **settings), model)
    marks: list[tuple[float, int, int]] = []
    write_events(plan, out, overwrite=True, progress=lambda b, st: marks.append((time.perf_counter(), st.events, st.particles)))
    end = time.perf_counter()
    stats = plan.generator.stats
    t0, e0, p0 = marks[0]
    seconds = end - t0
    timed_events, timed_particles = stats.events - e0, stats.particles - p0
    return {
        "events": timed_events, "seconds": seconds, "events_per_s": timed_events / seconds,
        "particles_per_s": timed_particles / seconds, "mean_mult": timed_particles / max(timed_events, 1),
        "nfe": plan.generator.evaluations_per_sample, "precision": plan.generator.precision,
        "cuda_graphs": plan.generator.cuda_graphs, "batch_size": plan.generator.batch_size,
        "padding_waste": stats.padding_waste, "resampled": stats.resampled,
    }


# -- writers ----------------------------------------------------------------------------------------------
def writer_data(truth: EventBatch, particles: int, seed: int = 0) -> EventBatch:
    """At least `particles` particles made from the Angantyr events: copies with events shuffled, each event
    rotated in phi and pT, eta jittered by 1e-3, so that compressors see realistic, not repeated, values."""
    from hicgen.data.features import wrap_phi

    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(max(1, int(np.ceil(particles / max(int(truth.offsets[-1]), 1))))):
        copy = truth.select(rng.permutation(len(truth)))
        p, n = copy.particles, int(copy.offsets[-1])
        rotation = np.repeat(rng.uniform(-np.pi, np.pi, len(copy)), copy.multiplicity)
        p["phi"] = wrap_phi(p["phi"] + rotation).astype(np.float32)
        p["pt"] = (p["pt"] * (1 + 1e-3 * rng.standard_normal(n))).astype(np.float32)
        p["eta"] = np.clip(p["eta"] + 1e-3 * rng.standard_normal(n), -2.4999, 2.4999).astype(np.float32)
        copy.events["centrality"] = rng.uniform(0, 100, len(copy))
        copies.append(copy)
    return EventBatch.concat(copies)


def writer_throughput(batch: EventBatch, tmp: Path, chunk: int) -> dict[str, dict]:
    """Particles/s and bytes/particle of each format, writing `batch` in chunks of `chunk` events (no background
    thread; the HDF5 deflate and the HepMC3 formatting and gzip use their writers' thread pools)."""
    import pyhepmc

    from hicgen.io.hepmc import events_to_pyhepmc
    from hicgen.io.writers import open_writer

    run_info = {"system": "OO", "sqrt_s": 5360.0, "model": "benchmark", "seed": 0}
    n = int(batch.offsets[-1])
    results = {}
    for name in ("events.h5", "events.hepmc", "events.hepmc.gz", "events.root"):
        path = tmp / name
        warm = open_writer(path, overwrite=True, run_info=run_info, background=False)  # imports, first-use costs
        warm.write(batch.slice(0, 2))
        warm.close()
        start = time.perf_counter()
        writer = open_writer(path, overwrite=True, run_info=run_info, background=False)
        for lo in range(0, len(batch), chunk):
            writer.write(batch.slice(lo, min(lo + chunk, len(batch))))
        writer.close()
        seconds = time.perf_counter() - start
        results[name.split(".", 1)[1]] = {"particles_per_s": n / seconds, "bytes_per_particle": path.stat().st_size / n}
    path = tmp / "pyhepmc.hepmc"
    start = time.perf_counter()
    with pyhepmc.open(path, "w") as stream:
        for event in events_to_pyhepmc(batch, run_info):
            stream.write(event)
    seconds = time.perf_counter() - start
    results["hepmc (pyhepmc from_hepevt)"] = {"particles_per_s": n / seconds, "bytes_per_particle": path.stat().st_size / n}
    return results


def memory_profile(model: Path, events: int, tmp: Path, **settings) -> dict:
    """RSS while `events` events are generated into HDF5 with the cheapest settings (1 ODE step). The pipeline's
    memory (event pool, buckets, writer queue and buffers) does not depend on the network, so the run uses the
    tiny stand-in with Angantyr multiplicities to be quick."""
    from hicgen.engine.generate import RunSettings, prepare, write_events

    plan = prepare("OO", RunSettings(events=events, seed=5, steps=1, sampler="ddim", **settings), model)
    samples: list[tuple[int, float]] = [(0, rss_mb())]
    every = max(1, events // 20)

    def progress(batch, stats):
        if stats.events // every > samples[-1][0] // every:
            samples.append((stats.events, rss_mb()))

    stats = write_events(plan, tmp / "memory.h5", overwrite=True, progress=progress)
    samples.append((stats.extra["written_events"], rss_mb()))
    tenth = next(r for e, r in samples if e >= events // 10)
    return {"events": stats.extra["written_events"], "seconds": stats.seconds, "rss_mb": samples,
            "rss_at_10pct_mb": tenth, "rss_at_end_mb": samples[-1][1], "growth_mb": samples[-1][1] - tenth}


# -- report -----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="point-cloud checkpoint (default: shipped O-O model, else an untrained stand-in)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = one core, like Angantyr)")
    parser.add_argument("--events", type=int, default=256, help="events per timed hicgen run")
    parser.add_argument("--samplers", nargs="+", default=["ddim", "dpm++2m", "heun"])
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[None], help="events per batch (default: engine's)")
    parser.add_argument("--max-tokens", type=int, default=None, help="particles per network call (default: engine's)")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="CUDA: e.g. bf16 fp32")
    parser.add_argument("--graphs", nargs="+", default=["auto"], help="CUDA: e.g. on off")
    parser.add_argument("--angantyr-events", type=int, default=200)
    parser.add_argument("--writer-particles", type=int, default=400_000, help="particles per writer timing")
    parser.add_argument("--memory-events", type=int, default=100_000)
    parser.add_argument("--pbpb-mult", type=float, default=2400.0,
                        help="mean Pb-Pb multiplicity for the disk/time projection (Angantyr, |eta| < 2.5, pT > 0.15; docs)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": args.threads,
                                "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
                                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        truth, angantyr_s = angantyr_events(args.angantyr_events, seed=11)
        report["angantyr"] = {"events": len(truth), "seconds_per_event": angantyr_s, "events_per_s": 1 / angantyr_s,
                              "mean_mult": float(truth.multiplicity.mean())}
        print(f"Angantyr O-O 5.36 TeV, one core: {1000 * angantyr_s:.1f} ms/event ({1 / angantyr_s:.1f} events/s), "
              f"<N> = {truth.multiplicity.mean():.0f}")

        model, trained = find_model(args, truth, tmp)
        report["model"] = {"path": str(model), "trained": trained}
        print(f"model: {model}{'' if trained else ' (UNTRAINED stand-in: events/s indicative, particles/s robust)'}")
        rows = []
        print("\n| sampler | steps | NFE/branch | precision | graphs | batch | events/s | particles/s | <N> | x Angantyr (1 core) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for sampler in args.samplers:
            for steps in args.steps:
                for precision in args.precisions:
                    for graphs in args.graphs:
                        for batch_size in args.batch_sizes:
                            r = time_run(model, tmp / "speed.h5", args.events, sampler=sampler, steps=steps, device=args.device,
                                         precision=precision, cuda_graphs=graphs, batch_size=batch_size,
                                         max_tokens=args.max_tokens)
                            r.update(sampler=sampler, steps=steps, speedup_vs_angantyr=r["events_per_s"] * angantyr_s)
                            rows.append(r)
                            print(f"| {sampler} | {steps} | {r['nfe']} | {r['precision']} | {'on' if r['cuda_graphs'] else 'off'} | "
                                  f"{r['batch_size']} | {r['events_per_s']:.1f} | {r['particles_per_s']:,.0f} | {r['mean_mult']:.0f} | "
                                  f"{r['speedup_vs_angantyr']:.2f} |")
        report["hicgen_run"] = rows

        data = writer_data(truth, args.writer_particles)
        writers = writer_throughput(data, tmp, chunk=256)
        report["writers"] = writers
        n_pbpb = 1e6 * args.pbpb_mult
        print(f"\nwriters ({int(data.offsets[-1]):,} Angantyr O-O particles, chunks of 256 events, no background thread, "
              f"{compression_threads()} deflate/format threads); "
              f"projection for 10^6 Pb-Pb events x {args.pbpb_mult:g} particles:")
        print("| format | particles/s | bytes/particle | 10^6 Pb-Pb: disk | 10^6 Pb-Pb: writer time |")
        print("| --- | --- | --- | --- | --- |")
        for name, w in writers.items():
            print(f"| {name} | {w['particles_per_s']:,.0f} | {w['bytes_per_particle']:.1f} | "
                  f"{n_pbpb * w['bytes_per_particle'] / 1e9:,.0f} GB | {n_pbpb / w['particles_per_s'] / 3600:.1f} h |")

        if args.memory_events:
            mem = memory_profile(stand_in_model(truth, tmp / "tiny", tiny=True), args.memory_events, tmp, device=args.device)
            report["memory"] = mem
            print(f"\nmemory: {mem['events']:,} O-O events into HDF5 in {mem['seconds']:.0f} s; RSS at 10% "
                  f"{mem['rss_at_10pct_mb']:.0f} MB, at the end {mem['rss_at_end_mb']:.0f} MB (growth {mem['growth_mb']:+.0f} MB)")
            print("  events -> RSS MB: " + ", ".join(f"{e:,}: {r:.0f}" for e, r in mem["rss_mb"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
