"""Cooper-Frye: the Bessel-function closed form against direct quadrature over space-time rapidity."""

import math

import numpy as np
import pytest
import torch

from hicgen.truth.hydro.cooper_frye import CHARGED, Species, element_spectra
from hicgen.truth.hydro.eos import HBARC, LatticeEOS
from hicgen.truth.hydro.freezeout import Surface
from hicgen.truth.hydro.solver import shear_components


def _element(e, ux, uy, pixx, pixy, piyy, dst, dsx, dsy):
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return Surface(event=torch.tensor([0]), tau=t(5.0), x=t(0.0), y=t(0.0), dsig_t=t(dst), dsig_x=t(dsx),
                   dsig_y=t(dsy), e=t(e), ux=t(ux), uy=t(uy), pixx=t(pixx), pixy=t(pixy), piyy=t(piyy))


def _quadrature(surf: Surface, eos, species: Species, pt: float, phi: float, delta_f: bool) -> float:
    xi = np.linspace(-12, 12, 48001)
    e = surf.e
    temp = float(eos.temperature(e))
    w = float(e + eos.pressure(e))
    ux, uy = float(surf.ux), float(surf.uy)
    ut = math.sqrt(1 + ux * ux + uy * uy)
    pi = {k: float(v) for k, v in shear_components(surf.ux, surf.uy, surf.pixx, surf.pixy, surf.piyy).items()}
    mt = math.sqrt(pt * pt + species.mass**2)
    c, s = math.cos(phi), math.sin(phi)
    pu = mt * np.cosh(xi) * ut - pt * (c * ux + s * uy)
    pdsig = mt * np.cosh(xi) * float(surf.dsig_t) + pt * (c * float(surf.dsig_x) + s * float(surf.dsig_y))
    ex = np.exp(-pu / temp)
    f0 = ex / (1 - species.statistics * ex)
    f = f0
    if delta_f:
        ppi = (mt**2 * np.cosh(xi) ** 2 * pi["tt"] - 2 * mt * np.cosh(xi) * pt * (c * pi["tx"] + s * pi["ty"])
               + pt**2 * (c * c * pi["xx"] + 2 * c * s * pi["xy"] + s * s * pi["yy"]) + mt**2 * np.sinh(xi) ** 2 * pi["s"])
        f = f0 + f0 * (1 + species.statistics * f0) * ppi / (2 * temp**2 * w)
    return species.degeneracy / (2 * math.pi) ** 3 / HBARC**3 * np.trapezoid(pdsig * f, xi)


@pytest.mark.parametrize("delta_f", [False, True])
def test_closed_form_matches_quadrature(delta_f):
    eos = LatticeEOS()
    surf = _element(0.18, 0.7, -0.4, 0.01, -0.004, 0.006, 2.0, 0.8, -0.5)
    pt = torch.tensor([0.05, 0.5, 1.5], dtype=torch.float64)
    phi = torch.tensor([-2.0, 0.3, 1.1], dtype=torch.float64)
    for sp in CHARGED:
        exact_sp = Species(sp.name, sp.mass, sp.degeneracy, sp.statistics, 12)  # converged statistics sum
        got = element_spectra(surf, eos, pt, phi, exact_sp, delta_f)
        for i in range(3):
            for j in range(3):
                ref = _quadrature(surf, eos, exact_sp, float(pt[i]), float(phi[j]), delta_f)
                assert float(got[i, j]) == pytest.approx(ref, rel=1e-4), (sp.name, i, j)


def test_default_truncation_is_accurate():
    eos = LatticeEOS()
    surf = _element(0.18, 0.5, 0.2, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0)
    pt = torch.tensor([0.016, 0.3, 1.0], dtype=torch.float64)
    phi = torch.tensor([0.0], dtype=torch.float64)
    for sp in CHARGED:
        full = element_spectra(surf, eos, pt, phi, Species(sp.name, sp.mass, sp.degeneracy, sp.statistics, 12))
        assert torch.allclose(element_spectra(surf, eos, pt, phi, sp), full, rtol=0.02)


def test_all_species_at_once_equal_each_species_alone():
    """species_spectra shares one exponential between species and statistics terms; each species' block must be
    what that species alone gives, on a surface of many elements with flow and shear."""
    from hicgen.truth.hydro.cooper_frye import species_spectra

    rng = np.random.default_rng(2)
    n = 40
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    surf = Surface(event=torch.zeros(n, dtype=torch.long), tau=t(np.full(n, 5.0)), x=t(rng.normal(size=n)),
                   y=t(rng.normal(size=n)), dsig_t=t(rng.uniform(0.5, 2, n)), dsig_x=t(rng.normal(0, 0.5, n)),
                   dsig_y=t(rng.normal(0, 0.5, n)), e=t(np.full(n, 0.18)), ux=t(rng.normal(0, 0.6, n)),
                   uy=t(rng.normal(0, 0.6, n)), pixx=t(rng.normal(0, 0.01, n)), pixy=t(rng.normal(0, 0.01, n)),
                   piyy=t(rng.normal(0, 0.01, n)))
    eos = LatticeEOS()
    pt = torch.linspace(0.05, 2.0, 7, dtype=torch.float64)
    phi = torch.linspace(-3.0, 3.0, 5, dtype=torch.float64)
    together = species_spectra(surf, eos, pt, phi, CHARGED, chunk=16)
    for j, sp in enumerate(CHARGED):
        torch.testing.assert_close(together[j], element_spectra(surf, eos, pt, phi, sp), rtol=1e-5, atol=0)
    assert together[0].sum() > together[1].sum() > together[2].sum() > 0
