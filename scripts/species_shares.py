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
from hicgen.truth.spectra_data import SPECIES_FLOW_HARMONICS

SPECIES = ("pi", "K", "p")  # the rows of species_pt_dndy: pi+ + pi-, K+ + K-, p + pbar
SPECIES_PID = (211, 321, 2212)
JACKKNIFE_GROUPS = 10  # event groups of the particles' errors on v_n{2}


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


def chain_flow(yields: np.ndarray, flow: np.ndarray, harmonic: int, pt_edges: np.ndarray, windows: np.ndarray
               ) -> np.ndarray:
    """v_n{2} (4, W) of pi, K, p and all charged in each pT window, from smooth spectra: records' pair yields
    (N, 3, P) and flow vectors (N, 3, 4, P) (species_pt_flow; harmonic 0: n = 2, 1: n = 3), weighted by pairs as
    particles would be: d = sum n M Re(V_w V_ref*) / sum n M over records, c = sum M^2 |V_ref|^2 / sum M^2 with the
    reference all charged particles of the spectra, v = d / sqrt(c)."""
    vectors = flow[:, :, 2 * harmonic] + 1j * flow[:, :, 2 * harmonic + 1]  # (N, 3, P)
    total = yields.sum(axis=(1, 2))
    reference = (yields * vectors).sum(axis=(1, 2)) / total
    c2 = (total**2 * np.abs(reference) ** 2).sum() / (total**2).sum()
    centres = 0.5 * (pt_edges[:-1] + pt_edges[1:])
    where = np.searchsorted(windows, centres, side="right") - 1
    out = np.zeros((4, len(windows) - 1))
    for w in range(len(windows) - 1):
        n = yields[:, :, where == w].sum(axis=2)  # (N, 3)
        summed = (yields * vectors)[:, :, where == w].sum(axis=2)  # n V_w
        n, summed = np.concatenate([n, n.sum(1, keepdims=True)], 1), np.concatenate([summed, summed.sum(1, keepdims=True)], 1)
        pairs = (n * total[:, None]).sum(0)
        d = (total[:, None] * (summed * np.conj(reference)[:, None]).real).sum(0) / np.where(pairs > 0, pairs, np.nan)
        out[:, w] = d / np.sqrt(c2)  # NaN in a window without yield
    return out


def particle_flow(event: np.ndarray, pid: np.ndarray, pt: np.ndarray, phi: np.ndarray, harmonic_n: int,
                  windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v_n{2} (4, W) of pi, K, p and all charged particles in each pT window, with the reference all particles of
    the event: d = sum (Re(q Q*) - n) / sum n (M - 1), c = sum (|Q|^2 - M) / sum M (M - 1) over events, v = d /
    sqrt(c); and its jackknife error over JACKKNIFE_GROUPS groups of events. `event` (n,) numbers the particles'
    events 0 .. E - 1."""
    n_events = int(event.max()) + 1 if len(event) else 0
    unit = np.exp(1j * harmonic_n * phi)
    big_q = np.bincount(event, unit.real, n_events) + 1j * np.bincount(event, unit.imag, n_events)
    mult = np.bincount(event, minlength=n_events).astype(np.float64)
    where = np.searchsorted(windows, pt, side="right") - 1
    kind = np.select([np.abs(pid) == p for p in SPECIES_PID], range(3), 3)
    sums = np.zeros((2, 4, len(windows) - 1, n_events), complex)  # q and n per species (and all), window, event
    for w in range(len(windows) - 1):
        for s in range(4):
            chosen = (where == w) & ((kind == s) if s < 3 else (kind >= 0))
            sums[0, s, w] = np.bincount(event[chosen], unit.real[chosen], n_events) + 1j * np.bincount(
                event[chosen], unit.imag[chosen], n_events)
            sums[1, s, w] = np.bincount(event[chosen], minlength=n_events)
    pair_d = (sums[0] * np.conj(big_q)).real - sums[1].real  # (4, W, E)
    pair_n = sums[1].real * (mult - 1)
    ref_d, ref_n = np.abs(big_q) ** 2 - mult, mult * (mult - 1)
    group = np.arange(n_events) % JACKKNIFE_GROUPS

    def value(keep: np.ndarray) -> np.ndarray:
        return pair_d[..., keep].sum(-1) / np.maximum(pair_n[..., keep].sum(-1), 1) / np.sqrt(
            max(ref_d[keep].sum() / max(ref_n[keep].sum(), 1), 1e-30))

    leave_out = np.stack([value(group != g) for g in range(JACKKNIFE_GROUPS)])
    error = np.sqrt((JACKKNIFE_GROUPS - 1) * leave_out.var(axis=0))
    return value(np.ones(n_events, bool)), error


def print_flow_closure(chain: dict, classes: int, batch, windows: np.ndarray, harmonic_n: int) -> None:
    """Per class, species and pT window: v_n{2} of the chain's smooth spectra and of the particles, and each
    species' ratio to all charged particles' in the window (chain / particles +- error), and the chi2 of the
    particles' ratios against the chain's."""
    harmonic = SPECIES_FLOW_HARMONICS.index(harmonic_n)
    yields, flow = chain["species_pt_dndy"].astype(np.float64), chain["species_pt_flow"].astype(np.float64)
    mult = np.diff(batch.offsets)
    pid, pt = np.asarray(batch.particles["pid"]), np.asarray(batch.particles["pt"], np.float64)
    phi = np.asarray(batch.particles["phi"], np.float64)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(windows[:-1], windows[1:])]
    print(f"v{harmonic_n}{{2}} per pT window, chain / particles; and the species' v{harmonic_n}{{2}} over all "
          "charged particles' in the window, chain / particles +- error")
    print("eta/s  dN/dy class     events  species  " + "  ".join(f"{w + ' GeV':>44}" for w in labels))
    chi2, n_cells = 0.0, 0
    for label, rows, chosen, keep in class_particles(chain, classes, batch):
        event = np.repeat(np.cumsum(chosen) - 1, mult)[keep]
        reference = chain_flow(yields[rows], flow[rows], harmonic, chain["pt_edges"], windows)
        particles, error = particle_flow(event, pid[keep], pt[keep], phi[keep], harmonic_n, windows)
        ratio_chain, ratio = reference[:3] / reference[3], particles[:3] / particles[3]
        ratio_error = error[:3] / np.abs(particles[3])  # the species' error dominates the charged one's
        for s, name in enumerate(SPECIES):
            cells = "  ".join(f"{reference[s, w]:.4f} / {particles[s, w]:.4f}  {ratio_chain[s, w]:.3f} / "
                              f"{ratio[s, w]:.3f} +- {ratio_error[s, w]:.3f}" for w in range(len(labels)))
            print(f"{label}  {name:>7}  {cells}")
        finite = np.isfinite(ratio) & np.isfinite(ratio_chain) & (ratio_error > 0)
        chi2 += float((((ratio - ratio_chain)[finite] / ratio_error[finite]) ** 2).sum())
        n_cells += int(finite.sum())
    print(f"chi2 of the particles' v{harmonic_n}{{2}} ratios to all charged against the chain's: {chi2:.1f} over "
          f"{n_cells} cells")


def read_chain(path: Path, parser: argparse.ArgumentParser) -> dict[str, np.ndarray]:
    if not h5py.is_hdf5(path):
        parser.error(f"'{path}' is not an HDF5 file; give a hicgen-spectra file of 'hicgen truth hydro'")
    with h5py.File(path, "r") as f:
        if "species_pt_dndy" not in f:
            parser.error(f"'{path}' has no species_pt_dndy; make it with 'hicgen truth hydro' (since 2026-12-06)")
        names = ("species_pt_dndy", "eta_s", "ic_index", "pt_edges", "species_pt_flow")
        return {k: f[k][()] for k in names if k in f}


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


def class_particles(chain: dict, classes: int, batch):
    """For each eta/s and multiplicity class of the chain's records (multiplicity_classes): its row label (eta/s,
    dN/dy range, events), its record rows, and which events (E,) and particles (n,) of `batch` are of its ICs at
    that eta/s (joined by ic_index and eta/s)."""
    dndy = chain["species_pt_dndy"].sum(axis=(1, 2))
    event_eta = np.round(batch.events["eta_s"].astype(np.float64), 6)
    event_ic = batch.events["ic_index"].astype(np.int64)
    mult = np.diff(batch.offsets)
    for value, groups in multiplicity_classes(dndy, chain["eta_s"], classes):
        for rows in groups:
            chosen = (event_eta == value) & np.isin(event_ic, chain["ic_index"][rows])
            label = f"{value:<5g}  {dndy[rows].min():6.0f}-{dndy[rows].max():<6.0f}  {int(chosen.sum()):6d}"
            yield label, rows, chosen, np.repeat(chosen, mult)


def print_particle_closure(chain: dict, classes: int, batch, windows: np.ndarray) -> None:
    yields = chain["species_pt_dndy"]
    pid, pt = np.asarray(batch.particles["pid"]), np.asarray(batch.particles["pt"], np.float64)
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(windows[:-1], windows[1:])]
    print("eta/s  dN/dy class     events  species  " + "  ".join(f"{w + ' GeV: chain / particles':>36}" for w in labels))
    chi2, n_cells = 0.0, 0
    for label, rows, chosen, keep in class_particles(chain, classes, batch):
        counts = particle_window_counts(pid[keep], pt[keep], windows)
        total = np.maximum(counts.sum(axis=0), 1)
        share = counts / total
        error = np.sqrt(share * (1 - share) / total)
        reference = window_shares(yields[rows], chain["pt_edges"], windows)
        for s, name in enumerate(SPECIES):
            cells = "  ".join(f"{reference[s, w]:>16.4f} / {share[s, w]:.4f} +- {error[s, w]:.4f}"
                              for w in range(len(labels)))
            print(f"{label}  {name:>7}  {cells}")
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
    parser.add_argument("--flow-harmonic", type=int, choices=(2, 3), default=2,
                        help="n of the species' v_n{2} comparison (files with species_pt_flow)")
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
        from hicgen.errors import InputError
        from hicgen.io import read_events

        try:
            batch = read_events(args.particles)
        except InputError as exc:  # not an event file: its one line
            parser.error(str(exc))
        if not {"eta_s", "ic_index"} <= set(batch.events):
            parser.error(f"'{args.particles}' has no eta_s and ic_index event columns; give the particles of "
                         "'hicgen spectra --particles' made from the hydro file's ICs")
        chain_keys = set(zip(np.round(chain["eta_s"].astype(np.float64), 6).tolist(), chain["ic_index"].tolist()))
        event_keys = zip(np.round(batch.events["eta_s"].astype(np.float64), 6).tolist(), batch.events["ic_index"].tolist())
        if not any(key in chain_keys for key in event_keys):
            parser.error(f"no event of '{args.particles}' is of an IC and eta/s of '{args.hydro}'; give the particles "
                         "of 'hicgen spectra --particles' run on the IC file the hydro file was made from")
    print_bin_shares(chain, args.classes, args.pt)
    if batch is not None:
        print()
        print_particle_closure(chain, args.classes, batch, windows)
        if "species_pt_flow" in chain:
            print()
            print_flow_closure(chain, args.classes, batch, windows, args.flow_harmonic)


if __name__ == "__main__":
    main()
