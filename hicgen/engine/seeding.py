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


def shard_range(n: int, shard: tuple[int, int]) -> tuple[int, int]:
    """(lo, hi): the items lo .. hi - 1 of shard i of N over n items, N contiguous parts whose sizes differ by at
    most one; InputError when the shard would be empty (more shards than items)."""
    index, count = shard
    if count > n:
        raise InputError(f"--shard {index}/{count} splits {n} initial state{'s' if n != 1 else ''} into more parts than "
                         f"there are; use at most {n} shards")
    return index * n // count, (index + 1) * n // count
