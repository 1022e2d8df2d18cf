"""hicgen.spectra.species: the chain's species shares per multiplicity class and eta/s, and the particles drawn
from them."""

import numpy as np
import pytest

from hicgen.spectra.generate import sample_particles, sample_record_particles
from hicgen.spectra.species import (
    azimuthal_basis,
    charged_flow_vectors,
    flow_ratios,
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
    batch = sample_particles(counts, rngs(), pt_edges, phi_edges, mixture, eta_s=np.zeros(2))  # dN/dy: the histograms
    first = batch.offsets[1]
    assert set(batch.particles["pid"][:first]) == {211} and set(batch.particles["pid"][first:]) == {2212}
    plain = sample_particles(counts, rngs(), pt_edges, phi_edges, mixture)
    assert np.mean(plain.particles["pid"] == 2212) == pytest.approx(0.5, abs=0.05)
    expected = counts[::-1].copy()  # the first record's smooth spectrum is the large one
    by_expected = sample_record_particles(counts, 0, np.arange(2), np.zeros(2, int), pt_edges, phi_edges, mixture,
                                          expected=expected, eta_s=np.zeros(2))
    first = by_expected.offsets[1]
    assert set(by_expected.particles["pid"][:first]) == {2212} and set(by_expected.particles["pid"][first:]) == {211}


def test_flow_ratios_recover_the_species_flow_relative_to_the_charged():
    rng = np.random.default_rng(3)
    yields = np.broadcast_to(np.array([[3.0, 3.0], [1.0, 1.0]]), (20, 2, 2))  # 2 pairs, 2 pT bins
    ratio = np.array([0.8, 1.6])  # sum_k N_k r_k / N = 1: the charged flow is the yield-weighted pairs'
    charged = rng.normal(0, 0.1, (20, 2, 2)) + 1j * rng.normal(0, 0.1, (20, 2, 2))  # (records, harmonics, pT)
    pairs = ratio[None, :, None, None] * charged[:, None]  # (records, pairs, harmonics, pT)
    flow = np.stack([pairs.real, pairs.imag], axis=3).reshape(20, 2, 4, 2)  # rows Re V2, Im V2, Re V3, Im V3
    np.testing.assert_allclose(flow_ratios(yields, flow), np.broadcast_to(ratio[:, None, None], (2, 2, 2)), rtol=1e-9)
    table = multiplicity_class_shares(yields, np.zeros(20), 2, flow)
    assert table["flow_harmonics"] == [2, 3] and np.asarray(table["flow_ratio"]).shape == (1, 2, 2, 2, 2)
    attrs = {"species_pid": np.array(PID), "species_fraction": np.array([0.375, 0.375, 0.125, 0.125]),
             "species_pt_fraction": np.full((4, 2), 0.25)}
    assert "flow_ratio" in species_mixture(attrs, yields, np.zeros(20), 2, flow)["classes"]
    assert "flow_ratio" not in species_mixture(attrs, yields, np.zeros(20), 2)["classes"]


def test_each_species_gets_its_own_flow():
    """Pions with r = 0.5 and protons with r = 1.5 of an event whose smooth spectrum has v2 = 0.2 (along phi = 0):
    the protons' <cos 2 phi> is 0.3 and the pions' 0.1, half of each; the charged particles are the histogram's,
    whatever the species. Without the smooth spectrum both have the charged particles' 0.2."""
    pt_edges, phi_edges = np.array([0.0, 2.0]), np.linspace(-np.pi, np.pi, 65)
    centres = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    shares = [[0.25], [0.25], [0.25], [0.25]]
    mixture = {"pid": PID, "fraction": [0.25] * 4, "pt_fraction": shares,
               "classes": {"eta_s": [0.1], "log_dndy": [[5.0]], "pt_fraction": [[shares]],
                           "flow_harmonics": [2, 3], "flow_ratio": [[[[[0.5], [1.0]], [[1.5], [1.0]]]]]}}
    expected = (1.0 + 0.4 * np.cos(2 * centres))[None, None]
    counts = np.round(4000.0 * expected)
    batch = sample_particles(counts, [np.random.default_rng(5)], pt_edges, phi_edges, mixture, eta_s=np.array([0.1]),
                             expected=expected)
    pid, phi = batch.particles["pid"], batch.particles["phi"].astype(np.float64)
    assert len(pid) == counts.sum() and np.mean(np.abs(pid) == 2212) == pytest.approx(0.5, abs=0.01)
    assert np.mean(pid == 2212) == pytest.approx(0.25, abs=0.01)  # both charges
    protons, pions = np.abs(pid) == 2212, np.abs(pid) == 211
    assert np.cos(2 * phi[protons]).mean() == pytest.approx(0.3, abs=0.01)
    assert np.cos(2 * phi[pions]).mean() == pytest.approx(0.1, abs=0.01)
    plain = sample_particles(counts, [np.random.default_rng(5)], pt_edges, phi_edges, mixture, eta_s=np.array([0.1]))
    plain_protons = np.abs(plain.particles["pid"]) == 2212
    assert np.cos(2 * plain.particles["phi"][plain_protons]).mean() == pytest.approx(0.2, abs=0.01)


def test_flow_vectors_are_capped_so_no_species_weight_turns_negative():
    phi_edges = np.linspace(-np.pi, np.pi, 65)
    centres = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    basis = azimuthal_basis(phi_edges, np.array([2, 3]))
    expected = np.stack([1.0 + 0.2 * np.cos(2 * centres), 1.0 + 1.6 * np.cos(2 * centres) + 0.8 * np.cos(3 * centres)])
    rows, vectors = charged_flow_vectors(expected[:, None], basis, ratio_max=2.0)  # (2 records, 4, 1 pT bin)
    np.testing.assert_allclose(rows[:, 0], expected.sum(1), rtol=1e-6)
    np.testing.assert_allclose(vectors[0, :, 0], [0.1, 0.0, 0.0, 0.0], atol=1e-6)  # v2 = 0.1 kept
    size = np.hypot(vectors[1, 0], vectors[1, 1]) + np.hypot(vectors[1, 2], vectors[1, 3])
    assert size == pytest.approx(1 / (2 * 2.0), rel=1e-5)  # 0.8 + 0.4 scaled to 0.25
    np.testing.assert_allclose(vectors[1, 2] / vectors[1, 0], 0.5, rtol=1e-5)  # in proportion


def test_the_shipped_table_orders_the_flow_by_mass():
    """weights/spectra's species table: at 1 GeV in an event of v2 = 0.1 (all pT, dN/dy 1,000, eta/s 0.1) the pions
    flow more than the charged particles and the protons less than half as much."""
    import json

    from hicgen.environment import WEIGHTS_DIR
    from hicgen.spectra.species import mixture_arrays

    config = json.loads((WEIGHTS_DIR / "spectra" / "config.json").read_text())
    arrays = mixture_arrays(config["species"])
    assert "class_flow" in arrays and list(arrays["flow_harmonics"]) == [2, 3]
    pt_edges, phi_edges = np.asarray(config["pt_edges"]), np.asarray(config["phi_edges"])
    centres = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    expected = np.broadcast_to(1.0 + 0.2 * np.cos(2 * centres), (1, 64, 64)) * 1000.0 / 4096
    counts = np.zeros((1, 64, 64))
    counts[0, 32] = np.round(3000 * (1.0 + 0.2 * np.cos(2 * centres)))  # 1.00-1.03 GeV
    batch = sample_particles(counts, [np.random.default_rng(8)], pt_edges, phi_edges, arrays, eta_s=np.array([0.1]),
                             expected=expected)
    pid, phi = np.abs(batch.particles["pid"]), batch.particles["phi"].astype(np.float64)
    v2 = {p: np.cos(2 * phi[pid == p]).mean() for p in (211, 2212)}
    assert v2[211] > 0.102 and v2[2212] < 0.06  # charged: 0.1; the table: about 0.108 and 0.045
