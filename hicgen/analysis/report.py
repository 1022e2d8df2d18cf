"""`validate`: every closure test of the papers on a reference and a candidate sample, written as
metrics.json, PNG figures and an index.html that shows them with the numbers; plus the --gate thresholds.

metrics.json holds the scalar scores at the top level (names in METRIC_NAMES; candidate-side values for
the closure metrics, whose reference-side values sit under details.reference_q_closure) and everything else
(per-column distances, per-class flow, chi2/ndf of every plotted histogram) under "details".
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

from hicgen.analysis import flow, metrics, plots
from hicgen.analysis.classifier import ClassifierConfig
from hicgen.analysis.jets import JetConfig
from hicgen.data.batch import EventBatch
from hicgen.data.features import relative_particle_features, particle_event_features
from hicgen.data.species import SPECIES, species_class
from hicgen.errors import InputError, OutputExistsError

FLOW_METRICS = ("v2_2_ratio", "v2_4_ratio", "v3_2_ratio", "v4_2_ratio", "v2_sp_ratio")
JET_METRICS = ("jet_rate_ratio", "jet_pt_chi2_ndf", "rho_a_chi2_ndf")
CLASSIFIER_METRICS = ("auc_event", "auc_event_err", "auc_particle", "auc_particle_err")
METRIC_NAMES = (
    "n_events_reference", "n_events_candidate", "mult_ratio", "mult_ratio_err", "mean_pt_ratio", "mean_pt_ratio_err",
    "w1_event_mean", "w1_particle_mean",
    "q_closure_rho_x", "q_closure_rho_y", "q_closure_rms_x", "q_closure_rms_y", "cos2dpsi",
    "species_max_abs_diff", "ratio_eta_pt_event_mean", "ratio_eta_pt_event_median", "ratio_n_sumpt_mean",
    "ratio_n_sumpt_median", "ratio_eta_pt_particle_mean", "ratio_eta_pt_particle_median",
    "ratio_phi_pt_particle_mean", "ratio_phi_pt_particle_median", "dphi_chi2_ndf",
) + FLOW_METRICS + JET_METRICS + CLASSIFIER_METRICS

EVENT_LABELS = {
    "b": ("impact parameter $b$ [fm]", False), "ncoll": (r"$N_{\rm coll}$", False), "npart": (r"$N_{\rm part}$", False),
    "mult": (r"$N_{\rm particles}$", False), "mean_pt": (r"$\langle p_{\rm T}\rangle$ [GeV]", False),
    "sum_pt": (r"$\sum p_{\rm T}$ [GeV]", False), "q2x": (r"$Q_{2,x}$ [GeV]", False), "q2y": (r"$Q_{2,y}$ [GeV]", False),
    "psi2": (r"$\psi_2$ [rad]", False), "mean_eta": (r"$\langle\eta\rangle$", False), "mean_phi": (r"$\langle\phi\rangle$ [rad]", False),
}


@dataclass(frozen=True)
class ValidateOptions:
    """Settings of one validation: sub-event eta gap, event limit, optional steps, seed, centrality classes [%],
    pT bins for differential flow [GeV], trigger threshold [GeV], sample labels, jet and classifier settings;
    `plots=False` writes metrics.json and index.html without figures (metrics-only runs, e.g. in tests)."""

    eta_gap: float = 1.0
    max_events: int | None = None
    jets: bool = True
    classifier: bool = True
    seed: int = 0
    centrality_edges: tuple[float, ...] = (0, 10, 20, 40, 60, 100)
    pt_edges: tuple[float, ...] = (0.2, 0.5, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0, 6.0)
    trigger_pt_min: float = 4.0
    labels: tuple[str, str] = ("reference", "candidate")
    jet: JetConfig = field(default_factory=JetConfig)
    classifier_config: ClassifierConfig = field(default_factory=ClassifierConfig)
    progress: bool = True
    plots: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.eta_gap) or self.eta_gap < 0:
            raise InputError(f"--eta-gap must be a number >= 0, got {self.eta_gap}")
        if self.max_events is not None and self.max_events < 10:
            raise InputError(f"--max-events must be at least 10, got {self.max_events}")
        edges = np.asarray(self.centrality_edges, float)
        if edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0 or edges[-1] > 100:
            raise InputError(f"centrality edges must increase within 0..100 %, got {self.centrality_edges}")
        if len(self.pt_edges) < 2 or np.any(np.diff(self.pt_edges) <= 0):
            raise InputError(f"pT edges must increase, got {self.pt_edges}")

    def metric_names(self) -> tuple[str, ...]:
        """The top-level metrics this configuration computes."""
        skip = (() if self.jets else JET_METRICS) + (() if self.classifier else CLASSIFIER_METRICS)
        return tuple(m for m in METRIC_NAMES if m not in skip)


# ---------------------------------------------------------------- gate


def load_gate(path: str | os.PathLike, options: ValidateOptions) -> dict[str, dict[str, float]]:
    """Read a JSON or TOML gate file {metric: {"min": x, "max": y}}; InputError on anything malformed,
    on unknown metric names and on metrics the options do not compute."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read gate file '{path}' ({exc.strerror}); check the path") from None
    try:
        gate = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
        raise InputError(f"gate file '{path}' is not valid {kind} ({exc}); write {{\"metric\": {{\"max\": 0.05}}}}") from None
    if not isinstance(gate, dict) or not gate:
        raise InputError(f"gate file '{path}' must map metric names to {{min/max}} tables, got {type(gate).__name__}")
    known = options.metric_names()
    for name, bounds in gate.items():
        if name not in METRIC_NAMES:
            raise InputError(f"gate file '{path}': unknown metric '{name}'; known metrics: {', '.join(METRIC_NAMES)}")
        if name not in known:
            raise InputError(f"gate file '{path}': metric '{name}' is not computed with --no-jets/--no-classifier; drop it or the option")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise InputError(f"gate file '{path}': '{name}' must be a table with 'min' and/or 'max', got {bounds!r}")
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"gate file '{path}': '{name}.{key}' must be a finite number, got {value!r}")
    return gate


def check_gate(result: dict[str, Any], gate: dict[str, dict[str, float]]) -> list[str]:
    """One line per failed threshold (a NaN value fails); empty when the candidate passes."""
    failures = []
    for name, bounds in gate.items():
        value = result.get(name, float("nan"))
        value = float("nan") if value is None else float(value)
        for key, limit in bounds.items():
            ok = value >= limit if key == "min" else value <= limit
            if not ok:  # NaN compares False
                failures.append(f"{name} = {value:.4g} fails {key} {limit:g}")
    return failures


# ---------------------------------------------------------------- helpers


def prepare_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """Create the report directory; refuse an existing non-empty one without `overwrite`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; give a directory for the report")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"report directory '{out}' is not empty; refusing to overwrite it (use --overwrite)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report directory '{out}' ({exc.strerror}); choose another --out") from None
    return out


@contextmanager
def report_dir(out_dir: str | os.PathLike, overwrite: bool) -> Iterator[Path]:
    """A hidden staging directory beside prepare_out_dir's, for the body to write the report into. When the body
    ends, the report's files move into the report directory one by one (os.replace, index.html last), so an
    existing report is replaced only by a complete one; then the earlier report's files that the new one did
    not write (e.g. its figures after --no-plots) are removed. When it fails or is interrupted, the staging
    directory is removed and the report directory is left as it was (one this made is removed again)."""
    made = not Path(out_dir).exists()
    out = prepare_out_dir(out_dir, overwrite)

    def remove_made() -> None:  # a directory this made, still empty: a refused or stopped run leaves none behind
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()

    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.part-", dir=out.parent))
    except OSError as exc:
        remove_made()
        raise InputError(f"cannot write next to the report directory '{out}' ({exc.strerror}); choose another --out") from None
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        remove_made()
        raise
    earlier = indexed_files(out / "index.html")
    written = {path.name for path in stage.iterdir()}
    for path in sorted(stage.iterdir(), key=lambda p: p.name == "index.html"):
        os.replace(path, out / path.name)
    stage.rmdir()
    for name in earlier - written:
        if (out / name).is_file():
            (out / name).unlink()


class _LinkedNames(HTMLParser):
    """The plain file names (no folder, scheme or hidden name) that a page's img src and a href attributes name."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if (tag, key) in {("img", "src"), ("a", "href")} and value and value[0] != "." and not any(c in value for c in "/\\:#?"):
                self.names.add(value)


def indexed_files(index: Path) -> set[str]:
    """The files of an earlier report: those its index.html shows or links to, with index.html itself; none
    when there is no index.html. report_dir removes those that the new report does not write, and nothing else
    (a user's own files in the directory stay)."""
    if not index.is_file():
        return set()
    parser = _LinkedNames()
    parser.feed(index.read_text(errors="replace"))
    return parser.names | {index.name}


def _check_sample(batch: EventBatch, label: str) -> None:
    missing = [c for c in ("pt", "eta", "phi") if c not in batch.particles]
    if missing:
        raise InputError(f"{label} sample has no particle column(s) {', '.join(missing)}; give a hicgen event file")
    if len(batch) < 10:
        raise InputError(f"{label} sample has {len(batch)} events; validation needs at least 10")


def _with_event_features(batch: EventBatch) -> EventBatch:
    """Fill event columns that can be computed from the particles when a format did not store them."""
    missing = {k: v for k, v in particle_event_features(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets).items() if k not in batch.events}
    return batch if not missing else EventBatch(events={**batch.events, **missing}, offsets=batch.offsets, particles=batch.particles)


def _edges(ref: np.ndarray, integer: bool = False, bins: int = 40) -> np.ndarray:
    lo, hi = metrics.reference_range(ref)
    if integer:
        step = max(1, int(np.ceil((hi - lo + 1) / bins)))
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + step + 0.5, step)
    return np.linspace(lo, hi, bins + 1)


def json_ready(value: Any) -> Any:
    """`value` with numpy arrays and scalars as lists and floats, and non-finite floats as None (JSON null)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


class _Steps:
    """Rich progress over the report's steps (silent when disabled)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self.progress.start()
            self.task = self.progress.add_task("validate", total=total)

    def step(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"validate: {text}", advance=1)

    def sub(self, text: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"validate: {text} {done}/{total}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


# ---------------------------------------------------------------- sections


def _event_section(ref: EventBatch, cand: EventBatch, out: Path, labels, result, details, figures) -> None:
    distances = metrics.w1_event(ref, cand)
    result["w1_event_mean"] = distances["mean"]
    details["w1_event"] = distances
    panels = []
    for name in metrics.event_columns_in_common(ref, cand):
        r = np.asarray(ref.events[name], float)
        xlabel, logy = EVENT_LABELS.get(name, (name, False))
        panels.append(plots.Panel(r, np.asarray(cand.events[name], float), _edges(r, name in metrics.COUNT_COLUMNS), xlabel, logy))
    figures.append((partial(plots.distributions, panels, out / "event_distributions.png", labels, "event level"),
                    f"Event-level distributions (unit area) and candidate/reference ratios; w1_event_mean = {distances['mean']:.4f} (W1 in units of the reference std)."))
    details["chi2_ndf"].update({f"event_{n}": metrics.chi2_ndf(*p.counts()) for n, p in zip(metrics.event_columns_in_common(ref, cand), panels)})


def _relative(batch: EventBatch) -> dict[str, np.ndarray]:
    return relative_particle_features(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets,
                                      batch.events["mean_pt"], batch.events["mean_eta"], batch.events["mean_phi"])


def _particle_section(ref: EventBatch, cand: EventBatch, out: Path, options: ValidateOptions, result, details, figures) -> None:
    means = metrics.mean_ratios(ref, cand)
    details["means"] = {label: means[label] for label in ("reference", "candidate")}
    for name in ("mult", "mean_pt"):
        result[f"{name}_ratio"], result[f"{name}_ratio_err"] = means[f"{name}_ratio"]["value"], means[f"{name}_ratio"]["err"]
    distances = metrics.w1_particle(ref, cand, seed=options.seed)
    result["w1_particle_mean"] = distances["mean"]
    details["w1_particle"] = distances
    rp, cp = ref.particles, cand.particles
    rr, cr = _relative(ref), _relative(cand)
    pt_hi = max(float(np.percentile(rp["pt"], 99.99)), 1.0)
    panels = [
        plots.Panel(rp["pt"], cp["pt"], np.linspace(0, pt_hi, 50), r"$p_{\rm T}$ [GeV]", logy=True),
        plots.Panel(rp["eta"], cp["eta"], _edges(rp["eta"]), r"$\eta$"),
        plots.Panel(rp["phi"], cp["phi"], np.linspace(-np.pi, np.pi, 41), r"$\phi$ [rad]"),
        plots.Panel(rr["pt_rel"], cr["pt_rel"], _edges(rr["pt_rel"]), r"$p_{\rm T}^{\rm rel} = \log(p_{\rm T}/\langle p_{\rm T}\rangle)$", logy=True),
        plots.Panel(rr["eta_rel"], cr["eta_rel"], _edges(rr["eta_rel"]), r"$\eta^{\rm rel} = \eta - \langle\eta\rangle$"),
        plots.Panel(rr["phi_rel"], cr["phi_rel"], np.linspace(-np.pi, np.pi, 41), r"$\phi^{\rm rel} = \phi - \langle\phi\rangle$ [rad]"),
    ]
    names = ("pt", "eta", "phi", "pt_rel", "eta_rel", "phi_rel")
    details["chi2_ndf"].update({f"particle_{n}": metrics.chi2_ndf(*p.counts()) for n, p in zip(names, panels)})
    figures.append((partial(plots.distributions, panels, out / "particle_distributions.png", options.labels, "particle level"),
                    f"Particle-level distributions; w1_particle_mean = {distances['mean']:.2e} (mean of W1 of pT [GeV], eta, sin phi, cos phi)."))
    if "pid" in rp and "pid" in cp:
        fr, fc = metrics.species_fractions(rp["pid"]), metrics.species_fractions(cp["pid"])
        diffs = [abs(fc[s] - fr[s]) for s in SPECIES if np.isfinite(fr[s]) and np.isfinite(fc[s])]
        result["species_max_abs_diff"] = float(max(diffs)) if diffs else float("nan")
        details["species_fractions"] = {"reference": fr, "candidate": fc}
        edges = np.arange(len(SPECIES) + 1) - 0.5
        species = plots.Panel(np.bincount(species_class(rp["pid"]), minlength=len(SPECIES)), np.bincount(species_class(cp["pid"]), minlength=len(SPECIES)),
                              edges, "species", logy=True, binned=True, ylabel="fraction of all particles", ticklabels=SPECIES)
        figures.append((partial(plots.distributions, [species], out / "species.png", options.labels, "species", ncols=1),
                        f"Species yields (fractions per charge in metrics.json); largest difference of a per-charge fraction = {result['species_max_abs_diff']:.4f}."))


def _maps_section(ref: EventBatch, cand: EventBatch, out: Path, result, figures) -> None:
    re, ce, rp, cp = ref.events, cand.events, ref.particles, cand.particles
    specs = [
        ("ratio_eta_pt_event", re["mean_pt"], re["mean_eta"], ce["mean_pt"], ce["mean_eta"], r"$\langle p_{\rm T}\rangle$ [GeV]", r"$\langle\eta\rangle$", "event: <eta> vs <pT>"),
        ("ratio_n_sumpt", re["sum_pt"], ref.multiplicity, ce["sum_pt"], cand.multiplicity, r"$\sum p_{\rm T}$ [GeV]", r"$N_{\rm particles}$", "event: N vs sum pT"),
        ("ratio_eta_pt_particle", rp["pt"], rp["eta"], cp["pt"], cp["eta"], r"$p_{\rm T}$ [GeV]", r"$\eta$", "particle: eta vs pT"),
        ("ratio_phi_pt_particle", rp["pt"], rp["phi"], cp["pt"], cp["phi"], r"$p_{\rm T}$ [GeV]", r"$\phi$ [rad]", "particle: phi vs pT"),
    ]
    maps = []
    for name, rx, ry, cx, cy, xlabel, ylabel, _ in specs:
        m = metrics.ratio_map(np.asarray(rx, float), np.asarray(ry, float), np.asarray(cx, float), np.asarray(cy, float))
        m.update(xlabel=xlabel, ylabel=ylabel)
        result[f"{name}_mean"], result[f"{name}_median"] = m["mean"], m["median"]
        maps.append(m)
    figures.append((partial(plots.ratio_maps, maps[:2], out / "ratio_maps_event.png", [s[-1] for s in specs[:2]]),
                    "Event-level candidate/reference ratio maps; dashed: 95 % intervals of the reference; scores = mean/median ratio over bins filled in both."))
    figures.append((partial(plots.ratio_maps, maps[2:], out / "ratio_maps_particle.png", [s[-1] for s in specs[2:]]),
                    "Particle-level candidate/reference ratio maps."))


def _closure_section(ref: EventBatch, cand: EventBatch, out: Path, labels, result, details, figures) -> None:
    if not all(k in b.events for b in (ref, cand) for k in ("q2x", "q2y")):
        details["q_closure"] = "skipped: no q2x/q2y event columns"
        return
    qc = metrics.q_closure(cand)
    for key in ("rho_x", "rho_y", "rms_x", "rms_y"):
        result[f"q_closure_{key}"] = qc[key]
    result["cos2dpsi"] = qc["cos2dpsi"]
    details["q_closure"] = {k: v for k, v in qc.items() if not isinstance(v, np.ndarray)}
    details["reference_q_closure"] = {k: v for k, v in metrics.q_closure(ref).items() if not isinstance(v, np.ndarray)}
    figures.append((partial(plots.q_closure, qc["reco"], qc["event"], qc, out / "q_closure.png", labels[1]),
                    f"Q2 recomputed from the candidate's particles vs its event table: rho_x = {qc['rho_x']:.4f}, rho_y = {qc['rho_y']:.4f}, "
                    f"RMS = ({qc['rms_x']:.3g}, {qc['rms_y']:.3g}) GeV, <cos 2 dpsi2> = {qc['cos2dpsi']:.4f}."))


def _dphi_section(ref: EventBatch, cand: EventBatch, out: Path, options: ValidateOptions, result, details, figures) -> None:
    dphi_edges = np.linspace(-np.pi, np.pi, 33)
    top = max(float(np.percentile(ref.particles["pt"], 99.999)), options.trigger_pt_min + 2)
    trig_edges = np.linspace(options.trigger_pt_min, top, 7)
    hr, nr = metrics.dphi_pairs_histogram(ref, dphi_edges, trig_edges, options.trigger_pt_min)
    hc, nc = metrics.dphi_pairs_histogram(cand, dphi_edges, trig_edges, options.trigger_pt_min)
    details["dphi"] = {"triggers_reference": nr, "triggers_candidate": nc}
    if nr == 0 or nc == 0:
        result["dphi_chi2_ndf"] = float("nan")
        return
    # pairs are not independent, so this chi2 (Poisson errors on pair counts) is a relative score only
    result["dphi_chi2_ndf"] = metrics.chi2_ndf(hr.sum(1), hc.sum(1))
    panel = plots.Panel(hr.sum(1), hc.sum(1), dphi_edges, r"$\Delta\phi = \phi_{\rm trig} - \phi_{\rm assoc}$ [rad]", binned=True,
                        note=f"$p_{{\\rm T}}^{{\\rm trig}}$ > {options.trigger_pt_min:g} GeV, {nr} / {nc} triggers", from_zero=False)
    m = metrics.histogram_ratio(hr, hc, dphi_edges, trig_edges)
    m.update(xlabel=panel.xlabel, ylabel=r"$p_{\rm T}^{\rm trig}$ [GeV]", x95=(-np.pi, np.pi), y95=(trig_edges[0], trig_edges[-1]))
    figures.append((partial(plots.distributions, [panel], out / "dphi.png", options.labels, "two-particle correlation", ncols=1),
                    f"Two-particle dphi for triggers with pT > {options.trigger_pt_min:g} GeV, all associated particles of the event."))
    figures.append((partial(plots.ratio_maps, [m], out / "dphi_map.png", ["(dphi, trigger pT)"]), "Candidate/reference ratio of the (dphi, trigger pT) pair map."))


def _flow_section(ref: EventBatch, cand: EventBatch, out: Path, options: ValidateOptions, result, details, figures) -> None:
    pt_edges = np.asarray(options.pt_edges, float)
    centres = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    summaries = {}
    for key, batch in (("reference", ref), ("candidate", cand)):
        if "centrality" in ref.events and "centrality" in cand.events:
            percentile = np.asarray(batch.events["centrality"], float)
        else:
            percentile = flow.centrality_percentile(ref.multiplicity, batch.multiplicity)
        classes = [("0-100%", np.ones(len(batch), bool))] + flow.centrality_classes(percentile, options.centrality_edges)
        fp = flow.from_particles(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets, options.eta_gap)
        summaries[key] = flow.flow_summary(fp, classes, pt_edges)
    details["flow"] = summaries
    all_r, all_c = summaries["reference"]["cumulants"]["0-100%"], summaries["candidate"]["cumulants"]["0-100%"]
    sp_r, sp_c = summaries["reference"]["v2_sp"], summaries["candidate"]["v2_sp"]
    pairs = {f"v{n}_{k}_ratio": (all_r[f"n={n}"][f"v{{{k}}}"], all_r[f"n={n}"][f"v{{{k}}}_err"], all_c[f"n={n}"][f"v{{{k}}}"], all_c[f"n={n}"][f"v{{{k}}}_err"])
             for n, k in ((2, 2), (2, 4), (3, 2), (4, 2))}
    pairs["v2_sp_ratio"] = (sp_r["vn_int"], sp_r["vn_int_err"], sp_c["vn_int"], sp_c["vn_int_err"])
    details["flow_ratio_errors"] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, values in pairs.items():
            r, r_err, c, c_err = np.asarray(values, dtype=np.float64)
            result[name] = float(c / r)
            details["flow_ratio_errors"][name] = float(abs(c / r) * np.sqrt((c_err / c) ** 2 + (r_err / r) ** 2))
    figures.append((partial(plots.curves_with_ratio, centres, [{"label": r"$v_2\{\rm SP\}$", "ref": sp_r["vn"], "ref_err": sp_r["vn_err"], "cand": sp_c["vn"], "cand_err": sp_c["vn_err"]}],
                                            out / "v2_sp_pt.png", r"$p_{\rm T}$ [GeV]", r"$v_2\{\rm SP\}(p_{\rm T})$",
                                            f"two sub-events, $|\\Delta\\eta|$ > {options.eta_gap:g}, all events", labels=options.labels),
                    f"v2{{SP}}(pT) (paper 004's estimator, pT-weighted sub-event planes, eta gap {options.eta_gap:g}); integrated ratio = {result['v2_sp_ratio']:.3f}."))
    labels = summaries["reference"]["classes"][1:]
    x = np.arange(len(labels), dtype=float)
    for n in flow.HARMONICS:
        curves = []
        for k in flow.ORDERS:
            get = lambda s, what: np.array([s["cumulants"][c][f"n={n}"][what] for c in labels])  # noqa: E731
            curves.append({"label": f"$v_{n}\\{{{k}\\}}$", "ref": get(summaries["reference"], f"v{{{k}}}"), "ref_err": get(summaries["reference"], f"v{{{k}}}_err"),
                           "cand": get(summaries["candidate"], f"v{{{k}}}"), "cand_err": get(summaries["candidate"], f"v{{{k}}}_err")})
        ep = lambda s, what: np.array([s["ep"][c][f"n={n}"][what] for c in labels])  # noqa: E731
        curves.append({"label": f"$v_{n}\\{{\\rm EP\\}}$", "ref": ep(summaries["reference"], "vn_int"), "ref_err": ep(summaries["reference"], "vn_int_err"),
                       "cand": ep(summaries["candidate"], "vn_int"), "cand_err": ep(summaries["candidate"], "vn_int_err")})
        figure = partial(plots.curves_with_ratio, x, curves, out / f"v{n}_centrality.png", "centrality class", f"$v_{n}$", f"$v_{n}$ from cumulants and sub-event planes", ticklabels=labels, labels=options.labels)
        figures.append((figure, f"v{n}{{2,4,6,8}} (generic-framework cumulants) and v{n}{{EP}} per centrality class (missing points: imaginary cumulant)."))
    curves = []
    for n in flow.HARMONICS:
        d_r, d_c = summaries["reference"]["differential"]["0-100%"][f"n={n}"], summaries["candidate"]["differential"]["0-100%"][f"n={n}"]
        curves.append({"label": f"$v_{n}\\{{2\\}}$", "ref": d_r["v{2}"], "ref_err": d_r["v{2}_err"], "cand": d_c["v{2}"], "cand_err": d_c["v{2}_err"]})
    figures.append((partial(plots.curves_with_ratio, centres, curves, out / "vn_pt.png", r"$p_{\rm T}$ [GeV]", r"$v_n\{2\}(p_{\rm T})$", "differential two-particle cumulants, all events", labels=options.labels),
                    "Differential v_n{2}(pT), n = 2, 3, 4."))


def _jet_section(ref: EventBatch, cand: EventBatch, out: Path, options: ValidateOptions, steps: _Steps, result, details, figures) -> None:
    from hicgen.analysis.jets import find_jets

    found = {key: find_jets(batch, options.jet, lambda d, t, key=key: steps.sub(f"jets ({key}, areas)", d, t))
             for key, batch in (("reference", ref), ("candidate", cand))}
    jr, jc = found["reference"]["jets"], found["candidate"]["jets"]
    hr, hc = found["reference"]["hard"], found["candidate"]["hard"]
    result["jet_rate_ratio"] = (jc["pt"].size / len(cand)) / (jr["pt"].size / len(ref)) if jr["pt"].size else float("nan")
    details["jets"] = {"n_jets_reference": int(jr["pt"].size), "n_jets_candidate": int(jc["pt"].size),
                       "n_hard_reference": int(hr["pt"].size), "n_hard_candidate": int(hc["pt"].size), "config": asdict(options.jet)}
    if jr["pt"].size < 2 or jc["pt"].size < 2:
        result["jet_pt_chi2_ndf"] = result["rho_a_chi2_ndf"] = float("nan")
        return
    pt_lo = options.jet.pt_min
    note = f"anti-$k_t$ R = {options.jet.radius:g}, $p_{{\\rm T}}$ > {pt_lo:g} GeV"
    panels = [
        plots.Panel(jr["pt"], jc["pt"], np.linspace(pt_lo, max(np.percentile(jr["pt"], 99.8), pt_lo + 5), 30), r"$p_{\rm T}^{\rm jet}$ [GeV]", logy=True, note=note),
        plots.Panel(jr["eta"], jc["eta"], _edges(jr["eta"], bins=24), r"$\eta^{\rm jet}$"),
        plots.Panel(jr["phi"], jc["phi"], np.linspace(-np.pi, np.pi, 25), r"$\phi^{\rm jet}$ [rad]"),
        plots.Panel(jr["e"], jc["e"], np.linspace(pt_lo, max(np.percentile(jr["e"], 99.8), pt_lo + 5), 30), r"$E^{\rm jet}$ [GeV]", logy=True),
        plots.Panel(jr["mass"], jc["mass"], np.linspace(0, max(np.percentile(jr["mass"], 99.8), 1.0), 30), r"$m^{\rm jet}$ [GeV]"),
        plots.Panel(jr["n_constituents"], jc["n_constituents"], _edges(jr["n_constituents"], integer=True, bins=30), "jet constituents"),
    ]
    names = ("pt", "eta", "phi", "e", "mass", "n_constituents")
    details["chi2_ndf"].update({f"jet_{n}": metrics.chi2_ndf(*p.counts()) for n, p in zip(names, panels)})
    result["jet_pt_chi2_ndf"] = details["chi2_ndf"]["jet_pt"]
    figures.append((partial(plots.distributions, panels, out / "jets.png", options.labels, "inclusive charged-particle jets"),
                    f"Anti-kt R = {options.jet.radius:g} jets on charged particles with pT > {pt_lo:g} GeV ({jr['pt'].size} / {jc['pt'].size} jets); jet rate ratio = {result['jet_rate_ratio']:.3f}."))
    if hr["pt"].size < 2 or hc["pt"].size < 2:
        result["rho_a_chi2_ndf"] = float("nan")
        return
    hard_note = f"$p_{{\\rm T}}^{{\\rm jet}}$ > {options.jet.hard_pt_min:g} GeV"
    hard = [
        plots.Panel(hr["rho_a"], hc["rho_a"], np.linspace(0, max(np.percentile(hr["rho_a"], 99.5), 0.5), 20), r"$\rho A_{\rm jet}$ [GeV]", note=hard_note),
        plots.Panel(hr["dr_wta"], hc["dr_wta"], np.linspace(0, options.jet.radius, 20), r"$\Delta R_{\rm WTA-std}$"),
        plots.Panel(hr["dr_sd"], hc["dr_sd"], np.linspace(0, min(max(np.percentile(hr["dr_sd"], 99.5), 0.02), options.jet.radius), 20), rf"$\Delta R_{{\rm SD}}$ ($z_{{\rm cut}}$ = {options.jet.zcut:g})", logy=True),
        plots.Panel(hr["angularity"], hc["angularity"], np.linspace(0, max(np.percentile(hr["angularity"], 99.5), 0.05), 20), rf"angularity $\lambda_{{{options.jet.alpha:g}}}^{{\kappa=1}}$"),
    ]
    names = ("rho_a", "dr_wta", "dr_sd", "angularity")
    details["chi2_ndf"].update({f"jet_{n}": metrics.chi2_ndf(*p.counts()) for n, p in zip(names, hard)})
    result["rho_a_chi2_ndf"] = details["chi2_ndf"]["jet_rho_a"]
    figures.append((partial(plots.distributions, hard, out / "jet_substructure.png", options.labels, "jets above the area threshold", ncols=2),
                    f"rho*A (median kt background, active areas), WTA and Soft-Drop axis displacements and angularity for jets with pT > {options.jet.hard_pt_min:g} GeV "
                    f"({hr['pt'].size} / {hc['pt'].size} jets)."))


def _classifier_section(ref: EventBatch, cand: EventBatch, out: Path, options: ValidateOptions, result, details, figures) -> None:
    from hicgen.analysis.classifier import event_classifier, particle_classifier

    columns = [c for c in metrics.event_columns_in_common(ref, cand) if np.std(ref.events[c]) > 0]
    curves = {"event": event_classifier(ref, cand, columns, options.classifier_config),
              "particle": particle_classifier(ref, cand, options.classifier_config)}
    for name, res in curves.items():
        result[f"auc_{name}"], result[f"auc_{name}_err"] = res[f"auc_{name}"], res[f"auc_{name}_err"]
    details["classifier"] = {"event_columns": columns, "config": asdict(options.classifier_config)}
    figures.append((partial(plots.roc, curves, out / "roc.png"),
                    f"Classifier tests on held-out events (15 %): auc_event = {result['auc_event']:.3f}, auc_particle = {result['auc_particle']:.3f} "
                    f"(+- {result['auc_event_err']:.3f} expected if indistinguishable)."))


# ---------------------------------------------------------------- driver


def _load(sample: EventBatch | str | os.PathLike, label: str, max_events: int | None) -> EventBatch:
    if not isinstance(sample, EventBatch):
        from hicgen.io import read_events
        from hicgen.io.paths import check_input

        sample = read_events(check_input(sample, label))
    _check_sample(sample, label)
    if max_events is not None and len(sample) > max_events:
        sample = sample.slice(0, max_events)
    return _with_event_features(sample)


def validate(reference: EventBatch | str | os.PathLike, candidate: EventBatch | str | os.PathLike, out_dir: str | os.PathLike,
             options: ValidateOptions = ValidateOptions(), overwrite: bool = False) -> dict[str, Any]:
    """Run every closure test, write metrics.json, the PNGs and index.html into `out_dir`; return the metrics
    (top-level scalars plus 'details')."""
    with report_dir(out_dir, overwrite) as out:
        steps = _Steps(options.progress, 8 + options.jets + options.classifier)
        try:
            steps.step("reading samples")
            ref = _load(reference, "reference", options.max_events)
            cand = _load(candidate, "candidate", options.max_events)
            result: dict[str, Any] = {"n_events_reference": len(ref), "n_events_candidate": len(cand)}
            details: dict[str, Any] = {"chi2_ndf": {}, "labels": list(options.labels), "options": {k: v for k, v in asdict(options).items() if k not in ("jet", "classifier_config")}}
            figures: list[tuple[Path, str]] = []
            steps.step("event level")
            _event_section(ref, cand, out, options.labels, result, details, figures)
            steps.step("particle level")
            _particle_section(ref, cand, out, options, result, details, figures)
            steps.step("Q-vector closure")
            _closure_section(ref, cand, out, options.labels, result, details, figures)
            steps.step("2D ratio maps")
            _maps_section(ref, cand, out, result, figures)
            steps.step("two-particle correlations")
            _dphi_section(ref, cand, out, options, result, details, figures)
            steps.step("flow")
            _flow_section(ref, cand, out, options, result, details, figures)
            if options.jets:
                steps.step("jets")
                _jet_section(ref, cand, out, options, steps, result, details, figures)
            if options.classifier:
                steps.step("classifiers")
                _classifier_section(ref, cand, out, options, result, details, figures)
            steps.step("plots and report")
            result = {name: result.get(name, float("nan")) for name in options.metric_names()}
            result["details"] = details
            (out / "metrics.json").write_text(json.dumps(json_ready(result), indent=1, allow_nan=False))
            rendered = []
            for k, (draw, caption) in enumerate(figures if options.plots else []):
                steps.sub("plots", k + 1, len(figures))
                rendered.append((draw(), caption))
            write_index(out, result, rendered, options.labels)
        finally:
            steps.close()
    return result


def write_index(out: Path, result: dict[str, Any], figures: list[tuple[Path, str]], labels: tuple[str, str]) -> Path:
    """index.html: the scalar metrics table, then every figure with its caption."""
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{'n/a' if v is None or (isinstance(v, float) and not math.isfinite(v)) else f'{v:.5g}'}</td></tr>"
                     for k, v in result.items() if k != "details")
    figs = "\n".join(f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"><figcaption>{html.escape(c)}</figcaption></figure>' for p, c in figures)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hicgen validate: {html.escape(labels[1])} vs {html.escape(labels[0])}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:auto}} table{{border-collapse:collapse}} td{{border:1px solid #ccc;padding:2px 8px}}
figure{{margin:24px 0}} img{{max-width:100%}} figcaption{{color:#333}}</style></head><body>
<h1>hicgen validate</h1><p>reference: <b>{html.escape(labels[0])}</b>, candidate: <b>{html.escape(labels[1])}</b>. All numbers also in <a href="metrics.json">metrics.json</a>.</p>
<h2>Metrics</h2><table>{rows}</table>
<h2>Figures</h2>
{figs}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return path
