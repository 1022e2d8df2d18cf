"""The isothermal switching surface e = e_sw in (tau, x, y), found on the fly while the hydro runs.

Construction (cell-face, "staircase" surface; exact bookkeeping for Gauss's law): between two checkpoints
tau_a < tau_b (every `every` time steps) a cell is hot when e > e_sw.
* time-like elements: a cell that is hot at tau_a and not at tau_b (or the reverse) contributes
  dsigma_mu = (+-tau* dx dy, 0, 0) at the linearly interpolated crossing time tau*;
* space-like elements: neighbouring cells (i, i+1) of which exactly one is hot at the slab midpoint contribute
  dsigma_x = +-tau_mid (tau_b - tau_a) dy at the linearly interpolated crossing x* (outward: from hot to cold).
Fluid fields (e, u, pi) on each element are interpolated with the same weights. Normal covectors are per unit
space-time rapidity (fm^3); Cooper-Frye sums p^mu dsigma_mu over elements, so the faces of one cell add up to the
tilted normal of the smooth isotherm. Also integrates the longitudinal work  int dtau dx dy (p + tau^2 pi^{eta eta})
inside the hot region, so that the energy balance E(tau0) = E_out + W + E(tau_end) can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hicgen.truth.hydro.eos import EOS
from hicgen.truth.hydro.solver import FluidState, Grid, shear_components

FIELDS = ("e", "ux", "uy", "pixx", "pixy", "piyy")


@dataclass
class Surface:
    """Flat list of surface elements of a batch; every tensor has shape (M,) (event: index in the batch)."""

    event: torch.Tensor
    tau: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    dsig_t: torch.Tensor  # fm^3
    dsig_x: torch.Tensor
    dsig_y: torch.Tensor
    e: torch.Tensor
    ux: torch.Tensor
    uy: torch.Tensor
    pixx: torch.Tensor
    pixy: torch.Tensor
    piyy: torch.Tensor

    def __len__(self) -> int:
        return int(self.event.numel())

    def select(self, mask: torch.Tensor) -> "Surface":
        return Surface(**{k: v[mask] for k, v in self.__dict__.items()})

    def energy_flux(self, eos: EOS) -> torch.Tensor:
        """Energy per unit rapidity that crossed each element, T^{tau mu} dsigma_mu [GeV], shape (M,)."""
        p = eos.pressure(self.e)
        w = self.e + p
        ut = torch.sqrt(1 + self.ux**2 + self.uy**2)
        pi = shear_components(self.ux, self.uy, self.pixx, self.pixy, self.piyy)
        ttt = w * ut * ut - p + pi["tt"]
        ttx = w * ut * self.ux + pi["tx"]
        tty = w * ut * self.uy + pi["ty"]
        return ttt * self.dsig_t + ttx * self.dsig_x + tty * self.dsig_y


class SurfaceFinder:
    """Observer for hydro.solver.evolve: collects surface elements and the work term for a batch."""

    def __init__(self, grid: Grid, eos: EOS, e_sw: float, every: int = 2):
        self.grid, self.eos, self.e_sw, self.every = grid, eos, e_sw, every
        self._parts: list[dict[str, torch.Tensor]] = []
        self._anchor: FluidState | None = None
        self._count = 0
        self.work: torch.Tensor | None = None  # (B,) GeV per unit rapidity

    def hot(self, st: FluidState) -> torch.Tensor:
        return st.e > self.e_sw

    def energy_inside(self, st: FluidState) -> torch.Tensor:
        """Energy per unit rapidity in hot cells, tau int dx dy T^{tau tau} [GeV], shape (B,)."""
        p = self.eos.pressure(st.e)
        ut2 = 1 + st.ux**2 + st.uy**2
        pi = st.shear_all()
        ttt = (st.e + p) * ut2 - p + pi["tt"]
        return (ttt * self.hot(st)).sum((-1, -2)) * st.tau * self.grid.dx**2

    def __call__(self, old: FluidState, new: FluidState) -> None:
        if self._anchor is None:
            self._anchor = old
        # work term, trapezoid in tau over cells hot at either end
        dt = new.tau - old.tau
        w_old = (self.eos.pressure(old.e) + old.shear_all()["s"]) * self.hot(old)
        w_new = (self.eos.pressure(new.e) + new.shear_all()["s"]) * self.hot(new)
        work = 0.5 * dt * (w_old + w_new).sum((-1, -2)) * self.grid.dx**2
        self.work = work if self.work is None else self.work + work
        self._count += 1
        if self._count % self.every == 0:
            self._collect(self._anchor, new)
            self._anchor = new

    def finish(self, last: FluidState) -> None:
        """Close the last partial slab (call after evolve returns)."""
        if self._anchor is not None and last.tau > self._anchor.tau + 1e-12:
            self._collect(self._anchor, last)
            self._anchor = last

    def _collect(self, a: FluidState, b: FluidState) -> None:
        e_sw, dx = self.e_sw, self.grid.dx
        coords = self.grid.coords(a.e.device, a.e.dtype)
        bsz, ny, nx = a.e.shape
        fa = {k: getattr(a, k) for k in FIELDS}
        fb = {k: getattr(b, k) for k in FIELDS}
        # time-like pieces
        ha, hb = fa["e"] > e_sw, fb["e"] > e_sw
        cross = ha != hb
        if cross.any():
            idx = cross.nonzero(as_tuple=True)
            ea, eb = fa["e"][idx], fb["e"][idx]
            f = ((ea - e_sw) / (ea - eb)).clamp(0, 1)
            tau = a.tau + f * (b.tau - a.tau)
            sign = torch.where(ha[idx], 1.0, -1.0).to(a.e.dtype)
            part = {k: fa[k][idx] * (1 - f) + fb[k][idx] * f for k in FIELDS}
            part.update(event=idx[0], tau=tau, x=coords[idx[2]], y=coords[idx[1]], dsig_t=sign * tau * dx * dx,
                        dsig_x=torch.zeros_like(tau), dsig_y=torch.zeros_like(tau))
            self._parts.append(part)
        # space-like pieces at the slab midpoint
        tau_m = 0.5 * (a.tau + b.tau)
        dtau = b.tau - a.tau
        mid = {k: 0.5 * (fa[k] + fb[k]) for k in FIELDS}
        hot = mid["e"] > e_sw
        for dim, comp in ((-1, "x"), (-2, "y")):
            n = hot.shape[dim]
            h0, h1 = hot.narrow(dim, 0, n - 1), hot.narrow(dim, 1, n - 1)
            face = h0 != h1
            if not face.any():
                continue
            idx = face.nonzero(as_tuple=True)
            e0 = mid["e"].narrow(dim, 0, n - 1)[idx]
            e1 = mid["e"].narrow(dim, 1, n - 1)[idx]
            f = ((e0 - e_sw) / (e0 - e1)).clamp(0, 1)
            part = {k: mid[k].narrow(dim, 0, n - 1)[idx] * (1 - f) + mid[k].narrow(dim, 1, n - 1)[idx] * f
                    for k in FIELDS}
            sign = torch.where(h0[idx], 1.0, -1.0).to(a.e.dtype)  # outward normal points from hot to cold
            area = sign * tau_m * dtau * dx
            if comp == "x":
                x = coords[idx[2]] + f * dx
                y = coords[idx[1]]
                dsx, dsy = area, torch.zeros_like(area)
            else:
                x = coords[idx[2]]
                y = coords[idx[1]] + f * dx
                dsx, dsy = torch.zeros_like(area), area
            part.update(event=idx[0], tau=torch.full_like(f, tau_m), x=x, y=y, dsig_t=torch.zeros_like(f),
                        dsig_x=dsx, dsig_y=dsy)
            self._parts.append(part)

    def surface(self, device: torch.device | str = "cpu") -> Surface:
        """All elements collected so far; an empty Surface on `device` (the batch's) when there are none."""
        keys = ("event", "tau", "x", "y", "dsig_t", "dsig_x", "dsig_y") + FIELDS
        if not self._parts:
            empty = torch.zeros(0, dtype=torch.float64, device=device)
            return Surface(**{k: (empty.long() if k == "event" else empty) for k in keys})
        return Surface(**{k: torch.cat([p[k] for p in self._parts]) for k in keys})
