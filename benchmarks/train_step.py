"""Cost of one training step of the spectra model: ATen operations per phase and steps/s, eager or compiled.

    python benchmarks/train_step.py --data spectra.h5 --preset small --batch-size 64 --device cuda --compile off on

A GPU step of these small networks is bound by the host issuing kernels (docs/benchmarks.md), so the number of
operations dispatched per phase (each one a kernel launch on a GPU; counted on the first measured step with a
dispatch mode) says where the host time goes: data, forward, backward, gradient clipping, optimiser, EMA. Then
--steps steps are timed after --warmup steps (compilation happens there). The step is the trainer's own
(hicgen.training.trainer.training_step: autocast on CUDA, clip, optimiser, EMA); the optimiser is AdamW (fused on
CUDA) or Lion. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hicgen.engine.runtime import resolve_device
from hicgen.errors import InputError
from hicgen.spectra.task import SpectraTask, spectra_preset_config
from hicgen.training.optim import make_optimizer
from hicgen.training.trainer import TaskModule, WeightAverage, compile_models, step_autocast, training_step


class OperationCount(TorchDispatchMode):
    """Counts the ATen operations dispatched inside the context (views and in-place ops included)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.total += 1
        return func(*args, **(kwargs or {}))


def measure(task: SpectraTask, device: torch.device, compiled: bool, warmup: int, steps: int) -> dict:
    """Operations per phase of one step and steps/s over `steps` steps after `warmup` ones."""
    cfg = task.config
    torch.manual_seed(0)
    models = {name: m.to(device) for name, m in task.build_models().items()}
    optimizer = make_optimizer(cfg.optimizer, task.param_groups(models), cfg.lr, cfg.betas, cfg.weight_decay,
                               fused=device.type == "cuda")
    averages = [WeightAverage({k: v.detach().clone() for k, v in m.state_dict().items()}, m) for m in models.values()]
    if compiled:
        compile_models(models)
    module, autocast = TaskModule(task, models), step_autocast(device, cfg.bf16)

    def step(index: int, count: OperationCount | None = None) -> dict[str, int]:
        phases: dict[str, int] = {}
        seen = 0

        def mark(name: str) -> None:
            nonlocal seen
            if count is not None:
                phases[name], seen = count.total - seen, count.total

        batch = task.to_device(task.train_batch(index), device)
        mark("data")
        training_step(module, batch, index, optimizer, averages, cfg, autocast, mark)
        return phases

    for i in range(warmup):
        step(i)
    with OperationCount() as count:
        phases = step(warmup, count)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + 1 + i)
    sync()
    rate = steps / (time.perf_counter() - t0)
    return {"compile": compiled, "operations": phases, "operations_total": sum(phases.values()), "steps_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="'hicgen-spectra' training file")
    parser.add_argument("--preset", default="small", choices=("tiny", "small", "base"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "lion"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", nargs="+", default=["off"], choices=("on", "off"))
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens there)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # a missing or foreign file, a bad batch size, no CUDA device: one line
        device = resolve_device(args.device)
        cfg = spectra_preset_config(args.preset, batch_size=args.batch_size, optimizer=args.optimizer,
                                    target="spectrum", prediction="v")
        task = SpectraTask(cfg, args.data)
    except (InputError, ValueError) as err:
        parser.error(str(err))
    print(json.dumps({"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else
                      platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "preset": args.preset,
                      "batch_size": args.batch_size, "optimizer": args.optimizer}))
    for mode in args.compile:
        print(json.dumps(measure(task, device, mode == "on", args.warmup, args.steps)), flush=True)


if __name__ == "__main__":
    main()
