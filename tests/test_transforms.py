"""Transforms: EventBatch <-> model tensors (hicgen.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_events import toy_batch

from hicgen.data.batch import EventBatch
from hicgen.data.transforms import (
    EVENT_DIM, EVENT_FEATURES, NUM_FEATURES, NUM_KINEMATIC, PointCloudTransforms, most_frequent_other, pad_tokens,
)


@pytest.fixture(scope="module")
def batch() -> EventBatch:
    return toy_batch(12, seed=3, mean_mult=40)


@pytest.fixture(scope="module")
def transforms(batch) -> PointCloudTransforms:
    return PointCloudTransforms.fit(batch, eta_max=2.5, pt_min=0.15)


def test_encoded_features_are_standardised(batch, transforms):
    e, x, mask = transforms.encode_batch(batch)
    assert e.shape == (len(batch), EVENT_DIM) and x.shape[-1] == NUM_FEATURES
    assert torch.allclose(e.mean(0), torch.zeros(EVENT_DIM), atol=1e-5)
    kin = x[mask][:, :NUM_KINEMATIC]
    assert torch.allclose(kin.mean(0), torch.zeros(NUM_KINEMATIC), atol=1e-4)
    assert torch.allclose(kin.std(0), torch.ones(NUM_KINEMATIC), atol=1e-2)
    species = x[mask][:, NUM_KINEMATIC:]
    assert torch.all((species == 1).sum(1) == 1) and torch.all((species == 1) | (species == -1))
    assert torch.all(x[~mask] == 0)


def test_round_trip_reproduces_events_and_particles(batch, transforms):
    e, x, mask = transforms.encode_batch(batch)
    out = transforms.decode(e, x, mask)
    np.testing.assert_array_equal(out.offsets, batch.offsets)
    np.testing.assert_allclose(out.particles["pt"], batch.particles["pt"], rtol=1e-5)
    np.testing.assert_allclose(out.particles["eta"], batch.particles["eta"], atol=1e-5)
    np.testing.assert_allclose(out.particles["phi"], batch.particles["phi"], atol=1e-5)
    np.testing.assert_array_equal(out.particles["pid"], batch.particles["pid"])
    for name in EVENT_FEATURES:
        np.testing.assert_allclose(out.events[name], batch.events[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert out.events["mult"].dtype == np.int32
    np.testing.assert_allclose(out.events["psi2"], batch.events["psi2"], atol=1e-5)
    rel = transforms.decode_particles(x, out.events, mask, reference="relative")
    np.testing.assert_allclose(rel["pt"], batch.particles["pt"], rtol=1e-4)
    np.testing.assert_allclose(rel["phi"], batch.particles["phi"], atol=1e-4)


def test_decoding_rounds_counts_and_clips_to_acceptance(transforms):
    e = torch.full((3, EVENT_DIM), -50.0)  # far below the data: mult must still be >= 1
    events = transforms.decode_events(e)
    assert np.all(events["mult"] >= 1) and np.all(events["npart"] >= 0) and np.all(events["b"] >= 0)
    x = torch.zeros(1, 2, NUM_FEATURES)
    x[..., 3] = -40.0  # log pT far below pt_min
    x[..., 4] = 40.0  # eta far outside
    x[..., 5] = 7.0  # phi outside [-pi, pi) before wrapping
    out = transforms.decode_particles(x, events, torch.ones(1, 2, dtype=torch.bool))
    assert np.all(out["pt"] >= 0.15) and np.all(np.abs(out["eta"]) <= 2.5)
    assert np.all((out["phi"] >= -np.pi) & (out["phi"] < np.pi))


def test_config_round_trip_and_mismatch(transforms):
    again = PointCloudTransforms.from_config(transforms.to_config())
    np.testing.assert_array_equal(again.event_std, transforms.event_std)
    assert again.other_pid == transforms.other_pid and again.eta_max == 2.5
    bad = dict(transforms.to_config(), kinematic_features=["pt", "eta"])
    with pytest.raises(ValueError, match="kinematic_features"):
        PointCloudTransforms.from_config(bad)


def test_other_species_gets_the_most_frequent_pdg_id():
    # Xi- = 3312 has charge -1, its antiparticle -3312 charge +1.
    pid = np.array([3222, 3222, 3222, 3312, 3312, -3312, 211, 3112])
    assert most_frequent_other(pid) == (3222, 3312)
    assert most_frequent_other(np.array([211])) == (3222, 3112)


def test_pad_tokens_layout():
    flat = np.arange(10, dtype=np.float32).reshape(5, 2)
    x, mask = pad_tokens(flat, np.array([0, 2, 2, 5]), n_max=4)
    assert x.shape == (3, 4, 2)
    assert mask.tolist() == [[True, True, False, False], [False] * 4, [True, True, True, False]]
    assert x[2, 2].tolist() == [8.0, 9.0] and x[0, 2].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="n_max"):
        pad_tokens(flat, np.array([0, 2, 2, 5]), n_max=2)
