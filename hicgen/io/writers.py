"""One EventWriter interface for every output format, and a background thread that runs it.

`open_writer(path, overwrite, run_info)` picks the format from the suffix (.h5/.hdf5 dataset, .hepmc/.hepmc3
[.gz] HepMC3, .root TTree) and returns a `BackgroundWriter`: `write` hands whole-event batches to a writer
thread through a bounded queue (so formatting and compression overlap sampling, and memory stays flat),
`close` drains the queue and renames the file into place, `abort` drops it. Every format fills a hidden
'.NAME.part' file, so the output name only ever holds a complete file of whole events.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Any, Protocol

from hicgen.data.batch import EventBatch
from hicgen.io import event_format
from hicgen.io.paths import check_output

MAX_PENDING = 4  # batches waiting for the writer thread; write() blocks beyond this
HDF5_BUFFER_PARTICLES = 1 << 20  # HDF5 appends of >= 4 chunks of float32 per column, which the writer's thread
# pool deflates side by side (hicgen.io.h5columns; a partly filled chunk waits in memory, not in the file)


class EventWriter(Protocol):
    """Streams whole events into one file."""

    path: Path
    n_events: int
    n_particles: int

    def write(self, batch: EventBatch) -> None: ...

    def close(self) -> Path: ...

    def abort(self) -> None: ...


class EventBuffer:
    """Collects whole-event batches until `particles` particles or `events` events are pending."""

    def __init__(self, particles: int, events: int) -> None:
        self.max_particles, self.max_events = particles, events
        self._batches: list[EventBatch] = []
        self._particles = self._events = 0

    def add(self, batch: EventBatch) -> EventBatch | None:
        """Keep `batch`; returns everything pending as one batch once a limit is reached."""
        if self._batches and set(batch.events) != set(self._batches[0].events):
            raise ValueError("event columns differ from the ones already written")
        self._batches.append(batch)
        self._particles += int(batch.offsets[-1])
        self._events += len(batch)
        full = self._particles >= self.max_particles or self._events >= self.max_events
        return self.drain() if full else None

    def drain(self) -> EventBatch | None:
        """Everything pending as one batch (None when empty)."""
        if not self._batches:
            return None
        batch = self._batches[0] if len(self._batches) == 1 else EventBatch.concat(self._batches)
        self._batches, self._particles, self._events = [], 0, 0
        return batch


class Hdf5Writer:
    """The dataset format (`DatasetWriter`) behind the EventWriter interface; run_info becomes file attributes.
    Batches are buffered up to HDF5_BUFFER_PARTICLES particles so that every append fills whole chunks."""

    def __init__(self, path: str | os.PathLike, run_info: dict[str, Any], overwrite: bool = False) -> None:
        from hicgen.data.dataset import DatasetWriter

        self._writer = DatasetWriter(path, run_info, overwrite)
        self._buffer = EventBuffer(HDF5_BUFFER_PARTICLES, HDF5_BUFFER_PARTICLES // 8)
        self.path = self._writer.path
        self.n_events = self.n_particles = 0

    def write(self, batch: EventBatch) -> None:
        self.n_events += len(batch)
        self.n_particles += int(batch.offsets[-1])
        full = self._buffer.add(batch)
        if full is not None:
            self._writer.append(full)

    def close(self) -> Path:
        rest = self._buffer.drain()
        if rest is not None:
            self._writer.append(rest)
        return self._writer.close()

    def abort(self) -> None:
        self._writer.abort()


class BackgroundWriter:
    """Runs an EventWriter in a thread fed by a bounded queue; errors there surface on the next call.

    Used as a context manager it closes on normal exit and on KeyboardInterrupt (keeping the whole events
    written so far; `close_stopped`) and aborts on any other exception.
    """

    def __init__(self, inner: EventWriter, max_pending: int = MAX_PENDING) -> None:
        self.inner = inner
        self.path = inner.path
        self._queue: queue.Queue[EventBatch | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._discard = False
        self._thread = threading.Thread(target=self._run, name="hicgen-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None and not self._discard:
                try:
                    self.inner.write(batch)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @property
    def n_events(self) -> int:
        """Events written to the file so far (all of them after close)."""
        return self.inner.n_events

    @property
    def n_particles(self) -> int:
        return self.inner.n_particles

    def write(self, batch: EventBatch) -> None:
        """Queue whole events; blocks while MAX_PENDING batches wait."""
        self._raise_pending_error()
        self._queue.put(batch)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def drain(self) -> None:
        """Write everything queued and end the thread; an error there aborts the file and is raised."""
        self._stop()
        try:
            self._raise_pending_error()
        except BaseException:
            self.inner.abort()
            raise

    def close(self) -> Path:
        """Write everything queued, then finish the file under its final name."""
        self.drain()
        return self.inner.close()

    def abort(self) -> None:
        """Drop queued batches and the partial file."""
        self._discard = True
        while not self._queue.empty():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._stop()
        self.inner.abort()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            close_stopped(self)
        else:
            self.abort()


def close_stopped(writer: EventWriter) -> Path | None:
    """Close the writer of a stopped run: the file keeps the whole events written so far; with none, there is no
    file (and an existing one at its name is kept). Returns the path written, or None."""
    if isinstance(writer, BackgroundWriter):
        writer.drain()  # the events still queued count
    if writer.n_events == 0:
        writer.abort()
        return None
    return writer.close()


def open_writer(
    path: str | os.PathLike, overwrite: bool = False, run_info: dict[str, Any] | None = None, background: bool = True,
) -> EventWriter:
    """The writer for `path`'s format (by suffix). HepMC3 needs run_info 'system' and 'sqrt_s' for the beams and
    numbers the events by their event_number column (by their position in the file without one); HDF5 and ROOT
    files store that column like any other.

    With background=True (default) the writer runs in its own thread (`BackgroundWriter`)."""
    fmt = event_format(path)
    check_output(path, overwrite)
    run_info = dict(run_info or {})
    if fmt == "hdf5":
        writer: EventWriter = Hdf5Writer(path, run_info, overwrite)
    elif fmt == "hepmc":
        from hicgen.io.hepmc import HepMCWriter

        writer = HepMCWriter(path, run_info, overwrite)
    else:
        from hicgen.io.root import RootWriter

        writer = RootWriter(path, run_info, overwrite)
    return BackgroundWriter(writer) if background else writer
