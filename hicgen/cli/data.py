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
        table.add_row(key, _brief(value))
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
        table.add_row(key, _brief(value))
    return table


def _brief(value, most: int = 12, chars: int = 160) -> str:
    """An attribute for the table: as it is; its shape when it holds more than `most` numbers (per-pT shares); its
    start and length when its text is longer than `chars` (the parts of a merge of many jobs)."""
    import numpy as np

    if isinstance(value, list) and np.size(value) > most:
        return f"{np.shape(value)} array"
    text = str(value)
    return text if len(text) <= chars else f"{text[:chars - 40]} ... ({len(text):,} characters)"


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


@data_app.command("merge")
def merge(
    inputs: list[Path] = typer.Argument(..., help="hicgen event files (.h5) of one production: the parts of 'hicgen run --shard i/N', of 'hicgen spectra --particles' jobs over --shard parts or --first/--events ranges of one IC file, or 'hicgen truth angantyr' runs with other seeds."),
    out: Path = typer.Option(..., "--out", "-o", help="Joined output file (.h5)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Join hicgen event files made by separate jobs of one production into one (parts ordered by their first event
    number, else by seed and shard; the same events twice, or parts of other settings, are refused)."""
    from hicgen.analysis.spectra_closure import is_spectra_file
    from hicgen.data.merge import merge_events
    from hicgen.errors import InputError
    from hicgen.io import HDF5_SUFFIXES
    from hicgen.io.paths import check_input, check_output

    for path in inputs:
        check_input(path, "event")
        if not path.name.lower().endswith(HDF5_SUFFIXES):
            raise InputError(f"'{path}' is not a hicgen event file (.h5): 'hicgen data merge' joins those; write the "
                             "parts with --out/--particles NAME.h5, or read the HepMC3 / ROOT parts one after another")
        if is_spectra_file(path):
            raise InputError(f"'{path}' holds binned spectra, not particle events; join spectra files with 'hicgen truth merge'")
    check_output(out, overwrite, (".h5", ".hdf5"))
    path, events, particles = merge_events(inputs, out, overwrite)
    typer.echo(f"merged {len(inputs)} files into {path}: {events:,} events, {particles:,} particles", err=True)
