"""The one place that maps events to point-cloud model tensors and back (paper 004, sec. III.2).

Event vector (E = 10, order EVENT_FEATURES): b, ncoll, npart, mult, mean_pt, sum_pt, q2x, q2y, mean_eta,
mean_phi. psi2 is not modelled: it follows from (q2x, q2y). The counts and sum pT (LOG_EVENT_FEATURES) are
mapped by log(1 + x) first, which makes their broad Pb-Pb distributions close to normal; then every
component is standardised with the training-set mean and standard deviation. Decoding inverts this and
rounds the counts to integers (mult >= 1, ncoll and npart >= 0).

Particle token (F = 18): 6 kinematic features (order KINEMATIC_FEATURES)
  phi_rel = wrap(phi - <phi>), pt_rel = log(pT / <pT>), eta_rel = eta - <eta>, log_pt = log(pT / GeV), eta, phi,
each standardised with training-set mean and std, then 12 species channels (hicgen.data.species.SPECIES,
(pi, K, p, e, mu, other) x (+, -)) holding 2 * one_hot - 1, i.e. +1 for the particle's class and -1
elsewhere (same scale as the standardised features). The paper's absolute pT is replaced by log pT: pT
spans three decades and log pT is close to normal, so the MSE weighs soft and hard particles sensibly.
Event means are taken from the event table (they are computed from the stored particles by `hicgen truth`).

Decoding a generated token uses the absolute channels (log_pt, eta, phi) by default; `reference="relative"`
rebuilds them from the relative channels and the event means instead. pT and eta are clipped to the
acceptance of the training data, phi wrapped into [-pi, pi), species is the argmax of the 12 channels, and
the 'other+' / 'other-' classes get the most frequent such PDG id of the training data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from hicgen.data.batch import EventBatch
from hicgen.data.features import event_plane_angle, relative_particle_features, wrap_phi
from hicgen.data.species import SPECIES, species_class, species_pid

EVENT_FEATURES: tuple[str, ...] = ("b", "ncoll", "npart", "mult", "mean_pt", "sum_pt", "q2x", "q2y", "mean_eta", "mean_phi")
LOG_EVENT_FEATURES: tuple[str, ...] = ("ncoll", "npart", "mult", "sum_pt")
COUNT_FEATURES: tuple[str, ...] = ("ncoll", "npart", "mult")
KINEMATIC_FEATURES: tuple[str, ...] = ("phi_rel", "pt_rel", "eta_rel", "log_pt", "eta", "phi")
NUM_SPECIES = len(SPECIES)
EVENT_DIM = len(EVENT_FEATURES)
NUM_KINEMATIC = len(KINEMATIC_FEATURES)
NUM_FEATURES = NUM_KINEMATIC + NUM_SPECIES
# Column indices into the token, used by losses and the kNN geometry (phi_rel, pt_rel first).
LOG_PT, PHI = KINEMATIC_FEATURES.index("log_pt"), KINEMATIC_FEATURES.index("phi")


def _std(x: np.ndarray) -> np.ndarray:
    """Standard deviation per column, with 1 where a column is constant (so it is not divided by 0)."""
    s = np.asarray(x, dtype=np.float64).std(axis=0)
    return np.where(s > 1e-12, s, 1.0)


def _event_matrix(events: dict[str, np.ndarray]) -> np.ndarray:
    """Physical event columns -> (B, E) float64 before standardisation (log1p of LOG_EVENT_FEATURES)."""
    cols = []
    for name in EVENT_FEATURES:
        col = np.asarray(events[name], dtype=np.float64)
        cols.append(np.log1p(np.maximum(col, 0.0)) if name in LOG_EVENT_FEATURES else col)
    return np.stack(cols, axis=-1)


def _kinematics(batch: EventBatch) -> np.ndarray:
    """Physical kinematic token features (sum N, 6) float64 in KINEMATIC_FEATURES order."""
    p, e = batch.particles, batch.events
    rel = relative_particle_features(p["pt"], p["eta"], p["phi"], batch.offsets, e["mean_pt"], e["mean_eta"], e["mean_phi"])
    pt = np.asarray(p["pt"], dtype=np.float64)
    return np.stack([rel["phi_rel"], rel["pt_rel"], rel["eta_rel"], np.log(pt), p["eta"], p["phi"]], axis=-1)


def most_frequent_other(pid: np.ndarray) -> tuple[int, int]:
    """The most frequent PDG id of the 'other+' and of the 'other-' class in `pid` (defaults when absent)."""
    pid = np.asarray(pid)
    cls = species_class(pid) if pid.size else np.zeros(0, dtype=np.int64)
    defaults = species_pid(np.array([10, 11]))
    out = []
    for k, c in enumerate((10, 11)):
        counts = Counter(pid[cls == c].tolist())
        out.append(int(counts.most_common(1)[0][0]) if counts else int(defaults[k]))
    return out[0], out[1]


def usable_events(batch: EventBatch) -> EventBatch:
    """The events with at least one particle (an empty event has no token to learn and no event means)."""
    return batch.select(np.flatnonzero(batch.multiplicity > 0))


@dataclass
class PointCloudTransforms:
    """Standardisation constants and acceptance of one training sample; maps EventBatch <-> tensors."""

    event_mean: np.ndarray  # (E,)
    event_std: np.ndarray  # (E,)
    particle_mean: np.ndarray  # (6,)
    particle_std: np.ndarray  # (6,)
    other_pid: tuple[int, int] = (3222, 3112)
    eta_max: float | None = None
    pt_min: float | None = None

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, batch: EventBatch, eta_max: float | None = None, pt_min: float | None = None) -> "PointCloudTransforms":
        """Constants from a training sample (events with >= 1 particle)."""
        batch = usable_events(batch)
        if len(batch) == 0:
            raise ValueError("cannot fit transforms: no event has a particle")
        ev = _event_matrix(batch.events)
        kin = _kinematics(batch)
        return cls(
            event_mean=ev.mean(0), event_std=_std(ev), particle_mean=kin.mean(0), particle_std=_std(kin),
            other_pid=most_frequent_other(batch.particles["pid"]),
            eta_max=None if eta_max is None else float(eta_max), pt_min=None if pt_min is None else float(pt_min),
        )

    def to_config(self) -> dict:
        """JSON-ready constants (stored in the checkpoint config under 'normalization')."""
        return {
            "event_features": list(EVENT_FEATURES), "log_event_features": list(LOG_EVENT_FEATURES),
            "kinematic_features": list(KINEMATIC_FEATURES), "species": list(SPECIES),
            "event_mean": self.event_mean.tolist(), "event_std": self.event_std.tolist(),
            "particle_mean": self.particle_mean.tolist(), "particle_std": self.particle_std.tolist(),
            "other_pid": list(self.other_pid), "eta_max": self.eta_max, "pt_min": self.pt_min,
        }

    @classmethod
    def from_config(cls, config: dict) -> "PointCloudTransforms":
        """Inverse of to_config; raises ValueError when the feature lists differ from this code's."""
        for key, expected in (("event_features", EVENT_FEATURES), ("kinematic_features", KINEMATIC_FEATURES), ("species", SPECIES)):
            if tuple(config.get(key, ())) != expected:
                raise ValueError(f"normalization.{key} is {config.get(key)}, this hicgen expects {list(expected)}")
        return cls(
            event_mean=np.asarray(config["event_mean"], dtype=np.float64), event_std=np.asarray(config["event_std"], dtype=np.float64),
            particle_mean=np.asarray(config["particle_mean"], dtype=np.float64),
            particle_std=np.asarray(config["particle_std"], dtype=np.float64),
            other_pid=tuple(int(p) for p in config["other_pid"]), eta_max=config.get("eta_max"), pt_min=config.get("pt_min"),
        )

    @property
    def phi_period(self) -> float:
        """The period 2 pi of phi_rel in standardised units (for the PET's periodic kNN and features)."""
        return float(2 * np.pi / self.particle_std[0])

    @property
    def phi_abs_period(self) -> float:
        """The period 2 pi of phi in standardised units (for the PET's periodic features)."""
        return float(2 * np.pi / self.particle_std[PHI])

    # -- events -------------------------------------------------------------------------------------
    def encode_events(self, events: dict[str, np.ndarray]) -> torch.Tensor:
        """Physical event columns (each (B,)) -> standardised event vectors (B, E) float32."""
        return torch.from_numpy(((_event_matrix(events) - self.event_mean) / self.event_std).astype(np.float32))

    def decode_events(self, e_std: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """Standardised event vectors (B, E) -> physical columns (each (B,)) plus psi2 from (q2x, q2y).

        Counts are rounded: mult an int32 >= 1, ncoll and npart int32 >= 0; b >= 0, mean_pt > 0.
        """
        e = e_std.detach().float().cpu().numpy() if isinstance(e_std, torch.Tensor) else np.asarray(e_std)
        phys = e.astype(np.float64) * self.event_std + self.event_mean
        out: dict[str, np.ndarray] = {}
        for k, name in enumerate(EVENT_FEATURES):
            col = np.expm1(phys[:, k]) if name in LOG_EVENT_FEATURES else phys[:, k]
            if name in COUNT_FEATURES:
                col = np.maximum(np.rint(col), 1 if name == "mult" else 0).astype(np.int32)
            out[name] = col
        out["b"] = np.maximum(out["b"], 0.0)
        out["sum_pt"] = np.maximum(out["sum_pt"], 0.0)
        out["mean_pt"] = np.maximum(out["mean_pt"], 1e-6)
        out["mean_phi"] = wrap_phi(out["mean_phi"])
        out["psi2"] = event_plane_angle(out["q2x"], out["q2y"])
        return out

    # -- particles ----------------------------------------------------------------------------------
    def encode_particles(self, batch: EventBatch) -> np.ndarray:
        """Tokens of every particle, flat (sum N, F) float32: standardised kinematics + species channels."""
        kin = (_kinematics(batch) - self.particle_mean) / self.particle_std
        species = -np.ones((kin.shape[0], NUM_SPECIES), dtype=np.float32)
        species[np.arange(kin.shape[0]), species_class(batch.particles["pid"])] = 1.0
        return np.concatenate([kin.astype(np.float32), species], axis=1)

    def encode_batch(self, batch: EventBatch, n_max: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """EventBatch (events with >= 1 particle) -> (e (B, E), x (B, Nmax, F), mask (B, Nmax) bool)."""
        x, mask = pad_tokens(self.encode_particles(batch), batch.offsets, n_max)
        return self.encode_events(batch.events), x, mask

    def physical_pt_phi(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable (pT [GeV], phi) of tokens x (..., F) from the absolute channels (phi not wrapped)."""
        std = torch.as_tensor(self.particle_std, dtype=x.dtype, device=x.device)
        mean = torch.as_tensor(self.particle_mean, dtype=x.dtype, device=x.device)
        log_pt = x[..., LOG_PT] * std[LOG_PT] + mean[LOG_PT]
        return torch.exp(log_pt.clamp(max=10.0)), x[..., PHI] * std[PHI] + mean[PHI]

    def decode_particles(
        self, x: torch.Tensor | np.ndarray, events: dict[str, np.ndarray], mask: torch.Tensor | np.ndarray,
        reference: str = "absolute",
    ) -> dict[str, np.ndarray]:
        """Tokens (B, N, F) of real slots (mask (B, N)) -> flat physical columns pt, eta, phi, pid,
        event by event in slot order (shape (mask.sum(),) each); `events` are the decoded event columns."""
        x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
        mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        tok = x[mask.astype(bool)]
        kin = tok[:, :NUM_KINEMATIC].astype(np.float64) * self.particle_std + self.particle_mean
        if reference == "absolute":
            log_pt, eta, phi = kin[:, 3], kin[:, 4], kin[:, 5]
        elif reference == "relative":
            counts = mask.astype(bool).sum(1)
            per = lambda name: np.repeat(np.asarray(events[name], dtype=np.float64), counts)  # noqa: E731
            log_pt, eta, phi = kin[:, 1] + np.log(per("mean_pt")), kin[:, 2] + per("mean_eta"), kin[:, 0] + per("mean_phi")
        else:
            raise ValueError(f"reference must be 'absolute' or 'relative', got '{reference}'")
        pt = np.exp(np.clip(log_pt, -20, 10))
        if self.pt_min is not None:
            pt = np.maximum(pt, self.pt_min)
        if self.eta_max is not None:
            eta = np.clip(eta, -self.eta_max, self.eta_max)
        classes = tok[:, NUM_KINEMATIC:].argmax(axis=1)
        return {
            "pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": wrap_phi(phi).astype(np.float32),
            "pid": species_pid(classes, self.other_pid).astype(np.int32),
        }

    def decode(self, e_std: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, reference: str = "absolute") -> EventBatch:
        """Generated (event vectors, tokens, mask) -> an EventBatch of physical events."""
        events = self.decode_events(e_std)
        particles = self.decode_particles(x, events, mask, reference)
        counts = np.asarray(mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask).astype(bool).sum(1)
        return EventBatch(events=events, offsets=np.concatenate([[0], np.cumsum(counts)]), particles=particles)


def pad_tokens(flat: np.ndarray | torch.Tensor, offsets: np.ndarray, n_max: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat tokens (sum N, F) with offsets (B+1,) -> zero-padded (B, Nmax, F) float32 and mask (B, Nmax) bool.

    Nmax is the largest multiplicity unless `n_max` (>= it) is given.
    """
    flat = torch.as_tensor(flat, dtype=torch.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    n = int(counts.max()) if counts.size else 0
    if n_max is not None:
        if n_max < n:
            raise ValueError(f"n_max={n_max} is smaller than the largest multiplicity {n}")
        n = n_max
    bsz = counts.size
    slot = torch.from_numpy(np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts))
    row = torch.from_numpy(np.repeat(np.arange(bsz), counts))
    x = torch.zeros(bsz, n, flat.shape[-1], dtype=torch.float32)
    x[row, slot] = flat
    mask = torch.zeros(bsz, n, dtype=torch.bool)
    mask[row, slot] = True
    return x, mask
