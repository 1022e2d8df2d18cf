"""Switching surface: energy conservation including the flux through the surface, and its normals."""

import torch

from hicgen.truth.hydro.eos import LatticeEOS
from hicgen.truth.hydro.freezeout import SurfaceFinder
from hicgen.truth.hydro.solver import FluidState, Grid, HydroConfig, Solver, evolve


def _blob(grid: Grid) -> torch.Tensor:
    x = grid.coords()
    yy, xx = torch.meshgrid(x, x, indexing="ij")
    e = 25 * torch.exp(-(xx**2 / 8 + yy**2 / 4)) + 10 * torch.exp(-((xx - 1.5) ** 2 + (yy + 1) ** 2))
    return e[None].clamp_min(1e-9)


def test_energy_conserved_including_surface_flux():
    eos, grid = LatticeEOS(), Grid(44, 0.3)
    e0 = _blob(grid)
    z = torch.zeros_like(e0)
    st = FluidState(0.6, e0, z, z.clone(), z.clone(), z.clone(), z.clone())
    finder = SurfaceFinder(grid, eos, 0.18, every=2)
    e_in = finder.energy_inside(st)
    solver = Solver(grid, eos, HydroConfig(eta_s=0.1, dtau=0.075))
    last = evolve(solver, st, stop=lambda s: bool((s.e <= 0.18).all()), observers=(finder,))
    finder.finish(last)
    surf = finder.surface()
    e_out = float(surf.energy_flux(eos).sum())
    balance = (e_out + float(finder.work[0]) + float(finder.energy_inside(last)[0])) / float(e_in[0]) - 1
    assert abs(balance) < 0.01, balance
    assert e_out > 0.3 * float(e_in[0])  # a real share of the energy leaves through the surface
    # closed surface: outward normals of the elongated blob sum to ~0 in x and y
    assert abs(float(surf.dsig_x.sum())) < 0.02 * float(surf.dsig_x.abs().sum())
    # elements sit on the isotherm e = e_sw
    assert torch.allclose(surf.e, torch.full_like(surf.e, 0.18), rtol=0.05)


def test_no_surface_when_everything_is_cold():
    eos, grid = LatticeEOS(), Grid(8, 0.5)
    e0 = torch.full((1, 8, 8), 0.05, dtype=torch.float64)
    z = torch.zeros_like(e0)
    finder = SurfaceFinder(grid, eos, 0.18)
    evolve(Solver(grid, eos, HydroConfig()), FluidState(0.6, e0, z, z, z, z, z), tau_end=0.8, observers=(finder,))
    assert len(finder.surface()) == 0
