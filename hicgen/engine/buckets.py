"""Multiplicity buckets: events padded to a geometric ladder of particle counts, then batched by a token budget.

Bucket sizes are ceil8(MIN_SIZE * GROWTH^k): an event of N particles is padded to the smallest size >= N,
which is at most GROWTH N + 7, i.e. padding costs at most 25% of the real tokens plus the alignment to a
multiple of 8 (which matters only for the smallest sizes), while the number of distinct shapes (one CUDA graph each) grows
only logarithmically with the largest multiplicity.
"""

from __future__ import annotations

import math

import numpy as np

GROWTH = 1.25
MIN_SIZE = 8
ALIGN = 8  # sizes are multiples of 8 (tensor-core friendly)


def bucket_size(n: int) -> int:
    """The padded length of an event with n particles (n >= 1)."""
    size, k = MIN_SIZE, 0
    while size < n:
        k += 1
        size = ALIGN * math.ceil(MIN_SIZE * GROWTH**k / ALIGN)
    return size


def bucket_sizes(mult: np.ndarray) -> np.ndarray:
    """Padded length of each event, shape (B,) int64."""
    mult = np.asarray(mult, dtype=np.int64)
    unique, inverse = np.unique(np.maximum(mult, 1), return_inverse=True)
    return np.array([bucket_size(int(n)) for n in unique], dtype=np.int64)[inverse].reshape(mult.shape)


def padding_waste(mult: np.ndarray) -> float:
    """Fraction of the padded tokens that are padding, for events with these multiplicities."""
    mult = np.asarray(mult, dtype=np.int64)
    padded = bucket_sizes(mult).sum()
    return float(1 - mult.sum() / padded) if padded else 0.0


def plan_batches(mult: np.ndarray, max_tokens: int) -> list[tuple[int, np.ndarray]]:
    """Group events into (padded length N, event indices) batches with at most max(N, max_tokens) tokens each.

    Buckets are visited from the longest length down (deterministic order); within a bucket the events
    keep their input order.
    """
    sizes = bucket_sizes(mult)
    plan = []
    for size in np.unique(sizes)[::-1]:
        members = np.flatnonzero(sizes == size)
        per_batch = batch_capacity(int(size), max_tokens)
        for start in range(0, members.size, per_batch):
            plan.append((int(size), members[start : start + per_batch]))
    return plan


def batch_capacity(size: int, max_tokens: int) -> int:
    """Events of padded length `size` per particle batch under a budget of `max_tokens` tokens (at least 1)."""
    return max(1, max_tokens // size)
