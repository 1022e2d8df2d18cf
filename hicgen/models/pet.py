"""Particle branch of the point-cloud model: a Point-Edge Transformer (PET) denoiser (paper 004, sec. II.2, III.3).

v = PET(z_t (B, N, F), t (B,), e (B, E), mask (B, N)) -> (B, N, F), the v-prediction per particle token.

Structure (OmniLearn-style):
- body
  - token embedding: Linear -> GELU -> Linear of the F token features plus cos/sin of 1 and 2 times the
    angles phi_rel (channel 0) and phi (channel 5), so azimuthal structure is linear in the input;
  - local edge block: for every particle its k nearest neighbours in the geometry (phi_rel, log pT_rel)
    = token features 0 and 1, with phi_rel periodic (period `phi_period` in standardised units), found in
    row chunks under no_grad so the N x N distance matrix is never kept; edge features
    MLP(h_i, h_j - h_i, dphi, dpt) are averaged over the valid neighbours and added to h_i;
  - `num_layers` transformer blocks (pre-norm, adaLN-Zero FiLM from the time embedding) whose attention is
    `scaled_dot_product_attention` with a key padding mask (memory-efficient kernels, O(N) memory on GPU);
- head (generator): its own time embedding plus an MLP of the standardised event vector e gives the
  condition c; `num_head_layers` transformer blocks FiLM-conditioned on c; LayerNorm; a zero-initialised
  Linear to F outputs.

Padding: padded tokens are never keys of attention, never neighbours in the kNN, and their outputs are
set to zero, so a padded particle cannot change a real particle's output. Every operation is per token
or a masked set function, so permuting the particles permutes the output.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hicgen.models.blocks import FiLM, FourierTimeEmbedding, mlp, modulate


@dataclass(frozen=True)
class PETConfig:
    """Architecture of the particle denoiser. `phi_period` = 2 pi / std(phi_rel) is set from the data."""

    num_features: int = 18
    cond_dim: int = 10
    dim: int = 64
    num_heads: int = 4
    num_layers: int = 4
    num_head_layers: int = 2
    num_neighbors: int = 8
    mlp_ratio: float = 2.0
    time_frequencies: int = 16
    phi_period: float = 2 * math.pi  # period of token channel 0 (phi_rel) in standardised units
    phi_abs_period: float = 2 * math.pi  # period of token channel 5 (phi) in standardised units
    knn_chunk_elements: int = 1 << 24

    def __post_init__(self) -> None:
        for name in ("num_features", "cond_dim", "dim", "num_heads", "num_layers", "num_head_layers", "time_frequencies"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"PETConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"PETConfig.dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.num_neighbors < 0 or self.phi_period <= 0 or self.phi_abs_period <= 0:
            raise ValueError("PETConfig.num_neighbors must be >= 0 and the phi periods > 0")

    def to_dict(self) -> dict:
        return asdict(self)


def geometry_delta(gi: torch.Tensor, gj: torch.Tensor, phi_period: float) -> torch.Tensor:
    """(dphi, dpt) = gj - gi with dphi wrapped into [-period/2, period/2]; gi, gj broadcastable (..., 2)."""
    d = gj - gi
    dphi = d[..., 0] - phi_period * torch.round(d[..., 0] / phi_period)
    return torch.stack([dphi, d[..., 1]], dim=-1)


# On a CPU the search's ~10 elementwise passes over each (B, rows, N) slice of distances are bound by memory
# bandwidth: a 1 MiB slice stays in the cache between passes and makes the search ~3x faster than the 64 MiB
# slices of the default knn_chunk_elements, with the same neighbours (benchmarks/pet_cpu.py). On a GPU large slices
# mean fewer kernel launches, so the configured size stands.
CPU_KNN_CHUNK_ELEMENTS = 1 << 18


@torch.no_grad()
def knn_indices(
    geom: torch.Tensor, mask: torch.Tensor, k: int, phi_period: float, chunk_elements: int = 1 << 24
) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest real neighbours (self excluded) of every token in 2-D geometry, periodic in coordinate 0.

    geom (B, N, 2), mask (B, N) bool -> (index (B, N, k') int64, valid (B, N, k') bool) with
    k' = min(k, N - 1). Rows are processed in chunks of ~chunk_elements / (B N) (at most CPU_KNN_CHUNK_ELEMENTS
    on a CPU) so that only a (B, chunk, N) slice of the distance matrix exists at any time.
    """
    bsz, n, _ = geom.shape
    kk = min(k, n - 1)
    if kk <= 0:
        empty = torch.zeros(bsz, n, 0, dtype=torch.long, device=geom.device)
        return empty, empty.bool()
    geom = geom.float()
    if geom.device.type == "cpu":
        chunk_elements = min(chunk_elements, CPU_KNN_CHUNK_ELEMENTS)
    rows = max(1, min(n, chunk_elements // max(1, bsz * n)))
    index = torch.empty(bsz, n, kk, dtype=torch.long, device=geom.device)
    valid = torch.empty(bsz, n, kk, dtype=torch.bool, device=geom.device)
    key_invalid = ~mask[:, None, :]
    phi, pt = geom[..., 0], geom[..., 1]
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        dphi = phi[:, None, :] - phi[:, start:stop, None]  # (B, c, N)
        dphi -= phi_period * torch.round(dphi / phi_period)
        dist = dphi.square_().add_((pt[:, None, :] - pt[:, start:stop, None]).square_())
        dist.masked_fill_(key_invalid, math.inf)
        dist.diagonal(offset=start, dim1=1, dim2=2).fill_(math.inf)  # a token is not its own neighbour
        value, idx = dist.topk(kk, dim=-1, largest=False)
        index[:, start:stop] = idx
        valid[:, start:stop] = torch.isfinite(value)
    return index, valid


def gather_neighbors(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), index (B, N, k) -> x of the neighbours (B, N, k, D)."""
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return x[batch, index]


class LocalEdgeBlock(nn.Module):
    """h_i += mean over valid kNN neighbours j of MLP(h_i, h_j - h_i, dphi_ij, dpt_ij)."""

    def __init__(self, dim: int, k: int, phi_period: float, chunk_elements: int) -> None:
        super().__init__()
        self.k, self.phi_period, self.chunk_elements = k, phi_period, chunk_elements
        self.edge = mlp(2 * dim + 2, dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, geom: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        index, valid = knn_indices(geom, mask, self.k, self.phi_period, self.chunk_elements)
        if index.shape[-1] == 0:
            return h
        g_nb = geometry_delta(geom[:, :, None, :], gather_neighbors(geom, index), self.phi_period)
        # The edge MLP's first layer on (h_i, h_j - h_i, g_ij) is (W_i - W_d) h_i + W_d h_j + W_g g_ij + b: two
        # products per token, gathered per edge, instead of one per edge of the (B, N, k, 2D + 2) concatenation
        # (k times fewer multiplications; the same function up to rounding). Written out for speed: with its kNN
        # the edge block was a third of the network time of a CPU O-O run (benchmarks/pet_cpu.py times the call).
        first, activation, second = self.edge
        w_i, w_d, w_g = first.weight.split([h.shape[-1], h.shape[-1], 2], dim=1)
        centre = F.linear(h, w_i - w_d, first.bias)
        neighbours = gather_neighbors(F.linear(h, w_d), index)  # (B, N, k, D)
        edges = second(activation(centre[:, :, None, :] + neighbours + F.linear(g_nb.to(h.dtype), w_g)))
        weights = valid.to(edges.dtype)[..., None]
        local = (edges * weights).sum(2) / weights.sum(2).clamp(min=1)
        return h + self.norm(local)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP, each FiLM-modulated and gated by c (adaLN-Zero)."""

    def __init__(self, dim: int, num_heads: int, cond_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        # No key bias: it adds the same score to all keys of a query, which the softmax removes, so its
        # gradient is exactly zero and Lion's sign() would turn rounding noise into +-lr steps.
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.mlp = mlp(dim, int(dim * mlp_ratio), dim)
        self.film = FiLM(cond_dim, dim, 6)

    def forward(self, h: torch.Tensor, c: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """h (B, N, D), c (B, C), key_mask (B, 1, 1, N) bool (True = attend)."""
        bsz, n, dim = h.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.film(c, 3)
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(modulate(self.norm1(h), shift1, scale1), self.qkv.weight, bias)
        q, k, v = qkv.view(bsz, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        h = h + gate1 * self.proj(attn.transpose(1, 2).reshape(bsz, n, dim))
        return h + gate2 * self.mlp(modulate(self.norm2(h), shift2, scale2))


ANGLE_HARMONICS = (1, 2)


def angle_features(z: torch.Tensor, period: float) -> torch.Tensor:
    """cos and sin of n 2 pi z / period for n in ANGLE_HARMONICS: (...,) -> (..., 2 len(ANGLE_HARMONICS))."""
    angle = (2 * math.pi / period) * z.float()
    return torch.stack([f(n * angle) for n in ANGLE_HARMONICS for f in (torch.cos, torch.sin)], dim=-1).to(z.dtype)


class PETBody(nn.Module):
    """Token embedding (features + harmonics of phi_rel and phi), local edge block, transformer blocks."""

    def __init__(self, config: PETConfig) -> None:
        super().__init__()
        self.phi_periods = (config.phi_period, config.phi_abs_period)
        self.embed = mlp(config.num_features + 4 * len(ANGLE_HARMONICS), config.dim, config.dim)
        self.time = FourierTimeEmbedding(config.dim, config.time_frequencies)
        self.local = LocalEdgeBlock(config.dim, config.num_neighbors, config.phi_period, config.knn_chunk_elements)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.dim, config.num_heads, config.dim, config.mlp_ratio) for _ in range(config.num_layers)
        )

    def forward(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # Channels 0 and 5 are phi_rel and phi (hicgen.data.transforms): their harmonics make azimuthal
        # structure (flow, the event plane) a linear function of the input.
        angles = torch.cat([angle_features(z[..., 0], self.phi_periods[0]), angle_features(z[..., 5], self.phi_periods[1])], dim=-1)
        h = self.local(self.embed(torch.cat([z, angles], dim=-1)), z[..., :2], mask)
        c = self.time(t)
        for block in self.blocks:
            h = block(h, c, key_mask)
        return h


class PETHead(nn.Module):
    """Generator head: transformer blocks FiLM-conditioned on (time, event vector), then a linear map to F."""

    def __init__(self, config: PETConfig) -> None:
        super().__init__()
        self.time = FourierTimeEmbedding(config.dim, config.time_frequencies)
        self.cond = mlp(config.cond_dim, config.dim, config.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.dim, config.num_heads, config.dim, config.mlp_ratio) for _ in range(config.num_head_layers)
        )
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, config.num_features)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        c = self.time(t) + self.cond(cond)
        for block in self.blocks:
            h = block(h, c, key_mask)
        return self.out(self.norm(h))


class PointEdgeTransformer(nn.Module):
    """v(z_t, t, e, mask): (B, N, F), (B,), (B, E), (B, N) bool -> (B, N, F), zero on padded tokens."""

    def __init__(self, config: PETConfig) -> None:
        super().__init__()
        self.config = config
        self.body = PETBody(config)
        self.head = PETHead(config)

    def forward(self, z: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask.bool()
        # An event with no real token would leave attention rows with no key (NaN); let it see slot 0.
        keys = mask.clone()
        keys[:, 0] |= ~mask.any(dim=1)
        key_mask = keys[:, None, None, :]
        z = z * mask[..., None].to(z.dtype)
        h = self.body(z, t, mask, key_mask)
        return self.head(h, t, cond, key_mask) * mask[..., None].to(h.dtype)
