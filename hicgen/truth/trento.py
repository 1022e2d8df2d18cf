"""TRENTo-model initial entropy profiles (Moreland, Bernhard & Bass, PRC 92 (2015) 011901) in the trento HDF5 layout.

Model (per event): two Pb nuclei with nucleon positions from a Woods-Saxon density (minimum nucleon distance
d_min), impact parameter with P(b) ~ b, nucleon-nucleon collisions with probability 1 - exp(-sigma_gg T_pp(b))
where T_pp is the overlap of two Gaussian nucleons of width w and sigma_gg reproduces the inelastic cross section,
participant thickness T_A = sum_i gamma_i G_w(x - x_i) with gamma_i ~ Gamma(k, 1/k), reduced thickness
T_R = ((T_A^p + T_B^p)/2)^(1/p) (p = 0: sqrt(T_A T_B)), profile = norm * T_R on a grid.

File layout (as the real `trento` program writes with --output *.h5): datasets event_0, event_1, ... of shape
(G, G), rows y, columns x, cell centres at (i + 1/2) step - grid_max; attributes b, npart, mult, e2, e3, e4, e5
on each dataset. hicgen adds file attributes grid_step, grid_max and provenance.

Randomness: event i draws from numpy's generator seeded by (seed, i), so an event is the same at any batch size.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hicgen.errors import InputError
from hicgen.truth.trento_io import EVENT_ATTRS, check_trento_path, read_multiplicities

# fm^2: the measured Pb-Pb hadronic cross section at 5.02 TeV (ALICE, 7.67 b), to which hicgen's centrality
# classes refer (`sample_coverage`)
PBPB_HADRONIC_CROSS_SECTION = 767.0


# The norm for the chain with resonance decays (hicgen truth hydro --decays), tuned the same way: `python
# benchmarks/hydro.py tune-norm --events 2 --decays` measured 3989 at norm 181 (rescaled to 88.15), then 1928 at
# 88.15 (rescaled to 88.8) (docs/hydro.md, "Resonance decays").
NORM_WITH_DECAYS = 88.8


@dataclass
class TrentoConfig:
    """TRENTo parameters; defaults: Pb-Pb 5.02 TeV, Bernhard et al. Nature Phys. 15 (2019) 1113 (p, k, w, d_min)."""

    a_nucleons: int = 208
    radius: float = 6.62  # fm, Pb Woods-Saxon radius (De Vries et al., ADNDT 36 (1987) 495; trento's Pb)
    diffuseness: float = 0.546  # fm
    d_min: float = 1.27  # fm, minimum nucleon-nucleon distance (Bernhard 2019 MAP ~1.27 fm... d_min^3 = 2.0 fm^3)
    cross_section: float = 7.0  # fm^2, sigma_NN^inel at 5.02 TeV (70 mb)
    nucleon_width: float = 0.96  # fm, w
    fluctuation: float = 1.19  # k, gamma shape
    p: float = 0.0  # reduced-thickness generalised mean parameter
    # norm: tuned so 0-5% Pb-Pb (b < 3.5 fm) gives dN_ch/deta ~ 1943 (ALICE 5.02 TeV) with hicgen's hydro chain at its
    # defaults and eta/s = 0.1: `python benchmarks/hydro.py tune-norm --events 2 --norm 167` measured 1790 and
    # rescaled linearly to 167 * 1943/1790 = 181 (docs/hydro.md). Large because the chain emits direct pi/K/p only.
    norm: float = 181.0
    b_min: float = 0.0  # fm
    b_max: float | None = None  # fm; None: 2 (R + 3 a) + 6 w... = large enough that no collision happens beyond
    grid_max: float = 10.0  # fm, half-width of the grid (cell edges at +-grid_max)
    grid_step: float = 0.2  # fm

    def __post_init__(self) -> None:
        checks = [
            (self.a_nucleons >= 1, "the mass number must be >= 1"),
            (self.radius > 0 and self.diffuseness > 0, "the Woods-Saxon radius and diffuseness must be > 0"),
            (self.d_min >= 0, "--dmin must be >= 0 fm"),
            (self.cross_section > 0, "--cross-section must be > 0 fm^2"),
            (self.nucleon_width > 0, "--nucleon-width must be > 0 fm"),
            (self.fluctuation > 0, "--fluct (gamma shape k) must be > 0"),
            (self.norm > 0, "--norm must be > 0"),
            (self.b_min >= 0, "--b-min must be >= 0 fm"),
            (self.grid_max > 0 and self.grid_step > 0, "--grid-max and --grid-step must be > 0 fm"),
            (self.grid_step <= self.grid_max, "--grid-step must not exceed --grid-max"),
            (-10 <= self.p <= 10, "--p must lie in [-10, 10]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise InputError(msg)
        if self.b_max is not None and self.b_max <= self.b_min:
            raise InputError(f"--b-max ({self.b_max}) must exceed --b-min ({self.b_min})")
        if 4 * math.pi / 3 * (self.d_min / 2) ** 3 * self.a_nucleons > 0.5 * 4 * math.pi / 3 * self.radius**3:
            raise InputError(f"--dmin {self.d_min} fm is too large to pack {self.a_nucleons} nucleons; use a smaller value")

    @property
    def cells(self) -> int:
        return int(math.ceil(2 * self.grid_max / self.grid_step - 1e-9))

    @property
    def b_range(self) -> tuple[float, float]:
        b_max = self.b_max if self.b_max is not None else 2 * (self.radius + 3 * self.diffuseness) + 6 * self.nucleon_width
        return self.b_min, b_max


def sigma_gg(cross_section: float, width: float) -> float:
    """Parton-parton cross section [fm^2] for Gaussian nucleons: sigma_NN = 4 pi w^2 (gamma_E + ln u + E1(u)), u = sigma_gg/(4 pi w^2).

    From integrating 1 - exp(-sigma_gg T_pp(b)) over the plane with T_pp(b) = exp(-b^2/4w^2)/(4 pi w^2).
    """
    from scipy.optimize import brentq
    from scipy.special import exp1

    target = cross_section / (4 * math.pi * width**2)
    f = lambda lu: np.euler_gamma + lu + exp1(math.exp(lu)) - target  # noqa: E731
    return 4 * math.pi * width**2 * math.exp(brentq(f, -20.0, 50.0, xtol=1e-13))


def _woods_saxon_points(rng: np.random.Generator, n: int, cfg: TrentoConfig) -> np.ndarray:
    """(n, 3) points from the Woods-Saxon density (vectorised rejection sampling, envelope r^2 on [0, R + 10a])."""
    r_max = cfg.radius + 10 * cfg.diffuseness
    out = np.empty((0,))
    while out.size < n:
        r = r_max * rng.random(2 * n + 16) ** (1 / 3)
        keep = rng.random(r.size) < 1.0 / (1.0 + np.exp((r - cfg.radius) / cfg.diffuseness))
        out = np.concatenate([out, r[keep]])
    r = out[:n]
    cos_t = 2 * rng.random(n) - 1
    phi = 2 * math.pi * rng.random(n)
    sin_t = np.sqrt(1 - cos_t**2)
    return np.stack([r * sin_t * np.cos(phi), r * sin_t * np.sin(phi), r * cos_t], axis=1)


def sample_nucleus(rng: np.random.Generator, cfg: TrentoConfig) -> np.ndarray:
    """(A, 3) nucleon positions [fm]: Woods-Saxon, each candidate closer than d_min to an accepted one is replaced
    (candidates taken in the order drawn, from a pool of 2A, refilled with A more while fewer than A are taken)."""
    a = cfg.a_nucleons
    accepted = _accept_in_order(np.empty((0, 3)), _woods_saxon_points(rng, 2 * a, cfg), a, cfg.d_min)
    while len(accepted) < a:
        accepted = _accept_in_order(accepted, _woods_saxon_points(rng, a, cfg), a, cfg.d_min)
    return accepted


def _accept_in_order(accepted: np.ndarray, pool: np.ndarray, a: int, d_min: float) -> np.ndarray:
    """`accepted` (n, 3) and, in order, each point of `pool` that no point taken before it lies closer to than d_min
    (squared distance < d_min^2), until there are `a`. The pairs closer than d_min come from a k-d tree (scipy) and
    the rule then runs over their short lists: a numpy distance check per candidate took ~15 us, A = 208 of them
    per nucleus, which made the nuclei most of the time of `hicgen truth trento` and of sample_coverage."""
    from scipy.spatial import cKDTree

    points = np.concatenate([accepted, pool])
    earlier: list[list[int]] = [[] for _ in range(len(points))]
    if d_min > 0 and len(points) > 1:
        pairs = cKDTree(points).query_pairs(d_min * (1 + 1e-9), output_type="ndarray")  # i < j, a superset
        first, second = pairs[:, 0], pairs[:, 1]
        # the squared distance as the one-by-one check computed it, so that the choice is the same to the bit
        close = np.sum((points[first] - points[second]) ** 2, axis=1) < d_min**2
        for i, j in zip(first[close].tolist(), second[close].tolist()):
            earlier[j].append(i)
    taken = [True] * len(accepted) + [False] * len(pool)
    count = len(accepted)
    for k in range(len(accepted), len(points)):
        if count == a:
            break
        if not any(taken[i] for i in earlier[k]):
            taken[k] = True
            count += 1
    return points[np.array(taken, bool)]


@dataclass
class Participants:
    """One event's participants: transverse positions (n, 2) [fm], gamma weights (n,), nucleus label (n,) 0/1."""

    xy: np.ndarray
    weight: np.ndarray
    nucleus: np.ndarray
    b: float


def collide(rng: np.random.Generator, b: float, cfg: TrentoConfig, sgg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two nuclei at impact parameter b along x: transverse positions (A, 2) of each and the (A, A) boolean matrix
    of nucleon-nucleon collisions, each pair colliding with probability 1 - exp(-sigma_gg T_pp(distance))."""
    w2 = cfg.nucleon_width**2
    a = sample_nucleus(rng, cfg)[:, :2] + [b / 2, 0.0]
    c = sample_nucleus(rng, cfg)[:, :2] - [b / 2, 0.0]
    dist2 = np.sum((a[:, None, :] - c[None, :, :]) ** 2, axis=-1)
    prob = 1.0 - np.exp(-sgg * np.exp(-dist2 / (4 * w2)) / (4 * math.pi * w2))
    return a, c, rng.random(prob.shape) < prob


@dataclass(frozen=True)
class CrossSection:
    """Monte Carlo inelastic cross section of a TRENTo configuration in impact-parameter strata [fm^2]."""

    edges: np.ndarray  # (S + 1,) stratum edges in b [fm]
    sigma: np.ndarray  # (S,) cross section of each stratum [fm^2]
    variance: np.ndarray  # (S,) its binomial Monte Carlo variance [fm^4]

    def between(self, b_lo: float, b_hi: float) -> tuple[float, float]:
        """(cross section, its error) [fm^2] of b_lo <= b < b_hi; both must be stratum edges."""
        for b in (b_lo, b_hi):
            if not np.isclose(self.edges, b, atol=1e-9).any():
                raise ValueError(f"b = {b} fm is not a stratum edge; pass it in `cuts`")
        sel = (self.edges[:-1] >= b_lo - 1e-9) & (self.edges[1:] <= b_hi + 1e-9)
        return float(self.sigma[sel].sum()), float(np.sqrt(self.variance[sel].sum()))

    @property
    def total(self) -> tuple[float, float]:
        """(inelastic cross section, its error) [fm^2]."""
        return float(self.sigma.sum()), float(np.sqrt(self.variance.sum()))


def inelastic_cross_section(cfg: TrentoConfig, events_per_stratum: int = 64, stratum_width: float = 0.5,
                            seed: int = 0, cuts: tuple[float, ...] = ()) -> CrossSection:
    """sigma_inel = int 2 pi b P(b) db of the model, P(b) the probability that at least one nucleon-nucleon collision
    happens (the events `sample_event` keeps), over 0 <= b <= the default b_max (beyond it none happens).

    Stratified sampling: strata of `stratum_width` (plus edges at `cuts`), b uniform in area inside each, and the
    stratum's pi (b_hi^2 - b_lo^2) times its fraction of colliding events."""
    from dataclasses import replace

    top = replace(cfg, b_min=0.0, b_max=None).b_range[1]
    inner = [b for b in cuts if 0.0 < b < top]
    edges = np.unique(np.round(np.concatenate([np.arange(0.0, top, stratum_width), [top], inner]), 12))
    sgg = sigma_gg(cfg.cross_section, cfg.nucleon_width)
    sigma, variance = np.empty(len(edges) - 1), np.empty(len(edges) - 1)
    for s, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        rng = np.random.default_rng([seed, s])
        hits = sum(collide(rng, math.sqrt(lo**2 + (hi**2 - lo**2) * rng.random()), cfg, sgg)[2].any()
                   for _ in range(events_per_stratum))
        area, frac = math.pi * (hi**2 - lo**2), hits / events_per_stratum
        sigma[s], variance[s] = area * frac, area**2 * frac * (1 - frac) / events_per_stratum
    return CrossSection(edges, sigma, variance)


def sample_coverage(cfg: TrentoConfig, events_per_stratum: int = 64, seed: int = 0,
                    measured_cross_section: float | None = None) -> dict[str, float]:
    """Share of the cross section that a sample with cfg's b range covers, for centrality classes.

    Convention: a class c1-c2 % holds the events between the c1 and c2 % most central parts of the *measured* Pb-Pb
    hadronic cross section (PBPB_HADRONIC_CROSS_SECTION), as in the experiments' classes, so `percent` is the model's
    cross section in [b_min, b_max] over it. With Gaussian nucleons the model's own sigma_inel is larger (extra
    grazing events of a few participants, which experiments put beyond their 90 % anchor point); `percent_of_model`
    is the share of that one. Both from `inelastic_cross_section`. Other systems: pass their measured cross section."""
    if measured_cross_section is None:
        if cfg.a_nucleons != 208:
            raise InputError(f"only the Pb-Pb cross section is known here (the sample has A = {cfg.a_nucleons}); "
                             "give its centrality coverage with --coverage")
        measured_cross_section = PBPB_HADRONIC_CROSS_SECTION
    if cfg.b_min > 0:
        raise InputError(f"the sample starts at b = {cfg.b_min:g} fm; centrality classes need a sample from b = 0 (--b-min 0)")
    estimate = inelastic_cross_section(cfg, events_per_stratum, seed=seed, cuts=(cfg.b_range[1],))
    covered, covered_err = estimate.between(0.0, cfg.b_range[1])
    total, total_err = estimate.total
    beyond_var = max(total_err**2 - covered_err**2, 0.0)  # the strata above b_max, independent of those below
    share = covered / total
    return {"percent": 100.0 * covered / measured_cross_section,
            "percent_err": 100.0 * covered_err / measured_cross_section,
            "percent_of_model": 100.0 * share,
            "percent_of_model_err": 100.0 * math.sqrt((1 - share) ** 2 * covered_err**2 + share**2 * beyond_var) / total,
            "sigma_inel_fm2": total, "sigma_inel_err_fm2": total_err, "b_max_fm": cfg.b_range[1]}


def trento_config_of(path: str | os.PathLike) -> TrentoConfig:
    """The TrentoConfig a `hicgen truth trento` file was made with (its config_* attributes); InputError for other files."""
    import h5py

    path = check_trento_path(path)
    if path.is_dir() or path.suffix == ".dat":
        raise InputError(f"'{path}' is the real trento program's text output, which does not record the TRENTo "
                         "parameters it was made with; give its centrality coverage with --coverage")
    try:
        with h5py.File(path, "r") as f:
            stored = {k[len("config_"):]: f.attrs[k] for k in f.attrs if k.startswith("config_")}
    except OSError:
        raise InputError(f"'{path}' is not an HDF5 file; give a trento HDF5 file (hicgen truth trento --out ic.h5)") from None
    names = set(TrentoConfig.__dataclass_fields__)
    if not names <= set(stored):
        raise InputError(f"'{path}' does not record the TRENTo parameters it was made with (not a 'hicgen truth trento' "
                         "file); give its centrality coverage with --coverage")
    values = {k: (None if isinstance(v, str) and v == "none" else v.item() if hasattr(v, "item") else v)
              for k, v in stored.items() if k in names}
    return TrentoConfig(**values)


MIN_CALIBRATION_EVENTS = 100  # initial states of a centrality calibration: percentiles of fewer are too coarse


@dataclass(frozen=True)
class CentralityCalibration:
    """Centrality of initial states by their TRENTo multiplicity: the share [%] of a min-bias reference sample with a
    larger one (ties half), times the share of the measured Pb-Pb cross section the sample covers (sample_coverage),
    so that classes refer to the measured cross section as the experiments' do. The grazing events beyond it (a
    Gaussian-nucleon model's cross section is larger) get centralities above 100 %."""

    reference_mult: np.ndarray  # the reference sample's TRENTo multiplicities, finite
    coverage_percent: float
    source: str

    def centrality(self, mult: np.ndarray) -> np.ndarray:
        """Centrality [%] of initial states of TRENTo multiplicity `mult`; NaN where `mult` is NaN."""
        from hicgen.analysis.flow import centrality_percentile

        mult = np.asarray(mult, np.float64)
        percent = centrality_percentile(self.reference_mult, mult) * self.coverage_percent / 100.0
        return np.where(np.isfinite(mult), percent, np.nan)


def centrality_calibration(path: str | os.PathLike, coverage_percent: float | None = None) -> CentralityCalibration:
    """The calibration of a min-bias trento input (hicgen's, or the real program's with `coverage_percent` given):
    its events' TRENTo multiplicities, and the share of the measured cross section they cover (default: computed
    from the file's TRENTo parameters with sample_coverage, ~8 s on one core). InputError when the file cannot calibrate."""
    mult = read_multiplicities(path)
    mult = mult[np.isfinite(mult)]
    if mult.size < MIN_CALIBRATION_EVENTS:
        raise InputError(f"'{path}' gives the TRENTo multiplicity of {mult.size} initial states; a centrality "
                         f"calibration needs a min-bias sample of at least {MIN_CALIBRATION_EVENTS} "
                         "(hicgen truth trento --events 10000 --out mb.h5)")
    if coverage_percent is None:
        coverage_percent = sample_coverage(trento_config_of(path))["percent"]
    elif not 0 < coverage_percent <= 200:
        raise InputError(f"--coverage is the percent of the measured cross section the sample covers (0-200), got {coverage_percent:g}")
    return CentralityCalibration(np.sort(mult), float(coverage_percent), str(Path(path).resolve()))


def sample_event(seed: int, index: int, cfg: TrentoConfig, sgg: float) -> Participants:
    """Participants of event `index` from the generator seeded by (seed, index); redraws b until a collision occurs."""
    rng = np.random.default_rng([seed, index])
    b_lo, b_hi = cfg.b_range
    while True:
        b = math.sqrt(b_lo**2 + (b_hi**2 - b_lo**2) * rng.random())
        a, c, hit = collide(rng, b, cfg, sgg)
        part_a, part_c = hit.any(axis=1), hit.any(axis=0)
        if part_a.any():
            break
    xy = np.concatenate([a[part_a], c[part_c]])
    nucleus = np.concatenate([np.zeros(part_a.sum(), np.int8), np.ones(part_c.sum(), np.int8)])
    k = cfg.fluctuation
    weight = rng.gamma(k, 1.0 / k, size=len(xy))
    return Participants(xy, weight, nucleus, b)


def reduced_thickness(events: list[Participants], cfg: TrentoConfig, device: str | torch.device = "cpu") -> torch.Tensor:
    """norm * T_R on the grid for a batch: (B, G, G) float64, rows y, columns x, units of trento's 'entropy' [fm^-2].

    Separable Gaussians: T_A(x, y) = sum_i gamma_i g_i(x) g_i(y) / (2 pi w^2), one batched matrix product.
    """
    g = cfg.cells
    centres = (torch.arange(g, dtype=torch.float64, device=device) + 0.5) * cfg.grid_step - cfg.grid_max
    n_max = max(len(ev.xy) for ev in events)
    bsz = len(events)
    pos = torch.zeros(bsz, n_max, 2, dtype=torch.float64)
    wts = torch.zeros(bsz, 2, n_max, dtype=torch.float64)  # per nucleus weights (0 for padding / other nucleus)
    for i, ev in enumerate(events):
        n = len(ev.xy)
        pos[i, :n] = torch.from_numpy(ev.xy)
        for side in (0, 1):
            wts[i, side, :n] = torch.from_numpy(np.where(ev.nucleus == side, ev.weight, 0.0))
    pos, wts = pos.to(device), wts.to(device)
    w = cfg.nucleon_width
    gx = torch.exp(-((centres[None, None, :] - pos[..., 0:1]) ** 2) / (2 * w * w))  # (B, n, G)
    gy = torch.exp(-((centres[None, None, :] - pos[..., 1:2]) ** 2) / (2 * w * w))
    thick = torch.einsum("bsn,bny,bnx->bsyx", wts, gy, gx) / (2 * math.pi * w * w)  # (B, 2, G, G)
    ta, tb = thick[:, 0], thick[:, 1]
    if abs(cfg.p) < 1e-12:
        tr = torch.sqrt(ta * tb)
    else:
        tr = torch.where((ta > 0) & (tb > 0) | (cfg.p > 0),
                         (0.5 * (ta.clamp_min(1e-300) ** cfg.p + tb.clamp_min(1e-300) ** cfg.p)) ** (1 / cfg.p),
                         torch.zeros_like(ta))
    return cfg.norm * tr


def eccentricities(profiles: torch.Tensor, grid_step: float, orders=(2, 3, 4, 5)) -> torch.Tensor:
    """|sum r^n e^{i n phi} s| / sum r^n s about each profile's centre of mass; profiles (B, G, G) -> (B, len(orders))."""
    g = profiles.shape[-1]
    c = (torch.arange(g, dtype=profiles.dtype, device=profiles.device) - 0.5 * (g - 1)) * grid_step
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    tot = profiles.sum((-1, -2)).clamp_min(1e-300)
    xc = (profiles * xx).sum((-1, -2)) / tot
    yc = (profiles * yy).sum((-1, -2)) / tot
    x = xx - xc[:, None, None]
    y = yy - yc[:, None, None]
    r = torch.sqrt(x * x + y * y)
    phi = torch.atan2(y, x)
    out = []
    for n in orders:
        wn = profiles * r**n
        re = (wn * torch.cos(n * phi)).sum((-1, -2))
        im = (wn * torch.sin(n * phi)).sum((-1, -2))
        out.append(torch.sqrt(re * re + im * im) / wn.sum((-1, -2)).clamp_min(1e-300))
    return torch.stack(out, -1)


def generate(n_events: int, cfg: TrentoConfig, seed: int = 1, batch: int = 64, device: str = "cpu",
             start: int = 0, progress: Callable[[int], None] | None = None):
    """Yield (profiles (B, G, G) float64 numpy, attrs {name: (B,)}) batches for events start .. start+n_events-1."""
    sgg = sigma_gg(cfg.cross_section, cfg.nucleon_width)
    for lo in range(start, start + n_events, batch):
        idx = range(lo, min(lo + batch, start + n_events))
        events = [sample_event(seed, i, cfg, sgg) for i in idx]
        prof = reduced_thickness(events, cfg, device)
        ecc = eccentricities(prof, cfg.grid_step).cpu().numpy()
        attrs = {
            "b": np.array([ev.b for ev in events]),
            "npart": np.array([len(ev.xy) for ev in events], dtype=np.int64),
            "mult": (prof.sum((-1, -2)) * cfg.grid_step**2).cpu().numpy(),
        }
        for j, n in enumerate((2, 3, 4, 5)):
            attrs[f"e{n}"] = ecc[:, j]
        if progress is not None:
            progress(len(events))
        yield prof.cpu().numpy(), attrs


def nucleus_name(mass_number: int) -> str:
    """The element symbol hicgen writes for a nucleus of this mass number ('Pb' for 208), else 'A=<mass number>'."""
    from hicgen.io.hepmc import NUCLEI

    return next((name for name, (_, a) in NUCLEI.items() if a == mass_number), f"A={mass_number}")


def write_trento(path: str | os.PathLike, n_events: int, cfg: TrentoConfig, seed: int = 1, batch: int = 64,
                 device: str = "cpu", progress: Callable[[int], None] | None = None) -> Path:
    """Generate `n_events` into `path` (trento layout, written to a partial file, renamed when complete)."""
    import h5py

    from hicgen import __version__
    from hicgen.io.paths import partial_path

    path = Path(path)
    tmp = partial_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"grid_step": cfg.grid_step, "grid_max": cfg.grid_max, "generator": "hicgen trento",
                            "hicgen_version": __version__, "seed": seed, "format": "trento",
                            "projectile": nucleus_name(cfg.a_nucleons), "target": nucleus_name(cfg.a_nucleons),
                            "sigma_gg": sigma_gg(cfg.cross_section, cfg.nucleon_width)})
            f.attrs.update({f"config_{k}": ("none" if v is None else v) for k, v in asdict(cfg).items()})
            i = 0
            for prof, attrs in generate(n_events, cfg, seed, batch, device, progress=progress):
                for j in range(len(prof)):
                    ds = f.create_dataset(f"event_{i}", data=prof[j].astype(np.float32))
                    for key in EVENT_ATTRS:
                        ds.attrs[key] = attrs[key][j]
                    i += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
