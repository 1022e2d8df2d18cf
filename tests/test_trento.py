"""TRENTo-model initial states: model pieces, eccentricities against `hic`, file layout and reader."""

import math
import zlib

import h5py
import numpy as np
import pytest
import torch

from hicgen.errors import InputError
from hicgen.truth import trento, trento_io
from hicgen.truth.trento import TrentoConfig
from trento_text import write_trento_text


def test_sigma_gg_reproduces_inelastic_cross_section():
    w = 0.96
    sgg = trento.sigma_gg(7.0, w)
    b = np.linspace(0, 12, 20001)
    tpp = np.exp(-b**2 / (4 * w * w)) / (4 * math.pi * w * w)
    sigma = np.trapezoid(2 * math.pi * b * (1 - np.exp(-sgg * tpp)), b)
    assert abs(sigma - 7.0) < 1e-3


def test_nucleus_woods_saxon_and_dmin():
    cfg = TrentoConfig()
    rng = np.random.default_rng(3)
    pos = np.concatenate([trento.sample_nucleus(rng, TrentoConfig(d_min=0.0)) for _ in range(20)])
    r = np.linalg.norm(pos, axis=1)
    # Woods-Saxon with R = 6.62, a = 0.546: <r^2> = (3/5) R^2 + (7/5) pi^2 a^2 = 30.42 fm^2
    assert abs(np.mean(r**2) - 30.42) < 0.6
    one = trento.sample_nucleus(rng, cfg)
    d = np.linalg.norm(one[:, None] - one[None], axis=-1) + np.eye(len(one)) * 99
    assert d.min() >= cfg.d_min


def _nucleus_one_by_one(rng, cfg):
    """The rule of sample_nucleus, a candidate at a time (what it computed until 2026-12-06)."""
    a, d2 = cfg.a_nucleons, cfg.d_min**2
    out, pool, n, j = np.empty((a, 3)), trento._woods_saxon_points(rng, 2 * a, cfg), 0, 0
    while n < a:
        if j == len(pool):
            pool, j = trento._woods_saxon_points(rng, a, cfg), 0
        x = pool[j]
        j += 1
        if n == 0 or d2 == 0 or np.min(np.sum((out[:n] - x) ** 2, axis=1)) >= d2:
            out[n] = x
            n += 1
    return out


@pytest.mark.parametrize("cfg", [TrentoConfig(), TrentoConfig(d_min=0.0), TrentoConfig(a_nucleons=16, radius=2.61, diffuseness=0.513),
                                 TrentoConfig(d_min=1.7)])  # 1.7 fm: most candidates rejected, the pool refilled 5 times
def test_nucleus_is_the_one_by_one_rule_to_the_bit(cfg):
    """The k-d tree's pairs give the nuclei (and the random numbers they use) of the rule checked a candidate at a
    time, for Pb, for O, without d_min and with a d_min that exhausts the first pool."""
    for seed in range(4):
        fast, slow = np.random.default_rng(seed), np.random.default_rng(seed)
        np.testing.assert_array_equal(trento.sample_nucleus(fast, cfg), _nucleus_one_by_one(slow, cfg))
        assert fast.random() == slow.random()  # the same draws consumed


def test_events_reproducible_at_any_batch_size_and_central_npart():
    cfg = TrentoConfig(b_max=1.0, grid_max=8.0, grid_step=0.4)
    a = np.concatenate([p for p, _ in trento.generate(4, cfg, seed=5, batch=4)])
    b = np.concatenate([p for p, _ in trento.generate(4, cfg, seed=5, batch=3)])
    np.testing.assert_allclose(a, b, rtol=1e-12)
    attrs = next(trento.generate(4, cfg, seed=5, batch=4))[1]
    assert np.all(attrs["npart"] > 350) and np.all(attrs["b"] < 1.0)  # central Pb-Pb: ~400 of 416 participate
    np.testing.assert_allclose(attrs["mult"], a.sum((1, 2)) * 0.4**2)


def test_impact_parameter_distribution_is_linear():
    cfg = TrentoConfig(a_nucleons=20, radius=2.0, diffuseness=0.5, d_min=0.0, b_max=3.0, grid_max=4, grid_step=1.0)
    bs = np.concatenate([a["b"] for _, a in trento.generate(300, cfg, seed=1, batch=300)])
    assert abs(np.mean(bs) - 2.0) < 0.12  # P(b) ~ b on [0, 3]: <b> = 2


def test_eccentricities_agree_with_hic_package():
    hic_initial = pytest.importorskip("hic.initial")
    cfg = TrentoConfig(grid_max=10.0, grid_step=0.2, b_min=4.0, b_max=12.0)
    prof, attrs = next(trento.generate(6, cfg, seed=11, batch=6))
    for i in range(len(prof)):
        ic = hic_initial.IC(prof[i], cfg.grid_step)
        for n in (2, 3, 4, 5):
            assert attrs[f"e{n}"][i] == pytest.approx(ic.ecc(n), rel=1e-6, abs=1e-9)


def test_generalized_mean():
    t = torch.tensor([1.0, 4.0])
    cfg0 = TrentoConfig(p=0.0, norm=1.0)
    ev = trento.Participants(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([1.0, 4.0]), np.array([0, 1], np.int8), 0.0)
    tr0 = trento.reduced_thickness([ev], cfg0)
    tr1 = trento.reduced_thickness([ev], TrentoConfig(p=1.0, norm=1.0))
    peak = 1 / (2 * math.pi * 0.96**2)
    assert float(tr0.max()) == pytest.approx(peak * math.sqrt(float(t.prod())), rel=0.02)  # p = 0: geometric mean
    assert float(tr1.max()) == pytest.approx(peak * 2.5, rel=0.02)  # p = 1: arithmetic mean


def test_monte_carlo_cross_section_of_point_nuclei_is_sigma_nn():
    """One point-like nucleon per nucleus: sigma_inel must be the nucleon-nucleon cross section sigma_gg was solved for."""
    cfg = TrentoConfig(a_nucleons=1, radius=1e-3, diffuseness=1e-4, d_min=0.0)
    estimate = trento.inelastic_cross_section(cfg, events_per_stratum=600, stratum_width=0.5, seed=3)
    sigma, err = estimate.total
    assert 0.05 < err < 0.3
    assert abs(sigma - cfg.cross_section) < 4 * err
    w, sgg = cfg.nucleon_width, trento.sigma_gg(cfg.cross_section, cfg.nucleon_width)
    b = np.linspace(0.0, 1.0, 2001)
    inner = np.trapezoid(2 * math.pi * b * (1 - np.exp(-sgg * np.exp(-b**2 / (4 * w * w)) / (4 * math.pi * w * w))), b)
    part, part_err = estimate.between(0.0, 1.0)
    assert abs(part - inner) < 4 * part_err


def test_sample_coverage_from_the_file_parameters(tmp_path):
    cfg = TrentoConfig(a_nucleons=16, radius=2.6, diffuseness=0.5, d_min=0.0, b_max=3.0, grid_max=6.0, grid_step=0.5)
    path = trento.write_trento(tmp_path / "ic.h5", 2, cfg, seed=2, batch=2)
    assert trento.trento_config_of(path) == cfg
    with h5py.File(path) as f:  # the nucleus named from its mass number, not always Pb
        assert (f.attrs["projectile"], f.attrs["target"]) == ("O", "O")
    assert trento.nucleus_name(208) == "Pb" and trento.nucleus_name(40) == "A=40"
    with pytest.raises(InputError, match="A = 16"):
        trento.sample_coverage(cfg)
    cov = trento.sample_coverage(trento.trento_config_of(path), events_per_stratum=16, measured_cross_section=50.0)
    assert cov["percent"] == pytest.approx(100 * math.pi * 3.0**2 / 50.0, rel=0.02)
    assert cov["percent_of_model"] == pytest.approx(100 * math.pi * 3.0**2 / cov["sigma_inel_fm2"], rel=0.02)
    assert 10 < cov["percent_of_model"] < 60 and cov["percent_of_model_err"] > 0
    with pytest.raises(InputError, match="b = 0"):
        trento.sample_coverage(TrentoConfig(b_min=1.0, b_max=3.0))
    with h5py.File(tmp_path / "real.h5", "w") as f:
        f.create_dataset("event_0", data=np.ones((4, 4)))
    with pytest.raises(InputError, match="with --coverage"):
        trento.trento_config_of(tmp_path / "real.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    for bad in ("missing.h5", "text.h5"):
        with pytest.raises(InputError):
            trento.trento_config_of(tmp_path / bad)


def test_write_read_round_trip(tmp_path):
    cfg = TrentoConfig(grid_max=6.0, grid_step=0.3)
    path = trento.write_trento(tmp_path / "ic.h5", 3, cfg, seed=2, batch=2)
    with h5py.File(path) as f:
        assert sorted(f) == ["event_0", "event_1", "event_2"]
        assert f["event_1"].shape == (40, 40)
        assert set(trento_io.EVENT_ATTRS) <= set(f["event_1"].attrs)
        assert f.attrs["grid_step"] == 0.3
    ev = trento_io.read_trento(path)
    assert ev.profiles.shape == (3, 40, 40) and ev.grid_step == 0.3 and ev.grid_max == pytest.approx(6.0)
    assert np.isfinite(ev.attrs["e2"]).all()
    assert not (tmp_path / ".ic.h5.part").exists()


def test_reader_accepts_real_trento_files_without_grid_info(tmp_path):
    path = tmp_path / "real.h5"
    with h5py.File(path, "w") as f:  # what `trento Pb Pb 2 -o real.h5` writes: no file attributes
        for i in (10, 2):
            ds = f.create_dataset(f"event_{i}", data=np.full((100, 100), float(i)))
            ds.attrs.update({"b": 1.0, "npart": 400, "mult": 3.0, "e2": 0.1, "e3": 0.1, "e4": 0.1, "e5": 0.1})
    ev = trento_io.read_trento(path)
    assert ev.names == ["event_2", "event_10"] and ev.grid_step == trento_io.DEFAULT_GRID_STEP
    assert ev.profiles.dtype == np.float32 and (ev.profiles[0] == 2.0).all() and (ev.profiles[1] == 10.0).all()
    assert ev.attrs["npart"].tolist() == [400, 400] and ev.attrs["e3"].tolist() == [0.1, 0.1]
    assert trento_io.read_trento(path, grid_step=0.1).grid_max == pytest.approx(5.0)


@pytest.mark.parametrize("threads", [1, 3])
def test_reader_inflates_real_trento_chunks_on_threads(tmp_path, monkeypatch, threads):
    """Real trento stores each event as one gzip-4 chunk of float64: with 2+ CPUs the reader inflates those chunks
    itself on threads, with 1 through HDF5; both give HDF5's own values. Events stored otherwise in the same file
    (shuffled, chunked smaller, contiguous, never written) are read through HDF5, and a chunk that does not inflate,
    or inflates to the wrong size, is refused in one line (through HDF5 on one CPU too)."""
    from hicgen.io import h5columns

    monkeypatch.setattr(h5columns, "compression_threads", lambda: threads)
    rng = np.random.default_rng(3)
    grids = rng.gamma(0.3, 20.0, (6, 30, 30)) * (rng.random((6, 30, 30)) < 0.6)
    path = tmp_path / "real.h5"
    with h5py.File(path, "w") as f:
        layouts = [dict(chunks=(30, 30), compression="gzip", compression_opts=4)] * 3 + [
            dict(chunks=(30, 30), compression="gzip", shuffle=True), dict(chunks=(10, 30), compression="gzip"), {}]
        for i, (grid, layout) in enumerate(zip(grids, layouts)):
            ds = f.create_dataset(f"event_{i}", data=grid, **layout)
            ds.attrs.update({"b": float(i), "npart": 400 + i, "mult": grid.sum()})
    reader = trento_io.TrentoReader(path)
    assert (reader._inflate is not None) == (threads > 1)
    ev = reader.read(0, 6)
    reader.close()
    assert np.array_equal(ev.profiles, grids.astype(np.float32)) and ev.attrs["npart"].tolist() == list(range(400, 406))
    assert np.array_equal(trento_io.read_trento(path, events=slice(1, 4)).profiles, grids[1:4].astype(np.float32))

    with h5py.File(path, "a") as f:  # an event never written reads as HDF5's fill value, zeros, either way
        del f["event_4"]
        f.create_dataset("event_4", (30, 30), np.float64, chunks=(30, 30), compression="gzip", compression_opts=4)
    assert not trento_io.read_trento(path).profiles[4].any()
    with h5py.File(path, "a") as f:  # a chunk of 899 values where 900 belong
        del f["event_2"]
        ds = f.create_dataset("event_2", (30, 30), np.float64, chunks=(30, 30), compression="gzip")
        ds.id.write_direct_chunk((0, 0), zlib.compress(grids[2].tobytes()[:-8], 4))
    if threads > 1:
        with pytest.raises(InputError, match="event_2: the stored chunk holds 7192 bytes, not 900 values"):
            trento_io.read_trento(path)
    with h5py.File(path, "a") as f:
        f["event_2"].id.write_direct_chunk((0, 0), b"not deflated")
    with pytest.raises(InputError, match="event_2: the stored chunk does not inflate" if threads > 1 else
                       "event_2 cannot be read .*; is the file damaged"):  # through HDF5's filter on one CPU
        trento_io.read_trento(path)


def test_reader_reads_real_trento_text_output(tmp_path):
    """`trento --output DIR` writes 00.dat .. 10.dat: read in event-number order with their header attributes,
    the grid step from the caller (the text does not hold it), one file alone too."""
    rng = np.random.default_rng(4)
    profiles = rng.gamma(2.0, 1.0, (11, 12, 12)).astype(np.float32)
    heads = [dict(b=0.5 * i, npart=400 - i, mult=1e3 + i, e2=0.1, e3=0.01 * i, e4=0.3, e5=0.4) for i in range(11)]
    files = write_trento_text(tmp_path / "events", profiles, heads)
    (tmp_path / "events" / "notes.txt").write_text("not an event")
    ev = trento_io.read_trento(tmp_path / "events")
    assert [f.name for f in files[:2]] == ["00.dat", "01.dat"]
    assert ev.names == [f"event_{i}" for i in range(11)] and ev.grid_step == trento_io.DEFAULT_GRID_STEP
    np.testing.assert_allclose(ev.profiles, profiles, rtol=1e-6)
    for key in trento_io.EVENT_ATTRS:
        np.testing.assert_allclose(ev.attrs[key], [h[key] for h in heads], err_msg=key)
    part = trento_io.read_trento(tmp_path / "events", grid_step=0.4, events=slice(9, None))
    assert part.names == ["event_9", "event_10"] and part.grid_max == pytest.approx(2.4)
    one = trento_io.read_trento(files[3])
    assert one.names == ["event_3"] and one.attrs["npart"][0] == 397
    np.testing.assert_allclose(one.profiles[0], profiles[3], rtol=1e-6)
    # the multiplicities alone (a centrality calibration), from the headers and from an HDF5 twin, one missing
    np.testing.assert_allclose(trento_io.read_multiplicities(tmp_path / "events"), [h["mult"] for h in heads])
    with h5py.File(tmp_path / "twin.h5", "w") as f:
        for i in range(3):
            f[f"event_{i}"] = profiles[i]
            if i != 1:
                f[f"event_{i}"].attrs["mult"] = heads[i]["mult"]
    np.testing.assert_array_equal(trento_io.read_multiplicities(tmp_path / "twin.h5"), [1e3, np.nan, 1e3 + 2])


@pytest.mark.parametrize("text, match", [
    (None, "holds no trento text files"),
    ("# event 0\n1 2\n3\n", "is not a trento text file"),
    ("# event 0\n1 2 3\n4 5 6\n", r"shape \(2, 3\); trento profiles must be square"),
    ("# event 0\n# b = wide\n1 2\n3 4\n", "header 'b = wide' is not a number"),
    ("# event 0\n", "must be square"),
])
def test_reader_rejects_bad_trento_text(tmp_path, text, match):
    folder = tmp_path / "events"
    folder.mkdir()
    if text is not None:
        (folder / "0.dat").write_text(text)
    with pytest.raises(InputError, match=match):
        trento_io.read_trento(folder)


def test_reader_rejects_non_trento(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match="no datasets event_0"):
        trento_io.read_trento(bad)
    with pytest.raises(InputError, match="does not exist"):
        trento_io.read_trento(tmp_path / "missing.h5")


def test_reader_checks_each_profile_shape_when_its_block_is_read(tmp_path):
    """Opening checks the first profile only (no pass over the whole file before the first block); a profile of
    another shape is refused in one line when its block is read, in either storage layout."""
    for layout in ({}, {"chunks": (8, 8), "compression": "gzip"}):
        path = tmp_path / "shapes.h5"
        with h5py.File(path, "w") as f:
            for i in range(3):
                f.create_dataset(f"event_{i}", data=np.ones((10, 10)), **({"chunks": (10, 10), "compression": "gzip"} if layout else {}))
            f.create_dataset("event_3", data=np.ones((8, 8)), **layout)
        with trento_io.TrentoReader(path) as reader:
            assert reader.read(0, 3).profiles.shape == (3, 10, 10)
            with pytest.raises(InputError, match=r"event_3 has shape \(8, 8\) but the file's first event has \(10, 10\)"):
                reader.read(2, 4)


def test_blocks_read_on_worker_processes_are_the_reading_threads(tmp_path):
    """ResampledBlocks on worker processes gives the blocks its thread gives, in order, numbered from number_from,
    for events inflated on threads (real trento's layout) and read through HDF5 alike; a pickled reader holds no
    events' list but reads the same events; a bad profile is raised where its block is taken, and close() stops
    the workers."""
    import pickle
    from multiprocessing.shared_memory import SharedMemory

    rng = np.random.default_rng(5)
    grids = rng.gamma(0.5, 10.0, (8, 20, 20))
    path = tmp_path / "ic.h5"
    with h5py.File(path, "w") as f:
        for i, grid in enumerate(grids):  # events 0-3 as real trento stores them, 4-7 as hicgen does
            layout = dict(chunks=(20, 20), compression="gzip", compression_opts=4) if i < 4 else {}
            f.create_dataset(f"event_{i}", data=grid, **layout).attrs.update({"b": float(i), "npart": 10 + i})
        f.attrs["grid_step"] = 0.5
    with trento_io.TrentoReader(path, events=slice(1, 8)) as reader:
        copy = pickle.loads(pickle.dumps(reader))
        assert copy.names == [] and copy.grid_step == 0.5
        assert np.array_equal(copy.read_events(reader.names[2:5]).profiles, reader.read(2, 5).profiles)
        copy.close()
        runs = []
        for processes in (0, 2):
            blocks = trento_io.ResampledBlocks(reader, 3, 8, 4.0, processes, number_from=1)
            slots = [slot.name for slot in blocks._slots]  # shared memory the workers write the profiles into
            runs.append(list(blocks))
            blocks.close()
            assert len(slots) == processes
            for name in slots:  # freed by close()
                with pytest.raises(FileNotFoundError):
                    SharedMemory(name)
    thread, workers = runs
    assert [(b.start, b.stop) for b in workers] == [(1, 4), (4, 7), (7, 8)] == [(b.start, b.stop) for b in thread]
    for a, b in zip(thread, workers):
        assert np.array_equal(a.ic, b.ic) and all(np.array_equal(a.attrs[k], b.attrs[k], equal_nan=True) for k in a.attrs)
    assert np.array_equal(thread[1].attrs["b"], [4.0, 5.0, 6.0]) and thread[0].ic.shape == (3, 8, 8)
    expected = trento_io.resample_profile(grids[1:4].astype(np.float32), 5.0, 8, 4.0)
    assert np.array_equal(thread[0].ic, expected)
    folder = tmp_path / "text"  # the real program's text output: workers read the files the parent listed
    write_trento_text(folder, grids, [{"b": float(i)} for i in range(8)])
    with trento_io.TrentoReader(folder, grid_step=0.5) as reader:
        blocks = trento_io.ResampledBlocks(reader, 3, 8, 4.0, 2)
        from_text = list(blocks)
        blocks.close()
    assert [b.start for b in from_text] == [0, 3, 6] and np.array_equal(from_text[1].attrs["b"], [3.0, 4.0, 5.0])
    np.testing.assert_allclose(np.concatenate([b.ic for b in from_text])[1:4], thread[0].ic, rtol=1e-6)
    with h5py.File(path, "a") as f:
        f["event_5"][0, 0] = -1.0
    with trento_io.TrentoReader(path) as reader:
        blocks = trento_io.ResampledBlocks(reader, 3, 8, 4.0, 2)
        taken = iter(blocks)
        assert next(taken).start == 0
        with pytest.raises(InputError, match="negative or non-finite"):
            next(taken)
        blocks.close()
        assert not blocks._pool._processes  # the workers are gone


def test_a_reader_process_that_dies_stops_the_blocks_with_one_line(tmp_path):
    """A worker killed mid-run (out of memory, kill -9) breaks the pool: the blocks stop with one HicgenError naming
    the way out, within seconds, and no worker is left. (Workers that ignored SIGTERM made this hang: the pool ends
    the other workers of a broken pool with SIGTERM and waits for them.)"""
    import os
    import signal
    import threading

    from hicgen.errors import HicgenError

    path = tmp_path / "ic.h5"
    with h5py.File(path, "w") as f:
        for i in range(384):
            f.create_dataset(f"event_{i}", data=np.ones((20, 20)))
    with trento_io.TrentoReader(path) as reader:
        # blocks of 4 MiB resampled: a worker busy with one when the other dies is still sending it as the pool
        # stops reading results and ends the workers
        blocks = trento_io.ResampledBlocks(reader, 64, 128, 1.0, 2)
        taken = iter(blocks)
        next(taken)
        workers = list(blocks._pool._processes)
        os.kill(workers[0], signal.SIGKILL)
        raised = []

        def drain_and_close() -> None:
            raised.append(pytest.raises(HicgenError, list, taken))
            blocks.close()

        drain = threading.Thread(target=drain_and_close, daemon=True)
        drain.start()
        drain.join(60)
        hung = drain.is_alive()
        if hung:  # free the pool's wait, so that the test fails instead of hanging
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            drain.join(10)
    assert not hung and raised and "--read-processes 0" in str(raised[0].value)


def test_reading_trento_files_does_not_import_torch():
    """ResampledBlocks' workers import hicgen.truth.trento_io alone: with torch they would start ~6x slower and hold
    ~180 MB more each."""
    import subprocess
    import sys

    code = "import sys, hicgen.truth.trento_io; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_reader_takes_attributes_of_any_numeric_type_and_refuses_others(tmp_path):
    """Event attributes of mixed numeric types read as float64 (a missing or empty one as NaN); one that holds
    several values or text is refused in one line naming it, also when an earlier event gave a number of the same
    storage size."""
    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w") as f:
        for i, attrs in enumerate(({"b": 1.5, "npart": np.int32(7)}, {"b": np.float32(2.5), "mult": np.int64(3)},
                                   {"b": np.int64(4), "npart": np.uint8(9), "mult": h5py.Empty("f8")})):
            f.create_dataset(f"event_{i}", data=np.ones((6, 6))).attrs.update(attrs)
    ev = trento_io.read_trento(path)
    assert ev.attrs["b"].tolist() == [1.5, 2.5, 4.0] and ev.attrs["npart"].tolist()[::2] == [7.0, 9.0]
    assert np.isnan(ev.attrs["npart"][1]) and np.isnan(ev.attrs["mult"][[0, 2]]).all() and ev.attrs["mult"][1] == 3
    for bad, message in ((np.arange(3.0), r"'b' holds \(3,\) values"), (np.float32([1, 0]), r"'b' holds \(2,\) values"),
                         ("x", "'b' is not a number")):
        with h5py.File(path, "a") as f:
            f["event_1"].attrs["b"] = bad
        with pytest.raises(InputError, match=f"event_1: attribute {message}"):
            trento_io.read_trento(path)


def test_resample_preserves_integral():
    rng = np.random.default_rng(0)
    prof = rng.random((2, 100, 100)).astype(np.float32)
    out = trento_io.resample_profile(prof, 10.0, 64)
    assert out.shape == (2, 64, 64)
    np.testing.assert_allclose(out.sum((1, 2)) * (20 / 64) ** 2, prof.sum((1, 2)) * 0.2**2, rtol=1e-5)
    flat = trento_io.resample_profile(np.ones((1, 100, 100)), 10.0, 64)
    np.testing.assert_allclose(flat, 1.0, rtol=1e-6)


def test_config_validation():
    with pytest.raises(InputError, match="--nucleon-width"):
        TrentoConfig(nucleon_width=0)
    with pytest.raises(InputError, match="--b-max"):
        TrentoConfig(b_min=5, b_max=4)


def test_reader_processes_ended_by_the_stopping_sigterm_are_a_stop(tmp_path):
    """A SIGTERM to the whole process group ends the reading workers and asks the parent to stop (stop_on_signals):
    the broken pool then stops the blocks as a KeyboardInterrupt, which keeps the records written, not as an error."""
    import os
    import signal

    from hicgen.engine.stopping import stop_on_signals

    path = tmp_path / "ic.h5"
    with h5py.File(path, "w") as f:
        for i in range(256):
            f.create_dataset(f"event_{i}", data=np.ones((20, 20)))
    with trento_io.TrentoReader(path) as reader, stop_on_signals():
        blocks = trento_io.ResampledBlocks(reader, 64, 32, 1.0, 2)
        taken = iter(blocks)
        next(taken)
        os.kill(os.getpid(), signal.SIGTERM)  # the parent's share of the group's signal: a request
        for pid in list(blocks._pool._processes):
            os.kill(pid, signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            list(taken)
        blocks.close()
