"""Flow tables of one sample, per eta/s and centrality class (`hicgen data flow`).

What a user measures on a production, with the definitions of the spectra closure (hicgen.analysis.spectra_closure),
for one sample instead of a ratio. Binned spectra (`hicgen spectra`, the reference chain's `hicgen truth hydro`):

  from the histograms (every record one event; Q-cumulants of the generic framework, hicgen.analysis.flow, each
  bin's count taken as that many particles at the bin centre): dN/dy (the mean count, |y| < 0.5, pT < 2 GeV), <pT>,
  v2{2,4,6,8}, v3{2,4}, v4{2}, nc_n{4} and the ratios v2{6}/v2{4}, v2{8}/v2{6}, and the flow correlations NSC(3,2),
  NSC(4,2), v4,22, rho4,22 (hicgen.analysis.spectra_closure.flow_correlations);
  where the spectra are smooth (the shipped model's, the reference chain's): v_n{2}, v_n{4}, nc_n{4} (n = 2, 3),
  v4{2} and the flow correlations of the expected distributions, free of counting noise, and v_n{2}(pT) in 8 bins
  of 0.25 GeV;
  the identified hadrons of the reference chain's records (pi+ + pi-, K+ + K-, p + pbar: direct, or with the
  resonance decays of `hicgen truth hydro --decays`): dN/dy over all pT, <pT> over the spectra's pT range, the ratios
  K/pi and p/pi of the class's yields, and in the 8 pT bins each species' spectrum d2N/dydpT and v_n{2}(pT) (n = 2,
  3) against the charged hadrons' flow vector of the whole pT range, as the charged v_n{2}(pT): the mass ordering
  of identified-hadron flow.

Particle events (`hicgen run`, `hicgen spectra --particles`, `hicgen truth angantyr`; any hicgen event format):
<N> (the particles per event in the file), <pT>, the same Q-cumulants and flow correlations of the particles, and
with the sub-events A: eta > gap/2 and B: eta < -gap/2, free of the non-flow of close pairs that those keep:
v_n{2,gap} = <<cos n(phi_A - phi_B)>>^1/2 (n = 2, 3, 4) and the flow correlations {gap}, each correlator split
between the sub-events: <<cos(m phi1 + 2 phi2 - m phi3 - 2 phi4)>> with 1, 2 in A and 3, 4 in B for NSC(m,2){gap}
(normalized by v_m{2,gap}^2 v2{2,gap}^2), <<cos(4 phi1 - 2 phi2 - 2 phi3)>> with phi1 in one sub-event and 2, 3
in the other (both ways) for v4,22{gap}, normalized by <<cos(2 phi1 + 2 phi2 - 2 phi3 - 2 phi4)>> split as NSC's.

Errors: the standard deviation over bootstrap resamplings of the initial states of a class (all the records of a
resampled IC go with it: the K spectra or particle events `hicgen spectra -k K` makes of one IC and eta/s; every
other event is its own initial state). The file is read in blocks and reduced to per-record sums, so memory stays
flat however many records it holds.
"""

from __future__ import annotations

import csv
import io
import os
import re
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from hicgen.analysis.flow import centrality_classes, centrality_percentile, from_particles, q_vector, spectra_flow_vectors
from hicgen.analysis.spectra_closure import (
    CLASSES, cumulant_terms, flow_correlations, observables, per_event_sums, smooth_differential_observables,
    smooth_differential_terms, smooth_flow, smooth_observables, smooth_spectra,
)
from hicgen.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    from hicgen.truth.trento import CentralityCalibration

BLOCK = 1024  # records read and reduced at a time (~34 MB of the two images)
MIN_INITIAL_STATES = 10  # a class with fewer is left out, as in the closure
COARSE_PT_BINS = 8  # v_n{2}(pT) bins over the spectra's pT range


SPECIES_NAMES = ("pi", "K", "p")  # the reference chain's charged species with their antiparticles, in species_dndy's order


def species_sums(dndy: np.ndarray, pt_dndy: np.ndarray | None, pt_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record terms of the identified hadrons of the reference chain's records (`hicgen truth hydro`): dN/dy of
    pi+ + pi-, K+ + K-, p + pbar over all pT (species_dndy (N, 3)) and, from their yields per pT bin (species_pt_dndy
    (N, 3, P), files made since 2026-12-06), the yield and sum of pT in the spectra's pT range (bin centres)."""
    out = {"one": np.ones(len(dndy))}
    ptc = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    for s, name in enumerate(SPECIES_NAMES):
        out[f"dN/dy {name}"] = dndy[:, s]
        if pt_dndy is not None:
            out[f"N {name}"] = pt_dndy[:, s].sum(-1)
            out[f"sum_pt {name}"] = pt_dndy[:, s] @ ptc
    return out


def species_differential_terms(pt_dndy: np.ndarray, pt_flow: np.ndarray, expected: np.ndarray, pt_edges: np.ndarray,
                               phi_edges: np.ndarray, coarse_edges: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record terms of each species' spectrum and v_n{2}(pT) (n = 2, 3) in the coarse pT bins: its dN/dy in each
    (species_pt_dndy (N, 3, P) summed), and against the charged hadrons' flow vector V_n of the whole pT range, as
    the charged v_n{2}(pT) (smooth_differential_terms), Re(V_n,s(pT) V_n*) and |V_n|^2. V_n,s(pT) is the
    yield-weighted mean of the species' flow vectors (species_pt_flow (N, 3, 4, P): rows Re V2, Im V2, Re V3, Im V3)
    over the fine bins of a coarse one (0 where it has no yield)."""
    from hicgen.truth.spectra_data import SPECIES_FLOW_HARMONICS

    ptc = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    coarse_of = np.digitize(ptc, coarse_edges) - 1
    vectors = pt_flow[:, :, 0::2] + 1j * pt_flow[:, :, 1::2]  # (N, 3, harmonics, P)
    out = {"one": np.ones(len(expected))}
    for j in range(len(coarse_edges) - 1):
        for s, name in enumerate(SPECIES_NAMES):
            out[f"dN/dy[{j}] {name}"] = pt_dndy[:, s, coarse_of == j].sum(-1)
    for h, n in enumerate(SPECIES_FLOW_HARMONICS):
        v_ref = spectra_flow_vectors(expected, phi_edges, n)
        out[f"v{n}^2"] = np.abs(v_ref) ** 2
        for j in range(len(coarse_edges) - 1):
            weights = pt_dndy[:, :, coarse_of == j]  # (N, 3, bins)
            total = weights.sum(-1)
            v_pt = (weights * vectors[:, :, h, coarse_of == j]).sum(-1) / np.where(total > 0, total, 1.0)
            for s, name in enumerate(SPECIES_NAMES):
                out[f"v{n}{{2}}(pT)[{j}] {name}"] = (v_pt[:, s] * np.conj(v_ref)).real
    return out


def check_classes(edges: tuple[float, ...]) -> tuple[float, ...]:
    """Centrality class edges [%]: at least two, strictly increasing within 0..100; InputError otherwise."""
    values = np.asarray(edges, np.float64)
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0) or values[0] < 0 \
            or values[-1] > 100:
        raise InputError(f"centrality class edges must be two or more increasing percentages within 0..100, such as "
                         f"0,5,10,20,30,40,50,60,70; got {','.join(f'{v:g}' for v in edges)}")
    return tuple(float(v) for v in values)


def record_sums(path: str | os.PathLike, progress: Callable[[int, int], None] | None = None) -> dict:
    """Per-record additive terms of a hicgen-spectra file, read BLOCK records at a time: 'histogram' (per_event_sums
    of the histograms), 'smooth' and 'differential' (smooth_flow and smooth_differential_terms of the expected counts,
    None where the file's spectra are its histograms' densities), 'species' and 'species_differential' (species_sums
    and species_differential_terms of the reference chain's identified hadrons, None where the file has none), the
    per-record columns eta_s, ic_index, mult
    (TRENTo; NaN where absent) and centrality (None where absent), pt_edges, phi_edges, coarse_edges and the file
    attributes. `progress(done, total)` is called after each block."""
    from hicgen.truth.spectra_data import _open_spectra, bin_measure

    with _open_spectra(path) as f:
        missing = [k for k in ("histogram", "spectrum", "eta_s", "ic_index", "pt_edges", "phi_edges") if k not in f]
        if missing:
            raise InputError(f"'{path}' lacks {', '.join(missing)}; give a file of 'hicgen spectra' or 'hicgen truth hydro'")
        n = int(f["eta_s"].shape[0])
        if n == 0:
            raise InputError(f"'{path}' holds no records; give a file of a finished production")
        pt_edges, phi_edges = f["pt_edges"][()].astype(np.float64), f["phi_edges"][()].astype(np.float64)
        measure, coarse = bin_measure(pt_edges, phi_edges), np.linspace(pt_edges[0], pt_edges[-1], COARSE_PT_BINS + 1)
        out = {"eta_s": f["eta_s"][()].astype(np.float64), "ic_index": f["ic_index"][()].astype(np.int64),
               "mult": f["mult"][()].astype(np.float64) if "mult" in f else np.full(n, np.nan),
               "centrality": f["centrality"][()].astype(np.float64) if "centrality" in f else None,
               "pt_edges": pt_edges, "phi_edges": phi_edges, "coarse_edges": coarse, "attrs": dict(f.attrs)}
        parts: dict[str, list] = {"histogram": [], "smooth": [], "differential": [], "species": [],
                                  "species_differential": []}
        smooth = None
        block = lambda name, start: f[name][start : start + BLOCK].astype(np.float64) if name in f else None  # noqa: E731
        for start in range(0, n, BLOCK):
            histograms = block("histogram", start)
            expected = block("spectrum", start) * measure
            if smooth is None:  # one model makes one kind of spectra: the first block tells which
                smooth = smooth_spectra(expected, histograms)
            parts["histogram"].append(per_event_sums(histograms, pt_edges, phi_edges))
            if smooth:
                parts["smooth"].append(smooth_flow(expected, phi_edges))
                parts["differential"].append(smooth_differential_terms(expected, pt_edges, phi_edges, coarse))
            if "species_dndy" in f:  # the reference chain's identified hadrons
                pt_dndy, pt_flow = block("species_pt_dndy", start), block("species_pt_flow", start)
                parts["species"].append(species_sums(block("species_dndy", start), pt_dndy, pt_edges))
                if smooth and pt_dndy is not None and pt_flow is not None:
                    parts["species_differential"].append(
                        species_differential_terms(pt_dndy, pt_flow, expected, pt_edges, phi_edges, coarse))
            if progress is not None:
                progress(min(start + BLOCK, n), n)
    for name, blocks in parts.items():
        out[name] = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]} if blocks else None
    return out


def bootstrap(sums: dict[str, np.ndarray], mask: np.ndarray, n_boot: int, rng: np.random.Generator,
              measure: Callable[[dict[str, float]], dict[str, float]]) -> dict[str, dict[str, float]]:
    """{observable: {value, error, bootstrap_valid}}: `measure` of the per-IC sums over the ICs in `mask`, and the
    standard deviation of its finite values over `n_boot` resamplings of those ICs with replacement (NaN where the
    value itself is not defined: an imaginary v_n{4})."""
    chosen = np.flatnonzero(mask)
    weights = np.vstack([np.ones(chosen.size), rng.multinomial(chosen.size, np.full(chosen.size, 1.0 / chosen.size),
                                                               size=n_boot)])
    totals = {k: weights @ v[chosen] for k, v in sums.items()}
    measured = [measure({k: float(t[i]) for k, t in totals.items()}) for i in range(n_boot + 1)]
    out = {}
    for name, value in measured[0].items():
        boots = np.array([m[name] for m in measured[1:]])
        boots = boots[np.isfinite(boots)]
        defined = np.isfinite(value) and boots.size > 1
        out[name] = {"value": value, "error": float(boots.std(ddof=1)) if defined else float("nan"),
                     "bootstrap_valid": int(boots.size)}
    return out


def ic_centrality(sums: dict, ic_of_group: np.ndarray, group: np.ndarray,
                  calibration: CentralityCalibration | None) -> tuple[np.ndarray, str]:
    """(centrality [%] of each (eta/s, IC) group, how it was defined): from `calibration` (a min-bias sample's TRENTo
    multiplicities); else the file's `centrality` column (hicgen spectra --centrality-ic); else the percentile of
    the TRENTo multiplicity among the file's initial states, the file taken as a min-bias sample of 0-100 %."""
    first = np.unique(group, return_index=True)[1]  # a record of each group, in group order
    mult = sums["mult"][first]
    if calibration is not None:
        return (calibration.centrality(mult),
                f"percentile of the TRENTo multiplicity among the {calibration.reference_mult.size} initial states of "
                f"{calibration.source}, times their {calibration.coverage_percent:.2f} % coverage (--centrality-ic)")
    if sums["centrality"] is not None:
        attrs = sums["attrs"]
        return (sums["centrality"][first],
                f"the file's centrality column (hicgen spectra --centrality-ic {attrs.get('centrality_ic')}, coverage "
                f"{float(attrs.get('centrality_coverage', np.nan)):.2f} %)")
    if not np.isfinite(mult).all():
        raise InputError("the file lacks the TRENTo multiplicity ('mult') of some initial states, which classes them "
                         "by centrality; make the spectra from ICs that record it (hicgen truth trento, the trento "
                         "program's HDF5 output)")
    ics, where = np.unique(ic_of_group, return_index=True)
    return (centrality_percentile(mult[where], mult),
            f"percentile of the TRENTo multiplicity among the file's {ics.size} initial states (taken as a min-bias "
            "sample of 0-100 %; give --centrality-ic for the classes of the measured cross section)")


def spectra_flow_table(path: str | os.PathLike, classes: tuple[float, ...] = CLASSES,
                       calibration: CentralityCalibration | None = None, n_boot: int = 200, seed: int = 0,
                       progress: Callable[[int, int], None] | None = None) -> dict:
    """{meta, results}: per eta/s {initial_states, records, classes: {label: {initial_states, records, histogram,
    smooth, smooth_differential, species, species_differential}}, left_out} of a hicgen-spectra file (the species
    ones for the reference chain's files, which hold the identified hadrons), each observable as {value, error,
    bootstrap_valid} (module docstring). Classes with fewer than MIN_INITIAL_STATES ICs are listed under 'left_out'."""
    classes = check_classes(classes)
    sums = record_sums(path, progress)
    groups, group = _groups(sums["eta_s"], sums["ic_index"])
    centrality, how = ic_centrality(sums, groups[:, 1].astype(np.int64), group, calibration)
    histogram, smooth, differential, species, species_differential = (
        _per_group(sums[k], group, len(groups))
        for k in ("histogram", "smooth", "differential", "species", "species_differential"))
    sources = {"histogram": (histogram, _histogram_observables, None)}
    if smooth is not None:
        sources["smooth"] = (smooth, smooth_observables, None)
        sources["smooth_differential"] = (differential, smooth_differential_observables, _by_pt_bin)
    if species is not None:
        sources["species"] = (species, _species_observables, None)
    if species_differential is not None:
        sources["species_differential"] = (
            species_differential, partial(_species_differential_observables, coarse_edges=sums["coarse_edges"]), _by_pt_bin)
    coarse = sums["coarse_edges"]
    attrs = sums["attrs"]
    meta = {"file": str(path), "kind": "spectra", "records": int(len(sums["eta_s"])),
            "initial_states": int(np.unique(sums["ic_index"]).size), "generator": str(attrs.get("generator", "")),
            "smooth": smooth is not None, "species": species is not None, "centrality": how, "classes": list(classes), "bootstrap": n_boot, "seed": seed,
            "pt_range": [float(coarse[0]), float(coarse[-1])], "coarse_pt_edges": coarse.tolist(),
            "min_initial_states": MIN_INITIAL_STATES}
    return {"meta": meta, "results": _tables(groups, centrality, classes, sources, n_boot, seed)}


def _groups(eta_s: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct (eta/s, unit) pairs (G, 2), the group of each record (N,)): a unit is an initial state."""
    groups, group = np.unique(np.stack([eta_s, unit.astype(np.float64)], axis=1), axis=0, return_inverse=True)
    return groups, group.ravel()


def _per_group(terms: dict[str, np.ndarray] | None, group: np.ndarray, count: int) -> dict[str, np.ndarray] | None:
    """Per-record sums -> per-group sums."""
    return None if terms is None else {k: np.bincount(group, weights=v, minlength=count) for k, v in terms.items()}


def _tables(groups: np.ndarray, centrality: np.ndarray, classes: tuple[float, ...], sources: dict, n_boot: int,
            seed: int) -> dict:
    """Per eta/s of `groups` and centrality class: the bootstrap of each source, {name: (per-group sums with 'one'
    for the first, measure, reshape of its output or None)}, over the class's groups (initial states)."""
    rng = np.random.default_rng(seed)
    ones = next(iter(sources.values()))[0]["one"]  # records per group
    results = {}
    for eta in np.unique(groups[:, 0]):
        at = (groups[:, 0] == eta) | (np.isnan(groups[:, 0]) & np.isnan(eta))
        per_class, left_out = {}, {}
        for label, mask in centrality_classes(centrality, classes):
            mask = mask & at
            count = int(mask.sum())
            if count < MIN_INITIAL_STATES:
                left_out[label] = count
                continue
            entry = {"initial_states": count, "records": int(ones[mask].sum())}
            for name, (sums, measure, reshape) in sources.items():
                measured = bootstrap(sums, mask, n_boot, rng, measure)
                entry[name] = measured if reshape is None else reshape(measured)
            per_class[label] = entry
        key = "all" if np.isnan(eta) else f"{float(eta):g}"  # events without eta/s are one sample
        results[key] = {"initial_states": int(at.sum()), "records": int(ones[at].sum()), "classes": per_class,
                        "left_out": left_out}
    return results


def _by_pt_bin(measured: dict) -> dict:
    """Bootstrapped observables of the coarse pT bins, NAME[j]REST -> {NAMEREST: {value: [...], error: [...]}} in bin
    order: v_n{2}(pT)[j] -> v_n{2}(pT), v2{2}(pT)[j] pi -> v2{2}(pT) pi."""
    grouped: dict[str, dict[int, dict]] = {}
    for key, entry in measured.items():
        name, j, rest = re.fullmatch(r"(.*)\[(\d+)\](.*)", key).groups()
        grouped.setdefault(name + rest, {})[int(j)] = entry
    return {name: {key: [bins[j][key] for j in sorted(bins)] for key in ("value", "error")}
            for name, bins in grouped.items()}


def _species_differential_observables(s: dict[str, float], coarse_edges: np.ndarray) -> dict[str, float]:
    """Per species and coarse pT bin the spectrum d^2N/(dy dpT) [GeV^-1] (the bin's mean dN/dy over its width) and
    v_n{2}(pT) (smooth_differential_observables)."""
    widths = np.diff(coarse_edges)
    spectra = {key.replace("dN/dy[", "d2N/dydpT["): s[key] / s["one"] / widths[int(key[6:key.index("]")])]
               for key in s if key.startswith("dN/dy[")}
    return {**spectra, **smooth_differential_observables(s)}


def _species_observables(s: dict[str, float]) -> dict[str, float]:
    """Per species dN/dy (all pT) and, where the file has the yields per pT bin, <pT> over the spectra's pT range
    (bin centres); the class's particle ratios (K+ + K-) / (pi+ + pi-) and (p + pbar) / (pi+ + pi-) of all pT."""
    obs = {f"dN/dy {name}": s[f"dN/dy {name}"] / s["one"] for name in SPECIES_NAMES}
    for name in SPECIES_NAMES:
        if f"N {name}" in s:
            obs[f"<pT> {name}"] = s[f"sum_pt {name}"] / s[f"N {name}"] if s[f"N {name}"] > 0 else float("nan")
    pions = s["dN/dy pi"]
    obs["K/pi"], obs["p/pi"] = ((s[f"dN/dy {name}"] / pions if pions > 0 else float("nan")) for name in ("K", "p"))
    return obs


EVENT_PARTICLES_PER_BLOCK = 2_000_000  # particles of an HDF5 file read and reduced at a time (~100 MB)


def event_sums(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, offsets: np.ndarray, eta_gap: float) -> dict:
    """Per-event additive terms of particle events: N, sum pT, the Q-cumulant terms (cumulant_terms), the particles
    M(A), M(B) of the sub-events A: eta > gap/2, B: eta < -gap/2, for n = 2, 3, 4 Re Q_n(A) Q_n(B)* and M(A) M(B),
    and the numerators and denominators of the sub-event flow correlations (module docstring)."""
    fp = from_particles(pt, eta, phi, offsets, eta_gap)
    out = {"mult": np.diff(offsets).astype(np.float64), "sum_pt": fp.per_event(fp.pt),
           "one": np.ones(fp.n_events), **cumulant_terms(fp)}
    sides = {"a": fp.subevent == 0, "b": fp.subevent == 1}
    q = {(n, side): q_vector(fp, n, mask=mask) for n in (0, 2, 3, 4, 5, 6) for side, mask in sides.items()}
    out["sub_a"], out["sub_b"] = q[0, "a"].real, q[0, "b"].real
    for n in (2, 3, 4):
        out[f"gap_num{n}"] = (q[n, "a"] * np.conj(q[n, "b"])).real
        out[f"gap_den{n}"] = out["sub_a"] * out["sub_b"]

    def pairs(m: int, n: int, side: str) -> np.ndarray:  # sum of e^{i(m phi1 + n phi2)} over distinct pairs of a side
        return q[m, side] * q[n, side] - q[m + n, side]

    pair_count = {side: q[0, side].real * (q[0, side].real - 1) for side in sides}
    for m in (2, 3, 4):  # <<cos(m phi1 + 2 phi2 - m phi3 - 2 phi4)>>, 1 and 2 in A, 3 and 4 in B
        out[f"gap4_num{m}"] = (pairs(m, 2, "a") * np.conj(pairs(m, 2, "b"))).real
        out[f"gap4_den{m}"] = pair_count["a"] * pair_count["b"]
    out["gap3_num"] = (q[4, "a"] * np.conj(pairs(2, 2, "b")) + q[4, "b"] * np.conj(pairs(2, 2, "a"))).real
    out["gap3_den"] = q[0, "a"].real * pair_count["b"] + q[0, "b"].real * pair_count["a"]
    return out


def event_record_sums(path: str | os.PathLike, eta_gap: float,
                      progress: Callable[[int, int | None], None] | None = None) -> dict:
    """event_sums of every event of an event file, read chunk by chunk (hicgen.io.iter_events), and the event columns
    eta_s (NaN where absent), ic_index (the event's own number where absent) and centrality (None unless every event
    has one, >= 0). `progress(done, total)` after each chunk; total is None where the file does not say (HepMC3)."""
    from hicgen.io import event_format, iter_events

    total = None
    if event_format(path) == "hdf5":
        from hicgen.data.dataset import DatasetReader

        with DatasetReader(path) as reader:
            total = len(reader)
    parts, columns, done = [], {"eta_s": [], "ic_index": [], "centrality": []}, 0
    for batch in iter_events(path, EVENT_PARTICLES_PER_BLOCK):
        n = len(batch)
        parts.append(event_sums(batch.particles["pt"], batch.particles["eta"], batch.particles["phi"], batch.offsets,
                                eta_gap))
        columns["eta_s"].append(np.asarray(batch.events.get("eta_s", np.full(n, np.nan)), np.float64))
        columns["ic_index"].append(np.asarray(batch.events.get("ic_index", np.arange(done, done + n)), np.int64))
        columns["centrality"].append(np.asarray(batch.events.get("centrality", np.full(n, -1.0)), np.float64))
        done += n
        if progress is not None:
            progress(done, total)
    if done == 0:
        raise InputError(f"'{path}' holds no events; give a file of a finished production")
    out = {name: np.concatenate(values) for name, values in columns.items()}
    known = np.isfinite(out["centrality"]) & (out["centrality"] >= 0)
    out["centrality"] = out["centrality"] if known.all() else None
    out["particles"] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return out


def event_flow_table(path: str | os.PathLike, classes: tuple[float, ...] = CLASSES, n_boot: int = 200, seed: int = 0,
                     eta_gap: float = 1.0, progress: Callable[[int, int | None], None] | None = None) -> dict:
    """{meta, results} as spectra_flow_table's for an event file, each class's observables under 'particles' (module
    docstring); per eta/s where the events carry it (hicgen spectra --particles), else one sample, 'all'. Centrality:
    the events' column where every event has one, else the percentile of the particles per event among the file's
    (per eta/s; an IC's K events by their mean)."""
    classes = check_classes(classes)
    if not np.isfinite(eta_gap) or eta_gap < 0:
        raise InputError(f"--eta-gap must be a pseudorapidity gap >= 0, such as 1.0; got {eta_gap}")
    sums = event_record_sums(path, eta_gap, progress)
    groups, group = _groups(sums["eta_s"], sums["ic_index"])
    particles = _per_group(sums["particles"], group, len(groups))
    if sums["centrality"] is not None:
        centrality = sums["centrality"][np.unique(group, return_index=True)[1]]
        how = "the events' centrality column"
    else:
        mean_n = particles["mult"] / particles["one"]
        centrality = np.empty(len(groups))
        for eta in np.unique(groups[:, 0]):
            same = (groups[:, 0] == eta) | (np.isnan(groups[:, 0]) & np.isnan(eta))
            centrality[same] = centrality_percentile(mean_n[same], mean_n[same])
        how = ("percentile of the particles per event among the file's events (per eta/s), taken as a min-bias sample "
               "of 0-100 %; the same particles classify and measure, so give the events a centrality column for "
               "classes free of that bias")
    meta = {"file": str(path), "kind": "events", "records": int(len(group)),
            "initial_states": int(np.unique(sums["ic_index"]).size), "eta_gap": eta_gap,
            "subevent_particles": [float(sums["particles"][k].mean()) for k in ("sub_a", "sub_b")], "centrality": how,
            "classes": list(classes), "bootstrap": n_boot, "seed": seed, "min_initial_states": MIN_INITIAL_STATES}
    return {"meta": meta, "results": _tables(groups, centrality, classes,
                                             {"particles": (particles, _event_observables, None)}, n_boot, seed)}


def _event_observables(s: dict[str, float]) -> dict[str, float]:
    """`observables` of particle events (<N>: particles per event), v_n{2,gap} = (<Re Q_n(A) Q_n(B)*> /
    <M(A) M(B)>)^1/2 (NaN where that correlation is not positive) and the sub-event flow correlations NSC(m,2){gap},
    v4,22{gap}, rho4,22{gap} = v4,22{gap} / v4{2,gap} (module docstring)."""
    obs = observables(s)
    obs = {"<N>": obs.pop("mult"), **obs}
    with np.errstate(invalid="ignore", divide="ignore"):
        two = {n: s[f"gap_num{n}"] / s[f"gap_den{n}"] for n in (2, 3, 4)}
        four = {m: s[f"gap4_num{m}"] / s[f"gap4_den{m}"] for m in (2, 3, 4)}
        three = s["gap3_num"] / s["gap3_den"]
    for n in (2, 3, 4):
        obs[f"v{n}{{2,gap}}"] = float(np.sqrt(two[n])) if two[n] > 0 else float("nan")
    gapped = flow_correlations(two, four, three, four[2], obs["v4{2,gap}"])
    obs.update({f"{name}{{gap}}": value for name, value in gapped.items()})
    return obs


def _histogram_observables(s: dict[str, float]) -> dict[str, float]:
    """`observables` of the histograms, with the multiplicity called what it is: dN/dy in |y| < 0.5."""
    obs = observables(s)
    return {"dN/dy": obs.pop("mult"), **obs}


def csv_text(table: dict) -> str:
    """The table in long form, one row per (eta/s, class, source, observable, pT bin): eta_s (empty for events
    without one), centrality, initial_states, records, source (histogram, smooth, species, particles), observable, pt_lo,
    pt_hi (empty for integrated ones), value, error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["eta_s", "centrality", "initial_states", "records", "source", "observable", "pt_lo", "pt_hi",
                     "value", "error"])
    coarse = table["meta"].get("coarse_pt_edges")
    for eta, res in table["results"].items():
        for label, cls in res["classes"].items():
            head = ["" if eta == "all" else eta, label, cls["initial_states"], cls["records"]]
            for source in ("histogram", "smooth", "species", "particles"):
                for name, v in cls.get(source, {}).items():
                    writer.writerow(head + [source, name, "", "", repr(v["value"]), repr(v["error"])])
            for source in ("smooth", "species"):
                for name, v in cls.get(f"{source}_differential", {}).items():
                    for j, (value, error) in enumerate(zip(v["value"], v["error"])):
                        writer.writerow(head + [source, name, coarse[j], coarse[j + 1], repr(value), repr(error)])
    return buffer.getvalue()
