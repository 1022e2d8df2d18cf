"""Trento files: reading the initial states of the trento layout, HDF5 or text, block by block, and resampling
their profiles to another grid. Apart from hicgen.truth.trento (the TRENTo model, which needs torch), so that
processes that only read (ResampledBlocks' workers) start without torch: importing this module took 0.16-0.19 s
and 34 MB, hicgen.truth.trento 1.17-1.32 s and 225 MB (2-core VM, `/usr/bin/time python -c "import ..."`, twice).

HDF5 layout (as the real `trento` program writes with --output *.h5): datasets event_0, event_1, ... of shape
(G, G), rows y, columns x, cell centres at (i + 1/2) step - grid_max; attributes b, npart, mult, e2, e3, e4, e5
on each dataset; hicgen's files add the file attributes grid_step, grid_max and provenance. Text layout: the
real program's `--output DIR` (N.dat files, a '# key = value' header and one grid row a line).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import warnings
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.shared_memory import SharedMemory
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hicgen.engine.stopping import check_stop
from hicgen.errors import HicgenError, InputError

EVENT_ATTRS = ("b", "npart", "mult", "e2", "e3", "e4", "e5")
DEFAULT_GRID_STEP = 0.2  # fm: trento's default --grid-step, assumed for files that record no grid


@dataclass
class TrentoEvents:
    """Initial states read from a trento-layout file: profiles (N, G, G) float32 rows y, columns x."""

    profiles: np.ndarray
    attrs: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N,), NaN where a file lacks it
    grid_step: float = DEFAULT_GRID_STEP  # fm
    names: list[str] = field(default_factory=list)

    @property
    def grid_max(self) -> float:
        return 0.5 * self.grid_step * self.profiles.shape[-1]


def check_trento_path(path: str | os.PathLike, what: str = "initial-condition") -> Path:
    """An existing trento input: an HDF5 file, a folder of trento text files or one such file; else InputError."""
    from hicgen.io.paths import check_input

    path = Path(path)
    return path if path.is_dir() else check_input(path, what)


def read_trento(path: str | os.PathLike, grid_step: float | None = None, events: slice | None = None) -> TrentoEvents:
    """Read the events of a hicgen or real-trento file, in event-number order: HDF5 (event_0, event_1, ...) or the
    real program's text output (a folder of N.dat files, `trento --output DIR`, or one such file).

    The grid step comes from `grid_step` when given, else the file's grid_step attribute, else grid_max and the
    number of cells, else trento's default 0.2 fm (the real program records its grid in neither format).
    """
    with TrentoReader(path, grid_step, events) as reader:
        return reader.read(0, reader.n)


def read_event_attrs(path: str | os.PathLike, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The event attributes (HDF5) or header values (text) `keys` of every event of a trento input, in event-number
    order, without reading the profiles; NaN where an event does not give one."""
    with TrentoReader(path) as reader:
        if reader._h5 is None:
            headers = [_text_header(file) for file in reader.names]
            return {k: np.array([h.get(k, np.nan) for h in headers], np.float64) for k in keys}
        return {k: np.array([_number(reader._h5[name].attrs, k) for name in reader.names], np.float64) for k in keys}


def read_multiplicities(path: str | os.PathLike) -> np.ndarray:
    """The TRENTo multiplicity (attribute or header `mult`) of every event of a trento input (read_event_attrs)."""
    return read_event_attrs(path, ("mult",))["mult"]


def _number(attrs, key: str) -> float:
    """The attribute `key` as one float; NaN when it is missing, empty, not a number or several."""
    try:
        value = np.ravel(np.asarray(attrs[key], np.float64))
    except (KeyError, TypeError, ValueError, OSError):
        return np.nan
    return float(value[0]) if value.size == 1 else np.nan


class TrentoReader:
    """The events of a trento-layout input (as read_trento), read block by block: the file is opened and its events
    listed once (the first HDF5 profile's shape checked), so a long input streams through constant memory.
    read(start, stop) checks the shapes and values of its block. A pickled reader (sent to a worker process) opens
    the file again where it is unpickled; it holds no events' list and reads with read_events."""

    def __init__(self, path: str | os.PathLike, grid_step: float | None = None, events: slice | None = None) -> None:
        self.path = check_trento_path(path)
        self._h5 = None
        self._inflate: ThreadPoolExecutor | None = None
        file_step = None
        if self.path.is_dir() or self.path.suffix == ".dat":
            self.names = _text_files(self.path, events)
            self.shape = _read_text_block(self.names[:1], None)[0].shape[1:]
        else:
            self._h5, self.names, self.shape, file_step = _open_hdf5(self.path, events)
            self._inflate = _inflate_pool(self._h5, self.names)
        self.grid_step = grid_step if grid_step is not None else file_step or DEFAULT_GRID_STEP
        if not self.grid_step > 0:
            self.close()
            raise InputError(f"grid step must be > 0 fm, got {self.grid_step}")

    @property
    def n(self) -> int:
        return len(self.names)

    def narrow(self, lo: int, hi: int) -> None:
        """Keep only the events lo .. hi - 1 of those selected (a shard of them); read() counts from lo."""
        self.names = self.names[lo:hi]

    @property
    def grid_max(self) -> float:
        return 0.5 * self.grid_step * self.shape[-1]

    def read(self, start: int, stop: int) -> TrentoEvents:
        """Events start .. stop - 1 of the input; InputError for negative or non-finite profiles."""
        return self.read_events(self.names[start:stop])

    def read_events(self, names: list) -> TrentoEvents:
        """The events `names` (a slice of .names), as read()."""
        if self._h5 is not None:
            prof, attrs = _read_hdf5_block(self._h5, names, self.shape, self._inflate)
        else:
            prof, attrs, names = _read_text_block(names, self.shape)
        if not np.all(np.isfinite(prof)) or (prof < 0).any():
            raise InputError(f"'{self.path}': profiles contain negative or non-finite values; is it an entropy-density file?")
        return TrentoEvents(prof, attrs, self.grid_step, names)

    def close(self) -> None:
        if self._inflate is not None:
            self._inflate.shutdown(wait=True)
            self._inflate = None
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "TrentoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # not the events' list: for 10^6 events it would slow each worker's start, and CPython's spawn hangs when
        # a worker dies (e.g. a script without `if __name__ == "__main__":`) before reading more than a pipe holds
        return {"path": self.path, "shape": self.shape, "grid_step": self.grid_step, "inflate": self._inflate is not None}

    def __setstate__(self, state: dict) -> None:
        inflate = state.pop("inflate")
        self.__dict__.update(state, names=[], _h5=None, _inflate=None)
        if not (self.path.is_dir() or self.path.suffix == ".dat"):
            import h5py

            self._h5 = h5py.File(self.path, "r")
            self._inflate = _inflate_threads() if inflate else None


@dataclass
class ResampledBlock:
    """Events start .. stop - 1 (event numbers) of an input: their attributes and their profiles resampled."""

    start: int
    stop: int
    attrs: dict[str, np.ndarray]  # name -> (stop - start,), NaN where the input lacks it
    ic: np.ndarray | None  # (stop - start, R, R) float32; None on its way back from a worker (in its slot)


def _load_block(reader: TrentoReader, names: list, start: int, stop: int, resolution: int,
                grid_out: float) -> ResampledBlock:
    """Events start .. stop - 1 of `reader` (counted from its first; `names` theirs), resampled to resolution^2
    cells on [-grid_out, grid_out]^2."""
    states = reader.read_events(names)
    return ResampledBlock(start, stop, states.attrs,
                          resample_profile(states.profiles, reader.grid_max, resolution, grid_out))


_worker_reader: TrentoReader | None = None  # a ResampledBlocks worker process's copy of the reader
_worker_slots: dict[str, SharedMemory] = {}  # the shared-memory slots it has opened, by name


def _start_worker(reader: TrentoReader) -> None:
    """Set up a ResampledBlocks worker process. Ctrl-C reaches the whole process group; it is the parent's to handle
    (it keeps the records written so far, then stops the workers), so a worker ignores it. SIGTERM is left as it
    is: the pool ends the workers of a broken pool with it and waits for them (ignored, that wait never ended), and
    after a SIGTERM to the whole group (a batch system) the parent, asked to stop by the same signal, takes the
    broken pool for that stop (ResampledBlocks.__iter__)."""
    global _worker_reader
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_reader = reader


def _load_in_worker(names: list, start: int, stop: int, resolution: int, grid_out: float,
                    slot: str) -> ResampledBlock:
    """_load_block in a worker: the resampled profiles go into the shared-memory `slot`, the rest back by pipe."""
    block = _load_block(_worker_reader, names, start, stop, resolution, grid_out)
    if slot not in _worker_slots:
        _worker_slots[slot] = SharedMemory(slot)
    np.ndarray(block.ic.shape, np.float32, _worker_slots[slot].buf)[...] = block.ic
    block.ic = None  # the parent copies it out of the slot
    return block


class ResampledBlocks:
    """The events of a TrentoReader in blocks of `block`, in order, each read and resampled (resolution^2 cells on
    [-grid_out, grid_out]^2) ahead of its use: with processes = 0 on one background thread, one block ahead; else
    on that many worker processes, as many blocks ahead. Reading a trento file is mostly h5py calls, which hold the
    GIL, so one thread reads at most ~7,000 ICs/s of 100 x 100 cells however many CPUs there are; processes read
    side by side (docs/spectra.md). The workers are spawned (never forked: the caller may hold CUDA or torch's
    threads) and import only this module, numpy and h5py. Each block in flight has a slot of shared memory that its
    worker writes the resampled profiles into: sent through the pipe, they cost the main process 13-16 us of CPU
    an IC with the GIL held, copied out of shared memory 5-7.
    Blocks' start and stop count from `number_from`, the input's event number of the reader's first event. An error
    of a read is raised where its block is taken. close() waits for the reads in flight, so the reader can then be
    closed, and frees the slots."""

    def __init__(self, reader: TrentoReader, block: int, resolution: int, grid_out: float, processes: int = 0,
                 number_from: int = 0) -> None:
        self._names, self._block, self._number_from = reader.names, block, number_from
        self._grid = (resolution, grid_out)
        self._ahead = max(1, processes)
        self._slots: list[SharedMemory] = []
        if processes > 0:
            try:
                self._slots = [SharedMemory(create=True, size=block * resolution**2 * 4) for _ in range(processes)]
                self._pool = ProcessPoolExecutor(processes, multiprocessing.get_context("spawn"),
                                                 initializer=_start_worker, initargs=(reader,))
            except BaseException:
                self._free_slots()
                raise
        else:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="hicgen-read")
            self._load = functools.partial(_load_block, reader)

    def _submit(self, start: int, stop: int, slot: int) -> Future:
        names = self._names[start:stop]
        if not self._slots:
            return self._pool.submit(self._load, names, start, stop, *self._grid)
        return self._pool.submit(_load_in_worker, names, start, stop, *self._grid, self._slots[slot].name)

    def _take(self, job: Future, slot: int) -> ResampledBlock:
        block = job.result()
        if self._slots:  # copied out (numpy copies without the GIL), so the slot serves the next block
            shape = (block.stop - block.start,) + (self._grid[0],) * 2
            block.ic = np.ndarray(shape, np.float32, self._slots[slot].buf).copy()
        block.start += self._number_from
        block.stop += self._number_from
        return block

    def __iter__(self) -> Iterator[ResampledBlock]:
        n = len(self._names)
        starts = iter(range(0, n, self._block))
        in_flight: deque[tuple[Future, int]] = deque()

        def submit(slot: int) -> None:
            start = next(starts, None)
            if start is not None:
                in_flight.append((self._submit(start, min(start + self._block, n), slot), slot))

        try:  # a worker that died breaks the pool: raised by the next submit or result
            for slot in range(self._ahead):
                submit(slot)
            while in_flight:
                job, slot = in_flight.popleft()
                block = self._take(job, slot)
                submit(slot)  # keep `ahead` blocks in flight while the caller works on this one
                yield block
        except BrokenProcessPool:
            check_stop()  # workers ended by the SIGTERM to the group that also stops this process: a stop
            raise HicgenError("a process reading the initial states stopped (killed, out of memory, the input moved "
                              "away, or started by a script without 'if __name__ == \"__main__\":'); run again with "
                              "--read-processes 0 to read on a thread instead") from None

    def _free_slots(self) -> None:
        for slot in self._slots:
            slot.close()
            slot.unlink()
        self._slots = []

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._free_slots()


def _select(names: list, events: slice | None, path: Path) -> list:
    if events is None:
        return names
    chosen = names[events]
    if not chosen:
        raise InputError(f"'{path}' has no events in the requested range (it holds {len(names)} events); lower --first or --events")
    return chosen


def _open_hdf5(path: Path, events: slice | None) -> tuple[Any, list[str], tuple[int, ...], float | None]:
    """(open h5py file, selected dataset names, profile shape, grid step recorded in the file or None) of a
    trento-layout HDF5 file; InputError for a file of another layout or a profile of another shape."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"'{path}' is not an HDF5 file; give a trento HDF5 file (hicgen truth trento --out ic.h5) or a "
                         "folder of trento text files") from None
    try:
        names = sorted((k for k in f.keys() if k.startswith("event_") and k[6:].isdigit()), key=lambda k: int(k[6:]))
        if not names:
            raise InputError(f"'{path}' has no datasets event_0, event_1, ...; give a trento HDF5 file")
        names = _select(names, events, path)
        shape = f[names[0]].shape  # every other event's is checked as its block is read (_read_hdf5_block)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise InputError(f"'{path}': {names[0]} has shape {shape}; trento profiles must be square (G, G)")
        file_step = None
        if "grid_step" in f.attrs:
            file_step = float(f.attrs["grid_step"])
        elif "grid_max" in f.attrs:
            file_step = 2 * float(f.attrs["grid_max"]) / shape[0]
    except BaseException:
        f.close()
        raise
    return f, names, shape, file_step


def _whole_chunk_deflate(event) -> bool:
    """Whether an HDF5 dataset (low-level h5py DatasetID) is stored as one chunk through the deflate filter alone:
    how the real trento program writes every event (chunk = whole grid, gzip 4)."""
    import h5py

    plist = event.get_create_plist()
    return (plist.get_layout() == h5py.h5d.CHUNKED and plist.get_chunk() == event.shape
            and plist.get_nfilters() == 1 and plist.get_filter(0)[0] == h5py.h5z.FILTER_DEFLATE)


def _inflate_pool(f, names: list[str]) -> ThreadPoolExecutor | None:
    """Threads that inflate the events of a file whose first event is one deflated chunk (real trento's HDF5), when
    the machine has two or more CPUs; None otherwise."""
    import h5py

    if not _whole_chunk_deflate(h5py.h5d.open(f.id, names[0].encode())):
        return None
    return _inflate_threads()


def _inflate_threads() -> ThreadPoolExecutor | None:
    """The threads of _inflate_pool; None on a machine of one CPU."""
    from hicgen.io.h5columns import compression_threads

    threads = compression_threads()
    return ThreadPoolExecutor(threads, thread_name_prefix="hicgen-inflate") if threads >= 2 else None


def _inflate_into(out: np.ndarray, chunk: bytes, dtype: np.dtype, where: str) -> None:
    """Decompress one deflated chunk of `dtype` values into `out` (converted to its dtype)."""
    try:
        raw = zlib.decompress(chunk)
    except zlib.error as exc:
        raise InputError(f"{where}: the stored chunk does not inflate ({exc}); is the file damaged?") from None
    if len(raw) != out.size * dtype.itemsize:
        raise InputError(f"{where}: the stored chunk holds {len(raw)} bytes, not {out.size} values; is the file damaged?")
    out[...] = np.frombuffer(raw, dtype).reshape(out.shape)


def _read_event(event, out: np.ndarray, where: str) -> None:
    """HDF5's read of one event (low-level DatasetID) into `out`; InputError when its storage cannot be read."""
    import h5py

    try:
        event.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    except OSError as exc:  # e.g. a chunk that its filter cannot decode
        raise InputError(f"{where} cannot be read ({exc}); is the file damaged?") from None


def _read_hdf5_block(f, names: list[str], shape: tuple[int, ...],
                     inflate: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, dict]:
    """(profiles (B, G, G) float32, attributes) of the datasets `names` of an open trento-layout file.

    With `inflate`, an event stored as one deflated chunk is read raw (read_direct_chunk) and the block's chunks are
    then decompressed on those threads: zlib releases the GIL, HDF5's own filter does not, and inflating real
    trento's gzip-4 float64 events was most of the time of reading them (~350 of ~540 us an event)."""
    import h5py

    prof = np.empty((len(names),) + tuple(shape), np.float32)
    attrs = {k: np.full(len(names), np.nan) for k in EVENT_ATTRS}
    value = np.empty(8, np.float64)  # the read's buffer: value[0] is the attribute
    # value[0] before a read (NaN: an attribute without values reads as missing), and value[1]'s bits: a NaN with
    # a payload that no conversion to float64 produces
    unread = np.array([np.array(np.nan).view(np.int64), 0x7FF4DEADBEEF0001], np.int64)
    bits = value.view(np.int64)
    keys = [(k, k.encode()) for k in EVENT_ATTRS]
    origin = (0,) * len(shape)
    pending = []
    # h5py's low-level calls: its high-level objects cost ~20 us per dataset or attribute lookup, which made
    # reading (~0.8 ms per event) slower than a GPU samples spectra; these read ~3x faster.
    for i, name in enumerate(names):
        event = h5py.h5d.open(f.id, name.encode())
        # here, not on opening the file: checking every event there took ~20 us an event before the first
        # spectrum (20 s for 10^6 ICs); here ~6 us, on the reader thread, while the network works
        if event.shape != tuple(shape):
            raise InputError(f"'{f.filename}': {name} has shape {event.shape} but the file's first event has {tuple(shape)}")
        if inflate is not None and _whole_chunk_deflate(event) and event.get_storage_size():  # 0: never written
            mask, chunk = event.read_direct_chunk(origin)
            if mask:  # the filter was skipped for this chunk: HDF5 knows how to read it
                _read_event(event, prof[i], f"'{f.filename}' {name}")
            else:
                pending.append((prof[i], chunk, event.dtype, f"'{f.filename}' {name}"))
        else:
            _read_event(event, prof[i], f"'{f.filename}' {name}")
        for k, key in keys:
            try:
                attr = h5py.h5a.open(event, key)
            except KeyError:  # the file does not give it: NaN
                continue
            # Asking for its shape costs ~5 us, and h5py builds a memory type for every read unless given one
            # (~6 us): 95 us for an event's seven attributes. Here the shape is asked only of an attribute of more
            # than 8 bytes, which could overrun `value`; one of at most 8 bytes holds at most 8 values, and a second
            # value shows as value[1] overwritten: 51-54 us an event.
            try:
                size = attr.get_storage_size()
            except RuntimeError:  # h5py's error for 0 bytes: an attribute without values (h5py.Empty) is missing
                continue
            if size > len(value) and attr.shape != ():
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' holds {attr.shape} values, not one number")
            bits[:2] = unread
            try:
                attr.read(value, mtype=h5py.h5t.NATIVE_DOUBLE)
            except TypeError:
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' is not a number") from None
            if bits[1] != unread[1]:
                raise InputError(f"'{f.filename}' {name}: attribute '{k}' holds {attr.shape} values, not one number")
            attrs[k][i] = value[0]
    # all inflated at the end, not submitted as read: threads that finish a chunk while this loop holds the GIL in
    # short HDF5 calls wait for it, and the overlap gained nothing (511 against 538 us an event on 2 cores)
    if pending:
        list(inflate.map(lambda job: _inflate_into(*job), pending))  # list() re-raises a failed job's error
    return prof, attrs


def _text_files(path: Path, events: slice | None) -> list[Path]:
    """The selected trento text files of a folder (0.dat, 1.dat, ... in event-number order), or the one file."""
    if not path.is_dir():
        return _select([path], events, path)
    files = sorted((p for p in path.glob("*.dat") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not files:
        raise InputError(f"folder '{path}' holds no trento text files (0.dat, 1.dat, ...); give the folder of "
                         "'trento --output DIR' or a trento HDF5 file")
    return _select(files, events, path)


def _text_header(file: Path) -> dict:
    """The header of a trento text file: its '# key = value' lines, EVENT_ATTRS as floats (InputError when one is
    not a number), and 'event' the N of its '# event N' line when it has one."""
    header: dict = {}
    try:
        with open(file) as handle:
            for line in handle:
                if not line.startswith("#"):
                    break
                key, _, value = line[1:].partition("=")
                key, value = key.strip(), value.strip()
                if key.startswith("event "):
                    header["event"] = key.split()[1]
                elif key in EVENT_ATTRS:
                    try:
                        header[key] = float(value)
                    except ValueError:
                        raise InputError(f"'{file}': header '{key} = {value}' is not a number") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"'{file}' is not a trento text file ({type(exc).__name__}); give the files of "
                         "'trento --output DIR'") from None
    return header


def _read_text_block(files: list[Path], shape: tuple[int, ...] | None) -> tuple[np.ndarray, dict, list[str]]:
    """Real trento's text output: files N.dat (event number N, zero-padded), each a header of comment lines
    '# event N' and '# key = value' (b, npart, mult, e2, e3, ...) followed by the profile, one grid row (y) a line.
    Every profile must be square and, given `shape`, of that shape (else of the first file's)."""
    prof, names = [], []
    attrs = {k: np.full(len(files), np.nan) for k in EVENT_ATTRS}
    for i, file in enumerate(files):
        header = _text_header(file)
        try:
            with warnings.catch_warnings():  # an empty file is reported below, not as numpy's warning
                warnings.simplefilter("ignore", UserWarning)
                grid = np.loadtxt(file, comments="#", dtype=np.float32, ndmin=2)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"'{file}' is not a trento text file ({type(exc).__name__}); give the files of "
                             "'trento --output DIR'") from None
        expected = tuple(shape) if shape is not None else prof[0].shape if prof else None
        if grid.size == 0 or grid.shape[0] != grid.shape[1] or (expected is not None and grid.shape != expected):
            raise InputError(f"'{file}': profile of shape {grid.shape}; trento profiles must be "
                             f"{'square' if expected is None else f'{expected} as the first'}")
        prof.append(grid)
        for k in EVENT_ATTRS:
            attrs[k][i] = header.get(k, np.nan)
        number = header.get("event", file.stem)
        names.append(f"event_{number}")
    return np.stack(prof), attrs, names


def resample_profile(profiles: np.ndarray, grid_max_in: float, resolution: int = 64,
                     grid_max_out: float | None = None) -> np.ndarray:
    """Average densities (N, G, G) on [-grid_max_in, grid_max_in]^2 over the cells of a (N, R, R) grid on
    [-grid_max_out, grid_max_out]^2 (default: the same square). Each output cell is the area-weighted mean of the
    input cells it overlaps (zero outside the input), so the integral over the common area is preserved."""
    if grid_max_out is None:
        grid_max_out = grid_max_in
    profiles = np.asarray(profiles)
    g = profiles.shape[-1]

    def weights(n_in: int, h_in: float, n_out: int, h_out: float) -> np.ndarray:
        edges_in = np.linspace(-h_in, h_in, n_in + 1)
        edges_out = np.linspace(-h_out, h_out, n_out + 1)
        overlap = np.minimum(edges_out[1:, None], edges_in[None, 1:]) - np.maximum(edges_out[:-1, None], edges_in[None, :-1])
        return np.clip(overlap, 0.0, None) / (edges_out[1] - edges_out[0])

    w = weights(g, grid_max_in, resolution, grid_max_out).astype(np.float32)
    # Two BLAS products: a three-operand np.einsum without optimize loops in C over all five indices and was
    # over 400x slower (3.7 s for 100 trento ICs of 100 x 100, more than the network then spent on them). In float32
    # they take 34 instead of 82-85 us per IC of 100 x 100 (benchmarks/spectra_io.py, 2-core VM), within 1.1e-7 of
    # the maximum of the float64 products.
    return w @ profiles.astype(np.float32, copy=False) @ w.T
