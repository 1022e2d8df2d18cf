"""Denoising networks. The point-cloud model (paper 004) is two networks in one checkpoint:

- 'event':    EventMLP, v(z_t (B, E), t (B,)) -> (B, E) on the standardised event vector;
- 'particle': PointEdgeTransformer, v(z_t (B, N, F), t (B,), cond (B, E), mask (B, N)) -> (B, N, F).

`load_pointcloud_bundle` is the checkpoint loader of kind 'pointcloud' (see hicgen.checkpoint); the
bundle it returns is what the generation engine uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hicgen.data.centrality import Centrality
from hicgen.data.transforms import PointCloudTransforms
from hicgen.diffusion.schedules import CosineSchedule, schedule_from_config
from hicgen.models.event_mlp import EventMLP, EventMLPConfig
from hicgen.models.pet import PETConfig, PointEdgeTransformer

POINTCLOUD_KIND = "pointcloud"


def build_pointcloud_models(architecture: dict) -> dict[str, nn.Module]:
    """{'event': EventMLP, 'particle': PointEdgeTransformer} from config['architecture'] (freshly initialised)."""
    return {
        "event": EventMLP(EventMLPConfig(**architecture["event"])),
        "particle": PointEdgeTransformer(PETConfig(**architecture["particle"])),
    }


def pointcloud_config(
    architecture: dict, transforms: PointCloudTransforms, centrality: Centrality | None,
    schedule: CosineSchedule | None = None, training: dict | None = None, provenance: dict | None = None,
) -> dict:
    """The config.json of a point-cloud checkpoint (hicgen.checkpoint adds format_version and tensors_sha256)."""
    from hicgen.data.species import SPECIES, species_pid
    from hicgen.data.transforms import EVENT_DIM, NUM_FEATURES
    from hicgen.diffusion.schedules import schedule_config

    return {
        "kind": POINTCLOUD_KIND,
        "event_dim": EVENT_DIM,
        "num_features": NUM_FEATURES,
        "architecture": architecture,
        "schedule": schedule_config(schedule or CosineSchedule()),
        "normalization": transforms.to_config(),
        "acceptance": {"eta_max": transforms.eta_max, "pt_min": transforms.pt_min},
        "species": {"classes": list(SPECIES), "pid": species_pid(range(len(SPECIES)), transforms.other_pid).tolist()},
        "centrality": centrality.to_config() if centrality is not None else None,
        "training": training or {},
        "provenance": provenance or {},
    }


@dataclass
class PointCloudBundle:
    """Everything needed to sample events from a point-cloud checkpoint.

    event_model(z (B, E), t (B,)) -> v (B, E); particle_model(z (B, N, F), t (B,), cond (B, E), mask (B, N)) -> v;
    schedule: CosineSchedule (v-prediction); transforms: encode/decode events and particles;
    centrality: percentiles of b and multiplicity of the training sample; config: the checkpoint config.
    """

    event_model: EventMLP
    particle_model: PointEdgeTransformer
    schedule: CosineSchedule
    transforms: PointCloudTransforms
    centrality: Centrality | None
    config: dict

    @property
    def event_dim(self) -> int:
        return int(self.config["event_dim"])

    @property
    def num_features(self) -> int:
        return int(self.config["num_features"])


def load_pointcloud_bundle(tensors: dict[str, torch.Tensor], config: dict, device: str | torch.device = "cpu") -> PointCloudBundle:
    """Checkpoint loader for kind 'pointcloud': builds the networks, loads the (EMA) weights, eval mode."""
    from hicgen.checkpoint import load_state

    models = build_pointcloud_models(config["architecture"])
    for name, model in models.items():
        load_state(model, tensors, name)
        model.to(device).eval()
    centrality = Centrality.from_config(config["centrality"]) if config.get("centrality") else None
    return PointCloudBundle(
        event_model=models["event"], particle_model=models["particle"],
        schedule=schedule_from_config(config["schedule"]),
        transforms=PointCloudTransforms.from_config(config["normalization"]),
        centrality=centrality, config=config,
    )
