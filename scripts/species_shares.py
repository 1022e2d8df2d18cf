"""The reference chain's particle-species shares per eta/s and multiplicity class, and those of generated particles.

    python scripts/species_shares.py hydro.h5 --classes 4 --pt 0.5 1.0 1.5 1.9
    python scripts/species_shares.py hydro.h5 --classes 4 --particles p.h5 --windows 0 0.5 1 1.5 2

Reads a `hicgen truth hydro` file with per-record species yields per pT bin (`species_pt_dndy`, files made since
2026-12-06) and splits its records, for each eta/s, into --classes classes of equal size by their charged dN/dy in
the spectra's window (the sum of those yields; hicgen.spectra.species.multiplicity_classes, least central first).
It prints each class's pi / K / p share of the charged yield in the pT bins holding --pt.

With --particles (the `hicgen spectra --particles` events of the same ICs, any event format) it prints, per class
and pT window (--windows edges), the chain's share and the particles' share with its binomial error, and the chi2 of
the particles' K and p shares over all classes and windows; the events join the chain's records by (ic_index, eta/s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from hicgen.spectra.species import multiplicity_classes

SPECIES = ("pi", "K", "p")  # the rows of species_pt_dndy: pi+ + pi-, K+ + K-, p + pbar
SPECIES_PID = (211, 321, 2212)


def class_shares(yields: np.ndarray) -> np.ndarray:
    """Shares (3, P) of each species pair in each pT bin from the summed yields of a class's records (N, 3, P)."""
    total = yields.sum(axis=0)
    return total / np.maximum(total.sum(axis=0), 1e-300)


def window_shares(yields: np.ndarray, pt_edges: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Shares (3, W) of each species pair in the pT windows between `windows` edges, from yields (N, 3, P) per bin
    (bins assigned to a window by their centres)."""
    centres = 0.5 * (pt_edges[:-1] + pt_edges[1:])
    where = np.searchsorted(windows, centres, side="right") - 1
    total = yields.sum(axis=0)
    summed = np.stack([total[:, where == w].sum(axis=1) for w in range(len(windows) - 1)], axis=1)
    return summed / np.maximum(summed.sum(axis=0), 1e-300)


def particle_window_counts(pid: np.ndarray, pt: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Counts (3, W) of pi+-, K+-, p pbar among particles of PDG ids `pid` in the pT windows between `windows`."""
    where = np.searchsorted(windows, pt, side="right") - 1
    inside = (where >= 0) & (where < len(windows) - 1)
    return np.stack([np.bincount(where[inside & (np.abs(pid) == s)], minlength=len(windows) - 1)
                     for s in SPECIES_PID])


def read_chain(path: Path, parser: argparse.ArgumentParser) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        if "species_pt_dndy" not in f:
            parser.error(f"'{path}' has no species_pt_dndy; make it with 'hicgen truth hydro' (since 2026-12-06)")
        return {k: f[k][()] for k in ("species_pt_dndy", "eta_s", "ic_index", "pt_edges")}


def print_bin_shares(chain: dict, classes: int, pt: list[float]) -> None:
    yields, pt_edges = chain["species_pt_dndy"], chain["pt_edges"]
    bins = np.clip(np.searchsorted(pt_edges, pt, side="right") - 1, 0, len(pt_edges) - 2)
    dndy = yields.sum(axis=(1, 2))
    print("eta/s  dN/dy class      " + "  ".join(f"{s} @ {p:g} GeV" for s in SPECIES for p in pt))
    for value, groups in multiplicity_classes(dndy, chain["eta_s"], classes):
        for rows in groups:
            shares = class_shares(yields[rows])
            cells = "  ".join(f"{shares[s, b]:>{len(SPECIES[s]) + len(f'{p:g}') + 7}.3f}"
                              for s in range(len(SPECIES)) for p, b in zip(pt, bins))
            print(f"{value:<5g}  {dndy[rows].min():6.0f}-{dndy[rows].max():<6.0f}  {cells}")


def print_particle_closure(chain: dict, classes: int, batch, windows: np.ndarray) -> None:
    yields = chain["species_pt_dndy"]
    dndy = yields.sum(axis=(1, 2))
    event_key = np.round(batch.events["eta_s"].astype(np.float64), 6), batch.events["ic_index"].astype(np.int64)
    mult = np.diff(batch.offsets)
    pid, pt = np.asarray(batch.particles["pid"]), np.asarray(batch.particles["pt"], np.float64)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(windows[:-1], windows[1:])]
    print("eta/s  dN/dy class     events  species  " + "  ".join(f"{w + ' GeV: chain / particles':>36}" for w in labels))
    chi2, n_cells = 0.0, 0
    for value, groups in multiplicity_classes(dndy, chain["eta_s"], classes):
        for rows in groups:
            chosen = (event_key[0] == value) & np.isin(event_key[1], chain["ic_index"][rows])
            keep = np.repeat(chosen, mult)
            counts = particle_window_counts(pid[keep], pt[keep], windows)
            total = np.maximum(counts.sum(axis=0), 1)
            share = counts / total
            error = np.sqrt(share * (1 - share) / total)
            reference = window_shares(yields[rows], chain["pt_edges"], windows)
            for s, name in enumerate(SPECIES):
                cells = "  ".join(f"{reference[s, w]:>16.4f} / {share[s, w]:.4f} +- {error[s, w]:.4f}"
                                  for w in range(len(labels)))
                print(f"{value:<5g}  {dndy[rows].min():6.0f}-{dndy[rows].max():<6.0f}  {int(chosen.sum()):6d}  "
                      f"{name:>7}  {cells}")
            counted = error[1:] > 0  # K and p: the pion share is one minus theirs
            chi2 += float((((share - reference)[1:][counted] / error[1:][counted]) ** 2).sum())
            n_cells += int(counted.sum())
    print(f"chi2 of the particles' K and p shares against the chain's: {chi2:.1f} over {n_cells} cells")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hydro", type=Path, help="a hicgen-spectra file of `hicgen truth hydro`")
    parser.add_argument("--classes", type=int, default=4, help="multiplicity classes per eta/s")
    parser.add_argument("--pt", type=float, nargs="+", default=[0.5, 1.0, 1.5, 1.9], help="pT [GeV] of the bins shown")
    parser.add_argument("--particles", type=Path, help="`hicgen spectra --particles` events of the same ICs")
    parser.add_argument("--windows", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0],
                        help="pT window edges [GeV] of the particle comparison")
    args = parser.parse_args()
    if args.classes < 1:
        parser.error(f"--classes {args.classes}: give at least 1")
    windows = np.asarray(args.windows, np.float64)
    if len(windows) < 2 or np.any(np.diff(windows) <= 0):
        parser.error("--windows: give at least two rising pT edges")
    if not args.hydro.is_file():
        parser.error(f"'{args.hydro}' does not exist")
    if args.particles is not None and not args.particles.is_file():
        parser.error(f"--particles '{args.particles}' does not exist")
    chain = read_chain(args.hydro, parser)
    batch = None
    if args.particles is not None:
        from hicgen.io import read_events

        batch = read_events(args.particles)
        if not {"eta_s", "ic_index"} <= set(batch.events):
            parser.error(f"'{args.particles}' has no eta_s and ic_index event columns; give the particles of "
                         "'hicgen spectra --particles' made from the hydro file's ICs")
    print_bin_shares(chain, args.classes, args.pt)
    if batch is not None:
        print()
        print_particle_closure(chain, args.classes, batch, windows)


if __name__ == "__main__":
    main()
