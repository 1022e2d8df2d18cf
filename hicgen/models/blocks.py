"""Building blocks shared by the point-cloud denoisers: Fourier time embedding, FiLM, residual MLP.

Conditioning follows the adaLN-Zero pattern (DiT): a conditioning vector c (B, C) is mapped to a
shift, a scale and a gate per block; the gate starts at zero, so every residual block is the identity
at initialisation and training starts from a well-behaved network.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierTimeEmbedding(nn.Module):
    """Diffusion time t in [0, 1], shape (B,) -> embedding (B, dim).

    Fixed sinusoidal features sin/cos(2 pi f_k t) with `num_frequencies` frequencies f_k log-spaced
    from 1 to `max_frequency` (cycles per unit t), followed by a two-layer SiLU MLP.
    """

    def __init__(self, dim: int, num_frequencies: int = 16, max_frequency: float = 1000.0) -> None:
        super().__init__()
        freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), num_frequencies))
        self.register_buffer("freqs", 2 * math.pi * freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * num_frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))


class FiLM(nn.Module):
    """Feature-wise modulation from a conditioning vector: c (B, C) -> `chunks` tensors (B, 1.., dim).

    Zero-initialised, so at the start the scales are 1 (stored as 1 + scale), shifts 0 and gates 0.
    """

    def __init__(self, cond_dim: int, dim: int, chunks: int = 3) -> None:
        super().__init__()
        self.chunks = chunks
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, chunks * dim))
        nn.init.zeros_(self.proj[1].weight)
        nn.init.zeros_(self.proj[1].bias)

    def forward(self, c: torch.Tensor, ndim: int) -> tuple[torch.Tensor, ...]:
        """Chunks shaped to broadcast against an activation with `ndim` dimensions (B, ..., dim)."""
        out = self.proj(c)
        out = out.reshape(out.shape[0], *([1] * (ndim - 2)), out.shape[-1])
        return out.chunk(self.chunks, dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """FiLM: x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """Linear -> GELU -> Linear."""
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class ResidualMLPBlock(nn.Module):
    """h + gate * MLP(FiLM(LayerNorm(h))), conditioned on c (B, cond_dim); h of shape (B, dim)."""

    def __init__(self, dim: int, cond_dim: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.film = FiLM(cond_dim, dim, 3)
        self.mlp = mlp(dim, int(dim * mlp_ratio), dim)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.film(c, h.ndim)
        return h + gate * self.mlp(modulate(self.norm(h), shift, scale))
