"""The viscous hydro solver against analytic (Gubser) and semi-analytic (viscous Gubser, Bjorken) solutions."""

import numpy as np
import pytest
import torch

from hicgen.truth.hydro import bjorken, gubser
from hicgen.truth.hydro.eos import HBARC, ConformalEOS, LatticeEOS
from hicgen.truth.hydro.solver import FluidState, Grid, HydroConfig, Solver, evolve


def _gubser_run(eta_s: float, dx: float, n: int, dtau: float, **kw):
    eos = ConformalEOS()
    grid = Grid(n, dx)
    x = grid.coords().numpy()
    xx, yy = np.meshgrid(x, x)
    f0 = gubser.milne_fields(1.0, xx, yy, eos.c, eta_s, **kw)
    t = lambda a: torch.tensor(a)[None]  # noqa: E731
    st = FluidState(1.0, t(f0["e"]), t(f0["ux"]), t(f0["uy"]), t(f0["pixx"]), t(f0["pixy"]), t(f0["piyy"]))
    out = evolve(Solver(grid, eos, HydroConfig(eta_s=eta_s, dtau=dtau)), st, tau_end=2.0)
    return eos, out, gubser.milne_fields(2.0, xx, yy, eos.c, eta_s, **kw), np.hypot(xx, yy)


def test_ideal_gubser_matches_at_2fm():
    eos, out, exact, r = _gubser_run(0.0, 0.1, 101, 0.025)
    inside = r < 3.5
    temp = eos.temperature(out.e)[0].numpy()
    assert np.abs(temp / exact["T"] - 1)[inside].max() < 0.01
    ur = np.hypot(out.ux[0].numpy(), out.uy[0].numpy())
    ur_exact = np.hypot(exact["ux"], exact["uy"])
    assert np.abs(ur - ur_exact)[inside].max() / ur_exact[inside].max() < 0.01


@pytest.mark.slow
def test_viscous_gubser_marrochio_within_2_percent():
    # Marrochio et al. 2015 conformal IS solution, eta/s = 0.2, pibar = 0 at rho0 = -10
    eos, out, exact, r = _gubser_run(0.2, 0.05, 161, 0.0125, rho0=-10.0, that0=0.001)
    inside = r < 3.0
    temp = eos.temperature(out.e)[0].numpy()
    assert np.abs(temp / exact["T"] - 1)[inside].max() < 0.02
    sh = out.shear_all()
    for key, ref in (("s", "pis"), ("xx", "pixx"), ("xy", "pixy"), ("yy", "piyy")):
        err = np.abs(sh[key][0].numpy() - exact[ref])[inside].max() / np.abs(exact[ref][inside]).max()
        assert err < 0.02, (key, err)


@pytest.mark.parametrize("eta_s", [0.0, 0.2])
def test_bjorken_navier_stokes_init(eta_s):
    eos = LatticeEOS()
    tau0, e0 = 0.6, 30.0
    pis0 = bjorken.navier_stokes_pis(e0, tau0, eta_s, eos) if eta_s else 0.0
    shape = (2, 6, 6)
    full = lambda v: torch.full(shape, v, dtype=torch.float64)  # noqa: E731
    st = FluidState(tau0, full(e0), full(0.0), full(0.0), full(-pis0 / 2), full(0.0), full(-pis0 / 2))
    out = evolve(Solver(Grid(6, 0.2), eos, HydroConfig(eta_s=eta_s, dtau=0.05)), st, tau_end=5.0)
    tau, e, pis = bjorken.solve(e0, tau0, out.tau, eta_s, eos, taus=np.array([tau0, out.tau]))
    assert abs(float(out.e.mean()) / e[-1] - 1) < 5e-3
    if eta_s:
        assert abs(float(out.shear_all()["s"].mean()) / pis[-1] - 1) < 1e-2
        # viscous fluid cools slower than ideal: check the test can see viscosity at all
        ideal = bjorken.solve(e0, tau0, out.tau, 0.0, eos, taus=np.array([tau0, out.tau]))[1][-1]
        assert e[-1] > ideal * 1.03


@pytest.mark.slow
def test_small_eta_s_is_stable_at_the_chain_time_step():
    """At eta/s = 0.02 and T ~ 0.6 GeV the shear relaxation time (0.033 fm) is far below the chain's time step
    (0.125 fm on a 0.5 fm grid): the step is cut into parts, so the explicit relaxation update stays stable and
    conserves energy; viscosity then lowers the flow and raises the multiplicity against ideal hydro."""
    from hicgen.truth.hydro.eos import make_eos
    from hicgen.truth.hydro.pipeline import ChainConfig, run_batch
    from hicgen.truth.hydro.solver import relaxation_substeps

    eos = make_eos("hotqcd")
    x = (np.arange(16) - 7.5) * 0.5
    xx, yy = np.meshgrid(x, x)
    prof = 250 * np.exp(-(xx**2 / 8 + yy**2 / 3)) + 60 * np.exp(-((xx - 1.5) ** 2 + (yy + 1) ** 2))
    e0 = eos.energy_from_entropy(torch.as_tensor(prof / 0.6))[None]
    dtau = 0.25 * 0.5
    n = relaxation_substeps(dtau, e0, 0.02, eos)
    tau_pi = 5 * 0.02 * HBARC / float(eos.temperature(e0.max()))
    assert dtau / n <= tau_pi < dtau / (n - 1)  # the fewest parts no longer than tau_pi
    assert relaxation_substeps(dtau, e0, 0.0, eos) == 1 and relaxation_substeps(dtau, e0, 0.2, eos) == 1
    res = run_batch(np.stack([prof, prof]), 0.5, np.array([0.0, 0.02]), eos, ChainConfig(grid_max=9))
    assert np.all(np.abs(res.energy_balance) < 0.02), res.energy_balance
    phi = np.linspace(-np.pi, np.pi, 65)
    phi = 0.5 * (phi[1:] + phi[:-1])
    v2 = [abs((s.sum(0) * np.exp(2j * phi)).sum() / s.sum()) for s in res.spectrum]
    assert v2[1] < v2[0] and res.dnch_dy[1] > res.dnch_dy[0]


@pytest.mark.slow
def test_lumpy_initial_state_stays_stable_in_the_dilute_rim():
    """IC 43 of `hicgen truth trento --seed 3301 --nucleon-width 0.5 --grid-step 0.4` (b = 5.7 fm) at eta/s 0.2: with
    the shear kept down to e = E_VISC / 10 the dilute rim (e ~ 0.002 GeV/fm^3, 90 times below e_sw) held shear
    components 2.4 times its enthalpy by tau = 2.6 fm and went non-finite at tau = 8.8 fm; zeroed at or below E_VISC
    it runs through, conserving energy."""
    from hicgen.truth import trento
    from hicgen.truth.hydro.eos import make_eos
    from hicgen.truth.hydro.pipeline import ChainConfig, run_batch

    cfg = trento.TrentoConfig(nucleon_width=0.5, b_max=13.07, grid_step=0.4)
    event = trento.sample_event(3301, 43, cfg, trento.sigma_gg(cfg.cross_section, cfg.nucleon_width))
    assert abs(event.b - 5.7) < 0.05
    profile = trento.reduced_thickness([event], cfg).numpy()
    res = run_batch(profile, 0.4, 0.2, make_eos("hotqcd"), ChainConfig(grid_max=14))  # the training grid
    assert np.isfinite(res.spectrum).all() and abs(res.energy_balance[0]) < 0.02, res.energy_balance
    assert res.tau_end[0] > 10


def test_compiled_step_is_one_graph_for_both_stages_and_every_time_step():
    """--compile traces one Heun stage (not the whole step: g++ crashed on the whole one for some grid shapes) and
    calls it for both stages, with tau, dtau and the stage weights as tensor inputs: batches of one shape with
    different time steps (a batch cut into relaxation substeps) reuse it, no recompilation. Traced with aot_eager
    (no code generated), the compiled steps must equal the eager ones bit for bit."""
    from torch._dynamo.utils import counters

    from hicgen.engine import runtime
    from hicgen.truth.hydro import solver as solver_module

    eos = ConformalEOS()
    grid = Grid(12, 0.5)
    x = grid.coords().numpy()
    xx, yy = np.meshgrid(x, x)
    f0 = gubser.milne_fields(1.0, xx, yy, eos.c, 0.2)
    t = lambda a: torch.tensor(a)[None].repeat(2, 1, 1)  # noqa: E731
    st = FluidState(1.0, t(f0["e"]), t(f0["ux"]), t(f0["uy"]), t(f0["pixx"]), t(f0["pixy"]), t(f0["piyy"]))
    old = runtime.COMPILE_BACKEND
    runtime.COMPILE_BACKEND = "aot_eager"
    solver_module._COMPILED_STEPS.pop("aot_eager", None)
    torch._dynamo.reset()
    counters.clear()
    try:
        for dtau in (0.1, 0.05):
            config = HydroConfig(eta_s=torch.tensor([0.1, 0.2], dtype=torch.float64), dtau=dtau)
            eager = evolve(Solver(grid, eos, config), st, tau_end=1.0 + 3 * dtau)
            compiled = evolve(Solver(grid, eos, config, compile=True), st, tau_end=1.0 + 3 * dtau)
            assert compiled.tau == eager.tau
            for name in ("e", "ux", "uy", "pixx", "pixy", "piyy"):
                assert torch.equal(getattr(compiled, name), getattr(eager, name)), (dtau, name)
        assert counters["stats"]["unique_graphs"] == 1
    finally:
        runtime.COMPILE_BACKEND = old
        solver_module._COMPILED_STEPS.pop("aot_eager", None)
        torch._dynamo.reset()
