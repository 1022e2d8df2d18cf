"""RecordColumns: image chunks deflated on threads read back through HDF5's own filters, block after block."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from hicgen.io import h5columns
from hicgen.io.h5columns import RecordColumns, shuffle_deflate

FIELDS = {"image": ((8, 16), np.float32), "index": ((), np.int64), "vector": ((3,), np.float64)}


def columns(m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"image": rng.normal(size=(m, 8, 16)).astype(np.float32), "index": rng.integers(0, 1 << 40, m),
            "vector": rng.normal(size=(m, 3))}


@pytest.mark.parametrize("threads, every_column", [(1, False), (3, False), (2, True)])
def test_blocks_of_any_size_read_back_after_every_append(tmp_path, threads, every_column):
    rng = np.random.default_rng(3)
    written = {name: [] for name in FIELDS}
    with h5py.File(tmp_path / "c.h5", "w") as f:
        compressed = FIELDS if every_column else None  # every column (hicgen run's dataset) or the images only
        cols = RecordColumns(f, FIELDS, threads=threads, compressed=compressed, level=4 if every_column else 1,
                             chunk_bytes=8 * 16 * 4 * 10)  # image chunks of 10 records
        for m in (3, 10, 1, 26, 0, 20, 7):  # partial chunks, exact chunks, a chunk filled across appends
            block = columns(m, rng)
            cols.append(block)
            for name in FIELDS:
                written[name].append(block[name].copy())
                block[name][...] = 0  # the caller reuses its arrays: a waiting partial chunk must not change
                assert np.array_equal(f[name][()], np.concatenate(written[name])), (name, m)
        cols.close()
        assert cols.n == 67 and f["image"].chunks == (10, 8, 16)
    with h5py.File(tmp_path / "c.h5", "r") as f:  # a fresh reader decompresses through HDF5's filters
        assert f["image"].compression == "gzip" and f["image"].shuffle and f["image"].compression_opts == (4 if every_column else 1)
        assert (f["index"].compression == "gzip") == every_column and f["index"].chunks == ((640,) if every_column else (1024,))
        for name in FIELDS:
            assert np.array_equal(f[name][()], np.concatenate(written[name]))


def test_chunk_bytes_are_those_of_hdf5s_shuffle_filter(tmp_path):
    block = np.random.default_rng(5).normal(size=(4, 8, 16)).astype(np.float32)
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        ds = f.create_dataset("x", data=block, chunks=block.shape, compression="gzip", shuffle=True)
        _, stored = ds.id.read_direct_chunk((0, 0, 0))
    assert zlib.decompress(shuffle_deflate(block)) == zlib.decompress(stored)


def test_columns_must_match_the_fields(tmp_path):
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        cols = RecordColumns(f, FIELDS, threads=1)
        with pytest.raises(ValueError, match="fields"):
            cols.append({k: v for k, v in columns(2, rng).items() if k != "vector"})
        bad = columns(2, rng)
        bad["index"] = bad["index"][:1]
        with pytest.raises(ValueError, match="different lengths"):
            cols.append(bad)
        assert cols.n == 0


def test_thread_pools_size_to_the_cpus_this_process_may_use(monkeypatch):
    """A batch slot pinned to 2 CPUs of a large node gets 2 deflating and 2 Poisson threads, not the node's count."""
    import os

    from hicgen.spectra import generate

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert h5columns.usable_cpus() == 2 and h5columns.compression_threads() == 2
    pools = []
    real_pool = generate.ThreadPoolExecutor
    monkeypatch.setattr(generate, "ThreadPoolExecutor", lambda workers, **kw: pools.append(workers) or real_pool(workers, **kw))
    filled = []
    generate.for_each_row(filled.append, 10)
    assert pools == [2] and sorted(filled) == list(range(10))


def test_chunks_are_deflated_by_zlib_ng_at_the_size_of_zlib_level_1(tmp_path):
    """With zlib-ng (a dependency) the image chunks go through its level 2: the deflate streams of any zlib, about
    the size stdlib zlib's level 1 gives, and the datasets declare that level."""
    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    assert h5columns.deflate_library is zlib_ng and h5columns.DEFLATE_LEVEL == 2
    rng = np.random.default_rng(6)
    spectra = (rng.gamma(2.0, 1.0, (64, 32, 32)) * np.linspace(3, 0.1, 32)[:, None]).astype(np.float32)
    ours = shuffle_deflate(spectra)
    shuffled = np.ascontiguousarray(spectra.reshape(-1).view(np.uint8).reshape(-1, 4).T).tobytes()
    assert zlib.decompress(ours) == shuffled
    assert 0.9 < len(ours) / len(zlib.compress(shuffled, 1)) < 1.1
    with h5py.File(tmp_path / "c.h5", "w") as f:
        RecordColumns(f, {"image": ((32, 32), np.float32)}, threads=1).append({"image": spectra})
        assert f["image"].compression_opts == 2 and np.array_equal(f["image"][()], spectra)


def test_without_zlib_ng_the_chunks_are_deflated_by_zlib_at_level_1(tmp_path):
    """A machine where zlib-ng is missing (a lent GPU machine without the wheel) writes readable files with stdlib zlib."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['zlib_ng'] = None\n"
            "import h5py, numpy as np\n"
            "from hicgen.io import h5columns as h\n"
            "assert h.deflate_library.__name__ == 'zlib' and h.DEFLATE_LEVEL == 1\n"
            f"f = h5py.File({str(tmp_path / 'z.h5')!r}, 'w')\n"
            "h.RecordColumns(f, {'image': ((8, 8), np.float32)}, threads=1).append({'image': np.ones((3, 8, 8), np.float32)})\n"
            "assert f['image'].compression_opts == 1 and f['image'][()].sum() == 192\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_whole_stored_chunks_are_copied_without_inflating(tmp_path):
    """append_stored copies another file's compressed chunks as they are stored, byte for byte, when they are whole
    chunks of the same shape and filters starting on a chunk boundary and no partial chunk waits here; the data
    then read back equal. copyable_chunks says how many records qualify (0 where none do)."""
    rng = np.random.default_rng(8)
    data = columns(25, rng)
    small = dict(chunk_bytes=8 * 16 * 4 * 10)  # image chunks of 10 records
    with h5py.File(tmp_path / "src.h5", "w") as src, h5py.File(tmp_path / "dst.h5", "w") as dst:
        RecordColumns(src, FIELDS, threads=1, **small).append(data)
        cols = RecordColumns(dst, FIELDS, threads=1, **small)
        stored = {"image": src["image"]}
        plain = {k: data[k] for k in ("index", "vector")}
        assert cols.copyable_chunks(stored, 0) == 20 and cols.copyable_chunks(stored, 10) == 10
        assert cols.copyable_chunks(stored, 5) == 0  # not on a chunk boundary
        with pytest.raises(ValueError, match="not whole stored chunks"):
            cols.append_stored({k: v[:15] for k, v in plain.items()}, stored, 0, 15)
        cols.append_stored({k: v[:20] for k, v in plain.items()}, stored, 0, 20)
        assert dst["image"].id.read_direct_chunk((10, 0, 0)) == src["image"].id.read_direct_chunk((10, 0, 0))
        cols.append({k: v[20:] for k, v in data.items()})  # the rest, deflated here: 5 rows wait in a partial chunk
        assert cols.copyable_chunks(stored, 0) == 0
        for name in FIELDS:
            assert np.array_equal(dst[name][()], data[name]), name
        other = RecordColumns(dst.create_group("g"), FIELDS, threads=1)  # chunks of another shape
        assert other.copyable_chunks(stored, 0) == 0
