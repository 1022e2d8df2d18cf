"""A fast toy event generator for the analysis tests: known v2 relative to a random psi2, exponential pT,
uniform eta, a few charged species, event features computed from the particles as the truth command does."""

from __future__ import annotations

import numpy as np

from hicgen.data.batch import EventBatch
from hicgen.data.features import particle_event_features, wrap_phi

TOY_PIDS = np.array([211, -211, 321, -321, 2212, -2212])
TOY_PID_P = np.array([0.4, 0.4, 0.07, 0.07, 0.03, 0.03])


def toy_phi(rng: np.random.Generator, psi: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Angles from dN/dphi ∝ 1 + 2 v2 cos 2(phi - psi) by accept-reject, one per entry of psi/v2."""
    phi = np.empty(psi.size)
    todo = np.arange(psi.size)
    while todo.size:
        cand = rng.uniform(-np.pi, np.pi, todo.size)
        keep = rng.uniform(0, 1 + 2 * v2[todo].max(initial=0), todo.size) < 1 + 2 * v2[todo] * np.cos(2 * (cand - psi[todo]))
        phi[todo[keep]] = cand[keep]
        todo = todo[~keep]
    return phi


def toy_batch(
    n_events: int, seed: int, v2: float = 0.1, mean_mult: float = 150.0, pt_slope: float = 0.6,
    eta_max: float = 2.5, v2_pt_saturation: float | None = None,
) -> EventBatch:
    """Toy events: b ~ 10 sqrt(U) fm, Npart falling with b, multiplicity ~ Poisson(mean_mult Npart / <Npart>), psi2 uniform, v2 constant
    (or v2 * min(pT / v2_pt_saturation, 1) when given), pT = 0.15 + Exp(pt_slope) GeV, eta uniform in +-eta_max."""
    rng = np.random.default_rng(seed)
    b = 10.0 * np.sqrt(rng.uniform(0, 1, n_events))
    npart = np.maximum(2, rng.poisson(30 * (1 - b / 10.5) ** 1.5)).astype(np.int32)
    ncoll = np.maximum(1, rng.poisson(1.5 * npart)).astype(np.int32)
    mult = np.maximum(8, rng.poisson(mean_mult * npart / npart.mean()))
    offsets = np.concatenate([[0], np.cumsum(mult)])
    psi = rng.uniform(-np.pi / 2, np.pi / 2, n_events)
    total = int(offsets[-1])
    pt = 0.15 + rng.exponential(pt_slope, total)
    v2_particle = np.full(total, v2) if v2_pt_saturation is None else v2 * np.minimum(pt / v2_pt_saturation, 1.0)
    phi = wrap_phi(toy_phi(rng, np.repeat(psi, mult), v2_particle))
    eta = rng.uniform(-eta_max, eta_max, total)
    pid = rng.choice(TOY_PIDS, total, p=TOY_PID_P).astype(np.int32)
    particles = {"pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32), "pid": pid}
    events = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)
    events.update(b=b, ncoll=ncoll, npart=npart)
    return EventBatch(events=events, offsets=offsets, particles=particles)


def with_particles(batch: EventBatch, recompute_events: bool, **columns: np.ndarray) -> EventBatch:
    """A copy of `batch` with some particle columns replaced; event features recomputed from them or kept."""
    particles = dict(batch.particles, **columns)
    events = dict(batch.events)
    if recompute_events:
        events.update(particle_event_features(particles["pt"], particles["eta"], particles["phi"], batch.offsets))
    return EventBatch(events=events, offsets=batch.offsets, particles=particles)
