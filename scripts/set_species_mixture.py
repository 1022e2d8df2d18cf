"""Set a spectra checkpoint's particle-species mixture (config.json "species") from a reference-chain file.

    python scripts/set_species_mixture.py weights/spectra hydro.h5

`hicgen train` and `hicgen finetune` store the mixture of their training file (hicgen.spectra.species: the
pi/K/p shares overall and, for files of `hicgen truth hydro` since 2026-12-06, per pT bin, for each eta/s and
multiplicity class, with each species' flow relative to the charged particles' where the file has
`species_pt_flow`), from which `hicgen spectra --particles` draws each particle's PDG id. This sets it for a
checkpoint trained on files that predate the per-pT shares (the shipped weights/spectra), from a file of the same
chain (e.g. the `hicgen truth merge` of a min-bias hydro run over all trained eta/s). Only config.json changes;
its tensors, and so their sha256, stay as they are. Prints the old and new overall shares and the classes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from hicgen.checkpoint import write_json
from hicgen.spectra.species import SPECIES_CLASSES, species_mixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (holds config.json)")
    parser.add_argument("chain_file", type=Path, help="a hicgen-spectra file of `hicgen truth hydro`")
    parser.add_argument("--classes", type=int, default=SPECIES_CLASSES, help="multiplicity classes per eta/s")
    args = parser.parse_args()
    config_path = args.checkpoint / "config.json"
    if not config_path.is_file():
        parser.error(f"'{args.checkpoint}' holds no config.json; give a spectra checkpoint folder")
    config = json.loads(config_path.read_text())
    if args.classes < 1:
        parser.error(f"--classes {args.classes}: give at least 1")
    if not (args.chain_file.is_file() and h5py.is_hdf5(args.chain_file)):
        parser.error(f"'{args.chain_file}' is not an HDF5 file; give a hicgen-spectra file of 'hicgen truth hydro'")
    with h5py.File(args.chain_file, "r") as f:
        if "species_pt_dndy" not in f:
            parser.error(f"'{args.chain_file}' records no per-record species yields; make it with 'hicgen truth hydro'")
        flow = f["species_pt_flow"][()] if "species_pt_flow" in f else None  # files made since 2026-12-06, later
        mixture = species_mixture(dict(f.attrs), f["species_pt_dndy"][()], f["eta_s"][()], args.classes, flow)
        n_records = int(f.attrs.get("n_records", 0))
        pt_edges = f["pt_edges"][()]
    if mixture is None or "classes" not in mixture:
        parser.error(f"'{args.chain_file}' records no per-pT species shares; make it with 'hicgen truth hydro'")
    bins = len(config.get("pt_edges", pt_edges)) - 1
    if "pt_edges" in config and not np.allclose(config["pt_edges"], pt_edges):
        parser.error(f"'{args.chain_file}' has other pT bins than the checkpoint")
    if len(mixture["pt_fraction"][0]) != bins:
        parser.error(f"'{args.chain_file}' has {len(mixture['pt_fraction'][0])} pT bins, the checkpoint {bins}")
    print("before:", config.get("species", {}).get("fraction"))
    config["species"] = mixture
    config.setdefault("provenance", {})["species_from"] = f"{args.chain_file.name} ({n_records} records)"
    write_json(config_path, config)
    print("after: ", mixture["fraction"], "with the species' flow" if "flow_ratio" in mixture["classes"] else
          "without the species' flow (the file has no species_pt_flow)")
    for value, ranges in zip(mixture["classes"]["eta_s"], mixture["classes"]["dndy_range"]):
        print(f"eta/s {value:g}: dN/dy classes", ", ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in ranges))


if __name__ == "__main__":
    main()
