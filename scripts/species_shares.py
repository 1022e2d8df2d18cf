"""The reference chain's particle-species shares per eta/s and multiplicity class, at chosen pT.

    python scripts/species_shares.py hydro.h5 --classes 4 --pt 0.5 1.0 1.5 1.9

Reads a `hicgen truth hydro` file with per-record species yields per pT bin (`species_pt_dndy`, files made since
2026-12-06) and prints, for each eta/s and each of --classes quantile classes of the records' charged dN/dy
(`dnch_dy`, least central first), the pi / K / p share of the charged yield in the pT bins holding --pt: what the
pT-binned min-bias mixture that `hicgen spectra --particles` draws from (config.json "species") averages over.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

SPECIES = ("pi", "K", "p")  # the rows of species_pt_dndy: pi+ + pi-, K+ + K-, p + pbar


def shares_by_class(yields: np.ndarray, mult: np.ndarray, classes: int) -> list[tuple[float, float, np.ndarray]]:
    """[(dN/dy low, high, shares (3, P))] of the records in each of `classes` quantile classes of `mult`: the summed
    species yields per pT bin over the class, divided by their total in each bin."""
    edges = np.quantile(mult, np.linspace(0.0, 1.0, classes + 1))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = (mult >= lo) & (mult <= hi)
        total = yields[chosen].sum(axis=0)
        out.append((float(lo), float(hi), total / np.maximum(total.sum(axis=0), 1e-300)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hydro", type=Path, help="a hicgen-spectra file of `hicgen truth hydro`")
    parser.add_argument("--classes", type=int, default=4, help="multiplicity quantile classes per eta/s")
    parser.add_argument("--pt", type=float, nargs="+", default=[0.5, 1.0, 1.5, 1.9], help="pT [GeV] of the bins shown")
    args = parser.parse_args()
    with h5py.File(args.hydro, "r") as f:
        if "species_pt_dndy" not in f:
            parser.error(f"'{args.hydro}' has no species_pt_dndy; make it with 'hicgen truth hydro' (since 2026-12-06)")
        yields, mult, eta_s, pt_edges = (f[k][()] for k in ("species_pt_dndy", "dnch_dy", "eta_s", "pt_edges"))
    bins = np.clip(np.searchsorted(pt_edges, args.pt, side="right") - 1, 0, len(pt_edges) - 2)
    header = "  ".join(f"{s} @ {pt:g} GeV" for s in SPECIES for pt in args.pt)
    print(f"eta/s  dN/dy class      {header}")
    for value in np.unique(eta_s):
        here = eta_s == value
        for lo, hi, shares in shares_by_class(yields[here], mult[here], args.classes):
            cells = "  ".join(f"{shares[s, b]:>{len(SPECIES[s]) + len(f'{pt:g}') + 7}.3f}"
                              for s in range(len(SPECIES)) for pt, b in zip(args.pt, bins))
            print(f"{value:<5g}  {lo:6.0f}-{hi:<6.0f}  {cells}")


if __name__ == "__main__":
    main()
