"""Normalisation of the spectra model's inputs and target, with the constants stored in the checkpoint.

Target: the per-event *histogram* of charged hadrons (counts per (pT, phi) bin, |y| < 0.5), like paper
000, whose spectra are histograms of real particles: the model must reproduce the finite-multiplicity
fluctuations, not only the smooth hydro response. Counts are mapped in two steps:

1. Anscombe transform A(c) = 2 sqrt(c + 3/8). It stabilises the Poisson variance (Var A ~ 1 for any mean),
   so the eps-MSE weighs the counting noise of a 0.1-count bin and of a 10-count bin alike; log1p would
   leave the variance mean-dependent and compress the bulk where the flow signal is. The algebraic inverse
   c = (A/2)^2 - 3/8 is applied to *samples* (each generated histogram is a sample in A-space), not to a
   mean, so the well-known small-count bias of inverting an averaged Anscombe value does not arise here;
   values below zero counts are clipped to 0.
2. An affine map to [-1, 1]: z = 2 (A(c) - A(0)) / count_scale - 1, so an empty bin is -1 and the
   99.9th percentile of the training counts is +1 (count_scale = A(q99.9) - A(0), from the training data).
   While sampling, denoised estimates are clipped to [-1, z(2 count_max)] (x0_range).

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

ANSCOMBE_SHIFT = 3.0 / 8.0
COUNT_QUANTILE = 0.999


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

    def __post_init__(self) -> None:
        if not (self.count_scale > 0 and self.ic_scale > 0):
            raise ValueError(f"scales must be positive, got count_scale={self.count_scale}, ic_scale={self.ic_scale}")
        if self.eta_s_max < self.eta_s_min:
            raise ValueError(f"eta_s_max={self.eta_s_max} < eta_s_min={self.eta_s_min}")

    def to_dict(self) -> dict:
        return asdict(self)

    def x0_range(self) -> tuple[float, float]:
        """Model-space range denoised estimates are clipped to while sampling: empty bin .. twice the largest
        training count (static thresholding, as in DDPM: eps-prediction divides by alpha(t) ~ 5e-5 at t = 1)."""
        top = 2.0 * (float(anscombe(2.0 * self.count_max)) - float(anscombe(0.0))) / self.count_scale - 1.0
        return -1.0, top


def anscombe(counts: torch.Tensor | np.ndarray):
    """A(c) = 2 sqrt(c + 3/8), elementwise."""
    return 2.0 * (counts + ANSCOMBE_SHIFT) ** 0.5


def fit_normalization(histograms: np.ndarray, ic: np.ndarray, eta_s: np.ndarray) -> SpectraNormalization:
    """Constants from training records: histograms (N, P, Q) counts, ic (N, 64, 64), eta_s (N,)."""
    top = float(np.quantile(histograms, COUNT_QUANTILE))
    count_scale = float(anscombe(max(top, 1.0)) - anscombe(0.0))
    ic_scale = float(np.mean(ic.reshape(len(ic), -1).max(axis=1)))
    return SpectraNormalization(
        count_scale=count_scale,
        ic_scale=ic_scale if ic_scale > 0 else 1.0,
        eta_s_min=float(np.min(eta_s)),
        eta_s_max=float(np.max(eta_s)),
        count_max=float(max(np.max(histograms), 1.0)),
    )


def counts_to_model(counts: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Histogram counts (...) -> model space z in ~[-1, 1]."""
    return 2.0 * (anscombe(counts.clamp(min=0)) - anscombe(0.0)) / norm.count_scale - 1.0


def model_to_counts(z: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Model-space sample z (...) -> counts >= 0 (algebraic inverse of counts_to_model, clipped at 0)."""
    a = (z + 1.0) * (0.5 * norm.count_scale) + anscombe(0.0)
    return ((0.5 * a.clamp(min=0)) ** 2 - ANSCOMBE_SHIFT).clamp(min=0)


def ic_to_model(ic: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """Initial profile (..., 64, 64) in trento units -> network input."""
    return ic / norm.ic_scale


def label_scale(eta_s: torch.Tensor, norm: SpectraNormalization) -> torch.Tensor:
    """eta/s (B,) -> u (B,), 0 and 1 at the ends of the trained range."""
    span = norm.eta_s_max - norm.eta_s_min
    return (eta_s - norm.eta_s_min) / (span if span > 0 else 1.0)


def bin_measure(pt_edges: np.ndarray, phi_edges: np.ndarray, dy: float = 1.0) -> np.ndarray:
    """Integral of pT dpT dphi dy over each bin, (P, Q) in GeV^2."""
    pt_edges, phi_edges = np.asarray(pt_edges, np.float64), np.asarray(phi_edges, np.float64)
    return dy * np.outer(0.5 * np.diff(pt_edges**2), np.diff(phi_edges))


def counts_to_density(counts: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray, dy: float = 1.0) -> np.ndarray:
    """Counts (..., P, Q) -> bin-averaged dN/(dy pT dpT dphi) in GeV^-2."""
    return counts / bin_measure(pt_edges, phi_edges, dy)
