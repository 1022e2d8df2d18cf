"""Seconds from a SIGTERM to the exit of `hicgen run` (the shipped O-O model, HDF5 output), for one or more
checkouts of hicgen run side by side, alternated, so that their times compare on a shared machine:

    python benchmarks/stop_latency.py --trees /path/to/old-checkout . --repeats 2 --json stop_latency.json

Each run starts `python -m hicgen run --system OO --events 1e5` in the checkout, sends SIGTERM after --wait
seconds (well after the model has loaded and the first batch has started), and times the exit; a run that does not
end with exit code 130 (stopped, its whole events kept) is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stop_seconds(tree: Path, wait: float) -> tuple[float, int]:
    """(seconds from SIGTERM to exit, exit code) of one `hicgen run` in checkout `tree`."""
    with tempfile.TemporaryDirectory() as scratch:
        cmd = [sys.executable, "-m", "hicgen", "run", "--system", "OO", "--events", "1e5", "--out",
               str(Path(scratch) / "events.h5")]
        proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(wait)
        if proc.poll() is not None:
            raise SystemExit(f"the run in {tree} ended before the signal: {proc.communicate()[1][-2000:]}")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate()
        return time.monotonic() - sent, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=Path, nargs="+", default=[Path(".")], help="hicgen checkouts to compare")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wait", type=float, default=25.0, help="seconds from the start to the signal")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for tree in args.trees:
            seconds, code = stop_seconds(tree.resolve(), args.wait)
            rows.append({"tree": str(tree), "repeat": repeat, "stop_seconds": round(seconds, 3), "exit_code": code})
            print(f"{tree}: stopped {seconds:.2f} s after SIGTERM, exit code {code}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "cpus": os.cpu_count(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
