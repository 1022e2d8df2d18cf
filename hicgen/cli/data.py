"""`hicgen data info` and `hicgen data export`."""

from __future__ import annotations

from pathlib import Path

import typer

from hicgen.cli.app import data_app, parse_choice


@data_app.command("info")
def info(path: Path = typer.Argument(..., help="A hicgen dataset file (.h5).")) -> None:
    """Summarise a dataset: events, multiplicity and provenance."""
    from rich.console import Console
    from rich.table import Table

    from hicgen.data.dataset import dataset_info

    summary = dataset_info(path)
    table = Table(title=str(path), show_header=False)
    table.add_row("events", f"{summary['events']:,}")
    table.add_row("particles", f"{summary['particles']:,}")
    table.add_row("multiplicity", f"mean {summary['mult_mean']:.1f}, std {summary['mult_std']:.1f}, max {summary['mult_max']}")
    table.add_row("event columns", ", ".join(summary["event_columns"]))
    table.add_row("particle columns", ", ".join(summary["particle_columns"]))
    for key, value in sorted(summary["attrs"].items()):
        table.add_row(key, str(value))
    Console().print(table)


@data_app.command("export")
def export(
    path: Path = typer.Argument(..., help="A hicgen dataset file (.h5)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .h5 file."),
    layout: str = typer.Option("padded", help="Target layout: 'padded' = paper 004's (N, 11) events + (N, Nmax, 6) particles."),
    nmax: int = typer.Option(None, help="Particle slots per event (default: the largest multiplicity in the file)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Export a dataset to another layout."""
    from hicgen.data.export import export_padded
    from hicgen.io.paths import check_input

    parse_choice(layout, ("padded",), "--layout")
    check_input(path, "dataset")
    written = export_padded(path, out, nmax=nmax, overwrite=overwrite)
    typer.echo(f"wrote {written}")
