"""Shared fixtures: small synthetic event batches made by the tests themselves."""

from __future__ import annotations

import numpy as np
import pytest

import hicgen.engine.runtime  # noqa: F401  (starts torch's CPU thread pool first: runtime.start_cpu_thread_pool)
from hicgen.data.batch import EventBatch
from hicgen.data.features import particle_event_features


def toy_batch(n_events: int = 20, mean_mult: float = 30.0, seed: int = 0) -> EventBatch:
    """Events with exponential pT, uniform eta/phi, pion/kaon/proton ids and geometry columns."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_mult, n_events)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    particles = {
        "pt": (0.15 + rng.exponential(0.5, total)).astype(np.float32),
        "eta": rng.uniform(-2.5, 2.5, total).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, total).astype(np.float32),
        "pid": rng.choice([211, -211, 321, -321, 2212, -2212], total).astype(np.int32),
    }
    events = {
        "b": rng.uniform(0, 10, n_events),
        "ncoll": rng.integers(1, 100, n_events).astype(np.int32),
        "npart": rng.integers(2, 32, n_events).astype(np.int32),
    }
    events.update(particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets))
    return EventBatch(events=events, offsets=offsets, particles=particles)


@pytest.fixture
def batch() -> EventBatch:
    return toy_batch()


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch):
    """Tests run as on a CPU without bf16 hardware, so precision 'auto' is fp32 on every CI machine; the tests of
    the bf16 default turn it on themselves."""
    from hicgen.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
