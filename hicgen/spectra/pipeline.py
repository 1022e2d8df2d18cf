"""`hicgen spectra` as one library call: initial-state file -> generated spectra file (+ optional particle file).

Input: an HDF5 file in the trento layout (datasets event_0, event_1, ... of shape (G, G), rows y, columns x,
attributes b, npart, mult, e2..e5 per event), from the real trento program or `hicgen truth trento`.
Each profile is resampled (hicgen.truth.trento_io.resample_profile, area-weighted) to the model's R x R grid over the
square the training ICs covered (checkpoint 'ic_grid_max'), or over the input's own square when the training
file did not record it (the hydro chain resamples each trento profile over its own square).

Output: a 'hicgen-spectra' file, the same layout as `hicgen truth hydro` writes, so the two can be compared by the
same tools: `histogram` (M, P, Q) counts per (pT, phi) bin (integers drawn bin by bin from the generated smooth
spectrum for a smooth-spectrum model, as the reference chain draws them; the generated histogram itself for a
histogram model), `spectrum` the bin-averaged dN/(dy pT dpT dphi) [GeV^-2] of the generated spectrum (smooth) or of
the generated histogram, `ic` the resampled profiles (M, R, R), `eta_s`, `ic_index` (event number in the input),
`sample_index`, the IC attributes b, npart, mult, e2..e5 copied per record, with a centrality calibration
`centrality` [%], `pt_edges`, `phi_edges`; attributes
format='hicgen-spectra', format_version, created, generator, model, seed, steps, sampler, precision, logsnr_range
(the sampler's time grid: [lo, hi] or 'full'), source file. M = N * E * K records (E eta/s values), ordered by IC,
eta/s, sample, written in chunks under a temporary name and renamed at the end (or, when the run is interrupted,
at that point, with the attribute interrupted = True).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hicgen.data.batch import EVENT_NUMBER
from hicgen.engine.runtime import resolve_precision
from hicgen.engine.seeding import shard_range
from hicgen.errors import InputError
from hicgen.io.paths import check_output
from hicgen.spectra.generate import (
    SPECTRA_Y_MAX, SpectraModel, check_eta_s, generate_records, load_spectra_model, sample_record_particles,
)
from hicgen.spectra.ic_scale import check_ic_scale, offset_from_sums
from hicgen.spectra.normalization import counts_to_density
from hicgen.truth.spectra_data import MODEL_GENERATOR, MODEL_RECORD_FIELDS, SpectraWriter
from hicgen.truth.trento import CentralityCalibration
from hicgen.truth.trento_io import EVENT_ATTRS as IC_ATTRS
from hicgen.truth.trento_io import ResampledBlock, ResampledBlocks, TrentoReader

if TYPE_CHECKING:
    from hicgen.io.writers import EventWriter

PARTICLE_SQRT_S = 5020.0  # GeV per nucleon pair: Pb-Pb beams written into particle files (paper 000's system)


def trained_decays(config: dict) -> dict:
    """{"resonance_decays": what} when the checkpoint's training records had resonance decays (its provenance),
    else {}: `hicgen spectra` copies it into its output, as `hicgen truth hydro --decays` writes it."""
    decays = config.get("provenance", {}).get("resonance_decays")
    return {} if decays is None else {"resonance_decays": decays}


def _ic_major(per_eta_s: list[np.ndarray], samples_per_ic: int) -> np.ndarray:
    """Records (N * K, ...) generated at each of E eta/s values, ordered (IC, sample), as one (N * E * K, ...)
    array ordered (IC, eta/s, sample)."""
    if len(per_eta_s) == 1:  # already in that order: no copy
        return per_eta_s[0]
    stacked = np.stack(per_eta_s)  # (E, N * K, ...)
    e, m = stacked.shape[:2]
    n = m // samples_per_ic
    by_ic = stacked.reshape((e, n, samples_per_ic) + stacked.shape[2:]).swapaxes(0, 1)
    return by_ic.reshape((n * e * samples_per_ic,) + stacked.shape[2:])


class SpectraInterrupted(KeyboardInterrupt):
    """The KeyboardInterrupt of a stopped run_spectra: the number of records its output kept, and the initial states
    it did not reach (the input's event number of the first, and how many) for a run that goes on from there."""

    def __init__(self, records: int, next_ic: int = 0, remaining_ics: int = 0) -> None:
        super().__init__(records)
        self.records, self.next_ic, self.remaining_ics = records, next_ic, remaining_ics


def _settle(pending: Future | None) -> bool:
    """Wait for a background write; whether it finished without error (True when there was none)."""
    if pending is None:
        return True
    try:
        pending.result()
    except BaseException:  # the caller is already handling an error and aborts the files
        return False
    return True


def check_particle_window(y_max: float, particles: bool, model: SpectraModel) -> None:
    """InputError unless the particles' rapidity window |y| < y_max can be filled: at least the spectra's own
    (SPECTRA_Y_MAX), and beyond it only with --particles and a model of the smooth spectrum (its expected counts
    give the particles at other rapidities)."""
    if not y_max >= SPECTRA_Y_MAX or not np.isfinite(y_max):
        raise InputError(f"--y-max {y_max:g}: the particles' rapidity window must be at least the spectra's |y| < "
                         f"{SPECTRA_Y_MAX:g} (finite); give a value >= {SPECTRA_Y_MAX:g} and cut the particles yourself")
    if y_max > SPECTRA_Y_MAX and not particles:
        raise InputError("--y-max sets the rapidity window of the --particles events; give --particles too")
    if y_max > SPECTRA_Y_MAX and not model.generates_expected_counts:
        raise InputError("--y-max above 0.5 needs a model of the smooth spectrum (its expected counts); this model "
                         "generates histograms: leave --y-max out")


def record_numbers(start: int, stop: int, per_ic: int) -> np.ndarray:
    """The event numbers of the records of ICs start .. stop - 1 (input event numbers), per_ic records each
    (eta/s-major, then sample): (ic_index * E + e) * K + k, the record's row in the run over the whole input. Jobs
    over parts of one input (--first, --shard) thus number their events apart, as one run would."""
    return np.arange(start * per_ic, stop * per_ic, dtype=np.int64)


def _write_block(writer: SpectraWriter, pwriter: EventWriter | None, model: SpectraModel, block: ResampledBlock,
                 runs: list[tuple[np.ndarray, np.ndarray]], eta_values: np.ndarray, samples_per_ic: int, seed: int,
                 centrality: CentralityCalibration | None = None, particle_y_max: float = SPECTRA_Y_MAX) -> int:
    """Write the records of one block of ICs (runs: generate_records' output per eta/s value) and, with `pwriter`,
    their particles, in |y| < particle_y_max (sample_record_particles). With `centrality` the records get their
    IC's centrality (NaN for an IC without a TRENTo multiplicity) and so do the particle events (-1 there, and
    without a calibration); the number of records written."""
    generated, counts = (_ic_major([run[j] for run in runs], samples_per_ic) for j in (0, 1))
    per_ic = len(eta_values) * samples_per_ic
    rows = np.repeat(np.arange(block.start, block.stop), per_ic)
    local = rows - block.start
    k_index = np.tile(np.arange(samples_per_ic), (block.stop - block.start) * len(eta_values))
    attrs = block.attrs
    columns = {
        "histogram": counts,
        "spectrum": counts_to_density(generated, model.pt_edges, model.phi_edges, dtype=np.float32),
        "ic": block.ic if per_ic == 1 else np.repeat(block.ic, per_ic, axis=0),
        "eta_s": np.tile(np.repeat(eta_values, samples_per_ic), block.stop - block.start).astype(np.float32),
        "ic_index": rows, "sample_index": k_index,
        **{k: attrs[k][local] for k in IC_ATTRS},
    }
    if centrality is not None:
        columns["centrality"] = centrality.centrality(attrs["mult"][local])  # NaN: no multiplicity
    writer.append(columns)
    if pwriter is not None:  # one generator per record: (seed, ic index, sample index, 1)
        smooth = generated if model.generates_expected_counts else None  # a histogram model's are noisy counts
        batch = sample_record_particles(counts, seed, rows, k_index, model.pt_edges, model.phi_edges, model.species,
                                        expected=smooth, y_max=particle_y_max, eta_s=columns["eta_s"])
        known = lambda v: np.where(np.isfinite(v), v, -1)  # noqa: E731  (-1 = not in the trento file)
        percent = columns.get("centrality", np.full(len(rows), np.nan))
        batch.events.update({"b": known(attrs["b"][local]), "npart": known(attrs["npart"][local]).astype(np.int32),
                             "ncoll": np.full(len(rows), -1, np.int32), "centrality": known(percent),
                             "eta_s": columns["eta_s"], "ic_index": rows, "sample_index": k_index,
                             EVENT_NUMBER: record_numbers(block.start, block.stop, per_ic)})
        pwriter.write(batch)
    return len(rows)


def run_spectra(
    trento: str | os.PathLike,
    eta_s: float | Sequence[float],
    out: str | os.PathLike,
    model: str | os.PathLike | SpectraModel,
    samples_per_ic: int = 1,
    steps: int | None = None,
    sampler: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    particles: str | os.PathLike | None = None,
    allow_extrapolation: bool = False,
    overwrite: bool = False,
    batch_size: int | None = None,
    cuda_graphs: str = "auto",
    chunk_ics: int = 256,
    progress: Callable[[int, int], None] | None = None,
    compiled: bool = False,
    grid_step: float | None = None,
    first: int = 0,
    events: int | None = None,
    shard: tuple[int, int] = (0, 1),
    read_processes: int = 0,
    centrality: CentralityCalibration | None = None,
    particle_y_max: float = SPECTRA_Y_MAX,
) -> dict:
    """Generate K spectra per initial state of `trento` and per value of `eta_s` (one or several) into `out` (and
    particles into `particles`). Records are ordered by IC, then eta/s, then sample; spectrum (IC i, sample k) is
    seeded by (seed, i, k) at every eta/s (common random numbers: the eta/s values differ by the physics only).

    Every check (paths, model, eta/s range, input layout) runs before any work; the initial states are then read
    `chunk_ics` at a time (hicgen.truth.trento_io.TrentoReader), each block's values checked as it is read, so memory
    stays flat however long the input; a block whose ICs carry another entropy scale than the model's training ICs
    (hicgen.spectra.ic_scale: another TRENTo normalisation) stops the run unless allow_extrapolation. The blocks go
    through three stages at once: while the network works on block i, a background thread reads and resamples
    block i + 1 and another writes block i - 1 (its records, and with `particles` their particle lists): with a GPU
    the host work then hides behind the device's (docs/spectra.md).
    With read_processes > 0 the reading runs on that many processes instead, as many blocks ahead.
    An error in either thread stops the run as one in the caller would, and leaves no file. A KeyboardInterrupt
    (Ctrl-C; SIGTERM under the CLI) keeps the whole records written so far, with the attribute interrupted = True,
    and the particles of the same records, and is raised again as SpectraInterrupted (its `records`: how many; its
    `next_ic` and `remaining_ics`: the range not reached, for `first` and `events` of a run that goes on); with
    none written yet there is no file. Returns a summary dict.
    steps and sampler None take the model's setting (SpectraModel.default_steps, default_sampler).
    progress(done, total) is called with the spectra written so far. The summary's `ic_scale` is the input's
    entropy scale against the model's training ICs (hicgen.spectra.ic_scale.offset_from_sums over all blocks:
    ln factor, error, ICs), None where the model or the input gives none. The summary's `seconds` is the time from the first
    block's read to the last write, `first_block` (spectra, seconds) the first block's generation: the warm-up
    (torch.compile, CUDA graph capture) falls there. grid_step [fm]: the ICs' grid step when the
    file does not record it (read_trento). first, events: only the input's initial states first .. first + events - 1
    (all from `first` on when events is None); their records keep the input's event numbers (ic_index) and seeds,
    so the jobs of a split production, joined by merge_spectra, give the records of one whole run. shard (i, N):
    only the i-th of N contiguous parts of those initial states (hicgen.engine.seeding.shard_range: whole 64-IC
    blocks when each gets 64 or more).
    read_processes: worker processes that read and resample the initial states (hicgen.truth.trento_io.
    ResampledBlocks; 0: one thread). The workers are spawned: a script that asks for them must keep its own work
    under `if __name__ == "__main__":`.
    centrality: the calibration (hicgen.truth.trento.centrality_calibration of a min-bias trento file) that gives the
    records (column `centrality`) and the particle events their centrality from their IC's TRENTo multiplicity;
    without it the records have no such column and the particle events -1.
    particle_y_max: the particles' rapidity window |y| < particle_y_max; beyond the spectra's 0.5, particles drawn
    from the smooth spectrum at the same dN/dy (boost invariance; a smooth-spectrum model only)."""
    from hicgen.io import EVENT_SUFFIXES

    out = check_output(out, overwrite, (".h5", ".hdf5"))
    particles = check_output(particles, overwrite, EVENT_SUFFIXES) if particles is not None else None
    if particles is not None and particles.resolve() == out.resolve():
        raise InputError(f"--particles and --out are the same file '{out}'; give two names")
    spectra_model = model if isinstance(model, SpectraModel) else load_spectra_model(model, device)
    eta_values = np.atleast_1d(np.asarray(eta_s, np.float64))
    check_eta_s(eta_values, spectra_model, allow_extrapolation)
    precision = resolve_precision(precision, spectra_model.device, cpu_bf16=True)  # the file records the one used
    steps = spectra_model.default_steps if steps is None else steps
    sampler = spectra_model.default_sampler if sampler is None else sampler
    check_particle_window(particle_y_max, particles is not None, spectra_model)
    if first < 0:
        raise InputError(f"--first must be at least 0 (the input's first initial state is 0), got {first}")
    if events is not None and events < 1:
        raise InputError(f"--events must be at least 1, got {events}")
    # streamed chunk by chunk: memory stays flat for long inputs
    reader = TrentoReader(trento, grid_step, slice(first, None if events is None else first + events))
    if shard != (0, 1):
        try:
            lo, hi = shard_range(reader.n, shard)
        except InputError:
            reader.close()
            raise
        reader.narrow(lo, hi)
        first += lo
    res = spectra_model.net.cfg.resolution
    grid_out = spectra_model.config.get("ic_grid_max") or reader.grid_max
    n = reader.n
    attrs = {"generator": MODEL_GENERATOR, "model": spectra_model.source,
             "model_sha256": str(spectra_model.config.get("tensors_sha256", "in-memory")),
             "source": str(Path(trento).resolve()), "ic_grid_step": reader.grid_step, "seed": seed, "steps": steps, "sampler": sampler,
             "precision": precision, "samples_per_ic": samples_per_ic,
             "eta_s": float(eta_values[0]) if len(eta_values) == 1 else eta_values.tolist(),
             "logsnr_range": list(spectra_model.logsnr_range or ()) or "full",
             **({"centrality_ic": centrality.source, "centrality_coverage": centrality.coverage_percent}
                if centrality is not None else {}),
             **trained_decays(spectra_model.config),
             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    pq = (len(spectra_model.pt_edges) - 1, len(spectra_model.phi_edges) - 1)
    shapes = {"histogram": (pq, np.float32), "spectrum": (pq, np.float32), "ic": ((res, res), np.float32),
              "eta_s": ((), np.float32), "ic_index": ((), np.int64), "sample_index": ((), np.int64),
              **{k: ((), np.float64) for k in IC_ATTRS}}
    fields = {k: shapes[k] for k in MODEL_RECORD_FIELDS}
    if centrality is not None:
        fields["centrality"] = ((), np.float64)
    writer, pwriter = None, None
    try:
        writer = SpectraWriter(out, attrs, spectra_model.pt_edges, spectra_model.phi_edges, fields)
        if particles is not None:
            from hicgen.io.writers import open_writer

            pwriter = open_writer(particles, overwrite, {**attrs, "system": "PbPb", "sqrt_s": PARTICLE_SQRT_S,
                                                         "particle_y_max": particle_y_max})
    except BaseException:  # e.g. .root without uproot: no partial spectra file left behind, the input closed
        if writer is not None:
            writer.abort()
        reader.close()
        raise
    ic_band = spectra_model.config.get("ic_entropy_per_participant")  # the training ICs' scale (ic_scale)
    blocks = ResampledBlocks(reader, chunk_ics, res, grid_out, read_processes, first)
    finish = ThreadPoolExecutor(1, thread_name_prefix="hicgen-spectra-write")
    pending: Future | None = None  # the write of the previous block, running while this one is generated
    done, total = 0, n * len(eta_values) * samples_per_ic

    def collect() -> None:
        """Wait for the pending write (raising its error) and report progress."""
        nonlocal pending, done
        if pending is not None:
            done += pending.result()
            pending = None
            if progress is not None:
                progress(done, total)

    started, first_block = time.perf_counter(), None  # (spectra, seconds) of the first block: the warm-up
    scale_sums = None  # the ICs' entropy scale against the training ICs', summed over the blocks (ic_scale)
    try:
        for block in blocks:
            sums = check_ic_scale(block.attrs["mult"], block.attrs["npart"], ic_band, allow_extrapolation)
            if sums is not None:
                scale_sums = sums if scale_sums is None else scale_sums + sums
            runs = [generate_records(spectra_model, block.ic, value, samples_per_ic, steps, sampler, seed, device,
                                     precision, batch_size, cuda_graphs, allow_extrapolation, ic_offset=block.start,
                                     compiled=compiled)
                    for value in eta_values]
            if first_block is None:
                first_block = (len(runs[0][0]) * len(runs), time.perf_counter() - started)
            collect()
            pending = finish.submit(_write_block, writer, pwriter, spectra_model, block, runs, eta_values,
                                    samples_per_ic, seed, centrality, particle_y_max)
        collect()
    except BaseException as exc:
        blocks.close()
        written = _settle(pending)
        if isinstance(exc, KeyboardInterrupt) and written and writer.n:  # keep the whole records written so far
            kept = writer.n
            kept_ics = kept // (len(eta_values) * samples_per_ic)  # whole blocks: whole ICs
            writer.mark_interrupted()
            writer.close()
            if pwriter is not None:
                pwriter.close()
            raise SpectraInterrupted(kept, first + kept_ics, n - kept_ics) from exc
        writer.abort()  # an error, or nothing written yet: no file (an existing one is kept)
        if pwriter is not None:
            pwriter.abort()
        raise
    finally:
        finish.shutdown(wait=True)
        blocks.close()
        reader.close()
    writer.close()
    if pwriter is not None:
        pwriter.close()
    return {"spectra": done, "initial_states": n, "out": str(out), "particles": str(particles) if particles else None,
            "seconds": time.perf_counter() - started, "first_block": first_block,
            "ic_scale": None if scale_sums is None else offset_from_sums(scale_sums, ic_band)}
