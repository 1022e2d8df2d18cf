"""Each script in examples/ runs on a handful of events from a tiny untrained checkpoint (the spectra example: the
shipped spectra model, small enough for a few initial states on a CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_model import make_tiny_checkpoint

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CASES = {
    "hepmc_loop.py": (["--out", "{tmp}/oo.hepmc"], "charged multiplicity: mean"),
    "root_pt_histogram.py": (["--out", "{tmp}/oo.root", "--png", "{tmp}/pt.png"], "saved"),
    "fastjet_jets.py": (["--out", "{tmp}/oo.h5", "--jet-pt-min", "1"], "anti-kt R=0.4 jets"),
    "python_api.py": ([], "v2{2} (no eta gap)"),
    "spectra_flow.py": (["--out", "{tmp}/s.h5", "--classes", "0", "30", "70"], ("12 spectra of 12 initial states", "\n30-70%  ")),
}
SHIPPED_MODEL = {"spectra_flow.py"}  # run on the shipped weights, not the tiny point-cloud checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "oo")


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(model, tmp_path, script):
    args, expected = CASES[script]
    own_model = [] if script in SHIPPED_MODEL else ["--model", str(model)]
    cmd = [sys.executable, str(EXAMPLES / script), *own_model, "--events", "12", *[a.format(tmp=tmp_path) for a in args]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for line in (expected,) if isinstance(expected, str) else expected:
        assert line in result.stdout, result.stdout
