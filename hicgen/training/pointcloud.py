"""The point-cloud training task (paper 004): data, noise, losses and checkpoint config for the generic trainer.

Data: the whole dataset file is read into memory as an EventBatch (flat columns, ~13 bytes per particle);
events without particles are dropped. A seeded permutation holds out `val_fraction` of the events (at most
`max_val_events`) for validation. Normalisation constants, the 'other' PDG ids and the centrality
calibration come from the training split.

Batches: epoch k = s // (n_train // batch_size) draws a permutation of the training events; it is cut into
groups of BUCKET_BATCHES batches, each group sorted by multiplicity (events of similar size share a batch,
so padding and the attention cost ~ sum N^2 stay small), and the batches are visited in a random order.
Every event is used once per epoch, so the objective is unchanged. Rank r of W takes the r-th of W equal
parts of the global batch. Every event draws its diffusion
times (t_event, t_particle ~ U(0, t_max)) and its noise from its own generator seeded by
(seed, step, event index), so a batch is the same whatever the number of ranks, and a resumed run draws
exactly what the uninterrupted one would. Validation batches use fixed seeds (step = -1).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hicgen import __version__
from hicgen.checkpoint import file_sha256, load_state, read_checkpoint
from hicgen.data.batch import EventBatch
from hicgen.data.centrality import Centrality
from hicgen.data.dataset import DatasetReader
from hicgen.data.features import event_plane_angle
from hicgen.data.transforms import EVENT_DIM, NUM_FEATURES, PointCloudTransforms, usable_events
from hicgen.diffusion.schedules import CosineSchedule, noisy, target, x0_from_output
from hicgen.errors import InputError
from hicgen.models import POINTCLOUD_KIND, build_pointcloud_models, pointcloud_config
from hicgen.training.config import PointCloudConfig
from hicgen.training.losses import event_plane_loss, event_v_loss, particle_v_loss
from hicgen.training.trainer import batch_to, item_generator


BUCKET_BATCHES = 16  # batches per multiplicity-sorting group


@dataclass
class PointCloudBatch:
    """One rank's batch. Particle branch: e (B, E) condition, x (B, N, F), mask (B, N), t_particle (B,),
    eps_particle like x, psi2 (B,) [rad]. Event branch: e_event (Be, E) = e plus extra event vectors
    (Be = event_batch_factor x B in training), t_event (Be,), eps_event like e_event."""

    e_event: torch.Tensor
    e: torch.Tensor
    x: torch.Tensor
    mask: torch.Tensor
    t_event: torch.Tensor
    t_particle: torch.Tensor
    eps_event: torch.Tensor
    eps_particle: torch.Tensor
    psi2: torch.Tensor


def event_noise(seed: int, step: int, index: int, n_particles: int, t_max: float) -> tuple[torch.Tensor, ...]:
    """(t_event, t_particle, eps_event (E,), eps_particle (n, F)) of one event, from its own generator."""
    gen = item_generator(seed, step, index)
    times = torch.rand(2, generator=gen) * t_max
    return times[0], times[1], torch.randn(EVENT_DIM, generator=gen), torch.randn(n_particles, NUM_FEATURES, generator=gen)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class PointCloudTask:
    """Task protocol of hicgen.training.trainer for the two-branch point-cloud model."""

    def __init__(self, config: PointCloudConfig, data: str | os.PathLike, init_from: str | os.PathLike | None = None) -> None:
        self.config = config
        self.schedule = CosineSchedule()
        self.data_path = Path(data)
        with DatasetReader(self.data_path) as reader:
            stop = min(len(reader), config.max_events) if config.max_events else len(reader)
            batch = usable_events(reader.read(0, stop))
            self.data_attrs = {k: _jsonable(v) for k, v in reader.attrs.items()}
        missing = [c for c in ("b", "ncoll", "npart", "mult", "mean_pt", "sum_pt", "q2x", "q2y", "mean_eta", "mean_phi") if c not in batch.events]
        if missing:
            raise InputError(f"dataset '{data}' lacks event columns {missing}; make it with 'hicgen truth'")
        n = len(batch)
        n_val = min(config.max_val_events, max(1, int(round(config.val_fraction * n))))
        if n - n_val < config.batch_size:
            raise InputError(
                f"dataset '{data}' has {n} usable events: too few for --batch-size {config.batch_size} plus {n_val} "
                "validation events; use a larger file or a smaller batch"
            )
        perm = np.random.default_rng(config.seed).permutation(n)
        self.train_events = batch.select(np.sort(perm[n_val:]))
        self.val_events = batch.select(np.sort(perm[:n_val]))
        self.transforms = PointCloudTransforms.fit(self.train_events, self.data_attrs.get("eta_max"), self.data_attrs.get("pt_min"))
        self._train_vectors = self.transforms.encode_events(self.train_events.events)
        self.centrality = Centrality.fit(self.train_events.events["b"], self.train_events.events["mult"])
        self.architecture = config.architecture(self.transforms.phi_period, EVENT_DIM, NUM_FEATURES, self.transforms.phi_abs_period)
        self.init_from = None
        self._init_tensors = None
        if init_from is not None:
            self._init_tensors, source = read_checkpoint(init_from, expected_kind=POINTCLOUD_KIND)
            self.init_from = {"path": str(init_from), "tensors_sha256": source["tensors_sha256"]}
        self.data_sha256 = file_sha256(self.data_path)

    # -- models ---------------------------------------------------------------------------------------
    def build_models(self) -> dict[str, nn.Module]:
        models = build_pointcloud_models(self.architecture)
        if self._init_tensors is not None:
            for name, model in models.items():
                load_state(model, self._init_tensors, name, where=f"fine-tuning start {self.init_from['path']}")
        return models

    def param_groups(self, models: dict[str, nn.Module]) -> list[dict]:
        """PET body at lr * body_lr_scale (or frozen), everything else at lr."""
        body = list(models["particle"].body.parameters())
        if self.config.freeze_body:
            for p in body:
                p.requires_grad_(False)
        body_ids = {id(p) for p in body}
        rest = [p for m in models.values() for p in m.parameters() if id(p) not in body_ids]
        groups = [{"params": rest, "lr_scale": 1.0}]
        if not self.config.freeze_body:
            groups.append({"params": body, "lr_scale": self.config.body_lr_scale})
        return groups

    # -- data -----------------------------------------------------------------------------------------
    def make_batch(self, events: EventBatch, index: np.ndarray, step: int) -> PointCloudBatch:
        sub = events.select(index)
        e, x, mask = self.transforms.encode_batch(sub)
        draws = [event_noise(self.config.seed, step, int(i), int(c), self.schedule.t_max) for i, c in zip(index, sub.multiplicity)]
        eps_particle = torch.zeros_like(x)
        for row, d in enumerate(draws):
            eps_particle[row, : d[3].shape[0]] = d[3]
        psi2 = event_plane_angle(np.asarray(sub.events["q2x"], dtype=np.float64), np.asarray(sub.events["q2y"], dtype=np.float64))
        return PointCloudBatch(
            e_event=e, e=e, x=x, mask=mask, t_event=torch.stack([d[0] for d in draws]), t_particle=torch.stack([d[1] for d in draws]),
            eps_event=torch.stack([d[2] for d in draws]), eps_particle=eps_particle, psi2=torch.from_numpy(psi2).float(),
        )

    def global_batch_indices(self, step: int) -> np.ndarray:
        """Training-event indices of the global batch of `step` (see the module docstring)."""
        size = self.config.batch_size
        per_epoch = len(self.train_events) // size
        epoch, pos = divmod(step, per_epoch)
        rng = np.random.default_rng([self.config.seed, epoch])
        perm = rng.permutation(len(self.train_events))[: per_epoch * size]
        # Multiplicity buckets: sort each group of BUCKET_BATCHES batches by multiplicity, so events of
        # similar size share a batch (less padding, attention cost ~ sum N^2); batch order is shuffled.
        mult = self.train_events.multiplicity
        groups = [g[np.argsort(mult[g], kind="stable")] for g in np.array_split(perm, max(1, per_epoch // BUCKET_BATCHES))]
        batches = np.concatenate(groups).reshape(per_epoch, size)
        return batches[rng.permutation(per_epoch)[pos]]

    def train_batch(self, step: int, rank: int = 0, world: int = 1) -> PointCloudBatch:
        index = self.global_batch_indices(step)
        share = len(index) // world
        batch = self.make_batch(self.train_events, index[rank * share : (rank + 1) * share], step)
        extra = self.config.batch_size * (self.config.event_batch_factor - 1)
        if extra:
            # More event vectors for the cheap event branch: drawn with replacement, keyed by step.
            n_train = len(self.train_events)
            picks = np.random.default_rng([self.config.seed, step, 1]).integers(0, n_train, extra)
            lo, hi = rank * extra // world, (rank + 1) * extra // world
            gens = [item_generator(self.config.seed, step, n_train + j) for j in range(lo, hi)]
            t = torch.stack([torch.rand(1, generator=g)[0] for g in gens]) * self.schedule.t_max
            eps = torch.stack([torch.randn(EVENT_DIM, generator=g) for g in gens])
            batch.e_event = torch.cat([batch.e_event, self._train_vectors[picks[lo:hi]]])
            batch.t_event = torch.cat([batch.t_event, t])
            batch.eps_event = torch.cat([batch.eps_event, eps])
        return batch

    def val_batches(self) -> Iterator[PointCloudBatch]:
        """The validation events in batches of eval_batch_size, with fixed noise (made on the fly)."""
        n_val, size = len(self.val_events), self.config.eval_batch_size
        for start in range(0, n_val, size):
            yield self.make_batch(self.val_events, np.arange(start, min(start + size, n_val)), -1)

    def to_device(self, batch: PointCloudBatch, device: torch.device) -> PointCloudBatch:
        return batch_to(batch, device)

    # -- objective ------------------------------------------------------------------------------------
    def loss(self, models, batch: PointCloudBatch, step: int) -> dict[str, torch.Tensor]:
        cfg, sched = self.config, self.schedule
        z_event = noisy(sched, batch.e_event, batch.t_event, batch.eps_event)
        event = event_v_loss(models["event"](z_event, batch.t_event), target(sched, batch.e_event, batch.t_event, batch.eps_event))
        z_part = noisy(sched, batch.x, batch.t_particle, batch.eps_particle)
        v_part = models["particle"](z_part, batch.t_particle, batch.e, batch.mask)
        particle = particle_v_loss(v_part, target(sched, batch.x, batch.t_particle, batch.eps_particle), batch.mask)
        x0 = x0_from_output(sched, z_part.float(), batch.t_particle, v_part.float())
        pt, phi = self.transforms.physical_pt_phi(x0)
        ep, ep_mean = event_plane_loss(pt.detach(), phi, batch.mask, batch.psi2, batch.t_particle, cfg.ep_loss_t_max)
        total = cfg.event_loss_weight * event + cfg.particle_loss_weight * particle
        if cfg.ep_loss_weight > 0:
            total = total + cfg.ep_loss_weight * ep
        return {"loss": total, "event": event.detach(), "particle": particle.detach(), "ep": ep_mean}

    # -- checkpoint -----------------------------------------------------------------------------------
    def checkpoint_config(self, summary: dict) -> dict:
        provenance = {
            "data": str(self.data_path.resolve()), "data_sha256": self.data_sha256,
            "data_attrs": {k: v for k, v in self.data_attrs.items() if isinstance(v, (str, int, float, bool, list))},
            "train_events": len(self.train_events), "val_events": len(self.val_events), "init_from": self.init_from,
            "hicgen_version": __version__, "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **summary,
        }
        return pointcloud_config(self.architecture, self.transforms, self.centrality, self.schedule,
                                 training=self.config.to_dict(), provenance=provenance)
