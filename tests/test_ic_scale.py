"""The initial states' entropy scale against a spectra model's training ICs (hicgen.spectra.ic_scale): the band a
trained checkpoint records, the check, and `hicgen spectra` refusing ICs of another TRENTo normalisation."""

import json
import math
import re

import h5py
import numpy as np
import pytest

from hicgen.cli import main
from hicgen.environment import WEIGHTS_DIR
from hicgen.errors import InputError
from hicgen.spectra.ic_scale import (MIN_BAND_ICS, MIN_ICS, MIN_NPART, UNVALIDATED_RANGE, check_ic_scale,
                                     offset_from_sums, scale_offset, training_band)
from test_spectra import _config, make_records


def _ics(n: int, norm_factor: float = 1.0, seed: int = 0, spread: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """(mult, npart) of n ICs whose entropy per participant rises as 55 (npart / 50)^0.2 x norm_factor, scattering
    by spread / sqrt(npart) in its logarithm, as TRENTo's Pb-Pb ICs at norm 181 do."""
    rng = np.random.default_rng(seed)
    npart = rng.integers(2, 416, n).astype(float)
    ratio = 55.0 * (npart / 50) ** 0.2 * np.exp(rng.normal(0.0, spread / np.sqrt(npart)))
    return npart * ratio * norm_factor, npart


def test_training_band_records_the_entropy_per_participant_against_npart():
    mult, npart = _ics(4000)
    mult[npart < MIN_NPART] *= 100  # the peripheral ICs' values do not enter
    band = training_band(mult, npart, "made here")
    ratio = mult[npart >= MIN_NPART] / npart[npart >= MIN_NPART]
    assert band["ics"] == ratio.size and band["source"] == "made here" and band["min_npart"] == MIN_NPART
    assert band["low"] == pytest.approx(np.percentile(ratio, 1)) and band["high"] == pytest.approx(np.percentile(ratio, 99))
    assert band["median"] == pytest.approx(np.median(ratio))
    curve = band["curve"]
    assert curve["sd_sqrt_npart"] == pytest.approx(1.2, rel=0.05)
    for n in (60.0, 150.0, 400.0):  # the fitted curve follows the relation the ICs were made with
        mult_n = 55.0 * (n / 50) ** 0.2 * n
        assert scale_offset(np.full(MIN_ICS, mult_n), np.full(MIN_ICS, n), band)[0] == pytest.approx(0.0, abs=0.01)
    assert training_band(mult[:MIN_BAND_ICS], np.full(MIN_BAND_ICS, 40.0), "too few") is None  # npart < 50


def test_check_refuses_another_normalisation_unless_extrapolation_is_allowed():
    band = training_band(*_ics(4000), "hicgen truth trento, norm 181")
    for seed in range(1, 6):  # the training ICs' scale, central or peripheral ICs alone too
        mult, npart = _ics(256, seed=seed)
        check_ic_scale(mult, npart, band)
        for part in (npart >= 300, npart < 120):
            check_ic_scale(mult[part], npart[part], band)
        for inside in UNVALIDATED_RANGE:  # a checkpoint without a followed range takes a little
            check_ic_scale(mult * inside, npart, band)
    for factor in (1 / 181, 20 / 181, 1 / 1.2, 1.2, 2.0):
        mult, npart = _ics(256, factor, seed=2)
        with pytest.raises(InputError, match="another TRENTo normalisation") as info:
            check_ic_scale(mult, npart, band)
        times = float(re.search(r"make them with ~([0-9.e+]+) times", str(info.value)).group(1))
        assert times == pytest.approx(1 / factor, rel=0.03)  # the factor the normalisation is off by
        assert "--allow-extrapolation" in str(info.value) and "norm 181" in str(info.value)
        assert "takes 0.9-1.1 times it until a range it follows is measured" in str(info.value)
        check_ic_scale(mult, npart, band, allow_extrapolation=True)
    followed = {**band, "followed": {"range": [0.5, 1.5], "source": "measured"}}
    mult, npart = _ics(256, seed=2)
    for factor in (0.55, 1.2, 1.45):  # a model shown to follow the chain over 0.5-1.5 takes them
        check_ic_scale(mult * factor, npart, followed)
    with pytest.raises(InputError, match="shown to follow the chain at 0.5-1.5 times"):
        check_ic_scale(mult * 1.7, npart, followed)
    mult, npart = _ics(256, 1 / 181, seed=3)
    few = np.flatnonzero(npart >= MIN_NPART)[: MIN_ICS - 1]
    check_ic_scale(mult[few], npart[few], band)  # too few ICs for a verdict
    check_ic_scale(mult, np.full_like(npart, np.nan), band)  # no participant numbers
    check_ic_scale(mult, npart, None)  # a model without a band


def test_the_offset_error_counts_the_ics_their_scatter_and_the_reference():
    mult, npart = _ics(256, seed=7)
    band = training_band(*_ics(4000), "many")
    offset, error, ics = scale_offset(mult, npart, band)
    blocks = [check_ic_scale(mult[lo:lo + 64] * 1.1, npart[lo:lo + 64], band, True) for lo in range(0, 256, 64)]
    assert offset_from_sums(sum(blocks), band) == pytest.approx(scale_offset(mult * 1.1, npart, band))  # blocks add up
    assert ics == np.sum(npart >= MIN_NPART)
    weight = npart[npart >= MIN_NPART] / band["curve"]["sd_sqrt_npart"] ** 2
    assert error == pytest.approx(1 / math.sqrt(weight.sum()), rel=0.1)  # mostly the ICs' own number
    assert scale_offset(mult[:64], npart[:64], band)[1] > 1.5 * error  # fewer ICs
    assert scale_offset(*_ics(256, seed=7, spread=2.4), band)[1] > 1.6 * error  # more scatter than the training ICs
    assert scale_offset(mult, npart, training_band(*_ics(70, seed=8), "few"))[1] > 1.5 * error  # an uncertain curve
    # a 1.2x normalisation would pass the flat band of older checkpoints; their check still runs without the curve
    old_band = {k: v for k, v in band.items() if k != "curve"}
    check_ic_scale(mult * 1.2, npart, old_band)
    with pytest.raises(InputError, match="median of"):
        check_ic_scale(mult * 2.0, npart, old_band)


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
    """The shipped model's record (config.json) holds hicgen truth trento's ICs at its default norm and the factors
    its model was shown to follow: ICs made with norm 1 (the trento program's default) or 3x the norm are refused in
    one line, no file, unless --allow-extrapolation; 1.3x the norm is taken."""
    band = json.loads((WEIGHTS_DIR / "spectra" / "config.json").read_text())["ic_entropy_per_participant"]
    assert band["low"] < band["median"] < band["high"] and band["ics"] >= MIN_BAND_ICS
    assert band["followed"]["range"][0] < 1 < band["followed"]["range"][1] < 3
    for name, norm in (("ic.h5", "181"), ("ic_norm1.h5", "1"), ("ic_x1.3.h5", "235.3"), ("ic_x3.h5", "543")):
        assert main(["truth", "trento", "--events", "12", "--seed", "5", "--b-max", "6", "--grid-step", "0.4",
                     "--norm", norm, "--out", str(tmp_path / name)]) == 0
    spectra = ["spectra", "--eta-s", "0.1", "--device", "cpu", "--precision", "fp32"]
    capsys.readouterr()
    for refused in ("ic_norm1.h5", "ic_x3.h5"):
        assert main([*spectra, "--trento", str(tmp_path / refused), "--out", str(tmp_path / "s1.h5")]) == 2
        err = capsys.readouterr().err
        assert "another TRENTo normalisation" in err and len(err.strip().splitlines()) == 1
        assert not list(tmp_path.glob("s1*"))
    for name, factor, extra in (("ic_norm1.h5", 1 / 181, ["--allow-extrapolation"]), ("ic_x1.3.h5", 1.3, [])):
        out = tmp_path / ("s1.h5" if factor < 1 else "s13.h5")
        assert main([*spectra, "--trento", str(tmp_path / name), "--out", str(out), *extra]) == 0
        said = re.search(r"initial states: ([0-9.e+-]+) \+- [0-9.e+-]+ times the TRENTo entropy",
                         " ".join(capsys.readouterr().err.split()))
        assert float(said.group(1)) == pytest.approx(factor, rel=0.05)  # the run says the scale its ICs carry
    assert main([*spectra, "--trento", str(tmp_path / "ic.h5"), "--out", str(tmp_path / "s.h5")]) == 0
    with h5py.File(tmp_path / "s.h5") as f, h5py.File(tmp_path / "s1.h5") as f1:
        assert f["histogram"][()].sum() > 10 * f1["histogram"][()].sum()  # the norm-1 ICs: far fewer particles


def test_the_scale_benchmark_writes_scaled_ics_and_finds_the_range_the_model_follows(tmp_path):
    """benchmarks/spectra_ic_scale.py: `scale` multiplies profiles and mult by each factor; `compare` gives per factor
    and eta/s the model's observables over the chain's, and the contiguous range about 1 within the targets."""
    from test_spectra import _benchmark_module

    bench = _benchmark_module("spectra_ic_scale")
    assert bench.followed_range([1.0, 0.7, 1.3, 0.4, 1.75], [True, True, True, False, True]) == [0.7, 1.75]
    assert bench.followed_range([0.7, 1.0, 1.3], [True, False, True]) is None
    assert bench.followed_range([0.7, 1.3], [True, True]) is None
    mult, npart = _ics(12, seed=9)
    with h5py.File(tmp_path / "ic.h5", "w") as f:
        f.attrs["grid_step"] = 0.4
        for i in range(12):
            f.create_dataset(f"event_{i}", data=np.full((4, 4), i + 1.0, np.float32)).attrs.update(
                {"mult": mult[i], "npart": npart[i], "b": 1.0})
    factors = [1.0, 0.5, 2.0]
    bench.scale(tmp_path / "ic.h5", factors, tmp_path / "scaled.h5")
    with h5py.File(tmp_path / "scaled.h5") as f:
        assert list(f.attrs["norm_factors"]) == factors and f.attrs["ics_per_group"] == 12 and len(f.keys()) == 36
        assert list(f.attrs["groups"]) == ["x1", "x0.5", "x2"]
        assert f["event_17"][0, 0] == pytest.approx(0.5 * 6) and f["event_17"].attrs["mult"] == pytest.approx(0.5 * mult[5])
        assert f["event_17"].attrs["npart"] == npart[5]
    rng = np.random.default_rng(0)
    pt_edges, phi_edges = np.linspace(0, 2, 5), np.linspace(-np.pi, np.pi, 9)
    phi = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    chain = rng.uniform(1, 2, (36, 4, 1)) * (1 + 0.2 * np.cos(2 * (phi - rng.uniform(0, 3, (36, 1, 1)))))
    model = chain.copy()
    model[24:] *= 1.03  # 3 % more particles at 2x the normalisation: misses the 2 % target
    for name, spectra, sha in (("chain.h5", chain, "x"), ("model.h5", model, "abc")):
        with h5py.File(tmp_path / name, "w") as f:
            f.attrs["model_sha256"] = sha
            f.attrs.update({"sampler": "ddim", "steps": 3, "logsnr_range": [1.0, 4.0]})
            f["pt_edges"], f["phi_edges"], f["spectrum"] = pt_edges, phi_edges, spectra.astype(np.float32)
            f["ic_index"], f["eta_s"] = np.arange(36), np.full(36, 0.1, np.float32)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps(
        {"tensors_sha256": "abc", "ic_entropy_per_participant": training_band(*_ics(4000), "s")}))
    result = bench.compare(tmp_path / "scaled.h5", [tmp_path / "chain.h5"], tmp_path / "model.h5", tmp_path / "ck", 20, 0)
    by_factor = {row["factor"]: row for row in result["rows"]}
    assert [row["group"] for row in result["rows"]] == ["x1", "x0.5", "x2"]
    assert by_factor[1.0]["mult"]["ratio"] == pytest.approx(1.0) and by_factor[2.0]["mult"]["ratio"] == pytest.approx(1.03)
    assert by_factor[2.0]["v2{2}"]["ratio"] == pytest.approx(1.0) and not by_factor[2.0]["within_targets"]
    assert by_factor[0.5]["scale_offset"]["ln"] == pytest.approx(math.log(0.5) + by_factor[1.0]["scale_offset"]["ln"])
    assert result["followed_range"] == [0.5, 1.0]
    assert result["sampling"] == {"sampler": "ddim", "steps": 3, "logsnr_range": [1.0, 4.0]}
    with pytest.raises(SystemExit, match="names no groups of ICs"):
        bench.compare(tmp_path / "ic.h5", [tmp_path / "chain.h5"], tmp_path / "model.h5", tmp_path / "ck", 20, 0)
    with pytest.raises(SystemExit, match="another model"):
        bench.compare(tmp_path / "scaled.h5", [tmp_path / "chain.h5"], tmp_path / "chain.h5", tmp_path / "ck", 20, 0)
    bench.join([tmp_path / "ic.h5", tmp_path / "scaled.h5", tmp_path / "ic.h5"], tmp_path / "joined.h5")  # groups of 12
    with h5py.File(tmp_path / "joined.h5") as f, h5py.File(tmp_path / "scaled.h5") as g:
        assert list(f.attrs["groups"]) == ["ic", "scaled", "ic"] and f.attrs["ics_per_group"] == 12 and len(f.keys()) == 36
        assert f["event_12"].attrs["mult"] == g["event_0"].attrs["mult"] and f["event_35"][0, 0] == 12
    joined = bench.compare(tmp_path / "joined.h5", [tmp_path / "chain.h5"], tmp_path / "model.h5", tmp_path / "ck", 20, 0)
    assert joined["followed_range"] is None and joined["factors"] is None
    assert [row["mult"]["ratio"] for row in joined["rows"]] == pytest.approx([1.0, 1.0, 1.03])
    assert [row["ics"] for row in joined["rows"]] == [12, 12, 12] and not joined["rows"][2]["left_out_ic_index"]
    # ICs whose hydro went unstable have no chain record: they are left out of their group's comparison
    keep = np.arange(36) != 30
    model[30] *= 1.5  # what the model gives there no longer counts
    for name, spectra, sha, rows in (("chain_cut.h5", chain, "x", keep), ("chain_24.h5", chain, "x", np.arange(36) < 24),
                                     ("model_30.h5", model, "abc", np.arange(36) >= 0), ("model_cut.h5", model, "abc", keep)):
        with h5py.File(tmp_path / name, "w") as f:
            f.attrs["model_sha256"] = sha
            f.attrs.update({"sampler": "ddim", "steps": 3, "logsnr_range": [1.0, 4.0]})
            f["pt_edges"], f["phi_edges"], f["spectrum"] = pt_edges, phi_edges, spectra[rows].astype(np.float32)
            f["ic_index"], f["eta_s"] = np.arange(36)[rows], np.full(36, 0.1, np.float32)[rows]
    cut = bench.compare(tmp_path / "joined.h5", [tmp_path / "chain_cut.h5"], tmp_path / "model_30.h5", tmp_path / "ck", 20, 0)
    assert [row["ics"] for row in cut["rows"]] == [12, 12, 11] and cut["rows"][2]["left_out_ic_index"] == [30]
    assert cut["rows"][2]["mult"]["ratio"] == pytest.approx(1.03)
    with pytest.raises(SystemExit, match="lacks records"):
        bench.compare(tmp_path / "joined.h5", [tmp_path / "chain.h5"], tmp_path / "model_cut.h5", tmp_path / "ck", 20, 0)
    with pytest.raises(SystemExit, match="only 0 of ICs 24-35"):
        bench.compare(tmp_path / "joined.h5", [tmp_path / "chain_24.h5"], tmp_path / "model_30.h5", tmp_path / "ck", 20, 0)


def test_the_scale_benchmark_finds_the_factors_the_check_takes(tmp_path, monkeypatch, capsys):
    """`accept`: per block, the normalisation factors at which check_ic_scale takes its ICs, edges confirmed by the
    check itself on both sides; ICs made at 1.2x the normalisation are taken at factors 1.2 times lower."""
    from test_spectra import _benchmark_module

    bench = _benchmark_module("spectra_ic_scale")
    band = training_band(*_ics(8000, seed=1), "s")
    band["followed"] = {"range": [0.5, 1.5]}
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"ic_entropy_per_participant": band}))
    mult, npart = _ics(1200, norm_factor=1.2, seed=3)
    npart[:64] = np.linspace(300, 400, 64)  # enough central ICs for their block, at the same entropy scale
    mult[:64] = npart[:64] * 55.0 * (npart[:64] / 50) ** 0.2 * 1.2
    with h5py.File(tmp_path / "ic.h5", "w") as f:
        for i in range(mult.size):
            f.create_dataset(f"event_{i}", data=np.zeros((2, 2), np.float32)).attrs.update({"mult": mult[i], "npart": npart[i]})
    result = bench.accept(tmp_path / "ic.h5", tmp_path / "ck")
    assert [block["block"] for block in result["blocks"]] == list(bench.ACCEPT_BLOCKS)
    for block, (count, npart_low, npart_high) in zip(result["blocks"], bench.ACCEPT_BLOCKS.values()):
        rows = np.flatnonzero((npart >= npart_low) & (npart < npart_high))[:count]
        low, high = block["factors"]
        assert math.exp(block["ln_offset"]) == pytest.approx(1.2, abs=5 * block["error"])
        assert low == pytest.approx(0.5 / 1.2, rel=0.15) and high == pytest.approx(1.5 / 1.2, rel=0.15)
        for factor in (low * 1.002, high * 0.998):
            check_ic_scale(mult[rows] * factor, npart[rows], band)
        for factor in (low * 0.998, high * 1.002):
            with pytest.raises(InputError):
                check_ic_scale(mult[rows] * factor, npart[rows], band)
    peripheral = result["blocks"][2]
    assert peripheral["error"] > result["blocks"][0]["error"]  # fewer participants: a wider scatter of the mean
    with h5py.File(tmp_path / "few.h5", "w") as f:
        for i in range(100):
            f.create_dataset(f"event_{i}", data=np.zeros((2, 2), np.float32)).attrs.update({"mult": mult[64 + i], "npart": npart[64 + i]})
    with pytest.raises(SystemExit, match="holds 100 ICs for the block .all impact parameters., which needs 256"):
        bench.accept(tmp_path / "few.h5", tmp_path / "ck")
    monkeypatch.setattr("sys.argv", ["spectra_ic_scale.py", "accept", str(tmp_path / "few.h5"), "--checkpoint", str(tmp_path / "ck")])
    with pytest.raises(SystemExit) as stop:  # bad input from the command line: one line, exit code 2
        bench.main()
    assert stop.value.code == 2 and "which needs 256; make more" in capsys.readouterr().err


def test_a_run_measures_the_scale_over_all_its_blocks(tmp_path):
    from hicgen.spectra.pipeline import run_spectra
    from hicgen.truth.trento_io import read_event_attrs

    assert main(["truth", "trento", "--events", "24", "--seed", "6", "--b-max", "8", "--grid-step", "0.4",
                 "--norm", "200", "--out", str(tmp_path / "ic.h5")]) == 0
    summary = run_spectra(tmp_path / "ic.h5", 0.1, tmp_path / "s.h5", WEIGHTS_DIR / "spectra", chunk_ics=8,
                          precision="fp32")
    band = json.loads((WEIGHTS_DIR / "spectra" / "config.json").read_text())["ic_entropy_per_participant"]
    attrs = read_event_attrs(tmp_path / "ic.h5", ("mult", "npart"))
    assert summary["ic_scale"] == pytest.approx(scale_offset(attrs["mult"], attrs["npart"], band))  # all 3 blocks
    assert summary["ic_scale"][2] > 16
