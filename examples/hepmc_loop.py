"""Generate O-O events into a HepMC3 file and loop over it with pyhepmc, as a Rivet-style analysis would.

    python examples/hepmc_loop.py --events 100 --out oo.hepmc        # shipped O-O model
    python examples/hepmc_loop.py --model weights/oo --out oo.hepmc.gz
"""

from __future__ import annotations

import argparse

import numpy as np
import pyhepmc

import hicgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped O-O model)")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--out", default="oo.hepmc")
    args = parser.parse_args()

    hicgen.generate("OO", args.events, model=args.model, out=args.out, overwrite=True, seed=1)

    mult, b, cent, sum_pt = [], [], [], []
    with pyhepmc.open(args.out) as stream:
        for event in stream:
            final = [p for p in event.particles if p.status == 1]
            mult.append(len(final))
            sum_pt.append(sum(p.momentum.pt() for p in final))
            b.append(event.heavy_ion.impact_parameter)
            cent.append(event.heavy_ion.centrality)
    mult = np.array(mult)
    print(f"{len(mult)} events from {args.out}")
    print(f"charged multiplicity: mean {mult.mean():.1f}, max {mult.max()}")
    print(f"impact parameter: mean {np.mean(b):.2f} fm; centrality 0-10%: {np.mean(np.array(cent) < 10):.1%} of events")
    print(f"<sum pT> per event: {np.mean(sum_pt):.1f} GeV")


if __name__ == "__main__":
    main()
