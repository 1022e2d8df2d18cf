"""Checkpoints: a folder with `model.safetensors` (tensors) and `config.json` (everything else). Never unpickled.

Tensors of several networks share one file, named '<model>.<parameter>' (e.g. 'event.out.weight',
'particle.body.embed.0.weight'); for a trained model they are the EMA weights used for sampling.
config.json holds (see docs/model.md): kind, format_version, architecture, schedule, normalization,
acceptance, species, centrality, training (the training config), provenance, and tensors_sha256, the
SHA-256 of model.safetensors, checked on every load.

Each model kind registers a loader that turns (tensors, config, device) into a bundle:
`register_kind("pointcloud", loader)`. `load_checkpoint(path, device)` returns (bundle, config).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hicgen.errors import CheckpointError

TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1

# kind -> "module:function" of a loader (tensors, config, device) -> bundle; imported when first used.
_LOADERS: dict[str, str | Callable[..., Any]] = {
    "pointcloud": "hicgen.models:load_pointcloud_bundle",
    "spectra": "hicgen.spectra.generate:load_spectra_bundle",
}


def register_kind(kind: str, loader: str | Callable[[dict[str, torch.Tensor], dict, str], Any]) -> None:
    """Make `load_checkpoint` understand checkpoints whose config says kind=`kind`."""
    _LOADERS[kind] = loader


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _state_tensors(models: Mapping[str, nn.Module | Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, model in models.items():
        state = model.state_dict() if isinstance(model, nn.Module) else model
        for key, value in state.items():
            tensors[f"{name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return tensors


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write a safetensors file atomically (temporary name, then rename); returns its SHA-256."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.part")
    save_file(dict(tensors), str(tmp), metadata=metadata)
    digest = file_sha256(tmp)
    os.replace(tmp, path)
    return digest


def json_text(value: Any, depth: int = 0) -> str:
    """JSON of `value` indented by 2 per level, with each list of plain values (numbers, strings) on one line:
    the pT edges or a species table's rows stay readable and a config.json small."""
    pad = "  " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(str(k))}: {json_text(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return "[\n" + ",\n".join(pad + json_text(v, depth + 1) for v in value) + "\n" + "  " * depth + "]"
    return json.dumps(value)


def write_json(path: Path, data: dict) -> None:
    """Write JSON (json_text) atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json_text(data) + "\n")
    os.replace(tmp, path)


def save_checkpoint(directory: str | os.PathLike, models: Mapping[str, nn.Module | Mapping[str, torch.Tensor]], config: dict) -> Path:
    """Write `models` (name -> module or state dict) and `config` into `directory` (created if needed).

    The config gets 'format_version' and 'tensors_sha256'; an existing checkpoint in the folder is
    replaced file by file, each atomically (the tensors first, so the hash in config.json is never stale
    for long; a crash in between is caught on load by the hash check).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if "kind" not in config:
        raise ValueError("checkpoint config needs a 'kind'")
    digest = write_tensors(directory / TENSORS_FILE, _state_tensors(models), {"kind": str(config["kind"])})
    write_json(directory / CONFIG_FILE, {**config, "format_version": FORMAT_VERSION, "tensors_sha256": digest})
    return directory


def read_config(directory: str | os.PathLike) -> dict:
    """The config.json of a checkpoint folder, or CheckpointError."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint '{directory}' is not a folder (give a folder such as weights/oo holding {CONFIG_FILE} and {TENSORS_FILE})")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{directory}' has no {CONFIG_FILE} (is it a hicgen checkpoint folder?)")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint config '{path}' is not readable JSON ({exc}); restore it or retrain") from None
    if not isinstance(config, dict) or "kind" not in config:
        raise CheckpointError(f"checkpoint config '{path}' has no 'kind'; it was not written by hicgen")
    if int(config.get("format_version", -1)) != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint '{directory}' has format_version {config.get('format_version')}, this hicgen reads {FORMAT_VERSION}; "
            "use the hicgen version that wrote it"
        )
    return config


def read_checkpoint(directory: str | os.PathLike, expected_kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Verified tensors (on CPU) and config of a checkpoint folder; CheckpointError when anything is off."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_config(directory)
    if expected_kind is not None and config["kind"] != expected_kind:
        raise CheckpointError(f"checkpoint '{directory}' is a '{config['kind']}' model, expected a '{expected_kind}' model")
    path = directory / TENSORS_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{directory}' has no {TENSORS_FILE}; copy the whole folder")
    digest = file_sha256(path)
    if digest != config.get("tensors_sha256"):
        raise CheckpointError(
            f"'{path}' is corrupted or does not belong to its config (sha256 {digest[:12]}..., config says "
            f"{str(config.get('tensors_sha256'))[:12]}...); download or copy the checkpoint again"
        )
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc})") from None
    return tensors, config


def split_tensors(tensors: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The state dict of model `name` from a flat '<model>.<parameter>' tensor mapping."""
    prefix = f"{name}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_state(model: nn.Module, tensors: Mapping[str, torch.Tensor], name: str, where: str = "checkpoint") -> nn.Module:
    """Load model `name`'s tensors strictly into `model`, or CheckpointError naming the mismatch."""
    state = split_tensors(tensors, name)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        detail = "; ".join(
            part for part in (
                f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected else "",
                f"shape differs for {shapes[:3]}" if shapes else "",
            ) if part
        )
        raise CheckpointError(f"{where}: '{name}' weights do not match its architecture ({detail}); the config and tensors come from different models")
    model.load_state_dict(state, strict=True)
    return model


def load_checkpoint(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict]:
    """(bundle, config) of a checkpoint folder; the bundle's models are on `device` in eval mode."""
    tensors, config = read_checkpoint(directory)
    loader = _LOADERS.get(config["kind"])
    if loader is None:
        raise CheckpointError(f"checkpoint '{directory}' is of kind '{config['kind']}', which this hicgen cannot load (known: {', '.join(_LOADERS)})")
    if isinstance(loader, str):
        module, func = loader.split(":")
        loader = getattr(importlib.import_module(module), func)
    try:
        bundle = loader(tensors, config, device)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint '{directory}' config does not describe a valid '{config['kind']}' model ({exc})") from None
    return bundle, config
