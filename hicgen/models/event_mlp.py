"""Event branch of the point-cloud model (paper 004, sec. II.2): a residual MLP denoiser of the event vector.

Input: the noisy standardised event vector z_t (B, E) and the diffusion time t (B,); output the
v-prediction (B, E). Time enters every residual block through FiLM of a Fourier embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from hicgen.models.blocks import FourierTimeEmbedding, ResidualMLPBlock


@dataclass(frozen=True)
class EventMLPConfig:
    """Architecture of the event denoiser."""

    event_dim: int = 10
    dim: int = 128
    num_blocks: int = 3
    mlp_ratio: float = 2.0
    time_frequencies: int = 16

    def __post_init__(self) -> None:
        for name in ("event_dim", "dim", "num_blocks", "time_frequencies"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"EventMLPConfig.{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


class EventMLP(nn.Module):
    """v(z_t, t) for the event vector: (B, E), (B,) -> (B, E)."""

    def __init__(self, config: EventMLPConfig) -> None:
        super().__init__()
        self.config = config
        self.time = FourierTimeEmbedding(config.dim, config.time_frequencies)
        self.inp = nn.Linear(config.event_dim, config.dim)
        self.blocks = nn.ModuleList(ResidualMLPBlock(config.dim, config.dim, config.mlp_ratio) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, config.event_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.time(t)
        h = self.inp(z)
        for block in self.blocks:
            h = block(h, c)
        return self.out(self.norm(h))
