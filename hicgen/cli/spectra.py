"""`hicgen spectra`: initial entropy profiles (trento HDF5) + eta/s -> 64 x 64 (pT, phi) spectra (paper 000)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import typer

from hicgen.cli.app import COVERAGE_HELP, app, centrality_calibration_of, parse_choice, parse_count, parse_eta_s
from hicgen.engine.defaults import DEFAULT_SPECTRA_BATCH

DEFAULT_MODEL = "spectra"  # folder under weights/


@app.command("spectra")
def spectra(
    trento: Path = typer.Option(..., "--trento", help="Initial states: a trento HDF5 file (event_0, event_1, ...) or the folder of trento's text output (0.dat, 1.dat, ...)."),
    grid_step: Optional[float] = typer.Option(
        None, "--grid-step", help="IC grid step [fm] of a file that does not record it (the real trento program's): "
        "its --grid-step; default: the file's, else trento's 0.2."),
    eta_s: str = typer.Option(..., "--eta-s", help="Shear viscosity over entropy density, inside the model's trained range: one value or a list 0,0.1,0.2 (K spectra per IC at each)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output spectra file (.h5, format 'hicgen-spectra')."),
    first: int = typer.Option(0, "--first", help="Start at the input's initial state FIRST (split a production into jobs; join them with 'hicgen truth merge')."),
    events: Optional[str] = typer.Option(None, "--events", help="Use only N initial states (default: all from --first on)."),
    shard: str = typer.Option("0/1", "--shard", help="Take only part i of N contiguous, near-equal parts of those initial states (task i of a job array of N; whole 64-IC blocks when each part gets 64 or more, so the merge copies them); join the parts with 'hicgen truth merge'."),
    samples_per_ic: int = typer.Option(1, "--samples-per-ic", "-k", help="Spectra generated per initial state (and eta/s value)."),
    steps: Optional[int] = typer.Option(
        None, help="ODE steps of the sampler; default: the checkpoint's measured setting (model card), else 12."),
    sampler: Optional[str] = typer.Option(
        None, help="ODE sampler: ddim, dpm++2m or heun; default: the checkpoint's measured setting (model card), else dpm++2m."),
    logsnr_range: Optional[tuple[float, float]] = typer.Option(
        None, "--logsnr-range", help="Narrow the sampler's log-SNR time grid to LO HI (fewer steps for the same "
        "accuracy; see docs/spectra.md); default: the checkpoint's setting, else the full range."),
    full_grid: bool = typer.Option(
        False, "--full-grid", help="Space the steps over the full log-SNR range even if the checkpoint narrows it "
        "(the closures recorded before 2026-11-25)."),
    seed: int = typer.Option(0, help="Random seed; spectrum (IC i, sample k) is fixed by (seed, i, k)."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    precision: str = typer.Option("auto", help="auto (bf16 on CUDA and on CPUs with bf16 in hardware (AMX, AVX512-BF16), else fp32), fp32, bf16 or fp16 (autocast)."),
    cuda_graphs: str = typer.Option("auto", "--cuda-graphs", help="auto, on or off: replay the ODE solve as a CUDA graph."),
    batch_size: Optional[int] = typer.Option(None, help=f"Spectra per network batch (default {DEFAULT_SPECTRA_BATCH['cpu']} on CPU, {DEFAULT_SPECTRA_BATCH['cuda']} on CUDA)."),
    read_processes: int = typer.Option(
        0, "--read-processes", help="Processes that read and resample the initial states (default 0: one thread, "
        "which reads ~7,000 ICs/s of 100 x 100 cells). For a GPU host with CPUs to spare; see docs/spectra.md."),
    compile_network: bool = typer.Option(False, "--compile", help="Run the network through torch.compile (about a minute, once: a last, smaller batch is padded to --batch-size); pays off from ~15,000-30,000 spectra on a CPU, ~100,000 on a GPU."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint folder (default: the shipped weights/spectra)."),
    particles: Optional[Path] = typer.Option(
        None, "--particles", help="Also sample particle lists into .hepmc, .root or .h5: the histograms' particles, "
        "pi/K/p drawn with the reference chain's shares and flow at each event's eta/s and multiplicity (model card)."),
    y_max: float = typer.Option(
        0.5, "--y-max", help="Rapidity window |y| < Y of the --particles events: 0.5 holds the spectra's histograms; "
        "a wider one adds particles from the smooth spectrum at the same dN/dy (boost invariance)."),
    centrality_ic: Optional[Path] = typer.Option(
        None, "--centrality-ic", help="Give the spectra (column 'centrality') and the --particles events (HepMC3 "
        "GenHeavyIon) a centrality: the percentile of their IC's TRENTo multiplicity in this min-bias trento file (the "
        "input itself when it is one), scaled to the measured Pb-Pb cross section it covers. Default: none."),
    coverage: Optional[float] = typer.Option(None, "--coverage", help=COVERAGE_HELP),
    allow_extrapolation: bool = typer.Option(False, "--allow-extrapolation", help="Accept eta/s outside the trained range, and initial states whose entropy scale (TRENTo normalisation) lies outside the factors of the training ICs' the model was shown to follow (its model card)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
) -> None:
    """Generate final-state (pT, phi) spectra of charged hadrons from initial states with the spectra model."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hicgen.diffusion.samplers import SAMPLERS, make_grid
    from hicgen.engine.seeding import parse_shard
    from hicgen.engine.stopping import stop_on_signals
    from hicgen.engine.runtime import resolve_device, resolve_graphs, resolve_precision
    from hicgen.environment import WEIGHTS_DIR
    from hicgen.errors import CheckpointError, InputError
    from hicgen.truth.trento_io import check_trento_path
    from hicgen.spectra.generate import check_eta_s, load_spectra_model, untrained_eta_s
    from hicgen.spectra.pipeline import check_particle_window, run_spectra

    eta_values = parse_eta_s(eta_s)
    n_events = None if events is None else parse_count(events, "--events")
    shard_part = parse_shard(shard)
    sampler = None if sampler is None else parse_choice(sampler, tuple(SAMPLERS), "--sampler")
    if not 0 <= read_processes <= 64:
        raise InputError(f"--read-processes must be 0 (a thread) to 64, got {read_processes}")
    for option, value in (("--samples-per-ic", samples_per_ic), ("--steps", steps), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    check_trento_path(trento, "trento")
    if grid_step is not None and not grid_step > 0:
        raise InputError(f"--grid-step must be > 0 fm, got {grid_step}")
    model = model or WEIGHTS_DIR / DEFAULT_MODEL
    if not model.is_dir():
        raise CheckpointError(f"no spectra model at '{model}'; pass --model FOLDER (a checkpoint from 'hicgen train --model spectra')")
    device = resolve_device(device)
    precision = resolve_precision(precision, device, cpu_bf16=True)
    resolve_graphs(cuda_graphs, device)
    spectra_model = load_spectra_model(model, device)
    check_eta_s(eta_values, spectra_model, allow_extrapolation)
    if full_grid and logsnr_range is not None:
        raise InputError("give --logsnr-range LO HI or --full-grid, not both")
    if full_grid:
        spectra_model.set_logsnr_range(None)
    if logsnr_range is not None:
        try:  # the range's validity does not depend on the step count (a 1-step grid would ignore it)
            make_grid(spectra_model.schedule, 2, "logsnr", logsnr_range)
        except ValueError as exc:
            raise InputError(f"--logsnr-range {logsnr_range[0]:g} {logsnr_range[1]:g}: {exc}") from None
        spectra_model.set_logsnr_range(logsnr_range)
    console = Console(stderr=True)
    check_particle_window(y_max, particles is not None, spectra_model)  # before the calibration's seconds
    if centrality_ic is not None:
        from hicgen.io import EVENT_SUFFIXES
        from hicgen.io.paths import check_output

        check_output(out, overwrite, (".h5", ".hdf5"))  # refused now, not after the calibration's seconds
        if particles is not None:
            check_output(particles, overwrite, EVENT_SUFFIXES)
    calibration = centrality_calibration_of(centrality_ic, coverage)
    if calibration is not None:
        console.print(f"centrality: TRENTo multiplicity percentile among the {calibration.reference_mult.size:,} initial "
                      f"states of {centrality_ic}, which cover {calibration.coverage_percent:.1f} % of the measured "
                      "Pb-Pb cross section", soft_wrap=True)
    label = f"spectra eta/s={','.join(f'{v:g}' for v in eta_values)}"
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task("spectra", total=None)

    untrained = untrained_eta_s(eta_values, spectra_model)

    def show(done: int, total: int) -> None:  # the bar appears with the first spectra, after run_spectra's input checks
        if not bar.live.is_started and untrained.size:  # bad input stays one line: said only once the run starts
            trained = ", ".join(f"{v:g}" for v in spectra_model.config["eta_s_trained"])
            console.print(f"eta/s {','.join(f'{v:g}' for v in untrained)}: not trained (the model's: {trained}), "
                          "answered by its interpolation in the label; its model card says how well", soft_wrap=True)
        bar.start()
        bar.update(task, completed=done, total=total)

    start = time.perf_counter()
    try:
        with stop_on_signals():  # Ctrl-C and SIGTERM (Slurm, kill) stop the run after its current batch
            summary = run_spectra(
                trento, eta_values, out, spectra_model, samples_per_ic, steps, sampler, seed, device, precision,
                particles, allow_extrapolation, overwrite, batch_size, cuda_graphs=cuda_graphs, progress=show,
                compiled=compile_network, grid_step=grid_step, first=first, events=n_events,
                shard=shard_part, read_processes=read_processes, centrality=calibration, particle_y_max=y_max,
            )
    except KeyboardInterrupt as stop:
        if bar.live.is_started:
            bar.stop()
        kept = getattr(stop, "records", 0)  # SpectraInterrupted from run_spectra
        also = f", {particles} their particles" if particles is not None else ""
        rest = getattr(stop, "remaining_ics", 0)
        rest = (f"; the rest is --first {stop.next_ic} --events {rest} (into another file, then 'hicgen truth merge')"
                if rest else "")
        typer.echo(f"hicgen: interrupted; {out} holds the {kept:,} finished spectra (attribute 'interrupted'){also}{rest}"
                   if kept else f"hicgen: interrupted; no spectrum had finished, {out} not written", err=True)
        raise typer.Exit(130) from None
    finally:
        if bar.live.is_started:  # stopping a bar never shown would still print a line
            bar.stop()
    extra = f" and particles to {summary['particles']}" if summary["particles"] else ""
    seconds = time.perf_counter() - start  # reading, sampling and writing; not the model's loading
    warm = ""
    if summary["first_block"] and summary["first_block"][0] < summary["spectra"]:  # the rate once warm (compile, graphs)
        first_spectra, first_seconds = summary["first_block"]
        later = (summary["spectra"] - first_spectra) / max(summary["seconds"] - first_seconds, 1e-9)
        warm = f"; {later:,.0f} spectra/s after the first block, which took {first_seconds:.1f} s"
    console.print(f"wrote {summary['spectra']:,} spectra of {summary['initial_states']:,} initial states to {summary['out']}{extra} "
                  f"in {seconds:.1f} s ({summary['spectra'] / seconds:,.0f} spectra/s{warm})", soft_wrap=True)
    if summary["ic_scale"] is not None:  # the entropy scale the model saw: a run at another normalisation says so
        from hicgen.spectra.ic_scale import MIN_NPART

        offset, error, ics = summary["ic_scale"]
        console.print(f"initial states: {math.exp(offset):.3g} +- {error:.2g} times the TRENTo entropy per participant of "
                      f"the model's training ICs ({ics:,} ICs with npart >= {MIN_NPART}; hicgen.spectra.ic_scale)", soft_wrap=True)
