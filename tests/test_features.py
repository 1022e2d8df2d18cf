import numpy as np
from hypothesis import given, settings, strategies as st

from hicgen.data.features import particle_event_features, relative_particle_features, wrap_phi


def test_features_match_per_event_loops(batch):
    f = particle_event_features(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets)
    for i in range(len(batch)):
        s = slice(batch.offsets[i], batch.offsets[i + 1])
        pt, eta, phi = (batch.particles[k][s].astype(np.float64) for k in ("pt", "eta", "phi"))
        q = np.sum(pt * np.exp(2j * phi))
        assert f["mult"][i] == pt.size
        np.testing.assert_allclose([f["mean_pt"][i], f["sum_pt"][i], f["mean_eta"][i], f["mean_phi"][i]],
                                   [pt.mean(), pt.sum(), eta.mean(), phi.mean()], rtol=1e-12)
        np.testing.assert_allclose([f["q2x"][i], f["q2y"][i]], [q.real, q.imag], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(f["psi2"][i], np.angle(q) / 2, atol=1e-12)


def test_empty_events_are_zero():
    off = np.array([0, 0, 2])
    f = particle_event_features(np.array([1.0, 2.0]), np.zeros(2), np.zeros(2), off)
    assert f["mult"].tolist() == [0, 2] and f["mean_pt"][0] == 0 and f["sum_pt"][0] == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=20))
def test_wrap_phi_range_and_equivalence(values):
    phi = np.array(values)
    w = wrap_phi(phi)
    assert np.all(w >= -np.pi) and np.all(w < np.pi)
    np.testing.assert_allclose(np.cos(w), np.cos(phi), atol=1e-9)
    np.testing.assert_allclose(np.sin(w), np.sin(phi), atol=1e-9)


def test_relative_features(batch):
    ev = batch.events
    rel = relative_particle_features(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"],
                                     batch.offsets, ev["mean_pt"], ev["mean_eta"], ev["mean_phi"])
    i = 2
    s = slice(batch.offsets[i], batch.offsets[i + 1])
    np.testing.assert_allclose(rel["pt_rel"][s], np.log(batch.particles["pt"][s] / ev["mean_pt"][i]), rtol=1e-6)
    np.testing.assert_allclose(rel["eta_rel"][s], batch.particles["eta"][s] - ev["mean_eta"][i], rtol=1e-6)
    assert np.all(np.abs(rel["phi_rel"]) <= np.pi)
