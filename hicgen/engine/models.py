"""Which checkpoint a run uses: an explicit folder, or the shipped model for the collision system."""

from __future__ import annotations

import json
from pathlib import Path

from hicgen.environment import WEIGHTS_DIR
from hicgen.errors import CheckpointError, InputError

POINTCLOUD_KIND = "pointcloud"


def model_system(config: dict) -> str | None:
    """The collision system a point-cloud checkpoint was trained on (from its data provenance), if recorded."""
    return config.get("provenance", {}).get("data_attrs", {}).get("system")


def model_sqrt_s(config: dict) -> float | None:
    """sqrt(s_NN) [GeV] of the training data, if recorded."""
    value = config.get("provenance", {}).get("data_attrs", {}).get("sqrt_s")
    return None if value is None else float(value)


def default_model(system: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The shipped point-cloud checkpoint for `system`: weights/<system lower-case>/ if it is one, else the
    first folder under weights/ whose config says it was trained on `system`."""
    candidates = []
    for config_path in sorted(weights_dir.glob("*/config.json")):
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if config.get("kind") == POINTCLOUD_KIND and model_system(config) == system:
            candidates.append(config_path.parent)
    preferred = [c for c in candidates if c.name.lower() == system.lower()]
    if preferred or candidates:
        return (preferred or candidates)[0]
    raise CheckpointError(
        f"no shipped model for {system} under '{weights_dir}'; train one with 'hicgen train' and pass it with --model"
    )


def check_model_system(config: dict, system: str, path: Path) -> None:
    """CheckpointError when the checkpoint is no point-cloud model; InputError when it records a different
    collision system than the one asked for."""
    if config.get("kind") != POINTCLOUD_KIND:
        raise CheckpointError(f"model '{path}' is a '{config.get('kind')}' checkpoint; hicgen run needs a '{POINTCLOUD_KIND}' one (e.g. weights/oo)")
    trained = model_system(config)
    if trained is not None and trained != system:
        raise InputError(f"model '{path}' was trained on {trained}, not {system}; give --system {trained} or another --model")
