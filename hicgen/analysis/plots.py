"""Report figures in the style of paper 004 (matplotlib, Agg backend): unit-area distributions with a
candidate/reference ratio panel and grey +-5 % / +-10 % bands, 2D ratio maps, Q-closure, flow and ROC plots.
Every function writes one PNG and returns its path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hicgen.analysis.metrics import unit_density
from hicgen.errors import require

REF_STYLE = {"color": "0.45", "lw": 1.8}
CAND_STYLE = {"color": "black", "lw": 1.2, "marker": "o", "ms": 3, "ls": "none"}
DPI = 90


def pyplot():
    """matplotlib.pyplot on the Agg backend in the report style; one line naming the 'validate' extra without it."""
    mpl = require("matplotlib", "validate")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 8, "legend.frameon": False})
    return plt


@dataclass
class Panel:
    """One distribution: reference and candidate samples (or bin counts when `binned`), bin edges, x label with
    units; optional log y, dashed interval lines, a note (panel title), tick labels at the bin centres, and
    `from_zero=False` to let the y axis start near the data (nearly flat distributions)."""

    ref: np.ndarray
    cand: np.ndarray
    edges: np.ndarray
    xlabel: str
    logy: bool = False
    binned: bool = False
    ylabel: str = "normalised to unit area"
    note: str = ""
    interval: tuple[float, float] | None = None
    ticklabels: tuple[str, ...] | None = None
    from_zero: bool = True

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(reference, candidate) bin counts."""
        if self.binned:
            return np.asarray(self.ref, np.float64), np.asarray(self.cand, np.float64)
        return np.histogram(self.ref, self.edges)[0].astype(np.float64), np.histogram(self.cand, self.edges)[0].astype(np.float64)


def ratio_bands(ax, edges) -> None:
    """The gray bands 1 +- 0.05 and 1 +- 0.10 of a ratio axis over x from edges[0] to edges[-1]."""
    ax.axhspan(0.90, 1.10, color="0.88", lw=0)
    ax.axhspan(0.95, 1.05, color="0.75", lw=0)
    ax.axhline(1.0, color="0.3", lw=0.8)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0.7, 1.3)


def _ratio_points(ax, centres, r, r_err, c, c_err) -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(r > 0, c / r, np.nan)
        err = np.where(r > 0, np.sqrt((c_err / np.where(r > 0, r, 1)) ** 2 + (c * r_err / np.where(r > 0, r, 1) ** 2) ** 2), np.nan)
    ax.errorbar(centres, ratio, err, **CAND_STYLE)
    off = np.clip(ratio, 0.72, 1.28)
    outside = np.isfinite(ratio) & (off != ratio)
    ax.plot(centres[outside], off[outside], marker="^", ls="none", ms=3, color="tab:red")


def distributions(panels: list[Panel], path: Path, labels: tuple[str, str], title: str = "", ncols: int = 3) -> Path:
    """Grid of unit-area histograms (reference line, candidate points with stat errors) over ratio panels;
    one legend for the figure, ratio points outside the panel drawn as red triangles at its edge."""
    plt = pyplot()
    ncols = min(ncols, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    width, height = 4.0 * ncols + (1.5 if ncols == 1 else 0.0), 3.7 * nrows + 0.5
    fig = plt.figure(figsize=(width, height))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.32, wspace=0.36, left=0.85 / width, right=1 - 0.15 / width,
                             top=1 - 0.55 / height, bottom=(0.75 if any(p.ticklabels for p in panels) else 0.45) / height)
    for k, p in enumerate(panels):
        inner = outer[divmod(k, ncols)].subgridspec(2, 1, height_ratios=[3, 1.2], hspace=0.06)
        top = fig.add_subplot(inner[0])
        bottom = fig.add_subplot(inner[1], sharex=top)
        centres = 0.5 * (p.edges[1:] + p.edges[:-1])
        ref_counts, cand_counts = p.counts()
        r, r_err = unit_density(ref_counts, p.edges)
        c, c_err = unit_density(cand_counts, p.edges)
        top.stairs(r, p.edges, label=labels[0], baseline=0 if p.from_zero else None, **REF_STYLE)
        top.errorbar(centres, c, c_err, label=labels[1], **CAND_STYLE)
        if p.logy:
            top.set_yscale("log")
        top.set_ylabel(p.ylabel, fontsize=8)
        top.tick_params(labelbottom=False)
        if p.interval is not None:
            for x in p.interval:
                top.axvline(x, ls="--", color="0.5", lw=0.8)
        if p.note:
            top.set_title(p.note, fontsize=8, loc="left")
        ratio_bands(bottom, p.edges)
        _ratio_points(bottom, centres, r, r_err, c, c_err)
        bottom.set_ylabel("cand. / ref.", fontsize=8)
        bottom.set_xlabel(p.xlabel)
        if p.ticklabels is not None:
            bottom.set_xticks(centres, p.ticklabels, rotation=60, fontsize=7)
        if k == 0:
            handles, names = top.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", ncol=1 if ncols == 1 else 2, fontsize=8 if ncols == 1 else 9, bbox_to_anchor=(1 - 0.1 / width, 1.0))
    if title:
        fig.text(0.02, 1 - 0.1 / height, title, ha="left", va="top", fontsize=11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def ratio_maps(maps: list[dict], path: Path, titles: list[str]) -> Path:
    """Candidate/reference 2D ratio maps (colour 0.8..1.2) with the reference 95 % intervals dashed and the
    mean/median scores in each title; each map dict comes from metrics.ratio_map plus 'xlabel', 'ylabel'."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(4.6 * len(maps), 4.0), squeeze=False)
    for ax, m, title in zip(axes[0], maps, titles):
        mesh = ax.pcolormesh(m["x_edges"], m["y_edges"], m["ratio"].T, cmap="RdBu_r", vmin=0.8, vmax=1.2)
        for x in m["x95"]:
            ax.axvline(x, ls="--", color="k", lw=0.8)
        for y in m["y95"]:
            ax.axhline(y, ls="--", color="k", lw=0.8)
        ax.set_xlabel(m["xlabel"])
        ax.set_ylabel(m["ylabel"])
        ax.set_title(f"{title}\nmean {m['mean']:.3f}, median {m['median']:.3f}")
        fig.colorbar(mesh, ax=ax, label="cand. / ref.")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def q_closure(reco: np.ndarray, event: np.ndarray, scores: dict, path: Path, label: str) -> Path:
    """Left: Q2 from particles vs event-table Q2 (x and y components); right: dQ distributions."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 4.0))
    lim = float(np.percentile(np.abs(event), 99.5)) * 1.1 or 1.0
    for k, (name, color) in enumerate((("x", "tab:blue"), ("y", "tab:orange"))):
        left.plot(event[:, k], reco[:, k], ".", ms=2, alpha=0.4, color=color,
                  label=f"$Q_{{2,{name}}}$: $\\rho$ = {scores[f'rho_{name}']:.4f}")
        delta = reco[:, k] - event[:, k]
        span = max(float(np.percentile(np.abs(delta), 99.5)), 0.05 * float(np.std(event[:, k])), 1e-3)
        right.hist(delta, np.linspace(-span, span, 60), histtype="step", color=color, lw=1.4,
                   label=f"$\\Delta Q_{{2,{name}}}$: mean {delta.mean():.2f}, RMS {scores[f'rms_{name}']:.2f} GeV")
    left.plot([-lim, lim], [-lim, lim], color="0.5", lw=0.8, ls="--")
    left.set_xlim(-lim, lim)
    left.set_ylim(-lim, lim)
    left.set_xlabel("$Q_2$ from the event table [GeV]")
    left.set_ylabel("$Q_2$ recomputed from particles [GeV]")
    left.legend(loc="upper left", markerscale=4)
    right.xaxis.set_major_locator(plt.MaxNLocator(5))
    right.set_xlabel(r"$\Delta Q_2 = Q_2^{\rm reco} - Q_2^{\rm event}$ [GeV]")
    right.set_ylabel("events")
    right.legend(loc="upper left", title=f"$\\langle\\cos 2\\Delta\\psi_2\\rangle$ = {scores['cos2dpsi']:.3f}")
    fig.suptitle(f"Q-vector closure: {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def draw_curves_with_ratio(top, bottom, x: np.ndarray, curves: list[dict]) -> list:
    """Draw `curves` (curves_with_ratio's dicts; an optional 'ratio_err' replaces the ratio error propagated from
    the two sides' errors, e.g. a paired bootstrap's) on a value axis and a ratio axis; returns the legend handles
    of the curves."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for k, curve in enumerate(curves):
        color = colors[k % len(colors)]
        shift = (k - (len(curves) - 1) / 2) * 0.04 * (np.ptp(x) / max(len(x) - 1, 1) if x.size > 1 else 1.0)
        top.fill_between(x, curve["ref"] - curve["ref_err"], curve["ref"] + curve["ref_err"], color=color, alpha=0.25, lw=0)
        top.plot(x, curve["ref"], color=color, lw=1.0, alpha=0.7)
        top.errorbar(x + shift, curve["cand"], curve["cand_err"], color=color, marker="o", ms=3.5, ls="none")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = curve["cand"] / curve["ref"]
            err = curve.get("ratio_err")
            if err is None:
                err = np.abs(ratio) * np.sqrt((curve["cand_err"] / curve["cand"]) ** 2 + (curve["ref_err"] / curve["ref"]) ** 2)
        bottom.errorbar(x + shift, ratio, err, color=color, marker="o", ms=3, ls="none")
        outside = np.isfinite(ratio) & ((ratio < 0.5) | (ratio > 1.5))
        bottom.plot((x + shift)[outside], np.clip(ratio[outside], 0.53, 1.47), marker="^", ls="none", ms=4, color=color)
        handles.append(Patch(color=color, alpha=0.6, label=curve["label"]))
    return handles


def curves_with_ratio(
    x: np.ndarray, curves: list[dict], path: Path, xlabel: str, ylabel: str, title: str = "",
    ticklabels: list[str] | None = None, labels: tuple[str, str] = ("reference", "candidate"),
) -> Path:
    """Reference (band: value +- error) and candidate (points with error bars) curves y(x) with a ratio panel.
    Each curve dict holds 'label', 'ref', 'ref_err', 'cand', 'cand_err' (arrays like x), one colour per curve;
    `ticklabels` names the x positions (e.g. centrality classes).  NaN points (e.g. imaginary cumulants) are
    left out."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.4, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.06})
    handles = draw_curves_with_ratio(top, bottom, x, curves)
    handles += [Patch(color="0.6", alpha=0.4, label=f"{labels[0]} (band)"),
                Line2D([], [], color="0.2", marker="o", ms=3.5, ls="none", label=f"{labels[1]} (points)")]
    step = np.diff(x).min() if x.size > 1 else 1.0
    ratio_bands(bottom, np.array([x[0] - 0.5 * step, x[-1] + 0.5 * step]))
    bottom.set_ylim(0.5, 1.5)
    top.set_ylabel(ylabel)
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    top.axhline(0, color="0.7", lw=0.6)
    if ticklabels is not None:
        bottom.set_xticks(x, ticklabels, fontsize=8)
    bottom.set_xlabel(xlabel)
    bottom.set_ylabel("cand. / ref.", fontsize=8)
    if title:
        top.set_title(title)
    fig.subplots_adjust(left=0.11, right=0.72, top=0.93, bottom=0.11)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def roc(curves: dict[str, dict], path: Path) -> Path:
    """ROC curves of the classifiers with their AUCs (diagonal = indistinguishable)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    for name, result in curves.items():
        ax.plot(result["fpr"], result["tpr"], lw=1.5,
                label=f"{name}: AUC = {result[f'auc_{name}']:.3f} $\\pm$ {result[f'auc_{name}_err']:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=0.8, label="random guess")
    ax.set_xlabel("false positive rate (reference called candidate)")
    ax.set_ylabel("true positive rate")
    ax.set_title("classifier tests on held-out events")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
