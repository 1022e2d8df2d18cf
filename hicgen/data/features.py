"""Event features computed from particles (paper 004, section III.2), in one place for truth, models and validation.

Definitions (paper 004): <pT>, <eta>, <phi> are per-event means over the stored particles;
Q2 = sum_i pT_i exp(2 i phi_i) (pT-weighted, not normalised); psi2 = atan2(Q2y, Q2x) / 2.
Empty events get zero means and Q2 = 0.
"""

from __future__ import annotations

import numpy as np

PARTICLE_FEATURE_COLUMNS: tuple[str, ...] = ("mult", "mean_pt", "sum_pt", "q2x", "q2y", "psi2", "mean_eta", "mean_phi")


def segment_sums(columns: list[np.ndarray], offsets: np.ndarray) -> list[np.ndarray]:
    """Sums of each of `columns` over each event's particle rows, each shape (B,), in float64 (the events' row
    index built once for all columns)."""
    counts = np.diff(offsets)
    index = np.repeat(np.arange(counts.size), counts)
    return [np.bincount(index, weights=np.asarray(v, dtype=np.float64), minlength=counts.size) for v in columns]


def segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum of `values` over each event's particle rows, shape (B,), in float64."""
    return segment_sums([values], offsets)[0]


def _flow_terms(pt: np.ndarray, phi: np.ndarray, harmonic: int) -> list[np.ndarray]:
    """Per particle pT cos(n phi) and pT sin(n phi), float64."""
    pt64 = np.asarray(pt, dtype=np.float64)
    angle = harmonic * np.asarray(phi, dtype=np.float64)
    return [pt64 * np.cos(angle), pt64 * np.sin(angle)]


def flow_vector(pt: np.ndarray, phi: np.ndarray, offsets: np.ndarray, harmonic: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """pT-weighted flow vector (Qx, Qy) = sum pT (cos n phi, sin n phi) per event, each shape (B,)."""
    qx, qy = segment_sums(_flow_terms(pt, phi, harmonic), offsets)
    return qx, qy


def event_plane_angle(qx: np.ndarray, qy: np.ndarray, harmonic: int = 2) -> np.ndarray:
    """psi_n = atan2(Qy, Qx) / n, in [-pi/n, pi/n]."""
    return np.arctan2(qy, qx) / harmonic


def particle_event_features(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """All event features that follow from the particles: columns PARTICLE_FEATURE_COLUMNS, each shape (B,)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    mult = np.diff(offsets)
    safe = np.maximum(mult, 1)
    sum_pt, q2x, q2y, sum_eta, sum_phi = segment_sums([pt, *_flow_terms(pt, phi, 2), eta, phi], offsets)
    return {
        "mult": mult.astype(np.int32),
        "mean_pt": sum_pt / safe,
        "sum_pt": sum_pt,
        "q2x": q2x,
        "q2y": q2y,
        "psi2": event_plane_angle(q2x, q2y, 2),
        "mean_eta": sum_eta / safe,
        "mean_phi": sum_phi / safe,
    }


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Map angles to [-pi, pi)."""
    return (np.asarray(phi) + np.pi) % (2 * np.pi) - np.pi


PADDED_EVENT_COLUMNS: tuple[str, ...] = (
    "mean_pt", "sum_pt", "q2x", "q2y", "psi2", "b", "ncoll", "npart", "mean_eta", "mean_phi", "mult",
)
PADDED_PARTICLE_FEATURES: tuple[str, ...] = ("phi_rel", "pt_rel", "eta_rel", "pt", "eta", "phi")


def relative_particle_features(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, offsets: np.ndarray,
    mean_pt: np.ndarray, mean_eta: np.ndarray, mean_phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Paper 004's relative token features per particle, shape (offsets[-1],) each:
    phi_rel = wrap(phi - <phi>), pt_rel = log(pT / <pT>), eta_rel = eta - <eta> (event means from the event table)."""
    counts = np.diff(np.asarray(offsets, dtype=np.int64))
    per = lambda v: np.repeat(np.asarray(v, dtype=np.float64), counts)  # noqa: E731
    return {
        "phi_rel": wrap_phi(phi - per(mean_phi)),
        "pt_rel": np.log(np.asarray(pt, dtype=np.float64) / per(mean_pt)),
        "eta_rel": eta - per(mean_eta),
    }
