"""Pythia 8 Angantyr heavy-ion events through the `pythia8mc` package.

Settings (issue 2 / paper 004): nuclei at sqrt(s_NN) = 5.36 TeV by default; particles with
c*tau > 1 cm are stable (`ParticleDecays:limitTau0 = on`, `tau0Max = 10` mm), so the final-state
charged particles are the ALICE-style primaries. Kept: charged final-state particles with
|eta| < eta_max and pT > pt_min. Per event: b [fm], Ncoll (all sub-collisions), Npart (wounded
nucleons, projectile + target) from Angantyr's HIInfo, and the particle features of
hicgen.data.features.

Angantyr fits its sub-collision model to the nucleon-nucleon cross sections at initialisation,
which takes tens of seconds. hicgen runs that fit once per (system, sqrt_s, Pythia version),
stores the fitted parameters (Pythia's own 'to avoid refitting' lines) in a cache, and starts every
worker with them; `angantyr_fits.json` beside this module holds fits made with
`python -m hicgen.truth.angantyr_fit`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hicgen.data.batch import EventBatch
from hicgen.data.features import particle_event_features, wrap_phi
from hicgen.errors import HicgenError, InputError, require

NUCLEUS_PDG: dict[str, int] = {"OO": 1000080160, "PbPb": 1000822080}
SEED_MAX = 900_000_000  # Pythia accepts Random:seed in 1..900000000
SHIPPED_FITS = Path(__file__).with_name("angantyr_fits.json")


@dataclass(frozen=True)
class AngantyrConfig:
    """What to generate; validated by `validate()` before any work starts."""

    system: str = "OO"
    sqrt_s: float = 5360.0  # GeV per nucleon pair
    eta_max: float = 2.5
    pt_min: float = 0.15  # GeV

    def validate(self) -> "AngantyrConfig":
        if self.system not in NUCLEUS_PDG:
            raise InputError(f"--system must be one of {', '.join(NUCLEUS_PDG)}, got '{self.system}'")
        if not self.sqrt_s > 0:
            raise InputError(f"--sqrt-s must be positive (GeV per nucleon pair), got {self.sqrt_s}")
        if not self.eta_max > 0:
            raise InputError(f"--eta-max must be positive, got {self.eta_max}")
        if not self.pt_min >= 0:
            raise InputError(f"--pt-min must be zero or positive (GeV), got {self.pt_min}")
        return self

    @property
    def fit_key(self) -> str:
        import pythia8mc  # noqa: F401  (version is part of the key)
        from importlib.metadata import version

        return f"{self.system}@{self.sqrt_s:g}@pythia8mc-{version('pythia8mc')}"


def worker_seeds(seed: int, workers: int) -> list[int]:
    """Distinct Pythia seeds (1..9e8) for each worker, derived from the user seed by numpy's SeedSequence."""
    children = np.random.SeedSequence(seed).spawn(workers)
    return [int(c.generate_state(1, np.uint64)[0] % SEED_MAX) + 1 for c in children]


def pythia_settings(config: AngantyrConfig, seed: int, fit: dict[str, str] | None) -> list[str]:
    """The Pythia setting strings for one worker; `fit` holds Angantyr's fitted parameters (None: fit at init)."""
    nucleus = NUCLEUS_PDG[config.system]
    settings = [
        f"Beams:idA = {nucleus}",
        f"Beams:idB = {nucleus}",
        f"Beams:eCM = {config.sqrt_s:g}",
        "ParticleDecays:limitTau0 = on",
        "ParticleDecays:tau0Max = 10",
        "Random:setSeed = on",
        f"Random:seed = {seed}",
        "Next:numberCount = 0",
        "Init:showChangedSettings = off",
        "Init:showChangedParticleData = off",
    ]
    if fit is not None:
        settings += ["HeavyIon:SigFitNGen = 0"] + [f"{key} = {value}" for key, value in fit.items()]
    return settings


@contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    """Send the process's C-level stdout (Pythia's printing) to a file while the block runs."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def make_pythia(settings: list[str], log: Path):
    """An initialised Pythia instance; its printing goes to `log`."""
    pythia8mc = require("pythia8mc", "truth")
    with _stdout_to(log):
        pythia = pythia8mc.Pythia("", False)
        for line in settings:
            if not pythia.readString(line):
                raise HicgenError(f"Pythia rejected the setting '{line}'")
        ok = pythia.init()
    if not ok:
        raise HicgenError(f"Pythia failed to initialise; see its log {log}")
    return pythia


_FIT_LINE = re.compile(r"^\s*(HeavyIon:SigFitDef\w+)\s*=\s*([-0-9.eE,+ ]+)$", re.MULTILINE)


def parse_fit(log_text: str) -> dict[str, str]:
    """Angantyr's fitted parameters from its 'To avoid refitting, add the following lines' message."""
    return {key: value.strip() for key, value in _FIT_LINE.findall(log_text)}


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "hicgen" / "angantyr_fits.json"


def _load_fits(path: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def run_fit(config: AngantyrConfig) -> dict[str, str]:
    """Run Angantyr's cross-section fit once (tens of seconds) and return the fitted parameters."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "fit.log"
        make_pythia(pythia_settings(config, 1, None), log)
        fit = parse_fit(log.read_text(errors="replace"))
    if "HeavyIon:SigFitDefPar" not in fit:
        raise HicgenError("Angantyr did not report fitted cross-section parameters; cannot start workers")
    return fit


def angantyr_fit(config: AngantyrConfig) -> dict[str, str]:
    """Fitted sub-collision parameters: shipped table, then the user cache, else fit now and cache."""
    key = config.fit_key
    for source in (SHIPPED_FITS, _cache_file()):
        fits = _load_fits(source)
        if key in fits:
            return fits[key]
    fit = run_fit(config)
    cache = _cache_file()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({**_load_fits(cache), key: fit}, indent=1))
    except OSError:
        pass  # an unwritable cache only costs the fit again next time
    return fit


def event_from_pythia(pythia, config: AngantyrConfig) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Geometry of the current event and its accepted charged final-state particles."""
    rows = [(p.pT(), p.eta(), p.phi(), p.id()) for p in pythia.event if p.isFinal() and p.isCharged()]
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    keep = (np.abs(table[:, 1]) < config.eta_max) & (table[:, 0] > config.pt_min)
    table = table[keep]
    hi = pythia.heavyIonsPtr.hiInfo
    geometry = {"b": hi.b(), "ncoll": hi.nCollTot(), "npart": hi.nPartProj() + hi.nPartTarg()}
    particles = {
        "pt": table[:, 0].astype(np.float32),
        "eta": table[:, 1].astype(np.float32),
        "phi": wrap_phi(table[:, 2]).astype(np.float32),
        "pid": table[:, 3].astype(np.int32),
    }
    return geometry, particles


def build_batch(geometries: list[dict[str, float]], particle_lists: list[dict[str, np.ndarray]]) -> EventBatch:
    """Stack per-event results into an EventBatch with the full dataset event table."""
    counts = np.array([len(p["pt"]) for p in particle_lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    particles = {k: np.concatenate([p[k] for p in particle_lists]) for k in ("pt", "eta", "phi", "pid")}
    events = {k: np.array([g[k] for g in geometries]) for k in ("b", "ncoll", "npart")}
    events.update(particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets))
    return EventBatch(events=events, offsets=offsets, particles=particles)


def generate_chunks(pythia, config: AngantyrConfig, n_events: int, chunk_size: int) -> Iterator[tuple[EventBatch, int]]:
    """Yield (batch, failed) for chunks of up to chunk_size accepted events; failed counts Pythia's rejected tries."""
    done = 0
    while done < n_events:
        geometries, particle_lists, failed = [], [], 0
        while len(geometries) < min(chunk_size, n_events - done):
            if not pythia.next():
                failed += 1
                if failed > 100 + 10 * chunk_size:
                    raise HicgenError("Pythia failed to generate events repeatedly; see its log")
                continue
            geometry, particles = event_from_pythia(pythia, config)
            geometries.append(geometry)
            particle_lists.append(particles)
        done += len(geometries)
        yield build_batch(geometries, particle_lists), failed


@dataclass
class TruthSummary:
    """What a truth run wrote."""

    path: Path
    events: int
    particles: int
    failed: int
    seeds: list[int]
    seconds: float


def _worker_job(config: AngantyrConfig, seeds: list[int], fit: dict[str, str], chunk_size: int,
                index: int, n_events: int, log: Path) -> Iterator[tuple[EventBatch, int]]:
    pythia = make_pythia(pythia_settings(config, seeds[index], fit), log)
    with _stdout_to(log):
        yield from generate_chunks(pythia, config, n_events, chunk_size)


def default_chunk_size(system: str) -> int:
    """Events per chunk: a few seconds of work per chunk on one core."""
    return 100 if system == "OO" else 5


def run_angantyr(config: AngantyrConfig, n_events: int, seed: int, out: str | os.PathLike, workers: int = 1,
                 overwrite: bool = False, progress: Callable[[int], None] | None = None) -> TruthSummary:
    """Generate `n_events` Angantyr events with `workers` processes into the dataset file `out`.

    Reproducible for a given (seed, workers); `progress(n)` is called with each chunk's event count.
    Ctrl-C keeps the whole events written so far.
    """
    import functools
    import time
    from importlib.metadata import version

    from hicgen.data.dataset import DatasetWriter
    from hicgen.truth.workers import run_workers

    config.validate()
    if n_events < 1:
        raise InputError(f"--events must be at least 1, got {n_events}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    require("pythia8mc", "truth")
    workers = min(workers, n_events)
    start = time.perf_counter()
    fit = angantyr_fit(config)
    seeds = worker_seeds(seed, workers)
    attrs = {
        "generator": "Pythia 8 Angantyr (pythia8mc)",
        "generator_version": version("pythia8mc"),
        "system": config.system,
        "sqrt_s": config.sqrt_s,
        "eta_max": config.eta_max,
        "pt_min": config.pt_min,
        "selection": "charged final-state particles, ParticleDecays:limitTau0 = on, tau0Max = 10 mm",
        "seed": seed,
        "workers": workers,
        "seeds": seeds,
        "angantyr_fit": fit,
    }
    job = functools.partial(_worker_job, config, seeds, fit, default_chunk_size(config.system))
    failed = 0
    with DatasetWriter(out, attrs, overwrite=overwrite) as writer, tempfile.TemporaryDirectory() as logs:
        for batch, chunk_failed in run_workers(job, n_events, workers, Path(logs)):
            writer.append(batch)
            failed += chunk_failed
            if progress is not None:
                progress(len(batch))
        writer.set_attrs(failed_tries=failed)
        events, particles = writer.n_events, writer.n_particles
    return TruthSummary(Path(out), events, particles, failed, seeds, time.perf_counter() - start)
