"""Gubser flow (Gubser, PRD 82 (2010) 085027; Gubser & Yarom, NPB 846 (2011) 469): analytic tests of the solver.

Conformal fluid, e = c T^4. In de Sitter coordinates (rho, theta, phi, eta) the flow is static and only rho matters:
rho(tau, r) = -asinh[(1 - q^2 tau^2 + q^2 r^2)/(2 q tau)], transverse rapidity
kappa(tau, r) = atanh[2 q^2 tau r/(1 + q^2 tau^2 + q^2 r^2)], T(tau, r) = That(rho)/tau (That in units of hbar c).

Ideal: That = That0 / cosh(rho)^(2/3).
Viscous Israel-Stewart (Marrochio et al., PRC 91 (2015) 014903, Eqs. (48)-(49) there) with tau_pi = 5 (eta/s)/That,
pibar = pi_zz/(e + p) (pi_zz the stress along eta in the local rest frame):
  dThat/drho + (2/3) That tanh(rho) = (1/3) pibar That tanh(rho)
  dpibar/drho + (4/3) pibar^2 tanh(rho) + pibar/tau_pi = (4/15) tanh(rho)
which we derived again from the solver's equations (energy conservation in the de Sitter frame plus the
relaxation equation with the -(4/3) tau_pi pi theta term).
"""

from __future__ import annotations

import numpy as np

from hicgen.truth.hydro.eos import HBARC


def rho_kappa(tau: np.ndarray, r: np.ndarray, q: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """de Sitter time rho and transverse flow rapidity kappa at (tau [fm], r [fm]); q in fm^-1."""
    rho = -np.arcsinh((1.0 - (q * tau) ** 2 + (q * r) ** 2) / (2.0 * q * tau))
    kappa = np.arctanh(2.0 * q**2 * tau * r / (1.0 + (q * tau) ** 2 + (q * r) ** 2))
    return rho, kappa


def ideal_that(rho: np.ndarray, that0: float = 1.2) -> np.ndarray:
    """Ideal Gubser That(rho) (dimensionless), That0 at rho = 0."""
    return that0 / np.cosh(rho) ** (2.0 / 3.0)


def viscous_solution(eta_s: float, rho_grid: np.ndarray, that0: float = 1.2, rho0: float = 0.0,
                     pibar0: float = 0.0):
    """Solve the Marrochio et al. ODEs; returns That(rho), pibar(rho) on `rho_grid` (any order).

    Initial condition That(rho0) = that0, pibar(rho0) = pibar0, integrated both ways with DOP853 (rtol 1e-10).
    """
    from scipy.integrate import solve_ivp

    def rhs(rho, y):
        that, pibar = y
        t = np.tanh(rho)
        tau_pi = 5.0 * eta_s / that
        return [that * t * (pibar - 2.0) / 3.0, 4.0 / 15.0 * t - 4.0 / 3.0 * pibar**2 * t - pibar / tau_pi]

    rho_grid = np.asarray(rho_grid, dtype=float)
    that = np.full(rho_grid.shape, that0)
    pibar = np.full(rho_grid.shape, pibar0)
    for side in (rho_grid > rho0, rho_grid < rho0):
        if not side.any():
            continue
        end = rho_grid[side].max() if rho_grid[side].max() > rho0 else rho_grid[side].min()
        sol = solve_ivp(rhs, (rho0, end), [that0, pibar0], method="DOP853", rtol=1e-10, atol=1e-12,
                        dense_output=True)
        vals = sol.sol(rho_grid[side])
        that[side], pibar[side] = vals[0], vals[1]
    return that, pibar


def milne_fields(tau: float, x: np.ndarray, y: np.ndarray, c: float, eta_s: float = 0.0, q: float = 1.0,
                 that0: float = 1.2, rho0: float = 0.0, pibar0: float = 0.0) -> dict[str, np.ndarray]:
    """Gubser flow in Milne coordinates on points (x, y) [fm] at tau [fm].

    c: e = c T^4 with e in GeV/fm^3 and T in GeV. Returns T [GeV], e, ux, uy and the shear pi^{xx}, pi^{xy},
    pi^{yy}, pi_s = tau^2 pi^{eta eta} [GeV/fm^3] (all zero when eta_s = 0).
    """
    r = np.hypot(x, y)
    rho, kappa = rho_kappa(np.full_like(r, tau), r, q)
    if eta_s > 0:
        that, pibar = viscous_solution(eta_s, rho, that0, rho0, pibar0)
    else:
        that, pibar = ideal_that(rho, that0), np.zeros_like(rho)
    temp = that / tau * HBARC
    e = c * temp**4
    ur = np.sinh(kappa)
    phi = np.arctan2(y, x)
    ux, uy = ur * np.cos(phi), ur * np.sin(phi)
    pis = pibar * (4.0 / 3.0) * e  # pi_zz = pibar (e + p), e + p = 4e/3
    return {
        "T": temp, "e": e, "ux": ux, "uy": uy, "pis": pis,
        "pixx": -0.5 * pis * (1.0 + ux**2), "pixy": -0.5 * pis * ux * uy, "piyy": -0.5 * pis * (1.0 + uy**2),
    }
