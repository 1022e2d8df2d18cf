"""Set a spectra checkpoint's record of its training ICs' entropy per participant (config.json
"ic_entropy_per_participant") from initial states made with the training ICs' settings.

    python scripts/set_ic_reference.py weights/spectra ic.h5 --source "hicgen truth trento --events 8192 ..." \
        [--followed ic_scale.json]

`hicgen train` and `hicgen finetune` record it from their training file (hicgen.spectra.ic_scale.training_band:
ln(mult / npart) against npart over the ICs with npart >= 50), and `hicgen spectra` refuses initial states whose
scale lies beyond the factors the model takes (hicgen.spectra.ic_scale.check_ic_scale) unless
--allow-extrapolation. This sets it for a checkpoint whose training file is gone or predates the record (the
shipped weights/spectra), from a trento file (of the trento program or `hicgen truth trento`) or a `hicgen truth
hydro` file made with the training ICs' TRENTo settings. --followed records the range of scale factors over which
the model was shown to follow the chain, from the JSON of `benchmarks/spectra_ic_scale.py compare` on this
checkpoint: the contiguous range about 1 of the factors at which the model met the targets at every eta/s (with
several JSONs, of independent ICs, in every one that measured the factor); a JSON that records the model's sampling
must name the checkpoint's default (config.json "sampling"), which is what `hicgen spectra` runs; without
--followed the checkpoint's recorded range, if any, is kept. Only config.json changes; its tensors,
and so their sha256, stay as they are. Prints the record.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from hicgen.checkpoint import write_json
from hicgen.errors import InputError
from hicgen.spectra.ic_scale import MIN_BAND_ICS, MIN_NPART, followed_range, training_band
from hicgen.truth.trento_io import read_event_attrs


def _is_spectra_file(path: Path) -> bool:
    """Whether `path` is a hicgen-spectra file (else: a trento input)."""
    if not (path.is_file() and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        return f.attrs.get("format") == "hicgen-spectra"


def _measured(path: Path, config: dict, parser: argparse.ArgumentParser) -> tuple[dict[float, bool], str]:
    """({factor: within the targets at every eta/s}, a description) from a benchmarks/spectra_ic_scale.py compare
    JSON of this checkpoint's model."""
    try:
        measured = json.loads(path.read_text())
        if measured["factors"] is None:
            parser.error(f"'{path}' compared groups of ICs (`join`), not normalisation factors; give the JSON of a "
                         "comparison of `scale`d ICs")
        within: dict[float, bool] = {}
        for row in measured["rows"]:
            factor = float(row["factor"])
            within[factor] = within.get(factor, True) and bool(row["within_targets"])
        sha256 = str(measured["model_sha256"])
        source = (f"{path.name}: {int(measured['ics_per_factor'])} ICs at each of the factors "
                  f"{', '.join(measured['factors'])}, eta/s {measured['eta_s']}")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        parser.error(f"'{path}' is not a JSON of benchmarks/spectra_ic_scale.py compare ({exc!r})")
    if sha256 != config.get("tensors_sha256"):
        parser.error(f"'{path}' measured another model (tensors sha256 {sha256[:12]}...) than this checkpoint's")
    sampling, default = measured.get("sampling"), config.get("sampling")
    if sampling is not None and default is not None and not _same_sampling(sampling, default):
        parser.error(f"'{path}' measured the model sampled with {sampling}, not at this checkpoint's default "
                     f"{default}: measure it with `hicgen spectra` at the default")
    return within, source


def _same_sampling(a: dict, b: dict) -> bool:
    """Whether two `sampling` records name the same solve (sampler, steps, log-SNR grid to 1e-6)."""
    grids = a.get("logsnr_range"), b.get("logsnr_range")
    if any(isinstance(g, (list, tuple)) for g in grids):
        same_grid = all(isinstance(g, (list, tuple)) for g in grids) and np.allclose(grids[0], grids[1], atol=1e-6)
    else:
        same_grid = grids[0] == grids[1]
    return a.get("sampler") == b.get("sampler") and int(a.get("steps", -1)) == int(b.get("steps", -2)) and same_grid


def _followed(paths: list[Path], config: dict, parser: argparse.ArgumentParser) -> dict:
    """The "followed" record: the range about 1 of factors within the targets in every JSON that measured them."""
    within: dict[float, bool] = {}
    sources = []
    for path in paths:
        found, source = _measured(path, config, parser)
        for factor, ok in found.items():
            within[factor] = within.get(factor, True) and ok
        sources.append(source)
    span = followed_range(list(within), list(within.values()))
    if span is None:
        parser.error(f"{', '.join(map(str, paths))} show no range of factors around 1 where the model meets the targets")
    return {"range": span, "source": "benchmarks/spectra_ic_scale.py compare; " + "; ".join(sources)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint folder (holds config.json)")
    parser.add_argument("ics", type=Path, help="a trento input, or a hicgen-spectra file of `hicgen truth hydro`")
    parser.add_argument("--source", required=True, help="how the ICs were made, recorded with the band")
    parser.add_argument("--followed", type=Path, nargs="+",
                        help="JSON of benchmarks/spectra_ic_scale.py compare on this checkpoint; with several "
                             "(independent ICs), a factor counts where every one that measured it met the targets")
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
    before = config.get("ic_entropy_per_participant") or {}
    if args.followed is not None:
        band["followed"] = _followed(args.followed, config, parser)
    elif "followed" in before:
        band["followed"] = before["followed"]
    print("before:", before or None)
    config["ic_entropy_per_participant"] = band
    write_json(config_path, config)
    print("after: ", band)


if __name__ == "__main__":
    main()
