"""The shipped checkpoints load and `hicgen run` works on them out of the box (CPU, a few events)."""

import numpy as np

from hicgen.cli import main
from hicgen.data.dataset import read_dataset
from hicgen.engine.models import default_model
from hicgen.environment import shipped_models


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
