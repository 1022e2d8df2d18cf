"""Classifier tests: AUC arithmetic, splits, and both classifiers on same vs distorted toy samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hicgen.analysis import classifier
from hicgen.analysis.metrics import event_columns_in_common
from toy_events import toy_batch, with_particles

SMALL = classifier.ClassifierConfig(hidden=32, epochs=12, patience=3)


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300).astype(bool)
    scores = rng.normal(size=300) + labels * 0.5
    scores[:20] = 0.0  # ties
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert classifier.roc_auc(labels, scores) == pytest.approx(pairs)
    fpr, tpr = classifier.roc_curve(labels, scores)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def test_split_is_70_15_15_and_seeded():
    a = classifier.split_indices(1000, 3)
    b = classifier.split_indices(1000, 3)
    assert [len(s) for s in a] == [700, 150, 150]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(1000))


def test_deep_sets_is_permutation_invariant():
    torch.manual_seed(0)
    model = classifier.DeepSets(9, 16)
    tokens = torch.randn(10, 9)
    event = torch.tensor([0] * 4 + [1] * 6)
    perm = torch.randperm(10)
    np.testing.assert_allclose(model(tokens, event, 2).detach(), model(tokens[perm], event[perm], 2).detach(), rtol=1e-5, atol=1e-6)


def test_same_generator_gives_auc_near_half():
    a, b = toy_batch(800, seed=1), toy_batch(800, seed=2)
    ev = classifier.event_classifier(a, b, event_columns_in_common(a, b), SMALL)
    pa = classifier.particle_classifier(a, b, SMALL)
    assert abs(ev["auc_event"] - 0.5) < 4 * ev["auc_event_err"]
    assert abs(pa["auc_particle"] - 0.5) < 4 * pa["auc_particle_err"]


def test_a_pt_scale_is_detected():
    a, b = toy_batch(800, seed=1), toy_batch(800, seed=2)
    scaled = with_particles(b, True, pt=b.particles["pt"] * 1.15)
    ev = classifier.event_classifier(a, scaled, event_columns_in_common(a, scaled), SMALL)
    pa = classifier.particle_classifier(a, scaled, SMALL)
    assert ev["auc_event"] > 0.5 + 4 * ev["auc_event_err"]
    assert pa["auc_particle"] > 0.5 + 4 * pa["auc_particle_err"]


def test_particle_tokens_respect_the_particle_cap():
    batch = toy_batch(20, seed=4, mean_mult=100)
    tokens, offsets = classifier.particle_tokens(batch, 50, seed=0)
    assert np.all(np.diff(offsets) == np.minimum(batch.multiplicity, 50))
    assert tokens.shape == (offsets[-1], 9) and np.isfinite(tokens).all()
