import h5py
import numpy as np
import pytest

from conftest import toy_batch
from hicgen.data.batch import EventBatch
from hicgen.data.dataset import DatasetReader, DatasetWriter, dataset_info, read_dataset
from hicgen.errors import InputError, OutputExistsError


def _assert_same(a: EventBatch, b: EventBatch) -> None:
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert set(a.events) == set(b.events)
    for k in a.events:
        np.testing.assert_array_equal(a.events[k], b.events[k])
    for k in a.particles:
        np.testing.assert_array_equal(a.particles[k], b.particles[k])


def test_round_trip_in_several_appends(tmp_path):
    parts = [toy_batch(7, seed=s) for s in range(3)]
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {"system": "OO", "seeds": [1, 2]}) as w:
        for p in parts:
            w.append(p)
    back = read_dataset(path)
    _assert_same(EventBatch.concat(parts), back)
    info = dataset_info(path)
    assert info["events"] == 21 and info["attrs"]["system"] == "OO"
    assert list(info["attrs"]["seeds"]) == [1, 2]


def test_no_variable_length_types_and_compressed_chunks(tmp_path):
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {}) as w:
        w.append(toy_batch(5))
    with h5py.File(path) as f:
        for name in ("particles/pt", "particles/pid", "events/b"):
            ds = f[name]
            assert h5py.check_vlen_dtype(ds.dtype) is None
            assert ds.compression == "gzip" and ds.shuffle
            assert 100_000 <= ds.chunks[0] * ds.dtype.itemsize <= 2 << 20


def test_chunked_reading_gives_whole_events(tmp_path):
    full = toy_batch(23, seed=4)
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {}) as w:
        w.append(full)
    with DatasetReader(path) as r:
        chunks = list(r.iter_chunks(5))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    _assert_same(full, EventBatch.concat(chunks))
    # event table of a chunk matches its own particles
    c = chunks[2]
    np.testing.assert_allclose(c.events["mult"], c.multiplicity)


def test_select_and_slice_match(batch):
    idx = np.array([3, 1, 4])
    sel = batch.select(idx)
    for j, i in enumerate(idx):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        np.testing.assert_array_equal(sel.particles["pt"][sel.offsets[j]:sel.offsets[j + 1]], batch.particles["pt"][lo:hi])
    _assert_same(batch.slice(2, 5), batch.select(np.arange(2, 5)))


def test_existing_file_is_kept_without_overwrite(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        DatasetWriter(path, {})
    assert path.read_bytes() == b"precious"


def test_failed_write_leaves_existing_file(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, {}, overwrite=True) as w:
            w.append(toy_batch(3))
            raise RuntimeError("boom")
    assert path.read_bytes() == b"precious"
    assert not list(tmp_path.glob(".*.part"))


def test_interrupted_write_keeps_whole_events(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        with DatasetWriter(path, {}) as w:
            w.append(toy_batch(4))
            raise KeyboardInterrupt
    assert len(read_dataset(path)) == 4
    with pytest.raises(KeyboardInterrupt):  # stopped before any event: no file, the existing one kept
        with DatasetWriter(path, {}, overwrite=True):
            raise KeyboardInterrupt
    assert len(read_dataset(path)) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_reader_rejects_foreign_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1]
    with pytest.raises(InputError, match="not a hicgen dataset"):
        DatasetReader(other)
    with pytest.raises(InputError, match="does not exist"):
        DatasetReader(tmp_path / "missing.h5")
