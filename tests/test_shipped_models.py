"""The shipped checkpoints load and `hicgen run` / `hicgen spectra` work on them out of the box (CPU, a few events)."""

import json

import h5py
import numpy as np
import pytest

from hicgen.cli import main
from hicgen.data.dataset import read_dataset
from hicgen.engine.models import default_model
from hicgen.environment import WEIGHTS_DIR, shipped_models


@pytest.mark.parametrize("system, centrality, min_mult", [("OO", None, 1), ("PbPb", "0-10", 2000)])
def test_pointcloud_model_is_shipped_and_runs(tmp_path, system, centrality, min_mult):
    """`hicgen run --system S` without --model uses weights/<s>; central Pb-Pb events carry thousands of charged
    particles in the acceptance (Angantyr's 0-10 %: 8,300 on average, none below 6,800), which the O-O model never
    makes."""
    name = system.lower()
    assert any(m["name"] == name and m["kind"] == "pointcloud" for m in shipped_models())
    assert default_model(system).name == name
    out = tmp_path / f"{name}.h5"
    selection = ["--centrality", centrality] if centrality else []
    assert main(["run", "--system", system, "--events", "2", "--steps", "4", "--seed", "3", *selection, "--out", str(out)]) == 0
    data = read_dataset(out)
    with h5py.File(out) as f:
        assert f.attrs["system"] == system
    assert len(data) == 2
    np.testing.assert_array_equal(data.multiplicity, data.events["mult"])
    assert data.multiplicity.min() >= min_mult
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
