"""The hicgen dataset file: one HDF5 file of flat particle columns, an offsets array and per-event columns.

Layout (documented in docs/formats.md):
  /offsets            int64 (N+1,)  particles of event i are rows offsets[i]:offsets[i+1]
  /events/<name>      (N,)          b, ncoll, npart, mult, mean_pt, sum_pt, q2x, q2y, psi2, mean_eta, mean_phi, ...
  /particles/<name>   (offsets[N],) pt [GeV], eta, phi [-pi, pi), pid (PDG)
  attributes          provenance: format, format_version, generator, generator_version, seeds, system,
                      sqrt_s [GeV], eta_max, pt_min, hicgen_version, created, n_events
No variable-length types; chunks of ~1 MiB with gzip + shuffle.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hicgen import __version__
from hicgen.data.batch import EventBatch, PARTICLE_DTYPES, event_dtype
from hicgen.errors import InputError
from hicgen.io.h5columns import RecordColumns
from hicgen.io.paths import check_input, check_output, partial_path

FORMAT_NAME = "hicgen-events"
FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20


def _chunk_rows(dtype: np.dtype) -> int:
    return max(1024, CHUNK_BYTES // np.dtype(dtype).itemsize)


def _attr_value(value: Any) -> Any:
    """HDF5-storable attribute: scalars and strings as is, lists of numbers as arrays, the rest as JSON."""
    if isinstance(value, (str, int, float, np.integer, np.floating, bool)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)) and all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
        return np.asarray(value)
    return json.dumps(value)


class DatasetWriter:
    """Streams EventBatch chunks into a dataset file.

    The file is filled under a hidden '.NAME.part' name and renamed to NAME by close(), so an
    existing file is replaced only once the new one is complete, and a closed file (also after
    Ctrl-C, which callers turn into close(), or into abort() when no event was written) always holds whole events.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict[str, Any], overwrite: bool = False) -> None:
        self.path = check_output(path, overwrite)
        self._tmp = partial_path(self.path)
        self._file = h5py.File(self._tmp, "w")
        self._file.attrs["format"] = FORMAT_NAME
        self._file.attrs["format_version"] = FORMAT_VERSION
        self._file.attrs["hicgen_version"] = __version__
        self._file.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        for key, value in attrs.items():
            self._file.attrs[key] = _attr_value(value)
        self._file.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(_chunk_rows(np.int64),))
        self._file.create_group("events")
        self._file.create_group("particles")
        self._columns: dict[str, RecordColumns] = {}  # per group, made at the first append (its columns)
        self.n_events = 0
        self.n_particles = 0

    def _group_columns(self, group: str, columns: dict[str, np.ndarray], dtype_of) -> RecordColumns:
        """The group's RecordColumns (every column gzip 4 + shuffle, chunks of ~1 MiB, deflated on threads)."""
        if group not in self._columns:
            fields = {name: ((), dtype_of(name)) for name in columns}
            self._columns[group] = RecordColumns(self._file[group], fields, compressed=fields, level=4,
                                                 chunk_bytes=CHUNK_BYTES)
        return self._columns[group]

    def append(self, batch: EventBatch) -> None:
        """Write whole events; the event and particle columns must be the same in every call."""
        if len(batch) == 0:
            return
        if self.n_events and set(batch.events) != set(self._file["events"]):
            raise ValueError("event columns differ from the ones already written")
        self._group_columns("particles", batch.particles, lambda n: np.dtype(PARTICLE_DTYPES.get(n, np.float32))).append(
            batch.particles)
        self._group_columns("events", batch.events, event_dtype).append(batch.events)
        offsets = self._file["offsets"]
        offsets.resize((self.n_events + len(batch) + 1,))
        offsets[self.n_events + 1 :] = self.n_particles + batch.offsets[1:]
        self.n_events += len(batch)
        self.n_particles += int(batch.offsets[-1])
        self._file.attrs["n_events"] = self.n_events
        self._file.flush()

    def set_attrs(self, **attrs: Any) -> None:
        """Add or update provenance attributes (e.g. a summary known only at the end)."""
        for key, value in attrs.items():
            self._file.attrs[key] = _attr_value(value)

    def _stop_threads(self) -> None:
        for columns in self._columns.values():
            columns.close()

    def close(self) -> Path:
        """Finish the file and move it to its final name; returns that path."""
        self._stop_threads()
        if self._file:
            self._file.close()
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; an existing file at the output path stays untouched."""
        self._stop_threads()
        if self._file:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or (issubclass(exc_type, KeyboardInterrupt) and self.n_events):
            self.close()  # whole events written so far are kept
        else:
            self.abort()  # an error, or stopped before any event: no file (an existing one is kept)


class DatasetReader:
    """Random and streaming access to a dataset file without loading it whole."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_input(path, "dataset")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(f"'{self.path}' is not a readable HDF5 file ({exc}); give a hicgen dataset (.h5)") from None
        if self._file.attrs.get("format") == "hicgen-spectra":  # binned spectra, not particles
            self._file.close()
            raise InputError(f"'{self.path}' holds binned (pT, phi) spectra, not particle events; compare two spectra "
                             "files with hicgen validate, or sample particles from them with hicgen spectra --particles")
        if self._file.attrs.get("format") != FORMAT_NAME or "offsets" not in self._file:
            self._file.close()
            raise InputError(f"'{self.path}' is not a hicgen dataset (no 'offsets' / format attribute); make one with 'hicgen truth' or 'hicgen run'")
        self.offsets = self._file["offsets"][:]
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._file.attrs.items()}
        self.event_columns = tuple(self._file["events"].keys())
        self.particle_columns = tuple(self._file["particles"].keys())

    def __len__(self) -> int:
        return self.offsets.size - 1

    def event_column(self, name: str) -> np.ndarray:
        """The whole event column `name` (KeyError when the file has none)."""
        return self._file["events"][name][()]

    def read(self, start: int = 0, stop: int | None = None, particles: bool = True) -> EventBatch:
        """Events start..stop-1 (all if stop is None); `particles=False` reads event columns only."""
        stop = len(self) if stop is None else min(stop, len(self))
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        events = {k: self._file["events"][k][start:stop] for k in self.event_columns}
        parts = {k: self._file["particles"][k][lo:hi] for k in self.particle_columns} if particles else {}
        offsets = self.offsets[start : stop + 1] - lo
        if not particles:
            offsets = offsets.copy()
            return EventBatch(events=events, offsets=offsets, particles={})
        return EventBatch(events=events, offsets=offsets, particles=parts)

    def iter_chunks(self, events_per_chunk: int = 10000, particles: bool = True) -> Iterator[EventBatch]:
        """Stream the file in chunks of whole events."""
        for start in range(0, len(self), events_per_chunk):
            yield self.read(start, start + events_per_chunk, particles)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "DatasetReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_dataset(path: str | os.PathLike) -> EventBatch:
    """The whole file as one EventBatch (small files; use DatasetReader.iter_chunks for large ones)."""
    with DatasetReader(path) as reader:
        return reader.read()


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a dataset: events, particles, multiplicity statistics and provenance attributes."""
    with DatasetReader(path) as reader:
        mult = np.diff(reader.offsets)
        return {
            "path": str(reader.path),
            "events": len(reader),
            "particles": int(reader.offsets[-1]),
            "mult_mean": float(mult.mean()) if mult.size else 0.0,
            "mult_std": float(mult.std()) if mult.size else 0.0,
            "mult_max": int(mult.max()) if mult.size else 0,
            "event_columns": list(reader.event_columns),
            "particle_columns": list(reader.particle_columns),
            "attrs": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in reader.attrs.items()},
        }
