"""The shipped checkpoints load and `hicgen run` / `hicgen spectra` work on them out of the box (CPU, a few events)."""

import json

import h5py
import numpy as np

from hicgen.cli import main
from hicgen.data.dataset import read_dataset
from hicgen.engine.models import default_model
from hicgen.environment import WEIGHTS_DIR, shipped_models


def test_oo_model_is_shipped_and_runs(tmp_path):
    assert any(m["name"] == "oo" and m["kind"] == "pointcloud" for m in shipped_models())
    assert default_model("OO").name == "oo"
    out = tmp_path / "oo.h5"
    assert main(["run", "--system", "OO", "--events", "6", "--steps", "4", "--seed", "3", "--out", str(out)]) == 0
    data = read_dataset(out)
    assert len(data) == 6
    np.testing.assert_array_equal(data.multiplicity, data.events["mult"])
    assert np.all(np.abs(data.particles["eta"]) < 2.5 + 1e-6) and np.all(data.particles["pt"] > 0.15 - 1e-6)
    assert np.all(np.isfinite(data.particles["phi"])) and np.all(data.particles["pid"] != 0)


def test_spectra_model_is_shipped_and_runs(tmp_path):
    """`hicgen spectra` without --model uses weights/spectra: integer histograms drawn from a smooth spectrum whose
    multiplicity grows with the initial entropy (a model that ignored its condition would fail)."""
    assert any(m["name"] == "spectra" and m["kind"] == "spectra" for m in shipped_models())
    x = np.linspace(-9.9, 9.9, 100)
    X, Y = np.meshgrid(x, x)
    with h5py.File(tmp_path / "ic.h5", "w") as f:
        for i, scale in enumerate((20.0, 60.0)):  # a peripheral-like and a central-like elliptic profile
            f[f"event_{i}"] = scale * np.exp(-(X**2 / 8.0 + Y**2 / 14.0)) * (1 + i)
    out = tmp_path / "s.h5"
    assert main(["spectra", "--trento", str(tmp_path / "ic.h5"), "--eta-s", "0.1", "--out", str(out)]) == 0
    sampling = json.loads((WEIGHTS_DIR / "spectra" / "config.json").read_text()).get("sampling", {})
    with h5py.File(out) as f:
        assert f["histogram"].shape == (2, 64, 64) and f.attrs["model"].endswith("spectra")
        assert f.attrs["steps"] == sampling.get("steps", 12)  # the card's measured setting is the default
        assert f.attrs["sampler"] == sampling.get("sampler", "dpm++2m")
        assert list(np.atleast_1d(f.attrs["logsnr_range"])) == (sampling.get("logsnr_range") or ["full"])
        hist, density = f["histogram"][()], f["spectrum"][()]
    assert np.array_equal(hist, np.round(hist)) and np.all(np.isfinite(density)) and np.all(density > 0)
    assert hist[1].sum() > 1.5 * hist[0].sum() > 0
