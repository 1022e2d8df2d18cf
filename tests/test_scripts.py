"""scripts/: set_ic_reference.py writes the band training_band computes; species_shares.py's class shares and
particle comparison; set_species_mixture.py's class table."""

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


def test_set_ic_reference_records_the_followed_range_of_this_checkpoints_model(tmp_path, capsys):
    rng = np.random.default_rng(1)
    npart = rng.integers(50, 416, 100).astype(float)
    with h5py.File(tmp_path / "ic.h5", "w") as f:
        for i, n in enumerate(npart):
            f.create_dataset(f"event_{i}", data=np.zeros((2, 2))).attrs.update({"mult": 60 * n, "npart": n})
    (tmp_path / "ck").mkdir()
    default = {"sampler": "ddim", "steps": 3, "logsnr_range": [1.0, 4.0]}
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"kind": "spectra", "tensors_sha256": "abc", "sampling": default}))
    rows = lambda verdicts: [{"factor": f, "eta_s": e, "within_targets": ok}  # noqa: E731  (per factor and eta/s)
                             for f, ok in verdicts.items() for e in (0.0, 0.2)]
    measured = {"factors": ["0.7", "1", "1.3"], "rows": rows({0.7: True, 1.0: True, 1.3: True}), "model_sha256": "abc",
                "eta_s": [0.0, 0.2], "ics_per_factor": 64, "sampling": {**default, "logsnr_range": [1.0, 4.0000001]}}
    (tmp_path / "m.json").write_text(json.dumps(measured))
    ic_args = [str(tmp_path / "ck"), str(tmp_path / "ic.h5"), "--source", "s"]
    _run("set_ic_reference.py", *ic_args, "--followed", str(tmp_path / "m.json"), capsys=capsys)
    band = json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"]
    assert band["followed"]["range"] == [0.7, 1.3] and "64 ICs" in band["followed"]["source"]
    second = {**measured, "factors": ["0.5", "1", "1.3", "1.5"], "rows": rows({0.5: True, 1.0: True, 1.3: False, 1.5: True})}
    second["rows"][1]["within_targets"] = False  # 0.5 misses at eta/s 0.2 only: it misses
    (tmp_path / "m2.json").write_text(json.dumps(second))
    _run("set_ic_reference.py", *ic_args, "--followed", str(tmp_path / "m.json"), str(tmp_path / "m2.json"), capsys=capsys)
    band = json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"]
    assert band["followed"]["range"] == [0.7, 1.0] and "m2.json" in band["followed"]["source"]  # 1.3 missed once
    _run("set_ic_reference.py", *ic_args, capsys=capsys)  # a new curve keeps the model's range
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"] == band
    for bad, message in (({"model_sha256": "other"}, "measured another model"),
                         ({"rows": rows({1.0: False, 1.3: True})}, "no range of factors"), ({"rows": 3}, "is not a JSON of"),
                         ({"factors": None}, "not normalisation factors"),
                         ({"sampling": {**default, "logsnr_range": [-2.0, 4.0]}}, "not at this checkpoint's default"),
                         ({"sampling": {**default, "steps": 6}}, "not at this checkpoint's default"),
                         ({"sampling": {**default, "logsnr_range": "full"}}, "not at this checkpoint's default")):
        (tmp_path / "bad.json").write_text(json.dumps({**measured, **bad}))
        with pytest.raises(SystemExit) as stop:
            _run("set_ic_reference.py", *ic_args, "--followed", str(tmp_path / "bad.json"))
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err, err
        assert json.loads((tmp_path / "ck" / "config.json").read_text())["ic_entropy_per_participant"] == band


def _chain_file(path, n: int = 8) -> np.ndarray:
    """A hydro-like file: n records at eta/s 0, pions 1 per pT bin, protons in bin 1 of 1 in the low half of the
    records by dN/dy and 3 in the high half; species attributes as `hicgen truth hydro` writes them."""
    yields = np.zeros((n, 3, 2))
    yields[:, 0] = 1.0 + np.arange(n)[:, None] / 100.0  # dN/dy rises with the record
    yields[:, 2, 1] = np.where(np.arange(n) < n // 2, 1.0, 3.0)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "hicgen-spectra"
        f["species_pt_dndy"], f["eta_s"], f["ic_index"] = yields.astype(np.float32), np.zeros(n, np.float32), np.arange(n)
        f["pt_edges"] = np.array([0.0, 1.0, 2.0])
        f.attrs["species_pid"] = np.array([211, -211, 321, -321, 2212, -2212])
        f.attrs["species_fraction"] = np.repeat(yields.sum(axis=(0, 2)) / 2, 2) / yields.sum()
        f.attrs["species_pt_fraction"] = np.repeat(yields.sum(0) / 2, 2, axis=0) / yields.sum(0).sum(0)
    return yields


def test_species_shares_per_multiplicity_class_and_of_particles(tmp_path, capsys):
    module = runpy.run_path(str(SCRIPTS / "species_shares.py"))
    yields = _chain_file(tmp_path / "hydro.h5")
    low, high = module["class_shares"](yields[:4]), module["class_shares"](yields[4:])
    low_p, high_p = (yields[rows, 2, 1].sum() / yields[rows, :, 1].sum() for rows in (slice(0, 4), slice(4, 8)))
    assert np.allclose(low.sum(axis=0), 1) and low[2, 1] == pytest.approx(low_p) and low[0, 0] == 1.0
    assert high[2, 1] == pytest.approx(high_p) and high_p > 1.4 * low_p
    window = module["window_shares"](yields[4:], np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0]))
    assert window[2, 0] == pytest.approx(12 / (12 + 2 * 4.22), rel=1e-3)
    counts = module["particle_window_counts"](np.array([211, -2212, 321, 2212, 22]), np.array([0.1, 0.2, 1.5, 2.5, 0.3]),
                                              np.array([0.0, 1.0, 2.0]))
    assert counts.tolist() == [[1, 0], [0, 1], [1, 0]]  # the photon and the proton beyond 2 GeV are not counted

    from hicgen.data.batch import EventBatch
    from hicgen.io.writers import open_writer

    n_particles = 10  # per event: the high class's events get protons in bin 1 only
    pid = np.where(np.repeat(np.arange(8) < 4, n_particles), 211, 2212)
    batch = EventBatch(events={"eta_s": np.zeros(8, np.float32), "ic_index": np.arange(8)},
                       offsets=np.arange(9) * n_particles,
                       particles={"pt": np.full(80, 1.5, np.float32), "eta": np.zeros(80, np.float32),
                                  "phi": np.zeros(80, np.float32), "pid": pid.astype(np.int32)})
    with open_writer(tmp_path / "p.h5") as writer:
        writer.write(batch)
    out = _run("species_shares.py", str(tmp_path / "hydro.h5"), "--classes", "2", "--particles", str(tmp_path / "p.h5"),
               "--windows", "1", "2", capsys=capsys)
    closure = [line.split() for line in out.splitlines() if line.split()[3:4] == ["p"]]
    assert [row[2] for row in closure] == ["4", "4"]  # events per class
    assert [row[4] for row in closure] == [f"{low_p:.4f}", f"{high_p:.4f}"]  # the chain's proton share
    assert [row[6] for row in closure] == ["0.0000", "1.0000"]  # the particles'
    assert "against the chain's: 0.0 over 0 cells" in out  # shares of 0 and 1 carry no binomial error
    with h5py.File(tmp_path / "hydro.h5", "a") as f:  # with the species' flow: the v2{2} comparison too
        f["species_pt_flow"] = np.random.default_rng(1).normal(0, 0.05, (8, 3, 4, 2)).astype(np.float32)
    out = _run("species_shares.py", str(tmp_path / "hydro.h5"), "--classes", "2", "--particles", str(tmp_path / "p.h5"),
               "--windows", "1", "2", capsys=capsys)
    assert "v2{2} per pT window" in out and "v2{2} ratios to all charged against the chain's" in out
    with pytest.raises(SystemExit):
        _run("species_shares.py", str(tmp_path / "missing.h5"))
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "text.h5").write_text("not hdf5")
    for args, message in (([str(tmp_path / "text.h5")], "is not an HDF5 file"),
                          ([str(tmp_path / "hydro.h5"), "--particles", str(tmp_path / "text.h5")], "not a readable HDF5")):
        with pytest.raises(SystemExit) as stop:
            _run("species_shares.py", *args)
        assert stop.value.code == 2 and message in capsys.readouterr().err
    batch.events.pop("eta_s")  # events of another generator: one line
    with open_writer(tmp_path / "q.h5") as writer:
        writer.write(batch)
    with pytest.raises(SystemExit):
        _run("species_shares.py", str(tmp_path / "hydro.h5"), "--particles", str(tmp_path / "q.h5"))
    assert "no eta_s and ic_index event columns" in capsys.readouterr().err
    batch.events["eta_s"] = np.full(8, 0.3, np.float32)  # another eta/s than the chain's: nothing to compare
    with open_writer(tmp_path / "r.h5") as writer:
        writer.write(batch)
    with pytest.raises(SystemExit):
        _run("species_shares.py", str(tmp_path / "hydro.h5"), "--particles", str(tmp_path / "r.h5"))
    assert "no event of" in capsys.readouterr().err


def test_set_species_mixture_writes_the_class_table(tmp_path, capsys):
    _chain_file(tmp_path / "hydro.h5")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"kind": "spectra", "pt_edges": [0.0, 1.0, 2.0]}))
    out = _run("set_species_mixture.py", str(tmp_path / "ck"), str(tmp_path / "hydro.h5"), "--classes", "2", capsys=capsys)
    species = json.loads((tmp_path / "ck" / "config.json").read_text())["species"]
    assert species["classes"]["eta_s"] == [0.0] and len(species["classes"]["log_dndy"][0]) == 2
    assert np.asarray(species["classes"]["pt_fraction"]).shape == (1, 2, 6, 2)
    assert "eta/s 0: dN/dy classes 3-3, 5-5" in out
    with h5py.File(tmp_path / "hydro.h5", "a") as f:
        del f["species_pt_dndy"]
    with pytest.raises(SystemExit):
        _run("set_species_mixture.py", str(tmp_path / "ck"), str(tmp_path / "hydro.h5"))
    assert "no per-record species yields" in capsys.readouterr().err
    before = (tmp_path / "ck" / "config.json").read_text()
    for checkpoint, chain, message in ((tmp_path / "none", tmp_path / "hydro.h5", "holds no config.json"),
                                       (tmp_path / "ck", tmp_path / "missing.h5", "is not an HDF5 file"),
                                       (tmp_path / "ck", tmp_path / "ck" / "config.json", "is not an HDF5 file")):
        with pytest.raises(SystemExit) as stop:
            _run("set_species_mixture.py", str(checkpoint), str(chain))
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "ck" / "config.json").read_text() == before  # untouched


def test_species_flow_of_smooth_spectra_and_of_particles():
    module = runpy.run_path(str(SCRIPTS / "species_shares.py"))
    rng = np.random.default_rng(4)
    windows, pt_edges = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    v = np.array([0.05, 0.08, 0.12])  # pi, K, p: the same at every pT
    planes = rng.uniform(-np.pi, np.pi, 40)
    yields = rng.uniform(1.0, 2.0, (40, 3, 4)) * np.array([100.0, 20.0, 5.0])[:, None]
    flow = np.zeros((40, 3, 4, 4))
    flow[:, :, 0] = v[None, :, None] * np.cos(2 * planes)[:, None, None]
    flow[:, :, 1] = v[None, :, None] * np.sin(2 * planes)[:, None, None]
    smooth = module["chain_flow"](yields, flow, 0, pt_edges, windows)
    # v_n{2} = <v v_ref> / sqrt(<v_ref^2>): v itself up to the records' spread of the reference's v2 (~1 %)
    np.testing.assert_allclose(smooth[:3], np.broadcast_to(v[:, None], (3, 2)), rtol=2e-3)
    assert smooth[3, 0] == pytest.approx((yields[:, :, :2].sum(axis=(0, 2)) * v).sum() / yields[:, :, :2].sum(), rel=2e-3)
    events, pid, phi, pt = [], [], [], []  # 400 events of 300 particles with those v2 about random planes
    for e, plane in enumerate(rng.uniform(-np.pi, np.pi, 400)):
        kind = rng.choice(3, 300, p=[0.6, 0.25, 0.15])
        angle = rng.uniform(-np.pi, np.pi, 300)
        keep = rng.uniform(0, 1 + 2 * v.max(), 300) < 1 + 2 * v[kind] * np.cos(2 * (angle - plane))
        events.append(np.full(keep.sum(), e)), pid.append(np.array([211, 321, 2212])[kind[keep]])
        phi.append(angle[keep]), pt.append(rng.uniform(0, 2, keep.sum()))
    event = np.concatenate(events)
    value, error = module["particle_flow"](np.searchsorted(np.unique(event), event), np.concatenate(pid),
                                           np.concatenate(pt), np.concatenate(phi), 2, windows)
    assert value.shape == error.shape == (4, 2) and np.all(error > 0)
    np.testing.assert_allclose(value[:3], np.broadcast_to(v[:, None], (3, 2)), atol=4 * error[:3].max())
    assert value[2, 0] > value[0, 0] + 3 * np.hypot(error[2, 0], error[0, 0])  # the protons' is larger
