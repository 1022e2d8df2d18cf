"""`hicgen truth trento` -> `hicgen truth hydro` end to end on tiny grids, the spectra-file contract, errors."""

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # one small hydro event end to end (~20-40 s)

from hicgen.cli import main
from hicgen.truth.hydro.pipeline import expected_counts


HYDRO_IC_READS = []  # paths `hicgen truth hydro` read its initial states from, in the chain fixture


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from hicgen.truth import trento_io

    d = tmp_path_factory.mktemp("chain")
    ic, out = d / "ic.h5", d / "spectra.h5"
    assert main(["truth", "trento", "--events", "1", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "11", "--seed", "4", "--norm", "20"]) == 0
    read = trento_io.TrentoReader.read
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trento_io.TrentoReader, "read", lambda self, *a: HYDRO_IC_READS.append(self.path) or read(self, *a))
        assert main(["truth", "hydro", "--ic", str(ic), "--out", str(out), "--eta-s", "0,0.2",
                     "--hydro-grid-max", "7", "--batch", "2"]) == 0
    return ic, out


def test_hydro_reads_the_initial_states_once(chain):
    assert HYDRO_IC_READS == [chain[0]]


def test_spectra_file_contract(chain):
    ic, out = chain
    with h5py.File(out) as f:
        assert f.attrs["format"] == "hicgen-spectra" and f.attrs["format_version"] == 1
        for key in ("generator", "eos", "tau_fs", "tau0", "e_sw", "grid_step", "grid_max", "hicgen_version",
                    "seed", "source"):
            assert key in f.attrs
        assert f.attrs["source"] == "ic.h5" and f.attrs["e_sw"] == 0.18
        n = 2
        for key in ("ic", "spectrum", "histogram"):
            assert f[key].shape == (n, 64, 64) and f[key].dtype == np.float32
        for key in ("eta_s", "b", "npart", "mult", "e2", "e3", "e4", "e5", "ic_index"):
            assert f[key].shape == (n,)
        assert f["pt_edges"].shape == (65,) and f["phi_edges"][0] == pytest.approx(-np.pi)
        np.testing.assert_allclose(f["eta_s"][()], [0, 0.2])
        np.testing.assert_array_equal(f["ic_index"][()], [0, 0])
        spec, hist = f["spectrum"][()], f["histogram"][()]
        assert np.all(spec >= 0) and spec.sum() > 0
        mean = expected_counts(spec).sum((1, 2))
        assert np.all(np.abs(hist.sum((1, 2)) - mean) < 5 * np.sqrt(mean) + 1)
        assert np.all(np.abs(f["energy_balance"][()]) < 0.02)
        # species shares: pi > K > p, the per-record yields add up to the charged dN/dy
        frac = f.attrs["species_fraction"]
        assert list(f.attrs["species_pid"]) == [211, -211, 321, -321, 2212, -2212]
        assert frac.sum() == pytest.approx(1.0) and frac[0] > frac[2] > frac[4] > 0
        np.testing.assert_allclose(f["species_dndy"][()].sum(1), f["dnch_dy"][()], rtol=1e-9)
        # per pT bin: the species add up to the charged spectrum's counts in that bin; the shares per bin, in the
        # attribute, turn from pions to kaons and protons with pT (radial flow hardens the heavier spectra)
        by_pt = f["species_pt_dndy"][()]
        assert by_pt.shape == (n, 3, 64) and by_pt.dtype == np.float32
        np.testing.assert_allclose(by_pt.sum(1), expected_counts(spec).sum(2), rtol=1e-4)
        assert np.all(by_pt.sum(2) <= f["species_dndy"][()] * (1 + 1e-6))  # the chain's yields run past 2 GeV
        shares = f.attrs["species_pt_fraction"]
        assert shares.shape == (6, 64) and np.allclose(shares.sum(0), 1.0)
        assert shares[4, 56] > 3 * shares[4, 4] and shares[0, 4] > shares[0, 56]
        # each species' flow vectors per pT bin: their yield-weighted sum is the charged spectrum's, whose V2 is
        # not zero (an elliptic IC), and the protons' V2 at low pT lies below the pions' (mass ordering)
        flow = f["species_pt_flow"][()]
        assert flow.shape == (n, 3, 4, 64) and flow.dtype == np.float32
        phi = 0.5 * (f["phi_edges"][1:] + f["phi_edges"][:-1])
        harmonics = np.stack([np.cos(2 * phi), np.sin(2 * phi), np.cos(3 * phi), np.sin(3 * phi)], 1)
        charged = spec @ harmonics / spec.sum(2, keepdims=True)  # (n, 64 pT, 4)
        weighted = (flow * by_pt[:, :, None]).sum(1) / by_pt.sum(1)[:, None]  # (n, 4, 64)
        np.testing.assert_allclose(weighted, charged.transpose(0, 2, 1), atol=2e-5)
        v2 = np.hypot(flow[:, :, 0], flow[:, :, 1])  # (n, 3 species, 64)
        assert np.all(v2[:, 0, 8:16].mean(1) > 0.01) and np.all(v2[:, 2, 8:16] < v2[:, 0, 8:16])
        # viscosity changes the spectrum: the test can tell eta/s = 0 from 0.2
        assert not np.allclose(spec[0], spec[1], rtol=1e-3)
    with h5py.File(ic) as f:
        assert f["event_0"].shape == (20, 20) and f.attrs["grid_step"] == 0.5


def test_data_info_summarises_a_spectra_file(chain, capsys):
    """`hicgen data info` on a spectra file: records, ICs, the records and mean dN_ch/dy at each eta/s, provenance."""
    from hicgen.truth.spectra_data import spectra_info

    _, out = chain
    assert main(["data", "info", str(out)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    with h5py.File(out) as f:
        at_02 = np.isclose(f["eta_s"][()], 0.2)
        mean_02 = f["dnch_dy"][()][at_02].mean()
    for text in ("records │ 2", "initial states │ 1 (ic_index 0..0)", f"eta/s = 0.2 │ 1 records of 1 ICs, mean dN_ch/dy {mean_02:.1f}",
                 "generator │ hicgen truth hydro", "species_pt_fraction │ (6, 64) array"):
        assert text in shown, text
    summary = spectra_info(out)
    assert [row["eta_s"] for row in summary["eta_s"]] == pytest.approx([0, 0.2]) and summary["samples_per_ic"] == 1


def test_no_overwrite_and_bad_input(chain, tmp_path, capsys):
    ic, out = chain
    before = out.read_bytes()
    assert main(["truth", "hydro", "--ic", str(ic), "--out", str(out)]) == 2
    assert out.read_bytes() == before
    assert "--overwrite" in capsys.readouterr().err
    assert main(["truth", "hydro", "--ic", str(ic), "--out", str(tmp_path / "x.h5"), "--eta-s", "abc"]) == 2
    assert "--eta-s" in capsys.readouterr().err
    for option, value, message in (("--first", "-1", "--first must be at least 0 (the input's first initial state is 0), got -1"),
                                   ("--batch", "0", "--batch must be at least 1, got 0"),
                                   ("--e-sw", "nan", "--e-sw must be > 0, got nan")):
        assert main(["truth", "hydro", "--ic", str(ic), "--out", str(tmp_path / "x.h5"), option, value]) == 2
        assert capsys.readouterr().err == f"hicgen: error: {message}\n"
    assert main(["truth", "trento", "--events", "0", "--out", str(tmp_path / "y.h5")]) == 2
    assert main(["truth", "trento", "--events", "2", "--out", str(tmp_path / "y.h5"), "--nucleon-width", "-1"]) == 2
    assert not (tmp_path / "y.h5").exists()


def test_merge_keeps_only_the_chosen_eta_s(chain, tmp_path, capsys):
    """`hicgen truth merge --eta-s` selects records by eta/s; a value no input holds is refused with one line."""
    _, out = chain
    picked = tmp_path / "picked.h5"
    assert main(["truth", "merge", str(out), "--eta-s", "0.2", "--out", str(picked)]) == 0
    with h5py.File(out) as whole, h5py.File(picked) as f:
        assert f["spectrum"].shape == (1, 64, 64) and f.attrs["n_records"] == 1
        np.testing.assert_allclose(f["eta_s"][()], [0.2])
        np.testing.assert_array_equal(f["spectrum"][0], whole["spectrum"][()][np.isclose(whole["eta_s"][()], 0.2)][0])
        np.testing.assert_allclose(f["species_dndy"][0], whole["species_dndy"][()][1])
    capsys.readouterr()
    assert main(["truth", "merge", str(out), "--eta-s", "0,0.05", "--out", str(tmp_path / "none.h5")]) == 2
    err = capsys.readouterr().err
    assert "eta/s 0.05" in err and "0, 0.2" in err and "Traceback" not in err
    assert not (tmp_path / "none.h5").exists()
    model_out = tmp_path / "model.h5"  # a spectra-model file (by its generator) beside a chain file
    model_out.write_bytes(out.read_bytes())
    with h5py.File(model_out, "a") as f:
        f.attrs["generator"] = "hicgen spectra"
    assert main(["truth", "merge", str(out), str(model_out), "--out", str(tmp_path / "none.h5")]) == 2
    assert "spectra model's output" in capsys.readouterr().err and not (tmp_path / "none.h5").exists()


def test_interrupt_keeps_finished_records_in_decreasing_multiplicity(tmp_path):
    from hicgen.truth.hydro.pipeline import ChainConfig, run_file

    ic, out = tmp_path / "ic3.h5", tmp_path / "part.h5"
    assert main(["truth", "trento", "--events", "3", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0
    calls = []

    def stop_after_first_batch(k):
        calls.append(k)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_file(ic, out, [0.1], cfg=ChainConfig(grid_max=6), batch=1, progress=stop_after_first_batch)
    with h5py.File(ic) as f:
        mult = [f[f"event_{i}"].attrs["mult"] for i in range(3)]
    with h5py.File(out) as f:
        assert f.attrs["interrupted"] and f.attrs["n_records"] == 1 and f["spectrum"].shape == (1, 64, 64)
        assert f["ic_index"][0] == int(np.argmax(mult)) and f["spectrum"][0].sum() > 0


def test_sigterm_stops_the_hydro_between_time_steps(tmp_path):
    """Under stop_on_signals (as `hicgen truth hydro` runs), a SIGTERM only asks the run to stop; the hydro of the
    next batch stops at its next time step, and the file keeps the record finished before."""
    import os
    import signal

    from hicgen.engine.stopping import stop_on_signals
    from hicgen.truth.hydro.pipeline import ChainConfig, run_file

    ic, out = tmp_path / "ic3.h5", tmp_path / "part.h5"
    assert main(["truth", "trento", "--events", "3", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0

    def sigterm_after_first_batch(k):
        os.kill(os.getpid(), signal.SIGTERM)

    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        run_file(ic, out, [0.1], cfg=ChainConfig(grid_max=6), batch=1, progress=sigterm_after_first_batch)
    with h5py.File(out) as f:
        assert f.attrs["interrupted"] and f.attrs["n_records"] == 1 and f["spectrum"][0].sum() > 0


def test_split_production_merges_to_the_whole_run(tmp_path, capsys):
    """Jobs over --first/--events ranges, joined by `hicgen truth merge`, give the records of one whole run; a --shard
    part is the same as the range it stands for."""
    ic = tmp_path / "ic.h5"
    assert main(["truth", "trento", "--events", "3", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "8", "--norm", "20"]) == 0
    common = ["--ic", str(ic), "--eta-s", "0.1", "--hydro-grid-max", "6", "--batch", "1"]
    assert main(["truth", "hydro", *common, "--out", str(tmp_path / "all.h5")]) == 0
    assert main(["truth", "hydro", *common, "--events", "1", "--out", str(tmp_path / "a.h5")]) == 0
    assert main(["truth", "hydro", *common, "--first", "1", "--out", str(tmp_path / "b.h5")]) == 0
    parts = [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]
    assert main(["truth", "merge", *parts, "--out", str(tmp_path / "m.h5")]) == 0
    with h5py.File(tmp_path / "all.h5") as whole, h5py.File(tmp_path / "m.h5") as merged:
        order_w, order_m = np.argsort(whole["ic_index"][()]), np.argsort(merged["ic_index"][()])
        np.testing.assert_array_equal(merged["ic_index"][()][order_m], [0, 1, 2])
        np.testing.assert_allclose(merged["spectrum"][()][order_m], whole["spectrum"][()][order_w], rtol=1e-6)
        np.testing.assert_array_equal(merged["histogram"][()][order_m], whole["histogram"][()][order_w])
        np.testing.assert_allclose(merged.attrs["species_fraction"], whole.attrs["species_fraction"], rtol=1e-6)
        np.testing.assert_allclose(merged.attrs["species_pt_fraction"], whole.attrs["species_pt_fraction"], rtol=1e-5)
        np.testing.assert_array_equal(merged["species_pt_flow"][()][order_m], whole["species_pt_flow"][()][order_w])
    with h5py.File(tmp_path / "a.h5", "a") as old:  # a part made before species_pt_flow: merged without it
        del old["species_pt_flow"]
    assert main(["truth", "merge", *parts, "--out", str(tmp_path / "m_old.h5")]) == 0
    with h5py.File(tmp_path / "m_old.h5") as merged:
        assert "species_pt_flow" not in merged and "species_pt_fraction" in merged.attrs
    with h5py.File(tmp_path / "a.h5", "a") as old:  # and before species_pt_dndy
        del old["species_pt_dndy"]
    assert main(["truth", "merge", *parts, "--out", str(tmp_path / "m_old.h5"), "--overwrite"]) == 0
    with h5py.File(tmp_path / "m_old.h5") as merged:
        assert "species_pt_dndy" not in merged and "species_pt_fraction" not in merged.attrs
        assert merged["spectrum"].shape == (3, 64, 64) and "species_fraction" in merged.attrs
    assert main(["truth", "hydro", *common, "--shard", "1/2", "--out", str(tmp_path / "s1.h5")]) == 0  # ICs 1, 2
    with h5py.File(tmp_path / "b.h5") as part, h5py.File(tmp_path / "s1.h5") as shard:
        assert shard["ic_index"][()].tolist() == part["ic_index"][()].tolist() == [1, 2]
        np.testing.assert_array_equal(shard["histogram"][()], part["histogram"][()])
    # overlapping parts, a bad range and more shards than ICs are refused with one line
    capsys.readouterr()
    assert main(["truth", "hydro", *common, "--shard", "0/4", "--out", str(tmp_path / "y.h5")]) == 2
    assert "use at most 3 shards" in capsys.readouterr().err
    assert main(["truth", "merge", parts[0], parts[0], "--out", str(tmp_path / "x.h5")]) == 2
    assert "share records" in capsys.readouterr().err
    assert main(["truth", "hydro", *common, "--first", "5", "--out", str(tmp_path / "y.h5")]) == 2
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_merge_copies_the_whole_chunks_of_parts_that_start_on_one(tmp_path, monkeypatch):
    """A part whose records start on a chunk boundary of the merged file has its whole chunks copied as stored
    (shards of whole 64-IC blocks: every part), the rest inflated and deflated again; either way the merged records
    are the parts' in IC order. --shard splits 1,000 ICs into 64-IC blocks, fewer than 64 per shard evenly."""
    from hicgen.engine.seeding import shard_range
    from hicgen.io.h5columns import RecordColumns
    from hicgen.truth import spectra_data

    rng = np.random.default_rng(11)

    def part(path, first_ic, n_ics):  # records of ICs first_ic.. at eta/s 0 and 0.2, hydro layout (64-record chunks)
        records = {k: rng.random((2 * n_ics,) + shape).astype(dtype) for k, (shape, dtype) in spectra_data.RECORD_FIELDS.items()}
        records["ic_index"] = np.repeat(np.arange(first_ic, first_ic + n_ics), 2)
        records["eta_s"] = np.tile(np.float32([0.0, 0.2]), n_ics)
        writer = spectra_data.SpectraWriter(path, {"generator": "test", "source": "ic.h5"}, np.linspace(0, 2, 65),
                                            np.linspace(-np.pi, np.pi, 65))
        writer.append(records)
        writer.close()
        return records

    copied = []
    append_stored = RecordColumns.append_stored
    monkeypatch.setattr(RecordColumns, "append_stored",
                        lambda self, plain, stored, start, m: copied.append(m) or append_stored(self, plain, stored, start, m))
    for sizes, expected in (((64, 35), [128, 64]), ((35, 64), [64])):  # (ICs of the first, of the second part)
        first = part(tmp_path / "a.h5", 0, sizes[0])
        second = part(tmp_path / "b.h5", sizes[0], sizes[1])
        copied.clear()
        spectra_data.merge_spectra([tmp_path / "b.h5", tmp_path / "a.h5"], tmp_path / "m.h5")
        assert copied == expected  # after a part of 70 records the next starts inside a chunk: deflated again
        with h5py.File(tmp_path / "m.h5") as merged:
            for name in ("histogram", "ic", "ic_index", "species_dndy"):
                assert np.array_equal(merged[name][()], np.concatenate([first[name], second[name]])), name
        (tmp_path / "m.h5").unlink()
    with h5py.File(tmp_path / "a.h5", "r+") as f:  # images stored contiguous (a file rewritten by another HDF5 tool): recompressed
        for name in spectra_data.IMAGE_FIELDS:
            values = f[name][()]
            del f[name]
            f.create_dataset(name, data=values)
    copied.clear()
    spectra_data.merge_spectra([tmp_path / "b.h5", tmp_path / "a.h5"], tmp_path / "m.h5")
    assert copied == []
    with h5py.File(tmp_path / "m.h5") as merged:
        assert merged["histogram"].chunks is not None
        for name in ("histogram", "spectrum", "ic", "ic_index"):
            assert np.array_equal(merged[name][()], np.concatenate([first[name], second[name]])), name
    assert [shard_range(1000, (i, 3)) for i in range(3)] == [(0, 320), (320, 640), (640, 1000)]
    assert [shard_range(100, (i, 3)) for i in range(3)] == [(0, 33), (33, 66), (66, 100)]


def test_merge_of_different_ic_files_needs_renumbering_and_keeps_ics_apart(tmp_path, capsys):
    """Productions of two IC files join only with --renumber-ics; the second file's ICs are offset past the first's.
    A merged file joined again with another part of one of its IC files keeps one offset per IC file, and joined
    with a part it already holds is refused."""
    ics, files = {}, []
    for seed, events in ((8, "3"), (9, "1")):
        ics[seed], out = tmp_path / f"ic{seed}.h5", tmp_path / f"s{seed}.h5"
        assert main(["truth", "trento", "--events", events, "--out", str(ics[seed]), "--grid-max", "5", "--grid-step",
                     "0.5", "--b-min", "9", "--b-max", "12", "--seed", str(seed), "--norm", "20"]) == 0
        assert main(["truth", "hydro", "--ic", str(ics[seed]), "--eta-s", "0.1", "--hydro-grid-max", "6", "--batch", "1",
                     "--events", "2" if seed == 8 else "1", "--seed", str(seed), "--out", str(out)]) == 0
        files.append(str(out))
    assert main(["truth", "merge", *files, "--out", str(tmp_path / "m.h5")]) == 2
    assert "--renumber-ics" in capsys.readouterr().err and not (tmp_path / "m.h5").exists()
    assert main(["truth", "merge", *files, "--renumber-ics", "--out", str(tmp_path / "m.h5")]) == 0
    with h5py.File(files[1]) as second, h5py.File(tmp_path / "m.h5") as merged:
        assert sorted(merged["ic_index"][()]) == [0, 1, 2]
        assert merged.attrs["source"] == "ic8.h5,ic9.h5" and list(merged.attrs["ic_index_offset"]) == [0, 2]
        assert merged.attrs["part_seeds"] == "s8.h5:8,s9.h5:9" and "seed" not in merged.attrs  # their histogram seeds
        np.testing.assert_array_equal(merged["spectrum"][()][merged["ic_index"][()] == 2], second["spectrum"][()])
    third = tmp_path / "s8_rest.h5"
    assert main(["truth", "hydro", "--ic", str(ics[8]), "--eta-s", "0.1", "--hydro-grid-max", "6", "--batch", "1",
                 "--first", "2", "--out", str(third)]) == 0
    # parts of one IC file whose jobs drew their histograms with other seeds join as they are
    assert main(["truth", "merge", str(third), files[0], "--out", str(tmp_path / "one_ic_file.h5")]) == 0
    with h5py.File(files[0]) as first, h5py.File(third) as rest, h5py.File(tmp_path / "one_ic_file.h5") as merged:
        assert merged.attrs["part_seeds"] == "s8.h5:8,s8_rest.h5:1" and "seed" not in merged.attrs  # in the joined order
        assert merged.attrs["parts"] == "s8.h5,s8_rest.h5"
        assert sorted(merged["ic_index"][()]) == [0, 1, 2] and "ic_index_offset" not in merged.attrs
        np.testing.assert_array_equal(merged["histogram"][()][merged["ic_index"][()] == 2], rest["histogram"][()])
        np.testing.assert_array_equal(merged["histogram"][()][merged["ic_index"][()] < 2], first["histogram"][()])
    assert main(["truth", "merge", str(tmp_path / "m.h5"), str(third), "--renumber-ics", "--out", str(tmp_path / "m2.h5")]) == 0
    with h5py.File(files[1]) as second, h5py.File(third) as rest, h5py.File(tmp_path / "m2.h5") as merged:
        assert merged.attrs["source"] == "ic8.h5,ic9.h5" and list(merged.attrs["ic_index_offset"]) == [0, 3]
        assert merged.attrs["part_seeds"] == "s8.h5:8,s9.h5:9,s8_rest.h5:1"
        assert sorted(merged["ic_index"][()]) == [0, 1, 2, 3]
        np.testing.assert_array_equal(merged["spectrum"][()][merged["ic_index"][()] == 2], rest["spectrum"][()])
        np.testing.assert_array_equal(merged["spectrum"][()][merged["ic_index"][()] == 3], second["spectrum"][()])
    capsys.readouterr()
    assert main(["truth", "merge", str(tmp_path / "m.h5"), files[0], "--renumber-ics", "--out", str(tmp_path / "m3.h5")]) == 2
    assert "share records" in capsys.readouterr().err and not (tmp_path / "m3.h5").exists()


def test_unstable_records_are_left_out_and_listed(tmp_path, monkeypatch, capsys):
    """A record whose hydro goes unstable does not stop the production: it is dropped and its IC listed. With
    --compile the records rerun alone are padded to the batch size too, so the compiled step keeps its one shape
    (the compilation itself is left out here: the batches run eagerly). The command's last line counts them."""
    from hicgen.truth.hydro import pipeline

    ic = tmp_path / "ic.h5"
    assert main(["truth", "trento", "--events", "2", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0
    real, padded_to = pipeline.run_batch, []

    def unstable_at_02(profiles, grid_step, eta_s, *args, **kw):
        padded_to.append(kw["pad_to"])
        if np.any(np.isclose(eta_s, 0.2)):
            raise FloatingPointError("hydro became unstable")
        return real(profiles, grid_step, eta_s, *args, **{**kw, "compile": False})

    monkeypatch.setattr(pipeline, "run_batch", unstable_at_02)
    out = pipeline.run_file(ic, tmp_path / "s.h5", [0.1, 0.2], cfg=pipeline.ChainConfig(grid_max=6), batch=4,
                            compile=True)
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["eta_s"][()], [0.1, 0.1])
        assert sorted(f["ic_index"][()]) == [0, 1] and sorted(f.attrs["failed_ic_index"]) == [0, 1]
    assert padded_to == [4] * 5  # the batch of 4, then each of its records alone
    assert main(["truth", "hydro", "--ic", str(ic), "--eta-s", "0.1,0.2", "--hydro-grid-max", "6", "--batch", "4",
                 "--out", str(tmp_path / "cli.h5")]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "wrote 2 spectra records" in said and "2 of the 4 left out: the hydro went unstable for ICs 0, 1" in said
    assert main(["truth", "hydro", "--ic", str(ic), "--eta-s", "0.2", "--hydro-grid-max", "6", "--batch", "4",
                 "--out", str(tmp_path / "none.h5")]) == 0  # every record unstable: still listed
    assert "wrote 0 spectra records" in capsys.readouterr().err
    with h5py.File(tmp_path / "none.h5") as f:
        assert len(f["ic_index"]) == 0 and sorted(f.attrs["failed_ic_index"]) == [0, 1]


def test_interrupt_before_any_record_leaves_no_file(tmp_path, monkeypatch):
    from hicgen.truth.hydro import pipeline

    ic = tmp_path / "ic.h5"
    assert main(["truth", "trento", "--events", "1", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_file(ic, tmp_path / "s.h5", [0.1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ic.h5"]


def test_error_after_some_batches_keeps_the_finished_records(tmp_path, monkeypatch, capsys):
    """An error in a later batch (here the InputError of a failed C++ build of the compiled step) keeps the
    records already finished, says so in one line, exit 2; before, the partial file was deleted with them."""
    from hicgen.errors import InputError
    from hicgen.truth.hydro import pipeline

    ic, out = tmp_path / "ic2.h5", tmp_path / "s.h5"
    assert main(["truth", "trento", "--events", "2", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0
    real_run_batch, calls = pipeline.run_batch, []

    def fails_on_second_batch(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise InputError("--compile: torch.compile could not build the hydro time step (g++ failed); run without --compile")
        return real_run_batch(*args, **kw)

    monkeypatch.setattr(pipeline, "run_batch", fails_on_second_batch)
    assert main(["truth", "hydro", "--ic", str(ic), "--eta-s", "0.1", "--batch", "1", "--hydro-grid-max", "6",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hicgen: error:") and "holds the 1 records finished" in last and "Traceback" not in err
    with h5py.File(out) as f:
        assert f.attrs["interrupted"] and f.attrs["n_records"] == 1 and f["spectrum"][0].sum() > 0


def test_compiled_time_step_writes_the_eager_records(chain, tmp_path, monkeypatch, capsys):
    """--compile runs the hydro step through torch.compile (traced with aot_eager here, which generates no code, so
    the arithmetic is the eager one): the records must be the eager run's, bit for bit, and the step must really
    have gone through the compiled function. A batch smaller than --batch (here the 2 records with --batch 3) is
    padded with a copy so that the compiled step keeps one shape, and the copy changes nothing. A broken compiler
    is one line, exit 2, no file."""
    import torch
    from torch._dynamo.utils import counters

    from hicgen.engine import runtime
    from hicgen.truth.hydro import pipeline

    ic, eager = chain
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    counters.clear()
    batch_sizes, fluid_state = [], pipeline.FluidState
    monkeypatch.setattr(pipeline, "FluidState", lambda tau, e, *rest: batch_sizes.append(len(e)) or
                        fluid_state(tau, e, *rest))
    out = tmp_path / "compiled.h5"
    assert main(["truth", "hydro", "--ic", str(ic), "--out", str(out), "--eta-s", "0,0.2", "--hydro-grid-max", "7",
                 "--batch", "3", "--compile"]) == 0
    assert counters["stats"]["unique_graphs"] >= 1 and batch_sizes == [3]
    with h5py.File(eager) as a, h5py.File(out) as b:
        for key in ("spectrum", "histogram", "tau_end", "energy_balance", "dnch_deta"):
            np.testing.assert_array_equal(b[key][()], a[key][()], err_msg=key)

    def broken_backend(graph, inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(runtime, "COMPILE_BACKEND", broken_backend)
    torch._dynamo.reset()
    capsys.readouterr()
    bad = tmp_path / "bad.h5"
    assert main(["truth", "hydro", "--ic", str(ic), "--out", str(bad), "--eta-s", "0.1", "--hydro-grid-max", "7",
                 "--compile"]) == 2
    err = capsys.readouterr().err  # the progress bar's line, then the error in one line
    assert "Traceback" not in err and [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert "hydro time step" in err and "no C++ compiler found" in err and "without --compile" in err
    assert not bad.exists() and not list(tmp_path.glob(".bad.h5*"))
    torch._dynamo.reset()


def test_hydro_reads_trento_text_output(chain, tmp_path):
    """--ic a folder of trento text files (the real program's `--output DIR`) with --grid-step: the records of the
    same profiles in HDF5."""
    from trento_text import write_trento_text

    from hicgen.truth.trento_io import EVENT_ATTRS, read_trento

    ic, reference = chain
    events = read_trento(ic)
    write_trento_text(tmp_path / "events", events.profiles, [{k: v[i] for k, v in events.attrs.items() if k in EVENT_ATTRS}
                                                            for i in range(len(events.profiles))])
    out = tmp_path / "text.h5"
    assert main(["truth", "hydro", "--ic", str(tmp_path / "events"), "--grid-step", "0.5", "--out", str(out),
                 "--eta-s", "0,0.2", "--hydro-grid-max", "7", "--batch", "2"]) == 0
    with h5py.File(reference) as a, h5py.File(out) as b:
        for key in ("ic", "spectrum", "histogram", "npart"):
            np.testing.assert_array_equal(b[key][()], a[key][()], err_msg=key)
        np.testing.assert_allclose(b["e2"][()], a["e2"][()], rtol=1e-9)  # the header holds 10 digits


def test_records_benchmark_measures_how_two_runs_differ(chain, tmp_path, monkeypatch, capsys):
    """benchmarks/hydro.py records: per eta/s, the relative dN/dy difference and the flow-vector difference of two
    runs of the same ICs (here one record's dN/dy raised by 0.2 % and its spectrum turned by one phi bin, which turns
    V_n by n dphi, and the records stored in the other order), split by the switching surface's reaching the grid
    edge where the first file records it; runs of other records are refused in one line, exit code 2."""
    import shutil

    from test_spectra import _benchmark_module

    bench = _benchmark_module("hydro")
    _, spectra = chain
    other = tmp_path / "other.h5"
    shutil.copy(spectra, other)
    with h5py.File(other, "a") as f:
        f["dnch_dy"][0] = f["dnch_dy"][0] * 1.002
        f["spectrum"][0] = np.roll(f["spectrum"][0], 1, axis=1)
        changed, pt_edges, phi_edges = f"{f['eta_s'][0]:g}", f["pt_edges"][()], f["phi_edges"][()]
        counts = f["spectrum"][0] * np.outer(np.diff(pt_edges**2) / 2, np.diff(phi_edges))
        n = len(f["eta_s"])
        for name in [k for k in f if f[k].shape[:1] == (n,)]:  # the records in the other order: matched by key
            f[name][...] = f[name][()][::-1]
    result = bench.record_differences(str(spectra), str(other))
    assert set(result) == {"0", "0.2"}
    dphi = phi_edges[1] - phi_edges[0]
    phi = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    for name, res in result.items():
        moved = name == changed
        assert res["dnch_dy"]["max_abs_rel"] == pytest.approx(0.002 if moved else 0.0, rel=1e-6, abs=1e-12)
        for n in (2, 3):
            v = abs((counts.sum(0) * np.exp(1j * n * phi)).sum() / counts.sum())
            expected = v * abs(np.exp(1j * n * dphi) - 1) if moved else 0.0
            assert res[f"V{n}"]["max_abs_diff"] == pytest.approx(expected, rel=1e-4, abs=1e-12)
    assert result[changed]["surface_inside"]["dnch_dy"] == result[changed]["dnch_dy"]  # no record at the edge
    assert "surface_at_grid_edge" not in result[changed]
    flagged = tmp_path / "flagged.h5"
    shutil.copy(spectra, flagged)
    with h5py.File(flagged, "a") as f:  # its record at the changed eta/s as if its surface had run into the edge
        f["surface_at_grid_edge"][...] = np.isclose(f["eta_s"][()], float(changed))
    split = bench.record_differences(str(flagged), str(other))[changed]
    assert "surface_inside" not in split and split["surface_at_grid_edge"]["dnch_dy"] == result[changed]["dnch_dy"]
    with h5py.File(other, "a") as f:
        f["ic_index"][0] = 7
    monkeypatch.setattr("sys.argv", ["hydro.py", "records", str(spectra), str(other)])
    with pytest.raises(SystemExit) as stop:
        bench.main()
    assert stop.value.code == 2 and "hold different records" in capsys.readouterr().err


def test_switching_surface_at_the_grid_edge_is_flagged_and_named(tmp_path, capsys):
    """A hydro grid no wider than the ICs' (5 fm) lets the switching surface run into its edge: those records are
    flagged (surface_at_grid_edge), miss particles, and the command's last line names their ICs; on a grid 2 fm
    wider the surface stays inside, nothing is flagged, and the records agree with a still wider grid's."""
    ic = tmp_path / "ic.h5"
    assert main(["truth", "trento", "--events", "2", "--out", str(ic), "--grid-max", "5", "--grid-step", "0.5",
                 "--b-min", "9", "--b-max", "12", "--seed", "6", "--norm", "20"]) == 0
    dndy = {}
    for grid_max in (5, 7, 9):
        capsys.readouterr()
        out = tmp_path / f"s{grid_max}.h5"
        assert main(["truth", "hydro", "--ic", str(ic), "--eta-s", "0.1", "--hydro-grid-max", str(grid_max),
                     "--batch", "2", "--out", str(out)]) == 0
        said = " ".join(capsys.readouterr().err.split())
        with h5py.File(out) as f:
            order = np.argsort(f["ic_index"][()])
            flagged, dndy[grid_max] = f["surface_at_grid_edge"][()][order], f["dnch_dy"][()][order]
        assert list(flagged) == [grid_max == 5] * 2
        edge_line = "in 2 of them the switching surface ran into the hydro grid's edge at 5 fm"
        assert (edge_line in said and "(ICs 0, 1; field surface_at_grid_edge)" in said) == (grid_max == 5), said
    np.testing.assert_allclose(dndy[7], dndy[9], rtol=1e-3)
    assert np.all(dndy[5] < 0.995 * dndy[9])
