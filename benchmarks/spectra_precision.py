"""The spectra model in two precisions on the same initial states and seeds: how far apart their spectra are.

    python benchmarks/spectra_precision.py --trento ic.h5 --precisions fp32 bf16 --device cpu --json out.json

For each eta/s both precisions sample --samples-per-ic smooth spectra of every IC with the same seeds (so the
noise is the same), then per spectrum: the multiplicity (sum of expected counts) and the pT-integrated flow
vectors V_n = sum counts exp(i n phi) / sum counts, n = 2, 3, over the model's whole pT range. Reported: the mean
and rms of the per-spectrum multiplicity ratio (second / first precision), the rms of |V_n(second) - V_n(first)|
beside the mean |V_n|, and the ratio of v_n{2} = sqrt(<|V_n|^2>), with the wall time of each precision
(generate_spectra, without Poisson histograms). Compare the differences with the model's own error, the per-IC
flow residual of the closure (weights/spectra/README.md): a precision whose differences are far below it changes
no closure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hicgen.analysis.flow import spectra_flow_vectors
from hicgen.environment import WEIGHTS_DIR
from hicgen.spectra.generate import generate_spectra, load_spectra_model
from hicgen.truth.trento_io import read_trento, resample_profile

HARMONICS = (2, 3)


def observables(spectra: np.ndarray, phi_edges: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Multiplicity (N,) and flow vectors V_n (N,) of spectra (N, pT, phi)."""
    return spectra.sum((1, 2)), {n: spectra_flow_vectors(spectra, phi_edges, n) for n in HARMONICS}


def compare(first: np.ndarray, second: np.ndarray, phi_edges: np.ndarray) -> dict:
    """The differences of `second` from `first` (same ICs, same seeds)."""
    m1, v1 = observables(first, phi_edges)
    m2, v2 = observables(second, phi_edges)
    ratio = m2 / m1
    row = {"multiplicity_ratio_mean": float(ratio.mean()), "multiplicity_ratio_rms_deviation": float(ratio.std())}
    for n in HARMONICS:
        row[f"V{n}_difference_rms"] = float(np.sqrt(np.mean(np.abs(v2[n] - v1[n]) ** 2)))
        row[f"V{n}_mean_magnitude"] = float(np.mean(np.abs(v1[n])))
        row[f"v{n}2_ratio"] = float(np.sqrt(np.mean(np.abs(v2[n]) ** 2) / np.mean(np.abs(v1[n]) ** 2)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trento", required=True, help="initial states (hicgen or trento HDF5)")
    parser.add_argument("--model", default=str(WEIGHTS_DIR / "spectra"))
    parser.add_argument("--precisions", nargs=2, default=["fp32", "bf16"], help="the reference, then the other")
    parser.add_argument("--eta-s", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    parser.add_argument("--samples-per-ic", type=int, default=2)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    model = load_spectra_model(args.model, args.device)
    states = read_trento(args.trento)
    res = model.net.cfg.resolution
    ic = resample_profile(states.profiles, states.grid_max, res, model.config.get("ic_grid_max") or states.grid_max)
    first, second = args.precisions
    rows = []
    for eta_s in args.eta_s:
        spectra, seconds = {}, {}
        for precision in (first, second):
            start = time.time()
            spectra[precision] = generate_spectra(model, ic, eta_s, args.samples_per_ic, seed=args.seed,
                                                  precision=precision)
            seconds[precision] = time.time() - start
        row = {"eta_s": eta_s, "spectra": len(spectra[first]),
               **compare(spectra[first], spectra[second], model.phi_edges),
               **{f"seconds_{p}": s for p, s in seconds.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "trento": args.trento, "precisions": args.precisions, "device": args.device,
                       "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
