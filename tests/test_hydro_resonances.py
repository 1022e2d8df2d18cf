"""Resonance feed-down (hicgen.truth.hydro.resonances): the hadron table, the decay kernels against Monte Carlo
decays, the bookkeeping of whole decay chains, and `hicgen truth hydro --decays`."""

import math

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("pythia8mc")

from hicgen.truth.hydro import resonances as res
from hicgen.truth.hydro.pipeline import PT_EDGES, PT_TAIL

PT_OUT = np.concatenate([0.5 * (PT_EDGES[1:] + PT_EDGES[:-1]), PT_TAIL])  # the chain's output points
WIDTHS = np.concatenate([np.diff(PT_EDGES), np.full(len(PT_TAIL), 0.125)])
PHI_IN = -math.pi + (np.arange(res.PHI_POINTS) + 0.5) * 2 * math.pi / res.PHI_POINTS
PHI_OUT = -math.pi + (np.arange(64) + 0.5) * 2 * math.pi / 64


def test_table_decays_conserve_charge_and_keep_weak_decays_out():
    import pythia8mc

    data = pythia8mc.Pythia("", False).particleData
    table = res.hadron_table()
    assert {211, -211, 321, -321, 2212, -2212, 113, 2224, -2224, 3122} <= set(table)
    for h in table.values():
        if h.channels:
            assert sum(ch.branching for ch in h.channels) == pytest.approx(1.0)
        for ch in h.channels:
            assert sum(data.charge(p) for p in ch.products) == pytest.approx(data.charge(h.pid)), (h.name, ch)
            assert sum(ch.masses) < h.mass
    for stable in (211, 321, 2212, 310, 3122, 3222, 3312, 3334, -3122):  # weak decays (c tau > 1 cm) are not done
        assert table[stable].channels == ()
    assert [ch.products for ch in table[2224].channels] == [(2212, 211)]
    assert [ch.products for ch in table[-2224].channels] == [(-2212, -211)]
    assert table[2224].degeneracy == 4 and table[2224].statistics == -1 and table[113].statistics == 1
    assert max(ch.branching for ch in table[113].channels if ch.products == (211, -211)) > 0.99
    assert [ch.products for ch in table[223].channels if ch.vector_to_three] == [(211, -211, 111)]


def test_three_body_momenta_follow_flat_phase_space():
    """omega -> pi+ pi- pi0: the rest-frame momentum of the pi+ over a uniformly filled Dalitz plot, flat and with
    the vector-meson matrix element."""
    mass, masses = 0.78265, (0.13957, 0.13957, 0.13498)
    p_star, weight = res.rest_frame_momenta(mass, masses, 0)
    rng = np.random.default_rng(3)
    lo12, hi12 = (masses[0] + masses[1]) ** 2, (mass - masses[2]) ** 2
    lo23, hi23 = (masses[1] + masses[2]) ** 2, (mass - masses[0]) ** 2
    s12, s23 = rng.uniform(lo12, hi12, 4_000_000), rng.uniform(lo23, hi23, 4_000_000)
    # inside the Dalitz plot: the pi- energy in the (12) frame against its limits
    e2 = (s12 - masses[0] ** 2 + masses[1] ** 2) / (2 * np.sqrt(s12))
    e3 = (mass**2 - s12 - masses[2] ** 2) / (2 * np.sqrt(s12))
    p2, p3 = np.sqrt(np.clip(e2**2 - masses[1] ** 2, 0, None)), np.sqrt(np.clip(e3**2 - masses[2] ** 2, 0, None))
    inside = ((e2 + e3) ** 2 - (p2 + p3) ** 2 <= s23) & (s23 <= (e2 + e3) ** 2 - (p2 - p3) ** 2)
    s12, s23 = s12[inside], s23[inside]
    p1 = res.two_body_momentum(mass, masses[0], np.sqrt(s23))  # pi+ recoils against the (23) pair
    for k in (1, 2):
        mc, err = np.mean(p1**k), np.std(p1**k) / np.sqrt(len(p1))
        assert abs(np.sum(weight * p_star**k) - mc) < 4 * err + 2e-4 * mc, (k, np.sum(weight * p_star**k), mc)
    # the vector-meson matrix element |p1 x p2|^2 (omega -> 3 pi): the same Dalitz plot, weighted
    s13 = mass**2 + sum(m * m for m in masses) - s12 - s23
    p2 = res.two_body_momentum(mass, masses[1], np.sqrt(s13))
    p3 = res.two_body_momentum(mass, masses[2], np.sqrt(s12))
    cross2 = p1**2 * p2**2 - ((p3**2 - p1**2 - p2**2) / 2) ** 2
    p_star, weight = res.rest_frame_momenta(mass, masses, 0, vector_to_three=True)
    for k in (1, 2):
        mc = np.sum(cross2 * p1**k) / cross2.sum()
        err = np.sqrt(np.sum((cross2 * (p1**k - mc)) ** 2)) / cross2.sum()
        assert abs(np.sum(weight * p_star**k) - mc) < 4 * err + 2e-4 * mc, (k, np.sum(weight * p_star**k), mc)
    flat_mean = np.mean(p1)
    assert abs(np.sum(weight * p_star) - flat_mean) > 10 * np.std(p1) / np.sqrt(len(p1))  # the weight matters


def _boltzmann_yield(mass: float, temperature: float) -> float:
    """Particles per unit rapidity of _thermal: int PT dPT dphi exp(-MT/T) = 2 pi T e^(-M/T) (M + T)."""
    return 2 * math.pi * temperature * math.exp(-mass / temperature) * (mass + temperature)


def _thermal(mass: float, temperature: float, v2: float, psi: float, pt: np.ndarray) -> np.ndarray:
    """A boost-invariant Boltzmann spectrum exp(-mT/T) (1 + 2 v2 cos 2(phi - psi)) at (pt, PHI_IN): (K, L)."""
    mt = np.sqrt(mass**2 + pt**2)
    return np.exp(-mt / temperature)[:, None] * (1 + 2 * v2 * np.cos(2 * (PHI_IN[None, :] - psi)))


def _monte_carlo_decays(mass: float, m: float, temperature: float, v2: float, psi: float, n: int, seed: int):
    """Parents from _thermal, uniform in rapidity |Y| < 3, decayed isotropically into m + m: the daughters at
    |y| < 0.5 (pT, phi) and the number of parents per unit rapidity."""
    rng = np.random.default_rng(seed)
    # mT exp(-mT/T) above mT = M: the mixture of exponential and Gamma(2) in mT - M
    x = np.where(rng.random(n) < mass / (mass + temperature), rng.exponential(temperature, n), rng.gamma(2, temperature, n))
    mt = mass + x
    phi = rng.uniform(-math.pi, math.pi, n)
    keep = rng.random(n) < (1 + 2 * v2 * np.cos(2 * (phi - psi))) / (1 + 2 * v2)
    mt, phi = mt[keep], phi[keep]
    pt = np.sqrt(mt**2 - mass**2)
    y = rng.uniform(-3, 3, len(pt))
    p_star = float(res.two_body_momentum(mass, m, m))
    u, turn = rng.uniform(-1, 1, len(pt)), rng.uniform(0, 2 * math.pi, len(pt))
    rest = p_star * np.stack([np.sqrt(1 - u * u) * np.cos(turn), np.sqrt(1 - u * u) * np.sin(turn), u], 1)
    energy = math.sqrt(m * m + p_star**2)
    mom = np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)], 1)
    beta = mom / (mt * np.cosh(y))[:, None]
    gamma = 1 / np.sqrt(1 - (beta**2).sum(1))
    bp = (beta * rest).sum(1)
    lab = rest + (((gamma - 1) * bp / (beta**2).sum(1) + gamma * energy)[:, None] * beta)
    lab_e = gamma * (energy + bp)
    rap = 0.5 * np.log((lab_e + lab[:, 2]) / (lab_e - lab[:, 2]))
    sel = np.abs(rap) < 0.5
    return np.hypot(lab[sel, 0], lab[sel, 1]), np.arctan2(lab[sel, 1], lab[sel, 0]), len(pt) / 6


def test_two_body_feed_down_matches_monte_carlo_decays():
    """rho -> pi pi from a flowing parent with its event plane at psi: the yield per pT range, v2 and its angle
    of the daughters from the kernels (through FeedDown.spectra) equal those of Monte Carlo decays."""
    mass, m, temperature, v2, psi = 0.77549, 0.13957, 0.25, 0.15, 0.4
    grid = res.parent_grid()
    kernel = res.decay_kernel(mass, m, float(res.two_body_momentum(mass, m, m)), grid, PT_OUT)
    maps = np.zeros((1, 3, res.HARMONICS, len(PT_OUT), len(grid)))
    maps[0, 0] = kernel
    fd = res.FeedDown((), maps, grid)
    thermal = torch.as_tensor(_thermal(mass, temperature, v2, psi, grid))[None, None]
    out = fd.spectra(thermal, torch.as_tensor(PHI_IN), torch.as_tensor(PHI_OUT))[0, 0].numpy()  # (K, 64)
    parents = _boltzmann_yield(mass, temperature)
    dn_dpt = out.mean(1) * 2 * math.pi * PT_OUT * WIDTHS  # per output bin
    assert dn_dpt.sum() == pytest.approx(parents, rel=2e-3)  # one daughter per decay, all within 4 GeV
    pt_mc, phi_mc, per_y = _monte_carlo_decays(mass, m, temperature, v2, psi, 3_000_000, 5)
    scale = parents / per_y
    edges = PT_EDGES[[0, 3, 8, 16, 26, 38, 64]]  # pT ranges of whole output bins
    q2 = (out * np.exp(2j * PHI_OUT)).sum(1) / out.sum(1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = (PT_OUT > lo) & (PT_OUT < hi)
        model = dn_dpt[rows].sum()
        sel = (pt_mc > lo) & (pt_mc < hi)
        count = sel.sum()
        assert abs(model - count * scale) < 4 * math.sqrt(count) * scale, (lo, model, count * scale)
        model_q2 = (q2[rows] * dn_dpt[rows]).sum() / model
        mc_q2 = np.exp(2j * phi_mc[sel]).mean()
        assert abs(model_q2 - mc_q2) < 4 / math.sqrt(count), (lo, model_q2, mc_q2)
    assert np.angle(model_q2) / 2 == pytest.approx(psi, abs=0.01)  # the event plane at 1.2-2 GeV, where v2 ~ 0.15


def _mean_final(table, pid: int, cls: int, memo: dict) -> float:
    """Mean number of final hadrons of |pid| FINAL[cls] from one `pid` through its whole decay chain."""
    if abs(pid) == res.FINAL[cls]:
        return 1.0
    if pid not in memo:
        h = table.get(pid)
        memo[pid] = 0.0 if h is None else sum(
            ch.branching * sum(_mean_final(table, p, cls, memo) for p in ch.products) for ch in h.channels)
    return memo[pid]


def test_decay_chains_keep_the_number_of_final_hadrons():
    """Thermal spectra of every resonance below 1.3 GeV into FeedDown: the pi, K and p from the decays add up to
    sum over resonances of (thermal yield) x (degeneracy) x (mean number of that final hadron in its decay chain),
    counted directly from the table; the decay pions of a flowing source flow."""
    mass_max, temperature = 1.3, 0.15
    table = res.hadron_table(mass_max)
    fd = res.feed_down(PT_OUT, mass_max)
    grid = fd.grid
    thermal = np.stack([_thermal(sp.mass, temperature, 0.1, 0.0, grid) for sp in fd.species])
    out = fd.spectra(torch.as_tensor(thermal)[None], torch.as_tensor(PHI_IN), torch.as_tensor(PHI_OUT))[0].numpy()
    yields = (out.mean(2) * 2 * math.pi * PT_OUT * WIDTHS).sum(1)  # (3,)
    expected = np.zeros(3)
    for cls in range(3):
        memo: dict = {}
        for h in table.values():
            if abs(h.pid) not in res.FINAL:
                expected[cls] += (_boltzmann_yield(h.mass, temperature) * h.degeneracy
                                  * _mean_final(table, h.pid, cls, memo))
    np.testing.assert_allclose(yields, expected, rtol=3e-3)
    assert expected[0] > expected[1] > expected[2] > 0  # pions, kaons (K*), protons (Delta)
    pions = out[0, :64]
    v2 = ((pions * np.cos(2 * PHI_OUT)).sum(1) / pions.sum(1))
    assert np.all(np.diff(v2[5:40]) > 0) and 0.02 < v2[40] < 0.1  # rising with pT, below the parents' v2 of 0.1


@pytest.mark.slow
def test_hydro_with_decays(tmp_path):
    """`hicgen truth hydro --decays` on a small event: more pions, kaons and protons than the direct ones, a
    softer pion spectrum, the attribute that names the decays; a merge with a file without decays is refused."""
    from hicgen.cli import main

    ic = tmp_path / "ic.h5"
    assert main(["truth", "trento", "--events", "1", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "11", "--seed", "4", "--norm", "20"]) == 0
    files = {}
    for decays in (False, True):
        files[decays] = tmp_path / f"spectra_{decays}.h5"
        args = ["truth", "hydro", "--ic", str(ic), "--out", str(files[decays]), "--hydro-grid-max", "7"]
        assert main(args + (["--decays"] if decays else [])) == 0
    with h5py.File(files[False]) as plain, h5py.File(files[True]) as full:
        assert "resonance_decays" not in plain.attrs and "pythia8mc" in full.attrs["resonance_decays"]
        direct, total = plain["species_dndy"][0], full["species_dndy"][0]
        assert np.all(total > 1.3 * direct), (direct, total)
        direct_pt, total_pt = plain["species_pt_dndy"][0, 0], full["species_pt_dndy"][0, 0]
        assert total_pt[:10].sum() / total_pt.sum() > direct_pt[:10].sum() / direct_pt.sum()  # softer pions
        assert full["mean_pt"][0] < plain["mean_pt"][0]
    assert main(["truth", "merge", str(files[False]), str(files[True]), "--out", str(tmp_path / "m.h5")]) == 2


def test_decays_note_on_initial_states_of_the_default_norm(tmp_path):
    from hicgen.cli import main
    from hicgen.cli.truth_hydro import _decays_norm_note
    from hicgen.truth.trento import NORM_WITH_DECAYS

    notes = []
    for name, norm in (("default.h5", []), ("tuned.h5", ["--norm", str(NORM_WITH_DECAYS)])):
        assert main(["truth", "trento", "--events", "1", "--out", str(tmp_path / name), "--grid-max", "5",
                     "--grid-step", "0.5", "--b-min", "9", "--b-max", "11"] + norm) == 0
        notes.append(_decays_norm_note(tmp_path / name))
    assert f"--norm {NORM_WITH_DECAYS:g}" in notes[0] and notes[1] is None


def test_mass_nodes_stand_for_the_heavy_resonances():
    """Above 1.1 GeV the Boltzmann spectrum of any mass is interpolated from MASS_NODES (mass_weights): for cells of
    temperature 0.12-0.16 GeV moving with gamma up to 2, at pT 0-4 GeV, within 2e-3 of the exact one."""
    masses = sorted({h.mass for h in res.hadron_table().values() if h.mass >= res.MASS_NODES[0] and h.channels})
    pt = np.linspace(0.0, 4.0, 41)[:, None, None, None]
    gamma = np.array([1.0, 1.3, 2.0])[None, :, None, None]
    temperature = np.array([0.12, 0.14, 0.16])[None, None, :, None]
    cosine = np.array([-1.0, 0.0, 1.0])[None, None, None, :]

    def boltzmann(mass):  # exp(-p.u / T) at y = eta_s, for a cell moving along or against the particle
        return np.exp(-(np.sqrt(mass**2 + pt**2) * gamma - pt * np.sqrt(gamma**2 - 1) * cosine) / temperature)

    nodes = np.stack([boltzmann(m) for m in res.MASS_NODES])
    for mass in masses:
        approx = np.tensordot(res.mass_weights(mass), nodes, 1)
        assert np.abs(approx / boltzmann(mass) - 1).max() < 2e-3, mass


def test_feed_down_agrees_with_pythia_decays():
    """Every decaying hadron below 1.3 GeV from a Boltzmann source (T = 0.15 GeV), through the kernels and through
    pythia8mc's own decayer (c tau < 1 cm, fixed masses) as Monte Carlo parents in |Y| < 2, drawn by the square
    root of their thermal yield and weighted back: the pi, K and p of their decays at |y| < 0.5 agree in pT ranges
    within the Monte Carlo errors."""
    import pythia8mc

    mass_max, temperature, n_parents, y_max = 1.3, 0.15, 200_000, 2.0
    table = res.hadron_table(mass_max)
    fd = res.feed_down(PT_OUT, mass_max)
    thermal = np.stack([_thermal(sp.mass, temperature, 0.0, 0.0, fd.grid) for sp in fd.species])
    out = fd.spectra(torch.as_tensor(thermal)[None], torch.as_tensor(PHI_IN), torch.as_tensor(PHI_OUT))[0].numpy()
    dn = out.mean(2) * 2 * math.pi * PT_OUT * WIDTHS  # (3, K) per output bin

    parents = [h for h in table.values() if h.channels and abs(h.pid) not in res.FINAL]
    yields = np.array([h.degeneracy * _boltzmann_yield(h.mass, temperature) for h in parents])  # per unit rapidity
    draw = np.sqrt(yields) / np.sqrt(yields).sum()  # rare species more often than their yield, then weighted down
    weight = yields * 2 * y_max / (draw * n_parents)  # what one parent of each species stands for
    rng = np.random.default_rng(2)
    pythia = pythia8mc.Pythia("", False)
    for line in ("ProcessLevel:all = off", "ParticleDecays:limitTau0 = on", "ParticleDecays:tau0Max = 10",
                 "ParticleData:modeBreitWigner = 0", "Print:quiet = on", "Random:setSeed = on", "Random:seed = 3"):
        assert pythia.readString(line)
    assert pythia.init()
    found = {pid: [] for pid in res.FINAL}
    for k in rng.choice(len(parents), n_parents, p=draw):
        h = parents[k]
        mt = h.mass + (rng.exponential(temperature) if rng.random() < h.mass / (h.mass + temperature)
                       else rng.gamma(2, temperature))
        pt, phi, y = math.sqrt(mt * mt - h.mass**2), rng.uniform(-math.pi, math.pi), rng.uniform(-y_max, y_max)
        pythia.event.reset()
        pythia.event.append(h.pid, 1, 0, 0, pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(y),
                            mt * math.cosh(y), h.mass)
        assert pythia.next()
        for i in range(1, pythia.event.size()):
            p = pythia.event[i]
            if p.isFinal() and p.idAbs() in found and abs(p.y()) < 0.5:
                found[p.idAbs()].append((p.pT(), weight[k]))
    for k, pid in enumerate(res.FINAL):
        pts, w = np.array(found[pid]).T
        for lo, hi in zip(PT_EDGES[[0, 8, 24]], PT_EDGES[[8, 24, 64]]):
            sel = (pts > lo) & (pts < hi)
            model = dn[k][(PT_OUT > lo) & (PT_OUT < hi)].sum()
            # decay products come in pairs and triplets of one parent: twice the Poisson variance covers them
            error = math.sqrt(2 * np.sum(w[sel] ** 2))
            assert abs(model - w[sel].sum()) < 4 * error, (pid, lo, model, w[sel].sum(), error)
            assert error < 0.08 * model  # the test resolves 8 % in every range
