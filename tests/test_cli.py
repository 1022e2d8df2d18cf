"""Every bad input gets one line on stderr, exit code 2, and leaves existing files untouched."""

import subprocess
import sys

import pytest

from conftest import toy_batch
from hicgen import __version__
from hicgen.cli import main
from hicgen.data.dataset import DatasetWriter


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hicgen", *args], capture_output=True, text=True, timeout=120)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hicgen {__version__}"


def test_info_lists_device():
    r = run_cli("info")
    assert r.returncode == 0 and "torch" in r.stdout and "device" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--system", "AuAu", "--events", "10"], "--system must be one of OO, PbPb"),
    (["--system", "OO", "--events", "0"], "--events must be a positive whole number"),
    (["--system", "OO", "--events", "-5"], "--events must be a positive whole number"),
    (["--system", "OO", "--events", "ten"], "--events must be a positive number"),
    (["--system", "OO", "--events", "2.5"], "--events must be a positive whole number"),
    (["--system", "OO", "--events", "10", "--workers", "0"], "--workers must be at least 1"),
    (["--system", "OO", "--events", "10", "--eta-max", "-1"], "--eta-max must be positive"),
])
def test_truth_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    assert main(["truth", "angantyr", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_existing_output_is_untouched(tmp_path, capsys):
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    assert main(["truth", "angantyr", "--system", "OO", "--events", "1e3", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"


def test_unwritable_output_directory(tmp_path, capsys):
    assert main(["truth", "angantyr", "--system", "OO", "--events", "5", "--out", str(tmp_path / "no" / "x.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_pythia_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['pythia8mc'] = None\n"
        "from hicgen.cli import main\n"
        f"sys.exit(main(['truth', 'angantyr', '--system', 'OO', '--events', '3', '--out', r'{tmp_path / 'x.h5'}']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "pip install 'hicgen[truth]'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_usage_errors_are_one_line(capsys):
    assert main(["truth", "angantyr", "--system", "OO"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--events" in err


def test_data_info_and_missing_file(tmp_path, capsys):
    path = tmp_path / "d.h5"
    with DatasetWriter(path, {"system": "OO"}) as w:
        w.append(toy_batch(4))
    assert main(["data", "info", str(path)]) == 0
    assert "events" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "nope.h5")]) == 2
    assert main(["data", "export", str(path), "--layout", "jagged", "--out", str(tmp_path / "e.h5")]) == 2
