"""The initial states' entropy scale against a spectra model's training ICs (hicgen.spectra.ic_scale): the band a
trained checkpoint records, the check, and `hicgen spectra` refusing ICs of another TRENTo normalisation."""

import json
import re

import h5py
import numpy as np
import pytest

from hicgen.cli import main
from hicgen.environment import WEIGHTS_DIR
from hicgen.errors import InputError
from hicgen.spectra.ic_scale import MIN_BAND_ICS, MIN_ICS, MIN_NPART, check_ic_scale, training_band
from test_spectra import _config, make_records


def _ics(n: int, norm_factor: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mult, npart) of n ICs whose entropy per participant scatters around 68 x norm_factor."""
    rng = np.random.default_rng(seed)
    npart = rng.integers(2, 416, n).astype(float)
    return npart * rng.normal(68.0, 8.0, n) * norm_factor, npart


def test_training_band_is_the_spread_of_entropy_per_participant_of_the_ics_with_enough_participants():
    mult, npart = _ics(4000)
    mult[npart < MIN_NPART] *= 100  # the peripheral ICs' values do not enter
    band = training_band(mult, npart, "made here")
    ratio = mult[npart >= MIN_NPART] / npart[npart >= MIN_NPART]
    assert band["ics"] == ratio.size and band["source"] == "made here" and band["min_npart"] == MIN_NPART
    assert band["low"] == pytest.approx(np.percentile(ratio, 1)) and band["high"] == pytest.approx(np.percentile(ratio, 99))
    assert band["median"] == pytest.approx(68.0, rel=0.02)
    assert training_band(mult[:MIN_BAND_ICS], np.full(MIN_BAND_ICS, 40.0), "too few") is None  # npart < 50


def test_check_refuses_another_normalisation_unless_extrapolation_is_allowed():
    band = training_band(*_ics(4000), "hicgen truth trento, norm 181")
    check_ic_scale(*_ics(256, seed=1), band)  # the training ICs' scale
    for factor in (1 / 181, 20 / 181, 2.0):
        mult, npart = _ics(256, factor, seed=2)
        with pytest.raises(InputError, match="another TRENTo normalisation") as info:
            check_ic_scale(mult, npart, band)
        times = float(re.search(r"make them with ~([0-9.e+]+) times", str(info.value)).group(1))
        assert times == pytest.approx(1 / factor, rel=0.03)  # the factor the normalisation is off by
        assert "--allow-extrapolation" in str(info.value) and "norm 181" in str(info.value)
        check_ic_scale(mult, npart, band, allow_extrapolation=True)
    mult, npart = _ics(256, 1 / 181, seed=3)
    few = np.flatnonzero(npart >= MIN_NPART)[: MIN_ICS - 1]
    check_ic_scale(mult[few], npart[few], band)  # too few ICs for a verdict
    check_ic_scale(mult, np.full_like(npart, np.nan), band)  # no participant numbers
    check_ic_scale(mult, npart, None)  # a model without a band


def test_a_trained_checkpoint_records_its_training_ics_band(tmp_path):
    from hicgen.spectra.task import SpectraTask

    make_records(tmp_path / "r.h5", n_ic=80)
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        ic_index = f["ic_index"][()]
        mult, npart = _ics(80, seed=4)
        del f["mult"]
        f["mult"], f["npart"] = mult[ic_index], npart[ic_index]
    task = SpectraTask(_config(), tmp_path / "r.h5")
    band = task.checkpoint_config()["ic_entropy_per_participant"]
    train_ics = np.unique(ic_index[task.train_index])
    assert band == training_band(mult[train_ics], npart[train_ics], "the training ICs of r.h5")
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        del f["npart"]
    assert SpectraTask(_config(), tmp_path / "r.h5").checkpoint_config()["ic_entropy_per_participant"] is None


def test_spectra_cli_refuses_trento_ics_of_another_normalisation(tmp_path, capsys):
    """The shipped model's band (config.json) holds hicgen truth trento's ICs at its default norm; ICs made with
    norm 1 (the trento program's default) are refused in one line, no file, unless --allow-extrapolation."""
    band = json.loads((WEIGHTS_DIR / "spectra" / "config.json").read_text())["ic_entropy_per_participant"]
    assert band["low"] < band["median"] < band["high"] and band["ics"] >= MIN_BAND_ICS
    for name, norm in (("ic.h5", "181"), ("ic_norm1.h5", "1")):
        assert main(["truth", "trento", "--events", "12", "--seed", "5", "--b-max", "6", "--grid-step", "0.4",
                     "--norm", norm, "--out", str(tmp_path / name)]) == 0
    spectra = ["spectra", "--eta-s", "0.1", "--device", "cpu", "--precision", "fp32"]
    capsys.readouterr()
    assert main([*spectra, "--trento", str(tmp_path / "ic_norm1.h5"), "--out", str(tmp_path / "s1.h5")]) == 2
    err = capsys.readouterr().err
    assert "another TRENTo normalisation" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("s1*"))
    assert main([*spectra, "--trento", str(tmp_path / "ic_norm1.h5"), "--out", str(tmp_path / "s1.h5"),
                 "--allow-extrapolation"]) == 0
    assert main([*spectra, "--trento", str(tmp_path / "ic.h5"), "--out", str(tmp_path / "s.h5")]) == 0
    with h5py.File(tmp_path / "s.h5") as f, h5py.File(tmp_path / "s1.h5") as f1:
        assert f["histogram"][()].sum() > 10 * f1["histogram"][()].sum()  # the norm-1 ICs: far fewer particles
