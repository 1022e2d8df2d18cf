"""Each script in examples/ runs on a handful of events from a tiny untrained checkpoint."""

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
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "oo")


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(model, tmp_path, script):
    args, expected = CASES[script]
    cmd = [sys.executable, str(EXAMPLES / script), "--model", str(model), "--events", "12",
           *[a.format(tmp=tmp_path) for a in args]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
