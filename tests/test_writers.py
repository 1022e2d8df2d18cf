"""Writers: every format reads back like the HDF5 file, HepMC3 through pyhepmc; no overwrite; whole events only."""

from __future__ import annotations

import numpy as np
import pytest

from hicgen.data.batch import EVENT_COLUMNS, EventBatch
from hicgen.data.features import particle_event_features
from hicgen.errors import InputError, OutputExistsError
from hicgen.io import read_events
from hicgen.io._text import Int, Sci, format_lines
from hicgen.io.writers import open_writer

RUN_INFO = {"system": "OO", "sqrt_s": 5360.0, "model": "tiny-test", "seed": 17}
FORMATS = ["events.h5", "events.hepmc", "events.hepmc3.gz", "events.root"]


def make_batch(n_events: int, mean_mult: float, seed: int = 0) -> EventBatch:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_mult, n_events)
    counts[0] = 0  # an empty event must survive every format
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n = int(offsets[-1])
    particles = {
        "pt": (rng.exponential(0.6, n) + 0.1).astype(np.float32),
        "eta": rng.uniform(-3, 3, n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "pid": rng.choice([211, -211, 321, -321, 2212, -2212, 11, -13, 3222, 3112], n).astype(np.int32),
    }
    events = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)
    events.update(
        b=rng.uniform(0, 10, n_events), ncoll=rng.integers(1, 200, n_events).astype(np.int32),
        npart=rng.integers(2, 33, n_events).astype(np.int32), centrality=rng.uniform(0, 100, n_events),
    )
    events["q2x"] = events["q2x"] + rng.normal(size=n_events)  # event-branch values need not match the particles
    return EventBatch(events=events, offsets=offsets, particles=particles)


def write_chunks(path, batch: EventBatch, chunk: int = 7, **kwargs) -> None:
    writer = open_writer(path, run_info=RUN_INFO, **kwargs)
    for start in range(0, len(batch), chunk):
        writer.write(batch.slice(start, min(start + chunk, len(batch))))
    writer.close()


@pytest.fixture(scope="module")
def batch() -> EventBatch:
    return make_batch(40, 25)


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_matches_hdf5(tmp_path, batch, name):
    write_chunks(tmp_path / "ref.h5", batch)
    write_chunks(tmp_path / name, batch)
    ref, back = read_events(tmp_path / "ref.h5"), read_events(tmp_path / name)
    assert np.array_equal(back.offsets, ref.offsets)
    assert np.array_equal(back.particles["pid"], ref.particles["pid"])
    for key in ("pt", "eta", "phi"):
        np.testing.assert_allclose(back.particles[key], ref.particles[key], rtol=1e-6, atol=1e-6)
    for key in EVENT_COLUMNS + ("centrality",):
        np.testing.assert_allclose(back.events[key], ref.events[key], rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", FORMATS)
def test_chunked_reading_gives_the_whole_file(tmp_path, batch, name):
    """hicgen.io.iter_events: whole events in chunks (HepMC3, ROOT by event count; HDF5 by particle count) that join
    to what read_events returns, empty event included."""
    from hicgen.io import iter_events

    write_chunks(tmp_path / name, batch)
    chunks = list(iter_events(tmp_path / name, particles_per_chunk=300, events_per_chunk=15))
    sizes = [len(chunk) for chunk in chunks]
    assert sum(sizes) == 40 and len(chunks) > 2
    if not name.endswith(".h5"):
        assert sizes == [15, 15, 10]
    else:
        assert max(int(chunk.offsets[-1]) for chunk in chunks) <= 300
    joined, whole = EventBatch.concat(chunks), read_events(tmp_path / name)
    assert np.array_equal(joined.offsets, whole.offsets)
    for key in ("pt", "eta", "phi", "pid"):
        np.testing.assert_array_equal(joined.particles[key], whole.particles[key])
    for key in EVENT_COLUMNS + ("centrality",):
        np.testing.assert_array_equal(joined.events[key], whole.events[key], err_msg=key)


def test_hepmc_records_read_by_pyhepmc(tmp_path, batch):
    import pyhepmc

    path = tmp_path / "events.hepmc"
    write_chunks(path, batch)
    text = path.read_text()
    assert "  " not in text  # HepMC3's reader wants single spaces
    assert text.startswith("HepMC::Version") and text.rstrip().endswith("HepMC::Asciiv3-END_EVENT_LISTING")
    with pyhepmc.open(path) as stream:
        events = list(stream)
    assert len(events) == len(batch)
    run = events[0].run_info
    assert run.tools[0].name == "hicgen"
    assert run.attributes["model"].astype(str) == "tiny-test" and run.attributes["seed"].astype(int) == 17
    for i in (0, 1, len(batch) - 1):
        ev = events[i]
        assert ev.momentum_unit == pyhepmc.Units.GEV and ev.length_unit == pyhepmc.Units.MM
        heavy = ev.heavy_ion
        assert heavy.impact_parameter == batch.events["b"][i]
        assert heavy.Ncoll == batch.events["ncoll"][i]
        assert heavy.Npart_proj + heavy.Npart_targ == batch.events["npart"][i]
        assert heavy.event_plane_angle == batch.events["psi2"][i]
        assert heavy.centrality == batch.events["centrality"][i]
        beams = [p for p in ev.particles if p.status == 4]
        assert [p.pid for p in beams] == [1000080160, 1000080160]
        assert beams[0].momentum.pz == pytest.approx(-beams[1].momentum.pz)
        assert beams[0].momentum.e == pytest.approx(16 * 5360.0 / 2)
        final = [p for p in ev.particles if p.status == 1]
        assert len(final) == batch.multiplicity[i]
        for p in final:  # full four-momenta with the species' mass
            assert p.momentum.m() == pytest.approx(p.generated_mass, abs=1e-6)
            assert p.production_vertex.id == beams[0].end_vertex.id


def test_vectorised_hepmc_equals_pyhepmc_path(tmp_path, batch):
    import pyhepmc

    from hicgen.io.hepmc import events_to_pyhepmc

    with pyhepmc.open(tmp_path / "ref.hepmc", "w") as stream:
        for event in events_to_pyhepmc(batch, RUN_INFO):
            stream.write(event)
    write_chunks(tmp_path / "fast.hepmc", batch)
    ref, fast = read_events(tmp_path / "ref.hepmc"), read_events(tmp_path / "fast.hepmc")
    assert np.array_equal(ref.offsets, fast.offsets)
    for key in ref.particles:
        np.testing.assert_allclose(fast.particles[key], ref.particles[key], rtol=1e-6, atol=1e-6)
    for key in ref.events:
        np.testing.assert_allclose(fast.events[key], ref.events[key], rtol=1e-5, err_msg=key)


def test_foreign_hepmc_recomputes_event_features(tmp_path):
    batch = make_batch(5, 10)
    bare = EventBatch({k: batch.events[k] for k in ("b", "ncoll", "npart", "psi2")}, batch.offsets, batch.particles)
    write_chunks(tmp_path / "bare.hepmc", bare)
    back = read_events(tmp_path / "bare.hepmc")
    expected = particle_event_features(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets)
    np.testing.assert_allclose(back.events["sum_pt"], expected["sum_pt"], rtol=1e-5)
    np.testing.assert_allclose(back.events["q2x"], expected["q2x"], rtol=1e-4, atol=1e-5)


def test_root_is_a_zstd_ttree_with_large_baskets(tmp_path):
    import uproot

    batch = make_batch(150, 200, seed=3)  # ~30k particles in 30 small writes: one basket > 100 kB per branch
    write_chunks(tmp_path / "e.root", batch, chunk=5)
    with uproot.open(tmp_path / "e.root") as file:
        tree = file["events"]
        assert tree.classname.startswith("TTree")
        assert file.file.compression == uproot.ZSTD(1)
        assert {"pt", "eta", "phi", "pid", "px", "py", "pz", "e", "b", "ncoll", "npart", "centrality", "psi2", "mult"} <= set(tree.keys())
        assert tree["pt"].num_baskets == 1 and tree["pt"].basket(0).uncompressed_bytes > 100_000
        np.testing.assert_allclose(
            tree["px"].array(library="np")[3], batch.particles["pt"][batch.offsets[3]:batch.offsets[4]] * np.cos(batch.particles["phi"][batch.offsets[3]:batch.offsets[4]]), rtol=1e-6)
        assert '"model": "tiny-test"' in str(file["run_info"])


@pytest.mark.parametrize("name", FORMATS)
def test_never_overwrites_without_permission(tmp_path, batch, name):
    path = tmp_path / name
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        open_writer(path, run_info=RUN_INFO)
    assert path.read_bytes() == b"precious"
    write_chunks(path, batch, overwrite=True)
    assert len(read_events(path)) == len(batch)


@pytest.mark.parametrize("name", FORMATS)
def test_interrupt_before_any_event_keeps_the_old_file(tmp_path, batch, name):
    """A run stopped before its first whole event writes no file: an existing one (--overwrite) stays as it was."""
    path = tmp_path / name
    path.write_bytes(b"an earlier production")
    with pytest.raises(KeyboardInterrupt):
        with open_writer(path, overwrite=True, run_info=RUN_INFO):
            raise KeyboardInterrupt
    assert path.read_bytes() == b"an earlier production" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("name", FORMATS)
def test_interrupt_keeps_whole_events_and_errors_keep_old_file(tmp_path, batch, name):
    path = tmp_path / name
    with pytest.raises(KeyboardInterrupt):
        with open_writer(path, run_info=RUN_INFO) as writer:
            writer.write(batch.slice(0, 10))
            writer.write(batch.slice(10, 16))
            raise KeyboardInterrupt
    back = read_events(path)
    assert len(back) == 16 and np.array_equal(back.offsets, batch.slice(0, 16).offsets)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with open_writer(path, overwrite=True, run_info=RUN_INFO) as writer:
            writer.write(batch.slice(0, 3))
            raise RuntimeError("sampling failed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no partial file left behind


def test_writer_thread_errors_surface(tmp_path, batch):
    writer = open_writer(tmp_path / "e.h5", run_info=RUN_INFO)
    writer.write(batch.slice(0, 5))
    odd = batch.slice(5, 10)
    writer.write(EventBatch({"b": odd.events["b"]}, odd.offsets, odd.particles))  # other event columns
    with pytest.raises(ValueError, match="event columns differ"):
        writer.close()
    assert not (tmp_path / "e.h5").exists()


def test_bad_requests_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown suffix"):
        open_writer(tmp_path / "events.txt")
    with pytest.raises(InputError, match="sqrt_s"):
        open_writer(tmp_path / "events.hepmc", run_info={"model": "x"})


def test_text_formatting_matches_printf():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(size=3000) * 10.0 ** rng.integers(-20, 20, 3000),
                             [0.0, -0.0, 9.9999999996, 1e-120, -5e-5, 1e99]])
    ints = rng.integers(-10**8, 10**9, values.size)
    text, offsets = format_lines([Sci(values, 9), b" ", Int(ints, 10), b"\n"], values.size)
    text = bytes(text)
    rows = text.decode().splitlines()
    assert offsets[-1] == len(text) and text[offsets[2]:offsets[3]].decode() == rows[2] + "\n"
    fields = [row.split(" ") for row in rows]
    assert all(len(f) == 2 for f in fields)
    np.testing.assert_array_equal([int(f[1]) for f in fields], ints)
    printed = np.array([float(f"{v:.8e}") for v in values])
    ours = np.array([float(f[0]) for f in fields])
    assert np.all(np.abs(ours - printed) <= 1e-8 * np.abs(printed) + 1e-99)
    assert [f[0] for f in fields[-6:]] == ["0.00000000e+00", "0.00000000e+00", "1.00000000e+01",
                                           "0.00000000e+00", "-5.00000000e-05", "1.00000000e+99"]
    for small in (np.array([0, -1, 7, -999, 12]), np.array([-5])):  # narrower than the field: PAD and '-' placed
        text, _ = format_lines([Int(small, 10), b"\n"], small.size)
        assert bytes(text).decode().split() == [str(int(x)) for x in small]
    with pytest.raises(ValueError, match="too wide"):
        format_lines([Int(np.array([-10**9]), 10), b"\n"], 1)


@pytest.mark.parametrize("name", ["e.hepmc", "e.hepmc.gz"])
def test_hepmc_formatted_on_threads_is_the_same_text(tmp_path, monkeypatch, name):
    """Chunks formatted on several threads and written in order give the one-thread file's text, over many writes,
    with the events numbered by their event_number column (by their position without one), also where zlib-ng is
    missing (stdlib gzip); an unknown species raised on a formatting thread drops the file."""
    import gzip
    import sys

    from hicgen.io import hepmc

    monkeypatch.setattr(hepmc, "FORMAT_PARTICLES", 40)  # many chunks per write, more than the threads keep ahead
    plain = make_batch(60, 25, seed=5)
    batch = EventBatch({**plain.events, "event_number": np.arange(100, 160)}, plain.offsets, plain.particles)

    def text(path, threads, batch=batch):
        writer = hepmc.HepMCWriter(path, RUN_INFO, threads=threads)
        for start in range(0, len(batch), 13):
            writer.write(batch.slice(start, min(start + 13, len(batch))))
        writer.close()
        return gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()

    one = text(tmp_path / f"one_{name}", 1)
    assert text(tmp_path / f"three_{name}", 3) == one
    assert [int(line.split()[1]) for line in one.splitlines() if line.startswith(b"E ")] == list(range(100, 160))
    by_position = text(tmp_path / f"plain_{name}", 3, plain)
    assert [int(line.split()[1]) for line in by_position.splitlines() if line.startswith(b"E ")] == list(range(60))
    monkeypatch.setitem(sys.modules, "zlib_ng", None)  # import fails: stdlib gzip
    assert text(tmp_path / f"stdlib_{name}", 3) == one
    bad = EventBatch(batch.events, batch.offsets, {**batch.particles, "pid": np.full_like(batch.particles["pid"], 12345)})
    monkeypatch.setattr(hepmc, "compression_threads", lambda: 3)
    writer = open_writer(tmp_path / name, run_info=RUN_INFO)  # in the background, formatting on 3 threads
    with pytest.raises(InputError, match="no mass known for PDG id"):
        writer.write(bad)
        writer.close()
    assert not (tmp_path / name).exists() and not any(p.name.endswith(".part") for p in tmp_path.iterdir())
