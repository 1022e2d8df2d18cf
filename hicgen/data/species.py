"""Particle species classes used by the models (paper 004 tokens + species channels) and their PDG ids.

Twelve classes: (pi, K, p, e, mu, other) x (+, -). The charge of any PDG id is computed from
its quark content under the PDG Monte Carlo numbering scheme, so the "other" classes need no table.
Masses (GeV) are PDG 2024 values for the few particles hicgen writes.
"""

from __future__ import annotations

import numpy as np

SPECIES: tuple[str, ...] = (
    "pi+", "pi-", "K+", "K-", "p", "pbar", "e+", "e-", "mu+", "mu-", "other+", "other-",
)
# PDG id of each class; "other" defaults to Sigma+ / Sigma-bar... overridden per checkpoint by the
# most frequent charged "other" species of its training data.
SPECIES_PID: dict[str, int] = {
    "pi+": 211, "pi-": -211, "K+": 321, "K-": -321, "p": 2212, "pbar": -2212,
    "e+": -11, "e-": 11, "mu+": -13, "mu-": 13, "other+": 3222, "other-": 3112,
}
# PDG 2024 masses in GeV.
PDG_MASS: dict[int, float] = {
    11: 0.00051099895, 13: 0.1056583755, 211: 0.13957039, 321: 0.493677, 2212: 0.93827208816,
    3222: 1.18937, 3112: 1.197449, 3312: 1.32171, 3334: 1.67245, 2112: 0.93956542052, 22: 0.0,
}

_QUARK_CHARGE_X3 = {1: -1, 2: 2, 3: -1, 4: 2, 5: -1, 6: 2}
_LEPTON_CHARGE_X3 = {11: -3, 12: 0, 13: -3, 14: 0, 15: -3, 16: 0}


def pdg_charge3(pid: int) -> int:
    """Three times the electric charge of a PDG id (leptons, gauge bosons, mesons, baryons, nuclei)."""
    apid = abs(int(pid))
    sign = 1 if pid > 0 else -1
    if apid in _LEPTON_CHARGE_X3:
        return sign * _LEPTON_CHARGE_X3[apid]
    if apid in (21, 22, 23, 25):
        return 0
    if apid == 24:
        return sign * 3
    if apid >= 1000000000:  # nucleus 10LZZZAAAI
        return sign * 3 * ((apid // 10000) % 1000)
    q1, q2, q3 = (apid // 1000) % 10, (apid // 100) % 10, (apid // 10) % 10
    if q1 == 0 and q2 and q3:  # meson q2 qbar3; the up-type quark sets the sign convention
        charge = _QUARK_CHARGE_X3[q2] - _QUARK_CHARGE_X3[q3]
        if q2 % 2 == 1 and q2 != q3:  # down-type heavier quark: PDG sign flips (e.g. K+ = 321 is u sbar)
            charge = -charge
        return sign * charge if q2 != q3 else 0
    if q1 and q2 and q3:  # baryon q1 q2 q3
        return sign * (_QUARK_CHARGE_X3[q1] + _QUARK_CHARGE_X3[q2] + _QUARK_CHARGE_X3[q3])
    return 0


def pdg_charge(pid: np.ndarray) -> np.ndarray:
    """Electric charge (units of e) of each PDG id, shape as input."""
    pid = np.asarray(pid)
    unique, inverse = np.unique(pid, return_inverse=True)
    return (np.array([pdg_charge3(p) for p in unique], dtype=np.int32)[inverse] / 3.0).reshape(pid.shape)


_CLASS_OF_ABS = {211: 0, 321: 1, 2212: 2, 11: 3, 13: 4}


def species_class(pid: np.ndarray) -> np.ndarray:
    """Species class index (0..11, order of SPECIES) of each PDG id; neutral ids are an error upstream."""
    pid = np.asarray(pid)
    unique, inverse = np.unique(pid, return_inverse=True)
    classes = np.empty(unique.size, dtype=np.int64)
    for k, p in enumerate(unique):
        family = _CLASS_OF_ABS.get(abs(int(p)), 5)
        classes[k] = 2 * family + (0 if pdg_charge3(int(p)) > 0 else 1)
    return classes[inverse].reshape(pid.shape)


def species_pid(classes: np.ndarray, other_pid: tuple[int, int] = (3222, 3112)) -> np.ndarray:
    """PDG id for each species class; `other_pid` gives the ids written for other+ and other-."""
    table = np.array([SPECIES_PID[s] for s in SPECIES], dtype=np.int32)
    table[10], table[11] = other_pid
    return table[np.asarray(classes)]


def pdg_mass(pid: np.ndarray) -> np.ndarray:
    """Mass in GeV of each PDG id (from PDG_MASS; an unknown id raises KeyError)."""
    pid = np.asarray(pid)
    unique, inverse = np.unique(np.abs(pid), return_inverse=True)
    return np.array([PDG_MASS[int(p)] for p in unique])[inverse].reshape(pid.shape)
