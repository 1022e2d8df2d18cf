"""`hicgen data info` and `hicgen data export`."""

from __future__ import annotations

from pathlib import Path

import typer

from hicgen.cli.app import data_app, parse_choice


@data_app.command("info")
def info(path: Path = typer.Argument(..., help="A hicgen dataset file (.h5), or a spectra file (hicgen spectra, hicgen truth hydro).")) -> None:
    """Summarise a dataset (events, multiplicity, provenance) or a spectra file (records, initial states, eta/s,
    provenance)."""
    from rich.console import Console
    from rich.table import Table

    from hicgen.analysis.spectra_closure import is_spectra_file
    from hicgen.data.dataset import dataset_info
    from hicgen.io.paths import check_input

    if is_spectra_file(check_input(path, "dataset")):
        Console().print(_spectra_table(path))
        return
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


def _spectra_table(path: Path):
    """The rich table of `hicgen data info` for a hicgen-spectra file."""
    from rich.table import Table

    from hicgen.truth.spectra_data import spectra_info

    summary = spectra_info(path)
    table = Table(title=f"{path} (binned spectra)", show_header=False)
    table.add_row("records", f"{summary['records']:,}")
    first_last = summary["ic_index_range"]
    table.add_row("initial states", f"{summary['initial_states']:,}" + (f" (ic_index {first_last[0]}..{first_last[1]})" if first_last else ""))
    table.add_row("samples per IC", str(summary["samples_per_ic"]))
    for row in summary["eta_s"]:
        mult = f", mean dN_ch/dy {row['dnch_dy_mean']:.1f}" if "dnch_dy_mean" in row else ""
        table.add_row(f"eta/s = {row['eta_s']:g}", f"{row['records']:,} records of {row['initial_states']:,} ICs{mult}")
    if summary["b_range"]:
        table.add_row("b (fm)", f"{summary['b_range'][0]:.2f} .. {summary['b_range'][1]:.2f}")
    if summary["grid"]:
        table.add_row("(pT, phi) bins", f"{summary['grid'][0]} x {summary['grid'][1]}")
    for key, value in sorted(summary["attrs"].items()):
        table.add_row(key, str(value))
    return table


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
