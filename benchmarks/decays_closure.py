"""The resonance feed-down of hicgen.truth.hydro.resonances against Pythia 8's own particle decays.

    python benchmarks/decays_closure.py [--parents 1000000] [--temperature 0.15] [--v2 0.1] [--out docs/hydro_bench]

Every decaying hadron of the table (c tau < 1 cm, below 2 GeV) is emitted by a boost-invariant Boltzmann source,
dN/(dY PT dPT dPhi) ~ (2J + 1) exp(-MT/T) (1 + 2 v2 cos 2 Phi), at its pole mass. The same source goes two ways:
through resonances.FeedDown (the exact kernels, flat phase space) and, as Monte Carlo parents uniform in |Y| < 4,
through pythia8mc's decayer (ParticleDecays:limitTau0 with tau0Max = 10 mm, fixed masses: modeBreitWigner = 0, and
Pythia's own matrix elements where it has them, e.g. omega -> 3 pi). Compared: the final pi+-, K+-, p pbar from the
decays at |y| < 0.5, dN/dy in pT ranges and v2(pT). Writes decays_closure.json and decays_closure.png in --out.
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

from hicgen.truth.hydro import resonances
from hicgen.truth.hydro.pipeline import PT_EDGES, PT_TAIL

PT_OUT = np.concatenate([0.5 * (PT_EDGES[1:] + PT_EDGES[:-1]), PT_TAIL])
RANGES = PT_EDGES[[0, 4, 8, 16, 24, 32, 48, 64]]  # pT ranges of whole output bins
Y_MAX = 4.0


def thermal_yield(mass: float, temperature: float) -> float:
    """int PT dPT dPhi exp(-MT/T) per unit rapidity = 2 pi T e^(-M/T) (M + T)."""
    return 2 * math.pi * temperature * math.exp(-mass / temperature) * (mass + temperature)


def kernels_side(temperature: float, v2: float) -> np.ndarray:
    """FeedDown of the Boltzmann sources: (3, K, 64) dN/(dy pT dpT dphi) of pi+-, K+-, p pbar from the decays."""
    fd = resonances.feed_down(PT_OUT)
    phi_in = -math.pi + (np.arange(resonances.PHI_POINTS) + 0.5) * 2 * math.pi / resonances.PHI_POINTS
    phi_out = -math.pi + (np.arange(64) + 0.5) * 2 * math.pi / 64
    mt = np.sqrt(np.array([sp.mass for sp in fd.species])[:, None] ** 2 + fd.grid[None, :] ** 2)
    thermal = np.exp(-mt / temperature)[:, :, None] * (1 + 2 * v2 * np.cos(2 * phi_in))[None, None, :]
    out = fd.spectra(torch.as_tensor(thermal)[None], torch.as_tensor(phi_in), torch.as_tensor(phi_out))
    return out[0].numpy()


def pythia_side(n_parents: int, temperature: float, v2: float, seed: int) -> tuple[dict, float]:
    """Monte Carlo parents decayed by Pythia: {|pid|: (pT, phi)} of the final pi, K, p at |y| < 0.5, and the
    parents per unit rapidity that the sample stands for."""
    import pythia8mc

    table = resonances.hadron_table()
    parents = [h for h in table.values() if h.channels and abs(h.pid) not in resonances.FINAL]
    weight = np.array([h.degeneracy * thermal_yield(h.mass, temperature) for h in parents])
    rng = np.random.default_rng(seed)
    which = rng.choice(len(parents), n_parents, p=weight / weight.sum())
    pythia = pythia8mc.Pythia("", False)
    for line in ("ProcessLevel:all = off", "ParticleDecays:limitTau0 = on",
                 f"ParticleDecays:tau0Max = {resonances.CTAU_PRIMARY_MM}", "ParticleData:modeBreitWigner = 0",
                 "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}"):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected '{line}'")
    pythia.init()
    found: dict[int, list] = {pid: [] for pid in resonances.FINAL}
    event = pythia.event
    for k in which:
        h = parents[k]
        # MT from MT exp(-MT/T) above M: exponential (weight M) or Gamma(2) (weight T) in MT - M
        extra = rng.exponential(temperature) if rng.random() < h.mass / (h.mass + temperature) else rng.gamma(2, temperature)
        mt = h.mass + extra
        while True:  # azimuth with the weight 1 + 2 v2 cos 2 phi
            phi = rng.uniform(-math.pi, math.pi)
            if rng.random() * (1 + 2 * v2) < 1 + 2 * v2 * math.cos(2 * phi):
                break
        pt, y = math.sqrt(mt * mt - h.mass * h.mass), rng.uniform(-Y_MAX, Y_MAX)
        event.reset()
        event.append(h.pid, 1, 0, 0, pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(y), mt * math.cosh(y), h.mass)
        if not pythia.next():
            continue
        for i in range(1, event.size()):
            p = event[i]
            if p.isFinal() and p.idAbs() in found and abs(p.y()) < 0.5:
                found[p.idAbs()].append((p.pT(), p.phi()))
    per_y = weight.sum() / (n_parents / (2 * Y_MAX))  # parents per unit rapidity that one Monte Carlo parent stands for
    return {pid: np.array(v).reshape(-1, 2) for pid, v in found.items()}, per_y


def compare(kernel: np.ndarray, mc: dict, scale: float) -> dict:
    """Per species and pT range: dN/dy from the kernels and from Pythia (with its Poisson error), and v2."""
    widths = np.concatenate([np.diff(PT_EDGES), np.full(len(PT_TAIL), 0.125)])
    phi_out = -math.pi + (np.arange(64) + 0.5) * 2 * math.pi / 64
    result = {}
    for k, pid in enumerate(resonances.FINAL):
        dn = kernel[k].mean(1) * 2 * math.pi * PT_OUT * widths  # per output bin
        v2 = (kernel[k] * np.cos(2 * phi_out)).sum(1) / kernel[k].sum(1)
        pt, phi = mc[pid][:, 0], mc[pid][:, 1]
        rows = []
        for lo, hi in zip(RANGES[:-1], RANGES[1:]):
            bins = (PT_OUT > lo) & (PT_OUT < hi)
            sel = (pt > lo) & (pt < hi)
            count = int(sel.sum())
            model = float(dn[bins].sum())
            rows.append({"pt": [float(lo), float(hi)], "kernels": model, "pythia": count * scale,
                         "pythia_err": math.sqrt(count) * scale,
                         "ratio": model / (count * scale) if count else None,
                         "ratio_err": model / (count * scale) / math.sqrt(count) if count else None,
                         "v2_kernels": float((v2[bins] * dn[bins]).sum() / model),
                         "v2_pythia": float(np.cos(2 * phi[sel]).mean()) if count else None,
                         "v2_pythia_err": float(np.cos(2 * phi[sel]).std() / math.sqrt(count)) if count else None})
        total_model = float(dn.sum())
        total_mc = len(pt) * scale
        result[str(pid)] = {"ranges": rows, "dndy_kernels": total_model, "dndy_pythia": total_mc,
                            "dndy_ratio": total_model / total_mc, "dndy_ratio_err": total_model / total_mc / math.sqrt(len(pt))}
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, (pid, name) in enumerate(zip(result, ("pi", "K", "p"))):
        rows = [r for r in result[pid]["ranges"] if r["ratio"] is not None]
        x = np.array([np.mean(r["pt"]) for r in rows]) + 0.01 * (k - 1)
        axes[0].errorbar(x, [r["ratio"] for r in rows], [r["ratio_err"] for r in rows], fmt="o", label=name)
        axes[1].errorbar(x, [r["v2_pythia"] for r in rows], [r["v2_pythia_err"] for r in rows], fmt="o",
                         color=f"C{k}", label=f"{name}, Pythia decays")
        axes[1].plot(x, [r["v2_kernels"] for r in rows], "_", color=f"C{k}", markersize=14, label=f"{name}, kernels")
    axes[0].axhline(1, color="k", lw=0.8)
    axes[0].set(xlabel=r"$p_{\rm T}$ [GeV]", ylabel="dN/dy: kernels / Pythia", title="decay products, pT ranges")
    axes[1].set(xlabel=r"$p_{\rm T}$ [GeV]", ylabel=r"$v_2$ of the decay products", title="v2 of a source with v2 = 0.1")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parents", type=int, default=1_000_000)
    ap.add_argument("--temperature", type=float, default=0.15, help="[GeV]")
    ap.add_argument("--v2", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="docs/hydro_bench")
    args = ap.parse_args()
    t0 = time.time()
    kernel = kernels_side(args.temperature, args.v2)
    t1 = time.time()
    mc, scale = pythia_side(args.parents, args.temperature, args.v2, args.seed)
    t2 = time.time()
    result = {"parents": args.parents, "temperature": args.temperature, "v2": args.v2, "seed": args.seed,
              "kernels_seconds": t1 - t0, "pythia_seconds": t2 - t1, "date": time.strftime("%Y-%m-%d"),
              "machine": platform.processor() or platform.machine(), "species": compare(kernel, mc, scale)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decays_closure.json").write_text(json.dumps(result, indent=1))
    plot(result["species"], out / "decays_closure.png")
    for pid, r in result["species"].items():
        print(pid, f"dN/dy kernels/Pythia {r['dndy_ratio']:.4f} +- {r['dndy_ratio_err']:.4f}",
              " ".join(f"{x['pt'][0]:.2f}-{x['pt'][1]:.2f}: {x['ratio']:.3f}({1000 * x['ratio_err']:.0f})"
                       for x in r["ranges"] if x["ratio"] is not None))


if __name__ == "__main__":
    main()
