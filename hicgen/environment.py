"""What this installation can do: library versions, device, precision support, shipped models."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def best_device() -> str:
    """'cuda' when a CUDA device is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def shipped_models(weights_dir: Path = WEIGHTS_DIR) -> list[dict[str, str]]:
    """Checkpoints under weights/: one folder each with a config.json."""
    models = []
    for config in sorted(weights_dir.glob("*/config.json")):
        try:
            kind = json.loads(config.read_text()).get("kind", "unknown")
        except (OSError, json.JSONDecodeError):
            kind = "unreadable config"
        models.append({"name": config.parent.name, "kind": kind, "path": str(config.parent)})
    return models


def environment_report() -> dict[str, Any]:
    """Versions, device and shipped models as plain data (for `hicgen info`)."""
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": best_device(),
        "cuda available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        env["bf16 supported"] = torch.cuda.is_bf16_supported()
    else:
        env["bf16 supported"] = "cpu autocast only"
    env["cpu threads"] = torch.get_num_threads()
    for dist in ("numpy", "h5py", "pyhepmc", "uproot", "awkward", "pythia8mc", "fastjet", "matplotlib"):
        env[dist] = _version(dist)
    return {"environment": env, "models": shipped_models(), "weights_dir": str(WEIGHTS_DIR)}
