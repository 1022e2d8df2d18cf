"""Angantyr truth benchmark: multiplicity check against a direct pythia8mc loop, events/s per worker, 1 -> 2 worker scaling.

    python benchmarks/truth.py --system OO --events 2000 --check-multiplicity
    python benchmarks/truth.py --system PbPb --events 40 --scaling

The multiplicity check runs `hicgen truth angantyr` (seed 7) and an independent pythia8mc loop written
here with the documented settings (another seed), and prints both means with their standard errors.
The scaling runs time the same command with 1 and 2 workers side by side (init included and excluded).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hicgen.data.dataset import DatasetReader
from hicgen.truth.angantyr import NUCLEUS_PDG, AngantyrConfig, angantyr_fit, run_angantyr


def direct_multiplicities(system: str, seed: int, n_events: int, eta_max: float, pt_min: float) -> np.ndarray:
    """Charged final-state multiplicity in the acceptance from a plain pythia8mc loop."""
    import pythia8mc

    nucleus = NUCLEUS_PDG[system]
    pythia = pythia8mc.Pythia("", False)
    fit = angantyr_fit(AngantyrConfig(system))
    for line in [f"Beams:idA = {nucleus}", f"Beams:idB = {nucleus}", "Beams:eCM = 5360", "ParticleDecays:limitTau0 = on",
                 "ParticleDecays:tau0Max = 10", "Random:setSeed = on", f"Random:seed = {seed}", "Next:numberCount = 0",
                 "HeavyIon:SigFitNGen = 0"] + [f"{k} = {v}" for k, v in fit.items()]:
        pythia.readString(line)
    pythia.init()
    counts = []
    while len(counts) < n_events:
        if pythia.next():
            counts.append(sum(1 for p in pythia.event if p.isFinal() and p.isCharged()
                              and abs(p.eta()) < eta_max and p.pT() > pt_min))
    return np.array(counts)


def timed_run(system: str, n_events: int, workers: int, seed: int) -> dict:
    """Wall time of run_angantyr, and the time from the first chunk on (init excluded)."""
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "b.h5"
        start = time.perf_counter()
        summary = run_angantyr(AngantyrConfig(system), n_events, seed, out, workers, progress=lambda n: marks.append(time.perf_counter()))
        total = time.perf_counter() - start
        with DatasetReader(out) as reader:
            mult = np.diff(reader.offsets)
    chunk = n_events / len(marks)
    steady = (marks[-1] - marks[0]) if len(marks) > 1 else float("nan")
    steady_events = n_events - chunk * workers  # the first chunk of each worker includes its start
    return {"workers": workers, "events": summary.events, "wall_s": total,
            "events_per_s": summary.events / total,
            "events_per_s_per_worker_steady": steady_events / steady / workers if steady > 0 else float("nan"),
            "mean_mult": float(mult.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", default="OO", choices=list(NUCLEUS_PDG))
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--check-multiplicity", action="store_true")
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result: dict = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                    "date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "system": args.system}
    if args.check_multiplicity:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.h5"
            run_angantyr(AngantyrConfig(args.system), args.events, 7, out, workers=2)
            with DatasetReader(out) as reader:
                ours = np.diff(reader.offsets)
                b = reader.read(particles=False).events["b"]
        central = ours[b <= np.quantile(b, 0.10)]
        ref = direct_multiplicities(args.system, 12345, args.events, 2.5, 0.15)
        se = np.hypot(ours.std() / np.sqrt(ours.size), ref.std() / np.sqrt(ref.size))
        result["multiplicity"] = {
            "hicgen_mean": float(ours.mean()), "hicgen_std": float(ours.std()),
            "direct_mean": float(ref.mean()), "direct_std": float(ref.std()),
            "hicgen_mean_10pct_smallest_b": float(central.mean()),
            "ratio": float(ours.mean() / ref.mean()), "difference_in_standard_errors": float((ours.mean() - ref.mean()) / se),
        }
    if args.scaling:
        result["scaling"] = [timed_run(args.system, args.events, w, 1) for w in (1, 2)]
        one, two = result["scaling"]
        result["speedup_1_to_2_workers"] = two["events_per_s"] / one["events_per_s"]
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
