"""Optimiser and learning-rate schedule: Lion (Chen et al. 2023, arXiv:2302.06675) and cosine decay with warm-up.

Lion is written here (a dozen lines) rather than taken from a package: per parameter with momentum m,
    update = sign(beta1 m + (1 - beta1) g);  p <- p (1 - lr wd) - lr update;  m <- beta2 m + (1 - beta2) g.
Its state is one tensor per parameter ('exp_avg'), so a checkpoint of it is a plain tensor dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Lion(torch.optim.Optimizer):
    """Lion: sign of an interpolated momentum; lr is typically 3-10x smaller than AdamW's."""

    def __init__(self, params: Iterable, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0) -> None:
        if lr <= 0 or not all(0 <= b < 1 for b in betas) or weight_decay < 0:
            raise ValueError(f"invalid Lion settings lr={lr}, betas={betas}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:  # multi-tensor (foreach) ops: a few kernel launches per group, not per tensor
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
            moments = [self.state[p]["exp_avg"] for p in params]
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            update = torch._foreach_mul(moments, beta1)
            torch._foreach_add_(update, grads, alpha=1 - beta1)
            torch._foreach_add_(params, torch._foreach_sign(update), alpha=-group["lr"])
            torch._foreach_mul_(moments, beta2)
            torch._foreach_add_(moments, grads, alpha=1 - beta2)
        return loss


def cosine_lr(step: int, lr: float, total_steps: int, warmup_steps: int, min_fraction: float) -> float:
    """Learning rate at optimiser step `step` (0-based): linear warm-up to `lr` over `warmup_steps`, then
    cosine decay to lr * min_fraction at `total_steps`."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return lr * (min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(name: str, groups: list[dict], lr: float, betas: tuple[float, float], weight_decay: float,
                   fused: bool = False) -> torch.optim.Optimizer:
    """'lion' or 'adamw' over parameter groups (each may carry an 'lr_scale'); fused=True (CUDA parameters only)
    takes torch's fused AdamW kernels, one launch per step instead of one per tensor or per tensor list."""
    if name == "lion":
        return Lion(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused or None)
    raise ValueError(f"unknown optimizer '{name}'")
