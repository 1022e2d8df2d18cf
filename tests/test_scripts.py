"""scripts/: set_ic_reference.py writes the band training_band computes; species_shares.py's class shares."""

import json
import runpy
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hicgen.spectra.ic_scale import training_band

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _run(script: str, *args: str, capsys=None) -> str:
    argv = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(SCRIPTS / script), run_name="__main__")
    finally:
        sys.argv = argv
    return capsys.readouterr().out if capsys is not None else ""


def test_set_ic_reference_records_the_band_of_a_trento_or_hydro_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npart = rng.integers(2, 416, 300).astype(float)
    mult = npart * rng.normal(68.0, 8.0, 300)
    with h5py.File(tmp_path / "ic.h5", "w") as f:  # the trento layout
        for i in range(300):
            f.create_dataset(f"event_{i}", data=np.zeros((2, 2))).attrs.update({"mult": mult[i], "npart": npart[i]})
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"kind": "spectra"}))
    _run("set_ic_reference.py", str(tmp_path / "ck"), str(tmp_path / "ic.h5"), "--source", "made here", capsys=capsys)
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["kind"] == "spectra" and config["ic_entropy_per_participant"] == training_band(mult, npart, "made here")
    with h5py.File(tmp_path / "hydro.h5", "w") as f:  # a hydro file: three eta/s records per IC, one counted
        f.attrs["format"] = "hicgen-spectra"
        f["ic_index"], f["mult"], f["npart"] = np.repeat(np.arange(300), 3), np.repeat(mult, 3), np.repeat(npart, 3)
    _run("set_ic_reference.py", str(tmp_path / "ck"), str(tmp_path / "hydro.h5"), "--source", "hydro", capsys=capsys)
    band = json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"]
    assert band == training_band(mult, npart, "hydro")
    with h5py.File(tmp_path / "peripheral.h5", "w") as f:  # only ICs with npart < 50: no band, config kept
        for i in range(300):
            f.create_dataset(f"event_{i}", data=np.zeros((2, 2))).attrs.update({"mult": 600.0, "npart": 10.0})
    with pytest.raises(SystemExit) as stop:
        _run("set_ic_reference.py", str(tmp_path / "ck"), str(tmp_path / "peripheral.h5"), "--source", "x")
    assert stop.value.code == 2 and "fewer than 50 ICs with npart >= 50" in capsys.readouterr().err
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"] == band


def test_species_shares_per_multiplicity_class():
    shares_by_class = runpy.run_path(str(SCRIPTS / "species_shares.py"))["shares_by_class"]
    mult = np.arange(8.0)
    yields = np.zeros((8, 3, 2))
    yields[:, 0] = 1.0  # pions: 1 per bin
    yields[:, 2, 1] = np.where(mult < 4, 1.0, 3.0)  # protons in bin 1: 1 in the low class, 3 in the high one
    (lo0, hi0, low), (lo1, hi1, high) = shares_by_class(yields, mult, 2)
    assert (lo0, hi1) == (0.0, 7.0) and np.allclose(low.sum(axis=0), 1) and np.allclose(high.sum(axis=0), 1)
    assert low[2, 1] == pytest.approx(0.5) and high[2, 1] == pytest.approx(0.75) and low[0, 0] == 1.0
