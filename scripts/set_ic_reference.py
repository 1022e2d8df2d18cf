"""Set a spectra checkpoint's record of its training ICs' entropy per participant (config.json
"ic_entropy_per_participant") from initial states made with the training ICs' settings.

    python scripts/set_ic_reference.py weights/spectra ic.h5 --source "hicgen truth trento --events 4096 ..."

`hicgen train` and `hicgen finetune` record it from their training file (hicgen.spectra.ic_scale.training_band:
the 1st-99th percentile of mult / npart over the ICs with npart >= 50), and `hicgen spectra` refuses initial states
whose median lies outside it unless --allow-extrapolation. This sets it for a checkpoint whose training file is
gone or predates the record (the shipped weights/spectra), from a trento file (of the trento program or `hicgen
truth trento`) or a `hicgen truth hydro` file made with the training ICs' TRENTo settings. Only config.json
changes; its tensors, and so their sha256, stay as they are. Prints the band.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from hicgen.checkpoint import write_json
from hicgen.errors import InputError
from hicgen.spectra.ic_scale import MIN_BAND_ICS, MIN_NPART, training_band
from hicgen.truth.trento_io import read_event_attrs


def _is_spectra_file(path: Path) -> bool:
    """Whether `path` is a hicgen-spectra file (else: a trento input)."""
    if not (path.is_file() and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        return f.attrs.get("format") == "hicgen-spectra"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (holds config.json)")
    parser.add_argument("ics", type=Path, help="a trento input, or a hicgen-spectra file of `hicgen truth hydro`")
    parser.add_argument("--source", required=True, help="how the ICs were made, recorded with the band")
    args = parser.parse_args()
    config_path = args.checkpoint / "config.json"
    if not config_path.is_file():
        parser.error(f"'{args.checkpoint}' holds no config.json; give a spectra checkpoint folder")
    config = json.loads(config_path.read_text())
    if _is_spectra_file(args.ics):
        with h5py.File(args.ics, "r") as f:
            _, first = np.unique(f["ic_index"][()], return_index=True)  # one row per IC: its first record
            mult, npart = f["mult"][()][first], f["npart"][()][first]
    else:
        try:
            values = read_event_attrs(args.ics, ("mult", "npart"))
        except InputError as exc:  # not a trento input: one line
            parser.error(str(exc))
        mult, npart = values["mult"], values["npart"]
    band = training_band(mult, npart, args.source)
    if band is None:
        parser.error(f"'{args.ics}' holds fewer than {MIN_BAND_ICS} ICs with npart >= {MIN_NPART} and a multiplicity")
    print("before:", config.get("ic_entropy_per_participant"))
    config["ic_entropy_per_participant"] = band
    write_json(config_path, config)
    print("after: ", band)


if __name__ == "__main__":
    main()
