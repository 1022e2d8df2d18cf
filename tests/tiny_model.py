"""A tiny, untrained point-cloud checkpoint for engine, CLI and example tests (no trained model needed).

The networks are the real ones (hicgen.models) at toy size with small random weights, so every code path
of the engine runs; the transforms and centrality calibration are fitted on toy events made here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hicgen.data.batch import EventBatch
from hicgen.data.centrality import Centrality
from hicgen.data.features import particle_event_features
from hicgen.data.transforms import EVENT_DIM, NUM_FEATURES, PointCloudTransforms

ETA_MAX, PT_MIN = 2.5, 0.15


def toy_truth(n_events: int = 200, seed: int = 0, mean_mult: float = 30.0) -> EventBatch:
    """Toy 'truth' events in |eta| < ETA_MAX, pT > PT_MIN with the dataset's event columns."""
    rng = np.random.default_rng(seed)
    b = 8.0 * np.sqrt(rng.uniform(0, 1, n_events))
    npart = np.maximum(2, rng.poisson(24 * (1 - b / 8.5))).astype(np.int32)
    mult = np.maximum(2, rng.poisson(mean_mult * npart / npart.mean()))
    offsets = np.concatenate([[0], np.cumsum(mult)])
    n = int(offsets[-1])
    particles = {
        "pt": (PT_MIN + rng.exponential(0.5, n)).astype(np.float32),
        "eta": rng.uniform(-ETA_MAX, ETA_MAX, n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "pid": rng.choice([211, -211, 321, -321, 2212, -2212], n).astype(np.int32),
    }
    events = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)
    events.update(b=b, ncoll=np.maximum(1, rng.poisson(1.5 * npart)).astype(np.int32), npart=npart)
    return EventBatch(events=events, offsets=offsets, particles=particles)


def make_tiny_checkpoint(directory: Path, system: str = "OO", seed: int = 0) -> Path:
    """Write a tiny point-cloud checkpoint folder trained on nothing; returns the folder."""
    from hicgen.checkpoint import save_checkpoint
    from hicgen.models import build_pointcloud_models, pointcloud_config

    truth = toy_truth(seed=seed)
    transforms = PointCloudTransforms.fit(truth, eta_max=ETA_MAX, pt_min=PT_MIN)
    architecture = {
        "event": {"event_dim": EVENT_DIM, "dim": 16, "num_blocks": 1, "mlp_ratio": 2.0, "time_frequencies": 4},
        "particle": {"num_features": NUM_FEATURES, "cond_dim": EVENT_DIM, "dim": 16, "num_heads": 2, "num_layers": 1,
                     "num_head_layers": 1, "num_neighbors": 4, "mlp_ratio": 2.0, "time_frequencies": 4,
                     "phi_period": transforms.phi_period},
    }
    torch.manual_seed(seed)
    models = build_pointcloud_models(architecture)
    for model in models.values():  # the zero-initialised output layers would make v = 0 everywhere
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.abs().sum() == 0:
                    param.normal_(0.0, 0.05)
    config = pointcloud_config(
        architecture, transforms, Centrality.fit(truth.events["b"], truth.events["mult"]),
        provenance={"data_attrs": {"system": system, "sqrt_s": 5360.0, "eta_max": ETA_MAX, "pt_min": PT_MIN}},
    )
    return save_checkpoint(directory, models, config)
