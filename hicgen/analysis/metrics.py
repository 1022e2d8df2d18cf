"""Closure metrics of paper 004 (section IV): Wasserstein distances, Q-vector closure, species fractions,
2D ratio maps and two-particle azimuthal correlations.

Choices written down:
* `w1_event_mean`: mean over event columns of W1(reference, candidate) after dividing both by the reference
  standard deviation of that column, so every term is in units of the reference spread (the paper does not say
  how it scales columns of different units).  Count columns (ncoll, npart, mult) are rounded first, as in the
  paper; constant columns are skipped.
* `w1_particle_mean`: mean of the four unscaled W1 distances of pT [GeV], eta, sin(phi) and cos(phi) (paper 004's
  particle score with phi through (sin, cos)); particles pooled over events.
* Q closure: Pearson correlation and RMS of Q2 recomputed from the particles against the event-table Q2
  (pT-weighted, GeV), and <cos 2(psi2_reco - psi2_event)>.
* 2D ratio maps: candidate / reference of unit-area histograms on the reference's 0.1-99.9 % range; the scores are
  the mean and median of the ratio over bins filled in both samples.
* Histogram agreement: chi2/ndf between two unit-area histograms with their Poisson errors.
* Means: `mult_ratio` is candidate / reference of the mean number of particles per event, `mean_pt_ratio` of the
  mean pT of all particles (sum pT / N over the sample, so events weigh by their multiplicity); their errors are
  the standard errors from the event-to-event spread (linearised ratio estimator), the samples independent.
"""

from __future__ import annotations

import numpy as np

from hicgen.data.batch import EVENT_COLUMNS, EventBatch
from hicgen.data.features import flow_vector, segment_sum, wrap_phi
from hicgen.data.species import SPECIES, species_class

COUNT_COLUMNS = ("ncoll", "npart", "mult")


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """1D Wasserstein distance between two samples (scipy), in the samples' units."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def event_columns_in_common(reference: EventBatch, candidate: EventBatch) -> list[str]:
    """Standard event columns present in both samples, in EVENT_COLUMNS order."""
    return [c for c in EVENT_COLUMNS if c in reference.events and c in candidate.events]


def w1_event(reference: EventBatch, candidate: EventBatch) -> dict[str, float]:
    """Per-column W1 in units of the reference std, plus 'mean' over the columns (= w1_event_mean)."""
    out: dict[str, float] = {}
    for name in event_columns_in_common(reference, candidate):
        ref = np.asarray(reference.events[name], np.float64)
        cand = np.asarray(candidate.events[name], np.float64)
        if name in COUNT_COLUMNS:
            ref, cand = np.rint(ref), np.rint(cand)
        scale = ref.std()
        if not np.isfinite(scale) or scale == 0:
            continue
        out[name] = w1(ref / scale, cand / scale)
    out["mean"] = float(np.mean(list(out.values()))) if out else float("nan")
    return out


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray | slice:
    return slice(None) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def w1_particle(reference: EventBatch, candidate: EventBatch, max_particles: int = 2_000_000, seed: int = 0) -> dict[str, float]:
    """W1 of pT [GeV], eta, sin phi, cos phi over pooled particles (at most `max_particles` drawn per sample),
    plus 'mean' (= w1_particle_mean)."""
    rng = np.random.default_rng(seed)
    ri = _subsample(reference.offsets[-1], max_particles, rng)
    ci = _subsample(candidate.offsets[-1], max_particles, rng)
    rp = {k: np.asarray(reference.particles[k], np.float64)[ri] for k in ("pt", "eta", "phi")}
    cp = {k: np.asarray(candidate.particles[k], np.float64)[ci] for k in ("pt", "eta", "phi")}
    out = {
        "pt": w1(rp["pt"], cp["pt"]),
        "eta": w1(rp["eta"], cp["eta"]),
        "sin_phi": w1(np.sin(rp["phi"]), np.sin(cp["phi"])),
        "cos_phi": w1(np.cos(rp["phi"]), np.cos(cp["phi"])),
    }
    out["mean"] = float(np.mean(list(out.values())))
    return out


def q_closure(batch: EventBatch) -> dict[str, float | np.ndarray]:
    """Q2 recomputed from the particles vs the event table: rho_x, rho_y (Pearson), rms_x, rms_y, mean and std
    of dQ = Q_reco - Q_event [GeV], cos2dpsi = <cos 2(psi2_reco - psi2_event)>; arrays 'reco' and 'event'
    of shape (B, 2) for plots."""
    qx, qy = flow_vector(batch.particles["pt"], batch.particles["phi"], batch.offsets, 2)
    ex = np.asarray(batch.events["q2x"], np.float64)
    ey = np.asarray(batch.events["q2y"], np.float64)
    psi_event = np.asarray(batch.events["psi2"], np.float64) if "psi2" in batch.events else np.arctan2(ey, ex) / 2
    psi_reco = np.arctan2(qy, qx) / 2

    def rho(a, b):
        return float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else float("nan")

    dx, dy = qx - ex, qy - ey
    return {
        "rho_x": rho(qx, ex), "rho_y": rho(qy, ey),
        "rms_x": float(np.sqrt(np.mean(dx**2))), "rms_y": float(np.sqrt(np.mean(dy**2))),
        "mean_dx": float(dx.mean()), "std_dx": float(dx.std()), "mean_dy": float(dy.mean()), "std_dy": float(dy.std()),
        "cos2dpsi": float(np.mean(np.cos(2 * (psi_reco - psi_event)))),
        "reco": np.stack([qx, qy], 1), "event": np.stack([ex, ey], 1),
    }


def species_fractions(pid: np.ndarray) -> dict[str, float]:
    """Fraction of each species class among the particles of its charge sign (SPECIES order)."""
    counts = np.bincount(species_class(np.asarray(pid)), minlength=len(SPECIES)).astype(np.float64)
    positive, negative = counts[0::2].sum(), counts[1::2].sum()
    return {name: float(counts[k] / (positive if k % 2 == 0 else negative)) if (positive if k % 2 == 0 else negative) else float("nan")
            for k, name in enumerate(SPECIES)}


def sample_mean(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """sum(numerator) / sum(denominator) over events and its standard error (the linearised variance of a ratio
    estimator: spread of numerator - mean x denominator, over sqrt(n - 1) events)."""
    num, den = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    mean = num.sum() / den.sum()
    if num.size < 2:
        return float(mean), float("nan")
    return float(mean), float(np.sqrt(np.sum((num - mean * den) ** 2) / (num.size * (num.size - 1))) / den.mean())


def mean_ratios(reference: EventBatch, candidate: EventBatch) -> dict[str, dict[str, float]]:
    """Mean multiplicity ('mult') and mean particle pT [GeV] ('mean_pt') of each sample with standard errors, and
    their candidate / reference ratios with errors (the samples independent)."""
    out: dict[str, dict[str, float]] = {}
    for label, batch in (("reference", reference), ("candidate", candidate)):
        n = batch.multiplicity.astype(np.float64)
        mult, mult_err = sample_mean(n, np.ones_like(n))
        mean_pt, mean_pt_err = sample_mean(segment_sum(batch.particles["pt"], batch.offsets), n)
        out[label] = {"mult": mult, "mult_err": mult_err, "mean_pt": mean_pt, "mean_pt_err": mean_pt_err}
    ref, cand = out["reference"], out["candidate"]
    for name in ("mult", "mean_pt"):
        ratio = cand[name] / ref[name]
        out[f"{name}_ratio"] = {"value": ratio, "err": ratio * float(np.hypot(cand[f"{name}_err"] / cand[name], ref[f"{name}_err"] / ref[name]))}
    return out


def unit_density(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-area density and its Poisson error per bin from bin counts, shape (n_bins,) each."""
    counts = np.asarray(counts, np.float64)
    widths = np.diff(edges)
    total = counts.sum()
    if total <= 0:
        return np.zeros_like(widths), np.zeros_like(widths)
    return counts / total / widths, np.sqrt(counts) / total / widths


def chi2_ndf(ref_counts: np.ndarray, cand_counts: np.ndarray) -> float:
    """chi2/ndf between two histograms (bin counts) normalised to unit area, Poisson errors, empty bins skipped."""
    r, c = np.asarray(ref_counts, np.float64).ravel(), np.asarray(cand_counts, np.float64).ravel()
    nr, nc = r.sum(), c.sum()
    use = (r + c) > 0
    if nr == 0 or nc == 0 or use.sum() < 2:
        return float("nan")
    chi2 = np.sum((r[use] / nr - c[use] / nc) ** 2 / (r[use] / nr**2 + c[use] / nc**2))
    return float(chi2 / (use.sum() - 1))


def reference_range(values: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[float, float]:
    """The [low, high] percentile interval of the reference, widened if degenerate."""
    lo, hi = np.percentile(np.asarray(values, np.float64), [low, high])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def histogram_ratio(h_ref: np.ndarray, h_cand: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> dict:
    """Candidate/reference ratio of two 2D histograms (counts) after normalising each to unit sum: 'ratio'
    (NaN where either is empty), the edges, and the scores 'mean' and 'median' over bins filled in both."""
    filled = (h_ref > 0) & (h_cand > 0)
    ratio = np.full(h_ref.shape, np.nan)
    if filled.any():
        ratio[filled] = (h_cand[filled] / h_cand.sum()) / (h_ref[filled] / h_ref.sum())
    return {
        "ratio": ratio, "x_edges": x_edges, "y_edges": y_edges,
        "mean": float(np.nanmean(ratio)) if filled.any() else float("nan"),
        "median": float(np.nanmedian(ratio)) if filled.any() else float("nan"),
    }


def ratio_map(ref_x: np.ndarray, ref_y: np.ndarray, cand_x: np.ndarray, cand_y: np.ndarray, bins: int = 30) -> dict:
    """histogram_ratio of (x, y) samples on the reference's 0.1-99.9 % range, plus the reference 95 % intervals
    'x95' and 'y95' (dashed lines in the plots)."""
    x_edges = np.linspace(*reference_range(ref_x), bins + 1)
    y_edges = np.linspace(*reference_range(ref_y), bins + 1)
    h_ref, _, _ = np.histogram2d(ref_x, ref_y, [x_edges, y_edges])
    h_cand, _, _ = np.histogram2d(cand_x, cand_y, [x_edges, y_edges])
    out = histogram_ratio(h_ref, h_cand, x_edges, y_edges)
    out.update(x95=reference_range(ref_x, 2.5, 97.5), y95=reference_range(ref_y, 2.5, 97.5))
    return out


def dphi_pairs_histogram(
    batch: EventBatch, dphi_edges: np.ndarray, trigger_edges: np.ndarray, trigger_pt_min: float = 4.0, max_pairs: int = 4_000_000,
) -> tuple[np.ndarray, int]:
    """Pair counts (n_dphi, n_trigger_pt) of dphi = wrap(phi_trig - phi_assoc) in [-pi, pi) vs trigger pT for
    triggers with pT > trigger_pt_min [GeV] and every other particle of the same event; also the trigger count."""
    pt = np.asarray(batch.particles["pt"], np.float64)
    phi = np.asarray(batch.particles["phi"], np.float64)
    triggers = np.flatnonzero(pt > trigger_pt_min)
    hist = np.zeros((len(dphi_edges) - 1, len(trigger_edges) - 1))
    if triggers.size == 0:
        return hist, 0
    event = batch.event_index[triggers]
    start, stop = batch.offsets[event], batch.offsets[event + 1]
    sizes = stop - start
    done = np.concatenate([[0], np.cumsum(sizes)])  # pairs before each trigger
    lo = 0
    while lo < triggers.size:  # chunks of at most ~max_pairs pairs
        hi = max(lo + 1, int(np.searchsorted(done, done[lo] + max_pairs, side="right")) - 1)
        t, s, n = triggers[lo:hi], start[lo:hi], sizes[lo:hi]
        lo = hi
        trig = np.repeat(t, n)
        assoc = np.repeat(s - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(n.sum())
        keep = assoc != trig
        h, _, _ = np.histogram2d(wrap_phi(phi[trig[keep]] - phi[assoc[keep]]), pt[trig[keep]], [dphi_edges, trigger_edges])
        hist += h
    return hist, int(triggers.size)
