"""Training task of the spectra model for the generic trainer: data from spectra.h5, eps-prediction, VP schedule.

Data: a `hicgen truth hydro` file (format 'hicgen-spectra'): `ic` (N, 64, 64) initial entropy profiles,
`eta_s` (N,), `histogram` (N, 64, 64) Poisson-sampled counts (the target, see normalization.py) or
`spectrum` (smooth density, `target='spectrum'`, converted to expected counts per bin), `pt_edges`,
`phi_edges`, `ic_index`. Records are split into training and validation *by initial state* (all eta/s
values of one IC go to the same side), `val_fraction` of the ICs (paper: 30%), each chosen by a hash of
(`split_seed`, ic_index) so that growing the file keeps the split (split_by_ic).

Objective (paper 000, algorithm 1): k ~ Uniform{1..T}, t = k / T, eps ~ N(0, 1),
z_t = alpha_bar_k^1/2 x0 + (1 - alpha_bar_k)^1/2 eps, with VPSchedule (linear beta 0.5e-4 .. 0.01, T = 4000);
loss = |v - v_theta(z_t, IC, t, eta/s)|^2 with v = alpha eps - sigma x0 (default), or the paper's
|eps - eps_theta|^2 with `prediction='eps'`. eps-prediction recovers x0 = (z - sigma eps)/alpha, which at
alpha(1) = 4e-5 multiplies the network's eps error by 2.4e4: few-step ODE sampling then locks in clipped
garbage (measured: per-IC multiplicities off by 0.01x-3x after 1750 CPU steps); v-prediction gives x0 = alpha z -
sigma v, bounded at every t, for the same schedule.

Augmentation (`augment=True`): the chain is symmetric under reflections of the transverse plane, which act
exactly on both grids (the IC grid is centred on the origin, phi edges are symmetric about 0):
y -> -y (IC rows reversed, phi -> -phi), x -> -x (IC columns reversed, phi -> pi - phi) and their product
(rotation by pi, phi -> phi + pi). Each training record gets one of the four at random.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hicgen import __version__
from hicgen.checkpoint import file_sha256, load_state, read_checkpoint
from hicgen.diffusion.schedules import VPSchedule, noisy, schedule_config, target
from hicgen.engine.counter_rng import row_keys, uniforms
from hicgen.errors import InputError
from hicgen.training.config import TrainConfig
from hicgen.models.unet import PRESETS as UNET_PRESETS
from hicgen.models.unet import UNet, UNetConfig, preset
from hicgen.spectra.generate import drop_untrained_label_weights
from hicgen.spectra.ic_scale import training_band
from hicgen.spectra.species import species_mixture
from hicgen.spectra.normalization import (
    SpectraNormalization,
    counts_to_model,
    fit_normalization,
    ic_to_model,
    label_scale,
)
from hicgen.truth.spectra_data import bin_measure

TARGETS = ("histogram", "spectrum")


@dataclass
class SpectraRecords:
    """Training records in memory: ic (N, R, R), counts (N, P, Q) target counts per bin, eta_s (N,), ic_index (N,)."""

    ic: np.ndarray
    counts: np.ndarray
    eta_s: np.ndarray
    ic_index: np.ndarray
    pt_edges: np.ndarray
    phi_edges: np.ndarray
    attrs: dict = field(default_factory=dict)
    ic_mult: np.ndarray | None = None  # (N,) the IC's TRENTo multiplicity, where the file records it
    ic_npart: np.ndarray | None = None  # (N,) its participant number
    species_pt_dndy: np.ndarray | None = None  # (N, 3, P) the chain's pi, K, p yields per pT bin, where recorded
    species_pt_flow: np.ndarray | None = None  # (N, 3, 4, P) their flow vectors per pT bin, where recorded

    def __len__(self) -> int:
        return len(self.eta_s)


def read_spectra_file(path: str | os.PathLike, target_name: str = "histogram") -> SpectraRecords:
    """Load a 'hicgen-spectra' file whole (hicgen.truth.spectra_data.read_spectra; ~33 kB per record) or InputError."""
    from hicgen.truth.spectra_data import read_spectra

    if target_name not in TARGETS:
        raise InputError(f"target must be one of {', '.join(TARGETS)}, got '{target_name}'")
    data, attrs = read_spectra(path)
    missing = [k for k in ("ic", "eta_s", target_name, "pt_edges", "phi_edges") if k not in data]
    if missing:
        raise InputError(f"'{path}' lacks {', '.join(missing)}; give a file made by 'hicgen truth hydro'")
    values = data[target_name].astype(np.float32)
    if target_name == "spectrum":  # density -> expected counts per bin
        values = values * bin_measure(data["pt_edges"], data["phi_edges"]).astype(np.float32)
    return SpectraRecords(
        ic=data["ic"].astype(np.float32),
        counts=values,
        eta_s=data["eta_s"].astype(np.float32),
        ic_index=data["ic_index"].astype(np.int64) if "ic_index" in data else np.arange(len(values)),
        pt_edges=data["pt_edges"],
        phi_edges=data["phi_edges"],
        attrs={k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in attrs.items()},
        ic_mult=data["mult"].astype(np.float64) if "mult" in data else None,
        ic_npart=data["npart"].astype(np.float64) if "npart" in data else None,
        species_pt_dndy=data.get("species_pt_dndy"),
        species_pt_flow=data.get("species_pt_flow"),
    )


def split_by_ic(ic_index: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Record indices (train, val): each distinct IC, with all its records, is held out when a uniform hashed from
    (seed, ic_index) alone falls below `val_fraction`, so records added to a file (hicgen truth merge) do not move an
    IC between the sides and a fine-tune on the grown file validates on ICs the earlier stages did not train on.
    The share is val_fraction up to binomial scatter; with two or more ICs each side keeps at least one (on a tiny
    file that rule can move the IC of the lowest or highest hash when the file grows)."""
    unique = np.unique(ic_index)
    u = uniforms(row_keys(seed, [torch.as_tensor(unique)], "split"), 1)[:, 0].numpy()
    held = u < val_fraction
    if val_fraction > 0 and len(unique) >= 2:
        held[np.argmin(u)], held[np.argmax(u)] = True, False
    is_val = np.isin(ic_index, unique[held])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def reflect(ic: torch.Tensor, spec: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the transverse reflection `code` (B,) in {0: none, 1: y->-y, 2: x->-x, 3: both} to
    ic (B, C, R, R) [rows y, columns x] and spec (B, C, P, Q) [columns phi, symmetric edges]."""
    flip_y = ((code & 1) > 0)[:, None, None, None]
    flip_x = ((code & 2) > 0)[:, None, None, None]
    q = spec.shape[-1]
    ic = torch.where(flip_y, ic.flip(-2), ic)
    ic = torch.where(flip_x, ic.flip(-1), ic)
    # phi -> -phi: bin j -> Q-1-j; phi -> pi - phi: the same flip then a shift by half a turn.
    spec = torch.where(flip_y ^ flip_x, spec.flip(-1), spec)
    spec = torch.where(flip_x, spec.roll(q // 2, dims=-1), spec)
    return ic, spec


@dataclass
class SpectraConfig(TrainConfig):
    """Spectra model (paper 000): UNet size preset, target, data split, augmentation, plus the generic loop's fields."""

    preset: str = "small"  # UNet size: tiny | small | base (hicgen.models.unet.PRESETS)
    unet: dict = field(default_factory=dict)  # UNetConfig overrides on top of the preset
    target: str = "histogram"  # 'histogram' (Poisson counts, as the paper) or 'spectrum' (smooth, as expected counts)
    val_fraction: float = 0.3  # share of the initial states held out (paper: 70/30)
    split_seed: int = 0  # which ICs are held out
    augment: bool = True  # random transverse reflections (exact symmetries)
    prediction: str = "v"  # network output: 'v' (default) or 'eps' (paper 000); see docs/spectra.md "Diffusion"
    optimizer: str = "adamw"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 32
    eval_batch_size: int = 64
    max_val_records: int = 1024  # validation loss on at most this many held-out records
    # weight of the azimuthal Fourier modes n in flow_loss_harmonics in the loss (1: plain mean squared error)
    flow_loss_weight: float = 1.0
    flow_loss_harmonics: tuple[int, ...] = (2, 3)
    # spread each harmonic's weight over the pT rows as 1 / (its rms signal in the row)^2, mean kept, at most
    # flow_loss_relative_cap times the median row's (relative_flow_row_weights): relative errors of v_n(pT)
    flow_loss_relative: bool = False
    flow_loss_relative_cap: float = 16.0
    # particle-species table (config.json "species"): 'data' fits it on the training file (a fine-tune keeps its
    # source's where the file has no species yields); 'source' keeps a fine-tune's --from table (--keep-species)
    species_from: str = "data"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.species_from not in ("data", "source"):
            raise ValueError(f"training.species_from must be 'data' or 'source', got '{self.species_from}'")
        if self.preset not in UNET_PRESETS:
            raise ValueError(f"training.preset must be one of {', '.join(UNET_PRESETS)}, got '{self.preset}'")
        if self.target not in TARGETS:
            raise ValueError(f"training.target must be one of {', '.join(TARGETS)}, got '{self.target}'")
        if self.prediction not in ("v", "eps"):
            raise ValueError(f"training.prediction must be 'v' or 'eps', got '{self.prediction}'")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"training.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_batch_size < 1 or self.max_val_records < 0:
            raise ValueError("need eval_batch_size >= 1 and max_val_records >= 0")
        harmonics = self.flow_loss_harmonics
        if not isinstance(harmonics, (list, tuple)) or not all(isinstance(n, int) and n >= 1 for n in harmonics):
            raise ValueError(f"training.flow_loss_harmonics must be a list of positive integers such as [2, 3], got {harmonics!r}")
        self.flow_loss_harmonics = tuple(harmonics)
        if not self.flow_loss_weight > 0:
            raise ValueError(f"training.flow_loss_weight must be > 0 (1 = plain mean squared error), got {self.flow_loss_weight}")
        if not self.flow_loss_relative_cap >= 1:
            raise ValueError(f"training.flow_loss_relative_cap must be >= 1, got {self.flow_loss_relative_cap}")


# Loop settings per size; the UNet sizes themselves are hicgen.models.unet.PRESETS.
SPECTRA_PRESETS: dict[str, dict] = {
    "tiny": dict(preset="tiny", steps=2000, batch_size=16, lr=5e-4, warmup_steps=100, val_every=250),
    "small": dict(preset="small", steps=50_000, batch_size=32, lr=2e-4, warmup_steps=1000, val_every=2000, state_every=2000),
    "base": dict(preset="base", steps=200_000, batch_size=64, lr=1e-4, warmup_steps=2000, val_every=5000,
                 state_every=5000, log_every=100, ema_decay=0.9999),
}


def spectra_preset_config(name: str, **overrides) -> SpectraConfig:
    """The SpectraConfig of a size preset ('tiny', 'small', 'base') with some fields changed (None ignored)."""
    if name not in SPECTRA_PRESETS:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(SPECTRA_PRESETS)}")
    return SpectraConfig.from_dict({**SPECTRA_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})


@dataclass
class SpectraBatch:
    """One rank's batch in model space: ic (B, 1, R, R), x0 (B, 1, P, Q), label (B,), t (B,), eps like x0."""

    ic: torch.Tensor
    x0: torch.Tensor
    label: torch.Tensor
    t: torch.Tensor
    eps: torch.Tensor

    def to(self, device: torch.device) -> "SpectraBatch":
        return SpectraBatch(**{k: v.to(device, non_blocking=True) for k, v in self.__dict__.items()})

    def __len__(self) -> int:
        return len(self.label)


def record_draws(seed: int, step: int, index: int, shape: tuple[int, ...], steps: int) -> tuple[int, torch.Tensor, int]:
    """(k in 1..T, eps (shape), reflection code 0..3) of record `index` at `step`, from its own generator."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step + 1, index]).generate_state(1)[0]))
    k = int(torch.randint(1, steps + 1, (1,), generator=gen))
    code = int(torch.randint(4, (1,), generator=gen))
    return k, torch.randn(shape, generator=gen), code


def _species_file(provenance: dict) -> str | None:
    """The chain file a checkpoint's species table was fitted on, from its provenance: the file scripts/
    set_species_mixture.py or a kept table named ('species_from'), else its training file."""
    if "species_from" in provenance:
        return provenance["species_from"]
    if "data" not in provenance:
        return None
    return f"{Path(provenance['data']).name} ({provenance.get('records', '?')} records)"


class SpectraTask:
    """The spectra model as a task of the generic trainer (hicgen.training.trainer.Task): one network 'unet'.

    The global batch of step s is slice s mod E of the seeded permutation of epoch s // E of the training
    records (E = n_train // batch_size, at least 1; indices wrap when there are fewer records than a batch);
    rank r of W takes the r-th of W equal parts. Every record draws its step k, noise and reflection from
    its own generator seeded by (seed, step, record index), so batches do not depend on the number of ranks
    and a resumed run draws what the uninterrupted one would. Validation uses step = -1 (fixed draws)."""

    kind = "spectra"

    def __init__(self, config: SpectraConfig, data: str | os.PathLike, records: SpectraRecords | None = None,
                 init_from: str | os.PathLike | None = None) -> None:
        """`init_from`: a spectra checkpoint to fine-tune; its weights, architecture and normalisation are kept (the
        new records are mapped with the source's constants, so the network's inputs and outputs mean what they did)."""
        self.config = config
        self.data = Path(data)
        self.records = records if records is not None else read_spectra_file(data, config.target)
        rec = self.records
        if rec.ic.shape[1:] != rec.counts.shape[1:]:
            raise InputError(
                f"'{data}': ic grid {rec.ic.shape[1:]} differs from the spectrum grid {rec.counts.shape[1:]}; "
                "the spectra model needs both on the same grid (64 x 64)"
            )
        n_phi = rec.counts.shape[-1]
        if self.weights_flow(config) and max(config.flow_loss_harmonics, default=0) > n_phi // 2:
            raise InputError(f"flow_loss_harmonics {list(config.flow_loss_harmonics)}: '{data}' has {n_phi} phi bins, "
                             f"which resolve harmonics up to {n_phi // 2}; choose harmonics in 1..{n_phi // 2}")
        self.train_index, self.val_index = split_by_ic(rec.ic_index, config.val_fraction, config.split_seed)
        self.val_index = self.val_index[: config.max_val_records]
        if len(self.train_index) == 0:
            raise InputError(f"'{data}' has no training records after holding out {config.val_fraction:.0%} of the ICs")
        t = self.train_index
        self.init_from: dict | None = None
        self._init_tensors: dict[str, torch.Tensor] | None = None
        self.ic_band_source: dict | None = None  # the fine-tuning source's training-IC band (ic_scale)
        self.species_source: dict | None = None  # the fine-tuning source's species mixture
        self.species_source_file: str | None = None  # the chain file it was fitted on
        self.sampling_source: dict | None = None  # the fine-tuning source's measured sampler setting
        if init_from is None:
            if config.species_from == "source":
                raise InputError("training.species_from 'source' keeps a fine-tuning source's species table, and a "
                                 "run from scratch has none; use 'data' (or hicgen finetune --keep-species)")
            self.normalization = fit_normalization(rec.counts[t], rec.ic[t], rec.eta_s[t], config.target)
            self.unet_config = preset(config.preset, resolution=rec.counts.shape[-1], **config.unet)
            self.eta_s_source: set[float] = set()
        else:
            self._init_tensors, source = read_checkpoint(init_from, expected_kind=self.kind)
            _check_fits_source(source, rec, data, init_from)
            self.normalization = SpectraNormalization(**source["normalization"])
            if self.normalization.target != config.target:
                raise InputError(f"--from '{init_from}' learned target '{self.normalization.target}', the config asks for "
                                 f"'{config.target}'; fine-tune with the source's target")
            self.unet_config = UNetConfig(**{k: v for k, v in source["architecture"].items() if k != "name"})
            self.eta_s_source = {float(v) for v in source.get("eta_s_trained", [])}
            self.ic_band_source = source.get("ic_entropy_per_participant")
            self.species_source = source.get("species")
            if config.species_from == "source" and not self.species_source:
                raise InputError(f"--keep-species: '{init_from}' holds no species table to keep; drop the option "
                                 "to fit one on --data")
            self.species_source_file = _species_file(source.get("provenance", {}))
            self.sampling_source = source.get("sampling")
            self.init_from = {"path": str(init_from), "tensors_sha256": source["tensors_sha256"]}
        self.schedule = VPSchedule(prediction=config.prediction)
        norm = self.normalization
        self._ic = ic_to_model(torch.from_numpy(rec.ic), norm)[:, None]
        self._x0 = counts_to_model(torch.from_numpy(rec.counts), norm)[:, None]
        self._label = label_scale(torch.from_numpy(rec.eta_s), norm)
        self.flow_row_weights = (relative_flow_row_weights(self._x0[t], config.flow_loss_harmonics,
                                                           config.flow_loss_relative_cap)
                                 if config.flow_loss_relative else None)

    @staticmethod
    def weights_flow(config: SpectraConfig) -> bool:
        """Whether the loss weights the flow harmonics (else it is the plain mean squared error)."""
        return config.flow_loss_weight != 1.0 or config.flow_loss_relative

    # -- models ---------------------------------------------------------------------------------------
    def build_models(self) -> dict[str, nn.Module]:
        unet = UNet(self.unet_config)
        if self._init_tensors is not None:
            load_state(unet, self._init_tensors, "unet", where=f"fine-tuning start {self.init_from['path']}")
            # start from the network the source samples with (hicgen.spectra.generate.load_spectra_bundle): a label
            # feature the new records reach learns from zero, not from the source's random initialisation
            drop_untrained_label_weights(unet, sorted(self.eta_s_source), self.normalization)
        return {"unet": unet}

    def param_groups(self, models: dict[str, nn.Module]) -> list[dict]:
        return [{"params": list(models["unet"].parameters()), "lr_scale": 1.0}]

    # -- data -----------------------------------------------------------------------------------------
    def _make_batch(self, index: np.ndarray, step: int, augment: bool) -> SpectraBatch:
        shape = tuple(self._x0.shape[1:])
        draws = [record_draws(self.config.seed, step, int(i), shape, self.schedule.num_steps) for i in index]
        rows = torch.from_numpy(np.asarray(index, np.int64))
        ic, x0 = self._ic[rows], self._x0[rows]
        if augment:
            ic, x0 = reflect(ic, x0, torch.tensor([d[2] for d in draws]))
        return SpectraBatch(
            ic=ic, x0=x0, label=self._label[rows],
            t=torch.tensor([d[0] for d in draws], dtype=torch.float32) / self.schedule.num_steps,
            eps=torch.stack([d[1] for d in draws]),
        )

    def global_batch_indices(self, step: int) -> np.ndarray:
        """Training record indices of the global batch of `step` (batch_size of them)."""
        n, size = len(self.train_index), self.config.batch_size
        per_epoch = max(1, n // size)
        perm = np.random.default_rng([self.config.seed, step // per_epoch]).permutation(n)
        return self.train_index[perm[(np.arange(size) + (step % per_epoch) * size) % n]]

    def train_batch(self, step: int, rank: int = 0, world: int = 1) -> SpectraBatch:
        index = self.global_batch_indices(step)
        share = len(index) // world
        return self._make_batch(index[rank * share : (rank + 1) * share], step, self.config.augment)

    def val_batches(self) -> Iterator[SpectraBatch]:
        """The held-out records (at most max_val_records) in batches, with fixed draws and no reflection."""
        size = self.config.eval_batch_size
        for start in range(0, len(self.val_index), size):
            yield self._make_batch(self.val_index[start : start + size], -1, False)

    def to_device(self, batch: SpectraBatch, device: torch.device) -> SpectraBatch:
        return batch.to(device)

    # -- objective ------------------------------------------------------------------------------------
    def loss(self, models, batch: SpectraBatch, step: int) -> dict[str, torch.Tensor]:
        """Paper 000 algorithm 1 at a uniform discrete step k / T: |target - output|^2, target v or eps, with the
        azimuthal modes flow_loss_harmonics weighted by flow_loss_weight (harmonic_weighted_mse)."""
        z = noisy(self.schedule, batch.x0, batch.t, batch.eps)
        out = models["unet"](z, batch.t, batch.ic, batch.label)
        residual = out.float() - target(self.schedule, batch.x0, batch.t, batch.eps)
        if not self.weights_flow(self.config):
            return {"loss": torch.mean(residual**2)}
        if self.flow_row_weights is not None and self.flow_row_weights.device != residual.device:
            self.flow_row_weights = self.flow_row_weights.to(residual.device)  # once, not a copy per step
        return {"loss": harmonic_weighted_mse(residual, self.config.flow_loss_harmonics, self.config.flow_loss_weight,
                                              self.flow_row_weights)}

    # -- checkpoint -----------------------------------------------------------------------------------
    def checkpoint_config(self, summary: dict | None = None) -> dict:
        """config.json: kind, architecture, schedule, normalisation, grids, trained eta/s, species, provenance."""
        rec = self.records
        fitted = (species_mixture(rec.attrs, rec.species_pt_dndy, rec.eta_s, pt_flow=rec.species_pt_flow)
                  if self.config.species_from == "data" else None)
        species = fitted or self.species_source
        return {
            "kind": self.kind,
            "architecture": {"name": "unet", **self.unet_config.to_dict()},
            "schedule": schedule_config(self.schedule),
            "normalization": self.normalization.to_dict(),
            "pt_edges": np.asarray(rec.pt_edges, float).tolist(),
            "phi_edges": np.asarray(rec.phi_edges, float).tolist(),
            "eta_s_trained": sorted({round(float(v), 6) for v in [*rec.eta_s[self.train_index], *self.eta_s_source]}),
            "ic_grid_max": float(rec.attrs["grid_max"]) if "grid_max" in rec.attrs else None,  # half-width of the IC grid [fm]
            "species": species,
            "ic_entropy_per_participant": self.ic_band(),
            # a fine-tune samples as its source was measured to, until measured itself (docs/spectra.md)
            **({"sampling": self.sampling_source} if self.sampling_source else {}),
            "training": self.config.to_dict(),
            "provenance": {
                "data": str(self.data.resolve()),
                "data_sha256": file_sha256(self.data) if self.data.is_file() else None,
                "records": len(rec),
                "train_records": len(self.train_index),
                "val_records": len(self.val_index),
                "val_ic_index": sorted({int(i) for i in rec.ic_index[self.val_index]}),
                "flow_loss_row_weights": None if self.flow_row_weights is None else self.flow_row_weights.cpu().tolist(),
                "generator": str(rec.attrs.get("generator", "unknown")),
                # the training chain's resonance decays (hicgen truth hydro --decays); absent: without decays
                **({"resonance_decays": str(rec.attrs["resonance_decays"])} if "resonance_decays" in rec.attrs else {}),
                "init_from": self.init_from,
                **({"species_from": self.species_source_file} if fitted is None and species is not None else {}),
                "hicgen_version": __version__,
                "torch_version": torch.__version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **(summary or {}),
            },
        }

    def ic_band(self) -> dict | None:
        """The training ICs' entropy per participant (hicgen.spectra.ic_scale.training_band) over the distinct ICs of
        the training records, when the file records their mult and npart; else the fine-tuning source's."""
        rec = self.records
        if rec.ic_mult is None or rec.ic_npart is None:
            return self.ic_band_source
        _, first = np.unique(rec.ic_index[self.train_index], return_index=True)
        rows = self.train_index[first]
        band = training_band(rec.ic_mult[rows], rec.ic_npart[rows], f"the training ICs of {self.data.name}")
        return band if band is not None else self.ic_band_source


def harmonic_weighted_mse(residual: torch.Tensor, harmonics: tuple[int, ...], weight: float,
                          row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared residual (..., P, Q) over the periodic phi axis (last), its Fourier modes n in `harmonics` weighted.

    By Parseval, sum_j r_j^2 = sum_n c_n |R_n|^2 with R = rfft(r, norm='ortho') and c_n = 2 for the modes that
    stand for +-n (1 <= n < Q/2), else 1; this is that sum with |R_n|^2 times `weight` for n in `harmonics`, over
    the number of elements: weight 1 is the plain mean squared error. row_weights (len(harmonics), P), if given,
    multiply harmonic h's weight in pT row p. Any positive weighting keeps the minimiser (the conditional mean), so
    it moves the network's effort towards the flow harmonics without biasing them."""
    q = residual.shape[-1]
    modes = torch.fft.rfft(residual, dim=-1, norm="ortho")
    n = torch.arange(modes.shape[-1], device=residual.device)
    count = torch.where((n >= 1) & (2 * n < q), 2.0, 1.0)
    scale = count.expand(residual.shape[-2], -1).clone()  # (P, Q // 2 + 1)
    for k, h in enumerate(harmonics):
        scale[:, h] = count[h] * (weight if row_weights is None else weight * row_weights[k])
    return torch.sum(modes.abs() ** 2 * scale) / residual.numel()


def relative_flow_row_weights(x0: torch.Tensor, harmonics: tuple[int, ...], cap: float) -> torch.Tensor:
    """Per-row factors (len(harmonics), P) of each harmonic's loss weight, from training targets x0 (..., P, Q):
    1 / a_np^2 with a_np the rms over records of the harmonic's Fourier amplitude in pT row p (the flow signal in
    model units, ~ v_n(pT) / log_std_p), at most `cap` times the median row's, scaled to mean 1 over the rows.

    A residual of the same size in every row then costs in proportion to the relative error of v_n(pT) it makes,
    as the closure counts it, instead of its absolute error: rows of small flow (low pT, where v_n(pT) ~ pT^2 at
    the smallest pT) would otherwise hardly enter. The cap bounds the rows below ~0.3 GeV, where v_n -> 0."""
    modes = torch.fft.rfft(x0.reshape(-1, *x0.shape[-2:]).double(), dim=-1, norm="ortho")  # (N, P, Q // 2 + 1)
    amp = torch.sqrt(torch.mean(modes[..., list(harmonics)].abs() ** 2, dim=0)).T  # (H, P)
    raw = (torch.quantile(amp, 0.5, dim=1, keepdim=True) / amp.clamp_min(1e-12)) ** 2
    capped = raw.clamp(max=cap)
    return (capped / capped.mean(dim=1, keepdim=True)).float()


def _check_fits_source(source: dict, rec: SpectraRecords, data, init_from) -> None:
    """InputError unless the fine-tuning records have the source checkpoint's pT and phi bins and IC grid, and eta/s
    inside its label range (the kept normalisation maps eta/s; `hicgen spectra` refuses values outside it)."""
    for name in ("pt_edges", "phi_edges"):
        mine, theirs = np.asarray(getattr(rec, name), float), np.asarray(source[name], float)
        if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=1e-6, atol=1e-9):
            raise InputError(f"'{data}' has other {name.split('_')[0]} bins than --from '{init_from}'; fine-tune on spectra "
                             "made with the same binning ('hicgen truth hydro' defaults)")
    grid_max = float(rec.attrs["grid_max"]) if "grid_max" in rec.attrs else None
    if source.get("ic_grid_max") is not None and grid_max is not None and not np.isclose(grid_max, source["ic_grid_max"]):
        raise InputError(f"'{data}' has initial states on a +-{grid_max:g} fm grid, --from '{init_from}' on +-"
                         f"{source['ic_grid_max']:g} fm; run the chain on initial states made with 'hicgen truth trento --grid-max "
                         f"{source['ic_grid_max']:g}'")
    lo, hi = source["normalization"]["eta_s_min"], source["normalization"]["eta_s_max"]
    outside = rec.eta_s[(rec.eta_s < lo - 1e-6) | (rec.eta_s > hi + 1e-6)]
    if outside.size:
        raise InputError(f"'{data}' has records at eta/s = {float(outside[0]):g}, outside the range [{lo:g}, {hi:g}] of "
                         f"--from '{init_from}'; fine-tuning keeps that range, so train a new model with 'hicgen train --model spectra'")
