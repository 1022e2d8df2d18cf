"""ODE samplers for the probability-flow ODE of any schedule in `hicgen.diffusion.schedules`.

Every sampler is one small function `sampler(denoise, z, grid) -> x0` with the same signature:

- `denoise(z, t) -> x0_hat` maps a noisy state z (B, ...) at times t (B,) to the denoised estimate
  (wrap a network with `x0_denoiser`, which applies the schedule's parameterisation);
- `z` is the state at grid.t[0] (for the schedules here: standard normal noise, since sigma(t_max) ~ 1);
- `grid` is a `TimeGrid`: times, alpha and sigma as host floats (float64), computed once before the loop.

All step coefficients are host floats, so the step loop never synchronises with the device (no
`.item()`, no branching on tensor values) and a whole `sample` call can be captured as one CUDA graph.

Samplers (all written in data prediction, x0 = D(z, t), with lambda = log(alpha / sigma)):
- `ddim`: first order; one evaluation per step. z' = (s'/s) z + (a' - a s'/s) D  (Song et al. 2021).
- `dpmpp_2m`: DPM-Solver++(2M) (Lu et al. 2022): second-order multistep, one evaluation per step;
  D is replaced by (1 + 1/2r) D_i - (1/2r) D_{i-1}, r = h_{i-1}/h_i; first order on the first and last step.
- `heun`: Heun's second-order method on dx/ds = (x - D)/s in x = z/alpha, s = sigma/alpha (Karras et al.
  2022, EDM); two evaluations per step except the last (a plain Euler step to t = 0).
Time grids are separate functions (`GRIDS`). The default is uniform log-SNR spacing: on Gaussian data
with the exact denoiser (as in tests/test_samplers.py) it gave the smallest error of the three grids
for both second-order samplers on both schedules at 8-64 steps (DDIM: within 20% of the best). Heun needs more steps than DPM-Solver++(2M) (its corrector over-shoots
on the very large first steps of few-step grids).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hicgen.diffusion.schedules import Schedule, x0_from_output

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SIGMA_EDM_MIN = 2e-3  # smallest nonzero noise level sigma/alpha of the log-SNR and Karras grids (EDM's value)


@dataclass(frozen=True)
class TimeGrid:
    """Decreasing times t[0] = t_max > ... > t[-1] = 0 with alpha(t), sigma(t) as host floats; steps = len(t) - 1."""

    t: tuple[float, ...]
    alpha: tuple[float, ...]
    sigma: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.t) - 1


def grid_from_times(schedule: Schedule, times: torch.Tensor) -> TimeGrid:
    """TimeGrid from decreasing times (steps + 1,) ending at 0; alpha and sigma evaluated in float64."""
    times = times.double().cpu()
    return TimeGrid(
        t=tuple(times.tolist()),
        alpha=tuple(schedule.alpha(times).tolist()),
        sigma=tuple(schedule.sigma(times).tolist()),
    )


def _t_of_sigma_edm(schedule: Schedule, sigma_edm: torch.Tensor) -> torch.Tensor:
    """Invert the increasing map t -> sigma(t)/alpha(t) on [0, t_max] by bisection (any schedule), float64."""
    lo = torch.zeros_like(sigma_edm, dtype=torch.float64)
    hi = torch.full_like(lo, schedule.t_max)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        t = mid.clone()
        above = schedule.sigma(t) / schedule.alpha(t) > sigma_edm
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _sigma_edm_max(schedule: Schedule) -> float:
    t = torch.tensor([schedule.t_max], dtype=torch.float64)
    return float(schedule.sigma(t) / schedule.alpha(t))


def uniform_grid(schedule: Schedule, steps: int) -> TimeGrid:
    """Times uniform in t from t_max to 0."""
    return grid_from_times(schedule, torch.linspace(schedule.t_max, 0.0, steps + 1, dtype=torch.float64))


def logsnr_grid(schedule: Schedule, steps: int, logsnr_range: tuple[float, float] | None = None) -> TimeGrid:
    """Times uniform in log-SNR lambda = log(alpha/sigma) from t_max to sigma/alpha = SIGMA_EDM_MIN, then 0
    (DPM-Solver's recommended spacing).

    logsnr_range = (lo, hi) narrows the spacing for few-step sampling: lambda runs uniformly from lo to hi in
    steps - 1 intervals, and the first point (lo) is moved to t_max, so the first step goes from pure noise
    straight to lo + (hi - lo)/(steps - 1) and the last from hi to 0. Those two steps stay first order at any step
    count, so the solve no longer converges to the exact ODE solution as steps grow; chosen per model by
    measurement (hicgen.spectra: the checkpoint's sampling settings)."""
    if steps == 1:
        return grid_from_times(schedule, torch.tensor([schedule.t_max, 0.0]))
    lo, hi = logsnr_range or (-math.log(_sigma_edm_max(schedule)), -math.log(SIGMA_EDM_MIN))
    if not (-math.log(_sigma_edm_max(schedule)) <= lo < hi and math.isfinite(hi)):
        raise ValueError(f"logsnr_range must satisfy lambda(t_max) = {-math.log(_sigma_edm_max(schedule)):.2f} <= lo < hi < inf, "
                         f"got ({lo}, {hi})")
    log_s = torch.linspace(-lo, -hi, steps, dtype=torch.float64)
    times = _t_of_sigma_edm(schedule, log_s.exp())
    times[0] = schedule.t_max
    return grid_from_times(schedule, torch.cat([times, times.new_zeros(1)]))


def karras_grid(schedule: Schedule, steps: int, rho: float = 7.0) -> TimeGrid:
    """EDM spacing: sigma/alpha uniform in its 1/rho power from t_max to SIGMA_EDM_MIN, then 0."""
    if steps == 1:
        return grid_from_times(schedule, torch.tensor([schedule.t_max, 0.0]))
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    s_max, s_min = _sigma_edm_max(schedule) ** (1 / rho), SIGMA_EDM_MIN ** (1 / rho)
    times = _t_of_sigma_edm(schedule, (s_max + ramp * (s_min - s_max)) ** rho)
    times[0] = schedule.t_max
    return grid_from_times(schedule, torch.cat([times, times.new_zeros(1)]))


GRIDS: dict[str, Callable[[Schedule, int], TimeGrid]] = {
    "uniform": uniform_grid,
    "logsnr": logsnr_grid,
    "karras": karras_grid,
}


def _times(z: torch.Tensor, t: float) -> torch.Tensor:
    """t as a (B,) tensor on z's device: a fill kernel, no host synchronisation."""
    return z.new_full((z.shape[0],), t)


def ddim(denoise: Denoiser, z: torch.Tensor, grid: TimeGrid) -> torch.Tensor:
    """Deterministic DDIM (first order, `grid.steps` evaluations). z: (B, ...) at grid.t[0]; returns x0."""
    a, s = grid.alpha, grid.sigma
    for i in range(grid.steps):
        x0 = denoise(z, _times(z, grid.t[i]))
        ratio = s[i + 1] / s[i]
        z = ratio * z + (a[i + 1] - a[i] * ratio) * x0  # = a' x0 + s' eps_hat
    return z


def dpmpp_2m(denoise: Denoiser, z: torch.Tensor, grid: TimeGrid) -> torch.Tensor:
    """DPM-Solver++(2M): second-order multistep in data prediction (`grid.steps` evaluations). Returns x0."""
    a, s = grid.alpha, grid.sigma
    lam = [math.log(ai / si) if si > 0 else math.inf for ai, si in zip(a, s)]
    x0_prev = None
    for i in range(grid.steps):
        x0 = denoise(z, _times(z, grid.t[i]))
        d = x0
        if x0_prev is not None and s[i + 1] > 0:  # host-side grid test, not a data-dependent branch
            r = (lam[i] - lam[i - 1]) / (lam[i + 1] - lam[i])
            d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        ratio = s[i + 1] / s[i]
        z = ratio * z + (a[i + 1] - a[i] * ratio) * d  # = (s'/s) z - a' expm1(-h) d
        x0_prev = x0
    return z


def heun(denoise: Denoiser, z: torch.Tensor, grid: TimeGrid) -> torch.Tensor:
    """Heun's second-order method (EDM), `2 steps - 1` evaluations. Returns x0.

    With x = z/alpha and s = sigma/alpha the ODE is dx/ds = eps_hat = (z - alpha D)/sigma. The Euler
    predictor equals a DDIM step; the corrector adds alpha' (s' - s)/2 (eps' - eps) to it.
    """
    a, s = grid.alpha, grid.sigma
    for i in range(grid.steps):
        x0 = denoise(z, _times(z, grid.t[i]))
        ratio = s[i + 1] / s[i]
        z_euler = ratio * z + (a[i + 1] - a[i] * ratio) * x0
        if s[i + 1] == 0:  # host-side grid test: last step is plain Euler
            z = z_euler
            continue
        x0_next = denoise(z_euler, _times(z, grid.t[i + 1]))
        eps = (z - a[i] * x0) / s[i]
        eps_next = (z_euler - a[i + 1] * x0_next) / s[i + 1]
        z = z_euler + 0.5 * (s[i + 1] - a[i + 1] * s[i] / a[i]) * (eps_next - eps)
    return z


Sampler = Callable[[Denoiser, torch.Tensor, TimeGrid], torch.Tensor]
SAMPLERS: dict[str, Sampler] = {"ddim": ddim, "dpm++2m": dpmpp_2m, "heun": heun}


def evaluations(sampler: str, steps: int) -> int:
    """Network evaluations one `sample` call makes (NFE)."""
    return 2 * steps - 1 if sampler == "heun" else steps


def x0_denoiser(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: Schedule) -> Denoiser:
    """Wrap a network `model(z, t) -> output` (v or eps per the schedule) as `denoise(z, t) -> x0_hat`,
    computed in z's dtype (the network may run in lower precision under autocast)."""

    def denoise(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0_from_output(schedule, z, t, model(z, t).to(z.dtype))

    return denoise


def make_grid(schedule: Schedule, steps: int, spacing: str = "logsnr",
              logsnr_range: tuple[float, float] | None = None) -> TimeGrid:
    """The time grid of `steps` steps with `spacing` from GRIDS; logsnr_range narrows the 'logsnr' spacing
    (logsnr_grid)."""
    if spacing not in GRIDS:
        raise ValueError(f"unknown time spacing '{spacing}'; use one of {', '.join(GRIDS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if logsnr_range is not None:
        if spacing != "logsnr":
            raise ValueError(f"logsnr_range applies to the 'logsnr' spacing, not '{spacing}'")
        return logsnr_grid(schedule, steps, tuple(logsnr_range))
    return GRIDS[spacing](schedule, steps)


def sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    schedule: Schedule,
    steps: int,
    sampler: str = "dpm++2m",
    generator: torch.Generator | None = None,
    spacing: str = "logsnr",
    logsnr_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Integrate the probability-flow ODE from `noise` (B, ...) at t_max to t = 0; returns x0 (B, ...).

    `denoise(z, t (B,)) -> x0_hat`; `sampler` in SAMPLERS; `spacing` in GRIDS (logsnr_range: see logsnr_grid).
    `generator` is accepted for stochastic samplers; the three ODE samplers here draw no randomness,
    so the result depends only on `noise`.
    """
    del generator  # the ODE samplers are deterministic given the noise
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
    grid = make_grid(schedule, steps, spacing, logsnr_range)
    return SAMPLERS[sampler](denoise, noise, grid)
