"""`hicgen data info` and `hicgen data export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hicgen.cli.app import COVERAGE_HELP, centrality_calibration_of, data_app, parse_choice


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


@data_app.command("flow")
def flow(
    path: Path = typer.Argument(..., help="A spectra file (hicgen spectra, hicgen truth hydro, hicgen truth merge) or an "
                                "event file (.h5, .hepmc, .root: hicgen run, hicgen spectra --particles, hicgen truth)."),
    classes: str = typer.Option("0,5,10,20,30,40,50,60,70", "--classes", help="Centrality class edges [%], comma-separated."),
    centrality_ic: Optional[Path] = typer.Option(
        None, "--centrality-ic", help="Spectra files: centrality from this min-bias trento file (the percentile of an "
        "IC's TRENTo multiplicity in it, scaled to the Pb-Pb cross section it covers). Default: the file's centrality "
        "column (hicgen spectra --centrality-ic), else percentiles among the file's own ICs, taken as 0-100 %. Event "
        "files are classed by their centrality column, else by their particles per event."),
    coverage: Optional[float] = typer.Option(None, "--coverage", help=COVERAGE_HELP),
    eta_gap: Optional[float] = typer.Option(None, "--eta-gap", help="Event files: pseudorapidity gap between the two "
                                            "sub-events of v_n{2,gap} and the {gap} flow correlations [default: 1.0]."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamplings of each class's initial states (errors)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the whole table: .json, or .csv (long form: "
                                       "one row per eta/s, class, source, observable and pT bin)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Flow per eta/s and centrality class of a spectra or event file, with bootstrap errors over the initial states:
    dN/dy, <pT>, v2{2,4,6,8}, v3{2,4}, v4{2} of the histograms (Q-cumulants) and, where the spectra are smooth,
    v_n{2}, v_n{4} and v_n{2}(pT) of the spectra; the flow correlations NSC(3,2), NSC(4,2), v4,22, rho4,22 of both;
    for the reference chain's records the identified pi, K, p (dN/dy, <pT>, K/pi, p/pi, spectra and v_n{2}(pT));
    for particle events <N>, <pT>, the same Q-cumulants and correlations, v_n{2,|deta|>gap} and the correlations
    between the two sub-events."""
    from rich.console import Console

    from hicgen.analysis.flow_table import check_classes, event_flow_table, spectra_flow_table
    from hicgen.errors import InputError
    from hicgen.io.paths import check_input, check_output

    check_input(path, "spectra or event")
    events = _holds_particle_events(path)
    given = [name for name, value in (("--centrality-ic", centrality_ic), ("--coverage", coverage),
                                      ("--eta-gap", eta_gap)) if value is not None]
    misplaced = [name for name in given if (name == "--eta-gap") != events]
    if misplaced:
        kind = "spectra files" if events else "particle events"
        raise InputError(f"{' and '.join(misplaced)} appl{'ies' if len(misplaced) == 1 else 'y'} to {kind} only; drop "
                         f"{'it' if len(misplaced) == 1 else 'them'} for '{path}'")
    edges = check_classes(_class_edges(classes))
    if bootstrap < 2:
        raise InputError(f"--bootstrap must be 2 or more resamplings (errors are their spread), got {bootstrap}")
    if out is not None:
        check_output(out, overwrite, (".json", ".csv"))
    calibration = None if events else centrality_calibration_of(centrality_ic, coverage)
    console = Console(stderr=True)
    what = "events" if events else "records"
    with console.status(f"reading the {what}") as status:

        def progress(done: int, total: int | None) -> None:
            status.update(f"reading the {what}: {done:,}" + (f" of {total:,}" if total else ""))

        table = (event_flow_table(path, edges, bootstrap, seed, 1.0 if eta_gap is None else eta_gap, progress) if events
                 else spectra_flow_table(path, edges, calibration, bootstrap, seed, progress))
    typer.echo(_flow_text(table))
    if out is not None:
        _write_flow(table, out)
        typer.echo(f"wrote {out}", err=True)


def _holds_particle_events(path: Path) -> bool:
    """Whether `path` is an event file: HepMC3 or ROOT by its suffix, or a hicgen dataset (format 'hicgen-events')."""
    import h5py

    from hicgen.data.dataset import FORMAT_NAME
    from hicgen.io import HEPMC_SUFFIXES, ROOT_SUFFIXES

    if path.name.lower().endswith(HEPMC_SUFFIXES + ROOT_SUFFIXES):
        return True
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT_NAME
    except OSError:
        return False


def _class_edges(text: str) -> tuple[float, ...]:
    from hicgen.errors import InputError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--classes must be comma-separated percentages such as 0,5,10,20, got '{text}'") from None


HISTOGRAM_COLUMNS = ("dN/dy", "<pT>", "v2{2}", "v2{4}", "v2{6}", "v2{8}", "v3{2}", "v3{4}", "v4{2}")
SMOOTH_COLUMNS = ("v2{2}", "v2{4}", "nc2{4}", "v3{2}", "v3{4}", "nc3{4}", "v4{2}")
PARTICLE_COLUMNS = ("<N>", "<pT>", "v2{2}", "v2{2,gap}", "v2{4}", "v2{6}", "v2{8}", "v3{2}", "v3{2,gap}", "v3{4}",
                    "v4{2}")
CORRELATION_COLUMNS = ("NSC(3,2)", "NSC(4,2)", "v4,22", "rho4,22")
SPECIES_COLUMNS = ("dN/dy pi", "dN/dy K", "dN/dy p", "<pT> pi", "<pT> K", "<pT> p", "K/pi", "p/pi")
GAP_CORRELATION_COLUMNS = tuple(f"{name}{{gap}}" for name in CORRELATION_COLUMNS)
CORRELATIONS = "flow correlations (symmetric cumulants NSC(m,2), nonlinear response v4,22, rho4,22 = v4,22 / v4{2})"


def _flow_text(table: dict) -> str:
    """The text of `hicgen data flow`: per eta/s one aligned table of the histograms' (or the particles')
    observables and, for smooth spectra, one of the spectra's flow; each value with its bootstrap error in its last
    digits, e.g. 0.0912(37). Plain text, so that it neither wraps nor truncates when piped."""
    meta = table["meta"]
    events = meta["kind"] == "events"
    unit = "events" if events else "records"
    lines = [f"{meta['file']}: {meta['records']:,} {unit} of {meta['initial_states']:,} initial states",
             f"centrality: {meta['centrality']}",
             f"errors: standard deviation over {meta['bootstrap']} bootstrap resamplings of each class's initial states"]
    if events:
        half, (side_a, side_b) = meta["eta_gap"] / 2, meta["subevent_particles"]
        lines.append(f"v_n{{2,gap}}: sub-events eta > {half:g} and eta < -{half:g}, {side_a:.1f} and {side_b:.1f} "
                     "particles per event")
    sections = ([("particles", PARTICLE_COLUMNS, "particles (Q-cumulants; <N> particles per event, <pT> [GeV])"),
                 ("particles", GAP_CORRELATION_COLUMNS, f"particles: {CORRELATIONS}, between the sub-events (no gap: "
                                                        "in --out)")]
                if events else
                [("histogram", HISTOGRAM_COLUMNS, "histograms (Q-cumulants; dN/dy for |y| < 0.5, <pT> [GeV])"),
                 ("histogram", CORRELATION_COLUMNS, f"histograms: {CORRELATIONS}"),
                 ("smooth", SMOOTH_COLUMNS, "smooth spectra (no counting noise)"),
                 ("smooth", CORRELATION_COLUMNS, f"smooth spectra: {CORRELATIONS}"),
                 ("species", SPECIES_COLUMNS, "identified hadrons (pi: pi+ + pi-, K: K+ + K-, p: p + pbar; dN/dy of all "
                                              f"pT, <pT> [GeV] over {_pt_range(meta)}; spectra and v_n{{2}}(pT) in --out)")])
    for eta, res in table["results"].items():
        sample = "all events" if eta == "all" else f"eta/s = {eta}"
        lines.append("")
        if not res["classes"]:
            lines.append(f"{sample}: {res['initial_states']:,} initial states; no centrality class holds "
                         f"{meta['min_initial_states']} of them: give wider --classes or more initial states")
        for number, (source, columns, title) in enumerate(sections):
            if not any(source in cls for cls in res["classes"].values()):
                continue
            columns = [k for k in columns if all(k in cls[source] for cls in res["classes"].values())]  # older files lack some
            row = "{:>10} {:>6} " + " ".join(f"{{:>{max(12, len(column))}}}" for column in columns)
            head = f"{res['initial_states']:,} initial states, {res['records']:,} {unit}; " if number == 0 else ""
            lines += [f"{sample}: {head}{title}", row.format("centrality", "ICs", *columns)]
            lines += [row.format(label, cls["initial_states"], *(_with_error(cls[source][k]) for k in columns))
                      for label, cls in res["classes"].items()]
        if res["left_out"]:
            lines.append(f"left out, fewer than {meta['min_initial_states']} initial states: " + ", ".join(
                f"{label} ({count})" for label, count in res["left_out"].items()))
    return "\n".join(lines)


def _pt_range(meta: dict) -> str:
    low, high = meta.get("pt_range", (0.0, 2.0))
    return f"{low:g}-{high:g} GeV"


def _with_error(entry: dict) -> str:
    """'0.0912(37)': the value rounded to the error's second significant digit, the error in those digits;
    'undefined' for an imaginary cumulant flow."""
    import math

    value, error = entry["value"], entry["error"]
    if not math.isfinite(value):
        return "undefined"
    if not math.isfinite(error) or error <= 0:
        return f"{value:.4g}"
    decimals = max(0, 1 - math.floor(math.log10(error)))
    if round(error * 10**decimals) >= 100 and decimals > 0:  # 0.00996 rounds to 0.010: (10), not (100)
        decimals -= 1
    return f"{value:.{decimals}f}({round(error * 10**decimals)})"


def _write_flow(table: dict, out: Path) -> None:
    """The table as JSON (nulls for undefined values) or long-form CSV, written under a temporary name and renamed."""
    import json
    import os

    from hicgen.analysis.report import json_ready
    from hicgen.analysis.flow_table import csv_text
    from hicgen.io.paths import partial_path

    text = csv_text(table) if out.name.lower().endswith(".csv") else json.dumps(json_ready(table), indent=1, allow_nan=False)
    tmp = partial_path(out)
    tmp.write_text(text + ("" if text.endswith("\n") else "\n"))
    os.replace(tmp, out)


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
