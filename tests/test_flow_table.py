"""`hicgen data flow`: the flow table of one spectra or event file against flow put into it by hand."""

from __future__ import annotations

import csv
import io
import json

import h5py
import numpy as np
import pytest

from hicgen.analysis.flow_table import event_flow_table, spectra_flow_table
from hicgen.cli import main
from hicgen.data.dataset import DatasetWriter
from hicgen.truth.trento import CentralityCalibration
from toy_events import toy_batch

PT_EDGES, PHI_EDGES = np.linspace(0, 2, 9), np.linspace(-np.pi, np.pi, 33)
PT_SHAPE = np.linspace(0.4, 1.6, 8)  # v2(pT) / v2 per pT bin: flow rising with pT; its mean over the bins is 1


def _truth(n_ic: int = 200):
    """Per IC: TRENTo multiplicity (sets the yield and the centrality), v2, v3 and their planes."""
    rng = np.random.default_rng(5)
    mult = rng.uniform(300, 3000, n_ic)
    return {"mult": mult, "v2": rng.uniform(0.02, 0.14, n_ic), "v3": rng.uniform(0.0, 0.05, n_ic),
            "v4": rng.uniform(0.0, 0.03, n_ic), "psi2": rng.uniform(-np.pi, np.pi, n_ic),
            "psi3": rng.uniform(-np.pi, np.pi, n_ic), "psi4": rng.uniform(-np.pi, np.pi, n_ic)}


def _flow_file(path, truth, eta_s=(0.0, 0.1), smooth: bool = True, seed: int = 0):
    """A hicgen-spectra file: per IC and eta/s a smooth spectrum of the IC's yield (its 'mult', falling 10 % per 0.1
    of eta/s), flat in pT, with v2(pT) = v2 PT_SHAPE and pT-independent v3, v4, and a Poisson histogram of it. With
    smooth=False the 'spectrum' holds the histogram's density, as a model trained on histograms writes it."""
    from hicgen.truth.spectra_data import bin_measure

    n_ic = truth["mult"].size
    ic = np.repeat(np.arange(n_ic), len(eta_s))
    eta = np.tile(np.asarray(eta_s), n_ic)
    phi = 0.5 * (PHI_EDGES[1:] + PHI_EDGES[:-1])
    v2 = truth["v2"][ic][:, None, None] * PT_SHAPE[None, :, None]
    shape = (1 + 2 * v2 * np.cos(2 * (phi - truth["psi2"][ic][:, None, None]))
             + 2 * truth["v3"][ic][:, None, None] * np.cos(3 * (phi - truth["psi3"][ic][:, None, None]))
             + 2 * truth["v4"][ic][:, None, None] * np.cos(4 * (phi - truth["psi4"][ic][:, None, None])))
    counts = (truth["mult"][ic] * (1 - eta))[:, None, None] / (8 * 32) * shape
    histograms = np.random.default_rng(seed).poisson(counts).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "hicgen-spectra", "source": "ic.h5", "generator": "test"})
        f["pt_edges"], f["phi_edges"] = PT_EDGES, PHI_EDGES
        f["spectrum"] = ((counts if smooth else histograms) / bin_measure(PT_EDGES, PHI_EDGES)).astype(np.float32)
        f["histogram"] = histograms
        f["ic_index"], f["eta_s"], f["mult"] = ic, eta.astype(np.float32), truth["mult"][ic]
    return path


SPECIES_TOTAL = np.array([0.8, 0.14, 0.045])  # dN/dy of pi, K, p over all pT per unit of the IC's yield
SPECIES_FLOW = np.array([1.05, 0.9, 0.6])  # each species' V_n(pT) / the charged V_n(pT): mass ordering
SPECIES_IN_RANGE = np.array([0.97, 0.9, 0.7])  # the share of each species' yield within the file's pT range


def _species_shapes():
    """Each species' share of its 0-2 GeV yield per pT bin: pions soft, protons hard."""
    ptc = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    shapes = np.stack([np.exp(-ptc / slope) for slope in (0.3, 0.6, 1.5)])
    return shapes / shapes.sum(1, keepdims=True)


def _add_species(path, truth):
    """The reference chain's identified hadrons (spectra_data's layout): dN/dy over all pT SPECIES_TOTAL times the
    record's yield, SPECIES_IN_RANGE of it in the file's pT range with the shapes of _species_shapes, and flow vectors
    SPECIES_FLOW times those of the charged spectrum in each pT bin (v2 PT_SHAPE e^{2 i psi2}, v3 e^{3 i psi3})."""
    with h5py.File(path, "a") as f:
        ic, eta = f["ic_index"][()], f["eta_s"][()].astype(np.float64)
        yield_ = truth["mult"][ic] * (1 - eta)
        f["species_dndy"] = yield_[:, None] * SPECIES_TOTAL
        f["species_pt_dndy"] = (yield_[:, None, None] * (SPECIES_TOTAL * SPECIES_IN_RANGE)[:, None]
                                * _species_shapes()).astype(np.float32)
        v2 = truth["v2"][ic][:, None] * PT_SHAPE * np.exp(2j * truth["psi2"][ic])[:, None]  # (N, P)
        v3 = np.repeat((truth["v3"][ic] * np.exp(3j * truth["psi3"][ic]))[:, None], PT_SHAPE.size, axis=1)
        rows = np.stack([v2.real, v2.imag, v3.real, v3.imag], axis=1)  # (N, 4, P)
        f["species_pt_flow"] = (SPECIES_FLOW[None, :, None, None] * rows[:, None]).astype(np.float32)
    return path


def test_identified_hadrons_are_the_ones_put_in(tmp_path, capsys):
    """The reference chain's pi, K, p: dN/dy (all pT), <pT> over the pT range, K/pi and p/pi, and each species'
    spectrum d2N/dydpT and v_n{2}(pT) against the charged flow vector (SPECIES_FLOW x the charged v_n{2}(pT)); printed and in the CSV. A file
    without them has no such section."""
    truth = _truth()
    path = _add_species(_flow_file(tmp_path / "s.h5", truth), truth)
    table = spectra_flow_table(path, classes=(0, 50, 100), n_boot=50)
    assert table["meta"]["species"]
    ptc = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    for label, lo, hi in (("0-50%", 0, 50), ("50-100%", 50, 101)):
        chosen = _class_of(truth, lo, hi)
        cls = table["results"]["0.1"]["classes"][label]
        species = cls["species"]
        for s, name in enumerate(("pi", "K", "p")):
            yield_ = (1 - 0.1) * truth["mult"][chosen].mean()  # the file's yield at eta/s 0.1
            assert species[f"dN/dy {name}"]["value"] == pytest.approx(yield_ * SPECIES_TOTAL[s], rel=1e-6)
            assert species[f"<pT> {name}"]["value"] == pytest.approx(ptc @ _species_shapes()[s], rel=1e-6)
            by_pt = cls["species_differential"]
            np.testing.assert_allclose(by_pt[f"d2N/dydpT {name}"]["value"], yield_ * SPECIES_TOTAL[s] * SPECIES_IN_RANGE[s]
                                       * _species_shapes()[s] / np.diff(PT_EDGES), rtol=1e-5)
            np.testing.assert_allclose(by_pt[f"v2{{2}}(pT) {name}"]["value"],
                                       SPECIES_FLOW[s] * PT_SHAPE * np.sqrt(np.mean(truth["v2"][chosen] ** 2)), rtol=1e-5)
            np.testing.assert_allclose(by_pt[f"v3{{2}}(pT) {name}"]["value"],
                                       SPECIES_FLOW[s] * np.sqrt(np.mean(truth["v3"][chosen] ** 2)), rtol=1e-5)
        assert species["K/pi"]["value"] == pytest.approx(SPECIES_TOTAL[1] / SPECIES_TOTAL[0], rel=1e-6)
        assert species["p/pi"]["value"] == pytest.approx(SPECIES_TOTAL[2] / SPECIES_TOTAL[0], rel=1e-6)
    assert main(["data", "flow", str(path), "--classes", "0,50,100", "--out", str(tmp_path / "t.csv")]) == 0
    printed = capsys.readouterr().out
    assert "identified hadrons" in printed and "p/pi" in printed
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    species_rows = [r for r in rows if r["source"] == "species"]
    assert len(species_rows) == 2 * 2 * (8 + 9 * 8)  # eta/s x classes x (yields, <pT>, ratios; 3 spectra, 6 v_n(pT) in 8 bins)
    assert "species" not in spectra_flow_table(_flow_file(tmp_path / "plain.h5", truth), (0, 100), n_boot=5)[
        "results"]["0"]["classes"]["0-100%"]


def test_species_flow_in_a_coarse_bin_is_the_yield_weighted_mean():
    """A coarse pT bin's species flow vector is the yield-weighted mean of its fine bins' (an empty bin adds nothing),
    and its v_n{2}(pT) term is Re(V_n,s V_n*) with V_n the charged flow vector of the whole range."""
    from hicgen.analysis.flow_table import species_differential_terms

    pt_edges, phi_edges, coarse = np.linspace(0, 2, 5), np.linspace(-np.pi, np.pi, 17), np.array([0.0, 1.0, 2.0])
    phi = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    expected = np.broadcast_to(1 + 2 * 0.1 * np.cos(2 * phi), (1, 4, 16))  # charged V2 = 0.1, V3 = 0
    pt_dndy = np.array([[[3.0, 1.0, 0.0, 2.0]] * 3])  # (1, 3, 4): the third fine bin empty
    flow = np.zeros((1, 3, 4, 4))
    flow[0, :, 0] = [0.2, 0.6, 0.9, 0.3]  # Re V2 per fine bin (the empty bin's must not count)
    terms = species_differential_terms(pt_dndy, flow, expected, pt_edges, phi_edges, coarse)
    assert terms["v2^2"][0] == pytest.approx(0.01)
    assert terms["v2{2}(pT)[0] pi"][0] == pytest.approx((3 * 0.2 + 1 * 0.6) / 4 * 0.1)
    assert terms["v2{2}(pT)[1] p"][0] == pytest.approx(0.3 * 0.1)

def _class_of(truth, lo, hi):
    """The ICs of a class: percentile of their TRENTo multiplicity among all (ties none)."""
    mult = truth["mult"]
    percent = 100.0 * (mult[None, :] > mult[:, None]).mean(axis=1)
    return (percent >= lo) & (percent < hi)


def test_smooth_flow_is_the_flow_put_in(tmp_path):
    """The smooth spectra's v2{2}, v2{4}, v3{2}, v4{2} of a class are <v^2>^1/2 and (2<v^2>^2 - <v^4>)^1/4 of its ICs'
    flow, v2{2}(pT) follows the pT shape, and the bootstrap error is the standard error of <v^2>^1/2 over the ICs."""
    truth = _truth()
    table = spectra_flow_table(_flow_file(tmp_path / "s.h5", truth), classes=(0, 20, 50, 100), n_boot=400)
    assert table["meta"]["smooth"] and set(table["results"]) == {"0", "0.1"}
    for label, lo, hi in (("0-20%", 0, 20), ("20-50%", 20, 50), ("50-100%", 50, 101)):
        chosen = _class_of(truth, lo, hi)
        v2, v3 = truth["v2"][chosen], truth["v3"][chosen]
        for eta in ("0", "0.1"):
            cls = table["results"][eta]["classes"][label]
            assert cls["initial_states"] == cls["records"] == chosen.sum()
            smooth = cls["smooth"]
            assert smooth["v2{2}"]["value"] == pytest.approx(np.sqrt(np.mean(v2**2)), rel=1e-5)
            assert smooth["v2{4}"]["value"] == pytest.approx((2 * np.mean(v2**2) ** 2 - np.mean(v2**4)) ** 0.25, rel=1e-5)
            assert smooth["v3{2}"]["value"] == pytest.approx(np.sqrt(np.mean(v3**2)), rel=1e-5)
            assert smooth["v4{2}"]["value"] == pytest.approx(np.sqrt(np.mean(truth["v4"][chosen] ** 2)), rel=1e-5)
            by_pt = cls["smooth_differential"]["v2{2}(pT)"]["value"]
            np.testing.assert_allclose(by_pt, PT_SHAPE * np.sqrt(np.mean(v2**2)), rtol=1e-5)
            standard_error = np.std(v2**2, ddof=1) / np.sqrt(v2.size) / (2 * np.sqrt(np.mean(v2**2)))
            assert smooth["v2{2}"]["error"] == pytest.approx(standard_error, rel=0.2)


def test_flow_correlations_are_the_ones_put_in(tmp_path):
    """NSC(3,2) and NSC(4,2), v4,22 and rho4,22 (V_4 aligned with V_2, as nonlinear response makes it): those of the
    smooth spectra are the ICs' exact moments; those of the histograms agree with the tuple-weighted truth within
    3 errors."""
    truth = _truth(400)
    truth["psi4"] = truth["psi2"] + np.random.default_rng(9).normal(0, 0.2, truth["psi2"].size)
    truth["v3"] = truth["v3"] * (1.5 - 5 * truth["v2"])  # v3 falls with v2: a negative SC(3,2)
    table = spectra_flow_table(_flow_file(tmp_path / "s.h5", truth, eta_s=(0.0,)), classes=(0, 50, 100), n_boot=200)
    for label, lo, hi in (("0-50%", 0, 50), ("50-100%", 50, 101)):
        chosen = _class_of(truth, lo, hi)
        m, v2, v3, v4 = (truth[k][chosen] for k in ("mult", "v2", "v3", "v4"))
        response = v4 * v2**2 * np.cos(4 * (truth["psi4"] - truth["psi2"])[chosen])
        smooth = table["results"]["0"]["classes"][label]["smooth"]
        for m_, vm in ((3, v3), (4, v4)):
            nsc = np.mean(vm**2 * v2**2) / (np.mean(vm**2) * np.mean(v2**2)) - 1
            assert smooth[f"NSC({m_},2)"]["value"] == pytest.approx(nsc, rel=1e-4, abs=1e-6)
        v422 = np.mean(response) / np.sqrt(np.mean(v2**4))
        assert smooth["v4,22"]["value"] == pytest.approx(v422, rel=1e-4)
        assert smooth["rho4,22"]["value"] == pytest.approx(v422 / np.sqrt(np.mean(v4**2)), rel=1e-4)
        assert smooth["NSC(3,2)"]["value"] < -0.05 and smooth["rho4,22"]["value"] > 0.5

        hist = table["results"]["0"]["classes"][label]["histogram"]
        w2, w3, w4 = m * (m - 1), m * (m - 1) * (m - 2), m * (m - 1) * (m - 2) * (m - 3)
        mean = lambda w, x: np.sum(w * x) / w.sum()  # noqa: E731
        expected = {"v4,22": mean(w3, response) / np.sqrt(mean(w4, v2**4)),
                    "NSC(3,2)": mean(w4, v3**2 * v2**2) / (mean(w2, v3**2) * mean(w2, v2**2)) - 1}
        for name, value in expected.items():
            assert abs(hist[name]["value"] - value) < 3 * hist[name]["error"], (label, name, hist[name], value)
            if label == "0-50%" or name == "v4,22":  # peripheral NSC from 4 particles: +- 100 %, no test of the value
                assert hist[name]["error"] < 0.5 * abs(value), (label, name, hist[name])


def test_samples_of_one_ic_count_as_one_initial_state(tmp_path):
    """K records of an IC and eta/s (hicgen spectra -k K) are one initial state: a file holding every record twice,
    in another order, gives the same classes and smooth flow with twice the records."""
    truth = _truth(60)
    once = _flow_file(tmp_path / "once.h5", truth, eta_s=(0.1,))
    twice = tmp_path / "twice.h5"
    with h5py.File(once) as f, h5py.File(twice, "w") as g:
        g.attrs.update(dict(f.attrs))
        order = np.concatenate([np.arange(60)[::-1], np.arange(60)])  # the copies are not next to each other
        for name in f:
            g[name] = f[name][()] if name.endswith("edges") else f[name][()][order]
    one, two = (spectra_flow_table(path, classes=(0, 50, 100), n_boot=50)["results"]["0.1"]["classes"] for path in (once, twice))
    for label in ("0-50%", "50-100%"):
        assert two[label]["initial_states"] == one[label]["initial_states"] == 30
        assert two[label]["records"] == 2 * one[label]["records"]
        assert two[label]["smooth"]["v2{2}"]["value"] == pytest.approx(one[label]["smooth"]["v2{2}"]["value"], rel=1e-9)


def test_histogram_cumulants_measure_the_flow_put_in(tmp_path):
    """The histograms' Q-cumulants weight each event by its particle tuples, as experiments do: v2{2} and v2{4} of a
    class agree with the multiplicity-weighted truth within their errors; dN/dy and <pT> are the counts'."""
    truth = _truth(400)
    table = spectra_flow_table(_flow_file(tmp_path / "s.h5", truth, eta_s=(0.0,)), classes=(0, 50, 100), n_boot=200)
    for label, lo, hi in (("0-50%", 0, 50), ("50-100%", 50, 101)):
        chosen = _class_of(truth, lo, hi)
        m, v2 = truth["mult"][chosen], truth["v2"][chosen] * PT_SHAPE.mean()
        w2, w4 = m * (m - 1), m * (m - 1) * (m - 2) * (m - 3)
        c2 = np.sum(w2 * v2**2) / w2.sum()
        expected = {"v2{2}": np.sqrt(c2), "v2{4}": (2 * c2**2 - np.sum(w4 * v2**4) / w4.sum()) ** 0.25}
        hist = table["results"]["0"]["classes"][label]["histogram"]
        for name, value in expected.items():
            assert abs(hist[name]["value"] - value) < 3 * hist[name]["error"], (label, name)
            assert hist[name]["error"] < 0.12 * value  # so that agreeing within 3 errors says something
        v4 = np.sqrt(np.sum(w2 * truth["v4"][chosen] ** 2) / w2.sum())
        assert abs(hist["v4{2}"]["value"] - v4) < 3 * hist["v4{2}"]["error"] and hist["v4{2}"]["error"] < 0.3 * v4
        assert hist["dN/dy"]["value"] == pytest.approx(m.mean(), rel=0.01)
        assert hist["<pT>"]["value"] == pytest.approx(1.0, abs=0.01)  # flat in pT over 0-2 GeV


def test_centrality_small_classes_and_histogram_models(tmp_path):
    """Classes from the file's centrality column when it has one, from a min-bias calibration when given; classes of
    fewer than 10 ICs are left out and listed; a file whose spectra are its histograms' densities has no smooth
    section."""
    truth = _truth(60)
    path = _flow_file(tmp_path / "s.h5", truth, eta_s=(0.2,), smooth=False)
    table = spectra_flow_table(path, classes=(0, 10, 100), n_boot=20)
    res = table["results"]["0.2"]
    assert not table["meta"]["smooth"] and "smooth" not in res["classes"]["10-100%"]
    assert res["left_out"] == {"0-10%": 6} and res["classes"]["10-100%"]["initial_states"] == 54
    with h5py.File(path, "a") as f:
        f["centrality"] = np.where(np.arange(60) < 30, 5.0, 50.0)
    table = spectra_flow_table(path, classes=(0, 10, 100), n_boot=20)
    assert "centrality column" in table["meta"]["centrality"]
    assert {k: v["initial_states"] for k, v in table["results"]["0.2"]["classes"].items()} == {"0-10%": 30, "10-100%": 30}
    # a min-bias calibration (--centrality-ic) overrides the column: ICs above its two multiplicities of 1000 are at
    # 0 %, those below at 100 % times its 50 % coverage
    calibration = CentralityCalibration(np.array([1000.0, 1000.0]), 50.0, "mb.h5")
    table = spectra_flow_table(path, classes=(0, 10, 100), n_boot=20, calibration=calibration)
    above = int(np.sum(truth["mult"] > 1000))
    assert "mb.h5" in table["meta"]["centrality"] and 10 <= above <= 50
    assert {k: v["initial_states"] for k, v in table["results"]["0.2"]["classes"].items()} == {"0-10%": above,
                                                                                               "10-100%": 60 - above}


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    """`hicgen data flow` prints one line per class with errors in the last digits, writes JSON or long-form CSV,
    and refuses bad input in one line with exit 2, leaving an existing output as it was."""
    path = _flow_file(tmp_path / "s.h5", _truth(), seed=1)
    assert main(["data", "flow", str(path), "--classes", "0,50,100", "--out", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("0-50%", "50-100%"))]
    assert len(lines) == 16  # 2 classes x 2 eta/s x (histograms, smooth) x (flow, flow correlations)
    assert all(cell == "undefined" or "(" in cell for line in lines for cell in line[2:])
    table = json.loads((tmp_path / "t.json").read_text())
    assert set(table["results"]["0.1"]["classes"]) == {"0-50%", "50-100%"}
    assert main(["data", "flow", str(path), "--classes", "0,50,100", "--out", str(tmp_path / "t.csv")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    per_class = 17 + 11 + 2 * 8  # histogram and smooth observables (4 flow correlations each), v_n{2}(pT) in 8 bins
    assert len(rows) == 2 * 2 * per_class
    v2 = [r for r in rows if r["eta_s"] == "0.1" and r["centrality"] == "0-50%" and r["observable"] == "v2{2}"]
    assert {r["source"] for r in v2} == {"histogram", "smooth"}
    smooth = next(r for r in v2 if r["source"] == "smooth")
    assert float(smooth["value"]) == table["results"]["0.1"]["classes"]["0-50%"]["smooth"]["v2{2}"]["value"]
    assert main(["data", "flow", str(path), "--classes", "0,1"]) == 0
    assert "no centrality class holds 10 of them: give wider --classes" in capsys.readouterr().out
    before = (tmp_path / "t.csv").read_text()
    no_mult = tmp_path / "no_mult.h5"
    no_mult.write_bytes(path.read_bytes())
    with h5py.File(no_mult, "a") as f:
        f["mult"][0] = np.nan
    empty_root = tmp_path / "empty.root"  # uproot's error for it spans several lines
    empty_root.write_bytes(b"")
    events = tmp_path / "events.h5"
    with DatasetWriter(events, {"generator": "toy"}) as writer:
        writer.append(toy_batch(40, seed=3))
    for args, message in (([path, "--out", tmp_path / "t.csv"], "exists"),
                          ([path, "--classes", "0,50,40"], "increasing percentages"),
                          ([path, "--classes", "0,a"], "comma-separated percentages"),
                          ([path, "--bootstrap", "1"], "--bootstrap must be 2 or more"),
                          ([path, "--coverage", "80"], "--coverage needs --centrality-ic"),
                          ([path, "--out", tmp_path / "t.txt"], "unknown suffix"),
                          ([tmp_path / "missing.h5"], "does not exist"),
                          ([path, "--eta-gap", "0.5"], "--eta-gap applies to particle events only"),
                          ([events, "--centrality-ic", path, "--coverage", "80"],
                           "--centrality-ic and --coverage apply to spectra files only"),
                          ([events, "--eta-gap", "-1"], "--eta-gap must be a pseudorapidity gap >= 0"),
                          ([empty_root], "is not a readable ROOT file"),
                          ([no_mult], "lacks the TRENTo multiplicity")):
        assert main(["data", "flow", *map(str, args)]) == 2, message
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "t.csv").read_text() == before


def _aligned_flow_events(n_events: int, seed: int, v2=0.1, v3=0.05, v4=0.04, mean_mult=600):
    """Events whose particles all come in pairs at one phi, 0.01 apart in eta (non-flow at short range), drawn from
    1 + 2 v2 cos 2(phi - psi2) + 2 v3 cos 3(phi - psi3) + 2 v4 cos 4(phi - psi2): V_4 along V_2, v3 independent."""
    from hicgen.data.batch import EventBatch
    from hicgen.data.features import particle_event_features, wrap_phi

    rng = np.random.default_rng(seed)
    mult = rng.poisson(mean_mult / 2, n_events)
    offsets = np.concatenate([[0], np.cumsum(mult)])
    psi2, psi3 = (np.repeat(rng.uniform(-np.pi, np.pi, n_events), mult) for _ in range(2))
    phi, todo = np.empty(int(offsets[-1])), np.arange(int(offsets[-1]))
    while todo.size:
        cand = rng.uniform(-np.pi, np.pi, todo.size)
        density = (1 + 2 * v2 * np.cos(2 * (cand - psi2[todo])) + 2 * v3 * np.cos(3 * (cand - psi3[todo]))
                   + 2 * v4 * np.cos(4 * (cand - psi2[todo])))
        keep = rng.uniform(0, 1 + 2 * (v2 + v3 + v4), todo.size) < density
        phi[todo[keep]] = cand[keep]
        todo = todo[~keep]
    eta = rng.uniform(-2.5, 2.5, phi.size)
    particles = {"pt": np.repeat(0.2 + rng.exponential(0.5, phi.size), 2).astype(np.float32),
                 "eta": (np.repeat(eta, 2) + np.tile([0.0, 0.01], phi.size)).astype(np.float32),
                 "phi": np.repeat(wrap_phi(phi), 2).astype(np.float32), "pid": np.full(2 * phi.size, 211, np.int32)}
    offsets = 2 * offsets
    events = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)
    return EventBatch(events=events, offsets=offsets, particles=particles)


def test_sub_event_flow_correlations_are_free_of_close_pairs(tmp_path):
    """Particle events with V_4 along V_2 and every particle in a close pair: the sub-event flow correlations give the
    flow back (v4,22{gap} = v4, rho4,22{gap} = 1, NSC{gap} = 0 within 3 errors), while the pairs pull rho4,22
    without a gap far below 1."""
    with DatasetWriter(tmp_path / "e.h5", {"generator": "toy"}) as writer:
        writer.append(_aligned_flow_events(1500, seed=3))
    particles = event_flow_table(tmp_path / "e.h5", classes=(0, 100), n_boot=100)["results"]["all"]["classes"]["0-100%"]["particles"]
    for name, truth, largest_error in (("v4,22{gap}", 0.04, 0.005), ("rho4,22{gap}", 1.0, 0.15),
                                       ("NSC(3,2){gap}", 0.0, 0.15), ("NSC(4,2){gap}", 0.0, 0.35)):
        assert abs(particles[name]["value"] - truth) < 3 * particles[name]["error"], (name, particles[name])
        assert particles[name]["error"] < largest_error, (name, particles[name])
    assert particles["rho4,22"]["value"] < 0.8 and particles["rho4,22"]["error"] < 0.05


def test_sub_event_correlators_are_sums_over_distinct_tuples():
    """event_sums' sub-event terms of one small event equal the brute-force sums over distinct particles: pairs
    within A times pairs within B for NSC, one particle of one side with a pair of the other for v4,22."""
    import itertools

    from hicgen.analysis.flow_table import event_sums

    rng = np.random.default_rng(4)
    phi = rng.uniform(-np.pi, np.pi, 11)
    eta = np.array([1.0] * 6 + [-1.0] * 5)  # 6 particles in A (eta > 0.5), 5 in B
    sums = event_sums(np.ones(11), eta, phi, np.array([0, 11]), eta_gap=1.0)
    a, b = phi[:6], phi[6:]
    pairs = lambda x, m: [np.exp(1j * (m * x[i] + 2 * x[j])) for i, j in itertools.permutations(range(len(x)), 2)]  # noqa: E731
    for m in (2, 3, 4):
        expected = sum(p * np.conj(q) for p in pairs(a, m) for q in pairs(b, m)).real
        assert sums[f"gap4_num{m}"][0] == pytest.approx(expected, rel=1e-9)
    assert sums["gap4_den3"][0] == 30 * 20
    three = sum(np.exp(4j * x) * np.conj(q) for side, other in ((a, b), (b, a)) for x in side for q in pairs(other, 2)).real
    assert sums["gap3_num"][0] == pytest.approx(three, rel=1e-9) and sums["gap3_den"][0] == 6 * 20 + 5 * 30


def test_event_flow_measures_the_flow_put_in(tmp_path, capsys):
    """Particle events of a known v2 = 0.1 (toy events, any format): v2{2}, v2{4} and v2{2,gap} give it back within
    their errors, v3{2,gap} is 0 within its, <N> is the mean multiplicity; without a centrality column the classes
    are multiplicity percentiles, with one they are the column's; the HepMC3 file gives the HDF5 file's numbers."""
    from hicgen.io.writers import open_writer

    batch = toy_batch(1500, seed=11, v2=0.1, mean_mult=150)
    with DatasetWriter(tmp_path / "e.h5", {"generator": "toy"}) as writer:
        writer.append(batch)
    table = event_flow_table(tmp_path / "e.h5", classes=(0, 50, 100), n_boot=100)
    assert set(table["results"]) == {"all"} and "percentile of the particles per event" in table["meta"]["centrality"]
    mult = np.diff(batch.offsets)
    for label, chosen in (("0-50%", mult > np.median(mult)), ("50-100%", mult < np.median(mult))):
        cls = table["results"]["all"]["classes"][label]
        particles = cls["particles"]
        assert abs(cls["initial_states"] - chosen.sum()) <= np.sum(mult == np.median(mult))  # ties at the median
        for name in ("v2{2}", "v2{4}", "v2{2,gap}"):
            assert abs(particles[name]["value"] - 0.1) < 3 * particles[name]["error"] + 1e-3, (label, name)
            assert particles[name]["error"] < 0.01
        assert abs(particles["v3{2,gap}"]["value"] if np.isfinite(particles["v3{2,gap}"]["value"]) else 0.0) < 0.03
    everything = event_flow_table(tmp_path / "e.h5", classes=(0, 100), n_boot=20)["results"]["all"]["classes"]["0-100%"]
    assert everything["particles"]["<N>"]["value"] == pytest.approx(mult.mean())
    assert everything["initial_states"] == everything["records"] == 1500

    writer = open_writer(tmp_path / "e.hepmc", run_info={"system": "OO", "sqrt_s": 5360.0}, background=False)
    writer.write(batch)
    writer.close()
    from_hepmc = event_flow_table(tmp_path / "e.hepmc", classes=(0, 100), n_boot=20)["results"]["all"]["classes"]
    assert from_hepmc["0-100%"]["particles"]["v2{4}"]["value"] == pytest.approx(everything["particles"]["v2{4}"]["value"],
                                                                                rel=1e-5)

    centrality = np.where(np.arange(1500) % 3 == 0, 5.0, 55.0)
    batch.events["centrality"] = centrality
    with DatasetWriter(tmp_path / "c.h5", {"generator": "toy"}) as writer:
        writer.append(batch)
    table = event_flow_table(tmp_path / "c.h5", classes=(0, 50, 100), n_boot=20)
    assert table["meta"]["centrality"] == "the events' centrality column"
    assert {k: v["initial_states"] for k, v in table["results"]["all"]["classes"].items()} == {"0-50%": 500, "50-100%": 1000}
    assert main(["data", "flow", str(tmp_path / "c.h5"), "--classes", "0,50,100", "--eta-gap", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "all events: 1,500 initial states, 1,500 events" in out and "sub-events eta > 0.25" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("0-50%", "50-100%"))]) == 4  # + correlations


def test_event_samples_of_one_ic_are_grouped_by_eta_s(tmp_path):
    """Particle events of hicgen spectra --particles carry eta_s, ic_index: one table per eta/s, and an IC's K events
    resampled together as one initial state."""
    batch = toy_batch(240, seed=12)
    batch.events["eta_s"] = np.tile(np.repeat(np.float32([0.0, 0.1]), 2), 60)  # 60 ICs x 2 eta/s x 2 samples
    batch.events["ic_index"] = np.repeat(np.arange(60), 4)
    with DatasetWriter(tmp_path / "p.h5", {"generator": "toy"}) as writer:
        writer.append(batch)
    results = event_flow_table(tmp_path / "p.h5", classes=(0, 100), n_boot=20)["results"]
    assert set(results) == {"0", "0.1"}
    for res in results.values():
        cls = res["classes"]["0-100%"]
        assert cls["initial_states"] == 60 and cls["records"] == 120


def test_values_carry_their_error_in_the_last_digits():
    """The printed form: two significant digits of the error, the value rounded to them; 'undefined' for NaN."""
    from hicgen.cli.data import _with_error

    cases = {(0.09123, 0.00368): "0.0912(37)", (1618.2, 20.4): "1618(20)", (0.0702, 0.00996): "0.070(10)",
             (0.7446, 0.0): "0.7446", (float("nan"), 0.1): "undefined"}
    for (value, error), text in cases.items():
        assert _with_error({"value": value, "error": error}) == text
