"""`hicgen train` and `hicgen finetune`: train the point-cloud model on an event dataset, or the spectra model
(`--model spectra`) on a `hicgen truth hydro` file.

Multi-GPU / multi-node: launch the same command with torchrun, e.g.
    torchrun --nproc-per-node 4 -m hicgen train --data oo.h5 --out weights/oo --preset base
"""

from __future__ import annotations

from pathlib import Path

import typer

from hicgen.cli.app import app, parse_choice, parse_count
from hicgen.errors import InputError, OutputExistsError


def _device(text: str | None) -> str:
    import torch

    from hicgen.environment import best_device

    device = text or best_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} asked for, but no CUDA device is usable here; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise InputError(f"--device must be 'cpu', 'cuda' or 'cuda:N', got '{device}'")
    return device


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    from hicgen.training.trainer import STATE_DIR

    if resume:
        if not (out / STATE_DIR / "state.json").is_file():
            raise InputError(f"--resume: '{out}' holds no training state ({STATE_DIR}/state.json); start without --resume")
        return
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder '{out}' exists and is not empty; refusing to overwrite it (use --overwrite, or --resume to continue)")
    if not out.parent.is_dir():
        raise InputError(f"cannot write '{out}': folder '{out.parent}' does not exist (create it first)")


MODELS = ("pointcloud", "spectra")


def _config_class(model: str):
    if model == "spectra":
        from hicgen.spectra.task import SpectraConfig

        return SpectraConfig
    from hicgen.training.config import PointCloudConfig

    return PointCloudConfig


def _presets(model: str) -> dict[str, dict]:
    if model == "spectra":
        from hicgen.spectra.task import SPECTRA_PRESETS

        return SPECTRA_PRESETS
    from hicgen.training.config import PRESETS

    return PRESETS


def _config(base: dict, config_file: Path | None, overrides: dict, model: str = "pointcloud"):
    from hicgen.training.config import load_config_file

    fields = dict(base)
    if config_file is not None:
        if not config_file.is_file():
            raise InputError(f"--config file '{config_file}' does not exist")
        try:
            fields.update(load_config_file(config_file))
        except ValueError as exc:
            raise InputError(f"--config '{config_file}': {exc}") from None
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return _config_class(model).from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise InputError(f"training config: {exc}") from None


def _common_overrides(steps: str | None, batch_size: int | None, lr: float | None, seed: int | None, max_events: str | None) -> dict:
    return {
        "steps": parse_count(steps, "--steps") if steps else None, "batch_size": batch_size, "lr": lr, "seed": seed,
        "max_events": parse_count(max_events, "--max-events") if max_events else None,
    }


def _resolve_config(out: Path, resume: bool, base: dict, config_file: Path | None, common: dict, extra: dict | None = None,
                    model: str = "pointcloud"):
    """The run's config: base < file < options, or with --resume the saved one; options given with --resume must
    agree with it (the same command goes on), and any that would change it are refused."""
    import dataclasses
    import json

    from hicgen.training.trainer import STATE_DIR

    overrides = {**common, **(extra or {})}
    if not resume:
        return _config(base, config_file, overrides, model)
    saved = json.loads((out / STATE_DIR / "state.json").read_text())["config"]
    known = {f.name for f in dataclasses.fields(_config_class(model))}
    if set(saved) - known:
        other = next(m for m in MODELS if m != model)
        raise InputError(f"--resume: the run in '{out}' is not a --model {model} run; resume it with --model {other}")
    run = _config(saved, None, {}, model)
    asked = _config(saved, config_file, overrides, model).to_dict()
    changed = [f"{k} (saved {v!r}, given {asked[k]!r})" for k, v in run.to_dict().items() if asked[k] != v]
    if changed:
        raise InputError(f"--resume continues the run saved in '{out}' with its own settings, and these options change "
                         f"{', '.join(changed)}; give the run's own options, or none")
    return run


def _run(task_args: dict, out: Path, device: str | None, resume: bool, progress: bool, model: str = "pointcloud") -> None:
    from hicgen.training.trainer import train

    if model == "spectra":
        from hicgen.spectra.task import SpectraTask

        task = SpectraTask(**task_args)
    else:
        from hicgen.training.pointcloud import PointCloudTask

        task = PointCloudTask(**task_args)
    summary = train(task, out, device=_device(device), resume=resume, progress=progress)
    if summary.get("interrupted"):
        typer.echo(f"hicgen: interrupted after step {summary['steps']}; its training state is saved in {out}: go on "
                   "with the same command and --resume", err=True)
        raise typer.Exit(130)
    typer.echo(
        f"trained {summary['steps']} steps in {summary['wall_time_s']:.0f} s on {summary['device']} x{summary['world_size']}; "
        f"best validation loss {summary['best_val_loss']:.4f}; checkpoint in {out}"
    )


_STEPS = typer.Option(None, "--steps", help="Optimiser steps (accepts 2e4).")
_BATCH = typer.Option(None, "--batch-size", help="Events per step over all ranks.")
_LR = typer.Option(None, "--lr", help="Peak learning rate.")
_DEVICE = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when usable).")
_CONFIG = typer.Option(None, "--config", help="Training config file (.json or .toml); see docs/model.md.")
_SEED = typer.Option(None, "--seed", help="Seed of initialisation, data order and noise.")
_MAXEV = typer.Option(None, "--max-events", help="Use at most this many events of the file.")


@app.command("train")
def train_command(
    data: Path = typer.Option(..., "--data", help="Training data: events (.h5 from 'hicgen truth angantyr') or, with --model spectra, a 'hicgen truth hydro' file."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder, e.g. weights/mymodel."),
    model: str = typer.Option("pointcloud", "--model", help="pointcloud (paper 004 events) or spectra (paper 000 UNet)."),
    config: Path = _CONFIG,
    preset: str = typer.Option("small", "--preset", help="Size preset: small (CPU) or base (GPU, paper size); spectra also has tiny."),
    steps: str = _STEPS,
    batch_size: int = _BATCH,
    lr: float = _LR,
    seed: int = _SEED,
    max_events: str = _MAXEV,
    device: str = _DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out (same schedule)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder's contents."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live progress display."),
) -> None:
    """Train the point-cloud model (event MLP + Point-Edge Transformer) or the spectra model (--model spectra)."""
    from hicgen.io.paths import check_input

    model = parse_choice(model, MODELS, "--model")
    check_input(data, "dataset")
    _check_out(out, resume, overwrite)
    presets = _presets(model)
    if preset not in presets:
        raise InputError(f"--preset for --model {model} must be one of {', '.join(presets)}, got '{preset}'")
    if model == "spectra" and max_events is not None:
        raise InputError("--max-events applies to the point-cloud model; make a smaller spectra file with 'hicgen truth hydro --events N'")
    common = _common_overrides(steps, batch_size, lr, seed, max_events)
    if model == "spectra":
        common.pop("max_events")
    cfg = _resolve_config(out, resume, presets[preset], config, common, model=model)
    _run({"config": cfg, "data": data}, out, device, resume, progress, model)


@app.command("finetune")
def finetune_command(
    source: Path = typer.Option(..., "--from", help="Checkpoint to start from, e.g. weights/oo or weights/spectra."),
    data: Path = typer.Option(..., "--data", help="Fine-tuning dataset (.h5): events (e.g. Pb-Pb) or, for a spectra checkpoint, a 'hicgen truth hydro' file."),
    out: Path = typer.Option(..., "--out", help="Checkpoint folder of the fine-tuned model."),
    config: Path = _CONFIG,
    ep_loss_weight: float = typer.Option(None, "--ep-loss-weight", help="Point-cloud: weight of the event-plane loss (paper 004 V.3); 0 = off.  [default: 1.0]"),
    freeze_body: bool = typer.Option(False, "--freeze-body", help="Point-cloud: keep the PET body fixed; train head and event branch."),
    body_lr_scale: float = typer.Option(None, "--body-lr-scale", help="Point-cloud: learning-rate factor of the PET body (e.g. 0.1)."),
    keep_species: bool = typer.Option(False, "--keep-species", help="Spectra: keep the source's particle-species table rather than fit one on --data (for a small or centrality-selected file of the same chain)."),
    steps: str = _STEPS,
    batch_size: int = _BATCH,
    lr: float = _LR,
    seed: int = _SEED,
    max_events: str = _MAXEV,
    device: str = _DEVICE,
    resume: bool = typer.Option(False, "--resume", help="Continue the fine-tuning run saved in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder's contents."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live progress display."),
) -> None:
    """Fine-tune a checkpoint on new data: a point-cloud one (e.g. O-O -> Pb-Pb) with the event-plane loss, or a
    spectra one on more or other 'hicgen truth hydro' records (its normalisation is kept)."""
    from hicgen.checkpoint import read_config
    from hicgen.io.paths import check_input

    check_input(data, "dataset")
    source_config = read_config(source)
    model = source_config["kind"]
    if model not in MODELS:
        raise InputError(f"--from '{source}' is a '{model}' checkpoint; fine-tuning needs a point-cloud or spectra one")
    _check_out(out, resume, overwrite)
    common = _common_overrides(steps, batch_size, lr, seed, max_events)
    if model == "spectra":
        given = [name for name, value in (("--ep-loss-weight", ep_loss_weight), ("--freeze-body", freeze_body or None),
                                          ("--body-lr-scale", body_lr_scale), ("--max-events", max_events)) if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: point-cloud options only, and '{source}' is a spectra model; drop them")
        common.pop("max_events")
        extra = {"species_from": "source"} if keep_species else {}
    else:
        if keep_species:
            raise InputError(f"--keep-species: a spectra option only, and '{source}' is a point-cloud model; drop it")
        if ep_loss_weight is None and not resume:  # the default of a new run; a resumed one keeps its own
            ep_loss_weight = 1.0
        extra = {"ep_loss_weight": ep_loss_weight, "freeze_body": freeze_body or None,
                 "body_lr_scale": body_lr_scale}
    base = source_config["training"]
    if model == "spectra":  # keeping the species table is this run's choice, not its source's
        base = {**base, "species_from": "data"}
    cfg = _resolve_config(out, resume, base, config, common, extra, model=model)
    _run({"config": cfg, "data": data, "init_from": source}, out, device, resume, progress, model)
