"""Use hicgen from Python: stream whole events as EventBatch chunks, no file in between.

    python examples/python_api.py --events 1000
"""

from __future__ import annotations

import argparse

import numpy as np

import hicgen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped O-O model)")
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()

    q2, mult = [], []
    for batch in hicgen.generate("OO", args.events, model=args.model, seed=4, centrality="0-50", steps=24):
        # batch.events: per-event columns (b, ncoll, npart, mult, q2x, q2y, psi2, centrality, ...);
        # batch.particles: flat pt, eta, phi, pid with batch.offsets marking each event's rows.
        p = batch.particles
        ev = batch.event_index
        qx = np.bincount(ev, np.cos(2 * p["phi"]), len(batch))
        qy = np.bincount(ev, np.sin(2 * p["phi"]), len(batch))
        n = batch.multiplicity
        usable = n > 1
        q2.append(((qx**2 + qy**2 - n) / (n * (n - 1.0)).clip(min=1))[usable])  # two-particle <cos 2 dphi>
        mult.append(n)
    c2 = np.concatenate(q2).mean()
    print(f"{sum(map(len, mult))} events, mean multiplicity {np.concatenate(mult).mean():.1f}")
    print(f"v2{{2}} (no eta gap) = {np.sqrt(c2) if c2 > 0 else float('nan'):.4f}")


if __name__ == "__main__":
    main()
