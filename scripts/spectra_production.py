"""Make the spectra model's training data and weights on one GPU machine, in a fixed time: TRENTo ICs -> hydro
-> training -> closure. Rehearsed end to end on the CPU at 1 % scale (`--device cpu --scale 0.01`); its first H100
run (2026-11-24) was spoiled by a second copy started on the same folder, which the lock below now refuses, so no
shipped weights come from it yet (docs/benchmarks.md, "GPU"). The defaults (3 min of hydro, 3 min of training)
are meant to keep the whole run inside one 10-minute device call with the ICs, probes, merge and closures around
them (estimated from the H100 rates in docs/benchmarks.md, not yet timed as a whole); raise them where a machine is
held longer.

    python scripts/spectra_production.py --work /tmp/prod \\
        --closure-reference spectra_c.h5 ucen_closure.h5 --closure-centrality-ic ic_mb.h5

Every stage is a hicgen command (or a benchmark script) run as a subprocess, with its log in WORK/logs:

1. ICs: `hicgen truth trento --grid-step 0.4 --norm 181` for the training IC files (TRAIN_ICS: min-bias 0-70 % plus
   central-, ultra-central- and peripheral-enriched files) and the closure ones (CLOSURE_ICS: other seeds, so their
   ICs are never trained on), all at once on the CPU cores. Meanwhile each model size is timed for --probe-steps
   training steps on the GPU (the rates set the step counts of stage 4).
2. Hydro: `hicgen truth hydro --eta-s 0,0.1,0.2 --hydro-grid-max 14` on every IC file at once, one process each
   sharing the GPU. At the deadline the still running ones get SIGTERM, which keeps each file's finished records
   (ICs go in blocks of 64 in file order, so the finished part samples the whole file).
3. `hicgen truth merge --renumber-ics` joins the training parts into WORK/train.h5.
4. Side by side: `hicgen train --model spectra --preset small` from scratch and `hicgen finetune --from --tiny-from`
   (the tiny model), with step counts from the probe rates so that both end inside --train-minutes; a run still
   going 90 s after that gets SIGTERM (its best checkpoint so far stays).
5. benchmarks/spectra_closure.py for every new model on the fresh closure ICs and on --closure-reference, and for
   --tiny-from on the fresh closure ICs (the previous release, same ICs), each at 12 full-grid steps and at 3 DDIM
   steps on the narrowed grid (CLOSURE_SAMPLINGS).

Writes WORK/summary.json (commands, records per file, hydro records/s, training steps and times) and packs what
should leave the machine into WORK/pack: results.tar.gz (summary, logs, closure outputs, model configs and
training logs, the tiny model) and the small model's model.safetensors in pieces of 15 MiB (`cat` them back).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRENTO = ["--grid-step", "0.4", "--norm", "181"]
HYDRO = ["--eta-s", "0,0.1,0.2", "--hydro-grid-max", "14"]
# name: (events, seed, extra trento options); b_max 13.07 fm covers 69.97 % of the measured Pb-Pb cross section
# (hicgen.truth.trento.sample_coverage)
TRAIN_ICS = {
    "mb1": (1536, 3101, ["--b-max", "13.07"]),
    "mb2": (1536, 3102, ["--b-max", "13.07"]),
    "mb3": (1536, 3103, ["--b-max", "13.07"]),
    "mb4": (1536, 3104, ["--b-max", "13.07"]),
    "cen": (768, 3105, ["--b-max", "7.5"]),
    "ucen": (512, 3106, ["--b-max", "3.5"]),
    "peri": (512, 3107, ["--b-min", "11", "--b-max", "13.07"]),
}
CLOSURE_ICS = {
    "closure_mb": (512, 3201, ["--b-max", "13.07"]),
    "closure_ucen": (128, 3202, ["--b-max", "3.5"]),
}
CLOSURE = ["--all-records", "--samples-per-ic", "2", "--bootstrap", "100",
           "--classes", "0", "5", "10", "20", "30", "40", "50", "60", "70", "--plot-class", "0-5%"]
# Every model is closed at two samplings: the converged ODE (12 full-grid steps) and the shipped model's default
# (3 DDIM steps on the narrowed grid, weights/spectra/HISTORY.md "Default sampling since 2026-12-05").
CLOSURE_SAMPLINGS = {
    "full12": ["--steps", "12", "--sampler", "dpm++2m", "--logsnr-range", "full"],
    "ddim3": ["--steps", "3", "--sampler", "ddim", "--logsnr-range", "-2", "4"],
}


class Stages:
    """Runs and logs the subprocesses of one production in WORK."""

    def __init__(self, work: Path, device: str) -> None:
        self.work, self.device = work, device
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.summary: dict = {"commands": [], "device": device}

    def note(self, text: str) -> None:
        print(f"[{time.time() - self.t0:7.1f} s] {text}", flush=True)

    def start(self, name: str, args: list[str], threads: int = 1) -> subprocess.Popen:
        """Start `args` (argv) with its output in logs/NAME.log and OMP_NUM_THREADS=threads."""
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.summary["commands"].append({"name": name, "argv": " ".join(shlex.quote(a) for a in args)})
        log = open(self.logs / f"{name}.log", "w")
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.work)

    def wait(self, procs: dict[str, subprocess.Popen], deadline: float | None = None) -> dict[str, int]:
        """Wait for all; at `deadline` (time.time()) SIGTERM the ones still running. Returns exit codes."""
        while any(p.poll() is None for p in procs.values()):
            if deadline is not None and time.time() > deadline:
                for name, p in procs.items():
                    if p.poll() is None:
                        self.note(f"deadline: SIGTERM to {name}")
                        p.send_signal(signal.SIGTERM)
                deadline = None
            time.sleep(2)
        codes = {name: p.returncode for name, p in procs.items()}
        self.note(f"exit codes {codes}")
        return codes


def hicgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "hicgen", *args]


def probe_rate(stages: Stages, preset: str, data: Path, steps: int, batch: int) -> float:
    """Training steps/s of a spectra UNet `preset` on the GPU alone (the last logged rate of a short run)."""
    out = stages.work / f"probe_{preset}"
    cfg = stages.work / f"probe_{preset}.json"
    cfg.write_text(json.dumps({"target": "spectrum", "preset": preset, "steps": steps, "batch_size": batch,
                               "val_every": steps, "state_every": steps, "log_every": 50, "val_fraction": 0.1}))
    proc = stages.start(f"probe_{preset}", hicgen("train", "--model", "spectra", "--data", str(data), "--config", str(cfg),
                                                  "--out", str(out), "--device", stages.device, "--no-progress"))
    stages.wait({preset: proc})
    log = out / "train.log"
    rates = re.findall(r"\(([0-9.]+) steps/s\)", log.read_text()) if log.exists() else []
    return float(rates[-1]) if rates else 0.0


def record_counts(paths: list[Path]) -> dict[str, int]:
    """Records per readable file; missing or unreadable files are left out."""
    import h5py

    counts = {}
    for path in paths:
        try:
            with h5py.File(path, "r") as handle:
                counts[path.name] = int(len(handle["eta_s"]))
        except (OSError, KeyError):
            continue
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hydro-minutes", type=float, default=3.0)
    ap.add_argument("--hydro-batch", type=int, default=192, help="records per hydro batch (64 ICs x 3 eta/s)")
    ap.add_argument("--train-minutes", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=64, help="training batch of both models")
    ap.add_argument("--probe-steps", type=int, default=150)
    ap.add_argument("--tiny-from", type=Path, default=ROOT / "weights" / "spectra", help="tiny model to fine-tune")
    ap.add_argument("--closure-reference", type=Path, nargs="*", default=[], help="older closure files (hicgen-spectra)")
    ap.add_argument("--closure-centrality-ic", type=Path, help="min-bias IC file for the classes of --closure-reference")
    ap.add_argument("--scale", type=float, default=1.0, help="scale every IC count (a quick CPU rehearsal: 0.01)")
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:  # one production per folder: two would write the same files
        os.close(os.open(work / ".lock", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        raise SystemExit(f"{work} holds another production (remove {work / '.lock'} if none is running)") from None
    stages = Stages(work, args.device)
    summary = stages.summary
    ics = {**TRAIN_ICS, **CLOSURE_ICS}

    # 1. ICs on the CPU, the training-speed probes on the GPU
    procs = {name: stages.start(f"trento_{name}", hicgen("truth", "trento", "--events", str(max(8, round(n * args.scale))),
                                                         "--seed", str(seed), *extra, *TRENTO, "--out", f"ic_{name}.h5"))
             for name, (n, seed, extra) in ics.items()}
    probe_data = args.closure_reference[0].resolve() if args.closure_reference else None
    rates = {}
    if probe_data is not None:
        for preset in ("small", "tiny"):
            rates[preset] = probe_rate(stages, preset, probe_data, args.probe_steps, args.batch_size)
    summary["probe_steps_per_s"] = rates
    stages.note(f"probe rates {rates}")
    stages.wait(procs)

    # 2. hydro, every IC file at once, until the deadline
    t_hydro = time.time()
    procs = {name: stages.start(f"hydro_{name}", hicgen("truth", "hydro", "--ic", f"ic_{name}.h5", *HYDRO, "--device",
                                                        args.device, "--batch", str(args.hydro_batch),
                                                        "--out", f"sp_{name}.h5"))
             for name in ics}
    summary["hydro_exit"] = stages.wait(procs, deadline=t_hydro + 60 * args.hydro_minutes)
    hydro_seconds = time.time() - t_hydro
    counts = record_counts([work / f"sp_{name}.h5" for name in ics])
    summary["hydro"] = {"seconds": hydro_seconds, "records": counts, "records_per_s": sum(counts.values()) / hydro_seconds,
                        "processes": len(ics), "batch": args.hydro_batch}
    stages.note(f"hydro {summary['hydro']}")

    # 3. merge the training parts
    parts = [f"sp_{name}.h5" for name in TRAIN_ICS if f"sp_{name}.h5" in counts]
    if not parts:
        raise SystemExit("no training records were made; see WORK/logs/hydro_*.log")
    stages.wait({"merge": stages.start("merge", hicgen("truth", "merge", "--renumber-ics", *parts, "--out", "train.h5"))})
    summary["train_records"] = record_counts([work / "train.h5"])

    # 4. the small model from scratch and the tiny one fine-tuned, side by side
    budget = 60 * args.train_minutes - 60  # data loading, validations and saving
    small_steps = max(200, int(0.8 * rates.get("small", 10.0) * budget) // 100 * 100)
    tiny_steps = max(200, int(0.6 * rates.get("tiny", 20.0) * budget) // 100 * 100)
    small_cfg = {"target": "spectrum", "preset": "small", "steps": small_steps, "batch_size": args.batch_size, "lr": 3e-4,
                 "warmup_steps": 300, "val_fraction": 0.05, "val_every": max(100, small_steps // 8 // 100 * 100),
                 "state_every": small_steps, "log_every": 100, "ema_decay": 0.999}
    tiny_cfg = {"steps": tiny_steps, "batch_size": args.batch_size, "lr": 1.5e-4, "warmup_steps": 100,
                "val_fraction": 0.05, "val_every": max(100, tiny_steps // 8 // 100 * 100), "state_every": tiny_steps,
                "log_every": 100}
    (work / "small.json").write_text(json.dumps(small_cfg))
    (work / "tiny.json").write_text(json.dumps(tiny_cfg))
    summary["training_configs"] = {"small": small_cfg, "tiny": tiny_cfg}
    t_train = time.time()
    procs = {"small": stages.start("train_small", hicgen("train", "--model", "spectra", "--data", "train.h5", "--config",
                                                         "small.json", "--out", "sp_small", "--device", args.device,
                                                         "--no-progress"), threads=2),
             "tiny": stages.start("train_tiny", hicgen("finetune", "--from", str(args.tiny_from.resolve()), "--data",
                                                       "train.h5", "--config", "tiny.json", "--out", "sp_tiny",
                                                       "--device", args.device, "--no-progress"), threads=2)}
    summary["train_exit"] = stages.wait(procs, deadline=t_train + 60 * args.train_minutes + 90)
    summary["train_seconds"] = time.time() - t_train

    # 5. closure
    run_closures(stages, [name for name in CLOSURE_ICS if f"sp_{name}.h5" in counts], args.tiny_from.resolve(),
                 args.closure_reference, args.closure_centrality_ic)
    summary["total_seconds"] = time.time() - stages.t0
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    pack(work)
    stages.note("done")


def run_closures(stages: Stages, fresh_names: list[str], previous: Path, old_reference: list[Path],
                 old_centrality_ic: Path | None) -> None:
    """benchmarks/spectra_closure.py, side by side: every new model (sp_small, sp_tiny) on the fresh closure files and on
    `old_reference`, and the `previous` model on the fresh files."""
    work = stages.work
    fresh = ["--reference", *(f"sp_{name}.h5" for name in fresh_names), "--centrality-ic", "ic_mb1.h5"]
    old = ["--reference", *(str(p.resolve()) for p in old_reference)]
    if old_centrality_ic is not None:
        old += ["--centrality-ic", str(old_centrality_ic.resolve())]
    runs = {"fresh_previous": [*fresh, "--model", str(previous)]}
    for model in ("small", "tiny"):
        if (work / f"sp_{model}" / "config.json").exists():
            runs[f"fresh_{model}"] = [*fresh, "--model", f"sp_{model}"]
            if old_reference:
                runs[f"old_{model}"] = [*old, "--model", f"sp_{model}"]
    procs = {f"{name}_{sampling}": stages.start(
                 f"closure_{name}_{sampling}", [sys.executable, str(ROOT / "benchmarks" / "spectra_closure.py"), *run,
                                                *CLOSURE, *options, "--device", stages.device, "--out",
                                                f"closure_{name}_{sampling}"], threads=2)
             for name, run in runs.items() for sampling, options in CLOSURE_SAMPLINGS.items()}
    stages.summary["closure_exit"] = stages.wait(procs)


def pack(work: Path) -> None:
    """WORK/pack: results.tar.gz of the small files and the small model's weights in 15 MiB pieces."""
    out = work / "pack"
    out.mkdir(exist_ok=True)
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        for path in [work / "logs", *work.glob("closure_*"), *work.glob("*.json")]:
            if path.exists():
                tar.add(path, arcname=path.relative_to(work))
        for folder in ("sp_small", "sp_tiny"):
            for path in (work / folder).glob("*"):
                if path.is_file() and (path.name != "model.safetensors" or folder == "sp_tiny"):
                    tar.add(path, arcname=path.relative_to(work))
    weights = work / "sp_small" / "model.safetensors"
    if weights.exists():
        data, piece = weights.read_bytes(), 15 * 2**20
        for i in range(0, len(data), piece):
            (out / f"small_model.safetensors.{i // piece:02d}").write_bytes(data[i:i + piece])


if __name__ == "__main__":
    main()
