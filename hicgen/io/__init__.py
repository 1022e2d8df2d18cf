"""Event files: the dataset HDF5 format, HepMC3 and ROOT, chosen by suffix. io knows nothing of models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from hicgen.data.batch import EventBatch
from hicgen.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5")
HEPMC_SUFFIXES = (".hepmc", ".hepmc3", ".hepmc.gz", ".hepmc3.gz")
ROOT_SUFFIXES = (".root",)
EVENT_SUFFIXES = HDF5_SUFFIXES + HEPMC_SUFFIXES + ROOT_SUFFIXES


def event_format(path: str | os.PathLike) -> str:
    """'hdf5', 'hepmc' or 'root' from the file name, or InputError naming the known suffixes."""
    name = Path(path).name.lower()
    for fmt, suffixes in (("hdf5", HDF5_SUFFIXES), ("hepmc", HEPMC_SUFFIXES), ("root", ROOT_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    raise InputError(f"'{path}' has an unknown suffix; use one of {', '.join(EVENT_SUFFIXES)}")


def read_events(path: str | os.PathLike) -> EventBatch:
    """Read a whole event file (any hicgen format) into one EventBatch with the dataset's columns."""
    fmt = event_format(path)
    if fmt == "hdf5":
        from hicgen.data.dataset import read_dataset

        return read_dataset(path)
    if fmt == "hepmc":
        from hicgen.io.hepmc import read_hepmc

        return read_hepmc(path)
    from hicgen.io.root import read_root

    return read_root(path)


def iter_events(path: str | os.PathLike, particles_per_chunk: int = 2_000_000,
                events_per_chunk: int = 1000) -> Iterator[EventBatch]:
    """Any hicgen event file as EventBatches of whole events, read chunk by chunk: an HDF5 dataset by at most
    `particles_per_chunk` particles (or one event), a HepMC3 or ROOT file by `events_per_chunk` events."""
    fmt = event_format(path)
    if fmt == "hdf5":
        from hicgen.data.batch import event_chunks
        from hicgen.data.dataset import DatasetReader

        with DatasetReader(path) as reader:
            for start, stop in event_chunks(reader.offsets, particles_per_chunk):
                yield reader.read(start, stop)
        return
    if fmt == "hepmc":
        from hicgen.io.hepmc import iter_hepmc

        yield from iter_hepmc(path, events_per_chunk)
        return
    from hicgen.io.root import iter_root

    yield from iter_root(path, events_per_chunk)
