"""Angantyr truth generation against a direct pythia8mc loop, reproducibility, Pb-Pb, a run stopped by a signal."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pythia8mc = pytest.importorskip("pythia8mc")

from hicgen.cli import main  # noqa: E402
from hicgen.data.dataset import dataset_info, read_dataset  # noqa: E402
from hicgen.data.features import particle_event_features  # noqa: E402
from hicgen.io.paths import partial_path  # noqa: E402
from hicgen.truth.angantyr import AngantyrConfig, angantyr_fit, worker_seeds  # noqa: E402


def direct_pythia(system_pdg: int, seed: int, fit: dict, n: int, eta_max=2.5, pt_min=0.15):
    """An independent loop over pythia8mc with the documented settings: charged final state in the acceptance."""
    p = pythia8mc.Pythia("", False)
    for s in [f"Beams:idA = {system_pdg}", f"Beams:idB = {system_pdg}", "Beams:eCM = 5360",
              "ParticleDecays:limitTau0 = on", "ParticleDecays:tau0Max = 10", "Random:setSeed = on",
              f"Random:seed = {seed}", "HeavyIon:SigFitNGen = 0", "Next:numberCount = 0"] + [f"{k} = {v}" for k, v in fit.items()]:
        p.readString(s)
    assert p.init()
    events = []
    while len(events) < n:
        if not p.next():
            continue
        pts = [(q.pT(), q.eta(), q.phi(), q.id()) for q in p.event
               if q.isFinal() and q.isCharged() and abs(q.eta()) < eta_max and q.pT() > pt_min]
        hi = p.heavyIonsPtr.hiInfo
        events.append((hi.b(), hi.nPartProj() + hi.nPartTarg(), np.array(pts).reshape(-1, 4)))
    return events


@pytest.mark.slow
def test_oo_matches_direct_pythia_and_q2_closes(tmp_path):
    out = tmp_path / "oo.h5"
    assert main(["truth", "angantyr", "--system", "OO", "--events", "40", "--seed", "7", "--out", str(out)]) == 0
    data = read_dataset(out)
    fit = angantyr_fit(AngantyrConfig("OO"))
    ref = direct_pythia(1000080160, worker_seeds(7, 1)[0], fit, 40)
    np.testing.assert_array_equal(data.multiplicity, [len(e[2]) for e in ref])
    np.testing.assert_allclose(data.events["b"], [e[0] for e in ref])
    np.testing.assert_array_equal(data.events["npart"], [e[1] for e in ref])
    np.testing.assert_allclose(data.particles["pt"], np.concatenate([e[2][:, 0] for e in ref]), rtol=1e-6)
    assert set(np.abs(data.particles["pid"])) <= {11, 13, 211, 321, 2212, 3112, 3222, 3312, 3334}
    # stored Q2/psi2 equal the values recomputed from the stored particles
    f = particle_event_features(data.particles["pt"], data.particles["eta"], data.particles["phi"], data.offsets)
    for k in ("q2x", "q2y", "psi2", "mean_pt", "sum_pt"):
        np.testing.assert_allclose(data.events[k], f[k], atol=1e-6)
    attrs = dataset_info(out)["attrs"]
    assert attrs["system"] == "OO" and attrs["sqrt_s"] == 5360 and attrs["generator_version"] == "8.317.2"
    assert list(attrs["seeds"]) == worker_seeds(7, 1)


@pytest.mark.slow
def test_two_workers_reproducible_and_distinct(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for path in (a, b):
        assert main(["truth", "angantyr", "--system", "OO", "--events", "24", "--seed", "3", "--workers", "2", "--out", str(path)]) == 0
    da, db = read_dataset(a), read_dataset(b)
    np.testing.assert_array_equal(da.offsets, db.offsets)
    np.testing.assert_array_equal(da.particles["pt"], db.particles["pt"])
    seeds = worker_seeds(3, 2)
    assert len(set(seeds)) == 2 and list(dataset_info(a)["attrs"]["seeds"]) == seeds
    # round-robin chunks: the two workers' streams are different events
    assert not np.array_equal(da.events["b"][:12], da.events["b"][12:])


@pytest.mark.slow
def test_pbpb_events(tmp_path):
    out = tmp_path / "pbpb.h5"
    assert main(["truth", "angantyr", "--system", "PbPb", "--events", "3", "--seed", "1", "--out", str(out)]) == 0
    data = read_dataset(out)
    assert len(data) == 3
    assert np.all(data.events["npart"] <= 416) and np.all(data.events["b"] < 20)
    assert np.all(np.abs(data.particles["eta"]) < 2.5) and np.all(data.particles["pt"] > 0.15)
    # a Pb-Pb event with many participants is far busier than any O-O event
    busiest = np.argmax(data.events["npart"])
    assert data.events["npart"][busiest] < 50 or data.multiplicity[busiest] > 300


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_the_group_keeps_the_whole_events_written(tmp_path, sig):
    """A SIGTERM to the whole process group (a batch system's stop) or a Ctrl-C (SIGINT to the group) ends a
    two-worker run with exit 130 and a file of the whole events written so far: the workers are stopped by the
    parent, not counted as failed, and no partial file is left."""
    out = tmp_path / "oo.h5"
    cmd = [sys.executable, "-m", "hicgen", "truth", "angantyr", "--system", "OO", "--events", "1e6", "--workers", "2",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    part, deadline, first_size, seen_at = partial_path(out), time.monotonic() + 240, None, None
    while time.monotonic() < deadline and proc.poll() is None:  # the file grows with the first chunk appended
        if part.exists():
            # its size once the new file is set up (Pythia's start takes far longer), so that what h5py still writes
            # of the empty file is not taken for the first chunk
            seen_at = seen_at or time.monotonic()
            if time.monotonic() - seen_at > 2.0:
                first_size = first_size or part.stat().st_size
                if part.stat().st_size > first_size:
                    break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = int(re.search(r"holds the ([\d,]+) whole events written", err).group(1).replace(",", ""))
    assert 0 < kept == len(read_dataset(out)) < 1_000_000 and not part.exists()
