"""EventBatch: a chunk of whole events as flat particle columns plus offsets, the in-memory form of the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Per-event columns every hicgen dataset carries (paper 004's event vector plus geometry).
# psi2 is derived from (q2x, q2y) but stored for convenience.
EVENT_COLUMNS: tuple[str, ...] = (
    "b", "ncoll", "npart", "mult", "mean_pt", "sum_pt", "q2x", "q2y", "psi2", "mean_eta", "mean_phi",
)
PARTICLE_COLUMNS: tuple[str, ...] = ("pt", "eta", "phi", "pid")
EVENT_NUMBER = "event_number"  # optional event column: the event's number in a production split over jobs
EVENT_DTYPES: dict[str, type] = {"ncoll": np.int32, "npart": np.int32, "mult": np.int32, EVENT_NUMBER: np.int64,
                                 "ic_index": np.int64, "sample_index": np.int64}
PARTICLE_DTYPES: dict[str, type] = {"pt": np.float32, "eta": np.float32, "phi": np.float32, "pid": np.int32}


def event_chunks(offsets: np.ndarray, max_particles: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive runs of whole events, each of at most `max_particles` particles or one event,
    covering the events of `offsets` (n + 1,)."""
    chunks, start, n = [], 0, len(offsets) - 1
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + max_particles, "right")) - 1
        stop = min(max(stop, start + 1), n)
        chunks.append((start, stop))
        start = stop
    return chunks


def event_dtype(name: str) -> np.dtype:
    """On-disk dtype of an event column (float64 unless it is a count)."""
    return np.dtype(EVENT_DTYPES.get(name, np.float64))


@dataclass
class EventBatch:
    """Whole events: `events[name]` has shape (B,), `particles[name]` shape (offsets[-1],),
    and particles of event i are rows offsets[i]:offsets[i+1]. Units: GeV, phi in [-pi, pi)."""

    events: dict[str, np.ndarray]
    offsets: np.ndarray
    particles: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.offsets.ndim != 1 or self.offsets.size == 0 or self.offsets[0] != 0:
            raise ValueError("offsets must be a 1-D array starting at 0")
        n = self.offsets.size - 1
        for name, col in self.events.items():
            if len(col) != n:
                raise ValueError(f"event column '{name}' has {len(col)} rows for {n} events")
        for name, col in self.particles.items():
            if len(col) != self.offsets[-1]:
                raise ValueError(f"particle column '{name}' has {len(col)} rows, offsets say {self.offsets[-1]}")

    def __len__(self) -> int:
        return self.offsets.size - 1

    @property
    def multiplicity(self) -> np.ndarray:
        """Number of stored particles per event, shape (B,)."""
        return np.diff(self.offsets)

    @property
    def event_index(self) -> np.ndarray:
        """For each particle, the index of its event in the batch, shape (offsets[-1],)."""
        return np.repeat(np.arange(len(self)), self.multiplicity)

    def select(self, index: np.ndarray) -> "EventBatch":
        """Events chosen by an integer or boolean index, in that order."""
        index = np.arange(len(self))[index]
        counts = self.multiplicity[index]
        starts = self.offsets[index]
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        return EventBatch(
            events={k: v[index] for k, v in self.events.items()},
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            particles={k: v[rows] for k, v in self.particles.items()},
        )

    def slice(self, start: int, stop: int) -> "EventBatch":
        """Events start..stop-1 as a view-backed batch."""
        lo, hi = self.offsets[start], self.offsets[stop]
        return EventBatch(
            events={k: v[start:stop] for k, v in self.events.items()},
            offsets=self.offsets[start : stop + 1] - lo,
            particles={k: v[lo:hi] for k, v in self.particles.items()},
        )

    @staticmethod
    def concat(batches: list["EventBatch"]) -> "EventBatch":
        """Join batches with the same columns, in order."""
        if not batches:
            raise ValueError("nothing to concatenate")
        counts = np.concatenate([b.multiplicity for b in batches])
        return EventBatch(
            events={k: np.concatenate([b.events[k] for b in batches]) for k in batches[0].events},
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            particles={k: np.concatenate([b.particles[k] for b in batches]) for k in batches[0].particles},
        )
