"""Generation with a trained spectra model: initial profiles + eta/s -> (pT, phi) count histograms, and particles.

`generate_spectra` integrates the probability-flow ODE (hicgen.diffusion.samplers) from per-spectrum noise.
Spectrum j = n * K + k (IC n, sample k) starts from noise that is a function of (seed, ic_offset + n, k) alone, so
a spectrum is the same at any batch size (up to the floating-point differences of the precision and batch shape).
The noise and the Poisson draws come from per-row generators on the CPU and from the counter-based generator on the
GPU (hicgen.engine.counter_rng: the per-row host loops held an H100 near 1,000 spectra/s), so CPU and GPU runs of one
seed differ draw by draw. The network runs under
fp16/bf16 autocast when asked, and on CUDA the whole ODE solve of one batch shape is captured once as a
CUDA graph and replayed: the precision and graph helpers of `hicgen run` (hicgen.engine.runtime).

A model trained on the smooth spectrum (normalisation target 'spectrum') generates expected counts per bin;
`to_histograms` then draws the event's histogram from them, each bin Poisson, exactly as the reference chain
samples its histograms. A model trained on histograms generates the histogram itself.

`sample_particles` turns generated histograms into particle lists (an EventBatch) for the run writers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from hicgen.data.batch import EventBatch
from hicgen.data.features import particle_event_features
from hicgen.data.species import pdg_mass
from hicgen.diffusion.samplers import SAMPLERS, make_grid, sample, x0_denoiser
from hicgen.diffusion.schedules import Schedule, schedule_from_config
from hicgen.engine.counter_rng import normals, poisson, row_keys
from hicgen.engine.defaults import DEFAULT_SPECTRA_BATCH
from hicgen.engine.runtime import GraphRunner, autocast, compile_network, resolve_graphs, resolve_precision
from hicgen.engine.stopping import check_stop
from hicgen.errors import CheckpointError, InputError
from hicgen.io.h5columns import usable_cpus
from hicgen.models.unet import UNet, UNetConfig
from hicgen.spectra.normalization import SpectraNormalization, ic_to_model, label_scale, model_to_counts
from hicgen.spectra.species import draw_species, mixture_arrays

SPECTRA_KIND = "spectra"
ETA_S_TOLERANCE = 1e-6
PION_MIXTURE = {"pid": [211, -211], "fraction": [0.5, 0.5]}
SPECTRA_Y_MAX = 0.5  # the spectra are dN/dy in |y| < SPECTRA_Y_MAX: a histogram's particles lie there
DEFAULT_STEPS = 12  # ODE steps when a checkpoint names none: those of the full-grid closures (weights/spectra/HISTORY.md)
DEFAULT_SAMPLER = "dpm++2m"  # ODE sampler when a checkpoint names none


@dataclass
class SpectraModel:
    """A loaded checkpoint: network (eval mode, on `device`), schedule, normalisation, grids, provenance."""

    net: UNet
    config: dict
    schedule: Schedule
    normalization: SpectraNormalization
    pt_edges: np.ndarray
    phi_edges: np.ndarray
    device: torch.device
    source: str = "in-memory"
    _compiled: Callable[..., torch.Tensor] | None = field(default=None, repr=False)

    def network(self, compiled: bool = False) -> Callable[..., torch.Tensor]:
        """The denoiser network, or its torch.compile'd version (hicgen.engine.runtime.compile_network), built
        once per model so that later calls reuse the compilations of earlier batch shapes."""
        if not compiled:
            return self.net
        if self._compiled is None:
            self._compiled = compile_network(self.net)
        return self._compiled

    def set_memory_format(self, channels_last: bool) -> None:
        """Put the network's weights (and so its activations) in channels-last or contiguous (NCHW) layout; a
        compiled network of the old layout is dropped."""
        self.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        self._compiled = None

    @property
    def logsnr_range(self) -> tuple[float, float] | None:
        """The narrowed log-SNR range of the sampler's time grid (hicgen.diffusion.samplers.logsnr_grid) measured
        for this model (config 'sampling'), or None for the full range."""
        value = self.config.get("sampling", {}).get("logsnr_range")
        return None if value is None else (float(value[0]), float(value[1]))

    @property
    def default_steps(self) -> int:
        """ODE steps measured for this model (config 'sampling': 'steps'), else DEFAULT_STEPS."""
        return int(self.config.get("sampling", {}).get("steps", DEFAULT_STEPS))

    @property
    def default_sampler(self) -> str:
        """ODE sampler measured for this model (config 'sampling': 'sampler'), else DEFAULT_SAMPLER."""
        return str(self.config.get("sampling", {}).get("sampler", DEFAULT_SAMPLER))

    def set_logsnr_range(self, logsnr_range: tuple[float, float] | None) -> None:
        """Sample on the time grid narrowed to `logsnr_range`, or on the full range (None), from now on."""
        self.config = {**self.config, "sampling": {**self.config.get("sampling", {}), "logsnr_range": logsnr_range}}

    @property
    def eta_s_range(self) -> tuple[float, float]:
        return self.normalization.eta_s_min, self.normalization.eta_s_max

    @property
    def generates_expected_counts(self) -> bool:
        """True when the network generates the smooth spectrum (expected counts), False when it generates histograms."""
        return self.normalization.target == "spectrum"

    @cached_property
    def species(self) -> dict:
        """pi/K/p charge mixture of the training chain, or pions only (PION_MIXTURE) when it was not recorded; its
        shares as arrays (mixture_arrays)."""
        return mixture_arrays(self.config.get("species") or PION_MIXTURE)


def drop_untrained_label_weights(net: UNet, eta_s_trained: Sequence[float] | None, norm: SpectraNormalization) -> int:
    """Zero `net`'s first-layer label weights on the features that vanish at every trained eta/s (a checkpoint's
    'eta_s_trained'; UNet.drop_untrained_label_weights): they are their random initialisation, and between the
    trained values they moved the shipped model's 30-70 % v3{2} by 3-4.6 % (weights/spectra/HISTORY.md, "Label
    features no record trained"). Returns how many features were dropped; CheckpointError for a malformed list."""
    try:
        trained = torch.tensor(eta_s_trained or [], dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError):
        raise CheckpointError(f"the checkpoint's eta_s_trained must be a list of numbers, got {eta_s_trained!r}; "
                              "fix it in config.json") from None
    return net.drop_untrained_label_weights(label_scale(trained, norm))


def load_spectra_bundle(tensors: dict[str, torch.Tensor], config: dict, device: str | torch.device = "cpu") -> SpectraModel:
    """Checkpoint loader of kind 'spectra' (hicgen.checkpoint): the 'unet' tensors (EMA weights) into a UNet."""
    from hicgen.checkpoint import load_state

    net = UNet(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "name"}))
    load_state(net, tensors, "unet")
    normalization = SpectraNormalization(**config["normalization"])
    drop_untrained_label_weights(net, config.get("eta_s_trained"), normalization)
    device = torch.device(device)
    model = SpectraModel(
        net=net.to(device).eval(),
        config=config,
        schedule=schedule_from_config(config["schedule"]),
        normalization=normalization,
        pt_edges=np.asarray(config["pt_edges"], np.float64),
        phi_edges=np.asarray(config["phi_edges"], np.float64),
        device=device,
    )
    try:  # a hand-edited sampling range fails here, not in the middle of a run
        make_grid(model.schedule, 4, "logsnr", model.logsnr_range)
    except (ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"the checkpoint's sampling logsnr_range is invalid ({exc}); fix or remove it in config.json") from None
    steps = config.get("sampling", {}).get("steps", DEFAULT_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise CheckpointError(f"the checkpoint's sampling steps must be a positive integer, got {steps!r}; fix or remove it in config.json")
    if model.default_sampler not in SAMPLERS:
        raise CheckpointError(f"the checkpoint's sampler '{model.default_sampler}' is not one of {', '.join(SAMPLERS)}; "
                              "fix or remove it in config.json")
    return model


def load_spectra_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> SpectraModel:
    """Load a spectra checkpoint folder onto `device`, or CheckpointError."""
    from hicgen.checkpoint import read_checkpoint

    tensors, config = read_checkpoint(path, expected_kind=SPECTRA_KIND)
    bundle = load_spectra_bundle(tensors, config, device)
    bundle.source = str(path)
    return bundle


def check_eta_s(eta_s: np.ndarray, model: SpectraModel, allow_extrapolation: bool = False) -> None:
    """InputError when an eta/s lies outside the trained range and extrapolation was not allowed."""
    lo, hi = model.eta_s_range
    eta_s = np.atleast_1d(np.asarray(eta_s, np.float64))
    if not np.all(np.isfinite(eta_s)):
        raise InputError("--eta-s must be a finite number")
    bad = eta_s[(eta_s < lo - ETA_S_TOLERANCE) | (eta_s > hi + ETA_S_TOLERANCE)]
    if bad.size and not allow_extrapolation:
        raise InputError(
            f"--eta-s {bad[0]:g} is outside the trained range [{lo:g}, {hi:g}] of this model; "
            "choose a value inside it or pass --allow-extrapolation"
        )


def untrained_eta_s(eta_s: np.ndarray, model: SpectraModel) -> np.ndarray:
    """The values of `eta_s` that are none of the model's trained ones (config 'eta_s_trained'): answered by the
    network's interpolation in the label. Empty when the checkpoint records no trained values."""
    trained = np.asarray(model.config.get("eta_s_trained", []), np.float64)
    eta_s = np.atleast_1d(np.asarray(eta_s, np.float64))
    if trained.size == 0:
        return eta_s[:0]
    return eta_s[np.abs(eta_s[:, None] - trained[None]).min(axis=1) > ETA_S_TOLERANCE]


def spectrum_seed(seed: int, ic_index: int, sample_index: int) -> int:
    """The 63-bit seed of spectrum (ic_index, sample_index) of a run seeded by `seed`."""
    state = np.random.SeedSequence([int(seed), int(ic_index), int(sample_index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def for_each_row(fill: Callable[[int], None], rows: int, workers: int | None = None) -> None:
    """Call fill(b) for b in range(rows) on a pool of `workers` CPU threads (default: up to 16, one per usable core).

    Per-spectrum generators make every row a separate small draw; numpy's Generator releases the GIL while it
    fills an array, so threads run the rows in parallel (on one core the 64 x 64 Poisson draws of a spectrum take
    ~0.3-0.4 ms, which alone would hold a GPU sampler near 3,000 spectra/s)."""
    workers = min(rows, workers or min(16, usable_cpus()))
    if workers <= 1:
        for b in range(rows):
            fill(b)
        return
    chunk = -(-rows // (4 * workers))

    def fill_chunk(lo: int) -> None:
        for b in range(lo, min(lo + chunk, rows)):
            fill(b)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill_chunk, range(0, rows, chunk)))  # list() re-raises the exception of a failed row


def uses_counter_rng(device: torch.device) -> bool:
    """Whether noise and Poisson draws on `device` come from the counter-based generator (CUDA) rather than from
    per-row host generators (CPU, where the int64 hashing is ~15x slower)."""
    return device.type == "cuda"


def row_words(ic_index: np.ndarray, sample_index: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """The (IC, sample) numbers of rows as tensors on `device`: the words that key a row's counter-based draws."""
    return [torch.as_tensor(np.asarray(ic_index), device=device), torch.as_tensor(np.asarray(sample_index), device=device)]


def device_histograms(expected: torch.Tensor, seed: int, ic_index: np.ndarray, sample_index: np.ndarray) -> torch.Tensor:
    """Poisson histograms of expected counts (B, P, Q) float32 drawn where they lie, by the counter-based generator:
    row b a function of (seed, ic_index[b], sample_index[b])."""
    return poisson(expected, row_keys(seed, row_words(ic_index, sample_index, expected.device), "poisson"))


def initial_noise(seed: int, ic_index: np.ndarray, sample_index: np.ndarray, shape: tuple[int, ...],
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Standard normal noise (B, *shape) on `device`, row b a function of (seed, ic_index[b], sample_index[b]) only.

    On CUDA the counter-based generator (hicgen.engine.counter_rng) draws the whole batch on the GPU; on the CPU,
    where that integer hashing is ~15x slower, each row comes from its own torch generator (a serial loop, ~19,000
    rows/s on one core). So a run is reproducible on one kind of device however it is batched; a CPU and a GPU run
    of the same seed draw different (equally valid) noise."""
    device = torch.device(device)
    if uses_counter_rng(device):
        return normals(row_keys(seed, row_words(ic_index, sample_index, device), "noise"), shape)
    rows = []
    for i, k in zip(np.asarray(ic_index).tolist(), np.asarray(sample_index).tolist()):
        gen = torch.Generator().manual_seed(spectrum_seed(seed, i, k))
        rows.append(torch.randn(shape, generator=gen))
    return torch.stack(rows)


def poisson_histograms(expected: np.ndarray, seed: int, ic_index: np.ndarray, sample_index: np.ndarray,
                       workers: int | None = None, device: str | torch.device = "cpu") -> np.ndarray:
    """Histograms (B, P, Q) float32: every bin Poisson with the expected counts (B, P, Q); row b a function of
    (seed, ic_index[b], sample_index[b]), so it does not depend on batching. On CUDA all rows are drawn at once on
    the GPU (counter-based, hicgen.engine.counter_rng.poisson); on the CPU each row from its own numpy generator
    seeded by (seed, ic, sample, 2), on a pool of `workers` threads."""
    device = torch.device(device)
    if uses_counter_rng(device):
        mean = torch.as_tensor(np.asarray(expected, np.float32), device=device)
        return device_histograms(mean, seed, ic_index, sample_index).cpu().numpy()
    out = np.empty(expected.shape, np.float32)
    ic_index, sample_index = np.asarray(ic_index).tolist(), np.asarray(sample_index).tolist()

    def fill(b: int) -> None:
        rng = np.random.default_rng([int(seed), int(ic_index[b]), int(sample_index[b]), 2])
        out[b] = rng.poisson(np.asarray(expected[b], np.float64))

    for_each_row(fill, len(out), workers)
    return out


def to_histograms(model: SpectraModel, generated: np.ndarray, seed: int, ic_index: np.ndarray,
                  sample_index: np.ndarray) -> np.ndarray:
    """The count histograms of generated records: Poisson draws for a smooth-spectrum model, else `generated`."""
    if model.generates_expected_counts:
        return poisson_histograms(generated, seed, ic_index, sample_index, device=model.device)
    return np.asarray(generated, np.float32)


def _solver(model: SpectraModel, steps: int, sampler: str, precision: str, compiled: bool) -> Callable:
    """solve(noise, ic, label) -> x0 in model space for one batch: the ODE solve on the model's time grid
    (SpectraModel.logsnr_range) with the network (compiled or not) under autocast and denoised estimates clipped
    to the normalisation's x0_range."""
    lo, hi = model.normalization.x0_range()
    network = model.network(compiled)

    def solve(noise: torch.Tensor, ic: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        def net(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(model.device, precision):
                return network(z, t, ic, label)

        denoise = x0_denoiser(net, model.schedule)
        return sample(lambda z, t: denoise(z, t).clamp(lo, hi), noise, model.schedule, steps, sampler,
                      logsnr_range=model.logsnr_range)

    return solve


def _pad_rows(rows: torch.Tensor, n: int) -> torch.Tensor:
    """`rows` followed by copies of its last row, up to n rows (unchanged when it has n or more)."""
    return torch.cat([rows, rows[-1:].expand(max(0, n - len(rows)), *rows.shape[1:])])


def _fetch(tensors: list[torch.Tensor]) -> Callable[[], list[np.ndarray]]:
    """Start copying `tensors` to the host; the returned function waits for the copies and gives numpy arrays.

    On CUDA the copies go into pinned (page-locked) buffers without blocking the host, so the next batch can be
    launched before this one is read (copies to pageable memory block the host and run at a fraction of the bus
    rate: they led the time outside the network in an H100 profile of `hicgen spectra`, docs/benchmarks.md)."""
    if tensors[0].device.type != "cuda":
        return lambda: [t.numpy() for t in tensors]
    staged = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for buffer, tensor in zip(staged, tensors):
        buffer.copy_(tensor, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def wait() -> list[np.ndarray]:
        copied.synchronize()
        return [buffer.numpy() for buffer in staged]

    return wait


@torch.no_grad()
def _generate(
    model: SpectraModel, ic_profiles: np.ndarray, eta_s: float | np.ndarray, samples_per_ic: int, steps: int | None,
    sampler: str | None, seed: int, precision: str, batch_size: int | None, cuda_graphs: str, allow_extrapolation: bool,
    ic_offset: int, progress: Callable[[int], None] | None, compiled: bool, histograms: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The batched ODE solves of generate_spectra / generate_records: (generated counts, histograms or None).

    Per batch the solve is launched on the device before the previous batch is read back (pinned, asynchronous
    copies on CUDA); with `histograms` on CUDA the Poisson draws follow each batch on the device, so the expected
    counts are not copied back and forth, and the numbers are those of `to_histograms`."""
    ic_profiles = np.asarray(ic_profiles, np.float32)
    n = len(ic_profiles)
    res = model.net.cfg.resolution
    if ic_profiles.ndim != 3 or ic_profiles.shape[1:] != (res, res):
        raise InputError(f"initial profiles must have shape (N, {res}, {res}), got {ic_profiles.shape}")
    eta = np.broadcast_to(np.asarray(eta_s, np.float32), (n,))
    check_eta_s(eta, model, allow_extrapolation)
    sampler = model.default_sampler if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise InputError(f"--sampler must be one of {', '.join(SAMPLERS)}, got '{sampler}'")
    steps = model.default_steps if steps is None else steps
    if batch_size is None:
        batch_size = DEFAULT_SPECTRA_BATCH.get(model.device.type, DEFAULT_SPECTRA_BATCH["cuda"])
    if samples_per_ic < 1 or steps < 1 or batch_size < 1:
        raise InputError(f"samples per IC, steps and batch size must be >= 1, got {samples_per_ic}, {steps}, {batch_size}")
    precision = resolve_precision(precision, model.device, cpu_bf16=True)  # bf16 on a CPU: docs/spectra.md
    solve = GraphRunner(_solver(model, steps, sampler, precision, compiled), resolve_graphs(cuda_graphs, model.device))
    draw_on_device = histograms and model.generates_expected_counts and uses_counter_rng(model.device)

    total = n * samples_per_ic
    ic_of = np.repeat(np.arange(n), samples_per_ic)
    k_of = np.tile(np.arange(samples_per_ic), n)
    out = np.empty((total, model.pt_edges.size - 1, model.phi_edges.size - 1), np.float32)
    counts = np.empty_like(out) if histograms else None
    ic_model = ic_to_model(torch.from_numpy(ic_profiles), model.normalization)[:, None].to(model.device)
    labels = label_scale(torch.tensor(eta), model.normalization).to(model.device)
    ic_of_device = torch.as_tensor(ic_of, device=model.device)

    def store(rows: slice, fetched: Callable[[], list[np.ndarray]]) -> None:
        arrays = fetched()
        out[rows] = arrays[0]
        if draw_on_device:
            counts[rows] = arrays[1]
        elif histograms:
            counts[rows] = to_histograms(model, arrays[0], seed, ic_offset + ic_of[rows], k_of[rows])
        if progress is not None:
            progress(rows.stop - rows.start)

    # a compiled network or a CUDA graph is built per batch shape (a compilation takes about a minute), so with either
    # a last, smaller batch is padded to batch_size with copies of its last row, as `hicgen run` pads its buckets
    fixed_shape = (compiled or solve.enabled) and total > batch_size
    pending = None
    for start in range(0, total, batch_size):
        check_stop()  # a Ctrl-C or SIGTERM under stop_on_signals stops here
        rows = slice(start, min(start + batch_size, total))
        noise = initial_noise(seed, ic_offset + ic_of[rows], k_of[rows], (1,) + out.shape[1:], model.device)
        index = ic_of_device[rows]
        n_rows = len(index)
        if fixed_shape:
            noise, index = _pad_rows(noise, batch_size), _pad_rows(index, batch_size)
        x0 = solve(noise.to(model.device), ic_model[index], labels[index])[:n_rows, 0]
        if pending is not None:  # read the previous batch while the device solves this one
            store(*pending)
        generated = model_to_counts(x0.float(), model.normalization)
        parts = [generated]
        if draw_on_device:
            parts.append(device_histograms(generated, seed, ic_offset + ic_of[rows], k_of[rows]))
        pending = (rows, _fetch(parts))
    if pending is not None:
        store(*pending)
    return out, counts


def generate_spectra(
    checkpoint: str | os.PathLike | SpectraModel,
    ic_profiles: np.ndarray,
    eta_s: float | np.ndarray,
    samples_per_ic: int = 1,
    steps: int | None = None,
    sampler: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int | None = None,
    cuda_graphs: str = "auto",
    allow_extrapolation: bool = False,
    ic_offset: int = 0,
    progress: Callable[[int], None] | None = None,
    compiled: bool = False,
) -> np.ndarray:
    """Generated counts per bin (N * K, P, Q) float32 >= 0, row n * K + k = sample k of IC n: expected counts
    for a smooth-spectrum model (model.generates_expected_counts; `to_histograms` draws the histograms, or
    `generate_records` gives both at once), else count histograms.

    ic_profiles (N, R, R): initial entropy profiles on the model's grid (trento units, rows y, columns x);
    eta_s: one value or (N,); K = samples_per_ic; steps/sampler: the ODE solve (SAMPLERS; None = the model's
    default_steps / default_sampler); seed with
    ic_offset + n and k seeds each spectrum; precision and cuda_graphs as in `hicgen run` (hicgen.engine.runtime:
    'auto' = bf16 and one CUDA graph per batch shape on CUDA; no graphs on CPU, and bf16 there where the CPU has
    it in hardware, else fp32: resolve_precision with cpu_bf16); batch_size: spectra per network batch (None =
    DEFAULT_SPECTRA_BATCH of the model's device: 32 on a CPU, 256 on CUDA); progress(n_done) is called after each
    batch; compiled runs the network through torch.compile (SpectraModel.network): one compilation (a last,
    smaller batch is padded), which pays off from ~15,000-30,000 spectra on a CPU and ~100,000 on a GPU
    (docs/benchmarks.md)."""
    model = checkpoint if isinstance(checkpoint, SpectraModel) else load_spectra_model(checkpoint, device)
    return _generate(model, ic_profiles, eta_s, samples_per_ic, steps, sampler, seed, precision, batch_size, cuda_graphs,
                     allow_extrapolation, ic_offset, progress, compiled, histograms=False)[0]


def generate_records(
    checkpoint: str | os.PathLike | SpectraModel,
    ic_profiles: np.ndarray,
    eta_s: float | np.ndarray,
    samples_per_ic: int = 1,
    steps: int | None = None,
    sampler: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    batch_size: int | None = None,
    cuda_graphs: str = "auto",
    allow_extrapolation: bool = False,
    ic_offset: int = 0,
    progress: Callable[[int], None] | None = None,
    compiled: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(generated counts, count histograms), both (N * K, P, Q) float32: generate_spectra and to_histograms in
    one pass, the same numbers, with the histograms drawn batch by batch on the device on CUDA."""
    model = checkpoint if isinstance(checkpoint, SpectraModel) else load_spectra_model(checkpoint, device)
    return _generate(model, ic_profiles, eta_s, samples_per_ic, steps, sampler, seed, precision, batch_size, cuda_graphs,
                     allow_extrapolation, ic_offset, progress, compiled, histograms=True)


def _particle_uniforms(counts: np.ndarray, rng: np.random.Generator | Sequence[np.random.Generator],
                       outer_mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(particles per bin (B, N) int64, outer particles per bin (B, N) int64 or None, uniforms (4, total)) for counts
    (B, N). A record whose counts are all integers (the Poisson histograms `hicgen spectra` draws) keeps them; a
    record with a fractional count rounds each bin stochastically, floor(c + u), drawing its N uniforms first. With
    `outer_mean` (B, N) each bin then draws Poisson(outer_mean) outer particles. One generator draws the rounding
    uniforms of the fractional records, the outer counts, then 4 x total (total: all particles, outer ones
    included); a sequence of B draws per record in that order: record j's values are those of the one-generator
    draw of record j alone with generator j."""
    n_bin = counts.astype(np.int32)  # 32-bit: half the memory traffic of int64 in this check
    fractional = (n_bin.astype(counts.dtype) != counts).any(axis=1)
    n_bin = n_bin.astype(np.int64)
    if isinstance(rng, np.random.Generator):
        if fractional.any():
            rough = np.asarray(counts[fractional], np.float64)
            n_bin[fractional] = np.floor(rough + rng.random(rough.shape))
        n_outer = None if outer_mean is None else rng.poisson(outer_mean)
        total = int(n_bin.sum()) + (0 if n_outer is None else int(n_outer.sum()))
        return n_bin, n_outer, rng.random((4, total))
    if len(rng) != len(counts):
        raise ValueError(f"{len(rng)} generators for {len(counts)} histograms")
    for j in np.flatnonzero(fractional):  # each record's rounding uniforms come first from its generator
        n_bin[j] = np.floor(np.asarray(counts[j], np.float64) + rng[j].random(counts.shape[1]))
    n_outer = None
    if outer_mean is not None:  # then its outer counts
        n_outer = np.array([r.poisson(mean) for r, mean in zip(rng, outer_mean)], np.int64).reshape(counts.shape)
    totals = (n_bin.sum(axis=1) + (0 if n_outer is None else n_outer.sum(axis=1))).tolist()
    uniforms = [record_rng.random((4, total)) for record_rng, total in zip(rng, totals)]
    return n_bin, n_outer, np.concatenate(uniforms, axis=1) if uniforms else np.empty((4, 0))


def pseudorapidity(pt: np.ndarray, y: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """eta of particles of transverse momentum pt [GeV], rapidity y and mass [GeV]: asinh(mT / pT sinh y), with
    pT at least 1e-9 GeV (a particle at rest has no direction)."""
    pt = np.maximum(pt, 1e-9)
    return np.arcsinh(np.sqrt(pt * pt + mass * mass) / pt * np.sinh(y))


def sample_particles(
    counts: np.ndarray,
    rng: np.random.Generator | Sequence[np.random.Generator],
    pt_edges: np.ndarray,
    phi_edges: np.ndarray,
    species: dict | None = None,
    outer_mean: np.ndarray | None = None,
    y_max: float = SPECTRA_Y_MAX,
    eta_s: np.ndarray | None = None,
    expected: np.ndarray | None = None,
) -> EventBatch:
    """Particle lists (one event per histogram) from count histograms (B, P, Q).

    Integer counts (the Poisson histograms of `hicgen spectra`) are the particles per bin; a histogram with a
    fractional count has each bin rounded by unbiased stochastic rounding, n = floor(c + u), u ~ U(0, 1) (a
    generated histogram is already a finite-multiplicity sample, so it is not Poisson-resampled).
    Each particle gets pT and phi uniform within its bin, a PDG id drawn from `species` {'pid': [...],
    'fraction': [...]} (pions only if None), with the shares of its pT bin where `species` has them ('pt_fraction')
    and, given the histograms' eta_s (B,), those of its event's eta/s and charged dN/dy where `species` has
    multiplicity classes (hicgen.spectra.species; dN/dy is the sum of the smooth spectrum's expected counts
    `expected` (B, P, Q), else of the histogram), with the azimuthal dependence of each species' flow where it has
    flow ratios and `expected` gives the event's flow vectors, and a rapidity y
    uniform in |y| < 0.5 (SPECTRA_Y_MAX: the spectra are dN/dy there and carry no rapidity dependence, boost
    invariance); its pseudorapidity follows from y, pT and the species' mass,
    eta = asinh(mT / pT sinh y) (so a slow proton's |eta| exceeds |y|). With `outer_mean` (B, P, Q) each bin also
    gets Poisson(outer_mean) particles with y uniform in 0.5 <= |y| < y_max, the histogram's particles unchanged.
    `rng`: one generator for the batch, or one per histogram (record j then gets what this function gives for
    histogram j alone with generator j, whatever the batch: `hicgen spectra` seeds each record's).
    Event columns: mult, mean_pt, sum_pt, q2x, q2y, psi2, mean_eta, mean_phi from the particles."""
    counts = np.asarray(counts)
    counts = counts if counts.dtype in (np.float32, np.float64) else counts.astype(np.float64)
    b, p, q = counts.shape
    mixture = species or PION_MIXTURE
    mixture = mixture if "cdf" in mixture else mixture_arrays(mixture)
    if mixture["cdf"].shape[-1] not in (1, p):
        raise ValueError(f"the species mixture has shares for {mixture['cdf'].shape[-1]} pT bins, the histograms {p}")
    outer = None if outer_mean is None else np.asarray(outer_mean, np.float64).reshape(b, p * q)
    n_inner, n_outer, u = _particle_uniforms(counts.reshape(b, p * q), rng, outer)
    n_bin = n_inner if n_outer is None else n_inner + n_outer
    mult = n_bin.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(mult)])
    per_bin = n_bin.ravel()
    flat_bin = np.repeat(np.tile(np.arange(p * q), b), per_bin)
    ipt, iphi = np.divmod(flat_bin, q)
    pt = pt_edges[ipt] + u[0] * np.diff(pt_edges)[ipt]
    phi = phi_edges[iphi] + u[1] * np.diff(phi_edges)[iphi]
    lo, hi = 0.0, SPECTRA_Y_MAX
    if n_outer is not None:  # a bin's first n_inner particles are the histogram's, the rest lie outside |y| < 0.5
        rank = np.arange(per_bin.sum()) - np.repeat(np.cumsum(per_bin) - per_bin, per_bin)
        beyond = rank >= np.repeat(n_inner.ravel(), per_bin)
        lo, hi = np.where(beyond, SPECTRA_Y_MAX, 0.0), np.where(beyond, y_max, SPECTRA_Y_MAX)
    y = -hi + 2.0 * (hi - lo) * u[2]  # uniform in [-hi, hi - 2 lo); for lo = 0 Generator.uniform(-hi, hi), to the bit
    y = np.where(y >= -lo, y + 2.0 * lo, y)  # [-lo, hi - 2 lo) -> [lo, hi): uniform in lo <= |y| < hi
    kind = draw_species(mixture, counts, expected, eta_s, phi_edges, mult, ipt, iphi, u[3])
    pids = mixture["pid"].astype(np.int32)
    pid = pids[kind]
    eta = pseudorapidity(pt, y, pdg_mass(pids)[kind])  # the masses of the mixture's few ids, not a sort of all
    particles = {"pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32), "pid": pid}
    events = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)  # as stored
    return EventBatch(events=events, offsets=offsets, particles=particles)


PARTICLE_CHUNK_RECORDS = 64  # records per sample_particles call: their arrays stay in cache (1.3x vs 1,024 at once)


def sample_record_particles(
    counts: np.ndarray,
    seed: int,
    ic_index: np.ndarray,
    sample_index: np.ndarray,
    pt_edges: np.ndarray,
    phi_edges: np.ndarray,
    species: dict | None = None,
    workers: int | None = None,
    expected: np.ndarray | None = None,
    y_max: float = SPECTRA_Y_MAX,
    eta_s: np.ndarray | None = None,
) -> EventBatch:
    """The particle lists (sample_particles) of the records (IC ic_index[j], sample sample_index[j]) of a run seeded
    by `seed`: record j's from its own generator, default_rng([seed, i, k, 1]), so a record's particles are the same
    however the records are grouped, batched or split over jobs. Chunks of PARTICLE_CHUNK_RECORDS records run on
    `workers` CPU threads (default: one per usable core, at most 4), joined in order. Much of the work holds the GIL
    (per-record generators, numpy calls on ~64 x 4096 values), so threads gain little: on the 2-core VM 2 threads
    are 1.1-1.25x faster than one.

    The histograms `counts` are the particles in |y| < 0.5 (SPECTRA_Y_MAX, the spectra's window). With y_max > 0.5
    each event also gets particles in 0.5 <= |y| < y_max, drawn from its expected counts per unit rapidity
    `expected` (the smooth spectrum, required then), Poisson in each bin with mean (2 y_max - 1) x expected, by the
    record's generator before its particles' uniforms (sample_particles' outer_mean): the rapidity density is the
    same at every y (boost invariance), and the particles in |y| < 0.5 are still exactly the histogram's.
    Given the records' eta_s (n,), the species follow the mixture's shares at each record's eta/s and charged dN/dy
    (hicgen.spectra.species): the sum of `expected`, else of the histogram; with `expected` and a mixture with
    flow ratios each species also gets its own flow (sample_particles)."""
    n = len(counts)
    if y_max < SPECTRA_Y_MAX:
        raise ValueError(f"y_max {y_max} is below the spectra's window {SPECTRA_Y_MAX}")
    if y_max > SPECTRA_Y_MAX and expected is None:
        raise ValueError("particles beyond |y| < 0.5 need the expected counts")
    starts = range(0, n, PARTICLE_CHUNK_RECORDS) or range(1)  # no records: one empty batch

    def chunk(lo: int) -> EventBatch:
        hi = min(lo + PARTICLE_CHUNK_RECORDS, n)
        rngs = [np.random.default_rng([seed, int(i), int(k), 1]) for i, k in zip(ic_index[lo:hi], sample_index[lo:hi])]
        outer_mean = None if y_max == SPECTRA_Y_MAX else (2.0 * y_max - 2.0 * SPECTRA_Y_MAX) * expected[lo:hi]
        return sample_particles(counts[lo:hi], rngs, pt_edges, phi_edges, species, outer_mean, y_max,
                                None if eta_s is None else eta_s[lo:hi], None if expected is None else expected[lo:hi])

    workers = min(len(starts), workers or min(4, usable_cpus()))
    if workers <= 1:
        return EventBatch.concat([chunk(lo) for lo in starts])
    with ThreadPoolExecutor(workers) as pool:
        return EventBatch.concat(list(pool.map(chunk, starts)))
