"""Conditional UNet denoiser of the spectra model (paper 000, DiffHIC).

Input: the noisy, normalised (pT, phi) spectrum z_t (B, 1, 64, 64) concatenated channel-wise with the
normalised initial entropy profile (B, 1, 64, 64) (see hicgen.spectra.normalization); the diffusion
time t (B,) in [0, 1] through Fourier features and an MLP (models.blocks.FourierTimeEmbedding); eta/s (B,) through Fourier features
and an MLP whose output is *added* to the time embedding (as in the paper), so eta/s is a continuous
label and values between the trained ones can be asked for. Output: the predicted noise eps (B, 1, 64, 64).

Architecture (DDPM-style): ResNet blocks (GroupNorm, SiLU, 3x3 convolutions, the embedding entering as
a per-channel scale and shift), strided-conv downsampling, nearest-neighbour upsampling with skip
connections, and multi-head self-attention (torch scaled_dot_product_attention) at the low resolutions
(16x16 and 8x8 by default) and in the bottleneck.

The phi axis (width, axis -1) of the spectrum is periodic; with `periodic_phi` every 3x3 convolution pads
it circularly (and the other axis with zeros). The initial profile shares that padding: its columns are
the transverse x axis, whose edges lie far outside the fireball, so wrapping them is harmless.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hicgen.models.blocks import FourierTimeEmbedding


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the spectra denoiser; `preset(name)` gives the shipped sizes."""

    resolution: int = 64
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16, 8)
    num_heads: int = 4
    dropout: float = 0.0
    groups: int = 8
    label_frequencies: tuple[float, ...] = (0.25, 0.5, 1.0)
    periodic_phi: bool = True
    cond_channels: int = 1
    out_channels: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        object.__setattr__(self, "label_frequencies", tuple(float(f) for f in self.label_frequencies))
        if self.resolution % (2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2^{len(self.channel_mult) - 1}")
        for mult in self.channel_mult:
            if (self.base_channels * mult) % self.groups or (self.base_channels * mult) % self.num_heads:
                raise ValueError(
                    f"channels {self.base_channels * mult} must be divisible by groups={self.groups} "
                    f"and num_heads={self.num_heads}"
                )

    def to_dict(self) -> dict:
        """JSON-ready form (tuples become lists); UNetConfig(**d) rebuilds it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PRESETS: dict[str, dict] = {
    # 0.43 M parameters: tests and CPU experiments.
    "tiny": dict(base_channels=16, channel_mult=(1, 2, 2, 2), num_res_blocks=1, num_heads=2, groups=8),
    # 5.6 M parameters: CPU-trainable in hours, GPU default for quick studies.
    "small": dict(base_channels=48, channel_mult=(1, 2, 2, 2), num_res_blocks=2, num_heads=4, groups=8),
    # 22 M parameters: the shipped size, GPU only.
    "base": dict(base_channels=96, channel_mult=(1, 2, 2, 2), num_res_blocks=2, num_heads=4, groups=16),
}


def preset(name: str, **overrides) -> UNetConfig:
    """The UNetConfig of a named size ('tiny', 'small', 'base'), with optional field overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown UNet preset '{name}'; use one of {', '.join(PRESETS)}")
    return UNetConfig(**{**PRESETS[name], **overrides})


def label_features(value: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """Fourier features (B, 1 + 2F) of a label (B,) already scaled to ~[0, 1]: [u, sin 2pi f u, cos 2pi f u].

    Smooth in u, so the embedding (and the network) is continuous in eta/s between trained values."""
    u = value.float()[:, None]
    f = frequencies.float()[None]
    return torch.cat([u, torch.sin(2 * math.pi * f * u), torch.cos(2 * math.pi * f * u)], dim=-1)


UNTRAINED_FEATURE_TOLERANCE = 1e-5  # |feature| below this at every trained label: float32 rounding of an exact zero


def untrained_label_features(trained: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """Mask (1 + 2F,) of the label features that vanish at every trained label u (B,), e.g. sin 2 pi u at u = 0, 0.5, 1.

    Their input to the label MLP is zero on every training record, so the first layer's weights on them get no
    gradient and keep their random initialisation; between the trained labels, where they do not vanish, those
    weights would add an embedding shift that no record taught. Empty `trained`: no feature is masked."""
    if trained.numel() == 0:
        return torch.zeros(1 + 2 * frequencies.numel(), dtype=torch.bool)
    return (label_features(trained, frequencies).abs() < UNTRAINED_FEATURE_TOLERANCE).all(dim=0)


class Conv3x3(nn.Module):
    """3x3 convolution keeping the size; the width (phi) axis padded circularly when `periodic`."""

    def __init__(self, cin: int, cout: int, stride: int = 1, periodic: bool = True) -> None:
        super().__init__()
        self.periodic = periodic
        # periodic: the width is padded circularly here and the height with zeros by the convolution itself (one
        # padded copy of the input instead of two)
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=(1, 0) if periodic else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.periodic:
            # the circular pad as a concatenation: F.pad(mode="circular") returns a contiguous (NCHW) tensor, so a
            # channels-last network would convert back and forth around every convolution; cat keeps the format
            x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
        return self.conv(x)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the embedding (B, E) scales and shifts the second normalisation."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(cfg.groups, cin)
        self.conv1 = Conv3x3(cin, cout, periodic=cfg.periodic_phi)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(cfg.groups, cout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = Conv3x3(cout, cout, periodic=cfg.periodic_phi)
        nn.init.zeros_(self.conv2.conv.weight)
        nn.init.zeros_(self.conv2.conv.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual, via scaled_dot_product_attention."""

    def __init__(self, channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.heads = cfg.num_heads
        self.norm = nn.GroupNorm(cfg.groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # contiguous (B, heads, HW, C/heads): the fused attention kernels need unit stride in the last dimension;
        # with the transposed view a GPU profile showed attention on the slow reference (math) path
        q, k, v = qkv.transpose(-1, -2).contiguous().unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps-prediction network: forward(z_t (B,1,R,R), t (B,), ic (B,1,R,R), label (B,)) -> (B,1,R,R).

    `label` is eta/s already mapped to ~[0, 1] by the caller (hicgen.spectra.normalization.label_scale)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch0 = cfg.base_channels
        emb_dim = 4 * ch0
        self.time_embed = FourierTimeEmbedding(emb_dim)
        n_label = 1 + 2 * len(cfg.label_frequencies)
        self.label_mlp = nn.Sequential(nn.Linear(n_label, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # a buffer (moves with the module), not a tensor made per call: a host-to-device copy cannot be captured
        # in a CUDA graph
        self.register_buffer("label_frequencies", torch.tensor(cfg.label_frequencies, dtype=torch.float32),
                             persistent=False)
        self.conv_in = Conv3x3(cfg.out_channels + cfg.cond_channels, ch0, periodic=cfg.periodic_phi)

        self.down = nn.ModuleList()
        skips, ch, res = [ch0], ch0, cfg.resolution
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                block = nn.ModuleList([ResBlock(ch, ch0 * mult, emb_dim, cfg)])
                ch = ch0 * mult
                if res in cfg.attn_resolutions:
                    block.append(Attention(ch, cfg))
                self.down.append(block)
                skips.append(ch)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([Conv3x3(ch, ch, stride=2, periodic=cfg.periodic_phi)]))
                skips.append(ch)
                res //= 2

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, cfg), Attention(ch, cfg), ResBlock(ch, ch, emb_dim, cfg)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(ch + skips.pop(), ch0 * mult, emb_dim, cfg)])
                ch = ch0 * mult
                if res in cfg.attn_resolutions:
                    block.append(Attention(ch, cfg))
                if level > 0 and i == cfg.num_res_blocks:
                    block.append(_Upsample(ch, cfg.periodic_phi))
                    res *= 2
                self.up.append(block)

        self.norm_out = nn.GroupNorm(cfg.groups, ch)
        self.conv_out = Conv3x3(ch, cfg.out_channels, periodic=cfg.periodic_phi)
        nn.init.zeros_(self.conv_out.conv.weight)
        nn.init.zeros_(self.conv_out.conv.bias)

    def embedding(self, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Time embedding plus eta/s label embedding, (B, 4 * base_channels)."""
        return self.time_embed(t) + self.label_mlp(label_features(label, self.label_frequencies))

    @torch.no_grad()
    def drop_untrained_label_weights(self, trained: torch.Tensor) -> int:
        """Zero the label MLP's first-layer weights on the features that vanish at every trained label u (B,)
        (untrained_label_features): the network is unchanged at the trained labels and no longer carries its random
        initialisation between them. Returns how many features were dropped."""
        mask = untrained_label_features(trained.to(self.label_frequencies.device), self.label_frequencies)
        self.label_mlp[0].weight[:, mask] = 0.0
        return int(mask.sum())

    def forward(self, z: torch.Tensor, t: torch.Tensor, ic: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        emb = self.embedding(t, label)
        h = self.conv_in(torch.cat([z, ic.to(z.dtype)], dim=1))
        hs = [h]
        for block in self.down:
            for layer in block:
                h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for block in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for layer in block:
                h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class _Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution."""

    def __init__(self, channels: int, periodic: bool) -> None:
        super().__init__()
        self.conv = Conv3x3(channels, channels, periodic=periodic)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
