"""`hicgen run`: generate heavy-ion events with a point-cloud diffusion model into HepMC3, ROOT or HDF5."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hicgen.cli.app import app, parse_choice, parse_count
from hicgen.engine.defaults import DEFAULT_BATCH, DEFAULT_SAMPLER, DEFAULT_STEPS, DEFAULT_TOKENS, SAMPLER_NAMES

FORMAT_NAMES = {"hdf5": "HDF5 dataset", "hepmc": "HepMC3 ASCII", "root": "ROOT TTree"}


@app.command("run")
def run(
    system: str = typer.Option(..., help="Colliding nuclei: OO or PbPb."),
    events: str = typer.Option(..., "--events", "-n", help="Events to write (this shard), e.g. 1000 or 1e6."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .hepmc/.hepmc3 (+.gz), .root or .h5/.hdf5."),
    model: Optional[Path] = typer.Option(None, help="Checkpoint folder (default: the shipped model for --system)."),
    seed: int = typer.Option(0, help="Random seed; with --shard it fixes every event."),
    shard: str = typer.Option("0/1", help="Shard i/N of N disjoint random streams (Slurm arrays, torchrun ranks)."),
    steps: int = typer.Option(DEFAULT_STEPS, help="ODE steps per branch."),
    sampler: str = typer.Option(DEFAULT_SAMPLER, help=f"ODE solver: {', '.join(SAMPLER_NAMES)}."),
    precision: str = typer.Option("auto", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16."),
    cuda_graphs: str = typer.Option("auto", help="Capture each batch shape as a CUDA graph: auto (on for CUDA), on, off."),
    batch_size: Optional[int] = typer.Option(None, help=f"Events sampled together and written as one chunk (default {DEFAULT_BATCH['cpu']} on CPU, {DEFAULT_BATCH['cuda']} on CUDA, fewer per chunk for high multiplicities)."),
    max_tokens: Optional[int] = typer.Option(None, help=f"Particles per network call (default {DEFAULT_TOKENS['cpu']} on CPU, {DEFAULT_TOKENS['cuda']} on CUDA)."),
    centrality: Optional[str] = typer.Option(None, help="Keep only this centrality class in percent, e.g. 0-10."),
    eta_max: Optional[float] = typer.Option(None, help="Keep particles with |eta| below this (inside the trained acceptance)."),
    pt_min: Optional[float] = typer.Option(None, help="Keep particles with pT above this [GeV] (inside the trained acceptance)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Generate whole heavy-ion events (event vector, then particles) with a diffusion model."""
    from hicgen.engine.generate import RunSettings, parse_centrality, prepare, write_events
    from hicgen.engine.seeding import parse_shard
    from hicgen.engine.stopping import stop_on_signals
    from hicgen.io import event_format
    from hicgen.io.paths import check_output

    system = parse_choice(system, ("OO", "PbPb"), "--system")
    settings = RunSettings(
        events=parse_count(events), seed=seed, shard=parse_shard(shard), steps=steps,
        sampler=parse_choice(sampler, SAMPLER_NAMES, "--sampler"), precision=precision.lower(),
        cuda_graphs=cuda_graphs.lower(), device=device.lower(), batch_size=batch_size, max_tokens=max_tokens,
        centrality=parse_centrality(centrality) if centrality else None, eta_max=eta_max, pt_min=pt_min,
    )
    fmt = event_format(out)
    check_output(out, overwrite)
    plan = prepare(system, settings, model)
    console = _console()
    console.print(_banner(plan, out, fmt))
    with _progress(console) as bar, stop_on_signals():
        task = bar.add_task("events", total=settings.events)
        stats = write_events(plan, out, overwrite, lambda batch, _: bar.advance(task, len(batch)))
    console.print(_summary(stats, out))
    if stats.interrupted:
        raise typer.Exit(130)


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _banner(plan, out: Path, fmt: str):
    """Pythia-style start-up banner: model, device, precision and the run settings."""
    from rich.panel import Panel
    from rich.table import Table

    from hicgen import __version__

    gen, s = plan.generator, plan.generator.settings
    config = gen.bundle.config
    table = Table.grid(padding=(0, 2))
    energy = f" {plan.sqrt_s / 1000:g} TeV" if plan.sqrt_s else ""
    sha = str(config.get("tensors_sha256", ""))[:12]
    acceptance = ", ".join(part for part in (
        f"|eta| < {gen.acceptance['eta_max']:g}" if gen.acceptance["eta_max"] is not None else "",
        f"pT > {gen.acceptance['pt_min']:g} GeV" if gen.acceptance["pt_min"] is not None else "",
    ) if part) or "as trained"
    rows = [
        ("collision", f"{plan.system}{energy}"),
        ("model", f"{plan.model} (sha256 {sha}...)"),
        ("device", f"{gen.device} | precision {gen.precision} | CUDA graphs {'on' if gen.cuda_graphs else 'off'}"),
        ("sampler", f"{s.sampler}, {s.steps} steps ({gen.evaluations_per_sample} network evaluations per branch)"),
        ("batches", f"{gen.chunk_events} events per chunk written, {gen.batch_size} per event-branch call, up to "
                    f"{gen.max_tokens:,} particles per particle-branch call"),
        ("events", f"{s.events:,} | seed {s.seed} | shard {s.shard[0]}/{s.shard[1]}"),
        ("selection", f"centrality {'all' if s.centrality is None else f'{s.centrality[0]:g}-{s.centrality[1]:g} %'} | {acceptance}"),
        ("output", f"{out} ({FORMAT_NAMES[fmt]})"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return Panel(table, title=f"hicgen {__version__} -- heavy-ion events from diffusion models", expand=False)


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    class Rate(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task):
            from rich.text import Text

            return Text(f"{_rate(task.completed, task.elapsed)} events/s")

    return Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), Rate(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


def _rate(count: float, seconds: float | None) -> str:
    """count / seconds for a person: one decimal from 1 up, two significant digits below (a Pb-Pb run on a CPU
    makes ~0.05 events/s, which one decimal would show as 0.0)."""
    rate = count / seconds if seconds else 0.0
    return f"{rate:,.1f}" if rate >= 1 or rate == 0 else f"{rate:.2g}"


def _summary(stats, out: Path):
    """Closing statistics table."""
    from rich.table import Table

    written = stats.extra.get("written_events", 0)
    table = Table(title="hicgen run statistics", show_header=False)
    status = "complete"
    if stats.interrupted:
        status = ("interrupted: the file holds the whole events written so far" if written else
                  "interrupted before the first whole event: no file written")
    table.add_row("status", status)
    table.add_row("events in file", f"{written:,}")
    table.add_row("particles in file", f"{stats.extra.get('written_particles', 0):,}")
    table.add_row("time", f"{stats.seconds:.2f} s")
    table.add_row("events/s", _rate(written, stats.seconds) if stats.seconds else "-")
    table.add_row("particles/s", f"{stats.extra.get('written_particles', 0) / stats.seconds:,.0f}" if stats.seconds else "-")
    table.add_row("resampled events", f"{stats.resampled:,} non-finite or out of range, {stats.dropped:,} dropped")
    table.add_row("rejected by centrality", f"{stats.rejected_centrality:,} of {stats.event_vectors:,} event vectors")
    table.add_row("padding waste", f"{100 * stats.padding_waste:.1f} % of particle tokens")
    if written or not stats.interrupted:
        table.add_row("output", f"{out} ({Path(out).stat().st_size / 1e6:,.1f} MB)")
    return table
