"""Jets: anti-kt clustering, areas and rho, WTA / Soft Drop / angularity on hand-made events."""

from __future__ import annotations

import numpy as np
import pytest

from hicgen.analysis.jets import JetConfig, find_jets, four_momenta
from hicgen.data.batch import EventBatch
from hicgen.errors import InputError

pytest.importorskip("fastjet")
FAST = JetConfig(ghost_area=0.05)


def _event(rows, background=0, seed=0, eta_max=2.5):
    """One event from (pt, eta, phi, pid) rows plus `background` soft pions."""
    rng = np.random.default_rng(seed)
    pt, eta, phi, pid = (np.array(c, dtype=float) for c in zip(*rows)) if rows else (np.zeros(0),) * 4
    if background:
        pt = np.concatenate([pt, 0.15 + rng.exponential(0.4, background)])
        eta = np.concatenate([eta, rng.uniform(-eta_max, eta_max, background)])
        phi = np.concatenate([phi, rng.uniform(-np.pi, np.pi, background)])
        pid = np.concatenate([pid, rng.choice([211, -211], background)])
    return EventBatch(events={}, offsets=np.array([0, pt.size]),
                      particles={"pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32), "pid": pid.astype(np.int32)})


def test_two_prong_jet_kinematics_and_substructure():
    # prongs at dR = 0.2 sharing 30/10 GeV: Soft Drop keeps both (z = 0.25 > 0.1); WTA axis = the harder prong
    event = _event([(30.0, 0.0, 0.0, 211), (10.0, 0.2, 0.0, -211)])
    found = find_jets(event, FAST)
    jets, hard = found["jets"], found["hard"]
    assert jets["pt"].size == 1 and jets["n_constituents"][0] == 2
    p4, _ = four_momenta(event)
    total = p4.sum(1)
    assert jets["e"][0] == pytest.approx(total[3])
    assert jets["mass"][0] == pytest.approx(np.sqrt(total[3] ** 2 - np.sum(total[:3] ** 2)), rel=1e-6)
    assert hard["pt"].size == 1
    axis_eta = jets["eta"][0]
    assert hard["dr_wta"][0] == pytest.approx(abs(axis_eta), abs=1e-3)  # WTA axis sits on the 30 GeV prong (eta 0)
    assert hard["dr_sd"][0] == pytest.approx(0.0, abs=1e-6)  # nothing groomed away
    assert hard["zg"][0] == pytest.approx(0.25, rel=1e-3)
    dr = np.array([abs(0.0 - axis_eta), abs(0.2 - axis_eta)])
    assert hard["angularity"][0] == pytest.approx(np.sum(np.array([0.75, 0.25]) * (dr / 0.4) ** 2), rel=1e-3)
    assert hard["area"][0] == pytest.approx(np.pi * 0.4**2, rel=0.15)


def test_soft_drop_removes_a_soft_wide_prong():
    event = _event([(30.0, 0.0, 0.0, 211), (1.0, 0.0, 0.3, 211)])
    hard = find_jets(event, FAST)["hard"]
    assert hard["dr_sd"][0] == pytest.approx(hard["dr_wta"][0], abs=1e-6)  # groomed jet = the hard particle
    assert hard["zg"][0] == 0.0


def test_rho_follows_the_background_density():
    event = _event([(40.0, 0.0, 0.0, 211)], background=3000, seed=1)
    hard = find_jets(event, FAST)["hard"]
    pt = event.particles["pt"][1:]
    density = pt.sum() / (5.0 * 2 * np.pi)
    assert hard["rho"][0] == pytest.approx(density, rel=0.25)
    assert hard["rho_a"][0] == pytest.approx(hard["rho"][0] * hard["area"][0])


def test_neutral_particles_are_not_clustered_and_thresholds_apply():
    event = _event([(20.0, 0.0, 0.0, 22), (6.0, 1.0, 2.0, 211), (3.0, -1.0, -2.0, 211)])
    found = find_jets(event, FAST)
    assert found["jets"]["pt"] == pytest.approx([6.0], rel=1e-6)
    assert found["hard"]["pt"].size == 0


def test_batches_cluster_each_event_separately():
    a = _event([(12.0, 0.5, 1.0, 211)])
    b = _event([(12.0, 0.5, 1.05, 211)])
    both = EventBatch.concat([a, b])
    found = find_jets(both, FAST)
    assert list(found["jets"]["event"]) == [0, 1]
    assert found["hard"]["pt"].size == 2


def test_four_momenta_use_pdg_masses_of_charged_particles():
    event = _event([(1.0, 0.0, 0.0, 2212), (1.0, 0.0, 0.0, 22), (2.0, 1.0, 0.5, -321)])
    p4, offsets = four_momenta(event)
    assert list(offsets) == [0, 2]
    mass = np.sqrt(p4[3] ** 2 - (p4[:3] ** 2).sum(0))
    assert mass == pytest.approx([0.93827208816, 0.493677], rel=1e-5)


def test_bad_jet_config_is_input_error():
    with pytest.raises(InputError, match="radius"):
        JetConfig(radius=0.0)
