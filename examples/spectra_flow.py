"""Pb-Pb spectra from the spectra model, then their flow per centrality class: v2{2}, v2{4}, v3{2}.

    python examples/spectra_flow.py --events 2000 --eta-s 0.1 --out spectra.h5

Makes --events TRENTo initial states over 0 <= b < 13.07 fm (the impact parameters the shipped model was trained on,
about 0-70 %), or takes them from --trento FILE, runs `hicgen spectra` on them through the Python API, reads the
output with h5py and measures the flow of each class with hicgen.analysis.flow (Q-cumulants of the generic
framework, each histogram bin's count taken as that many particles at the bin centre; jackknife errors).

Centrality: the percentile of the TRENTo multiplicity among the sample, times the share of the measured Pb-Pb
hadronic cross section that the sample's b range covers (hicgen.truth.trento.sample_coverage), so the classes are
those of the experiments. With --trento, the file's own b range is taken when it records one (hicgen truth trento),
else the sample is taken as 0-100 %.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import numpy as np

from hicgen.analysis import flow
from hicgen.engine.runtime import resolve_device
from hicgen.spectra.pipeline import run_spectra
from hicgen.truth.trento import TrentoConfig, sample_coverage, trento_config_of, write_trento

TRAINED_B_MAX = 13.07  # fm: the b range of the shipped model's training ICs (weights/spectra/README.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="spectra checkpoint folder (default: the shipped weights/spectra)")
    parser.add_argument("--events", type=int, default=2000, help="initial states to make (without --trento)")
    parser.add_argument("--trento", type=Path, default=None, help="initial states of your own (trento HDF5 or text folder)")
    parser.add_argument("--eta-s", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path("spectra.h5"))
    parser.add_argument("--classes", type=float, nargs="+", default=[0, 5, 10, 20, 30, 40, 50, 60, 70])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        trento, coverage = args.trento, 100.0
        if trento is None:
            cfg = TrentoConfig(b_max=TRAINED_B_MAX, grid_step=0.4)
            trento = write_trento(Path(scratch) / "ic.h5", args.events, cfg, seed=7)
        if trento.suffix in (".h5", ".hdf5") and (cfg := trento_config_of(trento)).b_max is not None:
            # below b_max ~13 fm nearly every Pb-Pb collision happens, so a few events per b stratum suffice
            coverage = sample_coverage(cfg, events_per_stratum=8)["percent"]
        weights = args.model or Path(__file__).resolve().parent.parent / "weights" / "spectra"
        summary = run_spectra(trento, args.eta_s, args.out, weights, device=str(resolve_device("auto")),
                              overwrite=True)
    print(f"{summary['spectra']} spectra of {summary['initial_states']} initial states at eta/s = {args.eta_s:g} "
          f"in {args.out}; the sample covers {coverage:.1f} % of the Pb-Pb cross section")

    with h5py.File(args.out, "r") as f:
        counts, mult = f["histogram"][()], f["mult"][()]
        pt_edges, phi_edges = f["pt_edges"][()], f["phi_edges"][()]
    if not np.isfinite(mult).all():  # a trento file without the mult attribute: rank by the charged multiplicity
        mult = counts.sum(axis=(1, 2))
    centrality = coverage / 100.0 * flow.centrality_percentile(mult, mult)
    pt_centres = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    n_ch = counts.sum(axis=(1, 2))
    mean_pt = (counts.sum(axis=2) @ pt_centres) / np.maximum(n_ch, 1)
    fp = flow.from_spectra(counts, pt_edges, phi_edges)
    print("class      ICs  <N>(|y|<0.5, pT<2 GeV)  <pT>/GeV  v2{2}             v2{4}             v3{2}")
    for label, chosen in flow.centrality_classes(centrality, tuple(args.classes)):
        if not chosen.any():
            continue
        res = flow.cumulants(fp, harmonics=(2, 3), orders=(2, 4), select=chosen)
        cells = [f"{res[n][v]:.4f} +- {res[n][v + '_err']:.4f}" for n, v in (("n=2", "v{2}"), ("n=2", "v{4}"), ("n=3", "v{2}"))]
        print(f"{label:9s} {chosen.sum():4d}  {n_ch[chosen].mean():22.1f}  {mean_pt[chosen].mean():8.3f}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
