"""Benchmarks of the reference chain `hicgen truth trento` -> `hicgen truth hydro`.

  python benchmarks/hydro.py tune-norm [--events 3] [--norm 20] [--target 1943] [--decays]
      Runs 0-5% Pb-Pb events (b < 3.5 fm) at eta/s = 0.1 with the default chain, measures dN_ch/deta and
      rescales the TRENTo norm assuming dN_ch/deta ~ norm (one step); prints the new norm. The default
      TrentoConfig.norm was set from this output; --decays: the chain with resonance decays.
  python benchmarks/hydro.py flow --spectra spectra_mb.h5 [--ic ic_mb.h5 | --coverage 70] [--out docs/hydro_bench]
      From a min-bias file of `hicgen truth hydro --eta-s 0,0.1,0.2` (ICs with b up to the `coverage` percentile):
      v2{2}, v2{4}, v3{2} (generic-framework cumulants of the Poisson-sampled histograms, jackknife errors),
      eps_n{2}, v_n{2}/eps_n{2}, <pT>, dN_ch/deta per centrality class, against ALICE; flow.json and flow.png.
  python benchmarks/hydro.py records a.h5 b.h5 [--json out.json]
      Two `hicgen truth hydro` files of the same ICs and eta/s (other code, grid or settings): per eta/s, the
      records' relative differences of dN/dy and <pT> and the differences of their flow vectors V2, V3 (smooth
      spectra, all pT), largest and rms; with a's surface_at_grid_edge, also for the records whose switching surface
      stayed inside the hydro grid and for those where it ran into the edge.
  python benchmarks/hydro.py throughput [--events 8] [--grid-step 0.4] [--device cuda] [--compile] [--decays]
      Seconds per event of trento -> hydro -> Cooper-Frye for one batch (after a one-event warm-up); --compile adds
      the compiled time step side by side, --decays the chain with resonance decays (and the time to build its
      tables, once per process).
  python benchmarks/hydro.py decays [--events 8] [--centrality 20 40] [--out docs/hydro_bench]
      The chain without and with resonance decays on the same initial geometries, each at its tuned norm: pi/K/p
      yields, <pT> and v2(pT); decays.json, decays.png.

Environment: set OMP_NUM_THREADS to the number of cores you mean to use.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hicgen.errors import InputError
from hicgen.truth import trento, trento_io
from hicgen.truth.hydro.eos import LatticeEOS
from hicgen.truth.hydro.pipeline import ChainConfig, run_batch

# ALICE charged-hadron flow, Pb-Pb 5.02 TeV, |eta| < 0.8, 0.2 < pT < 5 GeV, two-particle cumulants with
# |Delta eta| > 1: PRL 116 (2016) 132302, HEPData ins1419244 (doi:10.17182/hepdata.72886.v2), table 1 (v2{2},
# v2{4}) and table 2 (v3{2}); value and total (stat + sys in quadrature) uncertainty per centrality class.
ALICE_V2_2 = {(0, 5): (0.02839, 0.00071), (5, 10): (0.04566, 0.00094), (10, 20): (0.06551, 0.00105),
              (20, 30): (0.08707, 0.00138), (30, 40): (0.09910, 0.00159), (40, 50): (0.10414, 0.00172),
              (50, 60): (0.10286, 0.00188), (60, 70): (0.09746, 0.00236)}
ALICE_V2_4 = {(5, 10): (0.03670, 0.00265), (10, 20): (0.05867, 0.00105), (20, 30): (0.07798, 0.00192),
              (30, 40): (0.08673, 0.00297), (40, 50): (0.08903, 0.00314), (50, 60): (0.08351, 0.00252)}
ALICE_V3_2 = {(0, 5): (0.02067, 0.00114), (5, 10): (0.02320, 0.00134), (10, 20): (0.02799, 0.00137),
              (20, 30): (0.03093, 0.00155), (30, 40): (0.03314, 0.00174), (40, 50): (0.03234, 0.00202),
              (50, 60): (0.02705, 0.00309), (60, 70): (0.02769, 0.00562)}
CLASSES = list(ALICE_V2_2)
ETA_S = (0.0, 0.1, 0.2)


def b_range(c_lo: float, c_hi: float) -> tuple[float, float]:
    """Impact-parameter interval of a centrality class (geometric: c = pi b^2 / sigma_PbPb)."""
    sigma = trento.PBPB_HADRONIC_CROSS_SECTION
    return math.sqrt(c_lo / 100 * sigma / math.pi), math.sqrt(c_hi / 100 * sigma / math.pi)


def tune_norm(args) -> None:
    eos = LatticeEOS()
    cfg = trento.TrentoConfig(norm=args.norm, b_max=b_range(0, 5)[1])
    prof = np.concatenate([p for p, _ in trento.generate(args.events, cfg, seed=args.seed, batch=args.events)])
    t0 = time.time()
    res = run_batch(prof, cfg.grid_step, 0.1, eos, ChainConfig(decays=args.decays))
    dn = float(np.mean(res.dnch_deta))
    out = {"norm": args.norm, "events": args.events, "decays": args.decays, "dnch_deta": res.dnch_deta.tolist(), "mean": dn,
           "new_norm": args.norm * args.target / dn, "seconds": time.time() - t0,
           "energy_balance": res.energy_balance.tolist(), "mean_pt": res.mean_pt.tolist(),
           "species_dndy": res.species_dndy.tolist()}  # pi+-, K+-, p pbar
    print(json.dumps(out, indent=1))


def centrality(mult: np.ndarray, coverage: float) -> np.ndarray:
    """Centrality [%] of each initial state by its TRENTo multiplicity (the standard TRENTo practice, as
    experiments use a multiplicity estimator), for a sample that covers the `coverage` most central percent."""
    from hicgen.analysis.flow import centrality_percentile

    return centrality_percentile(mult, mult) * coverage / 100.0


def flow(args) -> None:
    """v_n{2}, v2{4}, eps_n, v2/eps2, <pT> and dN_ch/deta per centrality class and eta/s from a spectra file."""
    from hicgen.analysis.flow import cumulants, from_spectra
    from hicgen.truth.spectra_data import read_spectra

    data, attrs = read_spectra(args.spectra)
    outdir = Path(args.out)
    pt_edges, phi_edges = data["pt_edges"], data["phi_edges"]
    first = int(np.searchsorted(pt_edges, args.pt_min - 1e-9))  # first bin whose lower edge is >= pt_min
    first_ic = np.unique(data["ic_index"], return_index=True)[1]
    if args.coverage is None and args.ic is None:
        raise InputError("give --ic (the production's 'hicgen truth trento' file) or --coverage")
    coverage = (args.coverage if args.coverage is not None
                else trento.sample_coverage(trento.trento_config_of(args.ic))["percent"])
    outdir.mkdir(parents=True, exist_ok=True)
    if args.ic is not None:  # the whole IC file is the min-bias reference (a partial production may be unbalanced)
        from hicgen.analysis.flow import centrality_percentile

        reference = trento_io.read_trento(args.ic).attrs["mult"]
        cent = centrality_percentile(reference, data["mult"]) * coverage / 100.0
    else:
        cent_of_ic = dict(zip(data["ic_index"][first_ic], centrality(data["mult"][first_ic], coverage)))
        cent = np.array([cent_of_ic[i] for i in data["ic_index"]])
    rows = []
    for eta_s in ETA_S:
        on = np.isclose(data["eta_s"], eta_s)
        if not on.any():
            continue
        fp = from_spectra(data["histogram"][on][:, first:], pt_edges[first:], phi_edges)
        for c_lo, c_hi in CLASSES:
            sel = (cent[on] >= c_lo) & (cent[on] < c_hi)
            if sel.sum() < 3:
                continue
            cum = cumulants(fp, harmonics=(2, 3), orders=(2, 4), select=sel)
            e2, e3 = data["e2"][on][sel], data["e3"][on][sel]
            boot = np.random.default_rng(0).integers(0, sel.sum(), (200, sel.sum()))
            resp = np.array([np.sqrt(np.mean(data["e2"][on][sel][b] ** 2)) for b in boot])
            rows.append({
                "class": [c_lo, c_hi], "eta_s": eta_s, "events": int(sel.sum()),
                "v2{2}": cum["n=2"]["v{2}"], "v2{2}_err": cum["n=2"]["v{2}_err"],
                "v2{4}": cum["n=2"]["v{4}"], "v2{4}_err": cum["n=2"]["v{4}_err"],
                "v3{2}": cum["n=3"]["v{2}"], "v3{2}_err": cum["n=3"]["v{2}_err"],
                "eps2{2}": float(np.sqrt(np.mean(e2**2))), "eps2{2}_err": float(resp.std(ddof=1)),
                "eps3{2}": float(np.sqrt(np.mean(e3**2))),
                "mean_pt": float(np.mean(data["mean_pt"][on][sel])),
                "dnch_deta": float(np.mean(data["dnch_deta"][on][sel])),
                "dnch_deta_err": float(np.std(data["dnch_deta"][on][sel], ddof=1) / np.sqrt(sel.sum())),
                "energy_balance_max": float(np.max(np.abs(data["energy_balance"][on][sel]))),
            })
            r = rows[-1]
            r["v2{2}/eps2{2}"] = r["v2{2}"] / r["eps2{2}"]
            r["v3{2}/eps3{2}"] = r["v3{2}"] / r["eps3{2}"]
            print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    summary = {"rows": rows, "source": str(args.spectra), "records": int(len(data["eta_s"])),
               "initial_states": int(len(first_ic)), "pt_range": [float(pt_edges[first]), float(pt_edges[-1])],
               "coverage_percent": coverage, "grid_step": float(attrs["grid_step"]),
               "hydro_grid_max": float(attrs["hydro_grid_max"]), "eos": str(attrs["eos"]),
               "alice": {"v2{2}": {f"{a}-{b}": v for (a, b), v in ALICE_V2_2.items()},
                         "v2{4}": {f"{a}-{b}": v for (a, b), v in ALICE_V2_4.items()},
                         "v3{2}": {f"{a}-{b}": v for (a, b), v in ALICE_V3_2.items()}},
               "date": time.strftime("%Y-%m-%d")}
    (outdir / "flow.json").write_text(json.dumps(summary, indent=1))
    plot(summary, outdir)


def throughput(args) -> None:
    """Seconds per event of the whole chain (trento profile -> hydro -> Cooper-Frye) for one batch of events; with
    --compile both, eager and with the compiled time step, side by side on the same batch (the compiled one twice:
    its first run includes the compilation), and the largest relative difference of their spectra."""
    eos = LatticeEOS()
    lo, hi = args.b_range
    cfg = trento.TrentoConfig(b_min=lo, b_max=hi, grid_step=args.grid_step,
                              grid_max=round(10.0 / args.grid_step) * args.grid_step)
    chain = ChainConfig(grid_max=args.hydro_grid_max)
    prof, _ = next(trento.generate(args.events, cfg, seed=args.seed, batch=args.events))
    run_batch(prof[:1], cfg.grid_step, 0.1, eos, chain, args.device)  # warm-up

    def timed(compile: bool, decays: bool = False):
        t0 = time.time()
        res = run_batch(prof, cfg.grid_step, 0.1, eos, replace(chain, decays=decays), args.device, compile=compile)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return res, time.time() - t0

    res, dt = timed(False)
    row = {"events": args.events, "b_range": [lo, hi], "grid_step": args.grid_step, "device": args.device,
           "threads": torch.get_num_threads(), "seconds": dt, "seconds_per_event": dt / args.events,
           "tau_end_max": float(res.tau_end.max()), "machine": platform.processor() or platform.machine(),
           "date": time.strftime("%Y-%m-%d")}
    if args.compile:
        _, first = timed(True)
        fused, again = timed(True)
        scale = np.abs(res.spectrum).max(axis=(1, 2), keepdims=True)
        row.update({"compiled_first_seconds": first, "compiled_seconds": again,
                    "compiled_seconds_per_event": again / args.events, "speedup": dt / again,
                    "max_relative_difference": float((np.abs(fused.spectrum - res.spectrum) / scale).max())})
    if args.decays:
        from hicgen.truth.hydro.pipeline import PT_EDGES, PT_TAIL
        from hicgen.truth.hydro.resonances import feed_down

        t0 = time.time()  # the decay tables, built once per process
        feed_down(np.concatenate([0.5 * (PT_EDGES[1:] + PT_EDGES[:-1]), PT_TAIL]))
        row["decay_tables_seconds"] = time.time() - t0
        decayed, seconds = timed(False, decays=True)
        row.update({"decays_seconds": seconds, "decays_seconds_per_event": seconds / args.events,
                    "decays_slowdown": seconds / dt,
                    "dnch_deta_ratio": (decayed.dnch_deta / res.dnch_deta).tolist(),
                    "mean_pt": res.mean_pt.tolist(), "decays_mean_pt": decayed.mean_pt.tolist()})
    print(json.dumps(row))


def decays(args) -> None:
    """The chain without and with resonance decays on the same initial geometries, each at its own tuned norm
    (TrentoConfig().norm, NORM_WITH_DECAYS): per species (pi, K, p) dN/dy, <pT> and v2{2}(pT) against the
    charged-hadron flow vector of 0-2 GeV (hicgen.analysis.flow_table.species_differential_terms, as `hicgen data
    flow` measures it), and the charged v2{2}; decays.json and decays.png in --out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hicgen.analysis.flow_table import SPECIES_NAMES, species_differential_terms
    from hicgen.analysis.spectra_closure import smooth_differential_observables
    from hicgen.truth.hydro.pipeline import PHI_EDGES, PT_EDGES
    from hicgen.truth.spectra_data import bin_measure

    eos = LatticeEOS()
    lo, hi = b_range(*args.centrality)
    pt = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    rows, curves = {}, {}
    for label, norm, with_decays in (("direct", trento.TrentoConfig().norm, False),
                                     ("with decays", trento.NORM_WITH_DECAYS, True)):
        cfg = trento.TrentoConfig(b_min=lo, b_max=hi, grid_step=args.grid_step, norm=norm,
                                  grid_max=round(10.0 / args.grid_step) * args.grid_step)
        prof, _ = next(trento.generate(args.events, cfg, seed=args.seed, batch=args.events))
        t0 = time.time()
        res = run_batch(prof, cfg.grid_step, args.eta_s, eos, ChainConfig(grid_max=args.hydro_grid_max,
                                                                            decays=with_decays))
        seconds = time.time() - t0
        # each species' v2{2}(pT) against the charged V2 of 0-2 GeV, as `hicgen data flow` measures it (per fine bin)
        expected = res.spectrum * bin_measure(PT_EDGES, PHI_EDGES)
        terms = species_differential_terms(res.species_pt_dndy, res.species_pt_flow, expected, PT_EDGES, PHI_EDGES,
                                           PT_EDGES)
        sums = {k: float(v.sum()) for k, v in terms.items()}
        by_bin = smooth_differential_observables(sums)
        v2 = np.array([[by_bin[f"v2{{2}}(pT)[{j}] {name}"] for j in range(len(pt))] for name in SPECIES_NAMES])
        curves[label] = v2
        rows[label] = {"norm": norm, "seconds": seconds, "dnch_deta": res.dnch_deta.tolist(),
                       "mean_pt": res.mean_pt.tolist(), "species_dndy": res.species_dndy.mean(0).tolist(),
                       "v2_charged": float(np.sqrt(sums["v2^2"] / sums["one"])), "v2_pt": v2.tolist()}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (label, v2), style in zip(curves.items(), ("--", "-")):
        for k, (name, colour) in enumerate(zip(("pi", "K", "p"), ("C0", "C1", "C2"))):
            axes[0].plot(pt, v2[k], style, color=colour, label=f"{name}, {label}")
        dndy = np.array(rows[label]["species_dndy"])
        axes[1].bar(np.arange(3) + (0.2 if label == "with decays" else -0.2), dndy / dndy[0], width=0.4, label=label)
    axes[0].set(xlabel=r"$p_{\rm T}$ [GeV]", ylabel=r"$v_2\{2\}(p_{\rm T})$ w.r.t. the charged $V_2$",
                title=f"{args.centrality[0]:g}-{args.centrality[1]:g} %, eta/s = {args.eta_s:g}, {args.events} events")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set(xticks=range(3), xticklabels=["pi", "K", "p"], ylabel="dN/dy relative to pions", yscale="log",
                title="species ratios")
    axes[1].legend()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "decays.png", dpi=110)
    result = {"centrality": args.centrality, "events": args.events, "eta_s": args.eta_s, "grid_step": args.grid_step,
              "seed": args.seed, "pt": pt.tolist(), "date": time.strftime("%Y-%m-%d"),
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), **rows}
    (out / "decays.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "v2_pt"} if isinstance(v, dict) else v
                      for k, v in result.items() if k != "pt"}, indent=1))


def _differences(a: dict, b: dict, counts: list, phi_edges: np.ndarray, rows: np.ndarray) -> dict:
    """How records `rows` of b differ from a's (both in one order): dN/dy and <pT> relative differences, and
    |V_n(b) - V_n(a)| of the smooth spectra's flow vectors (n = 2, 3), largest and rms."""
    from hicgen.analysis.flow import spectra_flow_vectors

    result = {"records": int(rows.sum())}
    for name in ("dnch_dy", "mean_pt"):
        rel = b[name][rows] / a[name][rows] - 1
        result[name] = {"max_abs_rel": float(np.abs(rel).max()), "mean_rel": float(rel.mean())}
    for n in (2, 3):
        va, vb = (spectra_flow_vectors(c[rows], phi_edges, n) for c in counts)
        diff = np.abs(vb - va)
        result[f"V{n}"] = {"max_abs_diff": float(diff.max()), "rms_diff": float(np.sqrt((diff**2).mean())),
                           "mean_abs": float(np.abs(va).mean())}
    return result


def record_differences(a_path: str, b_path: str) -> dict:
    """Per eta/s, how the records of spectra file b differ from a's, matched by (ic_index, eta/s) (_differences);
    where a records surface_at_grid_edge, also for its records whose switching surface stayed inside the hydro grid
    and for those where it ran into the edge."""
    import h5py

    from hicgen.truth.spectra_data import bin_measure
    from hicgen.truth.spectra_data import read_spectra_rows

    names = ("ic_index", "eta_s", "spectrum", "dnch_dy", "mean_pt")
    (a, _), (b, _) = (read_spectra_rows(path, names) for path in (a_path, b_path))
    keys = [list(zip(x["ic_index"].tolist(), np.round(x["eta_s"].astype(np.float64), 6).tolist())) for x in (a, b)]
    if sorted(keys[0]) != sorted(keys[1]) or len(set(keys[0])) != len(keys[0]):
        raise InputError(f"'{a_path}' and '{b_path}' hold different records; give two runs of the same ICs and eta/s")
    with h5py.File(a_path, "r") as f:
        flagged = f["surface_at_grid_edge"][()] if "surface_at_grid_edge" in f else None
    measure, phi_edges = bin_measure(a["pt_edges"], a["phi_edges"]), a["phi_edges"]
    order_a = np.lexsort((a["eta_s"], a["ic_index"]))
    a, b = ({k: x[k][o] for k in names} for x, o in ((a, order_a), (b, np.lexsort((b["eta_s"], b["ic_index"])))))
    at_edge = None if flagged is None else flagged[order_a]
    counts = [x["spectrum"].astype(np.float64) * measure for x in (a, b)]
    out = {}
    for value in np.unique(np.round(a["eta_s"].astype(np.float64), 6)):
        rows = np.isclose(a["eta_s"], value)
        out[f"{value:g}"] = result = _differences(a, b, counts, phi_edges, rows)
        if at_edge is not None:
            for group, pick in (("surface_inside", rows & ~at_edge), ("surface_at_grid_edge", rows & at_edge)):
                if pick.any():
                    result[group] = _differences(a, b, counts, phi_edges, pick)
    return out


def records(args) -> None:
    result = {"a": args.a, "b": args.b, "eta_s": record_differences(args.a, args.b),
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def plot(summary: dict, outdir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(14, 8))
    ax = ax.ravel()
    mid = lambda c: 0.5 * (c[0] + c[1])  # noqa: E731
    for eta_s, color in zip(ETA_S, ("C0", "C1", "C2")):
        rows = [r for r in summary["rows"] if r["eta_s"] == eta_s]
        if not rows:
            continue
        x = [mid(r["class"]) for r in rows]
        kw = dict(color=color, marker="o", capsize=2)
        ax[0].errorbar(x, [r["v2{2}"] for r in rows], [r["v2{2}_err"] for r in rows], label=f"hicgen eta/s={eta_s}", **kw)
        ax[1].errorbar(x, [r["v2{4}"] for r in rows], [r["v2{4}_err"] for r in rows], **kw)
        ax[2].errorbar(x, [r["v3{2}"] for r in rows], [r["v3{2}_err"] for r in rows], **kw)
        ax[3].plot(x, [r["v2{2}/eps2{2}"] for r in rows], "o-", color=color, label=f"v2/eps2 eta/s={eta_s}")
        ax[3].plot(x, [r["v3{2}/eps3{2}"] for r in rows], "s--", color=color, alpha=0.6)
        ax[4].plot(x, [r["mean_pt"] for r in rows], "o-", color=color)
        ax[5].errorbar(x, [r["dnch_deta"] for r in rows], [r["dnch_deta_err"] for r in rows], **kw)
    for i, (name, ref) in enumerate((("v2{2}", ALICE_V2_2), ("v2{4}", ALICE_V2_4), ("v3{2}", ALICE_V3_2))):
        ax[i].errorbar([mid(c) for c in ref], [v for v, _ in ref.values()], [e for _, e in ref.values()], fmt="ks",
                       label="ALICE 5.02 TeV (HEPData ins1419244)")
        ax[i].set(xlabel="centrality [%]", ylabel=name)
    ax[0].legend(fontsize=7)
    ax[3].legend(fontsize=7)
    ax[3].set(xlabel="centrality [%]", ylabel="v2{2}/eps2{2} (o), v3{2}/eps3{2} (s)")
    ax[4].set(xlabel="centrality [%]", ylabel="<pT> [GeV] (direct pi, K, p)")
    ax[5].set(xlabel="centrality [%]", ylabel="dN_ch/deta", yscale="log")
    fig.suptitle(f"hicgen reference chain, {summary['initial_states']} TRENTo Pb-Pb ICs x 3 eta/s, "
                 f"{summary['pt_range'][0]:.2f} < pT < {summary['pt_range'][1]:.0f} GeV, grid {summary['grid_step']} fm")
    fig.tight_layout()
    fig.savefig(outdir / "flow.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tune-norm")
    t.add_argument("--events", type=int, default=3)
    t.add_argument("--norm", type=float, default=trento.TrentoConfig().norm)
    t.add_argument("--target", type=float, default=1943.0)  # ALICE dN_ch/deta 0-5% Pb-Pb 5.02 TeV, PRL 116 (2016) 222302
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--decays", action="store_true", help="the chain with resonance decays (hicgen truth hydro --decays)")
    f = sub.add_parser("flow")
    f.add_argument("--spectra", required=True, help="min-bias file of 'hicgen truth hydro' with eta/s 0,0.1,0.2")
    f.add_argument("--coverage", type=float, help="centrality range [%%] the IC sample covers (default: computed "
                   "from the --ic file's TRENTo parameters, hicgen.truth.trento.sample_coverage)")
    f.add_argument("--ic", default=None, help="the production's IC file: its multiplicities define the centrality")
    f.add_argument("--pt-min", type=float, default=0.2, help="lower pT cut [GeV] (rounded up to a bin edge)")
    f.add_argument("--out", default="docs/hydro_bench")
    r = sub.add_parser("records")
    r.add_argument("a", help="a hicgen truth hydro file")
    r.add_argument("b", help="another of the same ICs and eta/s")
    r.add_argument("--json", help="also write the result here")
    p = sub.add_parser("throughput")
    p.add_argument("--events", type=int, default=8)
    p.add_argument("--b-range", type=float, nargs=2, default=b_range(0, 70), help="[fm] (default: 0-70%%)")
    p.add_argument("--grid-step", type=float, default=0.4)
    p.add_argument("--hydro-grid-max", type=float, default=14.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time the compiled time step, side by side")
    p.add_argument("--decays", action="store_true", help="also time the chain with resonance decays, side by side")
    d = sub.add_parser("decays")
    d.add_argument("--events", type=int, default=8)
    d.add_argument("--centrality", type=float, nargs=2, default=(20.0, 40.0), help="[%%] geometric class")
    d.add_argument("--eta-s", type=float, default=0.1)
    d.add_argument("--grid-step", type=float, default=0.4)
    d.add_argument("--hydro-grid-max", type=float, default=14.0)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--out", default="docs/hydro_bench")
    args = ap.parse_args()
    try:
        {"tune-norm": tune_norm, "flow": flow, "records": records, "throughput": throughput,
         "decays": decays}[args.cmd](args)
    except InputError as err:  # a missing or foreign file, an IC file without its TRENTo parameters: one line
        ap.error(str(err))


if __name__ == "__main__":
    main()
