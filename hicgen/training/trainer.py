"""The generic training loop shared by every hicgen model (point-cloud, spectra).

A model plugs in through a small *task* object (see `Task`):

    config: TrainConfig                      steps, batch, optimiser, EMA, ... (a subclass adds model fields)
    build_models() -> dict[str, nn.Module]   freshly initialised networks, e.g. {'event': ..., 'particle': ...}
    param_groups(models) -> list[dict]       optimiser groups; a group may carry 'lr_scale' (default: all, scale 1)
    train_batch(step, rank, world) -> batch  this rank's share of the global batch of `step`; must depend on
                                             (step, rank, world) only, so --resume and DDP need no loader state
    val_batches() -> Iterable[batch]         a fixed validation set (same noise every time, so losses compare)
    to_device(batch, device) -> batch
    loss(models, batch, step) -> dict        'loss' (scalar to minimise, a mean over this rank's events so the
                                             DDP average equals the full-batch loss) plus any scalars to log
    checkpoint_config(summary) -> dict       config.json of the checkpoint (kind, architecture, ...); `summary`
                                             has steps, wall_time_s, best_val_loss, world_size, device

`train(task, out_dir, ...)` then runs: Lion/AdamW with cosine LR and warm-up, gradient clipping, EMA
weights, bf16 autocast on CUDA, validation with the EMA weights every `val_every` steps saving the best
as the checkpoint (out_dir/model.safetensors + config.json, EMA weights), the full training state every
`state_every` steps (out_dir/train_state/: raw and EMA weights, optimiser moments, step, best loss, RNG;
safetensors + JSON, no pickle) for `resume=True`, and DDP when launched by torchrun (WORLD_SIZE > 1:
gloo on CPU, nccl on CUDA; rank 0 alone logs and writes; per-rank seed offset for the global RNG).
Ctrl-C or SIGTERM (a batch system's time limit) stops the run after its current step with the training state of
that step saved, so `resume=True` goes on from there as if it had not stopped (with DDP the ranks agree on the stop
at the next `log_every` step); the summary then has interrupted = True.
Log lines go to out_dir/train.log and, on rank 0, to a rich progress display.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hicgen.checkpoint import save_checkpoint, split_tensors, write_json, write_tensors
from hicgen.engine import runtime
from hicgen.engine.stopping import stop_on_signals, stop_requested
from hicgen.errors import CheckpointError
from hicgen.training.config import TrainConfig
from hicgen.training.optim import cosine_lr, make_optimizer

STATE_DIR = "train_state"
LOG_FILE = "train.log"


class Task(Protocol):
    """What a model provides to the generic loop (see the module docstring)."""

    config: TrainConfig

    def build_models(self) -> dict[str, nn.Module]: ...
    def param_groups(self, models: Mapping[str, nn.Module]) -> list[dict]: ...
    def train_batch(self, step: int, rank: int, world: int) -> Any: ...
    def val_batches(self) -> Iterable[Any]: ...
    def to_device(self, batch: Any, device: torch.device) -> Any: ...
    def loss(self, models: Mapping[str, nn.Module], batch: Any, step: int) -> dict[str, torch.Tensor]: ...
    def checkpoint_config(self, summary: dict) -> dict: ...


class TaskModule(nn.Module):
    """All of a task's networks in one module whose forward is the task loss (what DDP wraps)."""

    def __init__(self, task: Task, models: dict[str, nn.Module]) -> None:
        super().__init__()
        self.task = task
        self.models = nn.ModuleDict(models)

    def forward(self, batch: Any, step: int) -> dict[str, torch.Tensor]:
        return self.task.loss(self.models, batch, step)


def item_generator(seed: int, step: int, index: int) -> torch.Generator:
    """A CPU generator of its own for item `index` (event, record) at `step` (-1 = validation): draws keyed
    by (seed, step, index) make a batch independent of the number of ranks and reproducible on resume."""
    key = np.random.SeedSequence([seed, 0 if step < 0 else 1, max(step, 0), index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(key) & ((1 << 63) - 1))


def batch_to(batch: Any, device: torch.device) -> Any:
    """A dataclass, dict, list or tuple of tensors moved to `device` (non-blocking), same structure."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch):
        return type(batch)(**{f.name: batch_to(getattr(batch, f.name), device) for f in dataclasses.fields(batch)})
    if isinstance(batch, dict):
        return {k: batch_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(batch_to(v, device) for v in batch)
    return batch


def _dist_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the torchrun environment (0, 0, 1 when not distributed)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class WeightAverage:
    """The EMA update of one model's state: `ema` (state_dict keys -> tensors) moves towards the live parameters
    and buffers. The floating-point tensors go through one multi-tensor lerp (a few kernel launches per step,
    where a loop over ~340 tensors of the `small` UNet launched one each); integer buffers are copied."""

    def __init__(self, ema: dict[str, torch.Tensor], model: nn.Module) -> None:
        live = {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}
        pairs = [(ema[key], live[key]) for key in ema]
        self.float_pairs = ([e for e, v in pairs if v.dtype.is_floating_point], [v for e, v in pairs if v.dtype.is_floating_point])
        self.other_pairs = [(e, v) for e, v in pairs if not v.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        if self.float_pairs[0]:
            torch._foreach_lerp_(self.float_pairs[0], self.float_pairs[1], 1 - decay)
        for e, v in self.other_pairs:
            e.copy_(v)


def compile_models(models: Mapping[str, nn.Module]) -> None:
    """torch.compile each network in place (hicgen.engine.runtime.COMPILE_BACKEND), so parameter names, state dicts
    and the EMA pairs stay those of the eager modules."""
    for model in models.values():
        model.compile(backend=runtime.COMPILE_BACKEND)


def step_autocast(device: torch.device, bf16: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """The autocast context of the training step: bf16 on CUDA when asked, else none."""
    if device.type == "cuda" and bf16:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def training_step(module: nn.Module, batch: Any, step: int, optimizer: torch.optim.Optimizer,
                  averages: Iterable[WeightAverage], cfg: TrainConfig, autocast: Callable[[], contextlib.AbstractContextManager],
                  mark: Callable[[str], None] = lambda phase: None) -> dict[str, torch.Tensor]:
    """One optimiser step of the loop on this rank's `batch`: the task loss under autocast, backward, gradient
    clipping, optimiser step, EMA update (warm-up decay min(d, (1+s)/(10+s))). Returns the loss terms as device
    tensors (reading them would synchronise). mark(phase) is called after 'forward', 'backward', 'clip',
    'optimizer' and 'ema' (benchmarks/train_step.py counts the operations of each phase with it)."""
    with autocast():
        losses = module(batch, step)
    mark("forward")
    losses["loss"].backward()
    mark("backward")
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
    mark("clip")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    mark("optimizer")
    decay = min(cfg.ema_decay, (1 + step) / (10 + step))
    for average in averages:
        average.update(decay)
    mark("ema")
    return losses


def _log(path: Path | None, line: str, console) -> None:
    if path is not None:
        with open(path, "a") as handle:
            handle.write(line + "\n")
    if console is not None:
        console.log(line, highlight=False)


def save_train_state(directory: Path, models: dict[str, nn.Module], ema: dict[str, dict[str, torch.Tensor]],
                     optimizer: torch.optim.Optimizer, meta: dict) -> None:
    """Everything --resume needs, as safetensors (tensors) + JSON (numbers): no pickle."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        tensors.update({f"model.{name}.{k}": v for k, v in model.state_dict().items()})
        tensors.update({f"ema.{name}.{k}": v for k, v in ema[name].items()})
    opt = optimizer.state_dict()
    opt_meta: dict[str, dict[str, Any]] = {}
    for pid, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{key}"] = value
            else:
                opt_meta.setdefault(str(pid), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    digest = write_tensors(directory / "state.safetensors", tensors)
    write_json(directory / "state.json", {**meta, "optimizer_groups": opt["param_groups"], "optimizer_scalars": opt_meta, "sha256": digest})


def load_train_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata written by save_train_state, hash-checked."""
    from safetensors.torch import load_file

    from hicgen.checkpoint import file_sha256

    meta_path, tensor_path = directory / "state.json", directory / "state.safetensors"
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"no training state in '{directory}' to resume from (train without --resume first)")
    meta = json.loads(meta_path.read_text())
    if file_sha256(tensor_path) != meta.get("sha256"):
        raise CheckpointError(f"training state '{tensor_path}' is corrupted (sha256 mismatch); resume is not possible")
    return load_file(str(tensor_path)), meta


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, device) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value.to(device)
    for pid, scalars in meta.get("optimizer_scalars", {}).items():
        state.setdefault(int(pid), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer_groups"]})


def _outcome_settings(config: dict, kind: type[TrainConfig]) -> dict | None:
    """The settings a resumed run must share with the interrupted one: all but how the step is executed, with the
    defaults of fields added since the state was saved filled in (None when the saved config no longer parses)."""
    try:
        full = kind.from_dict(config).to_dict()
    except (TypeError, ValueError):
        return None
    return {k: v for k, v in full.items() if k != "compile"}


def _reduce_mean(values: dict[str, float], world: int, device) -> dict[str, float]:
    if world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist())}


def evaluate(task: Task, models: Mapping[str, nn.Module], device: torch.device, autocast) -> dict[str, float]:
    """Mean of each loss term over the task's validation batches (models in eval mode, no grad)."""
    totals: dict[str, float] = {}
    count = 0
    for model in models.values():
        model.eval()
    with torch.no_grad(), autocast():
        for batch in task.val_batches():
            out = task.loss(models, task.to_device(batch, device), -1)
            for key, value in out.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            count += 1
    return {k: v / max(count, 1) for k, v in totals.items()}


def train(task: Task, out_dir: str | os.PathLike, device: str | torch.device = "cpu", resume: bool = False,
          progress: bool = True) -> dict:
    """Run (or resume) training of `task`; returns the summary (steps, wall_time_s, best_val_loss, ...)."""
    cfg = task.config
    rank, local_rank, world = _dist_info()
    device = torch.device(device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of ranks {world}")
    out_dir = Path(out_dir)
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / LOG_FILE if is_main else None

    torch.manual_seed(cfg.seed)  # identical initialisation on every rank
    models = {name: m.to(device) for name, m in task.build_models().items()}
    eval_models = {name: m.to(device) for name, m in task.build_models().items()}
    optimizer = make_optimizer(cfg.optimizer, task.param_groups(models), cfg.lr, cfg.betas, cfg.weight_decay,
                               fused=device.type == "cuda")
    ema = {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in models.items()}
    start_step, best_val, wall_before = 0, float("inf"), 0.0
    torch.manual_seed(cfg.seed + 1000 * rank)  # per-rank stream for anything drawing from the global RNG

    if resume:
        tensors, meta = load_train_state(out_dir / STATE_DIR)
        if _outcome_settings(meta.get("config") or {}, type(cfg)) != _outcome_settings(cfg.to_dict(), type(cfg)):
            raise CheckpointError(f"the training state in '{out_dir}' was made with another config; resume with the same settings")
        for name, model in models.items():
            model.load_state_dict(split_tensors(tensors, f"model.{name}"))
            ema[name] = {k: v.to(device) for k, v in split_tensors(tensors, f"ema.{name}").items()}
        _restore_optimizer(optimizer, tensors, meta, device)
        torch.set_rng_state(tensors["rng.torch"])
        start_step, best_val, wall_before = int(meta["step"]), float(meta["best_val_loss"]), float(meta["wall_time_s"])

    averages = {name: WeightAverage(ema[name], model) for name, model in models.items()}
    if cfg.compile:
        compile_models(models)
    module: nn.Module = TaskModule(task, models)
    if world > 1:
        module = nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = step_autocast(device, cfg.bf16)

    console = progress_bar = None
    if is_main and progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(stderr=True)
        progress_bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
    n_params = sum(p.numel() for m in models.values() for p in m.parameters())
    _log(log_path, f"{'resume' if resume else 'start'} step {start_step}/{cfg.steps} on {device} x{world}, "
         f"{n_params:,} parameters, config {json.dumps(cfg.to_dict())}", None)

    t0 = time.perf_counter()
    summary: dict[str, Any] = {}

    def make_summary(step: int) -> dict:
        return {"steps": step, "wall_time_s": round(wall_before + time.perf_counter() - t0, 2), "best_val_loss": best_val,
                "world_size": world, "device": str(device), "parameters": n_params}

    def save_state(done: int) -> None:
        if is_main:
            save_train_state(out_dir / STATE_DIR, models, ema, optimizer, {
                "step": done, "best_val_loss": best_val, "wall_time_s": make_summary(done)["wall_time_s"],
                "config": cfg.to_dict(),
            })
        if world > 1:
            dist.barrier()

    bar = progress_bar.add_task("", total=cfg.steps, completed=start_step) if progress_bar else None
    stopped_at = None
    with progress_bar or nullcontext(), stop_on_signals():
        running: dict[str, float] = {}
        window = 0
        for step in range(start_step, cfg.steps):
            lr = cosine_lr(step, cfg.lr, cfg.steps, cfg.warmup_steps, cfg.min_lr_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            for model in models.values():
                model.train()
            batch = task.to_device(task.train_batch(step, rank, world), device)
            losses = training_step(module, batch, step, optimizer, averages.values(), cfg, autocast)
            for key, value in losses.items():  # summed on the device: no host-device synchronisation per step
                running[key] = running.get(key, 0.0) + value.detach().float()
            window += 1
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                means = _reduce_mean({k: float(v) / window for k, v in running.items()}, world, device)
                running, window = {}, 0
                elapsed = time.perf_counter() - t0
                text = " ".join(f"{k} {v:.4f}" for k, v in means.items())
                _log(log_path, f"step {done}/{cfg.steps} lr {lr:.2e} {text} ({(done - start_step) / elapsed:.2f} steps/s)", None)
                if progress_bar:
                    progress_bar.update(bar, completed=done, description=f"loss {means['loss']:.4f}")
            if done % cfg.val_every == 0 or done == cfg.steps:
                if is_main:
                    for name, model in eval_models.items():
                        model.load_state_dict(ema[name])
                    val = evaluate(task, eval_models, device, autocast)
                    improved = val["loss"] < best_val
                    best_val = min(best_val, val["loss"])
                    text = " ".join(f"{k} {v:.4f}" for k, v in val.items())
                    _log(log_path, f"validation step {done}: {text}{' (best, saved)' if improved else ''}", console)
                    if improved:
                        save_checkpoint(out_dir, eval_models, task.checkpoint_config(make_summary(done)))
                best_val = _broadcast_float(best_val, world, device)
            saved = done % cfg.state_every == 0 or done == cfg.steps
            if saved:
                save_state(done)
            if done < cfg.steps and _stop_agreed(done, cfg.log_every, world, device):
                if not saved:
                    save_state(done)
                stopped_at = done
                break
        summary = make_summary(stopped_at or cfg.steps)
    if stopped_at is not None:
        summary["interrupted"] = True
        _log(log_path, f"stopped by a signal after step {stopped_at}/{cfg.steps}, its training state saved: go on with "
             "--resume", console)
    if is_main:
        write_json(out_dir / "train_summary.json", summary)
        if stopped_at is None:
            _log(log_path, f"done: {summary['steps']} steps in {summary['wall_time_s']:.1f} s, best validation loss "
                 f"{best_val:.4f}", console)
    return summary


def _stop_agreed(done: int, every: int, world: int, device) -> bool:
    """Whether a signal asked the run to stop after step `done`: at once in one process; with DDP at every
    `every`-th step, when any rank was asked (the ranks must leave the loop at the same step)."""
    if world == 1:
        return stop_requested()
    if done % every:
        return False
    flag = torch.tensor([float(stop_requested())], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _broadcast_float(value: float, world: int, device) -> float:
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())
