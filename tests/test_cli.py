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


def test_sigterm_stops_any_command_as_ctrl_c_does(tmp_path):
    """SIGTERM to a command without its own stop handling (here `hicgen truth trento`, whose file is written whole
    or not at all) ends it as Ctrl-C would: one line, exit 130, and no partial file left behind; in-process, the
    handler it had before comes back after main()."""
    import os
    import signal
    import time

    from hicgen.io.paths import partial_path

    out = tmp_path / "ic.h5"
    proc = subprocess.Popen([sys.executable, "-m", "hicgen", "truth", "trento", "--events", "1e6", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    part, deadline = partial_path(out), time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not part.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "hicgen: interrupted", err
    assert not part.exists() and not out.exists()
    before = signal.getsignal(signal.SIGTERM)
    assert main(["--version"]) == 0 and signal.getsignal(signal.SIGTERM) is before
