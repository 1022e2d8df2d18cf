"""Samplers against the exact probability-flow ODE of Gaussian data, on both schedules."""

from __future__ import annotations

import math

import pytest
import torch

from hicgen.diffusion.samplers import GRIDS, SAMPLERS, evaluations, make_grid, sample, x0_denoiser
from hicgen.diffusion.schedules import CosineSchedule, VPSchedule, target

MU, S0 = 0.5, 0.2  # data x0 ~ N(MU, S0^2) in every dimension
SCHEDULES = [CosineSchedule(), VPSchedule()]


def gaussian_denoiser(schedule):
    """Exact E[x0 | z_t] for Gaussian data."""

    def denoise(z, t):
        a = schedule.alpha(t).to(z.dtype)[:, None]
        s = schedule.sigma(t).to(z.dtype)[:, None]
        return MU + a * S0**2 / (a**2 * S0**2 + s**2) * (z - a * MU)

    return denoise


def exact_solution(schedule, noise):
    """The ODE maps z_T ~ N(a_T MU, a_T^2 S0^2 + s_T^2) affinely onto N(MU, S0^2)."""
    t = torch.tensor([schedule.t_max], dtype=torch.float64)
    a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
    return MU + S0 / math.sqrt(a**2 * S0**2 + s**2) * (noise - a * MU)


@pytest.fixture(scope="module")
def noise():
    return torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def rms_error(schedule, noise, sampler, steps):
    x = sample(gaussian_denoiser(schedule), noise, schedule, steps, sampler)
    return float((x - exact_solution(schedule, noise)).pow(2).mean().sqrt())


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["cosine", "vp"])
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_converges_to_analytic_distribution(schedule, noise, sampler):
    steps, atol = (256, 0.03) if sampler == "ddim" else (128, 0.01)
    x = sample(gaussian_denoiser(schedule), noise, schedule, steps, sampler)
    assert torch.allclose(x, exact_solution(schedule, noise), atol=atol)
    assert abs(float(x.mean()) - MU) < 0.02 and abs(float(x.std()) - S0) < 0.02


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["cosine", "vp"])
def test_higher_order_converges_faster(schedule, noise):
    err = {name: [rms_error(schedule, noise, name, n) for n in (32, 64)] for name in SAMPLERS}
    assert 0.35 < err["ddim"][1] / err["ddim"][0] < 0.65  # first order: error halves
    for name in ("dpm++2m", "heun"):
        assert err[name][1] / err[name][0] < 0.35  # second order: error / 4
        assert err[name][1] < err["ddim"][1] / 5


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_no_host_synchronisation(sampler):
    """Meta tensors hold no data: any .item() or data-dependent branch in the step loop would raise."""
    schedule = CosineSchedule()
    z = torch.empty(3, 5, 4, device="meta")
    out = sample(lambda z, t: torch.tanh(z) * t[:, None, None], z, schedule, 6, sampler)
    assert out.shape == z.shape and out.device.type == "meta"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_evaluation_count(sampler):
    calls = []

    def denoise(z, t):
        calls.append(t)
        assert t.shape == (z.shape[0],)
        return torch.zeros_like(z)

    sample(denoise, torch.randn(4, 3), CosineSchedule(), 7, sampler)
    assert len(calls) == evaluations(sampler, 7)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["cosine", "vp"])
@pytest.mark.parametrize("spacing", list(GRIDS))
def test_grids_decrease_from_t_max_to_zero(schedule, spacing):
    grid = make_grid(schedule, 10, spacing)
    t = torch.tensor(grid.t)
    assert grid.steps == 10 and t[0] == schedule.t_max and t[-1] == 0
    assert bool((t[1:] < t[:-1]).all())
    assert grid.sigma[-1] == 0 and abs(grid.alpha[-1] - 1) < 1e-12


def test_logsnr_grid_is_uniform_in_log_snr():
    grid = make_grid(VPSchedule(), 8, "logsnr")
    lam = torch.tensor([math.log(a / s) for a, s in zip(grid.alpha[:-1], grid.sigma[:-1])])
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(7), rtol=1e-6)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["cosine", "vp"])
def test_x0_denoiser_maps_network_output_to_x0(schedule):
    x0, eps = torch.randn(6, 3), torch.randn(6, 3)
    t = torch.rand(6) * 0.55 + 0.05  # eps-prediction divides by alpha: keep it away from 0 in float32
    z = schedule.alpha(t)[:, None] * x0 + schedule.sigma(t)[:, None] * eps
    perfect = lambda z_, t_: target(schedule, x0, t_, eps)  # noqa: E731
    assert torch.allclose(x0_denoiser(perfect, schedule)(z, t), x0, atol=1e-4)


def test_light_name_list_matches_registry():
    from hicgen.engine.defaults import DEFAULT_SAMPLER, SAMPLER_NAMES

    assert tuple(SAMPLERS) == SAMPLER_NAMES and DEFAULT_SAMPLER in SAMPLERS


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sample(lambda z, t: z, torch.zeros(1, 1), CosineSchedule(), 4, "euler")
    with pytest.raises(ValueError, match="unknown time spacing"):
        make_grid(CosineSchedule(), 4, "geometric")


def test_narrowed_logsnr_grid():
    """logsnr_range: t_max, then lambda uniform from lo + h to hi, then t = 0; bad ranges are refused."""
    schedule = VPSchedule()
    grid = make_grid(schedule, 4, "logsnr", (-2.0, 4.0))
    lam = [math.log(a / s) for a, s in zip(grid.alpha[:-1], grid.sigma[:-1])]
    assert grid.t[0] == schedule.t_max and grid.t[-1] == 0.0 and grid.steps == 4
    assert lam[0] < -2.0 and lam[1:] == pytest.approx([0.0, 2.0, 4.0], abs=1e-6)
    full = make_grid(schedule, 4, "logsnr")
    assert math.log(full.alpha[-2] / full.sigma[-2]) == pytest.approx(-math.log(2e-3), abs=1e-6)
    with pytest.raises(ValueError, match="lo < hi"):
        make_grid(schedule, 4, "logsnr", (4.0, -2.0))
    with pytest.raises(ValueError, match="lo < hi"):
        make_grid(schedule, 4, "logsnr", (-50.0, 4.0))  # below lambda(t_max)
    with pytest.raises(ValueError, match="lo < hi"):
        make_grid(schedule, 4, "logsnr", (-2.0, math.inf))
    with pytest.raises(ValueError, match="applies to the 'logsnr' spacing"):
        make_grid(schedule, 4, "karras", (-2.0, 4.0))
    # the narrowed grid still solves the Gaussian ODE: its error is that of a few-step solve, not of a broken grid
    noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = sample(gaussian_denoiser(schedule), noise, schedule, 16, "dpm++2m", logsnr_range=(-4.0, 6.0))
    assert float((x - exact_solution(schedule, noise)).pow(2).mean().sqrt()) < 0.02
