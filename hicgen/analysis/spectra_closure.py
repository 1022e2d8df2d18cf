"""Closure of binned (pT, phi) spectra against a reference, per eta/s and centrality class (issue 7's "Must show").

Used by benchmarks/spectra_closure.py (the spectra model against hydro records on held-out ICs) and by
`hicgen validate` when both its inputs are hicgen-spectra files. Per trained eta/s and per centrality class,
as candidate / reference ratios with paired-bootstrap errors over initial states:

  1 particle:  multiplicity (sum of counts) and <pT> (count-weighted bin centres)
  2 particles: v2{2}, v3{2}, v4{2};  4: v2{4}, v3{4};  6: v2{6};  8: v2{8};  and the cumulant ratios v2{6}/v2{4},
               v2{8}/v2{6}
  the normalized four-particle cumulants nc_n{4} = c_n{4} / c_n{2}^2 (n = 2, 3), compared as differences
  flow correlations (paper 000's supplemental; ALICE's definitions): the normalized symmetric cumulants
               NSC(m,2) = (<<cos(m phi1 + 2 phi2 - m phi3 - 2 phi4)>> - <<2>>_m <<2>>_2) / (<<2>>_m <<2>>_2), m = 3, 4,
               compared as differences; the 3-particle nonlinear response v4,22 = <<cos(4 phi1 - 2 phi2 - 2 phi3)>> /
               <<4>>_2^1/2 and its event-plane correlation rho4,22 = v4,22 / v4{2}
  v_n{2}(pT), n = 2, 3, in 8 bins of 0.25 GeV; the largest |ratio - 1| among the bins centred in the bulk

from the histograms (Q-vectors of the binned spectrum, generic framework: hicgen.analysis.flow) and, where both
sides have smooth spectra, from those (per-IC flow of the expected distribution, free of counting noise; every one
of an IC's K candidate spectra counts as one event), with the flow-vector response (slope of V_n(candidate) on
V_n(reference) and the rms residual; with K > 1 the rms spread of V_n among an IC's samples).
Targets (issue 7): flow within 5 %, multiplicity and <pT> within 2 %.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hicgen.analysis.flow import (
    FlowParticles, centrality_classes, centrality_percentile, correlator_terms, cumulant_from_correlators, differential_flow,
    flow_from_cumulant, from_spectra, spectra_flow_vectors, symmetric_harmonics,
)
from hicgen.errors import InputError

if TYPE_CHECKING:
    from hicgen.truth.trento import CentralityCalibration

CLASSES = (0, 5, 10, 20, 30, 40, 50, 60, 70)
TARGET = {"1": 0.02, "2": 0.05, "3": None, "4": 0.05, "6": None, "8": None}
CUMULANT_ORDERS = {2: (2, 4, 6, 8), 3: (2, 4), 4: (2,)}  # harmonic n: the orders k of its v_n{k} from the histograms
MIXED_HARMONICS = {"32": (3, 2, -3, -2), "42": (4, 2, -4, -2), "422": (4, -2, -2)}  # the flow correlations' correlators


def cumulant_terms(fp: FlowParticles) -> dict[str, np.ndarray]:
    """Per-event numerators and denominators (B,) of the correlators of CUMULANT_ORDERS (num{n}_{k}, den{n}_{k})
    and of MIXED_HARMONICS (num_{key}, den_{key})."""
    out = {}
    for n, orders in CUMULANT_ORDERS.items():
        for k in orders:
            num, den = correlator_terms(fp, symmetric_harmonics(n, k))
            out[f"num{n}_{k}"], out[f"den{n}_{k}"] = num.real, den
    for key, harmonics in MIXED_HARMONICS.items():
        num, den = correlator_terms(fp, harmonics)
        out[f"num_{key}"], out[f"den_{key}"] = num.real, den
    return out


def flow_correlations(two: dict[int, float], four: dict[int, float], three_422: float, four_22: float,
                      v4: float) -> dict[str, float]:
    """NSC(3,2), NSC(4,2), v4,22 and rho4,22 (module docstring) from the averaged correlators: two {n: <<2>>_n},
    four {m: <<4>>_{m,2}}, three_422 = <<cos(4 phi1 - 2 phi2 - 2 phi3)>>, four_22 = <<4>>_2, v4 = v4{2}. The same
    formulas serve the smooth spectra, with the per-IC moments of their flow vectors for the correlators."""
    with np.errstate(invalid="ignore", divide="ignore"):
        obs = {f"NSC({m},2)": float((four[m] - two[m] * two[2]) / (two[m] * two[2])) for m in (3, 4)}
        obs["v4,22"] = float(three_422 / np.sqrt(four_22)) if four_22 > 0 else float("nan")
        obs["rho4,22"] = float(obs["v4,22"] / v4)
    return obs


def per_event_sums(spectra: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event additive quantities (B, ...) from which every integrated observable is a ratio of sums."""
    ptc = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    return {"mult": spectra.sum(axis=(1, 2)), "sum_pt": (spectra.sum(axis=2) * ptc).sum(axis=1),
            "one": np.ones(len(spectra)), **cumulant_terms(from_spectra(spectra, pt_edges, phi_edges))}


def observables(s: dict[str, np.ndarray]) -> dict[str, float]:
    """Observables from summed per-event quantities (the sums over a (resampled) event set)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        obs = {"mult": s["mult"] / s["one"], "<pT>": s["sum_pt"] / s["mult"]}
        for n, orders in CUMULANT_ORDERS.items():
            cum = cumulant_from_correlators({k: s[f"num{n}_{k}"] / s[f"den{n}_{k}"] for k in orders})
            for k in orders:
                obs[f"v{n}{{{k}}}"] = flow_from_cumulant(cum[k], k)
            if 4 in orders:
                obs[f"nc{n}{{4}}"] = cum[4] / cum[2] ** 2
        obs["v2{6}/v2{4}"] = obs["v2{6}"] / obs["v2{4}"]
        obs["v2{8}/v2{6}"] = obs["v2{8}"] / obs["v2{6}"]
        mean = lambda key: s[f"num{key}"] / s[f"den{key}"]  # noqa: E731
        obs.update(flow_correlations({n: mean(f"{n}_2") for n in (2, 3, 4)}, {m: mean(f"_{m}2") for m in (3, 4)},
                                     mean("_422"), mean("2_4"), obs["v4{2}"]))
    return {k: float(v) for k, v in obs.items()}


GROUP = {"mult": "1", "<pT>": "1", "v2{2}": "2", "v3{2}": "2", "v4{2}": "2", "v4,22": "3", "rho4,22": "3",
         "v2{4}": "4", "v3{4}": "4", "v2{6}": "6", "v2{8}": "8", "v2{6}/v2{4}": "6", "v2{8}/v2{6}": "8", "nc2{4}": "4",
         "nc3{4}": "4", "NSC(3,2)": "4", "NSC(4,2)": "4"}
AS_DIFFERENCES = ("nc", "NSC")  # normalized cumulants cross zero: compared as model - reference
RATIO_PANEL = [name for name in GROUP if not name.startswith(AS_DIFFERENCES)]


def per_ic(sums: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-event sums (N * K,) -> per-IC sums (N,) over each IC's K consecutive histograms."""
    return {name: v.reshape(-1, k).sum(axis=1) for name, v in sums.items()}


def paired_bootstrap(ref: dict, model: dict, mask: np.ndarray, n_boot: int, rng: np.random.Generator,
                     measure) -> dict:
    """{observable: {reference, model, ratio, ratio_err, bootstrap_valid, difference, difference_err, reference_err,
    model_err}}: `measure(sums) -> {name: value}` of the per-IC sums over the ICs in mask, and the spreads of the
    model / reference ratio, of the difference model - reference and of each side over paired bootstrap resamplings
    (the same resampled ICs on both sides)."""
    idx = np.flatnonzero(mask)
    total = lambda d, w: {k: float(np.dot(w, v[idx])) for k, v in d.items()}  # noqa: E731
    ones = np.ones(idx.size)
    r0, m0 = measure(total(ref, ones)), measure(total(model, ones))
    boots = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, idx.size, idx.size), minlength=idx.size).astype(float)
        rb, mb = measure(total(ref, w)), measure(total(model, w))
        with np.errstate(invalid="ignore", divide="ignore"):  # a reference of 0 (e.g. no v4): a ratio of inf or NaN
            boots.append({k: (np.float64(mb[k]) / rb[k], mb[k] - rb[k], rb[k], mb[k]) for k in r0})
    spread = lambda x: float(x[np.isfinite(x)].std(ddof=1)) if np.isfinite(x).sum() > 1 else float("nan")  # noqa: E731
    out = {}
    for k in r0:
        ratios, differences, references, models = np.array([b[k] for b in boots]).T
        out[k] = {"reference": r0[k], "model": m0[k], "ratio": m0[k] / r0[k] if r0[k] else float("nan"),
                  "ratio_err": spread(ratios), "bootstrap_valid": int(np.isfinite(ratios).sum()),
                  "difference": m0[k] - r0[k], "difference_err": spread(differences),
                  "reference_err": spread(references), "model_err": spread(models)}
    return out


def paired_ratios(ref: dict, model: dict, mask: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict:
    """Histogram observables (`observables`) over the ICs in mask, with their group (particles per correlation)."""
    out = paired_bootstrap(ref, model, mask, n_boot, rng, observables)
    return {k: {**v, "group": GROUP[k]} for k, v in out.items()}


def bulk_flow_ratio(ref_spec, model_spec, pt_edges, phi_edges, mask, coarse, bulk) -> dict:
    """v_n{2}(pT) of both samples (jackknife errors) in the coarse pT bins, their ratio, and the largest deviation of
    the ratio from 1 among the bins centred in the bulk."""
    out = {}
    ref_fp, mod_fp = from_spectra(ref_spec[mask], pt_edges, phi_edges), from_spectra(model_spec[mask], pt_edges, phi_edges)
    for n in (2, 3):
        r, m = differential_flow(ref_fp, n, coarse), differential_flow(mod_fp, n, coarse)
        centres = 0.5 * (coarse[1:] + coarse[:-1])
        in_bulk = (centres > bulk[0]) & (centres < bulk[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = m["v{2}"] / r["v{2}"]
        out[f"v{n}{{2}}(pT)"] = {"pt_centres": centres.tolist(), "reference": r["v{2}"].tolist(), "model": m["v{2}"].tolist(),
                                 "ratio": ratio.tolist(), "bulk_max_deviation": float(np.max(np.abs(ratio[in_bulk] - 1)))}
    return out


def smooth_flow(expected: np.ndarray, phi_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-IC |V_n|^2 and |V_n|^4 (n = 2, 3), |V_4|^2 and the flow correlations' |V_m|^2 |V_2|^2 (m = 3, 4) and
    Re V_4 V_2*^2 of the smooth spectra (N, P, Q): the flow of the expected distribution over 0 < pT < 2 GeV, free of
    counting noise (the response the network must learn)."""
    out = {"one": np.ones(len(expected))}
    vectors = {n: spectra_flow_vectors(expected, phi_edges, n) for n in (2, 3, 4)}
    for n in (2, 3):
        v = np.abs(vectors[n])
        out[f"v{n}^2"], out[f"v{n}^4"] = v**2, v**4
    out["v4^2"] = np.abs(vectors[4]) ** 2
    for m in (3, 4):  # the flow correlations' moments: |V_m|^2 |V_2|^2 and Re V_4 V_2*^2
        out[f"v{m}^2v2^2"] = out[f"v{m}^2"] * out["v2^2"]
    out["v4v2*v2*"] = (vectors[4] * np.conj(vectors[2]) ** 2).real
    return out


def flow_vector_response(reference: np.ndarray, model: np.ndarray, phi_edges: np.ndarray,
                         sample_variance: dict[int, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """How the model's per-IC flow vectors follow the reference's (smooth spectra, n = 2, 3): the least-squares
    slope of V_n(model) on V_n(reference), Re sum V_m V_r* / sum |V_r|^2, and the rms of what the slope does not
    explain, |V_m - slope V_r|. A slope below 1 shrinks v_n{2}; a residual adds to it in quadrature, which matters
    where v_n is small (central v3). With K > 1 samples per IC, `sample_variance` {n: (N,)} (the unbiased variance
    of V_n among an IC's samples) adds the rms sample-to-sample spread: a residual much larger than
    spread / sqrt(K) is a systematic per-IC error, which averaging more samples would not remove.
    `slope_error` is the slope's standard error over the ICs: the heteroscedasticity-robust (HC1 sandwich) one,
    sqrt(N / (N - 1) sum_i (Re r_i V_ri*)^2) / sum_i |V_ri|^2 with r = V_m - slope V_r, which assumes nothing about
    how the residuals' size varies from IC to IC; a slope is a property of the IC sample as much as of the model."""
    out = {}
    for n in (2, 3):
        v_ref, v_mod = spectra_flow_vectors(reference, phi_edges, n), spectra_flow_vectors(model, phi_edges, n)
        weight = np.sum(np.abs(v_ref) ** 2)
        slope = float(np.real(np.sum(v_mod * np.conj(v_ref))) / weight)
        residual = v_mod - slope * v_ref
        count = len(v_ref)
        leverage = np.real(residual * np.conj(v_ref))
        error = float(np.sqrt(count / (count - 1) * np.sum(leverage**2)) / weight) if count > 1 else float("nan")
        out[f"V{n}"] = {"slope": slope, "slope_error": error, "residual_rms": float(np.sqrt(np.mean(np.abs(residual) ** 2))),
                        "reference_rms": float(np.sqrt(np.mean(np.abs(v_ref) ** 2)))}
        if sample_variance is not None:
            out[f"V{n}"]["sample_spread_rms"] = float(np.sqrt(np.mean(sample_variance[n])))
    return out


def sample_variance_of_flow(generated: np.ndarray, phi_edges: np.ndarray) -> dict[int, np.ndarray]:
    """{n: (N,)} the unbiased variance of the complex V_n among each IC's K > 1 smooth samples (N, K, P, Q)."""
    out = {}
    for n in (2, 3):
        v = spectra_flow_vectors(generated, phi_edges, n)
        out[n] = np.sum(np.abs(v - v.mean(axis=1, keepdims=True)) ** 2, axis=1) / (v.shape[1] - 1)
    return out


def smooth_differential_terms(expected: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray,
                              coarse_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-IC terms of v_n{2}(pT) of the smooth spectra (n = 2, 3) in the coarse pT bins: Re(V_n(pT) V_n*) and
    |V_n|^2, with V_n the flow vector of the whole 0-2 GeV range (the reference particles)."""
    ptc = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    coarse_of = np.digitize(ptc, coarse_edges) - 1
    out = {"one": np.ones(len(expected))}
    for n in (2, 3):
        v_ref = spectra_flow_vectors(expected, phi_edges, n)
        out[f"v{n}^2"] = np.abs(v_ref) ** 2
        for j in range(len(coarse_edges) - 1):
            v_pt = spectra_flow_vectors(expected[:, coarse_of == j], phi_edges, n)
            out[f"v{n}{{2}}(pT)[{j}]"] = (v_pt * np.conj(v_ref)).real
    return out


def smooth_sums_of_samples(generated: np.ndarray, k: int, pt_edges: np.ndarray, phi_edges: np.ndarray,
                           coarse_edges: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-IC sums of the smooth-flow terms (`smooth_flow`, `smooth_differential_terms`) of generated spectra
    (N * K, P, Q), row n * K + k = sample k of IC n, over each IC's K samples: every sample counts as the event
    `hicgen spectra` returns, so the model's sample-to-sample spread enters its flow as it enters a user's
    (the mean of an IC's K spectra would average part of it away; the observables divide by the summed 'one')."""
    generated = generated.astype(np.float64)
    return (per_ic(smooth_flow(generated, phi_edges), k),
            per_ic(smooth_differential_terms(generated, pt_edges, phi_edges, coarse_edges), k))


def smooth_differential_observables(s: dict[str, float]) -> dict[str, float]:
    """v_n{2}(pT) = <Re(V_n(pT) V_n*)> / <|V_n|^2>^1/2 per coarse pT bin, from sums over ICs."""
    return {name: float(s[name] / s["one"] / np.sqrt(s[f"{name[:2]}^2"] / s["one"]))
            for name in s if "(pT)" in name}


def smooth_observables(s: dict[str, float]) -> dict[str, float]:
    """v_n{2} = <v_n^2>^1/2, v_n{4} = (2 <v_n^2>^2 - <v_n^4>)^1/4 and nc_n{4} = <v_n^4> / <v_n^2>^2 - 2 (n = 2, 3),
    v4{2} and the flow correlations (flow_correlations: NSC(m,2) with <|V_m|^2 |V_2|^2>, v4,22 with
    <Re V_4 V_2*^2> / <|V_2|^4>^1/2) of the smooth spectra, from sums over ICs."""
    obs = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for n in (2, 3):
            m2, m4 = s[f"v{n}^2"] / s["one"], s[f"v{n}^4"] / s["one"]
            c4 = 2 * m2**2 - m4  # a python float: a negative one to the power 1/4 would be complex
            obs[f"v{n}{{2}}"], obs[f"v{n}{{4}}"] = float(np.sqrt(m2)), float(c4**0.25) if c4 > 0 else float("nan")
            obs[f"nc{n}{{4}}"] = float(-c4 / m2**2) if m2 > 0 else float("nan")
        obs["v4{2}"] = float(np.sqrt(s["v4^2"] / s["one"]))
    mean = lambda key: s[key] / s["one"]  # noqa: E731
    obs.update(flow_correlations({n: mean(f"v{n}^2") for n in (2, 3, 4)}, {m: mean(f"v{m}^2v2^2") for m in (3, 4)},
                                 mean("v4v2*v2*"), mean("v2^4"), obs["v4{2}"]))
    return obs


def bulk_smooth_ratio(ref: dict, model: dict, mask: np.ndarray, n_boot: int, rng: np.random.Generator,
                      coarse: np.ndarray, bulk) -> dict:
    """Smooth-spectrum v_n{2}(pT) ratios with paired-bootstrap errors per coarse pT bin, and the largest deviation
    from 1 among the bins whose centre lies in the bulk."""
    by_bin = paired_bootstrap(ref, model, mask, n_boot, rng, smooth_differential_observables)
    centres = 0.5 * (coarse[1:] + coarse[:-1])
    in_bulk = np.flatnonzero((centres > bulk[0]) & (centres < bulk[1]))
    out = {}
    for n in (2, 3):
        rows = [by_bin[f"v{n}{{2}}(pT)[{j}]"] for j in range(len(centres))]
        out[f"v{n}{{2}}(pT)"] = {"pt_centres": centres.tolist(), **{key: [r[key] for r in rows] for key in (
                                     "reference", "model", "ratio", "ratio_err", "reference_err", "model_err")},
                                 "bulk_max_deviation": float(max(abs(rows[j]["ratio"] - 1) for j in in_bulk))}
    return out


def plot(results: dict, label: str, path: Path) -> None:
    """The ratio panel of paper 000, fig. 4, for one centrality class: candidate / reference per observable and
    eta/s, gray band 1 +- 0.05; filled circles from the histograms, open squares from the smooth spectra."""
    from hicgen.analysis.plots import pyplot

    plt = pyplot()  # Agg; one line naming the 'validate' extra when matplotlib is missing

    etas = sorted(results)
    fig, axes = plt.subplots(len(etas), 1, figsize=(9, 2.6 * len(etas)), squeeze=False, sharex=True)
    names = RATIO_PANEL
    colours = {"1": "tab:blue", "2": "tab:orange", "3": "tab:brown", "4": "tab:green", "6": "tab:red", "8": "tab:purple"}
    for ax, eta in zip(axes[:, 0], etas):
        cls = results[eta]["classes"].get(label, {})
        ratios, smooth = cls.get("integrated", {}), cls.get("smooth", {})
        ax.axhspan(0.95, 1.05, color="0.85", zorder=0)
        ax.axhline(1.0, color="0.4", lw=0.8)
        for i, name in enumerate(names):
            if name in ratios:
                r = ratios[name]
                ax.errorbar(i, r["ratio"], yerr=r["ratio_err"], fmt="o", color=colours[r["group"]],
                            label="histograms" if i == 0 else None)
            if name in smooth:  # the same flow of the smooth spectra, free of counting noise (open squares)
                r = smooth[name]
                ax.errorbar(i + 0.25, r["ratio"], yerr=r["ratio_err"], fmt="s", mfc="none", color=colours[GROUP[name]],
                            label="smooth spectra" if name == "v2{2}" else None)
        if smooth:
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel("model / reference")
        ax.set_title(f"eta/s = {eta}, centrality {label}", fontsize=10)
        ax.set_ylim(0.8, 1.2)
    axes[-1, 0].set_xticks(range(len(names)), names, rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


CENTRALITY_PANELS = (("integrated", "mult", "dN/dy (|y| < 0.5)"), ("integrated", "<pT>", "<pT> [GeV]"),
                     (None, "v2{2}", "v2{2}"), (None, "v2{4}", "v2{4}"), (None, "v3{2}", "v3{2}"),
                     (None, "v4{2}", "v4{2}"))


def plot_vs_centrality(results: dict, path: Path) -> None:
    """Paper 000's fig. 2 for a closure: per observable, the reference (bands: value +- its bootstrap error) and the
    model (points) against centrality class, one colour per eta/s, over the ratio model / reference with its paired
    bootstrap error and the bands 1 +- 0.05, 0.10. The flow is the smooth spectra's where the model's are smooth,
    else the histograms'."""
    from hicgen.analysis.plots import draw_curves_with_ratio, pyplot, ratio_bands

    plt = pyplot()
    etas = sorted(results, key=float)
    labels = list(dict.fromkeys(label for eta in etas for label in results[eta]["classes"]))
    smooth = any("smooth" in cls for eta in etas for cls in results[eta]["classes"].values())
    x = np.arange(len(labels), dtype=float)
    fig, axes = plt.subplots(2, len(CENTRALITY_PANELS), figsize=(3.1 * len(CENTRALITY_PANELS), 4.4), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.06, "wspace": 0.32})
    nan = {key: float("nan") for key in ("reference", "reference_err", "model", "model_err", "ratio_err")}
    for column, (section, name, title) in enumerate(CENTRALITY_PANELS):
        section = section or ("smooth" if smooth else "integrated")
        curves = []
        for eta in etas:
            entries = [results[eta]["classes"].get(label, {}).get(section, {}).get(name, nan) for label in labels]
            get = lambda key: np.array([e.get(key, np.nan) for e in entries], np.float64)  # noqa: E731
            curves.append({"label": f"eta/s = {eta}", "ref": get("reference"), "ref_err": get("reference_err"),
                           "cand": get("model"), "cand_err": get("model_err"), "ratio_err": get("ratio_err")})
        top, bottom = axes[:, column]
        handles = draw_curves_with_ratio(top, bottom, x, curves)
        ratio_bands(bottom, np.array([-0.5, len(labels) - 0.5]))
        bottom.set_ylim(0.8, 1.2)
        top.set_title(f"{title}{' (smooth spectra)' if section == 'smooth' else ''}", fontsize=9)
        bottom.set_xticks(x, labels, rotation=60, fontsize=7)
    axes[1, 0].set_ylabel("model / reference", fontsize=8)
    axes[0, 0].legend(handles=handles, loc="best", fontsize=7, title="reference: bands, model: points", title_fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.93, bottom=0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_differential(results: dict, path: Path, labels: list[str] | None = None) -> None:
    """Paper 000's fig. 3 for a closure with smooth spectra: v2{2}(pT) and v3{2}(pT) of the smooth spectra in the
    coarse pT bins, one column per centrality class in `labels` (default: every other class), the reference as bands
    (value +- its bootstrap error), the model as points, one colour per eta/s, each over its ratio with the paired
    error."""
    from hicgen.analysis.plots import draw_curves_with_ratio, pyplot, ratio_bands

    plt = pyplot()
    etas = sorted(results, key=float)
    every = list(dict.fromkeys(label for eta in etas for label, cls in results[eta]["classes"].items()
                               if "smooth_differential" in cls))
    labels = every[::2] if labels is None else [label for label in labels if label in every]
    if not labels:
        raise InputError("no centrality class of the closure has smooth spectra to draw v_n(pT) from")
    fig = plt.figure(figsize=(3.3 * len(labels), 7.0))
    grid = fig.add_gridspec(5, len(labels), height_ratios=[3, 1.3, 0.55, 3, 1.3], hspace=0.08, wspace=0.3)
    for column, label in enumerate(labels):
        for n, row in ((2, 0), (3, 3)):  # row 2 keeps the v3 panels' titles off the v2 ratios
            top = fig.add_subplot(grid[row, column])
            bottom = fig.add_subplot(grid[row + 1, column], sharex=top)
            top.tick_params(labelbottom=False)
            curves, x = [], None
            for eta in etas:
                entry = results[eta]["classes"].get(label, {}).get("smooth_differential", {}).get(f"v{n}{{2}}(pT)")
                if entry is None:
                    continue
                x = np.asarray(entry["pt_centres"])
                get = lambda key: np.asarray(entry.get(key, np.full(x.size, np.nan)), np.float64)  # noqa: E731
                curves.append({"label": f"eta/s = {eta}", "ref": get("reference"), "ref_err": get("reference_err"),
                               "cand": get("model"), "cand_err": get("model_err"), "ratio_err": get("ratio_err")})
            handles = draw_curves_with_ratio(top, bottom, x, curves)
            step = x[1] - x[0]
            ratio_bands(bottom, np.array([x[0] - step / 2, x[-1] + step / 2]))
            bottom.set_ylim(0.8, 1.2)
            top.set_title(f"v{n}{{2}}(pT), {label}", fontsize=9)
            if column == 0:
                bottom.set_ylabel("model / ref.", fontsize=8)
                if n == 2:
                    top.legend(handles=handles, loc="upper left", fontsize=7, title="reference: bands, model: points",
                               title_fontsize=7)
        bottom.set_xlabel("pT [GeV]")
    fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.08)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def comparison_text(compared: dict) -> str:
    """One line of model / reference ratios; the normalized cumulants nc_n{4}, NSC(m,2) as model - reference
    differences."""
    return " ".join(f"{k} {v['model']:.3f}-{v['reference']:.3f}={v['difference']:+.3f}+-{v['difference_err']:.3f}"
                    if k.startswith(AS_DIFFERENCES) else f"{k} {v['ratio']:.3f}+-{v['ratio_err']:.3f}" for k, v in compared.items())


def closure_results(expected: np.ndarray, reference_histograms: np.ndarray, eta_s: np.ndarray, centrality: np.ndarray,
                    candidate_histograms: np.ndarray, candidate_smooth: np.ndarray | None, k: int,
                    pt_edges: np.ndarray, phi_edges: np.ndarray, classes=CLASSES, n_boot: int = 100,
                    bulk=(0.3, 1.5), rng: np.random.Generator | None = None, min_events: int = 10) -> dict:
    """{eta/s: {events, classes: {label: ...}, per_ic_mult_ratio}}: the closure of N reference records (expected
    counts per bin (N, P, Q), their eta/s and centrality [%]) against the candidate's K histograms per record
    (N * K, P, Q; row n K + k, as reference_histograms) and, when given, its K smooth spectra in expected counts.
    Classes with fewer than `min_events` ICs are left out."""
    rng = np.random.default_rng(0) if rng is None else rng
    coarse = np.linspace(pt_edges[0], pt_edges[-1], 9)  # the pT bins of every v_n(pT) comparison
    smooth = candidate_smooth is not None
    results: dict = {}
    for eta in np.unique(eta_s):
        sel = eta_s == eta
        sel_k = np.repeat(sel, k)
        r_spec, m_spec = reference_histograms[sel_k].astype(np.float64), candidate_histograms[sel_k].astype(np.float64)
        r_sums = per_ic(per_event_sums(r_spec, pt_edges, phi_edges), k)
        m_sums = per_ic(per_event_sums(m_spec, pt_edges, phi_edges), k)
        ref_mult = expected[sel].sum(axis=(1, 2))
        if smooth:
            samples = candidate_smooth[sel_k].astype(np.float64)
            by_ic = samples.reshape((int(sel.sum()), k) + samples.shape[1:])
            r_smooth, r_diff = smooth_flow(expected[sel], phi_edges), smooth_differential_terms(expected[sel], pt_edges,
                                                                                               phi_edges, coarse)
            m_smooth, m_diff = smooth_sums_of_samples(samples, k, pt_edges, phi_edges, coarse)
            spread = sample_variance_of_flow(by_ic, phi_edges) if k > 1 else None
            mean_of_ic = by_ic.mean(axis=1)
        per_class = {}
        for label, mask in centrality_classes(centrality[sel], tuple(classes)):
            if mask.sum() < min_events:
                continue
            mask_k = np.repeat(mask, k)
            per_class[label] = {"events": int(mask.sum()), "histograms": int(mask_k.sum()),
                                "integrated": paired_ratios(r_sums, m_sums, mask, n_boot, rng)}
            if smooth:
                per_class[label].update({
                    "smooth": paired_bootstrap(r_smooth, m_smooth, mask, n_boot, rng, smooth_observables),
                    "smooth_differential": bulk_smooth_ratio(r_diff, m_diff, mask, n_boot, rng, coarse, bulk),
                    "smooth_response": flow_vector_response(expected[sel][mask], mean_of_ic[mask], phi_edges,
                                                            {n: v[mask] for n, v in spread.items()} if spread else None)})
            per_class[label]["differential"] = bulk_flow_ratio(r_spec, m_spec, pt_edges, phi_edges, mask_k, coarse, bulk)
        mult_ratio = (mean_of_ic.sum(axis=(1, 2)) if smooth else m_sums["mult"] / k) / ref_mult
        results[f"{float(eta):g}"] = {"events": int(sel.sum()), "classes": per_class,
                                      "per_ic_mult_ratio": {"mean": float(mult_ratio.mean()),
                                                            "std": float(mult_ratio.std(ddof=1))}}
    return results


def summary_lines(results: dict) -> list[str]:
    """The closure in text: per eta/s the per-IC multiplicity ratio, per class the ratios (and the smooth flow)."""
    lines = []
    for eta, res in results.items():
        lines.append(f"eta/s={eta}: per-IC multiplicity ratio {res['per_ic_mult_ratio']['mean']:.3f} "
                     f"+- {res['per_ic_mult_ratio']['std']:.3f} (spread)")
        if not res["classes"]:
            lines.append(f"eta/s={eta}: no centrality class holds 10 initial states ({res['events']} in all); the "
                         "class-wise closure needs more")
        for label, cls in res["classes"].items():
            lines.append(f"eta/s={eta} {label} (N={cls['events']}): {comparison_text(cls['integrated'])}")
            if "smooth" in cls:
                lines.append(f"    smooth spectra: {comparison_text(cls['smooth'])}")
                lines.append("    smooth spectra: " + " ".join(f"{k} bulk max |ratio-1| {v['bulk_max_deviation']:.3f}"
                                                              for k, v in cls["smooth_differential"].items()))
                lines.append("    flow-vector response: " + " ".join(
                    f"{k} slope {v['slope']:.3f}" + (f" +- {v['slope_error']:.3f}" if "slope_error" in v else "")
                    + f" residual {v['residual_rms']:.4f} (rms {v['reference_rms']:.4f}"
                    + (f", sample spread {v['sample_spread_rms']:.4f})" if "sample_spread_rms" in v else ")")
                    for k, v in cls["smooth_response"].items()))
    return lines


VALIDATE_CLASSES = (0, 10, 20, 40, 60, 100)  # percent of the reference's TRENTo multiplicity, as hicgen validate's
SCALAR_METRICS = {  # name -> (section of a class, observable): the largest |ratio - 1| over eta/s and classes
    "mult_ratio_max_deviation": ("integrated", "mult"), "mean_pt_ratio_max_deviation": ("integrated", "<pT>"),
    "v2{2}_ratio_max_deviation": ("integrated", "v2{2}"), "v3{2}_ratio_max_deviation": ("integrated", "v3{2}"),
    "smooth_v2{2}_ratio_max_deviation": ("smooth", "v2{2}"), "smooth_v3{2}_ratio_max_deviation": ("smooth", "v3{2}"),
    "smooth_v2{4}_ratio_max_deviation": ("smooth", "v2{4}"),
    "smooth_v2(pT)_bulk_max_deviation": ("smooth_differential", "v2{2}(pT)"),
    "smooth_v3(pT)_bulk_max_deviation": ("smooth_differential", "v3{2}(pT)"),
}


def match_records(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(reference rows, candidate rows (N * K,), K): the reference records (one per IC and eta/s) that the candidate
    holds too, each with the candidate's first K records of that IC and eta/s, K the smallest count among them."""

    def keys(data):
        return list(zip(data["ic_index"].tolist(), np.round(data["eta_s"].astype(np.float64), 6).tolist()))

    ref_keys, cand_rows = keys(reference), {}
    if len(set(ref_keys)) < len(ref_keys):
        raise InputError("the reference holds several records of one IC and eta/s; give the reference chain's file "
                         "(hicgen truth hydro) first and the candidate second")
    for row, key in enumerate(keys(candidate)):
        cand_rows.setdefault(key, []).append(row)
    matched = [row for row, key in enumerate(ref_keys) if key in cand_rows]
    if not matched:
        raise InputError("the candidate holds no record of the reference's (IC, eta/s): make both from the same IC file "
                         "and eta/s values")
    k = min(len(cand_rows[ref_keys[row]]) for row in matched)
    return np.array(matched), np.array([r for row in matched for r in cand_rows[ref_keys[row]][:k]]), k


def compare_spectra_files(reference: str | os.PathLike, candidate: str | os.PathLike, classes=VALIDATE_CLASSES,
                          n_boot: int = 100, seed: int = 0, bulk=(0.3, 1.5),
                          calibration: CentralityCalibration | None = None) -> dict:
    """The closure of a candidate hicgen-spectra file (e.g. `hicgen spectra`'s) against a reference one (`hicgen truth
    hydro`'s) on the initial states and eta/s both hold: {meta, results} as `closure_results`. Centrality
    (spectra_centrality): from `calibration` (a min-bias sample's TRENTo multiplicities) when given, else the
    candidate's `centrality` column (`hicgen spectra --centrality-ic`) when it has one, else the percentile of the
    TRENTo multiplicity among the reference's initial states. The reference gets the candidate's K
    histograms per record: its own histogram for K = 1, else K Poisson draws from its smooth spectrum. The candidate's
    smooth spectra enter where they are smooth (not its histograms' densities). InputError when the files' bins or
    initial-state files differ or they share no record. Only the matched records' spectra and histograms are read
    (hicgen.truth.spectra_data.read_spectra_rows), so a candidate of millions of records costs the memory of those."""
    from hicgen.spectra.generate import poisson_histograms
    from hicgen.truth.spectra_data import bin_measure, read_spectra_rows

    keys = ("ic_index", "eta_s")
    (ref, ref_attrs), (cand, cand_attrs) = read_spectra_rows(reference, keys + ("mult",)), read_spectra_rows(candidate, keys)
    if not all(np.array_equal(ref[e], cand[e]) for e in ("pt_edges", "phi_edges")):
        raise InputError(f"'{reference}' and '{candidate}' have different (pT, phi) bins; compare files of one binning")
    sources = [Path(str(a.get("source", ""))).name for a in (ref_attrs, cand_attrs)]
    if all(sources) and sources[0] != sources[1]:
        raise InputError(f"'{reference}' and '{candidate}' were made from different initial-state files ({sources[0]}, "
                         f"{sources[1]}); compare files of one IC file")
    ref_rows, cand_rows, k = match_records(ref, cand)
    images = ("spectrum", "histogram")
    ref_images, cand_images = read_spectra_rows(reference, images, ref_rows)[0], read_spectra_rows(candidate, images, cand_rows)[0]
    pt_edges, phi_edges = ref["pt_edges"], ref["phi_edges"]
    measure = bin_measure(pt_edges, phi_edges)
    expected = ref_images["spectrum"].astype(np.float64) * measure
    ic_of, k_of = np.repeat(ref["ic_index"][ref_rows], k), np.tile(np.arange(k), ref_rows.size)
    reference_histograms = (ref_images["histogram"] if k == 1 else
                            poisson_histograms(np.repeat(expected, k, axis=0), seed + 1_000_003, ic_of, k_of))
    cand_counts = cand_images["spectrum"].astype(np.float64) * measure
    smooth = smooth_spectra(cand_counts, cand_images["histogram"])
    centrality, how = spectra_centrality(ref, ref_rows, candidate, cand_rows[::k], cand_attrs, calibration)
    results = closure_results(expected, reference_histograms, ref["eta_s"][ref_rows], centrality,
                              cand_images["histogram"], cand_counts if smooth else None, k, pt_edges, phi_edges,
                              classes, n_boot, bulk, np.random.default_rng(seed))
    meta = {"reference": str(reference), "candidate": str(candidate), "records": int(ref_rows.size),
            "reference_records": int(len(ref["ic_index"])), "samples_per_ic": k, "candidate_smooth": bool(smooth),
            "centrality": how,
            "classes": list(classes), "bootstrap": n_boot, "bulk_pt": list(bulk), "targets": TARGET}
    return {"meta": meta, "results": results}


def smooth_spectra(expected_counts: np.ndarray, histograms: np.ndarray) -> bool:
    """Whether a file's spectra (in expected counts per bin) are smooth, as the shipped model's and the reference
    chain's are, rather than its histograms' own densities (a model trained on histograms)."""
    return not np.allclose(expected_counts, histograms, rtol=1e-4, atol=1e-3)


def spectra_centrality(ref: dict, ref_rows: np.ndarray, candidate: str | os.PathLike, cand_rows: np.ndarray,
                       cand_attrs: dict, calibration: CentralityCalibration | None) -> tuple[np.ndarray, str]:
    """(centrality [%] of the matched reference records `ref_rows`, how it was defined): from `calibration`; else
    the candidate's `centrality` column at `cand_rows` (the candidate record of each matched reference record: the
    same IC), as its --centrality-ic calibration set it; else the percentile of the TRENTo multiplicity among the
    reference's initial states (only the right classes when those are a min-bias sample)."""
    import h5py

    from hicgen.truth.spectra_data import read_spectra_rows

    if calibration is not None:
        return (calibration.centrality(ref["mult"][ref_rows]),
                f"percentile of the TRENTo multiplicity among the {calibration.reference_mult.size} initial states of "
                f"{calibration.source}, times their {calibration.coverage_percent:.2f} % coverage (--centrality-ic)")
    with h5py.File(candidate, "r") as f:
        has_column = "centrality" in f
    if not has_column:
        ics = np.unique(ref["ic_index"], return_index=True)[1]
        return (centrality_percentile(ref["mult"][ics], ref["mult"][ref_rows]),
                "percentile of the TRENTo multiplicity among the reference's initial states")
    column = read_spectra_rows(candidate, ("centrality",), cand_rows)[0]["centrality"]
    return column, (f"the candidate's centrality column (hicgen spectra --centrality-ic {cand_attrs.get('centrality_ic')}, "
                    f"coverage {float(cand_attrs.get('centrality_coverage', np.nan)):.2f} %)")


def scalar_metrics(results: dict) -> dict[str, float]:
    """SCALAR_METRICS of a closure: each the largest deviation over eta/s and classes (NaN where none is defined)."""
    out = {}
    for name, (section, observable) in SCALAR_METRICS.items():
        values = []
        for res in results.values():
            for cls in res["classes"].values():
                entry = cls.get(section, {}).get(observable)
                if entry is not None:
                    values.append(entry["bulk_max_deviation"] if "bulk_max_deviation" in entry else abs(entry["ratio"] - 1))
        values = [v for v in values if np.isfinite(v)]
        out[name] = float(max(values)) if values else float("nan")
    return out


def is_spectra_file(path: str | os.PathLike) -> bool:
    """Whether `path` is an HDF5 file of binned spectra (format 'hicgen-spectra')."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == "hicgen-spectra"
    except OSError:
        return False


def decays_note(reference: str | os.PathLike, candidate: str | os.PathLike) -> str | None:
    """A note when one spectra file holds resonance decays (attribute resonance_decays: `hicgen truth hydro
    --decays`, or a model trained on such records) and the other does not: their difference is then mostly the
    decays (twice the multiplicity at the same norm, a softer pT spectrum), not the model."""
    import h5py

    has = []
    for path in (reference, candidate):
        with h5py.File(path, "r") as f:
            has.append("resonance_decays" in f.attrs)
    if has[0] == has[1]:
        return None
    with_, without = (reference, candidate) if has[0] else (candidate, reference)
    return (f"note: '{with_}' holds spectra with resonance decays and '{without}' without them; the comparison "
            "measures the decays too (docs/hydro.md, 'Resonance decays')")


def validate_spectra(reference: str | os.PathLike, candidate: str | os.PathLike, out_dir: str | os.PathLike,
                     plots: bool = True, seed: int = 0, overwrite: bool = False,
                     calibration: CentralityCalibration | None = None) -> dict:
    """`hicgen validate` of two hicgen-spectra files: compare_spectra_files, then metrics.json (the SCALAR_METRICS
    and, under 'details', the whole closure), one ratio panel per centrality class and index.html in `out_dir`;
    returns the metrics."""
    import json

    from hicgen.analysis.report import json_ready, report_dir, write_index

    if plots:  # before any work: one line naming the 'validate' extra when matplotlib is missing
        from hicgen.errors import require

        require("matplotlib", "validate")
    with report_dir(out_dir, overwrite) as out:
        closure = compare_spectra_files(reference, candidate, seed=seed, calibration=calibration)
        metrics = {**scalar_metrics(closure["results"]), "details": closure}
        (out / "metrics.json").write_text(json.dumps(json_ready(metrics), indent=1, allow_nan=False))
        figures = []
        labels = dict.fromkeys(label for res in closure["results"].values() for label in res["classes"])
        for i, label in enumerate(labels if plots else ()):
            path = out / f"closure_ratios_{i}.png"
            plot(closure["results"], label, path)
            figures.append((path, f"candidate / reference in centrality {label} ({closure['meta']['centrality']}), per "
                                  "eta/s: filled circles from the histograms, open squares from the smooth spectra; "
                                  "band 1 +- 0.05"))
        if plots and labels:
            path = out / "closure_centrality.png"
            plot_vs_centrality(closure["results"], path)
            figures.append((path, "reference (bands) and candidate (points) against centrality class, per eta/s (paper "
                                  "000, fig. 2), over their ratio with its paired bootstrap error"))
            if closure["meta"]["candidate_smooth"]:
                path = out / "closure_pt.png"
                plot_differential(closure["results"], path)
                figures.append((path, "v2{2}(pT) and v3{2}(pT) of the smooth spectra in every other centrality class, "
                                      "reference (bands) and candidate (points) per eta/s (paper 000, fig. 3), over their "
                                      "ratio with its paired bootstrap error"))
        write_index(out, metrics, figures, (Path(reference).name, Path(candidate).name))
    return metrics
