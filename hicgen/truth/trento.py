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
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hicgen.errors import InputError

EVENT_ATTRS = ("b", "npart", "mult", "e2", "e3", "e4", "e5")
DEFAULT_GRID_STEP = 0.2  # fm: trento's default --grid-step, assumed for files that record no grid
# fm^2: the measured Pb-Pb hadronic cross section at 5.02 TeV (ALICE, 7.67 b), to which hicgen's centrality
# classes refer (`sample_coverage`)
PBPB_HADRONIC_CROSS_SECTION = 767.0


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
    """(A, 3) nucleon positions [fm]: Woods-Saxon, each candidate closer than d_min to an accepted one is replaced."""
    a = cfg.a_nucleons
    out = np.empty((a, 3))
    d2 = cfg.d_min**2
    pool = _woods_saxon_points(rng, 2 * a, cfg)
    n = j = 0
    while n < a:
        if j == len(pool):
            pool, j = _woods_saxon_points(rng, a, cfg), 0
        x = pool[j]
        j += 1
        if n == 0 or d2 == 0 or np.min(np.sum((out[:n] - x) ** 2, axis=1)) >= d2:
            out[n] = x
            n += 1
    return out


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

    from hicgen.io.paths import check_input

    path = check_input(path, "initial-condition")
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


@dataclass
class TrentoEvents:
    """Initial states read from a trento-layout file: profiles (N, G, G) float32 rows y, columns x."""

    profiles: np.ndarray
    attrs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,), NaN where a file lacks it
    grid_step: float = DEFAULT_GRID_STEP  # fm
    names: list[str] = field(default_factory=list)

    @property
    def grid_max(self) -> float:
        return 0.5 * self.grid_step * self.profiles.shape[-1]


def check_trento_path(path: str | os.PathLike, what: str = "initial-condition") -> Path:
    """An existing trento input: an HDF5 file, a folder of trento text files or one such file; else InputError."""
    from hicgen.io.paths import check_input

    path = Path(path)
    return path if path.is_dir() else check_input(path, what)


def read_trento(path: str | os.PathLike, grid_step: float | None = None, events: slice | None = None) -> TrentoEvents:
    """Read the events of a hicgen or real-trento file, in event-number order: HDF5 (event_0, event_1, ...) or the
    real program's text output (a folder of N.dat files, `trento --output DIR`, or one such file).

    The grid step comes from `grid_step` when given, else the file's grid_step attribute, else grid_max and the
    number of cells, else trento's default 0.2 fm (the real program records its grid in neither format).
    """
    with TrentoReader(path, grid_step, events) as reader:
        return reader.read(0, reader.n)


class TrentoReader:
    """The events of a trento-layout input (as read_trento), read block by block: the file is opened and its events
    listed once (the first HDF5 profile's shape checked), so a long input streams through constant memory.
    read(start, stop) checks the shapes and values of its block."""

    def __init__(self, path: str | os.PathLike, grid_step: float | None = None, events: slice | None = None) -> None:
        self.path = check_trento_path(path)
        self._h5 = None
        self._inflate: ThreadPoolExecutor | None = None
        file_step = None
        if self.path.is_dir() or self.path.suffix == ".dat":
            self.names = _text_files(self.path, events)
            self.shape = _read_text_block(self.names[:1], None)[0].shape[1:]
        else:
            self._h5, self.names, self.shape, file_step = _open_hdf5(self.path, events)
            self._inflate = _inflate_pool(self._h5, self.names)
        self.grid_step = grid_step if grid_step is not None else file_step or DEFAULT_GRID_STEP
        if not self.grid_step > 0:
            self.close()
            raise InputError(f"grid step must be > 0 fm, got {self.grid_step}")

    @property
    def n(self) -> int:
        return len(self.names)

    def narrow(self, lo: int, hi: int) -> None:
        """Keep only the events lo .. hi - 1 of those selected (a shard of them); read() counts from lo."""
        self.names = self.names[lo:hi]

    @property
    def grid_max(self) -> float:
        return 0.5 * self.grid_step * self.shape[-1]

    def read(self, start: int, stop: int) -> TrentoEvents:
        """Events start .. stop - 1 of the input; InputError for negative or non-finite profiles."""
        if self._h5 is not None:
            names = self.names[start:stop]
            prof, attrs = _read_hdf5_block(self._h5, names, self.shape, self._inflate)
        else:
            prof, attrs, names = _read_text_block(self.names[start:stop], self.shape)
        if not np.all(np.isfinite(prof)) or (prof < 0).any():
            raise InputError(f"'{self.path}': profiles contain negative or non-finite values; is it an entropy-density file?")
        return TrentoEvents(prof, attrs, self.grid_step, names)

    def close(self) -> None:
        if self._inflate is not None:
            self._inflate.shutdown(wait=True)
            self._inflate = None
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "TrentoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _select(names: list, events: slice | None, path: Path) -> list:
    if events is None:
        return names
    chosen = names[events]
    if not chosen:
        raise InputError(f"'{path}' has no events in the requested range (it holds {len(names)} events); lower --first or --events")
    return chosen


def _open_hdf5(path: Path, events: slice | None) -> tuple[Any, list[str], tuple[int, ...], float | None]:
    """(open h5py file, selected dataset names, profile shape, grid step recorded in the file or None) of a
    trento-layout HDF5 file; InputError for a file of another layout or a profile of another shape."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"'{path}' is not an HDF5 file; give a trento HDF5 file (hicgen truth trento --out ic.h5) or a "
                         "folder of trento text files") from None
    try:
        names = sorted((k for k in f.keys() if k.startswith("event_") and k[6:].isdigit()), key=lambda k: int(k[6:]))
        if not names:
            raise InputError(f"'{path}' has no datasets event_0, event_1, ...; give a trento HDF5 file")
        names = _select(names, events, path)
        shape = f[names[0]].shape  # every other event's is checked as its block is read (_read_hdf5_block)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise InputError(f"'{path}': {names[0]} has shape {shape}; trento profiles must be square (G, G)")
        file_step = None
        if "grid_step" in f.attrs:
            file_step = float(f.attrs["grid_step"])
        elif "grid_max" in f.attrs:
            file_step = 2 * float(f.attrs["grid_max"]) / shape[0]
    except BaseException:
        f.close()
        raise
    return f, names, shape, file_step


def _whole_chunk_deflate(event) -> bool:
    """Whether an HDF5 dataset (low-level h5py DatasetID) is stored as one chunk through the deflate filter alone:
    how the real trento program writes every event (chunk = whole grid, gzip 4)."""
    import h5py

    plist = event.get_create_plist()
    return (plist.get_layout() == h5py.h5d.CHUNKED and plist.get_chunk() == event.shape
            and plist.get_nfilters() == 1 and plist.get_filter(0)[0] == h5py.h5z.FILTER_DEFLATE)


def _inflate_pool(f, names: list[str]) -> ThreadPoolExecutor | None:
    """Threads that inflate the events of a file whose first event is one deflated chunk (real trento's HDF5), when
    the machine has two or more CPUs; None otherwise."""
    import h5py

    from hicgen.io.h5columns import compression_threads

    threads = compression_threads()
    if threads < 2 or not _whole_chunk_deflate(h5py.h5d.open(f.id, names[0].encode())):
        return None
    return ThreadPoolExecutor(threads, thread_name_prefix="hicgen-inflate")


def _inflate_into(out: np.ndarray, chunk: bytes, dtype: np.dtype, where: str) -> None:
    """Decompress one deflated chunk of `dtype` values into `out` (converted to its dtype)."""
    try:
        raw = zlib.decompress(chunk)
    except zlib.error as exc:
        raise InputError(f"{where}: the stored chunk does not inflate ({exc}); is the file damaged?") from None
    if len(raw) != out.size * dtype.itemsize:
        raise InputError(f"{where}: the stored chunk holds {len(raw)} bytes, not {out.size} values; is the file damaged?")
    out[...] = np.frombuffer(raw, dtype).reshape(out.shape)


def _read_event(event, out: np.ndarray, where: str) -> None:
    """HDF5's read of one event (low-level DatasetID) into `out`; InputError when its storage cannot be read."""
    import h5py

    try:
        event.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    except OSError as exc:  # e.g. a chunk that its filter cannot decode
        raise InputError(f"{where} cannot be read ({exc}); is the file damaged?") from None


def _read_hdf5_block(f, names: list[str], shape: tuple[int, ...],
                     inflate: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, dict]:
    """(profiles (B, G, G) float32, attributes) of the datasets `names` of an open trento-layout file.

    With `inflate`, an event stored as one deflated chunk is read raw (read_direct_chunk) and the block's chunks are
    then decompressed on those threads: zlib releases the GIL, HDF5's own filter does not, and inflating real
    trento's gzip-4 float64 events was most of the time of reading them (~350 of ~540 us an event)."""
    import h5py

    prof = np.empty((len(names),) + tuple(shape), np.float32)
    attrs = {k: np.full(len(names), np.nan) for k in EVENT_ATTRS}
    value = np.empty(8, np.float64)  # the read's buffer: value[0] is the attribute
    # value[0] before a read (NaN: an attribute without values reads as missing), and value[1]'s bits: a NaN with
    # a payload that no conversion to float64 produces
    unread = np.array([np.array(np.nan).view(np.int64), 0x7FF4DEADBEEF0001], np.int64)
    bits = value.view(np.int64)
    keys = [(k, k.encode()) for k in EVENT_ATTRS]
    origin = (0,) * len(shape)
    pending = []
    # h5py's low-level calls: its high-level objects cost ~20 us per dataset or attribute lookup, which made
    # reading (~0.8 ms per event) slower than a GPU samples spectra; these read ~3x faster.
    for i, name in enumerate(names):
        event = h5py.h5d.open(f.id, name.encode())
        # here, not on opening the file: checking every event there took ~20 us an event before the first
        # spectrum (20 s for 10^6 ICs); here ~6 us, on the reader thread, while the network works
        if event.shape != tuple(shape):
            raise InputError(f"'{f.filename}': {name} has shape {event.shape} but the file's first event has {tuple(shape)}")
        if inflate is not None and _whole_chunk_deflate(event) and event.get_storage_size():  # 0: never written
            mask, chunk = event.read_direct_chunk(origin)
            if mask:  # the filter was skipped for this chunk: HDF5 knows how to read it
                _read_event(event, prof[i], f"'{f.filename}' {name}")
            else:
                pending.append((prof[i], chunk, event.dtype, f"'{f.filename}' {name}"))
        else:
            _read_event(event, prof[i], f"'{f.filename}' {name}")
        for k, key in keys:
            try:
                attr = h5py.h5a.open(event, key)
            except KeyError:  # the file does not give it: NaN
                continue
            # Asking for its shape costs ~5 us, and h5py builds a memory type for every read unless given one
            # (~6 us): 95 us for an event's seven attributes. Here the shape is asked only of an attribute of more
            # than 8 bytes, which could overrun `value`; one of at most 8 bytes holds at most 8 values, and a second
            # value shows as value[1] overwritten: 51-54 us an event.
            try:
                size = attr.get_storage_size()
            except RuntimeError:  # h5py's error for 0 bytes: an attribute without values (h5py.Empty) is missing
                continue
            if size > len(value) and attr.shape != ():
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' holds {attr.shape} values, not one number")
            bits[:2] = unread
            try:
                attr.read(value, mtype=h5py.h5t.NATIVE_DOUBLE)
            except TypeError:
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' is not a number") from None
            if bits[1] != unread[1]:
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' holds {attr.shape} values, not one number")
            attrs[k][i] = value[0]
    # all inflated at the end, not submitted as read: threads that finish a chunk while this loop holds the GIL in
    # short HDF5 calls wait for it, and the overlap gained nothing (511 against 538 us an event on 2 cores)
    if pending:
        list(inflate.map(lambda job: _inflate_into(*job), pending))  # list() re-raises a failed job's error
    return prof, attrs


def _text_files(path: Path, events: slice | None) -> list[Path]:
    """The selected trento text files of a folder (0.dat, 1.dat, ... in event-number order), or the one file."""
    if not path.is_dir():
        return _select([path], events, path)
    files = sorted((p for p in path.glob("*.dat") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not files:
        raise InputError(f"folder '{path}' holds no trento text files (0.dat, 1.dat, ...); give the folder of "
                         "'trento --output DIR' or a trento HDF5 file")
    return _select(files, events, path)


def _read_text_block(files: list[Path], shape: tuple[int, ...] | None) -> tuple[np.ndarray, dict, list[str]]:
    """Real trento's text output: files N.dat (event number N, zero-padded), each a header of comment lines
    '# event N' and '# key = value' (b, npart, mult, e2, e3, ...) followed by the profile, one grid row (y) a line.
    Every profile must be square and, given `shape`, of that shape (else of the first file's)."""
    prof, names = [], []
    attrs = {k: np.full(len(files), np.nan) for k in EVENT_ATTRS}
    for i, file in enumerate(files):
        header: dict[str, str] = {}
        try:
            with open(file) as handle:
                for line in handle:
                    if not line.startswith("#"):
                        break
                    key, _, value = line[1:].partition("=")
                    header[key.strip()] = value.strip()
            with warnings.catch_warnings():  # an empty file is reported below, not as numpy's warning
                warnings.simplefilter("ignore", UserWarning)
                grid = np.loadtxt(file, comments="#", dtype=np.float32, ndmin=2)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"'{file}' is not a trento text file ({type(exc).__name__}); give the files of "
                             "'trento --output DIR'") from None
        expected = tuple(shape) if shape is not None else prof[0].shape if prof else None
        if grid.size == 0 or grid.shape[0] != grid.shape[1] or (expected is not None and grid.shape != expected):
            raise InputError(f"'{file}': profile of shape {grid.shape}; trento profiles must be "
                             f"{'square' if expected is None else f'{expected} as the first'}")
        prof.append(grid)
        for k in EVENT_ATTRS:
            try:
                attrs[k][i] = float(header[k]) if k in header else np.nan
            except ValueError:
                raise InputError(f"'{file}': header '{k} = {header[k]}' is not a number") from None
        number = next((key.split()[1] for key in header if key.startswith("event ")), file.stem)
        names.append(f"event_{number}")
    return np.stack(prof), attrs, names


def resample_profile(profiles: np.ndarray, grid_max_in: float, resolution: int = 64,
                     grid_max_out: float | None = None) -> np.ndarray:
    """Average densities (N, G, G) on [-grid_max_in, grid_max_in]^2 over the cells of a (N, R, R) grid on
    [-grid_max_out, grid_max_out]^2 (default: the same square). Each output cell is the area-weighted mean of the
    input cells it overlaps (zero outside the input), so the integral over the common area is preserved."""
    if grid_max_out is None:
        grid_max_out = grid_max_in
    profiles = np.asarray(profiles)
    g = profiles.shape[-1]

    def weights(n_in: int, h_in: float, n_out: int, h_out: float) -> np.ndarray:
        edges_in = np.linspace(-h_in, h_in, n_in + 1)
        edges_out = np.linspace(-h_out, h_out, n_out + 1)
        overlap = np.minimum(edges_out[1:, None], edges_in[None, 1:]) - np.maximum(edges_out[:-1, None], edges_in[None, :-1])
        return np.clip(overlap, 0.0, None) / (edges_out[1] - edges_out[0])

    w = weights(g, grid_max_in, resolution, grid_max_out).astype(np.float32)
    # Two BLAS products: a three-operand np.einsum without optimize loops in C over all five indices and was
    # over 400x slower (3.7 s for 100 trento ICs of 100 x 100, more than the network then spent on them). In float32
    # they take 34 instead of 82-85 us per IC of 100 x 100 (benchmarks/spectra_io.py, 2-core VM), within 1.1e-7 of
    # the maximum of the float64 products.
    return w @ profiles.astype(np.float32, copy=False) @ w.T
