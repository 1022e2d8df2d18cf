"""Centrality calibration of a training sample: percentiles of impact parameter b and multiplicity.

Centrality c (percent) of an event is the fraction of the sample that is more central: by impact parameter,
c = P(b' < b) (small b = central); by multiplicity, c = P(mult' > mult) (high multiplicity = central).
The calibration keeps the 0..100 percentiles (steps of 1) of b and of the multiplicity of the training
sample, and interpolates linearly between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERCENTS = np.arange(101, dtype=np.float64)


@dataclass(frozen=True)
class Centrality:
    """b_percentiles[q] = q-th percentile of b [fm]; mult_percentiles[q] = q-th percentile of the multiplicity."""

    b_percentiles: tuple[float, ...]
    mult_percentiles: tuple[float, ...]

    @classmethod
    def fit(cls, b: np.ndarray, mult: np.ndarray) -> "Centrality":
        """Calibration from a sample's impact parameters and multiplicities (each (B,), B >= 1)."""
        if len(b) == 0:
            raise ValueError("cannot calibrate centrality on an empty sample")
        return cls(
            tuple(float(v) for v in np.percentile(np.asarray(b, dtype=np.float64), PERCENTS)),
            tuple(float(v) for v in np.percentile(np.asarray(mult, dtype=np.float64), PERCENTS)),
        )

    def to_config(self) -> dict:
        return {"percents": PERCENTS.tolist(), "b": list(self.b_percentiles), "mult": list(self.mult_percentiles)}

    @classmethod
    def from_config(cls, config: dict) -> "Centrality":
        if len(config["b"]) != PERCENTS.size or len(config["mult"]) != PERCENTS.size:
            raise ValueError("centrality calibration must hold 101 percentiles of b and of mult")
        return cls(tuple(float(v) for v in config["b"]), tuple(float(v) for v in config["mult"]))

    def from_b(self, b: np.ndarray) -> np.ndarray:
        """Centrality percent (0..100) of each impact parameter b [fm]."""
        return np.interp(np.asarray(b, dtype=np.float64), self.b_percentiles, PERCENTS)

    def from_mult(self, mult: np.ndarray) -> np.ndarray:
        """Centrality percent (0..100) of each multiplicity (high multiplicity = 0%)."""
        return 100.0 - np.interp(np.asarray(mult, dtype=np.float64), self.mult_percentiles, PERCENTS)

    def b_range(self, lo: float, hi: float) -> tuple[float, float]:
        """Impact-parameter interval [b_lo, b_hi) of the centrality class lo-hi percent."""
        _check_class(lo, hi)
        return float(np.interp(lo, PERCENTS, self.b_percentiles)), float(np.interp(hi, PERCENTS, self.b_percentiles))

    def mult_range(self, lo: float, hi: float) -> tuple[float, float]:
        """Multiplicity interval (mult_lo, mult_hi] of the centrality class lo-hi percent."""
        _check_class(lo, hi)
        return (float(np.interp(100.0 - hi, PERCENTS, self.mult_percentiles)),
                float(np.interp(100.0 - lo, PERCENTS, self.mult_percentiles)))

    def mean_mult(self, lo: float = 0.0, hi: float = 100.0) -> float:
        """Mean multiplicity of the centrality class lo-hi percent: the multiplicity quantile function averaged over
        the class."""
        _check_class(lo, hi)
        quantiles = np.linspace(100.0 - hi, 100.0 - lo, 201)
        return float(np.interp(quantiles, PERCENTS, self.mult_percentiles).mean())


def _check_class(lo: float, hi: float) -> None:
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"a centrality class needs 0 <= lo < hi <= 100, got {lo}-{hi}")
