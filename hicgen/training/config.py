"""Training configurations: a generic loop config (used by hicgen.training.trainer) and the point-cloud one.

`TrainConfig` holds what the generic loop needs (steps, batch, optimiser, schedule, EMA, checkpoints);
a model's config subclasses it (`PointCloudConfig` here; the spectra model has its own). Configs are
validated once in __post_init__, stored in every checkpoint (config['training']) and read back from JSON
or TOML files with `load_config_file`; unknown keys are refused so that typos do not pass silently.
Field meanings are documented in docs/model.md.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="TrainConfig")


@dataclass
class TrainConfig:
    """Settings of the generic training loop."""

    steps: int = 3000  # optimiser steps in total
    batch_size: int = 32  # events per step, summed over all ranks (each rank gets batch_size / world_size)
    lr: float = 3e-4  # peak learning rate
    min_lr_fraction: float = 0.1  # cosine decay ends at lr * min_lr_fraction
    warmup_steps: int = 100  # linear warm-up from lr / warmup_steps to lr
    optimizer: str = "lion"  # 'lion' (paper 004) or 'adamw'
    betas: tuple[float, float] = (0.95, 0.99)  # Lion (beta1, beta2) of paper 004
    weight_decay: float = 0.0  # decoupled weight decay
    grad_clip: float = 1.0  # max global gradient norm (0 = no clipping)
    ema_decay: float = 0.999  # EMA of the weights (sampling uses the EMA weights); warm-up min(d, (1+s)/(10+s))
    val_every: int = 250  # steps between validation losses (EMA weights); the best is saved as the checkpoint
    state_every: int = 250  # steps between full training-state saves (for --resume)
    log_every: int = 25  # steps between log lines
    seed: int = 0  # seeds model init, data order and per-event noise
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the networks (fewer kernel launches per step; a compilation first)

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        positive = ("steps", "batch_size", "val_every", "state_every", "log_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.min_lr_fraction <= 1 or self.warmup_steps < 0:
            raise ValueError(f"need lr > 0, 0 <= min_lr_fraction <= 1, warmup_steps >= 0; got {self.lr}, {self.min_lr_fraction}, {self.warmup_steps}")
        if self.optimizer not in ("lion", "adamw"):
            raise ValueError(f"training.optimizer must be 'lion' or 'adamw', got '{self.optimizer}'")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"training.betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("need 0 <= ema_decay < 1, grad_clip >= 0, weight_decay >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "betas": list(self.betas)}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from a dict, refusing unknown keys (ValueError naming them and the known ones)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (None values are ignored)."""
        return self.from_dict({**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}})


@dataclass
class PointCloudConfig(TrainConfig):
    """Point-cloud model (paper 004): sizes of both branches, loss weights, data split, fine-tuning."""

    event_width: int = 128  # hidden width of the event MLP
    event_blocks: int = 3  # residual blocks of the event MLP
    pet_dim: int = 64  # token width of the PET
    pet_heads: int = 4  # attention heads
    pet_layers: int = 4  # transformer blocks of the PET body
    pet_head_layers: int = 2  # transformer blocks of the generator head
    pet_neighbors: int = 8  # k of the local kNN edge block
    event_batch_factor: int = 8  # the event branch sees this many times batch_size event vectors per step (cheap)
    event_loss_weight: float = 1.0
    particle_loss_weight: float = 1.0
    ep_loss_weight: float = 0.0  # weight of the event-plane loss 1 - cos 2(psi2_reco - psi2_true) (paper 004 V.3)
    ep_loss_t_max: float = 0.5  # the event-plane loss acts on events with diffusion time t < this
    freeze_body: bool = False  # fine-tuning: keep the PET body fixed
    body_lr_scale: float = 1.0  # learning-rate multiplier of the PET body (fine-tuning: e.g. 0.1)
    val_fraction: float = 0.05  # share of the events held out for the validation loss
    max_val_events: int = 512  # validation events used at most
    max_events: int = 0  # use at most this many events of the file (0 = all)
    eval_batch_size: int = 64  # events per validation batch
    preset: str = "custom"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("event_batch_factor", "event_width", "event_blocks", "pet_dim", "pet_heads", "pet_layers", "pet_head_layers", "max_val_events", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if self.pet_dim % self.pet_heads:
            raise ValueError(f"training.pet_dim ({self.pet_dim}) must be divisible by pet_heads ({self.pet_heads})")
        if not 0 < self.val_fraction < 1 or self.max_events < 0 or self.pet_neighbors < 0:
            raise ValueError("need 0 < val_fraction < 1, max_events >= 0, pet_neighbors >= 0")
        if min(self.event_loss_weight, self.particle_loss_weight, self.ep_loss_weight, self.body_lr_scale) < 0:
            raise ValueError("loss weights and body_lr_scale must be >= 0")

    def architecture(self, phi_period: float, event_dim: int, num_features: int, phi_abs_period: float | None = None) -> dict[str, dict]:
        """config['architecture'] of the checkpoint: EventMLPConfig and PETConfig fields; the phi periods are
        2 pi / std of phi_rel and of phi (PointCloudTransforms.phi_period, .phi_abs_period)."""
        return {
            "event": {"event_dim": event_dim, "dim": self.event_width, "num_blocks": self.event_blocks},
            "particle": {
                "num_features": num_features, "cond_dim": event_dim, "dim": self.pet_dim, "num_heads": self.pet_heads,
                "num_layers": self.pet_layers, "num_head_layers": self.pet_head_layers,
                "num_neighbors": self.pet_neighbors, "phi_period": phi_period,
                "phi_abs_period": phi_period if phi_abs_period is None else phi_abs_period,
            },
        }


# Size presets. 'small': 0.76 M parameters, 3000 steps of 32 O-O events: ~0.7 CPU-seconds per step on one
# core here, so ~30-40 minutes on two cores (see docs/model.md); lr 1e-3 (300 steps on 1,500 Angantyr O-O
# events: best validation loss 1.456 at lr 1e-3 against 1.644 at 3e-4).
# 'base': ~2.5 M parameters, close to the paper's 2.15 M, for GPU training.
PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(preset="small", steps=3000, batch_size=32, lr=1e-3, warmup_steps=100),
    "base": dict(
        preset="base", event_width=128, event_blocks=4, pet_dim=128, pet_heads=8, pet_layers=6, pet_head_layers=2,
        pet_neighbors=16, steps=200_000, batch_size=64, lr=1e-4, warmup_steps=2000, val_every=2000, state_every=2000,
        log_every=100, max_val_events=4096,
    ),
}


def preset_config(name: str, **overrides: Any) -> PointCloudConfig:
    """The preset `name` ('small' or 'base') with some fields changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return PointCloudConfig.from_dict({**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Training-config fields from a .json or .toml file (a top-level [training] table is also accepted)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        data = tomllib.loads(text)
    elif path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"config file '{path}' must end in .json or .toml")
    if isinstance(data.get("training"), dict):
        data = data["training"]
    return data

