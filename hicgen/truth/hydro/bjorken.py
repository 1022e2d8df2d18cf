"""Bjorken flow (boost-invariant, transversely homogeneous) with Israel-Stewart shear: the reference ODE.

de/dtau = -(e + p + pi_s)/tau,   dpi_s/dtau = -(pi_s + 4 eta/(3 tau))/tau_pi - (4/3) pi_s/tau,
pi_s = tau^2 pi^{eta eta} (the shear stress along the beam in the rest frame), tau_pi = 5 eta/(e + p),
eta = (eta/s) (e + p)/T hbar c. Navier-Stokes initialisation: pi_s(tau0) = -4 eta/(3 tau0).
"""

from __future__ import annotations

import numpy as np
import torch

from hicgen.truth.hydro.eos import EOS, HBARC


def navier_stokes_pis(e0: float, tau0: float, eta_s: float, eos: EOS) -> float:
    """pi_s = -4 eta/(3 tau) at (e0 [GeV/fm^3], tau0 [fm])."""
    e = torch.tensor(e0, dtype=torch.float64)
    w = float(e + eos.pressure(e))
    eta = eta_s * w / float(eos.temperature(e)) * HBARC
    return -4.0 * eta / (3.0 * tau0)


def solve(e0: float, tau0: float, tau1: float, eta_s: float, eos: EOS, pis0: float | None = None,
          taus: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tau, e, pi_s) of Bjorken flow from tau0 to tau1 [fm]; pi_s(tau0) defaults to Navier-Stokes."""
    from scipy.integrate import solve_ivp

    if pis0 is None:
        pis0 = navier_stokes_pis(e0, tau0, eta_s, eos) if eta_s > 0 else 0.0

    def rhs(tau, y):
        e, pis = y
        et = torch.tensor(max(e, 1e-12), dtype=torch.float64)
        p = float(eos.pressure(et))
        if eta_s == 0:
            return [-(e + p) / tau, 0.0]
        temp = float(eos.temperature(et))
        eta = eta_s * (e + p) / temp * HBARC
        tau_pi = 5.0 * eta / (e + p)
        return [-(e + p + pis) / tau, -(pis + 4.0 * eta / (3.0 * tau)) / tau_pi - 4.0 / 3.0 * pis / tau]

    if taus is None:
        taus = np.linspace(tau0, tau1, 50)
    sol = solve_ivp(rhs, (tau0, tau1), [e0, pis0], method="DOP853", rtol=1e-8, atol=1e-10, t_eval=taus)
    return sol.t, sol.y[0], sol.y[1]
