"""`hicgen validate REFERENCE CANDIDATE --out report/`: the papers' closure tests with plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hicgen.cli.app import COVERAGE_HELP, app, centrality_calibration_of, parse_count


@app.command("validate")
def validate(
    reference: Path = typer.Argument(..., help="Reference events (.h5, .hepmc, .root), e.g. a truth sample."),
    candidate: Path = typer.Argument(..., help="Candidate events to compare with the reference (any hicgen format)."),
    out: Path = typer.Option(..., "--out", "-o", help="Report directory (metrics.json, PNGs, index.html)."),
    gate: Optional[Path] = typer.Option(None, "--gate", help='JSON/TOML thresholds, e.g. {"auc_event": {"max": 0.6}}; a failure exits 1.'),
    eta_gap: Optional[float] = typer.Option(None, "--eta-gap", help="Pseudorapidity gap between the two sub-events of v2{SP} and v_n{EP} [default: 1.0]."),
    max_events: Optional[str] = typer.Option(None, "--max-events", help="Use at most this many events of each sample, e.g. 5000 or 1e4."),
    no_jets: bool = typer.Option(False, "--no-jets", help="Skip the fastjet analyses."),
    no_classifier: bool = typer.Option(False, "--no-classifier", help="Skip the classifier tests."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Write metrics.json and index.html without figures (quick CI gates)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the classifier splits, initialisation and particle subsampling."),
    centrality_ic: Optional[Path] = typer.Option(
        None, "--centrality-ic", help="Spectra files: centrality classes from this min-bias trento file (the "
        "percentile of an IC's TRENTo multiplicity in it, scaled to the Pb-Pb cross section it covers). Default: the "
        "candidate's centrality column, else percentiles among the reference's ICs."),
    coverage: Optional[float] = typer.Option(None, "--coverage", help=COVERAGE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing non-empty report directory."),
) -> None:
    """Compare two event samples: distributions, W1 distances, Q closure, flow, jets, classifier AUCs; or two
    hicgen-spectra files (hicgen truth hydro, hicgen spectra): the spectra closure per eta/s and centrality."""
    from hicgen.analysis.report import ValidateOptions, check_gate, load_gate
    from hicgen.analysis.report import validate as run_validation
    from hicgen.analysis.classifier import ClassifierConfig
    from hicgen.analysis.spectra_closure import decays_note, is_spectra_file, summary_lines, validate_spectra
    from hicgen.errors import InputError
    from hicgen.io import event_format
    from hicgen.io.paths import check_input

    for path, what in ((reference, "reference"), (candidate, "candidate")):
        check_input(path, what)
        event_format(path)
    spectra = [is_spectra_file(path) for path in (reference, candidate)]
    if any(spectra):
        if not all(spectra):
            spectra_path, other = (reference, candidate) if spectra[0] else (candidate, reference)
            raise InputError(f"'{spectra_path}' holds binned spectra but '{other}' does not; compare two spectra files "
                             "(hicgen truth hydro, hicgen spectra) or two particle samples")
        particle_only = [name for name, given in (("--gate", gate is not None), ("--max-events", max_events is not None),
                                                  ("--eta-gap", eta_gap is not None)) if given]
        if particle_only:  # they would be ignored; --no-jets and --no-classifier have nothing to skip here
            one = len(particle_only) == 1
            raise InputError(f"{' and '.join(particle_only)} appl{'ies' if one else 'y'} to particle samples; drop "
                             f"{'it' if one else 'them'} when comparing spectra files")
        calibration = centrality_calibration_of(centrality_ic, coverage)
        metrics = validate_spectra(reference, candidate, out, plots=not no_plots, seed=seed, overwrite=overwrite,
                                   calibration=calibration)
        if note := decays_note(reference, candidate):  # after the checks: a refused input gets its one line only
            typer.echo(note, err=True)
        typer.echo("\n".join(summary_lines(metrics["details"]["results"])))
        typer.echo(f"wrote {out / 'index.html'} and {out / 'metrics.json'}")
        return
    spectra_only = [name for name, given in (("--centrality-ic", centrality_ic is not None),
                                             ("--coverage", coverage is not None)) if given]
    if spectra_only:  # particle samples take their centrality from their own column
        raise InputError(f"{' and '.join(spectra_only)} appl{'ies' if len(spectra_only) == 1 else 'y'} to spectra "
                         "files; particle samples are classed by their centrality column")
    gap = {} if eta_gap is None else {"eta_gap": eta_gap}  # else ValidateOptions' default
    options = ValidateOptions(
        **gap, max_events=None if max_events is None else parse_count(max_events, "--max-events"),
        jets=not no_jets, classifier=not no_classifier, plots=not no_plots, seed=seed,
        labels=(f"reference: {reference.name}", f"candidate: {candidate.name}"), classifier_config=ClassifierConfig(seed=seed),
    )
    thresholds = load_gate(gate, options) if gate is not None else None
    result = run_validation(reference, candidate, out, options, overwrite=overwrite)
    typer.echo(f"wrote {out / 'index.html'} and {out / 'metrics.json'}")
    if thresholds is not None:
        failures = check_gate(result, thresholds)
        for line in failures:
            typer.echo(f"hicgen: gate failed: {line}", err=True)
        if failures:
            raise typer.Exit(1)
        typer.echo(f"gate passed ({len(thresholds)} metrics)")
