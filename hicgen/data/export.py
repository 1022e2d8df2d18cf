"""Export to paper 004's padded layout, for OmniLearn-style code.

Output HDF5: `event` float32 (N, 11) in the order PADDED_EVENT_COLUMNS
(<pT>, sum pT, Qx, Qy, psi_EP, b, Ncoll, Npart, <eta>, <phi>, N), `particle` float32 (N, Nmax, 6) in the
order PADDED_PARTICLE_FEATURES (phi_rel, log(pT/<pT>), eta_rel, pT, eta, phi), zero-padded, and `mask`
bool (N, Nmax). The column names are stored as attributes.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from hicgen.data.dataset import DatasetReader
from hicgen.data.features import PADDED_EVENT_COLUMNS, PADDED_PARTICLE_FEATURES, relative_particle_features
from hicgen.errors import InputError
from hicgen.io.paths import check_output, partial_path


def padded_arrays(batch, nmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(events (B, 11), particles (B, nmax, 6), mask (B, nmax)) for one EventBatch; events longer than nmax are truncated."""
    ev = batch.events
    events = np.stack([np.asarray(ev[c], dtype=np.float32) for c in PADDED_EVENT_COLUMNS], axis=1)
    rel = relative_particle_features(
        batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets,
        ev["mean_pt"], ev["mean_eta"], ev["mean_phi"],
    )
    columns = {**rel, **{k: batch.particles[k] for k in ("pt", "eta", "phi")}}
    flat = np.stack([np.asarray(columns[c], dtype=np.float32) for c in PADDED_PARTICLE_FEATURES], axis=1)
    counts = batch.multiplicity
    slot = np.arange(flat.shape[0]) - np.repeat(batch.offsets[:-1], counts)
    keep = slot < nmax
    particles = np.zeros((len(batch), nmax, len(PADDED_PARTICLE_FEATURES)), dtype=np.float32)
    mask = np.zeros((len(batch), nmax), dtype=bool)
    rows = batch.event_index[keep]
    particles[rows, slot[keep]] = flat[keep]
    mask[rows, slot[keep]] = True
    return events, particles, mask


def export_padded(src: str | os.PathLike, out: str | os.PathLike, nmax: int | None = None,
                  overwrite: bool = False, events_per_chunk: int = 2000) -> Path:
    """Write the padded layout of dataset `src` to `out`; nmax defaults to the largest multiplicity."""
    out = check_output(out, overwrite, (".h5", ".hdf5"))
    with DatasetReader(src) as reader:
        missing = [c for c in PADDED_EVENT_COLUMNS if c not in reader.event_columns]
        if missing:
            raise InputError(f"'{src}' lacks event columns {missing} needed by the padded layout")
        n = len(reader)
        mult_max = int(np.diff(reader.offsets).max()) if n else 0
        nmax = mult_max if nmax is None else nmax
        if nmax < 1:
            raise InputError(f"--nmax must be at least 1, got {nmax}")
        tmp = partial_path(out)
        with h5py.File(tmp, "w") as f:
            ev_ds = f.create_dataset("event", (n, len(PADDED_EVENT_COLUMNS)), np.float32)
            pa_ds = f.create_dataset("particle", (n, nmax, len(PADDED_PARTICLE_FEATURES)), np.float32,
                                     chunks=(max(1, min(n, 64)), nmax, len(PADDED_PARTICLE_FEATURES)),
                                     compression="gzip", shuffle=True)
            mk_ds = f.create_dataset("mask", (n, nmax), bool)
            f["event"].attrs["columns"] = ",".join(PADDED_EVENT_COLUMNS)
            f["particle"].attrs["columns"] = ",".join(PADDED_PARTICLE_FEATURES)
            f.attrs["source"] = str(src)
            f.attrs["truncated_events"] = int((np.diff(reader.offsets) > nmax).sum())
            for start in range(0, n, events_per_chunk):
                batch = reader.read(start, start + events_per_chunk)
                events, particles, mask = padded_arrays(batch, nmax)
                stop = start + len(batch)
                ev_ds[start:stop], pa_ds[start:stop], mk_ds[start:stop] = events, particles, mask
        os.replace(tmp, out)
    return out
