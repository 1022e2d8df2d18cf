"""Equations of state p(e), T(e), s(e) for the hydro solver, evaluated on torch tensors.

Units: energy density and pressure in GeV/fm^3, temperature in GeV, entropy density in fm^-3.

* :class:`LatticeEOS` -- the HotQCD (2+1)-flavour lattice EOS through its published fit
  p/T^4 (Bazavov et al., PRD 90 (2014) 094503, Eq. (16) and Table II), tabulated on a
  uniform grid in log(e) so that a lookup is one index computation (batched, GPU friendly).
  The fit is used for 0.07 < T < 1 GeV; below (dilute edges, far below the switching density
  e_sw = 0.18 GeV/fm^3 where T = 0.143 GeV) and above, the table continues with a constant
  speed of sound matched at the ends (p = c_s^2 e, T ~ e^(c_s^2/(1+c_s^2))).
* :class:`ConformalEOS` -- e = 3p = c T^4, used by the Gubser and Bjorken tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

HBARC = 0.1973269804  # GeV fm (PDG)

# HotQCD fit parameters, Bazavov et al. PRD 90 (2014) 094503, Table II (T_c = 154 MeV).
_TC = 0.154
_CT, _T0 = 3.8706, 0.9761
_AN, _BN, _CN, _DN = -8.7704, 3.9200, 0.0, 0.3419
_AD, _BD, _CD, _DD = -1.2600, 0.8425, 0.0, -0.0475
_PID = 95.0 * math.pi**2 / 180.0  # Stefan-Boltzmann limit of p/T^4 for 3 flavours


def hotqcd_p_over_t4(temperature: np.ndarray) -> np.ndarray:
    """HotQCD fit p/T^4 (dimensionless) at temperature T [GeV], valid for ~0.07-1 GeV."""
    t = np.asarray(temperature, dtype=float) / _TC
    num = _PID + _AN / t + _BN / t**2 + _CN / t**3 + _DN / t**4
    den = 1.0 + _AD / t + _BD / t**2 + _CD / t**3 + _DD / t**4
    return 0.5 * (1.0 + np.tanh(_CT * (t - _T0))) * num / den


class EOS:
    """Interface: every method takes and returns tensors of any shape (e in GeV/fm^3)."""

    name = "eos"

    def pressure(self, e: torch.Tensor) -> torch.Tensor:  # GeV/fm^3
        raise NotImplementedError

    def temperature(self, e: torch.Tensor) -> torch.Tensor:  # GeV
        raise NotImplementedError

    def cs2(self, e: torch.Tensor) -> torch.Tensor:  # speed of sound squared
        raise NotImplementedError

    def entropy(self, e: torch.Tensor) -> torch.Tensor:
        """Entropy density s = (e + p)/T [fm^-3]."""
        return (e + self.pressure(e)) / self.temperature(e)

    def energy_from_entropy(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def energy_from_temperature(self, temperature: float) -> float:
        raise NotImplementedError


class ConformalEOS(EOS):
    """Ideal conformal gas e = 3p = c T^4/(hbar c)^3; default c = 13.8997 (N_c = 3, N_f = 2.5 massless QGP)."""

    name = "conformal"

    def __init__(self, c: float = 13.8997):
        self.c = c / HBARC**3  # GeV^-3 fm^-3

    def pressure(self, e):
        return e / 3.0

    def temperature(self, e):
        return (e.clamp_min(1e-30) / self.c) ** 0.25

    def cs2(self, e):
        return torch.full_like(e, 1.0 / 3.0)

    def energy_from_entropy(self, s):
        # s = 4/3 c T^3  ->  T = (3 s / 4 c)^(1/3)
        t = (0.75 * s.clamp_min(0.0) / self.c) ** (1.0 / 3.0)
        return self.c * t**4

    def energy_from_temperature(self, temperature):
        return self.c * temperature**4


class LatticeEOS(EOS):
    """HotQCD lattice EOS, tabulated in log(e) (see the module docstring for the ranges)."""

    name = "hotqcd-2014"

    def __init__(self, n_table: int = 4000, t_min: float = 0.07, t_max: float = 1.0):
        temp = np.geomspace(t_min, t_max, 20000)
        p = hotqcd_p_over_t4(temp) * temp**4 / HBARC**3
        s = np.gradient(p, temp, edge_order=2)
        e = temp * s - p
        # table uniform in log e between the ends of the fit
        self.log_e0 = math.log(e[0])
        self.log_e1 = math.log(e[-1])
        log_e = np.linspace(self.log_e0, self.log_e1, n_table)
        self.dlog = log_e[1] - log_e[0]
        p_tab = np.interp(log_e, np.log(e), p)
        t_tab = np.interp(log_e, np.log(e), temp)
        self.cs2_lo = float((p[1] - p[0]) / (e[1] - e[0]))
        self.cs2_hi = float((p[-1] - p[-2]) / (e[-1] - e[-2]))
        self.e_lo, self.e_hi = float(e[0]), float(e[-1])
        self.p_lo, self.p_hi = float(p[0]), float(p[-1])
        self.t_lo, self.t_hi = float(temp[0]), float(temp[-1])
        cs2_tab = np.gradient(p_tab, np.exp(log_e))
        self._np = {"log_e": log_e, "p": p_tab, "T": t_tab, "cs2": cs2_tab}
        self._cache: dict = {}

    def _tables(self, like: torch.Tensor):
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {k: torch.as_tensor(v, device=like.device, dtype=like.dtype) for k, v in self._np.items()}
        return self._cache[key]

    def _lookup(self, e: torch.Tensor, name: str) -> torch.Tensor:
        tab = self._tables(e)[name]
        x = (torch.log(e.clamp_min(1e-30)) - self.log_e0) / self.dlog
        x = torch.nan_to_num(x, nan=0.0).clamp(0.0, len(tab) - 1.000001)  # NaN e: caught by the solver's check
        i = x.floor().long()
        w = x - i
        return tab[i] * (1 - w) + tab[i + 1] * w

    def pressure(self, e):
        inside = self._lookup(e, "p")
        lo = self.cs2_lo * e + (self.p_lo - self.cs2_lo * self.e_lo)
        lo = torch.where(e > 0, e * (self.p_lo / self.e_lo), lo)  # p = (p/e)_lo e keeps p(0) = 0
        hi = self.p_hi + self.cs2_hi * (e - self.e_hi)
        return torch.where(e < self.e_lo, lo, torch.where(e > self.e_hi, hi, inside))

    def temperature(self, e):
        inside = self._lookup(e, "T")
        c_lo = self.p_lo / self.e_lo
        lo = self.t_lo * (e.clamp_min(1e-30) / self.e_lo) ** (c_lo / (1 + c_lo))
        hi = self.t_hi * (e / self.e_hi).clamp_min(1.0) ** (self.cs2_hi / (1 + self.cs2_hi))
        return torch.where(e < self.e_lo, lo, torch.where(e > self.e_hi, hi, inside))

    def cs2(self, e):
        inside = self._lookup(e, "cs2")
        return torch.where(e < self.e_lo, torch.full_like(e, self.p_lo / self.e_lo),
                           torch.where(e > self.e_hi, torch.full_like(e, self.cs2_hi), inside))

    def energy_from_entropy(self, s: torch.Tensor) -> torch.Tensor:
        """Invert s(e) by bisection in log e (monotonic), 60 halvings; s in fm^-3."""
        lo = torch.full_like(s, -30.0)
        hi = torch.full_like(s, 12.0)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            too_big = self.entropy(torch.exp(mid)) > s
            hi = torch.where(too_big, mid, hi)
            lo = torch.where(too_big, lo, mid)
        return torch.where(s > 0, torch.exp(0.5 * (lo + hi)), torch.zeros_like(s))

    def energy_from_temperature(self, temperature: float) -> float:
        """e(T) [GeV/fm^3] by bisection."""
        lo, hi = -30.0, 12.0
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if float(self.temperature(torch.tensor(math.exp(mid), dtype=torch.float64))) > temperature:
                hi = mid
            else:
                lo = mid
        return math.exp(0.5 * (lo + hi))


def make_eos(name: str) -> EOS:
    """'hotqcd' (lattice) or 'conformal'."""
    if name in ("hotqcd", "hotqcd-2014", "lattice"):
        return LatticeEOS()
    if name == "conformal":
        return ConformalEOS()
    raise ValueError(f"unknown EOS '{name}' (use 'hotqcd' or 'conformal')")
