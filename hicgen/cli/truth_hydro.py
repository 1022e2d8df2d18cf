"""`hicgen truth trento` (TRENTo-model initial states) and `hicgen truth hydro` (viscous hydro + Cooper-Frye spectra)."""

from __future__ import annotations

from pathlib import Path

import typer

from hicgen.cli.app import parse_choice, parse_count, parse_eta_s, truth_app
from hicgen.errors import InputError


def _bar(label: str, total: int):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True))


@truth_app.command("trento")
def trento_cmd(
    events: str = typer.Option(..., help="Number of events, e.g. 1000 or 1e4."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.h5), trento's HDF5 layout."),
    seed: int = typer.Option(1, help="Random seed; event i depends only on (seed, i)."),
    norm: float = typer.Option(None, help="Entropy normalisation (default: tuned for dN_ch/deta = 1943 at 0-5%; the chain with 'hicgen truth hydro --decays' needs its own, docs/hydro.md 'Resonance decays')."),
    p: float = typer.Option(0.0, "--p", help="Reduced-thickness parameter p."),
    fluct: float = typer.Option(1.19, help="Gamma fluctuation shape k."),
    nucleon_width: float = typer.Option(0.96, help="Gaussian nucleon width w [fm]."),
    dmin: float = typer.Option(1.27, help="Minimum nucleon distance d_min [fm]."),
    cross_section: float = typer.Option(7.0, help="Inelastic NN cross section [fm^2] (7.0 at 5.02 TeV)."),
    b_min: float = typer.Option(0.0, help="Minimum impact parameter [fm]."),
    b_max: float = typer.Option(None, help="Maximum impact parameter [fm] (default: no limit)."),
    grid_max: float = typer.Option(10.0, help="Grid half-width [fm]."),
    grid_step: float = typer.Option(0.2, help="Grid step [fm]."),
    batch: int = typer.Option(64, help="Events per batch."),
    device: str = typer.Option("cpu", help="torch device for the profiles (cpu, cuda)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Generate Pb-Pb 5.02 TeV TRENTo-model initial entropy profiles."""
    from hicgen.io.paths import check_output
    from hicgen.truth.trento import TrentoConfig, write_trento

    n = parse_count(events)
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    kw = {} if norm is None else {"norm": norm}
    cfg = TrentoConfig(p=p, fluctuation=fluct, nucleon_width=nucleon_width, d_min=dmin, cross_section=cross_section,
                       b_min=b_min, b_max=b_max, grid_max=grid_max, grid_step=grid_step, **kw)
    check_output(out, overwrite, (".h5", ".hdf5"))
    with _bar("TRENTo Pb-Pb 5.02 TeV", n) as bar:
        task = bar.add_task("events", total=n)
        path = write_trento(out, n, cfg, seed, batch, device, progress=lambda k: bar.advance(task, k))
    typer.echo(f"wrote {n} initial states ({cfg.cells}x{cfg.cells}, step {cfg.grid_step} fm) to {path}", err=True)


@truth_app.command("hydro")
def hydro_cmd(
    ic: Path = typer.Option(..., "--ic", help="Initial states: trento HDF5 file (hicgen truth trento or trento) or folder of trento text files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output hicgen-spectra file (.h5)."),
    eta_s: str = typer.Option("0.1", "--eta-s", help="Shear viscosity over entropy: one value or a list 0,0.1,0.2."),
    events: str = typer.Option(None, help="Use only N initial states (default: all from --first on)."),
    first: int = typer.Option(0, "--first", help="Start at initial state event_FIRST (split a production into jobs; join them with 'hicgen truth merge')."),
    shard: str = typer.Option("0/1", "--shard", help="Take only part i of N contiguous, near-equal parts of those initial states (task i of a job array of N; whole 64-IC blocks when each part gets 64 or more, so the merge copies them); join the parts with 'hicgen truth merge'."),
    seed: int = typer.Option(1, help="Seed of the Poisson-sampled histograms."),
    eos: str = typer.Option("hotqcd", help="Equation of state: hotqcd or conformal."),
    tau0: float = typer.Option(0.6, help="Start of hydro [fm]."),
    e_sw: float = typer.Option(0.18, "--e-sw", help="Switching energy density [GeV/fm^3]."),
    grid_step: float = typer.Option(None, help="IC grid step [fm] for files that do not record it (default 0.2)."),
    hydro_grid_max: float = typer.Option(18.0, help="Half-width of the hydro grid [fm]: big enough that the switching surface of central Pb-Pb events stays inside (records where it did not are flagged, field surface_at_grid_edge; docs/hydro.md)."),
    delta_f: bool = typer.Option(True, "--delta-f/--no-delta-f", help="Shear correction in Cooper-Frye."),
    decays: bool = typer.Option(False, "--decays", help="Add the pi, K and p from the strong and electromagnetic decays of every hadron resonance below 2 GeV (pythia8mc's particle table; pip install 'hicgen[truth]'); make the ICs with the norm tuned for it (docs/hydro.md, 'Resonance decays')."),
    batch: int = typer.Option(4, help="Events evolved together."),
    device: str = typer.Option("cpu", help="torch device (cpu, cuda)."),
    compile: bool = typer.Option(False, "--compile", help="Run the hydro time step and the Cooper-Frye sums through torch.compile: 1.4-1.8x faster on one CPU thread (measured on two machines) after ~3 min of compilation (a smaller last batch is padded to --batch, so it compiles once), same records to 1e-7; for productions of a few hundred records or more."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Evolve initial states with (2+1)D viscous hydro and write smooth and sampled 64x64 (pT, phi) spectra."""
    from hicgen.io.paths import check_output
    from hicgen.truth.hydro.pipeline import ChainConfig, run_events
    from hicgen.engine.seeding import parse_shard, shard_range
    from hicgen.truth.trento_io import TrentoReader, check_trento_path

    values = parse_eta_s(eta_s)
    n = parse_count(events, "--events") if events is not None else None
    shard_part = parse_shard(shard)
    eos = parse_choice(eos, ("hotqcd", "conformal"), "--eos")
    for option, value in (("--tau0", tau0), ("--e-sw", e_sw), ("--hydro-grid-max", hydro_grid_max)):
        if not value > 0:
            raise InputError(f"{option} must be > 0, got {value:g}")
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    if first < 0:
        raise InputError(f"--first must be at least 0 (the input's first initial state is 0), got {first}")
    if decays:
        from hicgen.errors import require

        require("pythia8mc", "truth")
    check_trento_path(ic, "--ic")
    check_output(out, overwrite, (".h5", ".hdf5"))

    with TrentoReader(ic, grid_step, slice(first, None if n is None else first + n)) as reader:
        lo, hi = shard_range(reader.n, shard_part)
        initial = reader.read(lo, hi)
    if decays and (note := _decays_norm_note(ic)):  # once the input is known good: bad input gets one line
        typer.echo(note, err=True)
    first += lo
    total = len(initial.profiles) * len(values)
    from hicgen.engine.stopping import stop_on_signals

    cfg = ChainConfig(tau0=tau0, e_sw=e_sw, grid_max=hydro_grid_max, delta_f=delta_f, decays=decays)
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        bar.advance(task, k)

    try:
        with _bar(f"hydro eta/s={eta_s}", total) as bar, stop_on_signals():
            task = bar.add_task("events", total=total)
            path = run_events(initial, ic.name, out, values, eos, cfg, seed, batch, device, progress=advance,
                              first=first, compile=compile)
    except KeyboardInterrupt:
        kept = f"{out} holds the {done} finished records of {total}" if done else f"no record had finished, {out} not written"
        typer.echo(f"hicgen: interrupted; {kept}", err=True)
        raise typer.Exit(130) from None
    typer.echo(_written_line(path, total), err=True)


def _decays_norm_note(ic: Path) -> str | None:
    """A note when the initial states of a run with decays carry the norm tuned for the chain without them."""
    from hicgen.truth import trento

    try:
        norm = trento.trento_config_of(ic).norm
    except InputError:  # the real trento program's files do not record it
        return None
    if norm != trento.TrentoConfig().norm:
        return None
    return (f"note: {ic} was made with the default --norm {norm:g}, tuned for the chain without decays; with --decays "
            f"its charged multiplicity comes out about twice ALICE's. For the measured one make the initial states "
            f"with 'hicgen truth trento --norm {trento.NORM_WITH_DECAYS:g}'")


def _written_line(path: Path, total: int) -> str:
    """The closing line: the records in the file, those whose switching surface ran into the hydro grid's edge, and
    those left out because their hydro went unstable."""
    import h5py

    with h5py.File(path, "r") as f:
        written = len(f["ic_index"])
        failed = sorted(int(i) for i in f.attrs.get("failed_ic_index", []))
        flagged = f["surface_at_grid_edge"][()]
        at_edge = sorted({int(i) for i in f["ic_index"][()][flagged]})
        edge_records, grid_max = int(flagged.sum()), float(f.attrs["hydro_grid_max"])
    line = f"wrote {written} spectra records to {path}"
    if edge_records:
        shown = ", ".join(map(str, at_edge[:10])) + (f" and {len(at_edge) - 10} more" if len(at_edge) > 10 else "")
        line += (f"; in {edge_records} of them the switching surface ran into the hydro grid's edge at {grid_max:g} fm "
                 f"and the spectrum misses what lay beyond (IC{'s' if len(at_edge) > 1 else ''} {shown}; field "
                 f"surface_at_grid_edge): run them with a larger --hydro-grid-max (docs/hydro.md)")
    if written < total:
        line += (f"; {total - written} of the {total} left out: the hydro went unstable for IC{'s' if len(failed) > 1 else ''} "
                 f"{', '.join(map(str, failed))} (file attribute failed_ic_index); docs/hydro.md, 'Hydro', says what "
                 f"is known and what to try")
    return line


@truth_app.command("merge")
def merge_cmd(
    inputs: list[Path] = typer.Argument(..., help="hicgen-spectra files of one production (hicgen truth hydro --first ..., or hicgen spectra --first ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Joined output file (.h5)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    renumber_ics: bool = typer.Option(False, "--renumber-ics", help="Join files made from different IC files: each IC file's ic_index is offset past the previous ones (recorded in the attributes)."),
    eta_s: str | None = typer.Option(None, "--eta-s", help="Keep only the records at these eta/s values (one value or a list 0,0.1,0.2)."),
) -> None:
    """Join spectra files made from one IC file by separate 'hicgen truth hydro' or 'hicgen spectra' jobs (or, with --renumber-ics, from several IC files)."""
    import h5py

    from hicgen.io.paths import check_input, check_output
    from hicgen.truth.spectra_data import merge_spectra

    for path in inputs:
        check_input(path, "spectra")
    check_output(out, overwrite, (".h5", ".hdf5"))
    path = merge_spectra(inputs, out, renumber_ics, None if eta_s is None else parse_eta_s(eta_s))
    typer.echo(f"merged {len(inputs)} files into {path}", err=True)
    with h5py.File(path, "r") as f:
        stopped = f.attrs.get("interrupted_parts")
    if stopped:
        typer.echo(f"hicgen: note: {stopped} {'was' if ',' not in stopped else 'were'} interrupted (attribute "
                   "interrupted_parts): unless other parts cover the rest of their ranges, the merged file lacks it; "
                   "run those ICs again with --first/--events and merge once more", err=True)
