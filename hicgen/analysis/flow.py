"""Anisotropic flow: Q-vectors, multi-particle cumulants, event-plane and scalar-product estimators.

Definitions (written down because the papers' text extractions are ambiguous):

* Q-vectors (generic framework, Bilandzic et al., PRC 89 (2014) 064904):
  Q(h, p) = sum_k c_k w_k^p exp(i h phi_k) per event, with particle weights w_k (1 by default)
  and entry counts c_k (1 for particles; the bin content for a binned (pT, phi) spectrum, whose bins are
  treated as c_k particles at the bin-centre angle).
* m-particle correlator of one event for harmonics (n_1..n_m):
  N<m> = sum over distinct particle tuples of prod_j w_j exp(i n_j phi_j),  D<m> = the same with all n_j = 0.
  N<m> is written in Q-vectors through the Moebius inversion over set partitions of {1..m}:
  N = sum_partitions prod_blocks (-1)^(|B|-1) (|B|-1)! Q(sum_{j in B} n_j, |B|).  This is the closed form
  the recursive algorithm of the generic framework evaluates; here it is enumerated directly (Bell(8) = 4140
  partitions for m = 8), vectorised over events.
* Event averages are weighted by the number of combinations: <<m>> = sum_events N<m> / sum_events D<m>
  (D<m> = M(M-1)...(M-m+1) for unit weights).
* Cumulants (standard): c{2} = <<2>>; c{4} = <<4>> - 2<<2>>^2; c{6} = <<6>> - 9<<4>><<2>> + 12<<2>>^3;
  c{8} = <<8>> - 16<<6>><<2>> - 18<<4>>^2 + 144<<4>><<2>>^2 - 144<<2>>^4;
  v{2} = c{2}^(1/2), v{4} = (-c{4})^(1/4), v{6} = (c{6}/4)^(1/6), v{8} = (-c{8}/33)^(1/8); NaN where the
  root is imaginary.
* Differential v_n{2}(pT) and v_n{4}(pT): particles of interest (POI) in a pT bin correlated with all
  particles (reference, RFP); the POI is particle 1 of the tuple, self-pairs removed through the same partition
  sum (POI-only blocks use p-vectors, POI-and-RFP blocks q-vectors).  v'{2} = d{2}/sqrt(c{2}),
  v'{4} = -d{4}/(-c{4})^(3/4) with d{4} = <<4'>> - 2<<2'>><<2>>.
* Sub-event plane (paper 004, eq. for v2{SP}; also the event-plane method with sub-event resolution):
  psi_{n,A}, psi_{n,B} from the Q_n of sub-events A (eta > gap/2) and B (eta < -gap/2);
  v_n(pT) = <cos n(phi - psi_ref)>_pT / sqrt(<cos n(psi_A - psi_B)>), psi_ref = psi_B for POI in A and vice
  versa.  `reference_weight='pt'` builds the reference with pT weights (paper 004's v2{SP}); 'unit' gives the
  classic event-plane method v_n{EP}.  For binned spectra (no eta) the sub-events are the even and odd pT bins.
* Statistical uncertainties: delete-one-group jackknife over 10 groups of events (event index mod 10).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

N_JACKKNIFE = 10
ORDERS = (2, 4, 6, 8)
HARMONICS = (2, 3, 4)


@dataclass(frozen=True)
class FlowParticles:
    """Flat entries for flow analysis. pt [GeV], phi [rad], counts (entries per row: 1 for particles, bin content
    for spectra), subevent (0 = A, 1 = B, -1 = in the gap), all shape (offsets[-1],); offsets (B+1,)."""

    pt: np.ndarray
    phi: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    subevent: np.ndarray
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # per-event sums reused across classes

    @property
    def n_events(self) -> int:
        return self.offsets.size - 1

    @property
    def event(self) -> np.ndarray:
        """Event index of each entry, shape (offsets[-1],)."""
        if "event" not in self.cache:
            self.cache["event"] = np.repeat(np.arange(self.n_events), np.diff(self.offsets))
        return self.cache["event"]

    def per_event(self, values: np.ndarray) -> np.ndarray:
        """Sum of `values` (one per entry) over each event, shape (B,)."""
        return np.bincount(self.event, weights=values, minlength=self.n_events)


def subevents_from_eta(eta: np.ndarray, eta_gap: float) -> np.ndarray:
    """Sub-event label per particle: 0 for eta > gap/2 (A), 1 for eta < -gap/2 (B), -1 in between."""
    eta = np.asarray(eta)
    label = np.full(eta.shape, -1, dtype=np.int8)
    label[eta > eta_gap / 2] = 0
    label[eta < -eta_gap / 2] = 1
    return label


def from_particles(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, offsets: np.ndarray, eta_gap: float = 1.0) -> FlowParticles:
    """FlowParticles of an event sample (flat columns as in EventBatch); sub-events split in eta with `eta_gap`."""
    pt = np.asarray(pt, dtype=np.float64)
    return FlowParticles(
        pt=pt, phi=np.asarray(phi, dtype=np.float64), offsets=np.asarray(offsets, dtype=np.int64),
        counts=np.ones_like(pt), subevent=subevents_from_eta(eta, eta_gap),
    )


def spectra_flow_vectors(spectra: np.ndarray, phi_edges: np.ndarray, n: int) -> np.ndarray:
    """Per-spectrum complex flow vector V_n = sum_phi dN/dphi e^{i n phi} / N of binned spectra (..., n_pt, n_phi)
    over all their pT bins (phi at the bin centres)."""
    phi = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    dn_dphi = np.asarray(spectra).sum(axis=-2)
    return (dn_dphi @ np.exp(1j * n * phi)) / dn_dphi.sum(axis=-1)


def from_spectra(spectra: np.ndarray, pt_edges: np.ndarray, phi_edges: np.ndarray | None = None) -> FlowParticles:
    """FlowParticles of binned spectra (B, n_pt, n_phi) (axis 1 pT, axis 2 phi, bin contents = counts, e.g. the
    64x64 spectra of paper 000).  Each bin becomes one entry at the bin centre carrying its count; the
    sub-events are the even (A) and odd (B) pT bins.  `phi_edges` defaults to n_phi equal bins over [-pi, pi)."""
    spectra = np.asarray(spectra, dtype=np.float64)
    if spectra.ndim == 2:
        spectra = spectra[None]
    if spectra.ndim != 3:
        raise ValueError(f"spectra must have shape (B, n_pt, n_phi), got {spectra.shape}")
    n_events, n_pt, n_phi = spectra.shape
    pt_edges = np.asarray(pt_edges, dtype=np.float64)
    phi_edges = np.linspace(-np.pi, np.pi, n_phi + 1) if phi_edges is None else np.asarray(phi_edges, dtype=np.float64)
    if pt_edges.size != n_pt + 1 or phi_edges.size != n_phi + 1:
        raise ValueError(f"need {n_pt + 1} pT edges and {n_phi + 1} phi edges for spectra of shape {spectra.shape}")
    pt_c = 0.5 * (pt_edges[1:] + pt_edges[:-1])
    phi_c = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    per_event = n_pt * n_phi
    return FlowParticles(
        pt=np.tile(np.repeat(pt_c, n_phi), n_events),
        phi=np.tile(np.tile(phi_c, n_pt), n_events),
        offsets=np.arange(n_events + 1, dtype=np.int64) * per_event,
        counts=spectra.reshape(-1),
        subevent=np.tile(np.repeat((np.arange(n_pt) % 2).astype(np.int8), n_phi), n_events),
        cache={"phi_projection": (spectra.sum(axis=1), phi_c)},
    )


def q_vector(fp: FlowParticles, harmonic: int, power: int = 0, weights: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Q(h, p) = sum c w^p exp(i h phi) per event, complex shape (B,); `mask` selects entries (e.g. a sub-event)."""
    if mask is None and (weights is None or power == 0) and "phi_projection" in fp.cache:
        # binned spectra (from_spectra): their counts summed over pT first, so n_phi bins instead of every bin
        dn_dphi, phi_centres = fp.cache["phi_projection"]
        return dn_dphi @ np.exp(1j * harmonic * phi_centres)
    c = fp.counts if weights is None or power == 0 else fp.counts * np.asarray(weights, dtype=np.float64) ** power
    if mask is not None:
        c = np.where(mask, c, 0.0)
    if harmonic == 0:
        return fp.per_event(c).astype(np.complex128)
    return fp.per_event(c * np.cos(harmonic * fp.phi)) + 1j * fp.per_event(c * np.sin(harmonic * fp.phi))


# ---------------------------------------------------------------- generic framework: set-partition expansion


def _set_partitions(m: int) -> list[list[list[int]]]:
    """All set partitions of {0..m-1} (Bell(m) of them)."""
    if m == 0:
        return [[]]
    out = []
    for part in _set_partitions(m - 1):
        for k in range(len(part)):
            out.append(part[:k] + [part[k] + [m - 1]] + part[k + 1 :])
        out.append(part + [[m - 1]])
    return out


@functools.lru_cache(maxsize=None)
def partition_terms(harmonics: tuple[int, ...], poi: bool = False) -> tuple[tuple[float, tuple[tuple[str, int, int], ...]], ...]:
    """The distinct-tuple sum for `harmonics` as (coefficient, blocks) terms; each block is (kind, h, p) with
    kind 'Q' (reference), 'p' (POI only, block = {particle 1}) or 'q' (POI and reference, particle 1 in a larger
    block; `poi=True` only).  Equal terms are merged."""
    merged: Counter = Counter()
    for partition in _set_partitions(len(harmonics)):
        coeff = 1.0
        blocks = []
        for block in partition:
            size = len(block)
            coeff *= (-1) ** (size - 1) * math.factorial(size - 1)
            kind = "Q"
            if poi and 0 in block:
                kind = "p" if size == 1 else "q"
            blocks.append((kind, sum(harmonics[j] for j in block), size))
        merged[tuple(sorted(blocks))] += coeff
    return tuple((c, blocks) for blocks, c in merged.items() if c != 0)


def _evaluate(terms, vectors) -> np.ndarray:
    """Sum over terms of coefficient * prod of the block vectors; `vectors(kind, h, p)` gives arrays."""
    total = 0
    for coeff, blocks in terms:
        prod = coeff
        for kind, h, p in blocks:
            prod = prod * vectors(kind, h, p)
        total = total + prod
    return total


def _q_cache(fp: FlowParticles, weights: np.ndarray | None):
    """Memoised Q(h, p) for one sample; Q(-h, p) = conj Q(h, p); p irrelevant for unit weights."""
    cache = fp.cache.setdefault("Q", {}) if weights is None else {}

    def get(kind: str, h: int, p: int) -> np.ndarray:
        p_eff = p if weights is not None else 0
        key = (abs(h), p_eff)
        if key not in cache:
            cache[key] = q_vector(fp, abs(h), p_eff, weights)
        return cache[key] if h >= 0 else np.conj(cache[key])

    return get


def correlator_terms(fp: FlowParticles, harmonics: tuple[int, ...], weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-event numerator N<m> (complex) and denominator D<m> (real) for `harmonics`, each shape (B,)."""
    key = ("corr", tuple(harmonics))
    if weights is not None or key not in fp.cache:
        get = _q_cache(fp, weights)
        num = _evaluate(partition_terms(tuple(harmonics)), get)
        den = _evaluate(partition_terms(tuple(0 for _ in harmonics)), get)
        result = (np.asarray(num, dtype=np.complex128), np.real(np.asarray(den, dtype=np.complex128)))
        if weights is not None:
            return result
        fp.cache[key] = result
    return fp.cache[key]


def symmetric_harmonics(n: int, order: int) -> tuple[int, ...]:
    """(n, ..., n, -n, ..., -n) with order/2 of each: the harmonics of <order>_n."""
    return (n,) * (order // 2) + (-n,) * (order // 2)


# ---------------------------------------------------------------- cumulants and flow from correlators


def cumulant_from_correlators(corr: dict[int, float]) -> dict[int, float]:
    """c{k} from the event-averaged correlators <<k>> given for k = 2, 4, ... (keys available)."""
    c2 = corr[2]
    out = {2: c2}
    if 4 in corr:
        out[4] = corr[4] - 2 * c2**2
    if 6 in corr:
        out[6] = corr[6] - 9 * corr[4] * c2 + 12 * c2**3
    if 8 in corr:
        out[8] = corr[8] - 16 * corr[6] * c2 - 18 * corr[4] ** 2 + 144 * corr[4] * c2**2 - 144 * c2**4
    return out


_FLOW_PREFACTOR = {2: 1.0, 4: -1.0, 6: 0.25, 8: -1.0 / 33.0}


def flow_from_cumulant(c: float, order: int) -> float:
    """v{k} from c{k}; NaN where the k-th root would be imaginary."""
    x = _FLOW_PREFACTOR[order] * c
    return float(x ** (1.0 / order)) if np.isfinite(x) and x >= 0 else float("nan")


def _groups(n_events: int) -> np.ndarray:
    return np.arange(n_events) % N_JACKKNIFE


def _jackknife(statistic, sums: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """statistic(total sums) and its delete-one-group jackknife error; `sums` has events on axis 0."""
    group_sums = np.stack([sums[groups == g].sum(axis=0) for g in range(N_JACKKNIFE)])
    total = group_sums.sum(axis=0)
    value = np.asarray(statistic(total), dtype=np.float64)
    present = [g for g in range(N_JACKKNIFE) if np.any(groups == g)]
    if len(present) < 2:
        return value, np.full_like(value, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.stack([np.asarray(statistic(total - group_sums[g]), dtype=np.float64) for g in present])
        k = len(present)
        err = np.sqrt((k - 1) / k * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return value, err


def cumulants(fp: FlowParticles, harmonics=HARMONICS, orders=ORDERS, select: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Integrated cumulants for each harmonic n and order k over the events in `select` (bool (B,), all if None).

    Returns {"n=2": {"c{2}": .., "v{2}": .., "v{2}_err": .., "<<2>>": .., ...}, ...}; events with fewer than
    k entries have D = 0 and drop out of order k automatically."""
    select = np.ones(fp.n_events, bool) if select is None else np.asarray(select, bool)
    groups = _groups(fp.n_events)[select]
    out: dict[str, dict[str, float]] = {}
    for n in harmonics:
        cols = []
        for k in orders:
            num, den = correlator_terms(fp, symmetric_harmonics(n, k))
            cols += [num.real[select], den[select]]
        sums = np.stack(cols, axis=1)

        def stats(total, orders=orders):
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = {k: total[2 * i] / total[2 * i + 1] for i, k in enumerate(orders)}
            cum = cumulant_from_correlators(corr)
            return np.array([cum[k] for k in orders] + [flow_from_cumulant(cum[k], k) for k in orders] + [corr[k] for k in orders])

        value, err = _jackknife(stats, sums, groups)
        res: dict[str, float] = {}
        m = len(orders)
        for i, k in enumerate(orders):
            res[f"c{{{k}}}"] = float(value[i])
            res[f"c{{{k}}}_err"] = float(err[i])
            res[f"v{{{k}}}"] = float(value[m + i])
            res[f"v{{{k}}}_err"] = float(err[m + i])
            res[f"<<{k}>>"] = float(value[2 * m + i])
        out[f"n={n}"] = res
    return out


def _poi_vectors(fp: FlowParticles, pt_edges: np.ndarray, weights: np.ndarray | None):
    """Block evaluator for differential correlators: p- and q-vectors per pT bin (B, n_bins), Q broadcast."""
    get_ref = _q_cache(fp, weights)
    n_bins = len(pt_edges) - 1
    bin_index = np.digitize(fp.pt, pt_edges) - 1
    inside = (bin_index >= 0) & (bin_index < n_bins)
    flat = fp.event[inside] * n_bins + bin_index[inside]
    size = fp.n_events * n_bins
    cache: dict[tuple[int, int], np.ndarray] = {}

    def poi(h: int, p: int) -> np.ndarray:
        key = (abs(h), p if weights is not None else 0)
        if key not in cache:
            c = fp.counts[inside] * (np.asarray(weights)[inside] ** key[1] if weights is not None else 1.0)
            angle = key[0] * fp.phi[inside]
            re = np.bincount(flat, c * np.cos(angle), size)
            im = np.bincount(flat, c * np.sin(angle), size)
            cache[key] = (re + 1j * im).reshape(fp.n_events, n_bins)
        return cache[key] if h >= 0 else np.conj(cache[key])

    def get(kind: str, h: int, p: int) -> np.ndarray:
        # every POI is also a reference particle, so the p- and q-vectors of the generic framework coincide
        return get_ref(kind, h, p)[:, None] if kind == "Q" else poi(h, p)

    return get


def differential_flow(fp: FlowParticles, n: int, pt_edges: np.ndarray, select: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """v_n{2}(pT) and v_n{4}(pT) in bins `pt_edges` [GeV] with jackknife errors; arrays of shape (n_bins,)."""
    pt_edges = np.asarray(pt_edges, dtype=np.float64)
    select = np.ones(fp.n_events, bool) if select is None else np.asarray(select, bool)
    groups = _groups(fp.n_events)[select]
    n_bins = len(pt_edges) - 1
    key = ("differential", n, tuple(pt_edges))
    if key not in fp.cache:
        get = _poi_vectors(fp, pt_edges, None)
        cols = []
        for k in (2, 4):
            h = symmetric_harmonics(n, k)
            num_ref, den_ref = correlator_terms(fp, h)
            num = _evaluate(partition_terms(h, poi=True), get)
            den = _evaluate(partition_terms(tuple(0 for _ in h), poi=True), get)
            cols += [np.repeat(num_ref.real[:, None], n_bins, 1), np.repeat(den_ref[:, None], n_bins, 1), np.real(num), np.real(den)]
        fp.cache[key] = np.concatenate(cols, axis=1)
    sums = fp.cache[key][select]

    def stats(total):
        r2, rd2, p2, pd2, r4, rd4, p4, pd4 = np.split(total, 8)
        with np.errstate(invalid="ignore", divide="ignore"):
            c2 = r2 / rd2
            c4 = r4 / rd4 - 2 * c2**2
            d2 = p2 / pd2
            d4 = p4 / pd4 - 2 * d2 * c2
            v2 = np.where(c2 > 0, d2 / np.sqrt(np.abs(c2)), np.nan)
            v4 = np.where(c4 < 0, -d4 / np.abs(c4) ** 0.75, np.nan)
        return np.concatenate([v2, v4])

    value, err = _jackknife(stats, sums, groups)
    return {
        "pt_edges": pt_edges,
        "v{2}": value[:n_bins], "v{2}_err": err[:n_bins],
        "v{4}": value[n_bins:], "v{4}_err": err[n_bins:],
    }


def subevent_flow(
    fp: FlowParticles, n: int, pt_edges: np.ndarray, reference_weight: str = "unit", select: np.ndarray | None = None,
) -> dict[str, np.ndarray | float]:
    """Two-sub-event plane estimator v_n(pT) = <cos n(phi - psi_ref)>_pT / sqrt(<cos n(psi_A - psi_B)>).

    `reference_weight`: 'pt' (paper 004's v2{SP}) or 'unit' (v_n{EP}).  Returns per-bin 'vn' and 'vn_err' (n_bins,),
    the integrated 'vn_int' (all POI within pt_edges) and the sub-event correlation 'resolution' =
    sqrt(<cos n(psi_A - psi_B)>) with errors.  Events with an empty sub-event are skipped."""
    if reference_weight not in ("pt", "unit"):
        raise ValueError(f"reference_weight must be 'pt' or 'unit', got {reference_weight!r}")
    pt_edges = np.asarray(pt_edges, dtype=np.float64)
    weights = fp.pt if reference_weight == "pt" else None
    qa = q_vector(fp, n, 1, weights, fp.subevent == 0)
    qb = q_vector(fp, n, 1, weights, fp.subevent == 1)
    ok = (np.abs(qa) > 0) & (np.abs(qb) > 0)
    if select is not None:
        ok &= np.asarray(select, bool)
    psi_a, psi_b = np.angle(qa) / n, np.angle(qb) / n
    event = fp.event
    psi_ref = np.where(fp.subevent == 0, psi_b[event], psi_a[event])
    use = (fp.subevent >= 0) & ok[event]
    n_bins = len(pt_edges) - 1
    bin_index = np.digitize(fp.pt, pt_edges) - 1
    inside = use & (bin_index >= 0) & (bin_index < n_bins)
    cosine = fp.counts * np.cos(n * (fp.phi - psi_ref))
    # per-event sums: numerator and count per bin, then the event-plane correlation
    flat = event[inside] * n_bins + bin_index[inside]
    num = np.bincount(flat, cosine[inside], fp.n_events * n_bins).reshape(fp.n_events, n_bins)
    cnt = np.bincount(flat, fp.counts[inside], fp.n_events * n_bins).reshape(fp.n_events, n_bins)
    res = np.where(ok, np.cos(n * (psi_a - psi_b)), 0.0)
    sums = np.concatenate([num, cnt, num.sum(1, keepdims=True), cnt.sum(1, keepdims=True), res[:, None], ok[:, None].astype(float)], axis=1)[ok]

    def stats(total):
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = total[-2] / total[-1]
            r = np.sqrt(r2) if r2 > 0 else np.nan
            return np.concatenate([total[:n_bins] / total[n_bins : 2 * n_bins] / r, [total[2 * n_bins] / total[2 * n_bins + 1] / r, r]])

    value, err = _jackknife(stats, sums, _groups(fp.n_events)[ok])
    return {
        "pt_edges": pt_edges, "vn": value[:n_bins], "vn_err": err[:n_bins],
        "vn_int": float(value[n_bins]), "vn_int_err": float(err[n_bins]),
        "resolution": float(value[n_bins + 1]), "resolution_err": float(err[n_bins + 1]), "n_events": int(ok.sum()),
    }


# ---------------------------------------------------------------- centrality


def centrality_percentile(reference_mult: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """Centrality in percent of each event: the share of reference events with a larger multiplicity
    (ties count half), so 0 % is the most central; shape as `mult`."""
    ref = np.sort(np.asarray(reference_mult, dtype=np.float64))
    mult = np.asarray(mult, dtype=np.float64)
    above = ref.size - np.searchsorted(ref, mult, side="right")
    ties = np.searchsorted(ref, mult, side="right") - np.searchsorted(ref, mult, side="left")
    return 100.0 * (above + 0.5 * ties) / max(ref.size, 1)


def centrality_classes(percentile: np.ndarray, edges: tuple[float, ...]) -> list[tuple[str, np.ndarray]]:
    """[(label 'lo-hi%', bool mask (B,))] for consecutive class edges in percent."""
    return [(f"{lo:g}-{hi:g}%", (percentile >= lo) & (percentile < hi if hi < 100 else percentile <= hi)) for lo, hi in zip(edges[:-1], edges[1:])]


def flow_summary(
    fp: FlowParticles, classes: list[tuple[str, np.ndarray]], pt_edges: np.ndarray, harmonics=HARMONICS, orders=ORDERS,
) -> dict:
    """Everything the report shows per centrality class: cumulants, v_n{EP} (unit-weight sub-event planes),
    differential v_n{2}(pT), plus paper 004's v2{SP}(pT) over all events."""
    out: dict = {"classes": [label for label, _ in classes], "cumulants": {}, "ep": {}, "differential": {}}
    for label, mask in classes:
        out["cumulants"][label] = cumulants(fp, harmonics, orders, mask)
        out["ep"][label] = {f"n={n}": subevent_flow(fp, n, pt_edges[[0, -1]], "unit", mask) for n in harmonics}
        out["differential"][label] = {f"n={n}": differential_flow(fp, n, pt_edges, mask) for n in harmonics}
    out["v2_sp"] = subevent_flow(fp, 2, pt_edges, "pt")
    return out
