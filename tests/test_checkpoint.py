"""Checkpoints: safetensors + JSON config, hash-checked, never unpickled; centrality calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from toy_events import toy_batch

from hicgen.checkpoint import CONFIG_FILE, TENSORS_FILE, load_checkpoint, save_checkpoint
from hicgen.data.centrality import Centrality
from hicgen.data.transforms import PointCloudTransforms
from hicgen.errors import CheckpointError
from hicgen.models import build_pointcloud_models, pointcloud_config

ARCH = {
    "event": {"event_dim": 10, "dim": 16, "num_blocks": 1},
    "particle": {"num_features": 18, "cond_dim": 10, "dim": 16, "num_heads": 2, "num_layers": 1, "num_head_layers": 1, "num_neighbors": 3},
}


@pytest.fixture()
def saved(tmp_path):
    batch = toy_batch(20, seed=4, mean_mult=20)
    transforms = PointCloudTransforms.fit(batch, eta_max=2.5, pt_min=0.15)
    centrality = Centrality.fit(batch.events["b"], batch.events["mult"])
    torch.manual_seed(0)
    models = build_pointcloud_models(ARCH)
    for p in models["particle"].parameters():
        p.data.normal_(0, 0.1)
    config = pointcloud_config(ARCH, transforms, centrality, provenance={"data_sha256": "0" * 64})
    save_checkpoint(tmp_path / "ck", models, config)
    return tmp_path / "ck", models, batch, transforms


def test_round_trip_gives_identical_outputs(saved):
    path, models, batch, transforms = saved
    bundle, config = load_checkpoint(path, "cpu")
    assert config["kind"] == "pointcloud" and config["event_dim"] == 10 and config["num_features"] == 18
    assert config["species"]["pid"][:2] == [211, -211]
    e, x, mask = transforms.encode_batch(batch.slice(0, 4))
    t = torch.full((4,), 0.3)
    torch.testing.assert_close(bundle.particle_model(x, t, e, mask), models["particle"].eval()(x, t, e, mask))
    torch.testing.assert_close(bundle.event_model(e, t), models["event"].eval()(e, t))
    assert bundle.schedule.prediction == "v"
    decoded = bundle.transforms.decode_events(e)
    np.testing.assert_array_equal(decoded["mult"], batch.events["mult"][:4])
    assert not bundle.particle_model.training


def test_tensor_file_is_safetensors_not_pickle(saved):
    path = saved[0]
    raw = (path / TENSORS_FILE).read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert "event.out.weight" in header and not raw.startswith(b"\x80")


def test_corrupted_tensors_are_refused(saved):
    path = saved[0]
    raw = bytearray((path / TENSORS_FILE).read_bytes())
    raw[-5] ^= 0xFF
    (path / TENSORS_FILE).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


def test_mismatched_architecture_is_refused(saved):
    path = saved[0]
    config = json.loads((path / CONFIG_FILE).read_text())
    config["architecture"]["particle"]["dim"] = 32
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


def test_missing_or_foreign_folders_are_refused(tmp_path, saved):
    with pytest.raises(CheckpointError, match="not a folder"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path / "empty")
    path = saved[0]
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_checkpoint(path)


def test_unknown_kind_is_refused(saved):
    path = saved[0]
    config = json.loads((path / CONFIG_FILE).read_text())
    config["kind"] = "teapot"
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="teapot"):
        load_checkpoint(path)


def test_centrality_calibration():
    rng = np.random.default_rng(0)
    b = 10 * np.sqrt(rng.uniform(0, 1, 20000))  # dN/db ∝ b up to 10 fm
    mult = rng.poisson(200 * (1 - b / 10.5) + 1)
    cal = Centrality.from_config(Centrality.fit(b, mult).to_config())
    # Geometric centrality: c = (b / b_max)^2.
    np.testing.assert_allclose(cal.from_b(np.array([5.0, 7.0])), [25.0, 49.0], atol=1.5)
    assert cal.b_range(0, 10) == pytest.approx((0.0, 10 * np.sqrt(0.1)), abs=0.1)
    lo, hi = cal.mult_range(0, 10)
    assert np.mean(mult > lo) == pytest.approx(0.10, abs=0.01) and hi == mult.max()
    assert cal.from_mult(np.array([mult.max()]))[0] == 0.0
    with pytest.raises(ValueError, match="centrality class"):
        cal.b_range(20, 10)
    # Mean multiplicity of a class: that of the sample's events in it.
    assert cal.mean_mult() == pytest.approx(mult.mean(), rel=0.02)  # from 101 percentiles
    central = np.sort(mult)[-len(mult) // 10:]
    assert cal.mean_mult(0, 10) == pytest.approx(central.mean(), rel=0.02)


def test_json_text_round_trips_with_flat_lists_on_one_line():
    from hicgen.checkpoint import json_text

    data = {"edges": [0.0, 0.5, 1.0], "table": [[[0.25, 0.75]], [[1, 0]]], "name": "x", "empty": {}, "none": None,
            "nested": {"ids": [211, -211], "labels": ["a", "b"], "rows": []}}
    text = json_text(data)
    assert json.loads(text) == data
    assert '"edges": [0.0, 0.5, 1.0]' in text and '      [0.25, 0.75]' in text and '"ids": [211, -211]' in text
    assert text.count("\n") == 18  # 19 lines: every list of plain values on its own one
