"""ROOT files (`.root`): a TTree `events` written with uproot's `mktree` (a TTree, not uproot's RNTuple default).

Branches, one entry per event:
  mult                      int32 particle count (also the counter of the jagged branches)
  b, ncoll, npart, centrality, psi2, mean_pt, ...   every per-event column of the EventBatch
  pt, eta, phi, px, py, pz, e [GeV]   float32 jagged, one value per particle
  pid                       int32 jagged (PDG id)
plus a TObjString `run_info` (JSON: generator, model, seed, ...). ZSTD level 1 compression; events are
buffered until each particle branch fills a basket of BASKET_PARTICLES values (1 MiB of float32), so
baskets stay large whatever the writer's chunk size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hicgen.data.batch import EventBatch, event_dtype
from hicgen.errors import InputError, require
from hicgen.io.hepmc import four_momenta
from hicgen.io.paths import check_input, check_output, partial_path
from hicgen.io.writers import EventBuffer

TREE = "events"
BASKET_PARTICLES = 1 << 18  # values per particle-branch basket: 1 MiB of float32 before compression
BASKET_EVENTS = 1 << 17  # flush after this many events even if the particle baskets are not full
ZSTD_LEVEL = 1
PARTICLE_BRANCHES = {"pt": "float32", "eta": "float32", "phi": "float32", "pid": "int32",
                     "px": "float32", "py": "float32", "pz": "float32", "e": "float32"}


def _particle_columns(batch: EventBatch) -> dict[str, np.ndarray]:
    """The flat particle branches of a batch, four-momenta computed from (pT, eta, phi, pid)."""
    p = batch.particles
    px, py, pz, energy, _ = four_momenta(p["pt"], p["eta"], p["phi"], p["pid"])
    cols = {"pt": p["pt"], "eta": p["eta"], "phi": p["phi"], "pid": p["pid"], "px": px, "py": py, "pz": pz, "e": energy}
    return {k: np.asarray(v, dtype=PARTICLE_BRANCHES[k]) for k, v in cols.items()}


class RootWriter:
    """Streams EventBatch chunks into a ROOT TTree; filled under '.NAME.part', renamed by close()."""

    def __init__(self, path: str | os.PathLike, run_info: dict[str, Any], overwrite: bool = False) -> None:
        from hicgen.io import ROOT_SUFFIXES

        self._uproot = require("uproot", "io")
        self._ak = require("awkward", "io")
        self.path = check_output(path, overwrite, ROOT_SUFFIXES)
        self._tmp = partial_path(self.path)
        self._file = self._uproot.recreate(self._tmp, compression=self._uproot.ZSTD(ZSTD_LEVEL))
        self._file["run_info"] = json.dumps(run_info, default=str)
        self._tree = None
        self._buffer = EventBuffer(BASKET_PARTICLES, BASKET_EVENTS)
        self.n_events = 0
        self.n_particles = 0

    def _create_tree(self, batch: EventBatch) -> None:
        types: dict[str, Any] = {"mult": "int32"}
        types.update({k: event_dtype(k).name for k in batch.events if k != "mult"})
        types.update({k: f"var * {t}" for k, t in PARTICLE_BRANCHES.items()})
        self._columns = tuple(k for k in batch.events if k != "mult")
        self._tree = self._file.mktree(TREE, types, counter_name=lambda _: "mult", field_name=lambda _, inner: inner)

    def _extend(self, batch: EventBatch | None) -> None:
        if batch is None:
            return
        if self._tree is None:
            self._create_tree(batch)
        if set(batch.events) - {"mult"} != set(self._columns):
            raise ValueError("event columns differ from the ones already written")
        counts = batch.multiplicity
        data: dict[str, Any] = {"mult": counts.astype(np.int32)}
        data.update({k: np.asarray(batch.events[k], dtype=event_dtype(k)) for k in self._columns})
        data.update({k: self._ak.unflatten(v, counts) for k, v in _particle_columns(batch).items()})
        self._tree.extend(data)

    def write(self, batch: EventBatch) -> None:
        """Append whole events (buffered until a basket is full)."""
        if not len(batch):
            return
        self.n_events += len(batch)
        self.n_particles += int(batch.offsets[-1])
        self._extend(self._buffer.add(batch))

    def close(self) -> Path:
        """Write the buffered events, close the file and move it to its final name."""
        if self._file is not None:
            self._extend(self._buffer.drain())
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; an existing file at the output path is untouched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


def read_root(path: str | os.PathLike) -> EventBatch:
    """The `events` TTree of a hicgen ROOT file as one EventBatch (event columns as stored; particles pt, eta, phi, pid)."""
    return next(iter_root(path, None))


def iter_root(path: str | os.PathLike, events_per_chunk: int | None = 10_000) -> Iterator[EventBatch]:
    """The `events` TTree of a hicgen ROOT file as EventBatches of `events_per_chunk` events (all at once for None),
    read chunk by chunk (uproot's iterate), so a large file costs the memory of one chunk."""
    uproot = require("uproot", "io")
    ak = require("awkward", "io")
    path = check_input(path, "ROOT")
    try:
        file = uproot.open(path)
    except Exception as exc:  # uproot raises several types for non-ROOT input, some with several lines
        raise InputError(f"'{path}' is not a readable ROOT file ({' '.join(str(exc).split())})") from None
    with file:
        if TREE not in file:
            raise InputError(f"'{path}' has no TTree '{TREE}'; give a ROOT file written by hicgen")
        tree = file[TREE]
        names = set(tree.keys())
        missing = {"mult", "pt", "eta", "phi", "pid"} - names
        if missing:
            raise InputError(f"'{path}': tree '{TREE}' lacks branches {sorted(missing)}; give a ROOT file written by hicgen")
        wanted = [k for k in tree.keys() if k not in PARTICLE_BRANCHES or k in ("pt", "eta", "phi", "pid")]
        step = tree.num_entries if events_per_chunk is None else events_per_chunk
        chunks = (tree.iterate(wanted, step_size=step, library="ak") if tree.num_entries
                  else [tree.arrays(wanted, library="ak")])  # an empty tree: one empty batch with its columns
        for arrays in chunks:
            counts = ak.to_numpy(arrays["mult"]).astype(np.int64)
            particles = {k: ak.to_numpy(ak.flatten(arrays[k])).astype(PARTICLE_BRANCHES[k], copy=False)
                         for k in ("pt", "eta", "phi", "pid")}
            events = {k: ak.to_numpy(arrays[k]) for k in wanted if k not in PARTICLE_BRANCHES}
            yield EventBatch(events=events, offsets=np.concatenate([[0], np.cumsum(counts)]), particles=particles)
