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


SHARD_BLOCK = 64  # items: shards of whole blocks hold whole 64-record chunks of spectra files (merged by copying)


def shard_range(n: int, shard: tuple[int, int], block: int = SHARD_BLOCK) -> tuple[int, int]:
    """(lo, hi): the items lo .. hi - 1 of shard i of N over n items, N contiguous parts. With n >= block * N the
    parts start at multiples of `block` (sizes differ by at most `block`), so that every part but the last holds whole
    blocks: the files of such parts are merged by copying their compressed chunks (merge_spectra). Fewer items are
    split into parts whose sizes differ by at most one. InputError when a shard would be empty."""
    index, count = shard
    if count > n:
        raise InputError(f"--shard {index}/{count} splits {n} initial state{'s' if n != 1 else ''} into more parts than "
                         f"there are; use at most {n} shards")
    if n < block * count:
        return index * n // count, (index + 1) * n // count
    edge = lambda i: n if i == count else i * n // count // block * block  # noqa: E731
    return edge(index), edge(index + 1)
