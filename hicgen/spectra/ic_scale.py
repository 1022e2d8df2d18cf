"""Whether initial states carry the entropy scale of a spectra model's training ICs.

A TRENTo profile is norm x T_R. Its overall scale, the normalisation (`trento --normalization`, default 1;
`hicgen truth trento --norm`, default 181, tuned to ALICE's 0-5 % multiplicity with hicgen's hydro chain), sets the
entropy and so the multiplicity the hydro chain, and a model trained on it, give. A spectra model knows only the
scale of its training ICs. How far it follows the chain for ICs of other normalisations is measured
(benchmarks/spectra_ic_scale.py), and `hicgen spectra` refuses ICs beyond that range unless --allow-extrapolation.

The measure is the standard one of heavy-ion physics, the entropy per participant: the TRENTo multiplicity over the
participant number, mult / npart, which both the trento program and `hicgen truth trento` record per event, over
the ICs with npart >= MIN_NPART. It scales with the normalisation, and at fixed normalisation rises ~1.5x from
npart = 50 to 400, with a spread of ~1.2 / sqrt(npart) in its logarithm (the participants' Gamma fluctuations).

A checkpoint records its training ICs' relation (training_band): ln(mult / npart) as a cubic in ln npart, fitted by
least squares with weights npart, with the fit's covariance and the spread s of the ICs about it (ln(mult / npart)
~ curve +- s / sqrt(npart)); also the 1st to 99th percentile and the median of mult / npart, for people to read.
The input's offset from it (scale_offset) is the weighted mean of ln(mult / npart) - curve(npart) over its ICs,
weights npart / s^2, with a standard error from their number, their own scatter and the curve's uncertainty; the
input passes while exp(offset) lies in the range of factors the model was shown to follow the chain over
(benchmarks/spectra_ic_scale.py; recorded as "followed" by scripts/set_ic_reference.py), UNVALIDATED_RANGE for a
checkpoint without one, to within SCALE_Z errors. Checkpoints from before the curve (only the
percentiles) pass the input while the median of its mult / npart lies inside the percentiles, which misses
normalisations off by less than ~1.3x up or ~1.5x down.
Files without mult or npart, and blocks with fewer than MIN_ICS such ICs (only peripheral events), go unchecked.
"""

from __future__ import annotations

import math

import numpy as np

from hicgen.errors import InputError

MIN_NPART = 50  # participants from which ln(mult / npart) scatters close to a Gaussian about its curve
MIN_ICS = 8  # ICs a block needs for a verdict
BAND_PERCENTILES = (1.0, 99.0)
MIN_BAND_ICS = 50  # training ICs with npart >= MIN_NPART needed to record a reference
CURVE_DEGREE = 3  # cubic in ln npart: on 8,192 ICs a quadratic left 1-3 % bumps at the ends of the npart range
SCALE_Z = 4.0  # standard errors beyond the accepted range before a block is refused
UNVALIDATED_RANGE = (0.9, 1.1)  # scale factors accepted from a checkpoint that records none its model was shown to follow


def _usable(mult: np.ndarray, npart: np.ndarray, min_npart: float) -> tuple[np.ndarray, np.ndarray]:
    """(npart, ln(mult / npart)) of the ICs with npart >= min_npart, mult > 0 and both finite."""
    mult, npart = np.asarray(mult, np.float64), np.asarray(npart, np.float64)
    usable = np.isfinite(mult) & np.isfinite(npart) & (npart >= min_npart) & (mult > 0)
    return npart[usable], np.log(mult[usable] / npart[usable])


def _basis(npart: np.ndarray, curve: dict) -> np.ndarray:
    """(N, degree + 1) powers of ln npart mapped from the curve's ln-npart range onto [-1, 1] (clamped: beyond
    the training ICs' range the curve stays at its end value)."""
    lo, hi = curve["ln_npart_range"]
    t = np.clip((2 * np.log(npart) - lo - hi) / max(hi - lo, 1e-12), -1.0, 1.0)
    return t[:, None] ** np.arange(len(curve["coefficients"]))


def fit_curve(npart: np.ndarray, log_ratio: np.ndarray) -> dict:
    """Weighted least-squares fit of ln(mult / npart) (`log_ratio`) against ln npart (CURVE_DEGREE, fewer with few
    distinct npart), weights npart: coefficients, their covariance, and sd_sqrt_npart = s (the ICs scatter by
    s / sqrt(npart) about it)."""
    ln_npart = np.log(npart)
    curve = {"ln_npart_range": [float(ln_npart.min()), float(ln_npart.max())],
             "coefficients": [0.0] * (min(CURVE_DEGREE, len(np.unique(npart)) - 1) + 1)}
    basis = _basis(npart, curve)
    normal = basis.T @ (basis * npart[:, None])
    coefficients = np.linalg.solve(normal, basis.T @ (npart * log_ratio))
    residual = log_ratio - basis @ coefficients
    s2 = float(np.sum(npart * residual**2) / max(len(npart) - len(coefficients), 1))
    curve.update(coefficients=coefficients.tolist(), covariance=(s2 * np.linalg.inv(normal)).tolist(),
                 sd_sqrt_npart=math.sqrt(s2))
    return curve


def training_band(mult: np.ndarray, npart: np.ndarray, source: str) -> dict | None:
    """The checkpoint's record of its training ICs' entropy per participant (config.json
    "ic_entropy_per_participant"): the curve of ln(mult / npart) against npart (fit_curve) and, for reading, the
    BAND_PERCENTILES percentiles and the median of mult / npart over the ICs with npart >= MIN_NPART, their number
    and `source` (where the ICs came from); None with fewer than MIN_BAND_ICS."""
    npart, log_ratio = _usable(mult, npart, MIN_NPART)
    if npart.size < MIN_BAND_ICS:
        return None
    low, median, high = np.percentile(np.exp(log_ratio), [BAND_PERCENTILES[0], 50.0, BAND_PERCENTILES[1]])
    return {"low": float(low), "median": float(median), "high": float(high), "min_npart": MIN_NPART,
            "ics": int(npart.size), "source": source, "curve": fit_curve(npart, log_ratio)}


def scale_sums(mult: np.ndarray, npart: np.ndarray, band: dict) -> np.ndarray:
    """The sums scale_offset needs over these ICs (those with npart >= the band's min_npart), additive over blocks
    of ICs: [ICs, sum w, sum w d, sum w d^2, sum w x basis...], d = ln(mult / npart) - curve(npart), w = npart / s^2."""
    npart, log_ratio = _usable(mult, npart, band["min_npart"])
    curve = band["curve"]
    basis = _basis(npart, curve)
    deviation = log_ratio - basis @ np.asarray(curve["coefficients"])
    weight = npart / curve["sd_sqrt_npart"] ** 2
    return np.concatenate([[npart.size, weight.sum(), weight @ deviation, weight @ deviation**2], weight @ basis])


def offset_from_sums(sums: np.ndarray, band: dict) -> tuple[float, float, int] | None:
    """(offset, error, ICs) of scale_sums' sums: the weighted mean of d, its standard error (from the weights, scaled
    up by sqrt(chi2 / dof) where the ICs scatter more than the training ICs, and the curve's covariance added) and
    the ICs' number; None with fewer than MIN_ICS ICs."""
    ics, weight, weighted_deviation, weighted_square = sums[:4]
    if ics < MIN_ICS:
        return None
    offset = float(weighted_deviation / weight)
    chi2_per_dof = float(weighted_square - weighted_deviation * offset) / (ics - 1)
    mean_basis = sums[4:] / weight  # the offset's derivative in the curve's coefficients
    variance = max(1.0, chi2_per_dof) / weight + float(mean_basis @ np.asarray(band["curve"]["covariance"]) @ mean_basis)
    return offset, math.sqrt(variance), int(ics)


def scale_offset(mult: np.ndarray, npart: np.ndarray, band: dict) -> tuple[float, float, int] | None:
    """(offset, error, ICs): the weighted mean of ln(mult / npart) - curve(npart) over the ICs with npart >= the
    band's min_npart, its standard error and their number (offset_from_sums); None with fewer than MIN_ICS."""
    return offset_from_sums(scale_sums(mult, npart, band), band)


def _refusal(measured: str, band: dict, factor: float) -> InputError:
    """The one-line refusal: what was measured, and the fix."""
    return InputError(
        f"the initial states carry {measured}: they were made with another TRENTo normalisation (or other p, k, w); "
        f"make them with ~{factor:.3g} times that normalisation (trento --normalization, hicgen truth trento --norm), "
        f"as the training ICs were made ({band['source']}), or pass --allow-extrapolation"
    )


def followed_range(factors: list[float], within: list[bool]) -> list[float] | None:
    """The lowest and highest factor of the contiguous run of factors around 1 at which the model was found
    `within` the targets (benchmarks/spectra_ic_scale.py compare); None when 1 is not among them or misses itself."""
    order = np.argsort(factors)
    sorted_factors, sorted_within = np.asarray(factors)[order], np.asarray(within)[order]
    if 1.0 not in sorted_factors or not sorted_within[np.flatnonzero(sorted_factors == 1.0)[0]]:
        return None
    centre = int(np.flatnonzero(sorted_factors == 1.0)[0])
    lo = hi = centre
    while lo > 0 and sorted_within[lo - 1]:
        lo -= 1
    while hi < len(sorted_factors) - 1 and sorted_within[hi + 1]:
        hi += 1
    return [float(sorted_factors[lo]), float(sorted_factors[hi])]


def accepted_range(band: dict) -> tuple[float, float]:
    """The factors of the training ICs' entropy scale a checkpoint's model takes: the range it was shown to follow
    the chain over (band "followed", benchmarks/spectra_ic_scale.py), else UNVALIDATED_RANGE."""
    followed = band.get("followed")
    return (float(followed["range"][0]), float(followed["range"][1])) if followed else UNVALIDATED_RANGE


def check_ic_scale(mult: np.ndarray, npart: np.ndarray, band: dict | None,
                   allow_extrapolation: bool = False) -> np.ndarray | None:
    """InputError unless these ICs carry the training ICs' entropy per participant up to a factor the model takes:
    scale_offset within SCALE_Z standard errors of ln accepted_range (a band from before the curve: the median
    mult / npart inside its percentiles); nothing to check without a band, without MIN_ICS ICs of npart >= its
    min_npart, or with allow_extrapolation. Returns the ICs' scale_sums (with a curve, checked or not), which
    add up over blocks to the whole input's scale (offset_from_sums); else None."""
    if band is None:
        return None
    if "curve" in band:
        sums = scale_sums(mult, npart, band)
        measured = offset_from_sums(sums, band)
        if allow_extrapolation or measured is None:
            return sums
        offset, error, ics = measured
        low, high = accepted_range(band)
        if math.log(low) - SCALE_Z * error <= offset <= math.log(high) + SCALE_Z * error:
            return sums
        taken = (f"the model was shown to follow the chain at {low:g}-{high:g} times it" if band.get("followed") else
                 f"the model takes {low:g}-{high:g} times it until a range it follows is measured")
        raise _refusal(f"{math.exp(offset):.3g} +- {error:.2g} times the TRENTo entropy per participant (mult / npart) "
                       f"of the model's training ICs at the same npart (mean over {ics} ICs with npart >= "
                       f"{band['min_npart']}; {taken})", band, math.exp(-offset))
    if allow_extrapolation:
        return None
    ratio = np.exp(_usable(mult, npart, band["min_npart"])[1])
    median = float(np.median(ratio)) if ratio.size >= MIN_ICS else None
    if median is None or band["low"] <= median <= band["high"]:
        return None
    raise _refusal(f"{median:.3g} units of TRENTo entropy per participant (mult / npart, median of {ratio.size} ICs "
                   f"with npart >= {band['min_npart']}), the model's training ICs {band['median']:.3g} (98 % within "
                   f"{band['low']:.3g}-{band['high']:.3g})", band, band["median"] / median)
