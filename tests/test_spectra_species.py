"""hicgen.spectra.species: the chain's species shares per multiplicity class and eta/s, and the particles drawn
from them."""

import numpy as np
import pytest

from hicgen.spectra.generate import sample_particles, sample_record_particles
from hicgen.spectra.species import (
    multiplicity_class_shares,
    record_species_cdf,
    species_index,
    species_mixture,
)

PID = [211, -211, 2212, -2212]


def _yields(dndy: np.ndarray, proton_share: np.ndarray) -> np.ndarray:
    """Per-record yields (N, 2 pairs, 2 pT bins): dN/dy split evenly over the bins, a share of each bin protons."""
    per_bin = np.repeat(np.asarray(dndy, float)[:, None] / 2.0, 2, axis=1)
    protons = per_bin * np.asarray(proton_share, float)[:, None]
    return np.stack([per_bin - protons, protons], axis=1)


def test_class_shares_split_each_eta_s_by_multiplicity():
    dndy = np.array([100.0, 200.0, 400.0, 800.0, 100.0, 300.0])
    eta_s = np.array([0.0, 0.0, 0.0, 0.0, 0.2, 0.2], np.float32)
    share = np.array([0.10, 0.10, 0.02, 0.04, 0.3, 0.5])
    table = multiplicity_class_shares(_yields(dndy, share), eta_s, classes=2)
    assert table["eta_s"] == [0.0, 0.2]
    np.testing.assert_allclose(table["log_dndy"][0], [np.log([100, 200]).mean(), np.log([400, 800]).mean()], rtol=1e-6)
    assert table["dndy_range"][0] == [[100.0, 200.0], [400.0, 800.0]]
    fraction = np.asarray(table["pt_fraction"])  # (E, C, 4 species, 2 bins)
    assert fraction.shape == (2, 2, 4, 2)
    # the high class's protons: (0.02 x 400 + 0.04 x 800) / 1200 = 1 / 30, half per charge
    np.testing.assert_allclose(fraction[0, 1, 2:, 0], [1 / 60, 1 / 60], rtol=1e-5)
    np.testing.assert_allclose(fraction[0, 0, 2:, 1], [0.05, 0.05], rtol=1e-5)
    np.testing.assert_allclose(fraction[1, :, 2, 0], [0.15, 0.25], rtol=1e-5)
    np.testing.assert_allclose(fraction.sum(axis=2), 1.0, rtol=1e-5)
    assert len(multiplicity_class_shares(_yields(dndy, share), eta_s, classes=8)["log_dndy"][1]) == 2  # <= records


def test_species_mixture_has_classes_only_with_per_record_yields():
    attrs = {"species_pid": np.array(PID), "species_fraction": np.array([0.45, 0.45, 0.05, 0.05]),
             "species_pt_fraction": np.full((4, 2), 0.25)}
    dndy, share = np.array([100.0, 900.0]), np.array([0.1, 0.2])
    mixture = species_mixture(attrs, _yields(dndy, share), np.zeros(2), classes=2)
    assert mixture["pid"] == PID and mixture["classes"]["eta_s"] == [0.0]
    assert "classes" not in species_mixture(attrs)
    assert "classes" not in species_mixture(attrs, _yields(dndy, share)[:, :1], np.zeros(2))  # pairs != pids / 2


def test_record_cdf_interpolates_in_log_multiplicity_and_eta_s():
    low, high = np.array([[0.9, 0.9], [0.1, 0.1]]), np.array([[0.5, 0.7], [0.5, 0.3]])  # (species, pT bins)
    classes = {"eta_s": [0.0, 0.2], "log_dndy": [[np.log(100), np.log(400)], [np.log(100), np.log(400)]],
               "pt_fraction": [[low.tolist(), high.tolist()], [high.tolist(), high.tolist()]]}
    mixture = {"pid": [211, 2212], "fraction": [0.8, 0.2], "pt_fraction": low.tolist(), "classes": classes}
    cdf = record_species_cdf(mixture, np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.3]), np.array([100, 200, 50, 4000, 100, 100]))
    assert cdf.shape == (6, 1, 2) and cdf.dtype == np.float32  # the last cumulative share, 1, is left out
    middle = 0.5 * (low[0] + high[0])
    np.testing.assert_allclose(cdf[0, 0], low[0], rtol=1e-6)
    np.testing.assert_allclose(cdf[1, 0], middle, rtol=1e-6)  # 200: halfway between 100 and 400 in log
    np.testing.assert_allclose(cdf[2, 0], low[0], rtol=1e-6)  # constant beyond the classes
    np.testing.assert_allclose(cdf[3, 0], high[0], rtol=1e-6)
    np.testing.assert_allclose(cdf[4, 0], middle, rtol=1e-6)  # eta/s 0.1: halfway between the tables
    np.testing.assert_allclose(cdf[5, 0], high[0], rtol=1e-6)  # beyond the trained eta/s: the last table's
    assert np.array_equal(record_species_cdf(mixture), record_species_cdf(mixture, np.zeros(2)))  # min-bias without dN/dy
    np.testing.assert_allclose(record_species_cdf(mixture)[0, 0], low[0], rtol=1e-6)
    empty = {**mixture, "pt_fraction": [[0.9, 0.0], [0.1, 0.0]]}  # a bin without yield: the overall shares
    np.testing.assert_allclose(record_species_cdf(empty)[0, 0], [0.9, 0.8], rtol=1e-6)
    u = np.array([0.6, 0.6, 0.8])
    assert species_index(cdf[[0, 3]], np.array([0, 1, 1]), np.array([0, 0, 1]), u).tolist() == [0, 1, 1]


def test_particles_follow_their_event_multiplicity_and_eta_s():
    """Low-multiplicity events draw pions only and high ones protons only from a table that says so; without
    eta/s the min-bias shares hold; sample_record_particles ranks a record by its expected counts."""
    pt_edges, phi_edges = np.linspace(0, 2, 3), np.array([-np.pi, np.pi])
    pions, protons = [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]]
    mixture = {"pid": [211, 2212], "fraction": [0.5, 0.5], "pt_fraction": [[0.5, 0.5], [0.5, 0.5]],
               "classes": {"eta_s": [0.0], "log_dndy": [[np.log(20.0), np.log(2000.0)]],
                           "pt_fraction": [[pions, protons]]}}
    counts = np.stack([np.full((2, 1), 10.0), np.full((2, 1), 1000.0)])
    rngs = lambda: [np.random.default_rng(j) for j in range(2)]  # noqa: E731
    batch = sample_particles(counts, rngs(), pt_edges, phi_edges, mixture, eta_s=np.zeros(2))
    first = batch.offsets[1]
    assert set(batch.particles["pid"][:first]) == {211} and set(batch.particles["pid"][first:]) == {2212}
    plain = sample_particles(counts, rngs(), pt_edges, phi_edges, mixture)
    assert np.mean(plain.particles["pid"] == 2212) == pytest.approx(0.5, abs=0.05)
    expected = counts[::-1].copy()  # the first record's smooth spectrum is the large one
    by_expected = sample_record_particles(counts, 0, np.arange(2), np.zeros(2, int), pt_edges, phi_edges, mixture,
                                          expected=expected, eta_s=np.zeros(2))
    first = by_expected.offsets[1]
    assert set(by_expected.particles["pid"][:first]) == {2212} and set(by_expected.particles["pid"][first:]) == {211}
