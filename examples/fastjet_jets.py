"""Generate O-O events into the HDF5 dataset format and cluster anti-kt R = 0.4 jets with fastjet.

    python examples/fastjet_jets.py --events 200 --out oo.h5
"""

from __future__ import annotations

import argparse

import fastjet
import numpy as np

import hicgen
from hicgen.data.dataset import DatasetReader
from hicgen.io.hepmc import four_momenta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped O-O model)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--out", default="oo.h5")
    parser.add_argument("--jet-pt-min", type=float, default=5.0, help="GeV")
    args = parser.parse_args()

    hicgen.generate("OO", args.events, model=args.model, out=args.out, overwrite=True, seed=3)

    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4)
    leading, n_jets = [], 0
    with DatasetReader(args.out) as reader:
        for chunk in reader.iter_chunks(1000):  # stream the file in whole events
            p = chunk.particles
            px, py, pz, energy, _ = four_momenta(p["pt"], p["eta"], p["phi"], p["pid"])
            for i in range(len(chunk)):
                rows = slice(chunk.offsets[i], chunk.offsets[i + 1])
                inputs = [fastjet.PseudoJet(*map(float, v)) for v in zip(px[rows], py[rows], pz[rows], energy[rows])]
                jets = fastjet.sorted_by_pt(fastjet.ClusterSequence(inputs, definition).inclusive_jets(args.jet_pt_min))
                n_jets += len(jets)
                if jets:
                    leading.append(jets[0].pt())
    print(f"{len(reader)} events, {n_jets} anti-kt R=0.4 jets with pT > {args.jet_pt_min:g} GeV")
    if leading:
        print(f"leading-jet pT: mean {np.mean(leading):.2f} GeV, max {np.max(leading):.2f} GeV")


if __name__ == "__main__":
    main()
