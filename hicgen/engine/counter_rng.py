"""Counter-based random numbers: every value is a pure function of (key, position), computed as tensor operations.

The per-row torch and numpy generators of `hicgen spectra` (one `torch.Generator` for the noise and one numpy
`Generator` for the Poisson histogram of each spectrum) made every row a small serial draw on the host: on an H100 machine 1024 rows of 64 x 64
took ~86 ms of noise and ~196 ms of Poisson draws, more than the network itself (docs/benchmarks.md). Here a row's
key is hashed from (seed, row words, stream) and each value from (key, column), so a whole batch is a handful of
vectorised integer operations on the batch's own device (no host synchronisation; the normals are capturable in a
CUDA graph) and a row's numbers still do not depend on how rows are batched. It is meant for the GPU: on a CPU the
int64 hashing is ~15x slower than the per-row generators (1.2 s vs 76 ms for 1024 rows of 64 x 64 normals, one
core), so hicgen.spectra.generate keeps those there.

Hand-written rather than a library because torch has no counter-based generator with per-element keys. The mixer is
the 32-bit `lowbias32` integer hash (C. Wellons, hash-prospector: xor-shift 16, multiply 0x21f0aaad, xor-shift 15,
multiply 0x735a2d97, xor-shift 15), a bijection with low avalanche bias. Values are held in int64 tensors below
2**32; products are split into 16-bit halves so that no intermediate overflows int64.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
_MUL1, _MUL2 = 0x21F0AAAD, 0x735A2D97
_KEY_SALT = (0x9E3779B9, 0x85EBCA6B)  # two independent key words per row
STREAMS = {"noise": 1, "poisson": 2, "split": 3}


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32): c split in 16-bit halves keeps every product below 2**49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, _MUL1)
    x = x ^ (x >> 15)
    x = _mul32(x, _MUL2)
    return x ^ (x >> 15)


def row_keys(seed: int, words: list[torch.Tensor], stream: str) -> torch.Tensor:
    """Keys (B, 2) int64 of the rows identified by `words` (each (B,) integers >= 0, e.g. IC and sample index),
    for one `seed` and one named stream (STREAMS) so that noise and Poisson draws of a row are independent."""
    device = words[0].device
    parts = [int(seed) & MASK32, (int(seed) >> 32) & MASK32, STREAMS[stream]]
    keys = []
    for salt in _KEY_SALT:
        k = torch.full(words[0].shape, salt, dtype=torch.int64, device=device)
        for part in parts:
            k = hash32(k ^ part)
        for word in words:
            word = word.to(device=device, dtype=torch.int64)
            k = hash32(k ^ (word & MASK32))
            k = hash32(k ^ ((word >> 32) & MASK32))
        keys.append(k)
    return torch.stack(keys, dim=-1)


def random_bits(keys: torch.Tensor, n: int, offset: int = 0) -> torch.Tensor:
    """(B, n) int64 in [0, 2**32): value j of row b is a hash of (keys[b], offset + j)."""
    column = hash32(torch.arange(offset, offset + n, dtype=torch.int64, device=keys.device) & MASK32)
    return hash32(hash32(keys[:, :1] ^ column) ^ keys[:, 1:])


def uniforms(keys: torch.Tensor, n: int, offset: int = 0) -> torch.Tensor:
    """(B, n) float64 uniform in the open interval (0, 1), 32 random bits each."""
    return (random_bits(keys, n, offset).double() + 0.5) * 2.0**-32


def normals(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) float32 standard normals by Box-Muller from 24-bit uniforms (|z| < 5.9; the tail beyond holds
    4e-9 of the probability)."""
    n = math.prod(shape)
    half = (n + 1) // 2
    bits = random_bits(keys, 2 * half)
    u = ((bits >> 8).float() + 0.5) * 2.0**-24  # exact in float32, inside (0, 1)
    radius = torch.sqrt(-2.0 * torch.log(u[:, :half]))
    angle = (2 * math.pi) * u[:, half:]
    z = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :n]
    return z.reshape(len(keys), *shape)


def poisson(mean: torch.Tensor, keys: torch.Tensor, piece_mean: float = 100.0) -> torch.Tensor:
    """Poisson counts (float32, shape of mean (B, ...)) with the given means, row b from keys[b], by inversion of
    the cumulative distribution in float64. Exact up to rounding; a mean above `piece_mean` is drawn as a sum of
    Poisson pieces of at most that mean (each with its own uniforms), which keeps exp(-mean) far from underflow.
    Not for CUDA-graph capture (it checks every 8 steps on the host whether all draws have settled)."""
    lam = mean.double().clamp_min(0.0).reshape(len(mean), -1)
    n = lam.shape[1]
    pieces = torch.ceil(lam / piece_mean).clamp_min(1.0)  # per bin, so a bin's draw does not depend on its batch
    part = lam / pieces
    top = float(part.max()) if part.numel() else 0.0
    kmax = int(top + 12.0 * math.sqrt(top) + 25)  # P(k > kmax) < 1e-20 for every mean up to piece_mean
    counts = torch.zeros_like(lam)
    for piece in range(int(pieces.max()) if pieces.numel() else 0):
        u = uniforms(keys, n, offset=piece * n)
        p = torch.exp(-part)
        cdf = p.clone()
        drawn = torch.zeros_like(lam)
        for k in range(1, kmax + 1):
            above = u > cdf
            if k % 8 == 1 and not bool(above.any()):  # every bin settled (one host check per 8 steps)
                break
            drawn += above
            p = p * part / k
            cdf = cdf + p
        counts += torch.where(pieces > piece, drawn, 0.0)
    return counts.float().reshape(mean.shape)
