"""Closure metrics: W1 distances, Q closure, species fractions, ratio maps, dphi pairs, chi2."""

from __future__ import annotations

import numpy as np
import pytest

from hicgen.analysis import metrics
from hicgen.data.batch import EventBatch
from toy_events import toy_batch, with_particles


def test_w1_event_is_standardised_by_the_reference_std():
    a, b = toy_batch(400, seed=1), toy_batch(400, seed=1)
    assert metrics.w1_event(a, b)["mean"] == 0.0
    shifted = EventBatch(events=dict(b.events, b=b.events["b"] + 0.5 * a.events["b"].std()), offsets=b.offsets, particles=b.particles)
    distances = metrics.w1_event(a, shifted)
    assert distances["b"] == pytest.approx(0.5)
    assert distances["mean"] == pytest.approx(0.5 / (len(distances) - 1))


def test_w1_particle_flags_a_pt_scale():
    a, b = toy_batch(300, seed=1), toy_batch(300, seed=2)
    scaled = with_particles(b, True, pt=b.particles["pt"] * 1.05)
    same, distorted = metrics.w1_particle(a, b), metrics.w1_particle(a, scaled)
    assert distorted["pt"] > 4 * same["pt"]
    assert distorted["pt"] == pytest.approx(0.05 * a.particles["pt"].mean(), rel=0.3)
    assert set(same) == {"pt", "eta", "sin_phi", "cos_phi", "mean"}


def test_q_closure_is_perfect_for_consistent_events_and_breaks_under_rotation():
    batch = toy_batch(300, seed=3, v2=0.1)
    ok = metrics.q_closure(batch)
    assert ok["rho_x"] == pytest.approx(1.0) and ok["rho_y"] == pytest.approx(1.0)
    assert ok["rms_x"] < 1e-3 and ok["cos2dpsi"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    turn = np.repeat(rng.uniform(-np.pi, np.pi, len(batch)), batch.multiplicity)
    rotated = with_particles(batch, False, phi=(batch.particles["phi"] + turn + np.pi) % (2 * np.pi) - np.pi)
    bad = metrics.q_closure(rotated)
    assert abs(bad["rho_x"]) < 0.3 and abs(bad["cos2dpsi"]) < 0.2
    assert bad["rms_x"] > 1.0


def test_species_fractions_are_per_charge():
    fractions = metrics.species_fractions(np.array([211, 211, 321, -211, -2212, 11]))
    assert fractions["pi+"] == pytest.approx(2 / 3) and fractions["K+"] == pytest.approx(1 / 3)
    assert fractions["pi-"] == pytest.approx(1 / 3) and fractions["pbar"] == pytest.approx(1 / 3) and fractions["e-"] == pytest.approx(1 / 3)


def test_ratio_map_scores_are_one_for_equal_samples_and_follow_a_shift():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=20000), rng.normal(size=20000)
    same = metrics.ratio_map(x, y, x, y)
    assert same["mean"] == pytest.approx(1.0) and same["median"] == pytest.approx(1.0)
    shifted = metrics.ratio_map(x, y, x + 0.3, y)
    assert abs(shifted["median"] - 1) > 0.05 or abs(shifted["mean"] - 1) > 0.1
    assert same["ratio"].shape == (30, 30) and same["x95"][0] < 0 < same["x95"][1]


def test_dphi_pairs_count_every_associated_particle():
    batch = toy_batch(200, seed=5, pt_slope=1.0)
    edges, trig_edges = np.linspace(-np.pi, np.pi, 17), np.array([4.0, 1000.0])
    small_chunks, n_trig = metrics.dphi_pairs_histogram(batch, edges, trig_edges, max_pairs=50)
    whole, _ = metrics.dphi_pairs_histogram(batch, edges, trig_edges)
    triggers = np.flatnonzero(batch.particles["pt"] > 4.0)
    assert n_trig == triggers.size > 0
    assert whole.sum() == np.sum(batch.multiplicity[batch.event_index[triggers]] - 1)
    np.testing.assert_array_equal(small_chunks, whole)


def test_dphi_pairs_brute_force_on_one_event():
    phi = np.array([0.0, 1.0, -2.0, 3.0])
    batch = EventBatch(events={}, offsets=np.array([0, 4]), particles={"pt": np.array([5.0, 1.0, 1.0, 6.0]), "phi": phi})
    hist, n = metrics.dphi_pairs_histogram(batch, np.linspace(-np.pi, np.pi, 9), np.array([4.0, 10.0]))
    pairs = [phi[t] - phi[a] for t in (0, 3) for a in range(4) if a != t]
    expected, _ = np.histogram((np.array(pairs) + np.pi) % (2 * np.pi) - np.pi, np.linspace(-np.pi, np.pi, 9))
    assert n == 2
    np.testing.assert_array_equal(hist[:, 0], expected)


def test_chi2_ndf_near_one_for_samples_of_one_distribution():
    rng = np.random.default_rng(6)
    edges = np.linspace(-3, 3, 31)
    values = [metrics.chi2_ndf(np.histogram(rng.normal(size=5000), edges)[0], np.histogram(rng.normal(size=5000), edges)[0]) for _ in range(20)]
    assert np.mean(values) == pytest.approx(1.0, abs=0.25)
    far = metrics.chi2_ndf(np.histogram(rng.normal(size=5000), edges)[0], np.histogram(rng.normal(0.2, size=5000), edges)[0])
    assert far > 3
