"""Flow cumulants against the hic package and brute-force tuple sums; known-v2 toys are recovered."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from hicgen.analysis import flow
from toy_events import toy_batch


def _fp(batch, eta_gap=1.0):
    return flow.from_particles(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets, eta_gap)


def _brute(phi: np.ndarray, harmonics: tuple[int, ...], poi: np.ndarray | None = None) -> tuple[complex, float]:
    """Sum over ordered tuples of distinct particles of exp(i sum n_j phi_j) and the tuple count; with `poi`, the
    first particle must be a POI."""
    tuples = np.array(list(itertools.permutations(range(phi.size), len(harmonics))))
    if poi is not None:
        tuples = tuples[poi[tuples[:, 0]]]
    angle = (np.asarray(harmonics)[None, :] * phi[tuples]).sum(1)
    return complex(np.exp(1j * angle).sum()), float(len(tuples))


@pytest.mark.parametrize("order, n", [(2, 2), (4, 3), (6, 2), (6, 4), (8, 2), (8, 3)])
def test_correlators_match_brute_force_tuple_sums(order, n):
    rng = np.random.default_rng(order * 10 + n)
    mult = np.array([order, order + 1]) if order == 8 else rng.integers(order, order + 4, 3)
    offsets = np.concatenate([[0], np.cumsum(mult)])
    phi = rng.uniform(-np.pi, np.pi, offsets[-1])
    fp = flow.from_particles(np.ones_like(phi), np.zeros_like(phi), phi, offsets)
    harmonics = flow.symmetric_harmonics(n, order)
    num, den = flow.correlator_terms(fp, harmonics)
    for e in range(mult.size):
        s, d = _brute(phi[offsets[e] : offsets[e + 1]], harmonics)
        assert num[e] == pytest.approx(s, abs=1e-7 * d)
        assert den[e] == pytest.approx(d)


def test_mixed_harmonic_and_weighted_correlator_match_brute_force():
    rng = np.random.default_rng(3)
    phi, w = rng.uniform(-np.pi, np.pi, 7), rng.uniform(0.5, 2.0, 7)
    fp = flow.from_particles(w, np.zeros(7), phi, np.array([0, 7]))
    harmonics = (2, 3, -5, 1, -1, 0)
    num, den = flow.correlator_terms(fp, harmonics, weights=w)
    tuples = np.array(list(itertools.permutations(range(7), 6)))
    weight = np.prod(w[tuples], 1)
    assert num[0] == pytest.approx(np.sum(weight * np.exp(1j * (np.asarray(harmonics) * phi[tuples]).sum(1))))
    assert den[0] == pytest.approx(weight.sum())


def test_differential_numerators_match_brute_force():
    rng = np.random.default_rng(5)
    phi = rng.uniform(-np.pi, np.pi, 7)
    pt = rng.uniform(0, 2, 7)
    fp = flow.from_particles(pt, np.zeros(7), phi, np.array([0, 7]))
    edges = np.array([0.0, 1.0, 2.0])
    get = flow._poi_vectors(fp, edges, None)
    for harmonics in ((2, -2), (2, 2, -2, -2)):
        num = flow._evaluate(flow.partition_terms(harmonics, poi=True), get)
        den = flow._evaluate(flow.partition_terms((0,) * len(harmonics), poi=True), get)
        for b in range(2):
            s, d = _brute(phi, harmonics, poi=(pt >= edges[b]) & (pt < edges[b + 1]))
            assert num[0, b] == pytest.approx(s, abs=1e-9)
            assert np.real(den[0, b]) == pytest.approx(d)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_cumulants_agree_with_hic_package(n):
    hic_flow = pytest.importorskip("hic.flow")
    batch = toy_batch(300, seed=n, v2=0.12, mean_mult=80)
    result = flow.cumulants(_fp(batch), harmonics=(n,), orders=(2, 4))[f"n={n}"]
    phi = batch.particles["phi"].astype(np.float64)
    q = {k: np.array([hic_flow.qn(phi[a:b], k) for a, b in zip(batch.offsets[:-1], batch.offsets[1:])]) for k in (n, 2 * n)}
    reference = hic_flow.Cumulant(batch.multiplicity, **{f"q{n}": q[n], f"q{2 * n}": q[2 * n]})
    assert result["<<2>>"] == pytest.approx(reference.correlation(n, 2), rel=1e-9, abs=1e-15)
    assert result["<<4>>"] == pytest.approx(reference.correlation(n, 4), rel=1e-9, abs=1e-15)
    assert result["c{4}"] == pytest.approx(reference.cumulant(n, 4), rel=1e-9, abs=1e-15)
    for k in (2, 4):
        expected = reference.flow(n, k, imaginary="zero")
        got = result[f"v{{{k}}}"]
        assert (np.isnan(got) and expected == 0) or got == pytest.approx(expected, rel=1e-9)


def test_known_v2_is_recovered_by_every_estimator():
    v2 = 0.08
    batch = toy_batch(1500, seed=11, v2=v2, mean_mult=150)
    fp = _fp(batch)
    res = flow.cumulants(fp)["n=2"]
    for k in flow.ORDERS:
        assert res[f"v{{{k}}}"] == pytest.approx(v2, abs=max(4 * res[f"v{{{k}}}_err"], 0.004)), k
    # sub-event planes: exact for a fixed resolution, so within a narrow centrality class (the estimator weights
    # events by multiplicity in the numerator only, which biases it upwards over a wide multiplicity range)
    central = flow.centrality_percentile(batch.multiplicity, batch.multiplicity) < 30
    for weight in ("unit", "pt"):
        ep = flow.subevent_flow(fp, 2, np.array([0.15, 10.0]), weight, central)
        assert ep["vn_int"] == pytest.approx(v2, abs=4 * ep["vn_int_err"] + 0.002)
    # no v3 in the toy: v3{2} compatible with zero (NaN when c{2} < 0)
    v3 = flow.cumulants(fp, harmonics=(3,), orders=(2,))["n=3"]
    assert np.isnan(v3["v{2}"]) or v3["v{2}"] < 4 * v3["v{2}_err"] + 0.01


def test_differential_flow_follows_the_input_pt_dependence():
    batch = toy_batch(1500, seed=12, v2=0.15, mean_mult=150, pt_slope=0.8, v2_pt_saturation=2.0)
    fp = _fp(batch)
    edges = np.array([0.15, 0.5, 1.0, 1.5, 2.5, 4.0])
    pt = batch.particles["pt"].astype(np.float64)
    truth = np.array([np.mean(0.15 * np.minimum(pt[(pt >= a) & (pt < b)] / 2.0, 1)) for a, b in zip(edges[:-1], edges[1:])])
    diff = flow.differential_flow(fp, 2, edges)
    sp = flow.subevent_flow(fp, 2, edges, "pt")
    # v2{2}(pT) = v2(pT) <v2> / sqrt(<v2^2>) exactly for a pT-independent event plane: compare shapes via SP too
    assert np.all(np.abs(sp["vn"] - truth) < 4 * sp["vn_err"] + 0.005)
    ref_v2 = flow.cumulants(fp, orders=(2,))["n=2"]["v{2}"]
    integrated = np.sum(0.15 * np.minimum(pt / 2.0, 1)) / pt.size
    assert np.all(np.abs(diff["v{2}"] - truth * integrated / ref_v2) < 4 * diff["v{2}_err"] + 0.005)


def test_binned_spectra_give_the_particle_cumulants():
    batch = toy_batch(400, seed=13, v2=0.1, mean_mult=150)
    pt_edges = np.linspace(0.15, 6.0, 65)
    phi_edges = np.linspace(-np.pi, np.pi, 65)
    spectra = np.stack([
        np.histogram2d(batch.particles["pt"][a:b], batch.particles["phi"][a:b], [pt_edges, phi_edges])[0]
        for a, b in zip(batch.offsets[:-1], batch.offsets[1:])
    ])
    inside = batch.particles["pt"] < 6.0
    assert spectra.shape == (400, 64, 64)
    fp_bins = flow.from_spectra(spectra, pt_edges, phi_edges)
    plain = dataclasses.replace(fp_bins, cache={})  # the same entries without the pT-summed projection
    for h in (0, 2, 5):  # the projection's Q-vectors are the entries' sums
        np.testing.assert_allclose(flow.q_vector(fp_bins, h), flow.q_vector(plain, h), rtol=1e-12, atol=1e-9)
    fp_parts = _fp(batch.select(np.arange(400)))
    from_bins = flow.cumulants(fp_bins, harmonics=(2,), orders=(2, 4))["n=2"]
    # particles above the histogram range are the only difference; drop them for the comparison
    keep = np.flatnonzero(inside)
    counts = np.bincount(batch.event_index[keep], minlength=400)
    fp_kept = flow.from_particles(batch.particles["pt"][keep], batch.particles["eta"][keep], batch.particles["phi"][keep], np.concatenate([[0], np.cumsum(counts)]))
    from_particles = flow.cumulants(fp_kept, harmonics=(2,), orders=(2, 4))["n=2"]
    # bin-centre angles smear cos(2 dphi) by sinc^2(2 * pi / 64) ~ 0.997 for <<2>>
    assert from_bins["v{2}"] == pytest.approx(from_particles["v{2}"], rel=0.01)
    assert from_bins["v{4}"] == pytest.approx(from_particles["v{4}"], rel=0.02)
    assert fp_parts.n_events == 400
    ep = flow.subevent_flow(fp_bins, 2, pt_edges[[0, -1]])
    assert ep["vn_int"] == pytest.approx(0.1, abs=4 * ep["vn_int_err"] + 0.005)


def test_from_spectra_rejects_wrong_edges():
    with pytest.raises(ValueError, match="edges"):
        flow.from_spectra(np.ones((2, 4, 4)), np.linspace(0, 1, 4))


def test_centrality_percentile_and_classes():
    ref = np.arange(1, 101)
    pct = flow.centrality_percentile(ref, np.array([100, 1, 50]))
    assert pct == pytest.approx([0.5, 99.5, 50.5])
    classes = flow.centrality_classes(flow.centrality_percentile(ref, ref), (0, 10, 50, 100))
    assert [label for label, _ in classes] == ["0-10%", "10-50%", "50-100%"]
    assert [int(mask.sum()) for _, mask in classes] == [10, 40, 50]


def test_flow_summary_has_every_class_and_harmonic():
    batch = toy_batch(300, seed=14)
    fp = _fp(batch)
    pct = flow.centrality_percentile(batch.multiplicity, batch.multiplicity)
    summary = flow.flow_summary(fp, flow.centrality_classes(pct, (0, 50, 100)), np.array([0.2, 1.0, 3.0]))
    assert summary["classes"] == ["0-50%", "50-100%"]
    assert set(summary["cumulants"]["0-50%"]) == {"n=2", "n=3", "n=4"}
    assert summary["v2_sp"]["vn"].shape == (2,)
