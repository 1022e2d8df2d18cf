"""Cooper-Frye particlization of a boost-invariant surface: smooth dN/(dy pT dpT dphi) with shear delta-f.

E dN/d^3p = g/(2 pi)^3 sum_elements p^mu dsigma_mu (f0 + delta f),  f0 = 1/(exp(p.u/T) -+ 1) expanded as
sum_n (+-1)^(n+1) exp(-n p.u/T),  delta f = f0 (1 +- f0) p^mu p^nu pi_mu_nu / (2 T^2 (e + p))  (Grad/14-moment
form, e.g. Teaney PRC 68 (2003) 034913), with f0(1 +- f0) = sum_n (+-1)^(n+1) n exp(-n p.u/T).

Boost invariance: the integral over space-time rapidity eta_s (equivalently over y - eta_s) is done in closed
form with modified Bessel functions, int dxi cosh^k(xi) exp(-z cosh xi): 2 K0, 2 K1, K0 + K2, (3 K1 + K3)/2 for
k = 0..3 (sinh^2 = cosh^2 - 1), so dN/dy is independent of y (the |y| < 0.5 window holds one unit of it).
Bessel functions: torch.special's exponentially scaled K0, K1 (batched on any device), K2 and K3 by recurrence.

The phi dependence is written on the basis {1, c, s, c^2, cs, s^2, c^3, c^2 s, c s^2, s^3} (c = cos phi,
s = sin phi) times exp(n pT u_perp . phat / T), so the sum over elements is one batched matrix product per n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hicgen.truth.hydro.eos import EOS, HBARC
from hicgen.truth.hydro.freezeout import Surface
from hicgen.truth.hydro.solver import shear_components


@dataclass(frozen=True)
class Species:
    name: str
    mass: float  # GeV (PDG 2024)
    degeneracy: int
    statistics: int  # +1 Bose, -1 Fermi
    terms: int  # terms kept in the quantum-statistics expansion


# pi+, K+, p; the antiparticles have the same spectra at zero chemical potential.
# Terms: the (n+1)-th term of a pion sum is < 2% of the first only in the lowest pT bins (m_pi/T ~ 1);
# for kaons and protons exp(-m/T) < 0.04 so one term is exact to better than 0.1%.
CHARGED = (
    Species("pi+", 0.13957, 1, +1, 4),
    Species("K+", 0.49368, 1, +1, 2),
    Species("p", 0.93827, 2, -1, 1),
)


# surface elements per chunk of the element sums: on a CPU the float32 factors of 512 elements (10 MB for 79 pT x 64
# phi) stay closer to the cache, and a batch's sums ran 1.25x as fast as with 2048 eagerly, 1.07x compiled (2-core
# VM, docs/hydro.md); on CUDA larger chunks mean fewer kernel launches
ELEMENT_CHUNK = {"cpu": 512, "cuda": 2048}


def _bessel_k_scaled(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """exp(z) K_nu(z) for nu = 0..3."""
    k0 = torch.special.scaled_modified_bessel_k0(z)
    k1 = torch.special.scaled_modified_bessel_k1(z)
    k2 = k0 + 2.0 / z * k1
    k3 = k1 + 4.0 / z * k2
    return k0, k1, k2, k3


def _phi_basis(phi: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(phi), torch.sin(phi)
    return torch.stack([torch.ones_like(c), c, s, c * c, c * s, s * s, c**3, c * c * s, c * s * s, s**3])  # (10, L)


def _coefficients(P: torch.Tensor, Dx: torch.Tensor, Dy: torch.Tensor, shear: dict | None, n: int,
                  z: torch.Tensor) -> torch.Tensor:
    """Coefficients (10, E, K) of the phi basis for one statistics term n, with exp(z) K_nu(z) for the eta_s integral."""
    k0, k1, k2, k3 = _bessel_k_scaled(z)
    i0, i1, i2, i3 = 2 * k0, 2 * k1, k0 + k2, 0.5 * (3 * k1 + k3)
    coef = [P * i1, Dx * i0, Dy * i0] + [torch.zeros_like(P)] * 7  # ideal part
    if shear is not None:
        A0, Bx, By, C0 = shear["A0"], shear["Bx"], shear["By"], shear["C0"]
        Cxx, Cxy, Cyy = shear["Cxx"], shear["Cxy"], shear["Cyy"]
        g = n * shear["norm"][:, None]
        coef[0] = coef[0] + g * (P * (A0 * i3 + C0 * i1))
        coef[1] = coef[1] + g * (P * Bx * i2 + Dx * (A0 * i2 + C0 * i0))
        coef[2] = coef[2] + g * (P * By * i2 + Dy * (A0 * i2 + C0 * i0))
        coef[3] = coef[3] + g * (P * Cxx + Dx * Bx) * i1
        coef[4] = coef[4] + g * (P * Cxy + Dx * By + Dy * Bx) * i1
        coef[5] = coef[5] + g * (P * Cyy + Dy * By) * i1
        coef[6] = coef[6] + g * Dx * Cxx * i0
        coef[7] = coef[7] + g * (Dx * Cxy + Dy * Cxx) * i0
        coef[8] = coef[8] + g * (Dx * Cyy + Dy * Cxy) * i0
        coef[9] = coef[9] + g * Dy * Cyy * i0
    return torch.stack(coef, 0)


def _shear_terms(pt: torch.Tensor, mt: torch.Tensor, pi: dict, temp: torch.Tensor, w: torch.Tensor) -> dict:
    """p^mu p^nu pi_mu_nu split by powers of cosh(eta_s) and of (cos phi, sin phi), per (element, pT): (E, K)."""
    return {"norm": 1.0 / (2 * temp * temp * w),  # with pi in GeV/fm^3 and w in GeV/fm^3: GeV^-2
            "A0": (mt * mt)[None, :] * (pi["tt"] + pi["s"])[:, None],
            "Bx": -2 * (mt * pt)[None, :] * pi["tx"][:, None], "By": -2 * (mt * pt)[None, :] * pi["ty"][:, None],
            "C0": -(mt * mt)[None, :] * pi["s"][:, None], "Cxx": (pt * pt)[None, :] * pi["xx"][:, None],
            "Cxy": 2 * (pt * pt)[None, :] * pi["xy"][:, None], "Cyy": (pt * pt)[None, :] * pi["yy"][:, None]}


def species_spectra(surf: Surface, eos: EOS, pt: torch.Tensor, phi: torch.Tensor, species: tuple[Species, ...],
                    delta_f: bool = True, chunk: int | None = None, compile: bool = False) -> torch.Tensor:
    """E dN/d^3p = dN/(dy pT dpT dphi) [GeV^-2] of each species summed over `surf` (one event): shape (S, K, L).

    pt (K,) [GeV], phi (L,) [rad]. Elements go in chunks of `chunk` (None: ELEMENT_CHUNK of the device; memory
    ~ 2 * chunk * K * L * 4 bytes), each one's factors from chunk_factors; compile=True runs that through
    torch.compile (one compilation for all chunk sizes).
    """
    dtype, dev = pt.dtype, pt.device
    chunk = ELEMENT_CHUNK.get(dev.type, ELEMENT_CHUNK["cuda"]) if chunk is None else chunk
    out = torch.zeros(len(species), len(pt), len(phi), dtype=dtype, device=dev)
    if len(surf) == 0:
        return out
    factors = compiled_chunk_factors() if compile else chunk_factors
    if compile:
        eos.pressure(surf.e[:1])  # builds the EOS tables on this device outside the traced code
    basis = _phi_basis(phi)  # (10, L)
    for lo in range(0, len(surf), chunk):
        sl = slice(lo, lo + chunk)
        base, coefs = factors(surf.e[sl], surf.ux[sl], surf.uy[sl], surf.pixx[sl], surf.pixy[sl], surf.piyy[sl],
                              surf.dsig_t[sl], surf.dsig_x[sl], surf.dsig_y[sl], pt, phi, eos, species, delta_f)
        power = base
        for n, coef in enumerate(coefs, 1):
            if n > 1:
                power = power * base
            active = [j for j, sp in enumerate(species) if sp.terms >= n]
            acc = torch.bmm(coef, power).to(dtype)  # (K, 10 * S_n, L): sum over elements
            acc = (acc.view(len(pt), len(active), 10, len(phi)) * basis[None, None]).sum(2)  # (K, S_n, L)
            for col, j in enumerate(active):
                out[j] += species[j].statistics ** (n + 1) * acc[:, col]
    deg = torch.tensor([sp.degeneracy for sp in species], dtype=dtype, device=dev)
    return out * deg[:, None, None] / (2 * math.pi) ** 3 / HBARC**3


def chunk_factors(e, ux, uy, pixx, pixy, piyy, dst, dsx, dsy, pt: torch.Tensor, phi: torch.Tensor, eos: EOS,
                  species: tuple[Species, ...], delta_f: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The two factors of the element sums of one chunk of surface elements (fields (E,)), as float32:
    base (K, E, L) and, per statistics term n, the coefficients (K, 10 * S_n, E) of the species with that term.

    The phi-dependent factor of term n is exp(n pT (u_perp . phat - |u_perp|) / T) = base^n with base <= 1, the
    same for every species: one exponential per (element, pT, phi) serves all species and terms (powers by
    multiplication); the species- and n-dependent rest, exp(n (pT |u_perp| - mT u^tau) / T) <= 1, goes into the
    (element, pT) coefficients. species_spectra sums over elements with batched float32 matrix products (~1e-6
    relative), which stay outside this function: a compiled reduction was slower than the library's bmm.
    """
    cphi, sphi = torch.cos(phi), torch.sin(phi)
    mts = [torch.sqrt(pt * pt + sp.mass**2) for sp in species]  # (K,) each
    temp = eos.temperature(e)
    ut = torch.sqrt(1 + ux * ux + uy * uy)
    uperp = torch.sqrt(ux * ux + uy * uy)
    pi = shear_components(ux, uy, pixx, pixy, piyy)
    proj = (ux[:, None] * cphi + uy[:, None] * sphi - uperp[:, None]).to(torch.float32)  # (E, L), <= 0
    a = (pt[None, :] / temp[:, None]).T.to(torch.float32)  # (K, E)
    base = (a[:, :, None] * proj[None]).exp_()  # (K, E, L)
    w = e + eos.pressure(e)
    Dx = pt[None, :] * dsx[:, None]  # p^mu dsigma_mu pieces per (element, pT), (E, K)
    Dy = pt[None, :] * dsy[:, None]
    P = [mt[None, :] * dst[:, None] for mt in mts]
    shear = [_shear_terms(pt, mt, pi, temp, w) if delta_f else None for mt in mts]
    coefs = []
    for n in range(1, max(sp.terms for sp in species) + 1):
        rows = []
        for j in (j for j, sp in enumerate(species) if sp.terms >= n):
            z = n * mts[j][None, :] * ut[:, None] / temp[:, None]  # (E, K)
            rest = torch.exp(n * pt[None, :] * uperp[:, None] / temp[:, None] - z)  # <= 1
            rows.append(_coefficients(P[j], Dx, Dy, shear[j], n, z) * rest)
        coefs.append(torch.cat(rows, 0).permute(2, 0, 1).to(torch.float32))  # (K, 10 * S_n, E)
    return base, coefs


_COMPILED_CHUNKS: dict = {}


def compiled_chunk_factors():
    """chunk_factors through torch.compile (runtime.COMPILE_BACKEND), dynamic in the number of elements, one per
    backend for the process."""
    from hicgen.engine import runtime

    backend = runtime.COMPILE_BACKEND
    if backend not in _COMPILED_CHUNKS:
        _COMPILED_CHUNKS[backend] = runtime.compile_function(chunk_factors, "the Cooper-Frye sum", dynamic=True)
    return _COMPILED_CHUNKS[backend]


def element_spectra(surf: Surface, eos: EOS, pt: torch.Tensor, phi: torch.Tensor, species: Species,
                    delta_f: bool = True, chunk: int | None = None) -> torch.Tensor:
    """species_spectra for one species: shape (K, L)."""
    return species_spectra(surf, eos, pt, phi, (species,), delta_f, chunk)[0]


def charged_spectrum(surf: Surface, eos: EOS, n_events: int, pt: torch.Tensor, phi: torch.Tensor,
                     delta_f: bool = True, species: tuple[Species, ...] = CHARGED, compile: bool = False) -> torch.Tensor:
    """Per-event, per-species spectra (B, S, K, L) of the particles in `species` (antiparticles not included)."""
    out = torch.zeros(n_events, len(species), len(pt), len(phi), dtype=pt.dtype, device=pt.device)
    for b in range(n_events):
        out[b] = species_spectra(surf.select(surf.event == b), eos, pt, phi, species, delta_f, compile=compile)
    return out
