"""Initial entropy profiles -> viscous hydro -> switching surface -> Cooper-Frye spectra, for a batch of events."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hicgen.engine.stopping import check_stop
from hicgen.errors import InputError
from hicgen.truth.hydro.cooper_frye import CHARGED, charged_spectrum
from hicgen.truth.hydro.eos import EOS
from hicgen.truth.hydro.freezeout import SurfaceFinder
from hicgen.truth.hydro.solver import FluidState, Grid, HydroConfig, Solver, evolve, relaxation_substeps
from hicgen.truth.spectra_data import SPECIES_FLOW_HARMONICS
from hicgen.truth.trento_io import TrentoEvents

N_PT, N_PHI = 64, 64
PT_MAX = 2.0  # GeV, paper 000's grid
PT_EDGES = np.linspace(0.0, PT_MAX, N_PT + 1)
PHI_EDGES = np.linspace(-math.pi, math.pi, N_PHI + 1)
SPECIES_PID = (211, -211, 321, -321, 2212, -2212)  # CHARGED and their antiparticles, in the file's species attrs
PT_TAIL = np.arange(2.0625, 4.0, 0.125)  # extra pT points [GeV] used only for integrated yields and <pT>


@dataclass
class ChainConfig:
    """Physics settings of the reference chain (paper 000 where it states them)."""

    tau0: float = 0.6  # fm, start of hydro (MUSIC default used with TRENTo by e.g. Bernhard et al. 2016)
    e_sw: float = 0.18  # GeV/fm^3, switching energy density (paper 000)
    grid_max: float = 18.0  # fm, half-width of the hydro grid (the IC is zero-padded out to it; 14-15 fm cut central events: docs/hydro.md)
    dtau_over_dx: float = 0.25  # time step in units of the grid step (KT stability needs <= 0.25 in 2D with c = 1)
    surface_every: int = 2  # find surface pieces every this many time steps
    delta_f: bool = True
    max_tau: float = 40.0  # fm, safety stop
    decays: bool = False  # add the pi, K, p of resonance decays (resonances.decay_spectra)


@dataclass
class BatchResult:
    """Per-event outputs, numpy arrays with leading dimension B."""

    spectrum: np.ndarray  # (B, 64, 64) charged dN/(dy pT dpT dphi) [GeV^-2], axis 0 pT, axis 1 phi
    dnch_deta: np.ndarray  # (B,) charged dN/deta at eta = 0 (all pT)
    dnch_dy: np.ndarray  # (B,) charged dN/dy (all pT)
    mean_pt: np.ndarray  # (B,) charged <pT> [GeV] (all pT)
    tau_end: np.ndarray  # (B,) fm, time when the last cell fell below e_sw
    energy_balance: np.ndarray  # (B,) (E_out + W + E_left)/E_in - 1
    species_dndy: np.ndarray  # (B, S) dN/dy of each CHARGED species with its antiparticle (all pT)
    species_pt_dndy: np.ndarray  # (B, S, 64) the same in each pT bin of PT_EDGES
    species_pt_flow: np.ndarray  # (B, S, 4, 64) each species' flow vectors per pT bin (species_flow_vectors)
    surface_at_grid_edge: np.ndarray  # (B,) bool: a cell above e_sw lay on the grid's outermost ring at some time


def _pad(profiles: torch.Tensor, grid_step: float, grid_max: float) -> tuple[torch.Tensor, Grid]:
    g = profiles.shape[-1]
    pad = max(0, int(round((grid_max - 0.5 * g * grid_step) / grid_step)))
    out = torch.nn.functional.pad(profiles, (pad, pad, pad, pad))
    return out, Grid(g + 2 * pad, grid_step)


def run_batch(profiles: np.ndarray, grid_step: float, eta_s: float | np.ndarray, eos: EOS, cfg: ChainConfig,
              device: str = "cpu", progress=None, compile: bool = False, pad_to: int | None = None) -> BatchResult:
    """profiles (B, G, G): entropy per unit rapidity and area tau0 s [fm^-2] (trento's norm * T_R), rows y.

    eta_s: one value or one per event; compile: the hydro time step (Solver) and the Cooper-Frye sums
    (cooper_frye.chunk_spectra) through torch.compile; pad_to: run a batch of at least this many events, the extra
    ones copies of the last (so a compiled step keeps its one batch shape instead of compiling another for a smaller
    last batch; a copy changes neither the time step nor when the batch stops). Returns spectra and integrated
    quantities for the B events given.
    """
    n_events = len(profiles)
    eta_s = np.broadcast_to(np.asarray(eta_s, dtype=float), (n_events,))
    if pad_to is not None and pad_to > n_events:
        copies = np.full(pad_to - n_events, n_events - 1)
        profiles = np.concatenate([profiles, np.asarray(profiles)[copies]])
        eta_s = np.concatenate([eta_s, eta_s[copies]])
    dev = torch.device(device)
    prof = torch.as_tensor(np.asarray(profiles), dtype=torch.float64, device=dev)
    prof, grid = _pad(prof, grid_step, cfg.grid_max)
    s0 = prof / cfg.tau0
    e0 = eos.energy_from_entropy(s0)
    z = torch.zeros_like(e0)
    state = FluidState(cfg.tau0, e0.clamp_min(1e-9), z, z.clone(), z.clone(), z.clone(), z.clone())
    eta = torch.as_tensor(eta_s.copy(), dtype=torch.float64, device=dev)
    dtau = cfg.dtau_over_dx * grid_step
    dtau /= relaxation_substeps(dtau, e0, eta, eos)
    solver = Solver(grid, eos, HydroConfig(eta_s=eta, dtau=dtau), compile=compile)
    finder = SurfaceFinder(grid, eos, cfg.e_sw, cfg.surface_every)
    e_in = finder.energy_inside(state)
    tau_end = torch.full((len(prof),), cfg.tau0, dtype=torch.float64)
    at_edge = torch.zeros(len(prof), dtype=torch.bool)  # the switching surface ran into the grid's edge

    def stop(st: FluidState) -> bool:
        check_stop()  # a Ctrl-C or SIGTERM under stop_on_signals stops the run here, between time steps
        if not bool(torch.isfinite(st.e).all()):
            raise FloatingPointError(f"hydro became unstable (non-finite energy density) at tau = {st.tau:.2f} fm "
                                     f"(grid step {grid_step} fm; docs/hydro.md, 'Hydro')")
        hot_cells = st.e > cfg.e_sw
        ring = torch.cat([hot_cells[:, [0, -1], :].flatten(1), hot_cells[:, :, [0, -1]].flatten(1)], 1)
        hot, on_ring = torch.stack([hot_cells.flatten(1).any(1), ring.any(1)]).cpu()  # one device sync per step
        tau_end[hot] = st.tau
        at_edge.logical_or_(on_ring)
        if progress is not None:
            progress(st.tau)
        return bool(not hot.any()) or st.tau > cfg.max_tau

    last = evolve(solver, state, stop=stop, observers=(finder,))
    finder.finish(last)
    surf = finder.surface(dev)
    work = finder.work if finder.work is not None else torch.zeros_like(e_in)
    e_out = torch.zeros_like(e_in).index_add_(0, surf.event, surf.energy_flux(eos))
    balance = (e_out + work + finder.energy_inside(last)) / e_in.clamp_min(1e-30) - 1

    pt_centres = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    pt_all = torch.as_tensor(np.concatenate([pt_centres, PT_TAIL]), dtype=torch.float64, device=dev)
    phi = torch.as_tensor(0.5 * (PHI_EDGES[1:] + PHI_EDGES[:-1]), dtype=torch.float64, device=dev)
    spec = charged_spectrum(surf, eos, len(prof), pt_all, phi, cfg.delta_f, compile=compile).clamp_min(0.0)  # (B, S, K, L)
    if cfg.decays:  # half of each charge-summed feed-down: spec holds pi+, K+, p, equal to their antiparticles
        from hicgen.truth.hydro.resonances import decay_spectra

        spec = spec + 0.5 * decay_spectra(surf, eos, len(prof), pt_all, phi, cfg.delta_f, compile).clamp_min(0.0)
    dphi = 2 * math.pi / N_PHI
    # integrals over pT with the midpoint rule on the 64 bins plus the coarser tail points
    widths = torch.as_tensor(np.concatenate([np.diff(PT_EDGES), np.full(len(PT_TAIL), 0.125)]), device=dev)
    masses = torch.as_tensor([sp.mass for sp in CHARGED], dtype=torch.float64, device=dev)
    mt = torch.sqrt(pt_all[None, :] ** 2 + masses[:, None] ** 2)  # (S, K)
    dndpt = 2 * spec.sum(-1) * dphi * pt_all * widths  # (B, S, K): particles + antiparticles per pT bin
    dn_dy = dndpt.sum((1, 2))
    dn_deta = (dndpt * (pt_all / mt)[None]).sum((1, 2))  # dy/deta = p/E at y = 0
    mean_pt = (dndpt * pt_all).sum((1, 2)) / dn_dy.clamp_min(1e-30)
    charged = 2 * spec[:, :, :N_PT].sum(1)  # (B, 64, 64)
    flow = species_flow_vectors(spec[:, :, :N_PT], phi)
    per_event = (charged.float(), dn_deta, dn_dy, mean_pt, tau_end, balance, dndpt.sum(2), dndpt[:, :, :N_PT].float(),
                 flow.float(), at_edge)
    return BatchResult(*(x[:n_events].cpu().numpy() for x in per_event))


def species_flow_vectors(spec: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Flow vectors (..., 2 H, P) per pT bin of spectra spec (..., P, L) at azimuths phi (L,): rows Re V_n, Im V_n
    for n in SPECIES_FLOW_HARMONICS, V_n = sum_phi spec e^{i n phi} / sum_phi spec (0 where the bin is empty)."""
    total = spec.sum(-1)
    rows = []
    for n in SPECIES_FLOW_HARMONICS:
        rows += [(spec * torch.cos(n * phi)).sum(-1), (spec * torch.sin(n * phi)).sum(-1)]
    return torch.stack(rows, -2) / torch.where(total > 0, total, torch.ones_like(total)).unsqueeze(-2)


def expected_counts(spectrum: np.ndarray) -> np.ndarray:
    """Mean particle number per (pT, phi) bin for |y| < 0.5: spectrum * pT * dpT * dphi * (dy = 1); same shape."""
    pt = 0.5 * (PT_EDGES[1:] + PT_EDGES[:-1])
    return spectrum * (pt * np.diff(PT_EDGES))[:, None] * np.diff(PHI_EDGES)[None, :]


def sample_histogram(spectrum: np.ndarray, seed: int, ic_index: int, eta_index: int) -> np.ndarray:
    """Poisson-sampled counts (64, 64) of the record (IC ic_index, eta/s number eta_index), from the generator
    seeded by (seed, ic_index, eta_index): the same record gets the same histogram however the run is split."""
    rng = np.random.default_rng([seed, ic_index, eta_index, 7])
    return rng.poisson(expected_counts(spectrum).astype(np.float64)).astype(np.float32)


def _lifetime_order(mult: np.ndarray, block: int = 64) -> np.ndarray:
    """Event order for batching: blocks of `block` events in file order, each sorted by decreasing multiplicity.

    Sorting puts fireballs of similar lifetime in one batch; the blocks keep the finished part of an interrupted
    run a sample of the whole file (not only its most central events)."""
    mult = np.nan_to_num(np.asarray(mult, dtype=float))
    return np.concatenate([lo + np.argsort(-mult[lo:lo + block], kind="stable") for lo in range(0, len(mult), block)]
                          or [np.zeros(0, np.int64)])


def _run_robust(profiles, part, eta_s, grid_step, eos, cfg, device, failed, compile=False, pad_to=None):
    """run_batch on the records `part` [(ic, eta/s number)] (padded to pad_to events); if the hydro goes unstable,
    each record alone (padded likewise, so a compiled step keeps its shape), and the ones that still fail are
    appended to `failed` and left out. Returns (result, records kept)."""
    idx = np.array([i for i, _ in part])
    try:
        return run_batch(profiles[idx], grid_step, np.array([eta_s[k] for _, k in part]), eos, cfg, device,
                         compile=compile, pad_to=pad_to), part
    except FloatingPointError:
        if len(part) == 1:
            failed.append(part[0])
            return None, []
    results = [_run_robust(profiles, [job], eta_s, grid_step, eos, cfg, device, failed, compile, pad_to)
               for job in part]
    kept = [job for (res, jobs) in results for job in jobs]
    ok = [res for res, jobs in results if jobs]
    if not ok:
        return None, []
    joined = BatchResult(*(np.concatenate([getattr(r, f) for r in ok]) for f in BatchResult.__dataclass_fields__))
    return joined, kept


def run_file(ic_path, out_path, eta_s: list[float], eos_name: str = "hotqcd", cfg: ChainConfig | None = None,
             n_events: int | None = None, seed: int = 1, batch: int = 8, device: str = "cpu",
             grid_step: float | None = None, progress=None, first: int = 0, compile: bool = False):
    """Read a trento file (IC events first .. first + n_events - 1; all from `first` when n_events is None) and
    write its hicgen-spectra file through `run_events`. Returns the output path."""
    from pathlib import Path

    from hicgen.truth.trento_io import read_trento

    ev = read_trento(ic_path, grid_step=grid_step, events=slice(first, None if n_events is None else first + n_events))
    return run_events(ev, Path(ic_path).name, out_path, eta_s, eos_name, cfg, seed, batch, device, progress, first,
                      compile)


def run_events(ev: TrentoEvents, source: str, out_path, eta_s: list[float], eos_name: str = "hotqcd",
               cfg: ChainConfig | None = None, seed: int = 1, batch: int = 8, device: str = "cpu", progress=None,
               first: int = 0, compile: bool = False):
    """Run the chain for every (event, eta/s) of the read trento events `ev` (TrentoEvents of the file named
    `source`, whose event `first` is ev's first) and write a hicgen-spectra file at out_path.

    Initial states go in blocks of 64, each in decreasing `mult`, all eta/s values of one together, so a batch
    holds fireballs of similar lifetime (a batch runs until its last event has cooled); `ic_index` gives each
    record's event in the IC file, counted from the file's event_0, so a production split into jobs with
    different `first` is joined by `merge_spectra`.
    When the run stops early (KeyboardInterrupt, or an error such as a failed C++ build of the compiled step)
    the records finished so far are kept (file attribute `interrupted` = True; no file when none had finished).
    A record whose hydro goes unstable is left out and its IC listed in the file attribute `failed_ic_index`.
    progress(n) is called with the number of records finished. compile: the hydro time step through torch.compile
    (run_batch), the last, smaller batch padded to `batch` events so that it reuses the one compilation; the records
    equal the eager ones to rounding. Returns the output path.
    """
    from hicgen.truth.hydro.eos import make_eos
    from hicgen.truth.spectra_data import OPTIONAL_RECORD_FIELDS, RECORD_FIELDS, SpectraWriter
    from hicgen.truth.trento_io import EVENT_ATTRS, resample_profile

    cfg = cfg or ChainConfig()
    eos = make_eos(eos_name)
    attrs = {"generator": "hicgen truth hydro (TRENTo-model IC, KT viscous (2+1)D hydro, Cooper-Frye pi/K/p)",
             "eos": eos.name, "tau_fs": 0.0, "tau0": cfg.tau0, "e_sw": cfg.e_sw, "grid_step": ev.grid_step,
             "grid_max": ev.grid_max, "seed": seed, "source": source, "delta_f": cfg.delta_f,
             "hydro_grid_max": cfg.grid_max, "dtau_over_dx": cfg.dtau_over_dx}
    if cfg.decays:  # absent: no decays, as in the files made before the option
        from hicgen.truth.hydro.resonances import decays_description

        attrs["resonance_decays"] = decays_description()
    writer = SpectraWriter(out_path, attrs, PT_EDGES, PHI_EDGES, {**RECORD_FIELDS, **OPTIONAL_RECORD_FIELDS})
    species_yield, species_pt_yield = np.zeros(len(CHARGED)), np.zeros((len(CHARGED), N_PT))
    failed: list[tuple[int, int]] = []
    try:
        ic64 = resample_profile(ev.profiles, ev.grid_max, 64)
        jobs = [(int(i), k) for i in _lifetime_order(ev.attrs["mult"]) for k in range(len(eta_s))]
        for lo in range(0, len(jobs), batch):
            part = jobs[lo:lo + batch]
            res, part = _run_robust(ev.profiles, part, eta_s, ev.grid_step, eos, cfg, device, failed, compile,
                                    pad_to=batch if compile else None)
            if failed:  # listed even when no record of the batch, or of the whole run, went through
                writer.set_failed(first + np.array(sorted({i for i, _ in failed})))
            if not part:
                continue
            idx = np.array([i for i, _ in part])
            eta = np.array([eta_s[k] for _, k in part])
            rec = {"ic": ic64[idx], "eta_s": eta, "spectrum": res.spectrum, "ic_index": first + idx,
                   "histogram": np.stack([sample_histogram(res.spectrum[j], seed, first + i, k)
                                          for j, (i, k) in enumerate(part)]),
                   "dnch_deta": res.dnch_deta, "dnch_dy": res.dnch_dy, "mean_pt": res.mean_pt,
                   "tau_end": res.tau_end, "energy_balance": res.energy_balance, "species_dndy": res.species_dndy,
                   "species_pt_dndy": res.species_pt_dndy, "species_pt_flow": res.species_pt_flow,
                   "surface_at_grid_edge": res.surface_at_grid_edge}
            rec.update({k: ev.attrs[k][idx] for k in EVENT_ATTRS})
            writer.append(rec)
            species_yield += res.species_dndy.sum(0)
            species_pt_yield += res.species_pt_dndy.sum(0)
            writer.set_species(SPECIES_PID, np.repeat(species_yield / 2, 2), np.repeat(species_pt_yield / 2, 2, axis=0))
            if progress is not None:
                progress(len(part))
    except BaseException as exc:  # keep the finished records, whatever stopped the run; no file when there are none
        if writer.n == 0:
            writer.abort()
            raise
        writer.mark_interrupted()
        writer.close()
        if isinstance(exc, InputError):
            raise InputError(f"{exc}; {out_path} holds the {writer.n} records finished before that (attribute "
                             f"'interrupted'): go on with --first/--events into another file and join them with "
                             f"'hicgen truth merge'") from exc
        raise
    return writer.close()
