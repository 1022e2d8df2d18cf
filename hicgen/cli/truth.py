"""`hicgen truth angantyr`: Pythia 8 Angantyr reference events into a dataset file."""

from __future__ import annotations

from pathlib import Path

import typer

from hicgen.cli.app import parse_choice, parse_count, truth_app


@truth_app.command("angantyr")
def angantyr(
    system: str = typer.Option(..., help="Colliding nuclei: OO or PbPb."),
    events: str = typer.Option(..., help="Number of events, e.g. 2000 or 1e6."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset file (.h5)."),
    seed: int = typer.Option(1, help="Random seed; with --workers it fixes every event."),
    workers: int = typer.Option(1, help="Worker processes (each one CPU core)."),
    eta_max: float = typer.Option(2.5, help="Keep particles with |eta| below this."),
    pt_min: float = typer.Option(0.15, help="Keep particles with pT above this [GeV]."),
    sqrt_s: float = typer.Option(5360.0, help="Collision energy per nucleon pair [GeV]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Generate Pythia 8 Angantyr events (charged primaries in the acceptance) into a dataset file."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from hicgen.engine.stopping import stop_on_signals
    from hicgen.errors import InputError, require
    from hicgen.io.paths import check_output
    from hicgen.truth.angantyr import AngantyrConfig, run_angantyr

    config = AngantyrConfig(parse_choice(system, ("OO", "PbPb"), "--system"), sqrt_s, eta_max, pt_min).validate()
    n_events = parse_count(events)
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    check_output(out, overwrite, (".h5", ".hdf5"))
    require("pythia8mc", "truth")
    console = Console(stderr=True)
    written = 0

    def advance(n: int) -> None:
        nonlocal written
        written += n
        bar.advance(task, n)
        done = bar.tasks[0]
        if done.elapsed:
            bar.update(task, rate=f"{done.completed / done.elapsed:.1f} ev/s")

    try:
        with Progress(
            TextColumn(f"Angantyr {config.system} {config.sqrt_s / 1000:g} TeV"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
        ) as bar, stop_on_signals():  # Ctrl-C and SIGTERM (Slurm, kill) stop the run after its current chunk
            task = bar.add_task("events", total=n_events, rate="")
            summary = run_angantyr(config, n_events, seed, out, workers, overwrite, advance)
    except KeyboardInterrupt:
        kept = f"{out} holds the {written:,} whole events written" if written else f"no event had been written, {out} not written"
        typer.echo(f"hicgen: interrupted; {kept}", err=True)
        raise typer.Exit(130) from None
    console.print(
        f"wrote {summary.events:,} events, {summary.particles:,} particles to {summary.path} "
        f"in {summary.seconds:.1f} s (seeds {summary.seeds}, {summary.failed} failed Pythia tries)"
    )
