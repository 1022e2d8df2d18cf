"""Generate O-O events into a ROOT file, open its TTree with uproot/awkward and histogram pT.

    python examples/root_pt_histogram.py --events 200 --out oo.root [--png pt.png]
"""

from __future__ import annotations

import argparse

import awkward as ak
import numpy as np
import uproot

import hicgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped O-O model)")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--out", default="oo.root")
    parser.add_argument("--png", default=None, help="also save the histogram as a PNG (needs matplotlib)")
    args = parser.parse_args()

    hicgen.generate("OO", args.events, model=args.model, out=args.out, overwrite=True, seed=2)

    with uproot.open(args.out) as file:
        tree = file["events"]
        arrays = tree.arrays(["pt", "eta", "pid", "centrality"])
    central = arrays[arrays.centrality < 20]  # event selection on an event branch
    pt = ak.to_numpy(ak.flatten(central.pt[abs(central.eta) < 0.8]))  # particle selection on jagged branches
    edges = np.geomspace(0.15, 10.0, 21)
    counts, _ = np.histogram(pt, bins=edges)
    n_events = max(len(central), 1)
    print(f"{len(arrays)} events, {len(central)} with centrality < 20%, {pt.size} particles with |eta| < 0.8")
    print("pT bin [GeV]        dN/dpT per event")
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        print(f"{lo:6.2f} - {hi:6.2f}   {n / (hi - lo) / n_events:12.4f}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.stairs(counts / np.diff(edges) / n_events, edges)
        ax.set(xscale="log", yscale="log", xlabel="$p_T$ [GeV]", ylabel="$dN/dp_T$ per event [1/GeV]",
               title="hicgen O-O, centrality 0-20%, |$\\eta$| < 0.8")
        fig.savefig(args.png, dpi=120)
        print(f"saved {args.png}")


if __name__ == "__main__":
    main()
