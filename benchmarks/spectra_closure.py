"""Closure of the spectra model against its reference chain on held-out initial states (issue 7, "Must show").

    python benchmarks/spectra_closure.py --reference spectra.h5 --model weights/spectra --out closure/

For every record of --reference ('hicgen-spectra', from `hicgen truth hydro`) whose IC was held out in training
(the checkpoint's provenance val_ic_index, so --reference must then be the training file itself, which its sha256
in the provenance checks; --all-records uses every record, for a file of ICs the model never saw), the model
generates --samples-per-ic K spectra from the same resampled IC and eta/s, made histograms as
`hicgen spectra` makes them (Poisson draws from a smooth-spectrum model). The reference gets K histograms too:
the file's own histogram for K = 1, else K Poisson draws from the record's smooth spectrum, which is how the
chain samples its histogram; K > 1 shrinks the counting noise of both sides alike. Per trained eta/s and per
centrality class it compares, as model / reference ratios:

  1 particle:  multiplicity (sum of counts) and <pT> (count-weighted bin centres)
  2 particles: v2{2}, v3{2};  4: v2{4}, v3{4};  6: v2{6};  8: v2{8};  and the cumulant ratios v2{6}/v2{4}, v2{8}/v2{6}
  the normalized four-particle cumulants nc_n{4} = c_n{4} / c_n{2}^2 (n = 2, 3; -v_n{4}^4 / v_n{2}^4 where v_n{4}
  exists), compared as the difference model - reference: defined also where c_n{4} >= 0 leaves v_n{4} undefined,
  as for v3 in most classes (Gaussian-like v3 fluctuations put c3{4} near zero)
  v_n{2}(pT), n = 2, 3, in 8 bins of 0.25 GeV; the largest |ratio - 1| among the bins centred in the bulk
  (0.3 < pT < 1.5 GeV by default)

Flow cumulants come from hicgen.analysis.flow (Q-vectors of the binned spectrum, generic framework). Errors on
every ratio: paired bootstrap over initial states (--bootstrap resamplings; the same resampled ICs, with all
their K histograms, for model and reference). Also per IC: the spread of the model / reference ratio of the
expected multiplicity, and for a smooth-spectrum model the flow of the smooth spectra themselves (v_n{2}, v_n{4}
from the per-IC v_n of the expected distribution, n = 2, 3, and v_n{2}(pT) against the 0-2 GeV flow vector,
each of an IC's K generated spectra counting as one event, as `hicgen spectra` returns them): the learned
response without counting noise; and how the per-IC flow vectors (of the mean of an IC's K spectra) follow the
reference's (slope of V_n(model) on V_n(reference) and the rms residual, which tells a shrunk response from per-IC scatter; with
K > 1 also the rms spread of V_n among an IC's K samples, which tells a systematic per-IC error from sampling noise).
Centrality is a property of the IC, so both samples are classified identically: the percentile of the record's
TRENTo multiplicity among all ICs of --centrality-ic (a min-bias IC file; default: the reference records
themselves), scaled to the percent of the measured Pb-Pb cross section that sample covers: computed from the TRENTo parameters
the --centrality-ic file records (hicgen.truth.trento.sample_coverage: 69.97 % for the shipped `--b-max 13.07`
files) or given as --coverage, as benchmarks/hydro.py does. With a min-bias calibration file, several --reference files
(e.g. a min-bias and a central-enriched one) can be pooled without biasing the class edges.
Targets (issue 7): flow within 5 %, multiplicity and <pT> within 2 %.
Writes out/closure.json and out/closure_ratios.png (the ratio panel of paper 000, fig. 4: gray band 1 +- 0.05;
filled circles from the histograms, open squares the flow of the smooth spectra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hicgen.analysis.flow import (
    centrality_classes, centrality_percentile, correlator_terms, cumulant_from_correlators, differential_flow,
    flow_from_cumulant, from_spectra, spectra_flow_vectors, symmetric_harmonics,
)
from hicgen.checkpoint import file_sha256
from hicgen.diffusion.samplers import make_grid
from hicgen.errors import InputError
from hicgen.spectra.generate import generate_spectra, load_spectra_model, poisson_histograms, to_histograms
from hicgen.spectra.normalization import bin_measure
from hicgen.truth.spectra_data import read_spectra
from hicgen.truth.trento import read_trento, sample_coverage, trento_config_of

CLASSES = (0, 5, 10, 20, 30, 40, 50, 60, 70)
TARGET = {"1": 0.02, "2": 0.05, "4": 0.05, "6": None, "8": None}


def read_reference(path: str, model, all_records: bool, with_histograms: bool) -> dict[str, np.ndarray]:
    """The records of one reference file the closure uses (all, or the model's held-out ICs), expected counts per bin.
    InputError when the file is missing or not a hicgen-spectra file, or when held-out ICs are asked of a file other
    than the model's training file (its IC numbers would pick arbitrary records)."""
    data, _ = read_spectra(path)
    provenance = model.config["provenance"]
    if not all_records and file_sha256(path) != provenance.get("data_sha256"):
        raise InputError(f"'{path}' is not the file the model was trained on ('{Path(str(provenance.get('data'))).name}'), "
                         "whose IC numbers name its held-out ICs: give that file, or --all-records for ICs it never saw")
    keep = np.ones(len(data["ic_index"]), bool) if all_records else np.isin(data["ic_index"], provenance["val_ic_index"])
    rows = np.flatnonzero(keep)
    pt_edges, phi_edges = data["pt_edges"], data["phi_edges"]
    out = {"pt_edges": pt_edges, "phi_edges": phi_edges, "ic": data["ic"][rows], "eta_s": data["eta_s"][rows],
           "trento_mult": data["mult"][rows],
           "expected": data["spectrum"][rows].astype(np.float64) * bin_measure(pt_edges, phi_edges)}
    if with_histograms:
        out["histogram"] = data["histogram"][rows].astype(np.float64)
    return out


def per_event_sums(spectra: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event additive quantities (B, ...) from which every integrated observable is a ratio of sums."""
    fp = from_spectra(spectra, pt_edges, phi_edges)
    ptc = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    out = {"mult": spectra.sum(axis=(1, 2)), "sum_pt": (spectra.sum(axis=2) * ptc).sum(axis=1), "one": np.ones(len(spectra))}
    for n in (2, 3):
        for k in (2, 4, 6, 8) if n == 2 else (2, 4):
            num, den = correlator_terms(fp, symmetric_harmonics(n, k))
            out[f"num{n}_{k}"], out[f"den{n}_{k}"] = num.real, den
    return out


def observables(s: dict[str, np.ndarray]) -> dict[str, float]:
    """Observables from summed per-event quantities (the sums over a (resampled) event set)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        obs = {"mult": s["mult"] / s["one"], "<pT>": s["sum_pt"] / s["mult"]}
        for n, orders in ((2, (2, 4, 6, 8)), (3, (2, 4))):
            cum = cumulant_from_correlators({k: s[f"num{n}_{k}"] / s[f"den{n}_{k}"] for k in orders})
            for k in orders:
                obs[f"v{n}{{{k}}}"] = flow_from_cumulant(cum[k], k)
            obs[f"nc{n}{{4}}"] = cum[4] / cum[2] ** 2
        obs["v2{6}/v2{4}"] = obs["v2{6}"] / obs["v2{4}"]
        obs["v2{8}/v2{6}"] = obs["v2{8}"] / obs["v2{6}"]
    return {k: float(v) for k, v in obs.items()}


GROUP = {"mult": "1", "<pT>": "1", "v2{2}": "2", "v3{2}": "2", "v2{4}": "4", "v3{4}": "4", "v2{6}": "6", "v2{8}": "8",
         "v2{6}/v2{4}": "6", "v2{8}/v2{6}": "8", "nc2{4}": "4", "nc3{4}": "4"}
RATIO_PANEL = [name for name in GROUP if not name.startswith("nc")]  # nc_n{4} crosses zero: compared as differences


def per_ic(sums: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-event sums (N * K,) -> per-IC sums (N,) over each IC's K consecutive histograms."""
    return {name: v.reshape(-1, k).sum(axis=1) for name, v in sums.items()}


def paired_bootstrap(ref: dict, model: dict, mask: np.ndarray, n_boot: int, rng: np.random.Generator,
                     measure) -> dict:
    """{observable: {reference, model, ratio, ratio_err, bootstrap_valid, difference, difference_err}}:
    `measure(sums) -> {name: value}` of the per-IC sums over the ICs in mask, and the spreads of the model / reference
    ratio and of the difference model - reference over paired bootstrap resamplings (the same resampled ICs on both
    sides)."""
    idx = np.flatnonzero(mask)
    total = lambda d, w: {k: float(np.dot(w, v[idx])) for k, v in d.items()}  # noqa: E731
    ones = np.ones(idx.size)
    r0, m0 = measure(total(ref, ones)), measure(total(model, ones))
    boots = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, idx.size, idx.size), minlength=idx.size).astype(float)
        rb, mb = measure(total(ref, w)), measure(total(model, w))
        boots.append({k: (mb[k] / rb[k], mb[k] - rb[k]) for k in r0})
    spread = lambda x: float(x.std(ddof=1)) if x.size > 1 else float("nan")  # noqa: E731
    out = {}
    for k in r0:
        ratios, differences = np.array([b[k] for b in boots]).T
        ratios, differences = ratios[np.isfinite(ratios)], differences[np.isfinite(differences)]
        out[k] = {"reference": r0[k], "model": m0[k], "ratio": m0[k] / r0[k] if r0[k] else float("nan"),
                  "ratio_err": spread(ratios), "bootstrap_valid": int(ratios.size),
                  "difference": m0[k] - r0[k], "difference_err": spread(differences)}
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
    """Per-IC |V_n|^2 and |V_n|^4 (n = 2, 3) of the smooth spectra (N, P, Q): the flow of the expected
    distribution over 0 < pT < 2 GeV, free of counting noise (the response the network must learn)."""
    out = {"one": np.ones(len(expected))}
    for n in (2, 3):
        v = np.abs(spectra_flow_vectors(expected, phi_edges, n))
        out[f"v{n}^2"], out[f"v{n}^4"] = v**2, v**4
    return out


def flow_vector_response(reference: np.ndarray, model: np.ndarray, phi_edges: np.ndarray,
                         sample_variance: dict[int, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """How the model's per-IC flow vectors follow the reference's (smooth spectra, n = 2, 3): the least-squares
    slope of V_n(model) on V_n(reference), Re sum V_m V_r* / sum |V_r|^2, and the rms of what the slope does not
    explain, |V_m - slope V_r|. A slope below 1 shrinks v_n{2}; a residual adds to it in quadrature, which matters
    where v_n is small (central v3). With K > 1 samples per IC, `sample_variance` {n: (N,)} (the unbiased variance
    of V_n among an IC's samples) adds the rms sample-to-sample spread: a residual much larger than
    spread / sqrt(K) is a systematic per-IC error, which averaging more samples would not remove."""
    out = {}
    for n in (2, 3):
        v_ref, v_mod = spectra_flow_vectors(reference, phi_edges, n), spectra_flow_vectors(model, phi_edges, n)
        slope = float(np.real(np.sum(v_mod * np.conj(v_ref))) / np.sum(np.abs(v_ref) ** 2))
        out[f"V{n}"] = {"slope": slope, "residual_rms": float(np.sqrt(np.mean(np.abs(v_mod - slope * v_ref) ** 2))),
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
    """v_n{2} = <v_n^2>^1/2, v_n{4} = (2 <v_n^2>^2 - <v_n^4>)^1/4 and nc_n{4} = <v_n^4> / <v_n^2>^2 - 2 of the smooth
    spectra, from sums over ICs."""
    obs = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for n in (2, 3):
            m2, m4 = s[f"v{n}^2"] / s["one"], s[f"v{n}^4"] / s["one"]
            c4 = 2 * m2**2 - m4  # a python float: a negative one to the power 1/4 would be complex
            obs[f"v{n}{{2}}"], obs[f"v{n}{{4}}"] = float(np.sqrt(m2)), float(c4**0.25) if c4 > 0 else float("nan")
            obs[f"nc{n}{{4}}"] = float(-c4 / m2**2) if m2 > 0 else float("nan")
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
        out[f"v{n}{{2}}(pT)"] = {"pt_centres": centres.tolist(), **{key: [r[key] for r in rows] for key in
                                                                  ("reference", "model", "ratio", "ratio_err")},
                                 "bulk_max_deviation": float(max(abs(rows[j]["ratio"] - 1) for j in in_bulk))}
    return out


def plot(results: dict, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    etas = sorted(results)
    fig, axes = plt.subplots(len(etas), 1, figsize=(9, 2.6 * len(etas)), squeeze=False, sharex=True)
    names = RATIO_PANEL
    colours = {"1": "tab:blue", "2": "tab:orange", "4": "tab:green", "6": "tab:red", "8": "tab:purple"}
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


def comparison_text(compared: dict) -> str:
    """One line of model / reference ratios; the normalized cumulants nc_n{4} as model - reference differences."""
    return " ".join(f"{k} {v['model']:.3f}-{v['reference']:.3f}={v['difference']:+.3f}+-{v['difference_err']:.3f}"
                    if k.startswith("nc") else f"{k} {v['ratio']:.3f}+-{v['ratio_err']:.3f}" for k, v in compared.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, nargs="+", help="'hicgen-spectra' file(s) of the reference chain")
    parser.add_argument("--model", required=True, help="spectra checkpoint folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--all-records", action="store_true", help="use every record, not only the held-out ICs")
    parser.add_argument("--steps", type=int, help="ODE steps (default: the checkpoint's measured setting, else 12)")
    parser.add_argument("--sampler", help="ODE sampler (default: the checkpoint's, else dpm++2m)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="spectra per network batch (default: "
                        "hicgen spectra's for the device, 32 on a CPU, 256 on CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (long runs)")
    parser.add_argument("--samples-per-ic", type=int, default=1, help="histograms per IC on both sides (K)")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--bulk", type=float, nargs=2, default=(0.3, 1.5), help="pT range [GeV] of the v_n(pT) check")
    parser.add_argument("--plot-class", default="0-5%", help="centrality class of the ratio panel")
    parser.add_argument("--classes", type=float, nargs="+", default=CLASSES, help="centrality class edges [%%]")
    parser.add_argument("--centrality-ic", help="min-bias IC file whose TRENTo multiplicities define the centrality")
    parser.add_argument("--coverage", type=float, help="centrality range [%%] the min-bias sample covers "
                        "(default: computed from the --centrality-ic file's TRENTo parameters)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logsnr-range", nargs="+", default=["model"], metavar="LO HI",
                        help="time grid of the sampler: 'model' (the checkpoint's), 'full', or two log-SNR values")
    args = parser.parse_args()
    if args.samples_per_ic < 1 or args.bootstrap < 2 or (args.steps is not None and args.steps < 1):
        parser.error("--samples-per-ic and --steps must be >= 1 and --bootstrap >= 2")

    model = load_spectra_model(args.model, args.device)
    args.steps = model.default_steps if args.steps is None else args.steps
    if args.logsnr_range != ["model"]:
        try:
            model.set_logsnr_range(None if args.logsnr_range == ["full"] else tuple(float(v) for v in args.logsnr_range))
            make_grid(model.schedule, args.steps, "logsnr", model.logsnr_range)
        except (ValueError, TypeError):
            parser.error(f"--logsnr-range takes 'model', 'full' or two numbers, got {' '.join(args.logsnr_range)}")
    k = args.samples_per_ic
    try:  # a missing or foreign file is one line, before anything is computed
        records = [read_reference(path, model, args.all_records, k == 1) for path in args.reference]
        calibration = read_trento(args.centrality_ic).attrs["mult"] if args.centrality_ic else None
        if args.coverage is None and not args.centrality_ic:
            raise InputError("give --centrality-ic (a 'hicgen truth trento' min-bias file) or --coverage")
        coverage = ({"percent": args.coverage} if args.coverage is not None
                    else sample_coverage(trento_config_of(args.centrality_ic)))
    except InputError as err:
        parser.error(str(err))
    pt_edges, phi_edges = records[0]["pt_edges"], records[0]["phi_edges"]
    if any(not (np.array_equal(r["pt_edges"], pt_edges) and np.array_equal(r["phi_edges"], phi_edges)) for r in records):
        parser.error("the --reference files have different (pT, phi) bins; give files of one hydro production")
    expected, ic, eta_s, trento_mult = (np.concatenate([r[key] for r in records])
                                        for key in ("expected", "ic", "eta_s", "trento_mult"))
    ref = np.concatenate([r["histogram"] for r in records]) if k == 1 else None
    rows = np.arange(len(eta_s))
    if not rows.size:
        parser.error("no held-out records in the reference file (was the model trained on another file? try --all-records)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibration = trento_mult if calibration is None else calibration
    print(f"centrality: the sample covers {coverage['percent']:.2f} % of the measured Pb-Pb cross section", flush=True)
    centrality_of = centrality_percentile(calibration, trento_mult) * coverage["percent"] / 100.0
    ic_of, k_of = np.repeat(rows, k), np.tile(np.arange(k), rows.size)
    if ref is None:  # K draws per record, seeded apart from the chain's own histogram and from the model's
        ref = poisson_histograms(np.repeat(expected, k, axis=0), args.seed + 1_000_003, ic_of, k_of).astype(np.float64)
    coarse = np.linspace(pt_edges[0], pt_edges[-1], 9)  # the pT bins of every v_n(pT) comparison
    gen = np.empty((rows.size * k,) + expected.shape[1:], np.float32)
    m_smooth_of, m_diff_of = {}, {}  # per eta/s: per-IC sums of the smooth-flow terms over the K samples
    gen_mult = np.empty(rows.size)
    gen_expected = np.empty(expected.shape, np.float64)  # per IC: mean over its K generated spectra
    spread = {n: np.zeros(len(rows)) for n in (2, 3)}  # per IC: variance of V_n among its K generated spectra
    for eta in np.unique(eta_s):
        sel = np.flatnonzero(eta_s == eta)
        out_rows = (sel[:, None] * k + np.arange(k)).ravel()
        generated = generate_spectra(model, ic[sel], float(eta), k, args.steps, args.sampler, args.seed, args.device,
                                     args.precision, args.batch_size, compiled=args.compile)
        gen_mult[sel] = generated.reshape(sel.size, k, -1).sum(axis=2).mean(axis=1)
        gen_expected[sel] = generated.reshape((sel.size, k) + expected.shape[1:]).mean(axis=1)
        if model.generates_expected_counts:  # a histogram model has no smooth spectra to compare
            m_smooth_of[eta], m_diff_of[eta] = smooth_sums_of_samples(generated, k, pt_edges, phi_edges, coarse)
        if k > 1 and model.generates_expected_counts:
            for n, var in sample_variance_of_flow(generated.reshape((sel.size, k) + expected.shape[1:]), phi_edges).items():
                spread[n][sel] = var
        gen[out_rows] = to_histograms(model, generated, args.seed, ic_of[out_rows], k_of[out_rows])
    rng = np.random.default_rng(args.seed)
    results: dict = {}
    for eta in np.unique(eta_s):
        sel = eta_s == eta
        sel_k = np.repeat(sel, k)
        r_spec, m_spec = ref[sel_k], gen[sel_k].astype(np.float64)
        r_sums = per_ic(per_event_sums(r_spec, pt_edges, phi_edges), k)
        m_sums = per_ic(per_event_sums(m_spec, pt_edges, phi_edges), k)
        ref_mult = expected[sel].sum(axis=(1, 2))
        if model.generates_expected_counts:
            r_smooth, m_smooth = smooth_flow(expected[sel], phi_edges), m_smooth_of[eta]
            r_diff, m_diff = smooth_differential_terms(expected[sel], pt_edges, phi_edges, coarse), m_diff_of[eta]
        per_class = {}
        for label, mask in centrality_classes(centrality_of[sel], tuple(args.classes)):
            if mask.sum() < 10:
                continue
            mask_k = np.repeat(mask, k)
            per_class[label] = {"events": int(mask.sum()), "histograms": int(mask_k.sum()),
                                "integrated": paired_ratios(r_sums, m_sums, mask, args.bootstrap, rng),
                                **({"smooth": paired_bootstrap(r_smooth, m_smooth, mask, args.bootstrap, rng,
                                                               smooth_observables),
                                    "smooth_differential": bulk_smooth_ratio(r_diff, m_diff, mask, args.bootstrap, rng,
                                                                             coarse, args.bulk),
                                    "smooth_response": flow_vector_response(
                                        expected[sel][mask], gen_expected[sel][mask], phi_edges,
                                        {n: v[sel][mask] for n, v in spread.items()} if k > 1 else None)}
                                   if model.generates_expected_counts else {}),
                                "differential": bulk_flow_ratio(r_spec, m_spec, pt_edges, phi_edges, mask_k, coarse, args.bulk)}
        mult_ratio = gen_mult[sel] / ref_mult if model.generates_expected_counts else m_sums["mult"] / (k * ref_mult)
        results[f"{float(eta):g}"] = {"events": int(sel.sum()), "classes": per_class,
                                      "per_ic_mult_ratio": {"mean": float(mult_ratio.mean()), "std": float(mult_ratio.std(ddof=1))}}
    meta = {"reference": args.reference, "centrality_ic": args.centrality_ic, "coverage_percent": coverage["percent"],
            "coverage": coverage,
            "model": str(args.model), "steps": args.steps or model.default_steps,
            "sampler": args.sampler or model.default_sampler, "logsnr_range": model.logsnr_range,
            "samples_per_ic": k, "all_records": args.all_records,
            "bootstrap": args.bootstrap, "targets": TARGET, "bulk_pt": list(args.bulk)}
    (out / "closure.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))
    plot(results, args.plot_class, out / "closure_ratios.png")
    for eta, res in results.items():
        print(f"eta/s={eta}: per-IC multiplicity ratio {res['per_ic_mult_ratio']['mean']:.3f} "
              f"+- {res['per_ic_mult_ratio']['std']:.3f} (spread)")
        for label, cls in res["classes"].items():
            print(f"eta/s={eta} {label} (N={cls['events']}): {comparison_text(cls['integrated'])}")
            if "smooth" in cls:
                text = comparison_text(cls["smooth"])
                print(f"    smooth spectra: {text}")
                text = " ".join(f"{k} bulk max |ratio-1| {v['bulk_max_deviation']:.3f}"
                                for k, v in cls["smooth_differential"].items())
                print(f"    smooth spectra: {text}")
                text = " ".join(f"{k} slope {v['slope']:.3f} residual {v['residual_rms']:.4f} (rms {v['reference_rms']:.4f}"
                                + (f", sample spread {v['sample_spread_rms']:.4f})" if "sample_spread_rms" in v else ")")
                                for k, v in cls["smooth_response"].items())
                print(f"    flow-vector response: {text}")
    print(f"wrote {out / 'closure.json'} and {out / 'closure_ratios.png'}")


if __name__ == "__main__":
    main()
