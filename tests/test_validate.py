"""`validate` and `hicgen validate`: same-generator closure, distortions flagged, gate exit codes, bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hicgen.analysis.classifier import ClassifierConfig
from hicgen.analysis.jets import JetConfig
from hicgen.analysis.report import METRIC_NAMES, ValidateOptions, check_gate, validate
from hicgen.cli import main
from hicgen.data.dataset import DatasetWriter
from hicgen.data.features import wrap_phi
from toy_events import toy_batch, with_particles

QUICK = dict(progress=False, plots=False, jets=False, classifier=False)


@pytest.fixture(scope="module")
def samples():
    return toy_batch(600, seed=1, v2=0.08), toy_batch(600, seed=2, v2=0.08)


@pytest.fixture(scope="module")
def files(tmp_path_factory, samples):
    folder = tmp_path_factory.mktemp("samples")
    paths = []
    for name, batch in zip(("ref.h5", "cand.h5"), samples):
        with DatasetWriter(folder / name, {"generator": "toy"}) as writer:
            writer.append(batch.slice(0, 150))
        paths.append(str(folder / name))
    return paths


def test_same_generator_metrics_show_closure(tmp_path, samples):
    options = ValidateOptions(**dict(QUICK, classifier=True), classifier_config=ClassifierConfig(hidden=32, epochs=8, patience=3))
    result = validate(*samples, tmp_path / "report", options)
    assert abs(result["auc_event"] - 0.5) < 4 * result["auc_event_err"]
    assert abs(result["auc_particle"] - 0.5) < 4 * result["auc_particle_err"]
    for key in ("q_closure_rho_x", "q_closure_rho_y", "cos2dpsi"):
        assert result[key] == pytest.approx(1.0, abs=1e-6)
    assert result["w1_event_mean"] < 0.12 and result["w1_particle_mean"] < 0.02
    assert result["v2_2_ratio"] == pytest.approx(1.0, abs=0.15) and result["v2_sp_ratio"] == pytest.approx(1.0, abs=0.15)
    assert 0.8 < result["ratio_n_sumpt_median"] < 1.2
    written = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(METRIC_NAMES) - set(written) == {"jet_rate_ratio", "jet_pt_chi2_ndf", "rho_a_chi2_ndf"}


@pytest.mark.slow
def test_full_report_shows_every_figure(tmp_path, samples):
    ref, cand = (s.slice(0, 300) for s in samples)
    options = ValidateOptions(progress=False, jet=JetConfig(ghost_area=0.05), classifier_config=ClassifierConfig(hidden=16, epochs=3))
    result = validate(ref, cand, tmp_path / "report", options)
    assert set(METRIC_NAMES) <= set(result)
    page = (tmp_path / "report" / "index.html").read_text()
    images = re.findall(r'src="([^"]+\.png)"', page)
    assert {"event_distributions.png", "particle_distributions.png", "species.png", "q_closure.png", "ratio_maps_event.png",
            "dphi.png", "v2_sp_pt.png", "v2_centrality.png", "vn_pt.png", "jets.png", "jet_substructure.png", "roc.png"} <= set(images)
    assert all((tmp_path / "report" / name).stat().st_size > 10_000 for name in images)
    assert "w1_event_mean" in page and "auc_particle" in page


def test_phi_rotation_breaks_q_closure_only(tmp_path, samples):
    ref, cand = samples
    rng = np.random.default_rng(7)
    turn = np.repeat(rng.uniform(-np.pi, np.pi, len(cand)), cand.multiplicity)
    rotated = with_particles(cand, False, phi=wrap_phi(cand.particles["phi"] + turn).astype(np.float32))
    same = validate(ref, cand, tmp_path / "same", ValidateOptions(**QUICK))
    bad = validate(ref, rotated, tmp_path / "bad", ValidateOptions(**QUICK))
    assert same["q_closure_rho_x"] > 0.999 and bad["q_closure_rho_x"] < 0.5 and bad["q_closure_rho_y"] < 0.5
    assert bad["cos2dpsi"] < 0.3 and bad["q_closure_rms_x"] > 5 * same["q_closure_rms_x"] + 1
    # single-particle distributions and flow magnitudes do not see a per-event rotation
    assert bad["w1_particle_mean"] < 0.02 and bad["v2_2_ratio"] == pytest.approx(same["v2_2_ratio"], rel=1e-6)


def test_pt_scale_is_flagged_by_w1_metrics(tmp_path, samples):
    ref, cand = samples
    scaled = with_particles(cand, True, pt=cand.particles["pt"] * 1.05)
    same = validate(ref, cand, tmp_path / "same", ValidateOptions(**QUICK))
    bad = validate(ref, scaled, tmp_path / "bad", ValidateOptions(**QUICK))
    assert bad["w1_particle_mean"] > 1.5 * same["w1_particle_mean"]
    assert bad["details"]["w1_particle"]["pt"] > 3 * same["details"]["w1_particle"]["pt"]
    assert bad["details"]["w1_event"]["mean_pt"] > 3 * same["details"]["w1_event"]["mean_pt"]
    assert bad["q_closure_rho_x"] > 0.999  # events were recomputed: still coherent
    assert bad["mean_pt_ratio"] == pytest.approx(1.05 * same["mean_pt_ratio"], rel=1e-6)
    assert bad["mult_ratio"] == same["mult_ratio"]


def test_mean_multiplicity_and_pt_ratios_carry_their_errors(tmp_path, samples):
    """Same generator: the ratios are 1 within their errors; 50 % more particles per event: 1.5 within them, and
    the errors are those of the event-to-event spread (std / sqrt(n - 1) per sample)."""
    ref, cand = samples
    same = validate(ref, cand, tmp_path / "same", ValidateOptions(**QUICK))
    assert abs(same["mult_ratio"] - 1) < 3 * same["mult_ratio_err"] and abs(same["mean_pt_ratio"] - 1) < 3 * same["mean_pt_ratio_err"]
    n_ref, n_cand = ref.multiplicity, cand.multiplicity
    expected = same["mult_ratio"] * np.hypot(n_ref.std() / np.sqrt(len(ref) - 1) / n_ref.mean(), n_cand.std() / np.sqrt(len(cand) - 1) / n_cand.mean())
    assert same["mult_ratio_err"] == pytest.approx(expected, rel=1e-6)
    means = same["details"]["means"]
    assert means["reference"]["mult"] == pytest.approx(n_ref.mean()) and means["candidate"]["mean_pt"] == pytest.approx(cand.particles["pt"].mean(), rel=1e-6)
    more = validate(ref, toy_batch(600, seed=3, v2=0.08, mean_mult=225.0), tmp_path / "more", ValidateOptions(**QUICK))
    assert abs(more["mult_ratio"] - 1.5) < 3 * more["mult_ratio_err"] and more["mult_ratio"] - 1 > 5 * more["mult_ratio_err"]


def test_card_table_shows_each_reports_metrics_with_their_errors():
    """benchmarks/validate_table.py: a column per report; errors at two digits with the value to the same place,
    the flow ratios' errors from details, 'n/a' for a missing or undefined metric."""
    from test_spectra import _benchmark_module

    table = _benchmark_module("validate_table").card_table({
        "new": {"mult_ratio": 1.01234, "mult_ratio_err": 0.00451, "v2_2_ratio": 1.5, "auc_event": float("nan"),
                "q_closure_rho_x": 0.5, "q_closure_rho_y": 0.25,
                "details": {"flow_ratio_errors": {"v2_2_ratio": 0.123}, "means": {"candidate": {"mult": 170.26, "mult_err": 1.31}}}},
        "old": {"mult_ratio": 1.1, "w1_particle_mean": 0.000123},
    })
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table[2:]}
    assert table[0] == "| metric | new | old |"
    assert rows["mean multiplicity of the candidate"] == ["170.3 +- 1.3", "n/a |"]
    assert rows["mult ratio (candidate / reference)"] == ["1.0123 +- 0.0045", "1.1 |"]
    assert rows["v2{2} ratio"] == ["1.50 +- 0.12", "n/a |"]
    assert rows["`q_closure_rho_x` / `_y`"] == ["0.5 / 0.25", "n/a / n/a |"]
    assert rows["`auc_event`"] == ["n/a", "n/a |"] and rows["`w1_particle_mean`"] == ["n/a", "1.23e-04 |"]
    flow = {side: {"cumulants": {"0-100%": {"n=2": {"c{2}": c2, "c{2}_err": err}}}}
            for side, c2, err in (("reference", 1e-3, 3e-4), ("candidate", -2e-4, 1e-4))}
    c2_row = _benchmark_module("validate_table").card_table({"a": {"details": {"flow": flow}}, "b": {}})[-1]
    assert c2_row == "| c2{2} ratio (all events) | -0.20 +- 0.12 | n/a |"  # defined where v2{2} is not


def test_check_gate_lines():
    gate = {"auc_event": {"max": 0.6}, "q_closure_rho_x": {"min": 0.9}, "w1_event_mean": {"min": 0.0, "max": 0.05}}
    assert check_gate({"auc_event": 0.55, "q_closure_rho_x": 0.95, "w1_event_mean": 0.01}, gate) == []
    failures = check_gate({"auc_event": 0.7, "q_closure_rho_x": float("nan"), "w1_event_mean": 0.01}, gate)
    assert failures == ["auc_event = 0.7 fails max 0.6", "q_closure_rho_x = nan fails min 0.9"]


def _cli(args):
    return main(["validate", *args, "--no-jets", "--no-classifier", "--no-plots"])


def test_cli_gate_pass_and_fail(tmp_path, files, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"q_closure_rho_x": {"min": 0.9}, "w1_event_mean": {"max": 1.0}}))
    assert _cli([*files, "--out", str(tmp_path / "r1"), "--gate", str(good)]) == 0
    assert "gate passed" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[w1_event_mean]\nmax = 0.0\n[cos2dpsi]\nmin = 0.5\n')
    assert _cli([*files, "--out", str(tmp_path / "r2"), "--gate", str(bad)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hicgen:")]  # not the progress bar
    assert len(err) == 1 and err[0].startswith("hicgen: gate failed: w1_event_mean =")
    assert (tmp_path / "r2" / "metrics.json").is_file()


@pytest.mark.parametrize("text, suffix, message", [
    ("{not json", ".json", "not valid JSON"),
    ("a = [", ".toml", "not valid TOML"),
    ('{"w1_nonsense": {"max": 1}}', ".json", "unknown metric 'w1_nonsense'"),
    ('{"auc_event": {"max": 0.6}}', ".json", "not computed"),
    ('{"w1_event_mean": {"below": 1}}', ".json", "'min' and/or 'max'"),
    ('{"w1_event_mean": {"max": "x"}}', ".json", "finite number"),
    ("[1, 2]", ".json", "must map metric names"),
])
def test_malformed_gate_exits_2_before_any_work(tmp_path, files, capsys, text, suffix, message):
    gate = tmp_path / f"gate{suffix}"
    gate.write_text(text)
    assert _cli([*files, "--out", str(tmp_path / "r"), "--gate", str(gate)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_inputs_exit_2(tmp_path, files, capsys):
    out = str(tmp_path / "r")
    assert _cli([files[0], str(tmp_path / "missing.h5"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "events.txt").write_text("x")
    assert _cli([files[0], str(tmp_path / "events.txt"), "--out", out]) == 2
    assert "unknown suffix" in capsys.readouterr().err
    (tmp_path / "junk.h5").write_text("not hdf5")
    assert _cli([files[0], str(tmp_path / "junk.h5"), "--out", out]) == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err
    with h5py.File(tmp_path / "spectra.h5", "w") as f:  # what hicgen spectra and truth hydro write
        f.attrs["format"] = "hicgen-spectra"
    assert _cli([files[0], str(tmp_path / "spectra.h5"), "--out", out]) == 2
    assert "holds binned spectra but" in capsys.readouterr().err
    assert _cli([*files, "--out", out, "--eta-gap", "-1"]) == 2
    assert "--eta-gap" in capsys.readouterr().err
    assert _cli([*files, "--out", out, "--max-events", "lots"]) == 2
    with DatasetWriter(tmp_path / "few.h5", {"generator": "toy"}) as writer:
        writer.append(toy_batch(5, seed=3))
    assert _cli([files[0], str(tmp_path / "few.h5"), "--out", str(tmp_path / "new" / "report")]) == 2
    assert "at least 10" in capsys.readouterr().err
    assert not (tmp_path / "new" / "report").exists()  # a refused input leaves no empty report directory


def test_refuses_non_empty_report_dir_without_overwrite(tmp_path, files, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _cli([*files, "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _cli([*files, "--out", str(out), "--overwrite", "--max-events", "100"]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_events_reference"] == 100
    assert (out / "notes.txt").read_text() == "keep me"


def test_interrupted_report_leaves_the_existing_one_as_it_was(tmp_path, files, monkeypatch):
    """An --overwrite run stopped while it writes (here: in its last step, with metrics.json already written)
    leaves the earlier report's files unchanged and no staging directory; a finished run then replaces them."""
    from hicgen.analysis import report

    out = tmp_path / "r"
    assert _cli([*files, "--out", str(out), "--max-events", "100"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def stop(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(report, "write_index", stop)
        with pytest.raises(KeyboardInterrupt):
            validate(*files, out, ValidateOptions(**QUICK), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no .r.part-* left
    validate(*files, out, ValidateOptions(**QUICK), overwrite=True)
    assert json.loads((out / "metrics.json").read_text())["n_events_reference"] == 150


def test_no_room_for_the_staging_directory_is_one_line_and_leaves_nothing(tmp_path, files, capsys, monkeypatch):
    """When the staging directory cannot be made beside the report directory: one line, exit 2, and the report
    directory the run would have made is not left behind empty."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    assert _cli([*files, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "cannot write next to the report directory" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_overwrite_removes_the_earlier_reports_own_files_only(tmp_path, files):
    """--overwrite removes what the earlier index.html showed and the new report does not write (a figure of a
    section now switched off), and keeps the user's files and what the new report rewrote."""
    out = tmp_path / "r"
    assert _cli([*files, "--out", str(out), "--max-events", "100"]) == 0
    index = (out / "index.html").read_text()
    (out / "index.html").write_text(index.replace("</body>", '<figure><img src="jets.png" alt="jets"></figure>'
                                                              '<a href="https://example.org/x.png">x</a></body>'))
    (out / "jets.png").write_bytes(b"\x89PNG earlier figure")
    (out / "notes.txt").write_text("keep me")
    assert _cli([*files, "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "metrics.json", "notes.txt"]
    assert json.loads((out / "metrics.json").read_text())["n_events_reference"] == 150


@pytest.mark.slow
def test_angantyr_oo_truth_vs_truth(tmp_path):
    """~200 real O-O Angantyr events per seed: AUCs compatible with 0.5, perfect Q closure."""
    pytest.importorskip("pythia8mc")
    if shutil.which("hicgen") is None:
        pytest.skip("the hicgen command is not installed")
    samples = []
    for seed in (1, 2):
        path = tmp_path / f"oo_{seed}.h5"
        subprocess.run([sys.executable, "-m", "hicgen", "truth", "angantyr", "--system", "OO", "--events", "200",
                        "--seed", str(seed), "--out", str(path)], check=True, capture_output=True)
        samples.append(str(path))
    options = ValidateOptions(progress=False, plots=False, jet=JetConfig(ghost_area=0.05), classifier_config=ClassifierConfig(hidden=32, epochs=10, patience=3))
    result = validate(*samples, tmp_path / "report", options)
    assert abs(result["auc_event"] - 0.5) < 4 * result["auc_event_err"]
    assert abs(result["auc_particle"] - 0.5) < 4 * result["auc_particle_err"]
    assert result["q_closure_rho_x"] > 0.999 and result["q_closure_rho_y"] > 0.999 and result["cos2dpsi"] > 0.999
    assert result["w1_particle_mean"] < 0.05


@pytest.mark.parametrize("suffix", [".hepmc", ".root"])
def test_reads_every_hicgen_format(tmp_path, files, samples, suffix):
    from hicgen.io.writers import open_writer

    path = tmp_path / f"cand{suffix}"
    writer = open_writer(path, run_info={"system": "OO", "sqrt_s": 5360.0}, background=False)
    writer.write(samples[0].slice(0, 150))
    writer.close()
    assert _cli([files[0], str(path), "--out", str(tmp_path / "r")]) == 0
    result = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert result["n_events_candidate"] == 150 and result["q_closure_rho_x"] > 0.999
    assert result["w1_event_mean"] < 1e-3 and result["w1_particle_mean"] < 1e-4  # the same events as ref.h5


def _spectra_file(path, v2_scale: float = 1.0, copies: int = 1, source: str = "ic.h5", n_ic: int = 120, seed: int = 0):
    """A hicgen-spectra file of n_ic ICs x eta/s 0, 0.1 (x `copies` samples): smooth spectra 1 + 2 v2 cos 2(phi -
    psi) times an IC's yield (its TRENTo 'mult'), v2 scaled by `v2_scale`, and Poisson histograms of them."""
    from hicgen.truth.spectra_data import bin_measure

    rng = np.random.default_rng(seed)
    pt_edges, phi_edges = np.linspace(0, 2, 9), np.linspace(-np.pi, np.pi, 33)
    phi = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    base = np.random.default_rng(99)  # the ICs: the same in every file
    mult, v2, psi = base.uniform(200, 2000, n_ic), base.uniform(0.02, 0.12, n_ic), base.uniform(-np.pi, np.pi, n_ic)
    ic_index = np.repeat(np.arange(n_ic), 2 * copies)
    eta_s = np.tile(np.repeat([0.0, 0.1], copies), n_ic)
    shape = 1 + 2 * (v2_scale * v2[ic_index])[:, None] * np.cos(2 * (phi[None] - psi[ic_index][:, None]))
    counts = (mult[ic_index] / (8 * 32))[:, None, None] * np.repeat(shape[:, None, :], 8, axis=1) * (1 - 0.2 * eta_s)[:, None, None]
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "hicgen-spectra", "source": source})
        f["pt_edges"], f["phi_edges"] = pt_edges, phi_edges
        f["spectrum"] = (counts / bin_measure(pt_edges, phi_edges)).astype(np.float32)
        f["histogram"] = rng.poisson(counts).astype(np.float32)
        f["ic_index"], f["eta_s"], f["mult"] = ic_index, eta_s.astype(np.float32), mult[ic_index]
    return path


def test_validate_spectra_centrality_from_a_calibration_or_the_candidate_column(tmp_path, capsys, files):
    """Spectra files: classes from --centrality-ic (min-bias TRENTo multiplicities x --coverage), else from the
    candidate's centrality column (hicgen spectra --centrality-ic), else percentiles among the reference's ICs; the
    report says which. The options are refused for particle samples, and --coverage alone."""
    ref = _spectra_file(tmp_path / "ref.h5")
    cand = _spectra_file(tmp_path / "cand.h5", seed=1)
    with h5py.File(ref) as f:
        ic_mult = f["mult"][::2]  # one per IC (two eta/s records each)
    with h5py.File(tmp_path / "mb.h5", "w") as f:  # a min-bias sample: multiplicities 0..3000
        for i, m in enumerate(np.linspace(0.0, 3000.0, 150)):
            f.create_dataset(f"event_{i}", data=np.zeros((4, 4))).attrs["mult"] = m
    assert main(["validate", str(ref), str(cand), "--out", str(tmp_path / "r1"), "--no-plots",
                 "--centrality-ic", str(tmp_path / "mb.h5"), "--coverage", "80"]) == 0
    details = json.loads((tmp_path / "r1" / "metrics.json").read_text())["details"]
    assert "--centrality-ic" in details["meta"]["centrality"] and "80.00 %" in details["meta"]["centrality"]
    percent = 80.0 * (np.linspace(0.0, 3000.0, 150)[None, :] > ic_mult[:, None]).mean(1)
    for label, cls in details["results"]["0"]["classes"].items():
        lo, hi = (float(x) for x in label.rstrip("%").split("-"))
        assert cls["events"] == np.sum((percent >= lo) & (percent < hi)), label
    with h5py.File(cand, "a") as f:  # hicgen spectra --centrality-ic: every IC at 25 %
        f["centrality"] = np.full(len(f["eta_s"]), 25.0)
        f.attrs["centrality_ic"], f.attrs["centrality_coverage"] = "mb.h5", 80.0
    assert main(["validate", str(ref), str(cand), "--out", str(tmp_path / "r2"), "--no-plots"]) == 0
    details = json.loads((tmp_path / "r2" / "metrics.json").read_text())["details"]
    assert "candidate's centrality column" in details["meta"]["centrality"]
    assert set(details["results"]["0"]["classes"]) == {"20-40%"}
    capsys.readouterr()
    for args, message in (([files[0], files[1], "--centrality-ic", tmp_path / "mb.h5"], "--centrality-ic applies to spectra files"),
                          ([ref, cand, "--coverage", "80"], "--coverage needs --centrality-ic")):
        assert main(["validate", *map(str, args), "--out", str(tmp_path / "bad"), "--no-plots"]) == 2, message
        assert message in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_validate_compares_two_spectra_files(tmp_path, capsys):
    """Two hicgen-spectra files: the closure per eta/s and class on the (IC, eta/s) both hold; a candidate whose v2 is
    10 % larger shows it in the smooth v2{2} ratio and nowhere in the multiplicity; mixed or unmatched inputs, other
    bins or IC files, and the particle-only --gate, --max-events and --eta-gap are refused in one line."""
    ref = _spectra_file(tmp_path / "ref.h5")
    cand = _spectra_file(tmp_path / "cand.h5", v2_scale=1.1, copies=2, seed=1)
    assert main(["validate", str(ref), str(cand), "--out", str(tmp_path / "r")]) == 0
    assert "eta/s=0.1 0-10% (N=" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["smooth_v2{2}_ratio_max_deviation"] == pytest.approx(0.1, abs=1e-6)
    assert metrics["mult_ratio_max_deviation"] < 0.02 and metrics["details"]["meta"]["samples_per_ic"] == 2
    results = metrics["details"]["results"]
    assert set(results) == {"0", "0.1"} and set(results["0"]["classes"]) == {"0-10%", "10-20%", "20-40%", "40-60%", "60-100%"}
    assert results["0.1"]["classes"]["20-40%"]["smooth_response"]["V2"]["slope"] == pytest.approx(1.1)
    smooth_v2 = results["0.1"]["classes"]["20-40%"]["smooth"]["v2{2}"]  # the candidate's V2 is 1.1 x the reference's
    assert smooth_v2["model_err"] == pytest.approx(1.1 * smooth_v2["reference_err"], rel=1e-6) and smooth_v2["model_err"] > 0
    v2_pt = results["0.1"]["classes"]["20-40%"]["smooth_differential"]["v2{2}(pT)"]  # flat in pT: each bin 1.1 x
    np.testing.assert_allclose(v2_pt["model_err"], 1.1 * np.array(v2_pt["reference_err"]), rtol=1e-6)
    for figure in ("closure_ratios_0.png", "closure_centrality.png", "closure_pt.png"):
        assert (tmp_path / "r" / figure).exists() and figure in (tmp_path / "r" / "index.html").read_text()

    assert "resonance decays" not in capsys.readouterr().err
    decayed = tmp_path / "decayed.h5"  # hicgen truth hydro --decays, or a model trained on such records
    shutil.copy(cand, decayed)
    with h5py.File(decayed, "a") as f:
        f.attrs["resonance_decays"] = "pythia8mc particle data"
    assert main(["validate", str(ref), str(decayed), "--out", str(tmp_path / "rd"), "--no-plots"]) == 0
    assert f"'{decayed}' holds spectra with resonance decays and '{ref}' without" in capsys.readouterr().err

    other_ics = _spectra_file(tmp_path / "other.h5", source="other_ic.h5")
    fewer_bins = tmp_path / "bins.h5"
    shutil.copy(cand, fewer_bins)
    with h5py.File(fewer_bins, "a") as f:
        f["pt_edges"][...] = np.linspace(0, 4, 9)
    not_shared = tmp_path / "shifted.h5"
    shutil.copy(cand, not_shared)
    with h5py.File(not_shared, "a") as f:
        f["ic_index"][...] = f["ic_index"][()] + 1000
    (tmp_path / "particles.h5").write_bytes((tmp_path / "ref.h5").read_bytes())
    for args, message in (([ref, other_ics], "different initial-state files"), ([ref, fewer_bins], "different (pT, phi) bins"),
                          ([ref, not_shared], "no record of the reference"), ([cand, ref], "several records of one IC"),
                          ([ref, cand, "--gate", tmp_path / "g.json"], "--gate applies to particle samples"),
                          ([ref, cand, "--max-events", "10"], "--max-events applies to particle samples"),
                          ([ref, cand, "--eta-gap", "0.5", "--gate", tmp_path / "g.json"], "--gate and --eta-gap apply to particle samples; drop them")):
        (tmp_path / "g.json").write_text("{}")
        assert main(["validate", *map(str, args), "--out", str(tmp_path / "bad"), "--overwrite"]) == 2, message
        assert message in capsys.readouterr().err and not (tmp_path / "bad").exists()
