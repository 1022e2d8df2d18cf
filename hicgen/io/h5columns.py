"""Per-record columns of an HDF5 file (one row per record), appended in blocks, chunks compressed on threads.

h5py deflates each chunk inside its write call, on the calling thread: for the 64 x 64 float32 spectra of
`hicgen spectra` that is ~0.2 ms per record on a 2-core VM (gzip level 1 + shuffle), slower than a GPU makes
them. Here whole chunks of the compressed columns are byte-shuffled and deflated on a thread pool (numpy's copies
and zlib release the GIL) and stored with write_direct_chunk. The stored bytes are those HDF5's own shuffle and
deflate filters write, and the datasets declare those filters, so every HDF5 reader (h5py, ROOT, the C library)
reads them. Which columns are compressed is the caller's choice: the spectra files compress their images and keep
the per-record scalars plain; the event dataset of `hicgen run` compresses every column.

After every append the datasets hold exactly the rows appended so far: a chunk that is not yet full is stored
padded (HDF5 ignores the rows past the dataset's extent) and rewritten when the next block fills it, so no
partly filled compressed chunk is ever read back and recompressed.

The chunks are deflated by zlib-ng when it is installed (a dependency of hicgen; the streams are the same deflate
format, inflated by any HDF5's zlib): on the 64 x 64 float32 spectra its level 2 takes 204 instead of stdlib zlib's
319 us per record at level 1 for the same size (15.6 against 15.5 KiB), and on particle columns its level 4 143
instead of 234 ns per particle (7.95 against 7.99 bytes). Without it, stdlib zlib at level 1.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np

CHUNK_BYTES = 1 << 20  # target size of one uncompressed image chunk
SCALAR_CHUNK_ROWS = 1024
try:
    from zlib_ng import zlib_ng as deflate_library

    DEFLATE_LEVEL = 2  # the size of stdlib zlib's level 1, ~1.6x faster
except ImportError:  # a machine where the zlib-ng wheel could not be installed
    import zlib as deflate_library

    DEFLATE_LEVEL = 1


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity mask: a batch slot's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def compression_threads() -> int:
    """Threads for deflating chunks: the CPUs this process may use, at most 8."""
    return max(1, min(8, usable_cpus()))


def image_chunk_rows(shape: tuple[int, ...], dtype: np.dtype, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Records per chunk of a compressed column: about `chunk_bytes` uncompressed."""
    return max(1, chunk_bytes // (np.dtype(dtype).itemsize * int(np.prod(shape))))


def shuffle_deflate(block: np.ndarray, level: int = DEFLATE_LEVEL) -> bytes:
    """The bytes HDF5's shuffle then deflate filters store for one whole chunk `block` (C order): byte k of every
    element together, k = 0 .. itemsize - 1, then zlib-compressed."""
    flat = np.ascontiguousarray(block).reshape(-1)
    shuffled = np.ascontiguousarray(flat.view(np.uint8).reshape(flat.size, flat.itemsize).T)
    return deflate_library.compress(shuffled.data, level)


class RecordColumns:
    """Resizable datasets `fields` (name -> (per-record shape, dtype)) in an open HDF5 group, filled by append().

    The `compressed` columns (default: those with two or more axes per record, the images) are chunked by whole
    records, about `chunk_bytes` a chunk, and stored shuffled and deflated at `level` (gzip), the compression on
    `threads` threads (default compression_threads(); 1 compresses on the calling thread); the others are stored
    uncompressed in chunks of SCALAR_CHUNK_ROWS records."""

    def __init__(self, group: h5py.Group, fields: dict[str, tuple[tuple[int, ...], np.dtype]],
                 threads: int | None = None, compressed: Iterable[str] | None = None, level: int = DEFLATE_LEVEL,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        self._datasets: dict[str, h5py.Dataset] = {}
        self._pending: dict[str, np.ndarray] = {}  # rows of each compressed column's last, not yet full chunk
        compressed = {n for n, (shape, _) in fields.items() if len(shape) >= 2} if compressed is None else set(compressed)
        self._level = level
        for name, (shape, dtype) in fields.items():
            shape, dtype = tuple(shape), np.dtype(dtype)
            if name in compressed:
                rows = image_chunk_rows(shape, dtype, chunk_bytes)
                ds = group.create_dataset(name, (0,) + shape, dtype, maxshape=(None,) + shape, chunks=(rows,) + shape,
                                          compression="gzip", compression_opts=level, shuffle=True)
                self._pending[name] = np.empty((0,) + shape, dtype)
            else:
                ds = group.create_dataset(name, (0,) + shape, dtype, maxshape=(None,) + shape,
                                          chunks=(SCALAR_CHUNK_ROWS,) + shape)
            self._datasets[name] = ds
        threads = compression_threads() if threads is None else threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hicgen-deflate") if threads > 1 else None
        self.n = 0

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Append one block of records: `columns` holds every field, each with the same number of rows."""
        if set(columns) != set(self._datasets):
            raise ValueError(f"columns {sorted(columns)} are not the fields {sorted(self._datasets)}")
        lengths = {name: len(values) for name, values in columns.items()}
        m = next(iter(lengths.values()))
        if any(n != m for n in lengths.values()):
            raise ValueError(f"columns of different lengths: {lengths}")
        jobs = []  # (dataset, first row of the chunk, its rows)
        for name, ds in self._datasets.items():
            values = np.asarray(columns[name], dtype=ds.dtype)
            ds.resize(self.n + m, axis=0)
            if name not in self._pending:
                ds[self.n:] = values
                continue
            pending = self._pending[name]
            # no copy when no partial chunk waits (blocks of whole chunks: hicgen spectra's 256 x E x K records)
            rows = np.concatenate([pending, values]) if len(pending) else values
            first = self.n - len(pending)
            step = ds.chunks[0]
            for start in range(0, len(rows), step):
                jobs.append((ds, first + start, rows[start : start + step]))
            self._pending[name] = rows[(len(rows) // step) * step :].copy()  # not a view of the caller's array
        blocks = [self._padded(ds, rows) for ds, _, rows in jobs]
        deflate = functools.partial(shuffle_deflate, level=self._level)
        compressed = self._pool.map(deflate, blocks) if self._pool else map(deflate, blocks)
        for (ds, row, _), data in zip(jobs, compressed):
            ds.id.write_direct_chunk((row,) + (0,) * (ds.ndim - 1), data)
        self.n += m

    def copyable_chunks(self, stored: dict[str, h5py.Dataset], start: int) -> int:
        """How many records from `start` of the datasets `stored` (this object's compressed columns, in another file)
        append_stored can copy as they are stored: whole chunks of the same shape, type and filters, starting on a
        chunk boundary there, while no partial chunk waits here; 0 when it cannot."""
        if set(stored) != set(self._pending) or any(len(rows) for rows in self._pending.values()):
            return 0
        steps = set()
        for name, source in stored.items():
            ds = self._datasets[name]
            if source.chunks != ds.chunks or source.dtype != ds.dtype or _filters(source) != _filters(ds):
                return 0
            steps.add(ds.chunks[0])
        step = steps.pop() if len(steps) == 1 else 0
        if not step or start % step:
            return 0
        return (len(next(iter(stored.values()))) - start) // step * step

    def append_stored(self, plain: dict[str, np.ndarray], stored: dict[str, h5py.Dataset], start: int, m: int) -> None:
        """Append m records whose compressed columns are the datasets `stored` from record `start`, their chunks
        copied without inflating them (m at most copyable_chunks(stored, start)); `plain` holds the other columns'
        m rows. A merge of files whose parts hold whole chunks then costs their I/O, not their compression."""
        if not 0 < m <= self.copyable_chunks(stored, start) or m % next(iter(stored.values())).chunks[0]:
            raise ValueError(f"{m} records from {start} are not whole stored chunks that can be copied here")
        if set(plain) | set(stored) != set(self._datasets):
            raise ValueError(f"columns {sorted(set(plain) | set(stored))} are not the fields {sorted(self._datasets)}")
        for name, values in plain.items():
            ds = self._datasets[name]
            ds.resize(self.n + m, axis=0)
            ds[self.n:] = np.asarray(values, dtype=ds.dtype)
        for name, source in stored.items():
            ds = self._datasets[name]
            ds.resize(self.n + m, axis=0)
            tail = (0,) * (ds.ndim - 1)
            for row in range(0, m, ds.chunks[0]):
                mask, data = source.id.read_direct_chunk((start + row,) + tail)
                ds.id.write_direct_chunk((self.n + row,) + tail, data, mask)
        self.n += m

    @staticmethod
    def _padded(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
        """`rows` as one whole chunk: zero rows added after a last, partial chunk."""
        missing = ds.chunks[0] - len(rows)
        return rows if missing == 0 else np.concatenate([rows, np.zeros((missing,) + rows.shape[1:], rows.dtype)])

    def close(self) -> None:
        """Stop the compression threads (the datasets stay in the file)."""
        if self._pool is not None:
            self._pool.shutdown()


def _filters(ds: h5py.Dataset) -> list[tuple]:
    """The filter pipeline of a chunked dataset: (filter id, flags) of each filter, in order (not their values:
    a chunk deflated at another level inflates the same)."""
    plist = ds.id.get_create_plist()
    return [plist.get_filter(i)[:2] for i in range(plist.get_nfilters())]
