"""Normalisation of the spectra model's inputs and target, with the constants stored in the checkpoint.

Two targets (SpectraConfig.target), each with its own transform:

'histogram' (transform 'anscombe'): the per-event Poisson-sampled counts per (pT, phi) bin, |y| < 0.5, like
paper 000, whose spectra are histograms of real particles; the model must then reproduce the
finite-multiplicity fluctuations itself. Counts are mapped in two steps:

1. Anscombe transform A(c) = 2 sqrt(c + 3/8). It stabilises the Poisson variance (Var A ~ 1 for any mean),
   so the eps-MSE weighs the counting noise of a 0.1-count bin and of a 10-count bin alike. The algebraic
   inverse c = (A/2)^2 - 3/8 is applied to *samples*, not to a mean; values below zero counts are clipped to 0.
2. An affine map to [-1, 1]: z = 2 (A(c) - A(0)) / count_scale - 1, so an empty bin is -1 and the
   99.9th percentile of the training counts is +1 (count_scale = A(q99.9) - A(0), from the training data).
   While sampling, denoised estimates are clipped to [-1, z(2 count_max)] (x0_range).

'spectrum' (transform 'logyield'): the smooth Cooper-Frye spectrum as expected counts per bin. The reference
chain's only randomness given the IC is the independent Poisson sampling of each bin (no decays or
rescattering), so the model learns the smooth spectrum and the histogram is drawn from it exactly
(hicgen.spectra.generate.poisson_histograms). Map: z = (ln c - log_mean[p]) / log_std[p], the log-yield
standardised per pT row p over the training events and phi bins, so every row has unit spread although the
yields fall by ~10^3 between 0 and 2 GeV; a flow modulation 2 v_n cos n(phi - Psi_n) is then ~0.1-0.3 in z.
Denoised estimates are clipped to the training range of z widened by one unit (x0_range).

Condition: the initial entropy profile (64 x 64, rows y, columns x) divided by one global constant
ic_scale = the mean over training events of the per-event maximum, so profiles keep their absolute size
(it sets the multiplicity) and a typical peak is ~1. No per-event normalisation, no log.

Label: eta/s mapped to u = (eta/s - eta_s_min) / (eta_s_max - eta_s_min) over the trained range, the
input of the network's Fourier-feature label embedding.

The densities written next to the counts are bin averages of dN/(dy pT dpT dphi) [GeV^-2]:
counts / (dy dphi (pT_hi^2 - pT_lo^2) / 2), the exact measure of a bin, with dy = 1 (|y| < 0.5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from hicgen.truth.spectra_data import bin_measure

ANSCOMBE_SHIFT = 3.0 / 8.0
COUNT_QUANTILE = 0.999
LOG_FLOOR = 1e-12  # expected counts below this are treated as this in ln c (the chain's bins hold > 1e-4)
TRANSFORMS = {"histogram": "anscombe", "spectrum": "logyield"}


@dataclass(frozen=True)
class SpectraNormalization:
    """Constants of the maps above, fitted once on the training data (fit_normalization)."""

    count_scale: float
    ic_scale: float
    eta_s_min: float
    eta_s_max: float
    count_max: float = 100.0
    target: str = "histogram"
    transform: str = "anscombe"
    log_mean: tuple[float, ...] = ()  # 'logyield': mean of ln c per pT row
    log_std: tuple[float, ...] = ()  # 'logyield': spread of ln c per pT row
    z_range: tuple[float, float] = (-1.0, 1.0)  # 'logyield': range of z over the training records

    def __post_init__(self) -> None:
        object.__setattr__(self, "log_mean", tuple(float(v) for v in self.log_mean))
        object.__setattr__(self, "log_std", tuple(float(v) for v in self.log_std))
        object.__setattr__(self, "z_range", tuple(float(v) for v in self.z_range))
        if not (self.count_scale > 0 and self.ic_scale > 0):
            raise ValueError(f"scales must be positive, got count_scale={self.count_scale}, ic_scale={self.ic_scale}")
        if self.eta_s_max < self.eta_s_min:
            raise ValueError(f"eta_s_max={self.eta_s_max} < eta_s_min={self.eta_s_min}")
        if TRANSFORMS.get(self.target) != self.transform:
            raise ValueError(f"target '{self.target}' goes with transform '{TRANSFORMS.get(self.target)}', got '{self.transform}'")
        if self.transform == "logyield" and (not self.log_mean or len(self.log_mean) != len(self.log_std)
                                             or min(self.log_std) <= 0):
            raise ValueError("the 'logyield' transform needs log_mean and positive log_std per pT row")

    def to_dict(self) -> dict:
        return asdict(self)

    def x0_range(self) -> tuple[float, float]:
        """Model-space range denoised estimates are clipped to while sampling (static thresholding, as in DDPM:
        eps-prediction divides by alpha(t) ~ 5e-5 at t = 1): 'anscombe' empty bin .. twice the largest training
        count; 'logyield' the training range of z widened by 1 on both sides."""
        if self.transform == "logyield":
            return self.z_range[0] - 1.0, self.z_range[1] + 1.0
        top = 2.0 * (float(anscombe(2.0 * self.count_max)) - float(anscombe(0.0))) / self.count_scale - 1.0
        return -1.0, top


def anscombe(counts: torch.Tensor | np.ndarray):
    """A(c) = 2 sqrt(c + 3/8), elementwise."""
    return 2.0 * (counts + ANSCOMBE_SHIFT) ** 0.5


def fit_normalization(counts: np.ndarray, ic: np.ndarray, eta_s: np.ndarray, target: str = "histogram") -> SpectraNormalization:
    """Constants from training records: counts (N, P, Q) per bin (sampled for 'histogram', expected for
    'spectrum'), ic (N, 64, 64), eta_s (N,)."""
    if target not in TRANSFORMS:
        raise ValueError(f"target must be one of {', '.join(TRANSFORMS)}, got '{target}'")
    top = float(np.quantile(counts, COUNT_QUANTILE))
    ic_scale = float(np.mean(ic.reshape(len(ic), -1).max(axis=1)))
    logyield = {}
    if target == "spectrum":
        log_c = np.log(np.maximum(counts, LOG_FLOOR).astype(np.float64))
        mean, std = log_c.mean(axis=(0, 2)), np.maximum(log_c.std(axis=(0, 2)), 1e-3)
        z = (log_c - mean[None, :, None]) / std[None, :, None]
        logyield = dict(log_mean=tuple(mean), log_std=tuple(std), z_range=(float(z.min()), float(z.max())))
    return SpectraNormalization(
        count_scale=float(anscombe(max(top, 1.0)) - anscombe(0.0)),
        ic_scale=ic_scale if ic_scale > 0 else 1.0,
        eta_s_min=float(np.min(eta_s)),
        eta_s_max=float(np.max(eta_s)),
        count_max=float(max(np.max(counts), 1.0)),
        target=target,
        transform=TRANSFORMS[target],
        **logyield,
    )


def _row_constants(norm: SpectraNormalization, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_mean, log_std as (P, 1) tensors on like's device, broadcasting over (..., P, Q)."""
    mean = torch.tensor(norm.log_mean, dtype=torch.float32, device=like.device)[:, None]
    return mean, torch.tensor(norm.log_std, dtype=torch.float32, device=like.device)[:, None]


def counts_to_model(counts: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Counts per bin (..., P, Q) -> model space z ('anscombe': ~[-1, 1]; 'logyield': standardised ln c)."""
    if norm.transform == "logyield":
        mean, std = _row_constants(norm, counts)
        return (torch.log(counts.clamp(min=LOG_FLOOR)) - mean) / std
    return 2.0 * (anscombe(counts.clamp(min=0)) - anscombe(0.0)) / norm.count_scale - 1.0


def model_to_counts(z: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Model-space sample z (..., P, Q) -> counts >= 0 (inverse of counts_to_model; 'anscombe' clipped at 0)."""
    if norm.transform == "logyield":
        mean, std = _row_constants(norm, z)
        return torch.exp(z * std + mean)
    a = (z + 1.0) * (0.5 * norm.count_scale) + anscombe(0.0)
    return ((0.5 * a.clamp(min=0)) ** 2 - ANSCOMBE_SHIFT).clamp(min=0)


def ic_to_model(ic: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Initial profile (..., 64, 64) in trento units -> network input."""
    return ic / norm.ic_scale


def label_scale(eta_s: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """eta/s (B,) -> u (B,), 0 and 1 at the ends of the trained range."""
    span = norm.eta_s_max - norm.eta_s_min
    return (eta_s - norm.eta_s_min) / (span if span > 0 else 1.0)


def counts_to_density(counts: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray, dy: float = 1.0,
                      dtype: np.dtype | None = None) -> np.ndarray:
    """Counts (..., P, Q) -> bin-averaged dN/(dy pT dpT dphi) in GeV^-2 (divided in float64 whatever `dtype`, the
    result's type: the default's, or its values rounded once, without a float64 copy)."""
    measure = bin_measure(pt_edges, phi_edges, dy)
    return np.divide(counts, measure, out=None if dtype is None else np.empty(np.shape(counts), dtype))
