"""Noise schedules on continuous time t in [0, 1]: z_t = alpha(t) z_0 + sigma(t) eps, alpha^2 + sigma^2 = 1.

- CosineSchedule: alpha = cos(pi t / 2), sigma = sin(pi t / 2) (paper 004, with v-prediction).
- VPSchedule: the discrete DDPM schedule of paper 000 (linear beta from 0.5e-4 to 0.01 over T = 4000 steps),
  alpha_bar_k = prod_{i<=k} (1 - beta_i), read at continuous t = k / T by linear interpolation of
  log alpha_bar (exact at the grid points), with eps-prediction.

Samplers only need alpha(t), sigma(t) and the model's output mapped to an x0 estimate; the helpers
below do that mapping for each parameterisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch



@dataclass(frozen=True)
class CosineSchedule:
    """alpha = cos(pi t / 2), sigma = sin(pi t / 2); the model predicts v = alpha eps - sigma x0."""

    prediction: str = "v"
    t_max: float = 1.0 - 1e-4  # alpha(1) = 0 exactly would make x0 unrecoverable

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sin(0.5 * math.pi * t)


@dataclass(frozen=True)
class VPSchedule:
    """Paper 000's discrete linear-beta schedule made continuous in t = k / T; eps-prediction as the paper, or v."""

    beta_start: float = 0.5e-4
    beta_end: float = 0.01
    num_steps: int = 4000
    prediction: str = "eps"
    t_max: float = 1.0

    def _log_alpha_bar_grid(self, device, dtype=torch.float64) -> torch.Tensor:
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=torch.float64, device=device)
        grid = torch.cumsum(torch.log1p(-betas), 0)
        return torch.cat([torch.zeros(1, dtype=torch.float64, device=device), grid]).to(dtype)  # k = 0..T

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        grid = self._log_alpha_bar_grid(t.device)
        pos = t.double().clamp(0, 1) * self.num_steps
        lo = pos.floor().clamp(max=self.num_steps - 1)
        frac = pos - lo
        lo = lo.long()
        return (grid[lo] * (1 - frac) + grid[lo + 1] * frac).to(t.dtype)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(0.5 * self.log_alpha_bar(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(self.log_alpha_bar(t)))


Schedule = CosineSchedule | VPSchedule


def schedule_from_config(config: dict) -> Schedule:
    """Build a schedule from a checkpoint config entry {'name': 'cosine'|'vp', ...}."""
    name = config.get("name")
    params = {k: v for k, v in config.items() if k != "name"}
    if name == "cosine":
        return CosineSchedule(**params)
    if name == "vp":
        return VPSchedule(**params)
    raise ValueError(f"unknown schedule '{name}'")


def schedule_config(schedule: Schedule) -> dict:
    """The config entry that schedule_from_config turns back into `schedule`."""
    name = "cosine" if isinstance(schedule, CosineSchedule) else "vp"
    return {"name": name, **schedule.__dict__}


def _bcast(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def noisy(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z_t = alpha(t) x0 + sigma(t) eps, t of shape (B,)."""
    return _bcast(schedule.alpha(t), x0) * x0 + _bcast(schedule.sigma(t), x0) * eps


def target(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Training target of the schedule's parameterisation: v = alpha eps - sigma x0, or eps."""
    if schedule.prediction == "v":
        return _bcast(schedule.alpha(t), x0) * eps - _bcast(schedule.sigma(t), x0) * x0
    return eps


def x0_from_output(schedule: Schedule, z_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Denoised estimate from the network output: x0 = alpha z - sigma v (v-pred) or (z - sigma eps) / alpha."""
    alpha, sigma = _bcast(schedule.alpha(t), z_t), _bcast(schedule.sigma(t), z_t)
    if schedule.prediction == "v":
        return alpha * z_t - sigma * output
    return (z_t - sigma * output) / alpha
