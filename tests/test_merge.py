"""`hicgen data merge`: the event files of one production's jobs joined into one, and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hicgen.cli import main
from hicgen.data import merge as merge_module
from hicgen.data.dataset import DatasetReader, DatasetWriter
from hicgen.errors import InputError
from hicgen.io import read_events
from tiny_model import make_tiny_checkpoint, toy_truth

FAST = ["--steps", "2", "--batch-size", "8", "--max-tokens", "512"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A tiny model's shards 0/2 and 1/2 (seed 5), and shard 0/4 of the same seed: the stream of shard 0/2 again."""
    root = tmp_path_factory.mktemp("shards")
    model = make_tiny_checkpoint(root / "oo")
    for name, shard, n in (("s0.h5", "0/2", "12"), ("s1.h5", "1/2", "9"), ("q0.h5", "0/4", "6")):
        assert main(["run", "--system", "OO", "-n", n, "--model", str(model), "--seed", "5", "--shard", shard,
                     "--out", str(root / name), *FAST]) == 0
    assert main(["run", "--system", "OO", "-n", "5", "--model", str(model), "--seed", "6", "--steps", "3",
                 "--batch-size", "8", "--max-tokens", "512", "--out", str(root / "other.h5")]) == 0
    return root


def assert_same_events(batch, parts):
    """`batch` holds the events of `parts`, one after another, column for column."""
    assert np.array_equal(batch.offsets, np.concatenate([[0], np.cumsum(np.concatenate([p.multiplicity for p in parts]))]))
    for name in parts[0].particles:
        assert np.array_equal(batch.particles[name], np.concatenate([p.particles[name] for p in parts])), name
    for name in parts[0].events:
        assert np.array_equal(batch.events[name], np.concatenate([p.events[name] for p in parts])), name


def test_run_shards_join_in_shard_order(shards, tmp_path, capsys, monkeypatch):
    """Named in any order, the shards join as shard 0 then shard 1, whatever the step size of the copy; the
    joined file names its parts and their shards, and keeps the common seed and settings."""
    monkeypatch.setattr(merge_module, "MERGE_PARTICLES", 50)  # several steps per part, and parts cut mid-chunk
    out = tmp_path / "all.h5"
    assert main(["data", "merge", str(shards / "s1.h5"), str(shards / "s0.h5"), "--out", str(out)]) == 0
    assert "merged 2 files" in capsys.readouterr().err
    assert_same_events(read_events(out), [read_events(shards / "s0.h5"), read_events(shards / "s1.h5")])
    with DatasetReader(out) as reader:
        assert reader.attrs["parts"] == "s0.h5,s1.h5" and reader.attrs["n_events"] == 21
        assert json.loads(reader.attrs["part_shard"]) == ["0/2", "1/2"] and reader.attrs["seed"] == 5
        assert "shard" not in reader.attrs and reader.attrs["system"] == "OO"


@pytest.mark.parametrize("names, message", [
    (["s0.h5", "q0.h5"], "hold events of the same random stream (seed 5, shard index 0)"),
    (["s0.h5", "s0.h5"], "hold events of the same random stream"),
    (["s0.h5", "other.h5"], "other settings than"),
])
def test_parts_that_are_not_one_production_are_refused(shards, tmp_path, capsys, names, message):
    out = tmp_path / "m.h5"
    assert main(["data", "merge", *[str(shards / n) for n in names], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_settings_named_when_they_differ(shards):
    with pytest.raises(InputError, match=r"other settings than .* \(steps\)"):
        merge_module.merge_events([shards / "s0.h5", shards / "other.h5"], shards / "never.h5")
    assert not (shards / "never.h5").exists()


def test_other_files_and_existing_output_refused_in_one_line(shards, tmp_path, capsys):
    (tmp_path / "e.hepmc").write_text("HepMC::Version 3\n")
    existing = tmp_path / "kept.h5"
    existing.write_bytes(b"keep me")
    for args, message in (([str(tmp_path / "e.hepmc")], "is not a hicgen event file (.h5)"),
                          ([str(tmp_path / "missing.h5")], "does not exist"),
                          (["--out", str(existing)], "exists")):
        inputs = args if "--out" not in args else []
        out = args[1] if "--out" in args else str(tmp_path / "m.h5")
        assert main(["data", "merge", str(shards / "s0.h5"), *inputs, "--out", out]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "m.h5").exists()


def test_independent_seeds_join_in_seed_order(tmp_path):
    """Angantyr-like files of other seeds (no shard attribute) join by seed; the per-job attributes that differ are
    listed per part; the same seed twice is refused; a part without events joins last, whatever its seed."""
    for seed in (9, 4):
        with DatasetWriter(tmp_path / f"a{seed}.h5", {"generator": "toy", "system": "OO", "seed": seed,
                                                      "seeds": [seed, seed + 100], "workers": 2}) as writer:
            writer.append(toy_truth(7, seed=seed))
    merge_module.merge_events([tmp_path / "a9.h5", tmp_path / "a4.h5"], tmp_path / "m.h5")
    assert_same_events(read_events(tmp_path / "m.h5"), [toy_truth(7, seed=4), toy_truth(7, seed=9)])
    with DatasetReader(tmp_path / "m.h5") as reader:
        assert json.loads(reader.attrs["part_seed"]) == [4, 9] and json.loads(reader.attrs["part_seeds"]) == [[4, 104], [9, 109]]
        assert reader.attrs["workers"] == 2 and reader.attrs["parts"] == "a4.h5,a9.h5"
    with pytest.raises(InputError, match="same random stream"):  # a merged file's jobs count as its parts
        merge_module.merge_events([tmp_path / "a9.h5", tmp_path / "m.h5"], tmp_path / "m2.h5")
    with DatasetWriter(tmp_path / "a2.h5", {"generator": "toy", "system": "OO", "seed": 2, "seeds": [2, 102], "workers": 1}) as writer:
        writer.append(toy_truth(5, seed=2))
    with DatasetWriter(tmp_path / "a0.h5", {"generator": "toy", "system": "OO", "seed": 9, "seeds": [0, 1], "workers": 1}):
        pass  # a job stopped before its first event (seed 9 again: it holds none of seed 9's events)
    merge_module.merge_events([tmp_path / "a0.h5", tmp_path / "m.h5", tmp_path / "a2.h5"], tmp_path / "m3.h5")  # merged files merge again
    assert_same_events(read_events(tmp_path / "m3.h5"), [toy_truth(5, seed=2), toy_truth(7, seed=4), toy_truth(7, seed=9)])
    with DatasetReader(tmp_path / "m3.h5") as reader:
        assert reader.attrs["parts"] == "a2.h5,a4.h5,a9.h5,a0.h5" and json.loads(reader.attrs["part_workers"]) == [1, 2, 2, 1]
        assert json.loads(reader.attrs["part_seed"]) == [2, 4, 9, 9]


def test_each_merge_points_to_the_other(shards, tmp_path, capsys):
    """Event files given to `hicgen truth merge`, or a file that is not HDF5, are refused in one line."""
    (tmp_path / "junk.h5").write_text("not hdf5")
    for args, message in ((["truth", "merge", str(shards / "s0.h5"), str(shards / "s1.h5")], "'hicgen data merge'"),
                          (["truth", "merge", str(tmp_path / "junk.h5")], "is not a readable HDF5 file"),
                          (["data", "merge", str(tmp_path / "junk.h5")], "is not a readable HDF5 file")):
        assert main([*args, "--out", str(tmp_path / "m.h5")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.h5").exists()


def test_info_shortens_long_attributes():
    """`hicgen data info` shows a long attribute (the parts of a merge of many jobs, per-pT shares) by its start and
    length, or its shape, instead of pages of text."""
    from hicgen.cli.data import _brief

    assert _brief([1, 2, 3]) == "[1, 2, 3]" and _brief([[0.5] * 64] * 6) == "(6, 64) array"
    parts = ",".join(f"part{i}.h5" for i in range(1000))
    shown = _brief(parts)
    assert shown.startswith("part0.h5,part1.h5") and shown.endswith(f"({len(parts):,} characters)") and len(shown) < 160
