"""Jets of paper 004 (section IV.4) with fastjet: anti-kt R = 0.4 on charged particles, rho*A, substructure.

* Inclusive jets: all events clustered at once through fastjet's awkward interface (E-scheme, charged particles
  with their PDG masses), jets with pT > `pt_min`.
* Events that hold a jet above `hard_pt_min` (10 GeV, as in the paper) are reclustered with active areas
  (explicit ghosts up to |y| = acceptance + R, acceptance = the largest |eta| of the sample but at
  least 1, ghost area 0.01).  rho is the event's median pT/area of
  kt R = 0.4 jets within |y| < acceptance - R excluding the two hardest (fastjet JetMedianBackgroundEstimator),
  A the anti-kt jet's active area.
* Substructure of those jets (fastjet contrib is not in the `fastjet` PyPI bindings, so it is computed here):
  WTA axis = C/A reclustering of the constituents with the WTA_pt recombination scheme, dR_WTA = dR(WTA axis,
  jet axis); Soft Drop (zcut = 0.1, beta = 0, R0 = R) by declustering the C/A tree of the constituents,
  dR_SD = dR(groomed jet, jet), zg the groomed momentum sharing; angularity lambda_alpha^(kappa=1) =
  sum_i z_i (dR_i / R)^alpha with alpha = 2 and dR_i to the jet axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hicgen.data.batch import EventBatch
from hicgen.data.species import pdg_charge
from hicgen.errors import InputError, require

JET_COLUMNS = ("pt", "eta", "phi", "e", "mass", "n_constituents")
HARD_JET_COLUMNS = ("pt", "rho", "area", "rho_a", "dr_wta", "dr_sd", "zg", "angularity")


@dataclass(frozen=True)
class JetConfig:
    """Jet settings: radius R, inclusive jet threshold pt_min [GeV], threshold of jets with areas and
    substructure hard_pt_min [GeV], ghost area, Soft Drop (zcut, beta), angularity exponent alpha."""

    radius: float = 0.4
    pt_min: float = 5.0
    hard_pt_min: float = 10.0
    ghost_area: float = 0.01
    zcut: float = 0.1
    beta: float = 0.0
    alpha: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.radius < 2:
            raise InputError(f"jet radius must be in (0, 2), got {self.radius}")
        if self.pt_min < 0 or self.hard_pt_min < 0:
            raise InputError(f"jet pT thresholds must be >= 0 GeV, got {self.pt_min} and {self.hard_pt_min}")
        if not 0 < self.ghost_area <= 1 or not 0 < self.zcut < 0.5:
            raise InputError(f"need 0 < ghost_area <= 1 and 0 < zcut < 0.5, got {self.ghost_area} and {self.zcut}")


def _fastjet():
    fj = require("fastjet", "validate")
    fj._swig.ClusterSequence.set_fastjet_banner_stream(None)  # no banner on stdout
    return fj


def four_momenta(batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
    """(px, py, pz, E) [GeV] of the charged particles, shape (4, n), and their per-event offsets (B+1,);
    without a pid column every particle counts as a charged pion."""
    from hicgen.io.hepmc import four_momenta as momenta

    pid = batch.particles.get("pid")
    charged = np.ones(batch.offsets[-1], bool) if pid is None else pdg_charge(pid) != 0
    ids = np.full(int(charged.sum()), 211) if pid is None else np.asarray(pid)[charged]
    px, py, pz, energy, _ = momenta(batch.particles["pt"][charged], batch.particles["eta"][charged], batch.particles["phi"][charged], ids)
    counts = np.bincount(batch.event_index[charged], minlength=len(batch))
    return np.stack([px, py, pz, energy]), np.concatenate([[0], np.cumsum(counts)])


def _kinematics(px, py, pz, e) -> dict[str, np.ndarray]:
    pt = np.hypot(px, py)
    p = np.sqrt(pt**2 + pz**2)
    return {
        "pt": pt, "eta": np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0)),
        "phi": np.arctan2(py, px), "e": e, "mass": np.sqrt(np.maximum(e**2 - p**2, 0.0)),
    }


def inclusive_jets(p4: np.ndarray, offsets: np.ndarray, config: JetConfig) -> dict[str, np.ndarray]:
    """Anti-kt jets with pT > config.pt_min of every event at once: JET_COLUMNS plus 'event', shape (n_jets,)."""
    fj = _fastjet()
    ak = require("awkward", "validate")
    counts = np.diff(offsets)
    events = ak.unflatten(ak.zip({"px": p4[0], "py": p4[1], "pz": p4[2], "E": p4[3]}), counts)
    sequence = fj.ClusterSequence(events, fj.JetDefinition(fj.antikt_algorithm, config.radius))
    jets = sequence.inclusive_jets(config.pt_min)
    n_const = ak.num(sequence.constituent_index(config.pt_min), axis=2)
    flat = {k: ak.to_numpy(ak.flatten(jets[k])).astype(np.float64) for k in ("px", "py", "pz", "E")}
    out = _kinematics(flat["px"], flat["py"], flat["pz"], flat["E"])
    out["n_constituents"] = ak.to_numpy(ak.flatten(n_const)).astype(np.int64)
    out["event"] = np.repeat(np.arange(counts.size), ak.to_numpy(ak.num(jets)))
    return out


def _soft_drop(fs, jet, config: JetConfig):
    """(groomed jet, zg) from C/A declustering of the constituents with the Soft Drop condition."""
    tree = fs.ClusterSequence(jet.constituents(), fs.JetDefinition(fs.cambridge_algorithm, fs.JetDefinition.max_allowable_R))
    current = tree.inclusive_jets()[0]
    a, b = fs.PseudoJet(), fs.PseudoJet()
    while current.has_parents(a, b):
        z = min(a.pt(), b.pt()) / (a.pt() + b.pt())
        if z > config.zcut * (a.delta_R(b) / config.radius) ** config.beta:
            return current, z
        current = a if a.pt() >= b.pt() else b
        a, b = fs.PseudoJet(), fs.PseudoJet()
    return current, 0.0


def _hard_jets_of_event(fs, p4: np.ndarray, rap_max: float, config: JetConfig) -> list[tuple[float, ...]]:
    """HARD_JET_COLUMNS rows for one event's jets above config.hard_pt_min (areas, rho, substructure)."""
    particles = [fs.PseudoJet(*map(float, p4[:, k])) for k in range(p4.shape[1])]
    area = fs.AreaDefinition(fs.active_area_explicit_ghosts, fs.GhostedAreaSpec(rap_max + config.radius, 1, config.ghost_area))
    sequence = fs.ClusterSequenceArea(particles, fs.JetDefinition(fs.antikt_algorithm, config.radius), area)
    selector = fs.SelectorAbsRapMax(max(rap_max - config.radius, 0.1)) * (~fs.SelectorNHardest(2))
    estimator = fs.JetMedianBackgroundEstimator(selector, fs.JetDefinition(fs.kt_algorithm, config.radius), area)
    estimator.set_particles(particles)
    rho = estimator.rho()
    rho = rho if rho > 1e-20 else 0.0  # a median over pure-ghost jets (sparse events): no background
    wta_def = fs.JetDefinition(fs.cambridge_algorithm, fs.JetDefinition.max_allowable_R, fs.WTA_pt_scheme)
    rows = []
    for jet in fs.sorted_by_pt(sequence.inclusive_jets(config.hard_pt_min)):
        real = [c for c in jet.constituents() if not c.is_pure_ghost()]
        wta = fs.ClusterSequence(real, wta_def).exclusive_jets(1)[0]
        groomed, zg = _soft_drop(fs, fs.join(real), config)
        dr = np.array([jet.delta_R(c) for c in real])
        z = np.array([c.pt() for c in real]) / jet.pt()
        rows.append((
            jet.pt(), rho, jet.area(), rho * jet.area(), jet.delta_R(wta), jet.delta_R(groomed), zg,
            float(np.sum(z * (dr / config.radius) ** config.alpha)),
        ))
    return rows


def find_jets(batch: EventBatch, config: JetConfig = JetConfig(), progress=None) -> dict[str, dict[str, np.ndarray]]:
    """All jet observables of a sample: {'jets': JET_COLUMNS + 'event' (n_jets,), 'hard': HARD_JET_COLUMNS
    (n_hard,)}.  `progress(done, total)` is called while hard events are reclustered."""
    fj = _fastjet()
    p4, offsets = four_momenta(batch)
    jets = inclusive_jets(p4, offsets, config)
    hard_events = np.unique(jets["event"][jets["pt"] > config.hard_pt_min])
    eta = np.abs(np.asarray(batch.particles["eta"], np.float64))
    rap_max = max(float(eta.max()) if eta.size else 0.0, 1.0)  # the acceptance, at least |eta| < 1
    rows: list[tuple[float, ...]] = []
    for k, event in enumerate(hard_events):
        rows += _hard_jets_of_event(fj._swig, p4[:, offsets[event] : offsets[event + 1]], rap_max, config)
        if progress is not None:
            progress(k + 1, hard_events.size)
    table = np.array(rows, dtype=np.float64).reshape(-1, len(HARD_JET_COLUMNS))
    return {"jets": jets, "hard": {name: table[:, i] for i, name in enumerate(HARD_JET_COLUMNS)}}
