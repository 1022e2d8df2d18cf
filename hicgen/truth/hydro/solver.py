"""Boost-invariant (2+1)D viscous hydrodynamics in Milne coordinates (tau, x, y), batched over events.

Equations (metric (+,-,-,-), hbar = c = 1 except where HBARC converts GeV <-> fm):

* d_tau(tau T^{tau mu}) + d_i(tau T^{i mu}) = S^mu with S^tau = -(p + tau^2 pi^{eta eta}), S^x = S^y = 0;
  T^{mu nu} = (e + p) u^mu u^nu - p g^{mu nu} + pi^{mu nu}; no bulk viscosity (as paper 000).
* Israel-Stewart shear relaxation in the form of Marrochio et al., PRC 91 (2015) 014903:
  tau_pi Delta^{mu nu}_{alpha beta} D pi^{alpha beta} + pi^{mu nu} = 2 eta sigma^{mu nu} - (4/3) tau_pi pi^{mu nu} theta,
  tau_pi = 5 eta/(e + p), eta = (eta/s) s with constant eta/s.

Numerics: Kurganov-Tadmor central scheme (Kurganov & Tadmor, JCP 160 (2000) 241) with generalised-minmod
reconstruction of the primitive fields (e, u^x, u^y, pi), local propagation speed (|v| + c_s)/(1 + |v| c_s),
Heun's Runge-Kutta 2 in time. The shear components pi^{xx}, pi^{xy}, pi^{yy} are evolved (advection through the
same KT flux); pi^{tau mu} follow from u_mu pi^{mu nu} = 0 and tau^2 pi^{eta eta} from tracelessness. Time
derivatives of u in sigma and theta are finite differences between successive (sub)steps.

Field layout: tensors of shape (B, Ny, Nx) -- rows y, columns x, as in the TRENTo files; lengths in fm,
energy density in GeV/fm^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch

from hicgen.truth.hydro.eos import EOS, HBARC

E_FLOOR = 1e-9  # GeV/fm^3: below this a cell is vacuum (u = 0, pi = 0)
PI_REGULATOR = 1.0  # sqrt(pi:pi) <= PI_REGULATOR (e + p): keeps the shear below the ideal part where IS breaks down (dilute edges)
# Dilute edges (far outside the switching surface at e_sw = 0.18 GeV/fm^3) are kept inviscid: there gradients of
# ultra-relativistic, nearly empty cells would drive the explicit shear update unstable. eta is multiplied by
# 1/(1 + (E_VISC/e)^2) (a 0.3% reduction at e_sw) and pi is set to zero at or below E_PI_ZERO; tau_pi is not damped.
# E_VISC = 1e-3 GeV/fm^3 let central eta/s = 0.2 events on the 0.4 fm grid blow up in the rim near the grid edge
# (tau ~ 13 fm). E_PI_ZERO = E_VISC / 10 (until 2026-12-06) let lumpy ICs (nucleon width 0.5 fm) blow up at eta/s 0.2:
# cells of e ~ 0.002-0.004 GeV/fm^3 held shear components above their enthalpy and ran away (2 of 64 ICs, non-finite
# at tau = 8.8 and 9.7 fm; docs/hydro.md). Zeroing pi up to E_VISC, where eta is
# already halved, moved the records of ICs of the training settings by < 5e-4 in dN/dy and < 2e-4 in V2, V3.
E_VISC = 1e-2  # GeV/fm^3
E_PI_ZERO = E_VISC  # GeV/fm^3
GAMMA_MAX = 30.0  # flow Lorentz factor cap in the inversion (reached only in nearly empty cells)


@dataclass
class FluidState:
    """Primitive fields at proper time tau; every field has shape (B, Ny, Nx)."""

    tau: float  # fm
    e: torch.Tensor  # GeV/fm^3
    ux: torch.Tensor  # u^x
    uy: torch.Tensor  # u^y
    pixx: torch.Tensor  # pi^{xx}, GeV/fm^3
    pixy: torch.Tensor
    piyy: torch.Tensor

    @property
    def ut(self) -> torch.Tensor:
        return torch.sqrt(1.0 + self.ux**2 + self.uy**2)

    def shear_all(self) -> dict[str, torch.Tensor]:
        """All independent shear components, including pi^{tau x}, pi^{tau y}, pi^{tau tau}, tau^2 pi^{eta eta}."""
        return shear_components(self.ux, self.uy, self.pixx, self.pixy, self.piyy)


@dataclass(frozen=True)
class Grid:
    """Square transverse grid: cell centres at -x_max ... x_max with step dx (fm)."""

    n: int
    dx: float

    @property
    def x_max(self) -> float:
        return 0.5 * self.dx * (self.n - 1)

    def coords(self, device=None, dtype=torch.float64) -> torch.Tensor:
        return (torch.arange(self.n, device=device, dtype=dtype) - 0.5 * (self.n - 1)) * self.dx


def shear_components(ux, uy, pixx, pixy, piyy) -> dict[str, torch.Tensor]:
    """pi^{tau mu} from orthogonality u_mu pi^{mu nu} = 0 and tau^2 pi^{eta eta} from tracelessness."""
    ut = torch.sqrt(1.0 + ux**2 + uy**2)
    pitx = (ux * pixx + uy * pixy) / ut
    pity = (ux * pixy + uy * piyy) / ut
    pitt = (ux * pitx + uy * pity) / ut
    pis = pitt - pixx - piyy  # tau^2 pi^{eta eta}
    return {"tt": pitt, "tx": pitx, "ty": pity, "xx": pixx, "xy": pixy, "yy": piyy, "s": pis}


def conserved(e, ux, uy, pixx, pixy, piyy, p) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """T^{tau tau}, T^{tau x}, T^{tau y} (without the factor tau), GeV/fm^3."""
    ut = torch.sqrt(1.0 + ux**2 + uy**2)
    pi = shear_components(ux, uy, pixx, pixy, piyy)
    w = e + p
    return w * ut * ut - p + pi["tt"], w * ut * ux + pi["tx"], w * ut * uy + pi["ty"]


def invert(ttt, ttx, tty, pi_tt, pi_tx, pi_ty, eos: EOS, v0: torch.Tensor | None = None, iters: int = 8):
    """Energy density and velocity from T^{tau mu} with the shear part removed.

    Fixed-point iteration v = M/(E + p(E - M v)) (a contraction since dp/de < 1), warm-started from v0 (the
    previous |v|; 8 iterations then reach ~1e-8). Returns (e, ux, uy); vacuum cells (E <= E_FLOOR) get
    e = E_FLOOR and no flow.
    """
    big_e = ttt - pi_tt
    mx = ttx - pi_tx
    my = tty - pi_ty
    m = torch.sqrt(mx**2 + my**2)
    vacuum = big_e <= E_FLOOR
    big_e = big_e.clamp_min(E_FLOOR)
    m = torch.minimum(m, big_e * (1.0 - 1e-9))
    if v0 is None:
        v = m / (big_e + eos.pressure(big_e))  # first guess with p(E)
        iters = max(iters, 30)
    else:
        v = torch.minimum(v0, m / big_e)
    for _ in range(iters):
        e = (big_e - m * v).clamp_min(E_FLOOR * 1e-3)
        v = m / (big_e + eos.pressure(e))
    v = v.clamp(0.0, math.sqrt(1.0 - 1.0 / GAMMA_MAX**2))
    e = (big_e - m * v).clamp_min(E_FLOOR * 1e-3)
    gamma = 1.0 / torch.sqrt(1.0 - v * v)
    scale = torch.where(m > 0, gamma * v / m.clamp_min(1e-300), torch.zeros_like(m))
    ux, uy = mx * scale, my * scale
    ux = torch.where(vacuum, torch.zeros_like(ux), ux)
    uy = torch.where(vacuum, torch.zeros_like(uy), uy)
    e = torch.where(vacuum, torch.full_like(e, E_FLOOR), e)
    return e, ux, uy


def _minmod_slope(q: torch.Tensor, dim: int, theta: float) -> torch.Tensor:
    """Generalised minmod slope (per cell) along `dim` with zero-gradient boundaries."""
    n = q.shape[dim]
    qp = torch.cat([q.narrow(dim, 1, n - 1), q.narrow(dim, n - 1, 1)], dim)
    qm = torch.cat([q.narrow(dim, 0, 1), q.narrow(dim, 0, n - 1)], dim)
    a = theta * (q - qm)
    b = 0.5 * (qp - qm)
    c = theta * (qp - q)
    same = (torch.sign(a) == torch.sign(b)) & (torch.sign(b) == torch.sign(c))
    mag = torch.minimum(torch.minimum(a.abs(), b.abs()), c.abs())
    return torch.where(same, torch.sign(b) * mag, torch.zeros_like(q))


def _central(q: torch.Tensor, dim: int, dx: float) -> torch.Tensor:
    """Centred first derivative with one-sided ends."""
    return torch.gradient(q, spacing=dx, dim=dim, edge_order=1)[0]


@dataclass
class HydroConfig:
    """Solver settings; eta_s may be a float or a (B,) tensor (one value per event)."""

    eta_s: float | torch.Tensor = 0.0
    dtau: float = 0.05  # fm
    theta: float = 1.8  # generalised-minmod parameter (1 = minmod, 2 = MC); 1.8 as in MUSIC
    viscous: bool = True
    light_speed: bool = True  # KT propagation speed 1: covers the viscous modes (faster than (v+cs)/(1+v cs))


class Solver:
    """Kurganov-Tadmor + RK2 integrator for a batch of events on one grid.

    compile=True runs each of the step's two stages through one torch.compile'd function (_stage_fields, with
    hicgen.engine.runtime.COMPILE_BACKEND): the step's ~4,700 small tensor operations, half in each stage, become
    fused loops, the same arithmetic to rounding (1e-13 after 40 steps). The first step compiles (minutes on a
    CPU); later batches of the same shape reuse it, whatever their time step."""

    def __init__(self, grid: Grid, eos: EOS, config: HydroConfig, compile: bool = False):
        self.grid, self.eos, self.cfg = grid, eos, config
        self.viscous = config.viscous and bool((torch.as_tensor(config.eta_s) > 0).any())
        self._compiled = compiled_step() if compile else None

    # ---- helpers -------------------------------------------------------------------------
    def _eta_s(self, like: torch.Tensor) -> torch.Tensor:
        eta_s = torch.as_tensor(self.cfg.eta_s, dtype=like.dtype, device=like.device)
        return eta_s.reshape(-1, 1, 1) if eta_s.ndim == 1 else eta_s

    def _kt_div(self, prim: dict[str, torch.Tensor], tau: float) -> dict[str, torch.Tensor]:
        """-(H_{j+1/2} - H_{j-1/2})/dx summed over x and y for the energy-momentum and pi fields."""
        dx, th = self.grid.dx, self.cfg.theta
        names = ("e", "ux", "uy", "pixx", "pixy", "piyy")
        out = {k: torch.zeros_like(prim["e"]) for k in ("ttt", "ttx", "tty", "pixx", "pixy", "piyy")}
        for dim, comp in ((-1, "x"), (-2, "y")):
            n = prim["e"].shape[dim]
            left, right = {}, {}
            for k in names:
                q = prim[k]
                s = _minmod_slope(q, dim, th)
                ql = q + 0.5 * s  # value at the right face of cell j (left state of j+1/2)
                qr = q - 0.5 * s  # value at the left face of cell j (right state of j-1/2)
                # interfaces j+1/2 for j = -1 .. n-1 (zero-gradient ghost cells at both ends)
                left[k] = torch.cat([qr.narrow(dim, 0, 1), ql], dim)
                right[k] = torch.cat([qr, ql.narrow(dim, n - 1, 1)], dim)
            left["e"] = left["e"].clamp_min(E_FLOOR * 1e-3)
            right["e"] = right["e"].clamp_min(E_FLOOR * 1e-3)
            fl, ql_, al = self._flux(left, comp)
            fr, qr_, ar = self._flux(right, comp)
            a = torch.maximum(al, ar)
            for k in fl:
                h = 0.5 * (fl[k] + fr[k]) - 0.5 * a * (qr_[k] - ql_[k])
                out[k] = out[k] - (h.narrow(dim, 1, n) - h.narrow(dim, 0, n)) / dx
        for k in ("ttt", "ttx", "tty"):
            out[k] = out[k] * tau
        return out

    def _flux(self, s: dict[str, torch.Tensor], comp: str):
        """Fluxes along `comp`, the conserved densities they transport and the local speed."""
        p = self.eos.pressure(s["e"])
        w = s["e"] + p
        ut = torch.sqrt(1.0 + s["ux"] ** 2 + s["uy"] ** 2)
        pi = shear_components(s["ux"], s["uy"], s["pixx"], s["pixy"], s["piyy"])
        ui = s["ux"] if comp == "x" else s["uy"]
        pit_i = pi["tx"] if comp == "x" else pi["ty"]
        pix_i = pi["xx"] if comp == "x" else pi["xy"]
        piy_i = pi["xy"] if comp == "x" else pi["yy"]
        flux = {
            "ttt": w * ui * ut + pit_i,
            "ttx": w * ui * s["ux"] + (p if comp == "x" else 0.0) + pix_i,
            "tty": w * ui * s["uy"] + (p if comp == "y" else 0.0) + piy_i,
            "pixx": ui * s["pixx"],
            "pixy": ui * s["pixy"],
            "piyy": ui * s["piyy"],
        }
        dens = {
            "ttt": w * ut * ut - p + pi["tt"],
            "ttx": w * ut * s["ux"] + pi["tx"],
            "tty": w * ut * s["uy"] + pi["ty"],
            "pixx": s["pixx"] * ut,
            "pixy": s["pixy"] * ut,
            "piyy": s["piyy"] * ut,
        }
        v = (ui / ut).abs()
        cs = torch.sqrt(self.eos.cs2(s["e"]).clamp(0.0, 1.0))
        return flux, dens, torch.ones_like(v) if self.cfg.light_speed else (v + cs) / (1.0 + v * cs)

    # ---- right-hand side ----------------------------------------------------------------
    def rhs(self, st: FluidState, dudt: tuple[torch.Tensor, torch.Tensor, torch.Tensor]):
        """Time derivatives of (tau T^{tau mu}) and of (pi^{xx}, pi^{xy}, pi^{yy}) at st.tau."""
        tau, dx = st.tau, self.grid.dx
        prim = {"e": st.e, "ux": st.ux, "uy": st.uy, "pixx": st.pixx, "pixy": st.pixy, "piyy": st.piyy}
        div = self._kt_div(prim, tau)
        p = self.eos.pressure(st.e)
        pi = st.shear_all()
        d_ttt = div["ttt"] - (p + pi["s"])
        d_ttx, d_tty = div["ttx"], div["tty"]
        if not self.viscous:
            z = torch.zeros_like(st.e)
            return (d_ttt, d_ttx, d_tty), (z, z, z)
        ux, uy, ut = st.ux, st.uy, st.ut
        dut_dt, dux_dt, duy_dt = dudt
        dux_dx, duy_dx = _central(ux, -1, dx), _central(uy, -1, dx)
        dux_dy, duy_dy = _central(ux, -2, dx), _central(uy, -2, dx)
        dut_dx, dut_dy = _central(ut, -1, dx), _central(ut, -2, dx)
        theta = dut_dt + dux_dx + duy_dy + ut / tau
        # D u^mu = u^lambda d_lambda u^mu (no Christoffel terms for tau, x, y components when u^eta = 0)
        d_ut = ut * dut_dt + ux * dut_dx + uy * dut_dy
        d_ux = ut * dux_dt + ux * dux_dx + uy * dux_dy
        d_uy = ut * duy_dt + ux * duy_dx + uy * duy_dy
        sxx = -dux_dx - ux * d_ux + (1.0 + ux * ux) * theta / 3.0
        syy = -duy_dy - uy * d_uy + (1.0 + uy * uy) * theta / 3.0
        sxy = -0.5 * (dux_dy + duy_dx) - 0.5 * (ux * d_uy + uy * d_ux) + ux * uy * theta / 3.0
        temp = self.eos.temperature(st.e)
        eta_s = self._eta_s(st.e)
        w = st.e + p
        eta_fluid = eta_s * w / temp * HBARC  # GeV/fm^2
        eta = eta_fluid / (1.0 + (E_VISC / st.e) ** 2)  # inviscid dilute edges
        # the relaxation time keeps the fluid's value 5 eta/(e + p): with the damped eta it would fall far below the
        # time step in dilute cells, and the explicit update of the stiff relaxation term would blow up there
        tau_pi = (5.0 * eta_fluid / w).clamp_min(1e-6)  # fm
        # pi^{i beta} D u_beta with u_tau = u^tau, u_x = -u^x, u_y = -u^y
        px = pi["tx"] * d_ut - pi["xx"] * d_ux - pi["xy"] * d_uy
        py = pi["ty"] * d_ut - pi["xy"] * d_ux - pi["yy"] * d_uy
        div_u = dux_dx + duy_dy
        out = []
        for key, sig, proj in (("xx", sxx, -2.0 * ux * px), ("xy", sxy, -(ux * py + uy * px)), ("yy", syy, -2.0 * uy * py)):
            src = -(pi[key] - 2.0 * eta * sig) / tau_pi - (4.0 / 3.0) * pi[key] * theta + proj
            adv = div["pi" + key] + pi[key] * div_u  # -(u^i d_i pi); div already holds -d_i(u^i pi)
            out.append((src + adv) / ut)
        return (d_ttt, d_ttx, d_tty), tuple(out)

    # ---- one time step -------------------------------------------------------------------
    def _update(self, st: FluidState, cons, pis, tau_new: float) -> FluidState:
        """Primitive state from conserved tau T^{tau mu} and the shear components at tau_new."""
        ttt, ttx, tty = (c / tau_new for c in cons)
        pixx, pixy, piyy = pis
        ux, uy = st.ux, st.uy
        for _ in range(2):  # pi^{tau mu} depends on u: iterate the inversion twice
            pi = shear_components(ux, uy, pixx, pixy, piyy)
            v0 = torch.sqrt(ux**2 + uy**2) / torch.sqrt(1.0 + ux**2 + uy**2)
            e, ux, uy = invert(ttt, ttx, tty, pi["tt"], pi["tx"], pi["ty"], self.eos, v0)
        new = FluidState(tau_new, e, ux, uy, pixx, pixy, piyy)
        return self._regulate(new)

    def _regulate(self, st: FluidState) -> FluidState:
        if not self.viscous:
            z = torch.zeros_like(st.e)
            return replace(st, pixx=z, pixy=z, piyy=z)
        pi = st.shear_all()
        norm2 = (pi["tt"] ** 2 + pi["xx"] ** 2 + pi["yy"] ** 2 + pi["s"] ** 2 + 2 * pi["xy"] ** 2
                 - 2 * pi["tx"] ** 2 - 2 * pi["ty"] ** 2)
        w = st.e + self.eos.pressure(st.e)
        factor = torch.clamp(PI_REGULATOR * w / torch.sqrt(norm2.abs() + 1e-30), max=1.0)
        factor = torch.where(st.e <= E_PI_ZERO, torch.zeros_like(factor), factor)
        return replace(st, pixx=st.pixx * factor, pixy=st.pixy * factor, piyy=st.piyy * factor)

    def conserved_of(self, st: FluidState):
        p = self.eos.pressure(st.e)
        ttt, ttx, tty = conserved(st.e, st.ux, st.uy, st.pixx, st.pixy, st.piyy, p)
        return ttt * st.tau, ttx * st.tau, tty * st.tau

    def step(self, st: FluidState, prev: FluidState, prev2: FluidState) -> FluidState:
        """Heun RK2 step of length cfg.dtau; `prev`, `prev2` are the states one and two steps earlier.

        d_tau u enters sigma and theta through second-order backward differences (3 u_n - 4 u_{n-1} + u_{n-2})/(2 dtau).
        """
        if self._compiled is None:
            return self.advance(st, prev, prev2)
        self.eos.pressure(st.e[:1, :1, :1])  # builds the EOS tables on this device outside the traced code
        # tau, dtau and the stage weights are tensor inputs: floats would be baked in, and each new value (every
        # step's tau, a batch cut into relaxation substeps, the second stage) would compile another graph
        scalars = torch.tensor([st.tau, self.cfg.dtau, 0.0, 1.0, 1.0, 0.5], dtype=st.e.dtype, device=st.e.device)
        tau, dt, keep1, weight1, keep2, weight2 = scalars.unbind()
        tau_new = tau + dt
        c0, p0 = self.conserved_of(st), (st.pixx, st.pixy, st.piyy)
        out = self._compiled(self, *_distinct(tau, *_fields(st), prev.ux, prev.uy, prev2.ux, prev2.uy, *c0, *p0, *c0,
                                              *p0, keep1, weight1, dt, tau_new))
        c1, p1 = out[6:9], out[9:12]
        out = self._compiled(self, *_distinct(tau_new, *out[:6], st.ux, st.uy, prev.ux, prev.uy, *c1, *p1, *c0, *p0,
                                              keep2, weight2, dt, tau_new))
        return FluidState(st.tau + self.cfg.dtau, *out[:6])

    def advance(self, st: FluidState, prev: FluidState, prev2: FluidState) -> FluidState:
        """The eager step (see step); st.tau may be a float or a 0-d tensor."""
        dt = self.cfg.dtau
        tau_new = st.tau + dt
        c0, p0 = self.conserved_of(st), (st.pixx, st.pixy, st.piyy)
        s1, c1, p1 = self.heun_stage(st, prev, prev2, (c0, p0), (c0, p0), 0.0, 1.0, dt, tau_new)
        s2, _, _ = self.heun_stage(s1, st, prev, (c1, p1), (c0, p0), 1.0, 0.5, dt, tau_new)
        return s2

    def heun_stage(self, st: FluidState, prev: FluidState, prev2: FluidState, current, base, keep, weight, dt,
                   tau_new):
        """One stage of Heun's step from st (conserved and shear fields `current`, those at the step's start
        `base`) to tau_new: new = weight (keep base + current + dt rhs(st)). Stage 1 is (keep, weight) = (0, 1):
        current + dt k1; stage 2 is (1, 0.5): (base + current + dt k2) / 2, the same arithmetic in the same order
        either way. Returns the new state and its conserved and shear fields (before the inversion and the
        regulator; stage 2 needs them)."""
        dudt = tuple((3 * fa - 4 * fb + fc) / (2 * dt) for fa, fb, fc in
                     ((st.ut, prev.ut, prev2.ut), (st.ux, prev.ux, prev2.ux), (st.uy, prev.uy, prev2.uy)))
        k_cons, k_pis = self.rhs(st, dudt)
        (cons, pis), (base_cons, base_pis) = current, base
        new_cons = tuple(weight * (keep * b + c + dt * k) for b, c, k in zip(base_cons, cons, k_cons))
        new_pis = tuple(weight * (keep * b + q + dt * k) for b, q, k in zip(base_pis, pis, k_pis))
        return self._update(st, new_cons, new_pis, tau_new), new_cons, new_pis

    def initial_history(self, st: FluidState) -> tuple[FluidState, FluidState]:
        """States at tau - dtau and tau - 2 dtau, linearly extrapolated back from one Euler step (for d_tau u)."""
        dt = self.cfg.dtau
        zero = (torch.zeros_like(st.e),) * 3
        kc, kp = self.rhs(st, zero)
        c1 = tuple(c + dt * k for c, k in zip(self.conserved_of(st), kc))
        p1 = tuple(q + dt * k for q, k in zip((st.pixx, st.pixy, st.piyy), kp))
        fwd = self._update(st, c1, p1, st.tau + dt)
        prev = replace(st, tau=st.tau - dt, ux=2 * st.ux - fwd.ux, uy=2 * st.uy - fwd.uy)
        prev2 = replace(st, tau=st.tau - 2 * dt, ux=3 * st.ux - 2 * fwd.ux, uy=3 * st.uy - 2 * fwd.uy)
        return prev, prev2


def _fields(st: FluidState) -> tuple[torch.Tensor, ...]:
    return st.e, st.ux, st.uy, st.pixx, st.pixy, st.piyy


def _distinct(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """The tensors with each repeat of one replaced by a copy: dynamo guards on which inputs are the same tensor,
    so stage 1 (shear fields given as state, current and base) and stage 2 would otherwise compile two graphs."""
    seen: set[int] = set()
    out = []
    for t in tensors:
        out.append(t.clone() if id(t) in seen else t)
        seen.add(id(t))
    return out


def _stage_fields(solver: Solver, tau: torch.Tensor, e, ux, uy, pixx, pixy, piyy, prev_ux, prev_uy, prev2_ux, prev2_uy,
                  cons_t, cons_x, cons_y, pixx_c, pixy_c, piyy_c, base_t, base_x, base_y, pixx_b, pixy_b, piyy_b,
                  keep: torch.Tensor, weight: torch.Tensor, dt: torch.Tensor, tau_new: torch.Tensor):
    """Solver.heun_stage on bare tensors (tau, keep, weight, dt, tau_new 0-d tensors), the function torch.compile traces
    once and Solver.step calls for both stages: the solver is an argument (dynamo guards on the values it reads, so
    every batch's solver of one shape reuses the compiled code). Of the earlier states only u^x, u^y enter (through
    d_tau u). Returns the new state's six fields, then its conserved and shear fields.

    One stage, not the whole step, is compiled: the whole step fused into a single C++ function of ~25,000 lines,
    which g++ 12.2 crashed on for some grid shapes (internal compiler error in its loop unrolling) and took twice as
    long to build."""
    st = FluidState(tau, e, ux, uy, pixx, pixy, piyy)
    prev = FluidState(tau, e, prev_ux, prev_uy, pixx, pixy, piyy)
    prev2 = FluidState(tau, e, prev2_ux, prev2_uy, pixx, pixy, piyy)
    current = ((cons_t, cons_x, cons_y), (pixx_c, pixy_c, piyy_c))
    base = ((base_t, base_x, base_y), (pixx_b, pixy_b, piyy_b))
    new, cons, pis = solver.heun_stage(st, prev, prev2, current, base, keep, weight, dt, tau_new)
    return *_fields(new), *cons, *pis


_COMPILED_STEPS: dict = {}


def compiled_step() -> Callable:
    """_stage_fields through torch.compile, one per backend for the process (runtime.COMPILE_BACKEND); the batch
    size may vary (a second shape compiles a size-generic version)."""
    from hicgen.engine import runtime

    backend = runtime.COMPILE_BACKEND
    if backend not in _COMPILED_STEPS:
        _COMPILED_STEPS[backend] = runtime.compile_function(_stage_fields, "the hydro time step", dynamic=None)
    return _COMPILED_STEPS[backend]


def relaxation_substeps(dtau: float, e0: torch.Tensor, eta_s: float | torch.Tensor, eos: EOS) -> int:
    """Parts to cut the time step dtau into so that it does not exceed the shortest shear relaxation time
    tau_pi = 5 (eta/s) hbarc / T of the batch (viscous events, hottest cell of e0 (B, Ny, Nx) at the start; T only
    falls later). The relaxation term -pi/tau_pi is stiff and updated explicitly: Heun's step is stable only for
    dtau < 2 tau_pi, so at small eta/s (0.025 with T = 0.6 GeV and dtau = 0.1 fm) the shear oscillates up to the
    regulator and spoils the flow and the energy balance. A whole number of parts keeps the set of step sizes small
    (a compiled step is traced once per size) and leaves batches with tau_pi >= dtau exactly as they were."""
    eta = torch.as_tensor(eta_s, dtype=e0.dtype, device=e0.device).reshape(-1)
    t_max = eos.temperature(e0.flatten(1).amax(1)).reshape(-1)
    viscous = torch.broadcast_to(eta > 0, t_max.shape)
    if not bool(viscous.any()):
        return 1
    tau_pi = (5.0 * torch.broadcast_to(eta, t_max.shape) * HBARC / t_max)[viscous].min().item()
    return max(1, math.ceil(dtau / tau_pi - 1e-9))


def evolve(
    solver: Solver,
    state: FluidState,
    tau_end: float | None = None,
    stop: Callable[[FluidState], bool] | None = None,
    observers: tuple[Callable[[FluidState, FluidState], None], ...] = (),
    max_steps: int = 100000,
) -> FluidState:
    """Step until tau_end or until stop(state) is true; each observer sees (old, new) after every step."""
    prev, prev2 = solver.initial_history(state)
    for _ in range(max_steps):
        if tau_end is not None and state.tau >= tau_end - 1e-9:
            break
        if stop is not None and stop(state):
            break
        new = solver.step(state, prev, prev2)
        for obs in observers:
            obs(state, new)
        prev2, prev, state = prev, state, new
    return state
