"""Resonance feed-down: the strong and electromagnetic decays of a hadron resonance gas, for the Cooper-Frye spectra.

Hadrons: pythia8mc's particle table (masses, spins and branching ratios from the PDG), every hadron of u, d and s
quarks with a pole mass below MASS_MAX, particles and antiparticles. A hadron decays when its mean proper decay
length c tau is below 1 cm (CTAU_PRIMARY_MM), ALICE's definition of primary particles: the daughters of strong and
electromagnetic decays count, those of weak decays (K0S, Lambda, Sigma+-, Xi, Omega) do not. The final charged
hadrons are pi+-, K+- and p, pbar (FINAL), as in the direct spectra. Decays at the pole mass (no spectral
function), flat n-body phase space in every channel but omega, phi -> pi+ pi- pi0, which take the vector-meson
matrix element |p+ x p-|^2 (as pythia's decayer does; benchmarks/decays_closure.py compares the two).

Kinematics (Sollfrank, Koch and Heinz, Z. Phys. C 52 (1991) 593): a parent of mass M whose daughter of mass m has
rest-frame momentum p* and energy E* gives

    E dN_d/d^3p = B M / (4 pi p*) int d^3P / E_P (E_P dN_R/d^3P) delta(p.P - M E*).

For boost-invariant parents the rapidity integral is done with the delta function: with A = M E* + pT PT cos(dphi)
and b = mT MT, int dY delta(b cosh Y - A) = 2 / sqrt(A^2 - b^2) where A > b. The kernel depends only on the
azimuth difference, so the daughter's Fourier harmonic n at pT is a linear map of the parent's harmonic n:

    dN_d/(dy pT dpT)_n = B M / (4 pi p*) int PT dPT H_n(pT, PT) dN_R/(dY PT dPT)_n,
    H_n = int dphi cos(n dphi) 2 / sqrt(A^2 - b^2).

H_n has inverse-square-root end points in cos(dphi); the substitution c = centre + half-width cos(theta) takes
them into the measure, so a Gauss-Chebyshev sum over theta is exact up to a smooth factor (decay_kernel). The PT
integral runs over the kinematic window of each pT with Gauss-Legendre nodes, the parent spectrum interpolated
between the points of the pT grid by 4-point Lagrange weights. Chains (K1 -> K* pi -> K pi pi) compose these
matrices: FeedDown holds, for each thermal species, the map from its spectrum to the final pi, K, p spectra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch

from hicgen.truth.hydro.cooper_frye import Species

MASS_MAX = 2.0  # GeV: the hadrons of the resonance gas (pythia8mc's light-flavour table ends near 2 GeV)
CTAU_PRIMARY_MM = 10.0  # mm: hadrons with a shorter mean proper decay length decay (ALICE's primary definition)
FINAL = (211, 321, 2212)  # |pid| of the final charged hadrons, in the order of cooper_frye.CHARGED
HARMONICS = 8  # azimuthal harmonics n = 0..7 carried through the decays
PHI_POINTS = 16  # azimuths of the thermal resonance spectra: their harmonics 0..7 (those above 8 alias onto them)
BOSE_TERMS_BELOW = 0.6  # GeV: lighter bosons keep two terms of the Bose sum (exp(-m/T) > 1.5 % at T = 0.143 GeV)


@dataclass(frozen=True)
class Channel:
    branching: float
    products: tuple[int, ...]  # pids
    masses: tuple[float, ...]  # GeV
    vector_to_three: bool = False  # omega, phi -> pi+ pi- pi0: |M|^2 ~ |p+ x p-|^2 (pythia's meMode 1), else flat


@dataclass(frozen=True)
class Hadron:
    pid: int
    name: str
    mass: float  # GeV, pole mass
    degeneracy: int  # 2J + 1
    statistics: int  # +1 Bose, -1 Fermi
    channels: tuple[Channel, ...]  # its decays when it decays (c tau < 1 cm), else ()


@lru_cache(maxsize=2)
def hadron_table(mass_max: float = MASS_MAX) -> dict[int, Hadron]:
    """Every light-flavour hadron below mass_max and its antiparticle, with the decays of those that decay."""
    from hicgen.errors import require

    pythia8mc = require("pythia8mc", "truth")
    data = pythia8mc.Pythia("", False).particleData
    table: dict[int, Hadron] = {}
    pid = data.nextId(1)
    while pid:
        entry = data.particleDataEntryPtr(pid)
        if entry.isHadron() and entry.heaviestQuark(pid) <= 3 and entry.m0() < mass_max:
            for sign in ((1, -1) if entry.hasAnti() else (1,)):
                table[sign * pid] = _hadron(data, entry, sign)
        pid = data.nextId(pid)
    return table


def _hadron(data, entry, sign: int) -> Hadron:
    channels = []
    if entry.tau0() < CTAU_PRIMARY_MM:  # pythia's tau0 is c tau in mm
        for k in range(entry.sizeChannels()):
            ch = entry.channel(k)
            products = tuple(ch.product(j) for j in range(ch.multiplicity()))
            masses = tuple(data.m0(p) for p in products)
            if ch.onMode() > 0 and ch.bRatio() > 0 and sum(masses) < entry.m0():  # open at the pole mass
                if sign < 0:  # the antiparticle's decays are the charge conjugates
                    products = tuple(-p if data.hasAnti(p) else p for p in products)
                channels.append(Channel(ch.bRatio(), products, masses, ch.meMode() == 1))
        total = sum(ch.branching for ch in channels)  # the branching ratios of the open channels, renormalised
        channels = [replace(ch, branching=ch.branching / total) for ch in channels]
    return Hadron(sign * entry.id(), entry.name(sign), entry.m0(),
                  entry.spinType(), -1 if entry.isBaryon() else 1, tuple(channels))


def two_body_momentum(mass: np.ndarray | float, m1: float, m2: np.ndarray | float) -> np.ndarray:
    """Rest-frame momentum [GeV] of a decay into masses m1 and m2 (0 below threshold)."""
    mass = np.asarray(mass, dtype=float)
    arg = (mass**2 - (m1 + np.asarray(m2)) ** 2) * (mass**2 - (m1 - np.asarray(m2)) ** 2)
    return np.sqrt(np.clip(arg, 0.0, None)) / (2 * mass)


@lru_cache(maxsize=8)
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    t, w = np.polynomial.legendre.leggauss(nodes)
    return (t + 1) / 2, w / 2


def _phase_space(mass: np.ndarray, products: tuple[float, ...], nodes: int) -> np.ndarray:
    """The integrated phase space of `products` at invariant masses `mass`, up to a constant factor:
    R_2(m) ~ q / m, and R_k(m) ~ (1 / m) int dm' m' p*(m; m_1, m') R_(k-1)(m') (dPhi_k = dPhi_2 dPhi_(k-1) dm'^2)."""
    if len(products) == 2:
        return two_body_momentum(mass, *products) / mass
    first, rest = products[0], products[1:]
    lo, hi = sum(rest), np.maximum(mass - first, sum(rest))
    t, w = _legendre(nodes)
    inner = lo + (hi - lo)[:, None] * t  # (N, nodes)
    weight = (hi - lo)[:, None] * w
    values = two_body_momentum(mass[:, None], first, inner) * _phase_space(inner.ravel(), rest, nodes).reshape(inner.shape)
    return (values * inner * weight).sum(1) / mass


def rest_frame_momenta(mass: float, masses: tuple[float, ...], index: int, nodes: int = 12,
                       vector_to_three: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nodes p* [GeV] and weights (sum 1) of the rest-frame momentum of product `index` of a parent of `mass`
    decaying into `masses` with flat phase space: one node for two bodies; for more, Gauss-Legendre nodes in the
    invariant mass m' of the others, weighted by p*(M; m, m') R(m') m' (their phase space).

    vector_to_three: a vector meson into three pseudoscalars (omega, phi -> 3 pi), |M|^2 ~ |p1 x p2|^2. With
    p1 + p2 + p3 = 0 that is the same for any pair: |p*|^2 q^2 sin^2(theta), q the momentum of the other two in
    their rest frame and theta its angle to p* (boost-invariant along p*), so at fixed m' the weight gains
    |p*|^2 q^2 (sin^2 averaged over the flat cos(theta))."""
    m, others = masses[index], masses[:index] + masses[index + 1:]
    if len(others) == 1:
        return two_body_momentum(mass, m, others[0])[None], np.ones(1)
    lo, hi = sum(others), mass - m
    t, w = _legendre(nodes)
    inner = lo + (hi - lo) * t
    p_star = two_body_momentum(mass, m, inner)
    weight = w * p_star * _phase_space(inner, others, nodes) * inner
    if vector_to_three:
        weight = weight * (p_star * two_body_momentum(inner, *others)) ** 2
    return p_star, weight / weight.sum()


def lagrange_weights(grid: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Weights (len(x), len(grid)) of 4-point Lagrange interpolation from values on `grid` (increasing) to x."""
    start = np.clip(np.searchsorted(grid, x) - 2, 0, len(grid) - 4)
    points = start[:, None] + np.arange(4)  # (X, 4)
    nodes = grid[points]
    weights = np.ones((len(x), 4))
    for j in range(4):
        for i in range(4):
            if i != j:
                weights[:, j] *= (x - nodes[:, i]) / (nodes[:, j] - nodes[:, i])
    out = np.zeros((len(x), len(grid)))
    out[np.arange(len(x))[:, None], points] = weights  # four distinct points per row
    return out


def _azimuthal_integrals(a: np.ndarray, b: np.ndarray, mass_e_star: float, harmonics: int, nodes: int) -> np.ndarray:
    """H_n = int dphi cos(n phi) 2 / sqrt(A^2 - b^2), A = M E* + a cos(phi), for arrays a = pT PT > 0, b = mT MT:
    shape (H,) + a.shape.

    In c = cos(phi) the integrand is 4 T_n(c) / sqrt((1 - c)(1 + c) a (c - c0) (A + b)) over [max(c0, -1), 1],
    c0 = (b - M E*) / a, with T_n the Chebyshev polynomials. Two of its end points, -1 and c0 (x1 < x2), can lie
    close together (a logarithmic peak), so the range is split at c_m = (x2 + 1) / 2: on [x2, c_m]
    c = x2 + (x2 - x1) sinh^2(v) takes 1 / sqrt((c - x1)(c - x2)) into the measure (2 dv), on [c_m, 1] c = 1 - w^2
    takes 1 / sqrt(1 - c) (2 dw); Gauss-Legendre nodes in v and in w then see smooth integrands."""
    t, w = _legendre(nodes)
    c0 = (b - mass_e_star) / a
    x1, x2 = np.minimum(c0, -1.0), np.maximum(c0, -1.0)
    open_ = x2 < 1 - 1e-9  # (an edge of the PT window, where the range in c shrinks to a point: weight 0)
    x2 = np.where(open_, x2, 0.0)  # a closed window: any finite nodes, weight 0
    gap = np.maximum(x2 - x1, 1e-14)
    c_m = (x2 + 1) / 2
    v_max = np.arcsinh(np.sqrt((c_m - x2) / gap))
    c_low = x2[..., None] + gap[..., None] * np.sinh(v_max[..., None] * t) ** 2
    w_max = np.sqrt(1 - c_m)
    c_high = 1 - (w_max[..., None] * t) ** 2
    big = lambda c: mass_e_star + a[..., None] * c + b[..., None]  # A + b
    low = 2 * v_max[..., None] * w / np.sqrt((1 - c_low) * a[..., None] * big(c_low))
    high = 2 * w_max[..., None] * w / np.sqrt(a[..., None] * (c_high - x1[..., None]) * (c_high - x2[..., None])
                                              * big(c_high))
    c = np.concatenate([c_low, c_high], -1)
    weight = 4 * np.where(open_[..., None], np.concatenate([low, high], -1), 0.0)
    out, t_prev, t_n = [], np.ones_like(c), c
    for n in range(harmonics):
        out.append((weight * t_prev).sum(-1))
        t_prev, t_n = t_n, 2 * c * t_n - t_prev
    return np.stack(out)


def decay_kernel(mass: float, m: float, p_star: float, grid_in: np.ndarray, grid_out: np.ndarray,
                 harmonics: int = HARMONICS, nodes: int = 24, phi_nodes: int = 16) -> np.ndarray:
    """The map (H, K_out, K_in) from a boost-invariant parent's harmonics dN/(dY PT dPT)_n on the pT grid_in to its
    daughter's dN/(dy pT dpT)_n on grid_out, for one decay with rest-frame momentum p_star (branching ratio 1).
    Parents above grid_in's last point are left out.

    For each daughter pT the parents lie in PT in [lo, hi] (where c0 <= 1); H_n peaks logarithmically at PT_c
    where c0 = -1 (inside the window when E* pT < mT p*), so the window is split there and the nodes of each part
    crowd towards PT_c (PT = PT_c +- (edge - PT_c) s^2)."""
    e_star = math.sqrt(m * m + p_star * p_star)
    pt = np.asarray(grid_out, dtype=float)
    mt = np.sqrt(m * m + pt * pt)
    top = float(grid_in[-1])
    lo = np.clip(mass * (e_star * pt - mt * p_star) / m**2, 0.0, top)  # the window of PT reaching pT
    hi = np.clip(mass * (e_star * pt + mt * p_star) / m**2, 0.0, top)
    peak = np.clip(mass * (mt * p_star - e_star * pt) / m**2, lo, hi)
    t, w = _legendre(nodes)
    big_p = np.concatenate([peak[:, None] - (peak - lo)[:, None] * t**2, peak[:, None] + (hi - peak)[:, None] * t**2], 1)
    weight_p = np.concatenate([(peak - lo)[:, None] * 2 * t * w, (hi - peak)[:, None] * 2 * t * w], 1) * big_p
    a = np.maximum(pt[:, None] * big_p, 1e-300)
    b = mt[:, None] * np.sqrt(mass * mass + big_p**2)
    h = _azimuthal_integrals(a, b, mass * e_star, harmonics, phi_nodes)  # (H, K, 2Q)
    interp = lagrange_weights(np.asarray(grid_in, dtype=float), big_p.ravel()).reshape(*big_p.shape, len(grid_in))
    summed = np.matmul((h * weight_p).transpose(1, 0, 2), interp)  # (K_out, H, K_in): batched over the daughter pT
    return mass / (4 * math.pi * p_star) * summed.transpose(1, 0, 2)


def channel_kernel(mass: float, channel: Channel, index: int, grid_in: np.ndarray, grid_out: np.ndarray) -> np.ndarray:
    """decay_kernel averaged over the rest-frame momenta of product `index` of `channel` (rest_frame_momenta)."""
    p_star, weight = rest_frame_momenta(mass, channel.masses, index, vector_to_three=channel.vector_to_three)
    return sum(wk * decay_kernel(mass, channel.masses[index], pk, grid_in, grid_out) for pk, wk in zip(p_star, weight))


@dataclass
class FeedDown:
    """Final pi+-, K+-, p pbar spectra from the decays of the thermal resonances.

    species: the thermal species (one per mass and statistics, degeneracy 1) whose spectra go in, on the pT points
    `grid`; maps (S, 3, H, K_out, K): their harmonics -> the final classes' harmonics at the output points."""

    species: tuple[Species, ...]
    maps: np.ndarray
    grid: np.ndarray
    _device_maps: dict = field(default_factory=dict, repr=False)  # maps as a tensor per (device, dtype)

    def device_maps(self, like: torch.Tensor) -> torch.Tensor:
        """The maps on `like`'s device and dtype, copied there once (21 MB for the default table), not at every batch."""
        key = (like.device, like.dtype)
        if key not in self._device_maps:
            self._device_maps[key] = torch.as_tensor(self.maps, dtype=like.dtype, device=like.device)
        return self._device_maps[key]

    def spectra(self, thermal: torch.Tensor, phi_in: torch.Tensor, phi_out: torch.Tensor) -> torch.Tensor:
        """Feed-down (B, 3, K_out, L_out) [GeV^-2], summed over charges, from thermal spectra (B, S, K, L_in) at
        azimuths phi_in (uniform), evaluated at azimuths phi_out."""
        n = torch.arange(HARMONICS, dtype=thermal.dtype, device=thermal.device)
        angle_in = n[:, None] * phi_in[None, :]  # (H, L_in)
        re = torch.einsum("bskl,hl->bshk", thermal, torch.cos(angle_in)) / len(phi_in)
        im = torch.einsum("bskl,hl->bshk", thermal, torch.sin(angle_in)) / len(phi_in)
        maps = self.device_maps(thermal)
        re_out = torch.einsum("bshk,sfhok->bfho", re, maps)
        im_out = torch.einsum("bshk,sfhok->bfho", im, maps)
        angle_out = n[:, None] * phi_out[None, :]  # (H, L_out)
        twice = torch.where(n > 0, 2.0, 1.0).to(thermal.dtype)[:, None]  # c_n e^{i n phi} + c.c. for n > 0
        return (torch.einsum("bfho,hl->bfol", re_out, twice * torch.cos(angle_out))
                + torch.einsum("bfho,hl->bfol", im_out, twice * torch.sin(angle_out)))


def feed_down(pt_out: np.ndarray, mass_max: float = MASS_MAX) -> FeedDown:
    """FeedDown of the hadron_table for spectra at pt_out [GeV], the resonances on parent_grid(); cached per grid."""
    return _feed_down(tuple(float(x) for x in pt_out), mass_max)


@lru_cache(maxsize=2)
def _feed_down(pt_out: tuple[float, ...], mass_max: float) -> FeedDown:
    grid, out = parent_grid(), np.asarray(pt_out)
    table = hadron_table(mass_max)
    daughters = {p for h in table.values() for ch in h.channels for p in ch.products}
    kernels: dict[tuple, np.ndarray] = {}
    to_final: dict[int, np.ndarray] = {}  # pid -> (3, H, K_out, K): its spectrum -> final classes, for daughters
    maps: dict[tuple[float, int], np.ndarray] = {}
    for h in sorted(table.values(), key=lambda h: h.mass):  # daughters come before their parents
        if abs(h.pid) in FINAL:
            continue
        total = np.zeros((len(FINAL), HARMONICS, len(out), len(grid)))
        feeds = False
        for ch in h.channels:
            for j, product in enumerate(ch.products):
                final = abs(product) in FINAL
                if not final and product not in to_final:
                    continue  # no charged final hadron comes of it
                key = (round(h.mass, 6), ch.masses, ch.vector_to_three, j, final)
                if key not in kernels:  # final daughters at the output points, others on the parents' grid
                    kernels[key] = channel_kernel(h.mass, ch, j, grid, out if final else grid)
                if final:
                    total[FINAL.index(abs(product))] += ch.branching * kernels[key]
                else:
                    total += ch.branching * np.matmul(to_final[product], kernels[key])
                feeds = True
        if not feeds:
            continue
        if h.pid in daughters:
            to_final[h.pid] = total
        group = (round(h.mass, 6), h.statistics)
        maps[group] = maps.get(group, 0) + h.degeneracy * total
    light = sorted(g for g in maps if g[0] < MASS_NODES[0])
    species = tuple(Species(f"m{mass:.4f}{'b' if stat > 0 else 'f'}", mass, 1, stat,
                            2 if stat > 0 and mass < BOSE_TERMS_BELOW else 1) for mass, stat in light)
    node_maps = np.zeros((len(MASS_NODES),) + next(iter(maps.values())).shape)
    for (mass, _), m in maps.items():
        if mass >= MASS_NODES[0]:
            node_maps += np.einsum("i,...->i...", mass_weights(mass), m)
    species += tuple(Species(f"node{mass:.3f}", float(mass), 1, 1, 1) for mass in MASS_NODES)
    return FeedDown(species, np.concatenate([np.stack([maps[g] for g in light]), node_maps]), grid)


MASS_NODES = np.arange(1.1, MASS_MAX + 0.025, 0.05)  # GeV: thermal spectra of the heavier resonances at these masses
MASS_SLOPE_T = 0.14  # GeV: the exponential in mass taken out before interpolating (about the switching temperature)


def mass_weights(mass: float) -> np.ndarray:
    """Weights w_i over MASS_NODES with F(mass) ~ sum_i w_i F(m_i) for the Boltzmann spectrum of a resonance of that
    mass: 4-point Lagrange interpolation of F(m) e^(m / MASS_SLOPE_T), which takes out the spectra's steep, nearly
    exponential fall with mass. Above 1.1 GeV every resonance is a Boltzmann species (one term), so its spectrum is
    a smooth function of the mass alone: 19 nodes stand for the 58 masses there, and the resonances' Cooper-Frye
    sums, the cost of the decays, run over 29 species instead of 68. For cells at the switching temperature
    (0.143 GeV) moving with gamma up to 2 the interpolated spectra are within 3e-4 of the exact ones at every pT, for
    0.12-0.16 GeV within 1.2e-3 (tests/test_hydro_resonances.py); on a small hydro event the final spectra moved by
    at most 2.4e-7 of themselves."""
    w = lagrange_weights(MASS_NODES, np.array([mass]))[0]
    return w * np.exp(-(mass - MASS_NODES) / MASS_SLOPE_T)


PARENT_PT_MAX = 5.0  # GeV: the thermal resonances are computed up to here (beyond, ~e^-15 of their yield at T = 0.15)


def parent_grid() -> np.ndarray:
    """The pT points [GeV] of the thermal resonance spectra: 0.0625 GeV apart below 1 GeV, 0.125 GeV up to
    PARENT_PT_MAX. The decay kernels interpolate between them (4-point Lagrange): the spectra are smooth in PT, and
    the resonances' Cooper-Frye sums, which dominate the cost of the decays, run over 48 points instead of 88."""
    return np.concatenate([np.arange(0.03125, 1.0, 0.0625), np.arange(1.0625, PARENT_PT_MAX, 0.125)])


def decay_spectra(surf, eos, n_events: int, pt: torch.Tensor, phi: torch.Tensor, delta_f: bool = True,
                  compile: bool = False) -> torch.Tensor:
    """The pi+-, K+- and p pbar from the decays of every resonance emitted by the switching surface `surf`, summed
    over charges: (B, 3, K, L) dN/(dy pT dpT dphi) [GeV^-2] at pt (K,) and phi (L,), in the order of FINAL."""
    from hicgen.truth.hydro.cooper_frye import charged_spectrum

    fd = feed_down(pt.cpu().numpy(), MASS_MAX)
    grid = fd.grid
    phi_in = torch.as_tensor(-math.pi + (np.arange(PHI_POINTS) + 0.5) * 2 * math.pi / PHI_POINTS, dtype=pt.dtype,
                             device=pt.device)
    thermal = charged_spectrum(surf, eos, n_events, torch.as_tensor(grid, dtype=pt.dtype, device=pt.device), phi_in,
                               delta_f, species=fd.species, compile=compile).clamp_min(0.0)
    return fd.spectra(thermal, phi_in, phi)


def decays_description() -> str:
    """What the decays hold, for the file attribute resonance_decays."""
    from importlib.metadata import version

    table = hadron_table(MASS_MAX)
    return (f"pythia8mc {version('pythia8mc')} particle data: {len(table)} light-flavour hadrons below {MASS_MAX:g} GeV, "
            f"those with c tau < {CTAU_PRIMARY_MM / 10:g} cm decayed at their pole mass (flat phase space; omega, phi -> "
            "pi+ pi- pi0 with the vector-meson matrix element)")
