"""Refresh the shipped Angantyr fit table: `python -m hicgen.truth.angantyr_fit [--sqrt-s 5360]`.

Runs Angantyr's own fit of its sub-collision model for each system and writes the fitted
parameters to hicgen/truth/angantyr_fits.json, keyed like the user cache.
"""

from __future__ import annotations

import argparse
import json

from hicgen.truth.angantyr import NUCLEUS_PDG, SHIPPED_FITS, AngantyrConfig, run_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqrt-s", type=float, default=5360.0)
    args = parser.parse_args()
    table = json.loads(SHIPPED_FITS.read_text()) if SHIPPED_FITS.exists() else {}
    for system in NUCLEUS_PDG:
        config = AngantyrConfig(system=system, sqrt_s=args.sqrt_s)
        table[config.fit_key] = run_fit(config)
        print(config.fit_key, table[config.fit_key], flush=True)
    SHIPPED_FITS.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
