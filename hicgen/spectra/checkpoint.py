"""Spectra checkpoints: a folder with `model.safetensors` (the network, EMA weights) and `config.json`
(SpectraTask.checkpoint_config: kind 'spectra', architecture, schedule, normalisation, grids, species,
provenance). Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from hicgen.errors import CheckpointError
from hicgen.models.unet import UNet, UNetConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def unet_from_config(config: dict) -> UNet:
    """The (untrained) UNet a checkpoint config describes."""
    arch = {k: v for k, v in config["architecture"].items() if k != "name"}
    return UNet(UNetConfig(**arch))


def save_spectra_checkpoint(path: str | os.PathLike, net: torch.nn.Module, config: dict) -> Path:
    """Write `net`'s state dict and `config` into folder `path` (created if needed)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    return path


def load_spectra_checkpoint(path: str | os.PathLike) -> tuple[UNet, dict]:
    """(network with weights loaded, config) from a spectra checkpoint folder, or CheckpointError."""
    from safetensors.torch import load_file

    path = Path(path)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise CheckpointError(f"'{path}' is not a spectra checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
                              "give a folder made by 'hicgen train --model spectra'")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"'{config_file}' is not valid JSON ({exc}); the checkpoint is damaged") from None
    if config.get("kind") != "spectra":
        raise CheckpointError(f"'{path}' holds a '{config.get('kind')}' model, not a spectra model")
    net = unet_from_config(config)
    try:
        net.load_state_dict(load_file(str(weights_file)))
    except Exception as exc:  # safetensors header errors, shape mismatches
        raise CheckpointError(f"'{weights_file}' does not match its config ({exc}); the checkpoint is damaged") from None
    return net, config
