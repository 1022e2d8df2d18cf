"""Random streams keyed by (seed, shard, stage, batch): same key, same numbers; different keys, independent streams."""

from __future__ import annotations

import numpy as np
import torch

from hicgen.errors import InputError

STAGES = {"event": 0, "particle": 1}


def stream_seed(seed: int, shard: int, stage: str, batch: int) -> int:
    """A 63-bit seed for one batch of one stage of one shard (numpy SeedSequence mixing, so nearby keys
    give unrelated streams)."""
    state = np.random.SeedSequence([int(seed), int(shard), STAGES[stage], int(batch)]).generate_state(1, dtype=np.uint64)
    return int(state[0]) & ((1 << 63) - 1)


def torch_generator(seed: int, shard: int, stage: str, batch: int, device: torch.device) -> torch.Generator:
    """A torch generator on `device` seeded for (seed, shard, stage, batch)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, shard, stage, batch))


def parse_shard(text: str) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N: shard i of N disjoint streams."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/N (e.g. 3/100), got '{text}'") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard i/N needs 0 <= i < N, got '{text}'")
    return index, count
