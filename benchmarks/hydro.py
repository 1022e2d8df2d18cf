"""Benchmarks of the reference chain `hicgen truth trento` -> `hicgen truth hydro`.

  python benchmarks/hydro.py tune-norm [--events 3] [--norm 20] [--target 1943]
      Runs 0-5% Pb-Pb events (b < 3.5 fm) at eta/s = 0.1 with the default chain, measures dN_ch/deta and
      rescales the TRENTo norm assuming dN_ch/deta ~ norm (one step); prints the new norm. The default
      TrentoConfig.norm was set from this output.
  python benchmarks/hydro.py flow [--per-class 2] [--grid-step 0.3] [--out docs/hydro_bench]
      v2{2}, v2/eps2 and <pT> vs centrality for eta/s = 0, 0.1, 0.2, throughput, plots and a JSON summary.

Environment: set OMP_NUM_THREADS to the number of cores you mean to use.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from hicgen.truth import trento
from hicgen.truth.hydro.eos import LatticeEOS
from hicgen.truth.hydro.pipeline import PHI_EDGES, PT_EDGES, ChainConfig, run_batch

SIGMA_PBPB = 767.0  # fm^2, Pb-Pb hadronic cross section at 5.02 TeV (ALICE, 7.67 b): centrality c = pi b^2 / sigma
# ALICE charged-hadron v2{2, |Delta eta| > 1}, 0.2 < pT < 5 GeV, |eta| < 0.8, Pb-Pb 5.02 TeV,
# PRL 116 (2016) 132302 (values as read from that paper; check HEPData ins1419244 before quantitative use)
ALICE_V2 = {(0, 5): 0.0283, (5, 10): 0.0476, (10, 20): 0.0656, (20, 30): 0.0843, (30, 40): 0.0955,
            (40, 50): 0.1002}
CLASSES = list(ALICE_V2)


def b_range(c_lo: float, c_hi: float) -> tuple[float, float]:
    """Impact-parameter interval of a centrality class (geometric: c = pi b^2 / sigma_PbPb)."""
    return math.sqrt(c_lo / 100 * SIGMA_PBPB / math.pi), math.sqrt(c_hi / 100 * SIGMA_PBPB / math.pi)


def v2_of(spectrum: np.ndarray, pt_min: float = 0.2) -> tuple[float, float]:
    """Yield-weighted v2 and event-plane angle of one smooth spectrum (64, 64) over pt_min < pT < 2 GeV."""
    pt = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    phi = 0.5 * (PHI_EDGES[1:] + PHI_EDGES[:-1])
    w = spectrum * (pt * np.diff(PT_EDGES))[:, None]
    w = w[pt > pt_min].sum(0)
    q = np.sum(w * np.exp(2j * phi)) / np.sum(w)
    return float(abs(q)), float(np.angle(q) / 2)


def tune_norm(args) -> None:
    eos = LatticeEOS()
    cfg = trento.TrentoConfig(norm=args.norm, b_max=b_range(0, 5)[1])
    prof = np.concatenate([p for p, _ in trento.generate(args.events, cfg, seed=args.seed, batch=args.events)])
    t0 = time.time()
    res = run_batch(prof, cfg.grid_step, 0.1, eos, ChainConfig())
    dn = float(np.mean(res.dnch_deta))
    out = {"norm": args.norm, "events": args.events, "dnch_deta": res.dnch_deta.tolist(), "mean": dn,
           "new_norm": args.norm * args.target / dn, "seconds": time.time() - t0,
           "energy_balance": res.energy_balance.tolist(), "mean_pt": res.mean_pt.tolist()}
    print(json.dumps(out, indent=1))


def flow(args) -> None:
    eos = LatticeEOS()
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = []
    t_total, n_total = 0.0, 0
    classes = [c for c in CLASSES if args.classes is None or f"{c[0]}-{c[1]}" in args.classes.split(",")]
    for c_lo, c_hi in classes:
        lo, hi = b_range(c_lo, c_hi)
        cfg = trento.TrentoConfig(b_min=lo, b_max=hi, grid_step=args.grid_step,
                                  grid_max=round(10.0 / args.grid_step) * args.grid_step)
        prof, attrs = next(trento.generate(args.per_class, cfg, seed=args.seed + c_lo, batch=args.per_class))
        for eta_s in (0.0, 0.1, 0.2):
            t0 = time.time()
            res = run_batch(prof, cfg.grid_step, eta_s, eos, ChainConfig(grid_max=args.hydro_grid_max))
            dt = time.time() - t0
            t_total += dt
            n_total += len(prof)
            v2 = np.array([v2_of(s)[0] for s in res.spectrum])
            rows.append({"class": [c_lo, c_hi], "eta_s": eta_s, "v2_2": float(np.sqrt(np.mean(v2**2))),
                         "v2": v2.tolist(), "e2": attrs["e2"].tolist(), "mean_pt": res.mean_pt.tolist(),
                         "dnch_deta": res.dnch_deta.tolist(), "seconds": dt, "events": len(prof),
                         "energy_balance": res.energy_balance.tolist()})
            print(json.dumps(rows[-1]), flush=True)
    summary = {"rows": rows, "alice_v2": {f"{a}-{b}": v for (a, b), v in ALICE_V2.items()},
               "seconds_per_event": t_total / max(n_total, 1), "grid_step": args.grid_step,
               "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "date": time.strftime("%Y-%m-%d")}
    (outdir / "flow.json").write_text(json.dumps(summary, indent=1))
    plot(summary, outdir)


def plot(summary: dict, outdir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    for eta_s, color in ((0.0, "C0"), (0.1, "C1"), (0.2, "C2")):
        rows = [r for r in summary["rows"] if r["eta_s"] == eta_s]
        x = [0.5 * (r["class"][0] + r["class"][1]) for r in rows]
        ax[0].plot(x, [r["v2_2"] for r in rows], "o-", color=color, label=f"hicgen eta/s={eta_s}")
        ax[1].plot(x, [np.mean(np.array(r["v2"]) / np.array(r["e2"])) for r in rows], "o-", color=color)
        ax[2].plot(x, [np.mean(r["mean_pt"]) for r in rows], "o-", color=color)
    ax[0].plot([0.5 * (a + b) for a, b in CLASSES], list(ALICE_V2.values()), "ks", label="ALICE v2{2} 5.02 TeV")
    ax[0].set(xlabel="centrality [%]", ylabel="v2{2}")
    ax[1].set(xlabel="centrality [%]", ylabel="<v2/eps2>")
    ax[2].set(xlabel="centrality [%]", ylabel="<pT> [GeV] (direct pi, K, p)")
    ax[0].legend(fontsize=8)
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
    f = sub.add_parser("flow")
    f.add_argument("--per-class", type=int, default=2)
    f.add_argument("--grid-step", type=float, default=0.3)
    f.add_argument("--hydro-grid-max", type=float, default=13.5)
    f.add_argument("--seed", type=int, default=100)
    f.add_argument("--out", default="docs/hydro_bench")
    f.add_argument("--classes", default=None, help="comma list such as 0-5,20-30,40-50 (default: all six)")
    args = ap.parse_args()
    tune_norm(args) if args.cmd == "tune-norm" else flow(args)


if __name__ == "__main__":
    main()
