"""Particle species of `hicgen spectra --particles`: the reference chain's pi / K / p shares per pT bin, by eta/s
and event multiplicity, and their azimuthal dependence (each species' own flow).

A spectra checkpoint's config.json "species" holds the chain's mixture (species_mixture): 'pid' (S,) PDG ids,
'fraction' (S,) their shares over all records and pT, 'pt_fraction' (S x P) their shares in each pT bin over all
records and, from training files with per-record species yields (`hicgen truth hydro` since 2026-12-06),
'classes': the shares per pT bin in quantile classes of the records' charged multiplicity for each eta/s of the
file (multiplicity_class_shares). The multiplicity is the spectrum's: dN/dy of charged hadrons in |y| < 0.5 and
the spectra's pT range, the sum of the smooth spectrum's expected counts, which the sampler knows for each record.

At fixed pT the shares change with centrality and viscosity (radial flow moves heavy particles to higher pT): in
the 768-record min-bias run of the shipped model's table the proton share at 1.9 GeV goes from 0.116 in the lowest
quarter of dN/dy at eta/s 0 to 0.088 in the highest at eta/s 0.2. A record's shares (record_species_cdf)
are those of its eta/s and dN/dy, interpolated linearly in eta/s between the file's values and in log dN/dy between
the classes' mean log dN/dy, constant beyond the outermost ones: a convex mix of measured share vectors, so never
negative and summing to one.

Species flow. Radial flow also orders the species' anisotropic flow by mass: at low pT protons have a smaller v2
than pions at the same pT. From files with the species' flow vectors (`species_pt_flow`) the classes also hold,
for each charge pair k and harmonic n, the ratio r_nk(pT) of the pair's flow vector to the charged one's at that pT,
fitted over the class's records by least squares (V_nk ~ r_nk V_n,ch: r = sum Re(V_nk V_n,ch*) / sum |V_n,ch|^2).
A particle at (pT, phi) of an event whose smooth spectrum has flow vectors V_n(pT) then is of pair k with
probability proportional to s_k (1 + 2 sum_n r_nk Re(V_n e^{-i n phi})), s_k the pair's share: each species gets
the flow of the chain's, the charged particles keep the model's spectrum (flowing_species_index).
"""

from __future__ import annotations

import numpy as np

from hicgen.truth.spectra_data import SPECIES_FLOW_HARMONICS

SPECIES_CLASSES = 6  # multiplicity classes per eta/s: ~27 records each in a 160-IC min-bias run
SHARE_DIGITS = 6  # significant digits kept in config.json


def _rounded(values: np.ndarray) -> list:
    """Nested lists of `values` to SHARE_DIGITS significant digits (config.json stays readable and small)."""
    return np.vectorize(lambda v: float(f"{v:.{SHARE_DIGITS}g}"), otypes=[float])(values).tolist()


def per_charge_shares(pair_yields: np.ndarray) -> np.ndarray:
    """Shares (2 H, P) of each charge in each pT bin from yields (H, P) of charge pairs (pi+ + pi-, ...), split
    evenly between the charges (the chain is charge symmetric); 0 in a bin without yield."""
    yields = np.repeat(np.asarray(pair_yields, np.float64) / 2.0, 2, axis=0)
    return yields / np.maximum(yields.sum(0), 1e-300)


def flow_ratios(pt_dndy: np.ndarray, pt_flow: np.ndarray) -> np.ndarray:
    """Least-squares ratios r (H, h, P) of each charge pair's flow vector to the charged one's, V_nk ~ r_nk V_n,ch,
    over records with pair yields pt_dndy (N, H, P) and pair flow vectors pt_flow (N, H, 2 h, P) (rows Re V_n,
    Im V_n per harmonic); the charged flow vector is the yield-weighted mean of the pairs'. 0 where no record flows."""
    pt_dndy = np.asarray(pt_dndy, np.float64)
    vectors = np.asarray(pt_flow, np.float64)
    vectors = vectors[:, :, 0::2] + 1j * vectors[:, :, 1::2]  # (N, H, h, P)
    charged = (vectors * pt_dndy[:, :, None]).sum(1) / np.maximum(pt_dndy.sum(1), 1e-300)[:, None]  # (N, h, P)
    numerator = (vectors * np.conj(charged)[:, None]).real.sum(0)  # (H, h, P)
    denominator = (np.abs(charged) ** 2).sum(0)  # (h, P)
    return numerator / np.where(denominator > 0, denominator, np.inf)


def multiplicity_classes(dndy: np.ndarray, eta_s: np.ndarray, classes: int = SPECIES_CLASSES
                         ) -> list[tuple[float, list[np.ndarray]]]:
    """[(eta/s, [rows of each class])]: for each distinct eta/s (rising, to 6 decimals) its records of dN/dy > 0
    sorted by dN/dy and split into min(classes, records) classes of equal size, by rising dN/dy."""
    dndy = np.asarray(dndy, np.float64)
    eta_s = np.round(np.asarray(eta_s, np.float64), 6)
    out = []
    for value in np.unique(eta_s):
        rows = np.flatnonzero((eta_s == value) & (dndy > 0))
        if len(rows):
            out.append((float(value), np.array_split(rows[np.argsort(dndy[rows], kind="stable")], min(classes, len(rows)))))
    return out


def multiplicity_class_shares(pt_dndy: np.ndarray, eta_s: np.ndarray, classes: int = SPECIES_CLASSES,
                              pt_flow: np.ndarray | None = None, harmonics: tuple[int, ...] = (2, 3)) -> dict:
    """The species shares per pT bin in the multiplicity classes (multiplicity_classes) of records with yields
    pt_dndy (N, H, P) of H charge pairs and eta/s eta_s (N,), a record's dN/dy being the sum of its yields; each
    class's summed yields give its shares (per_charge_shares). Returns {'eta_s': [E], 'log_dndy': E lists of the
    classes' mean log dN/dy, 'dndy_range': E lists of the classes' [lowest, highest] dN/dy, 'pt_fraction':
    E x C x 2H x P} and, given the pairs' flow vectors pt_flow (N, H, 2 h, P) of `harmonics`, 'flow_harmonics'
    and 'flow_ratio': E x C x H x h x P (flow_ratios)."""
    pt_dndy = np.asarray(pt_dndy, np.float64)
    dndy = pt_dndy.sum(axis=(1, 2))
    table: dict = {"eta_s": [], "log_dndy": [], "dndy_range": [], "pt_fraction": []}
    if pt_flow is not None:
        table.update(flow_harmonics=list(harmonics), flow_ratio=[])
    for value, groups in multiplicity_classes(dndy, eta_s, classes):
        table["eta_s"].append(value)
        table["log_dndy"].append(_rounded(np.array([np.log(dndy[g]).mean() for g in groups])))
        table["dndy_range"].append(_rounded(np.array([[dndy[g].min(), dndy[g].max()] for g in groups])))
        table["pt_fraction"].append(_rounded(np.stack([per_charge_shares(pt_dndy[g].sum(0)) for g in groups])))
        if pt_flow is not None:
            table["flow_ratio"].append(_rounded(np.stack([flow_ratios(pt_dndy[g], pt_flow[g]) for g in groups])))
    return table


def species_mixture(attrs: dict, pt_dndy: np.ndarray | None = None, eta_s: np.ndarray | None = None,
                    classes: int = SPECIES_CLASSES, pt_flow: np.ndarray | None = None) -> dict | None:
    """The pi/K/p charge mixture of a reference-chain file, if it records one.

    Looks for attributes `species_pid` (S,) PDG ids and `species_fraction` (S,) yield fractions of the charged
    hadrons in the file, and `species_pt_fraction` (S, P), those fractions in each pT bin of the spectra; returns
    {'pid': [...], 'fraction': [...]} with 'pt_fraction' (S lists of P) when the file has it and 'classes'
    (multiplicity_class_shares, with the flow ratios given pt_flow (N, S / 2, 4, P)) given the records' yields
    pt_dndy (N, S / 2, P) of charge pairs in pid's order and their eta_s (N,); or None (pions only then)."""
    if "species_pid" not in attrs or "species_fraction" not in attrs:
        return None
    pid = [int(p) for p in np.ravel(attrs["species_pid"])]
    frac = np.ravel(np.asarray(attrs["species_fraction"], float))
    if len(pid) != len(frac) or frac.sum() <= 0:
        return None
    mixture = {"pid": pid, "fraction": (frac / frac.sum()).tolist()}
    if "species_pt_fraction" in attrs:
        pt_frac = np.asarray(attrs["species_pt_fraction"], float)
        if pt_frac.ndim == 2 and len(pt_frac) == len(pid):
            mixture["pt_fraction"] = pt_frac.tolist()
    if (pt_dndy is not None and eta_s is not None and "pt_fraction" in mixture
            and np.ndim(pt_dndy) == 3 and 2 * np.shape(pt_dndy)[1] == len(pid)):
        flow = pt_flow if pt_flow is not None and np.shape(pt_flow)[:2] == np.shape(pt_dndy)[:2] else None
        table = multiplicity_class_shares(pt_dndy, eta_s, classes, flow, SPECIES_FLOW_HARMONICS)
        if table["eta_s"]:
            mixture["classes"] = table
    return mixture


def cumulative_shares(shares: np.ndarray, overall: np.ndarray) -> np.ndarray:
    """Normalised cumulative shares (..., S - 1, P) float32 along the species axis (-2) of shares (..., S, P), the
    last one (1) left out; a pT bin without yield takes the cumulative `overall` shares (S,). float32 (7 digits)
    halves the work of mixing tables per record, which is part of every particle event's cost."""
    totals = shares.sum(-2, keepdims=True)
    cdf = np.cumsum(shares, -2) / np.where(totals > 0, totals, 1.0)
    return np.where(totals > 0, cdf, overall[:, None])[..., :-1, :].astype(np.float32)


def cumulative_flow(shares: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Cumulative flow weights (C, h, H, P) float32 of flowing_species_index: over the charge pairs, the cumulative
    sum of 2 s_k r_nk from per-charge shares (C, 2 H, P) and ratios (C, H, h, P)."""
    pair_shares = shares[:, 0::2] + shares[:, 1::2]  # (C, H, P)
    totals = pair_shares.sum(1, keepdims=True)
    pair_shares = pair_shares / np.where(totals > 0, totals, 1.0)
    return np.cumsum(2.0 * pair_shares[:, None] * ratios.transpose(0, 2, 1, 3), axis=2).astype(np.float32)


def mixture_arrays(mixture: dict) -> dict:
    """What sampling needs of a mixture, as arrays made once (config.json's nested lists cost ~6 us a record to
    convert for every chunk): 'pid' (S,), 'cdf' (1, S - 1, P) the cumulative min-bias shares per pT bin
    (cumulative_shares; P = 1 without 'pt_fraction') and, with 'classes', 'class_cdf' (eta/s grid (E,),
    [log dN/dy (C,)] and [cumulative shares (C, S - 1, P)] per eta/s) and, with flow ratios, 'class_flow'
    ([cumulative_flow (C, h, H, P)] per eta/s), 'flow_harmonics' and 'flow_ratio_max' (the largest |r|)."""
    overall = np.cumsum(np.asarray(mixture["fraction"], np.float64))
    overall /= overall[-1]
    shares = np.asarray(mixture.get("pt_fraction", np.ones((len(overall), 1))), np.float64)
    out = {"pid": np.asarray(mixture["pid"], np.int64), "cdf": cumulative_shares(shares, overall)[None]}
    if "pt_fraction" not in mixture:
        out["cdf"] = overall[None, :-1, None].astype(np.float32)
    if "classes" in mixture:
        classes = mixture["classes"]
        tables = [np.asarray(v, np.float64) for v in classes["pt_fraction"]]
        out["class_cdf"] = (np.asarray(classes["eta_s"], np.float64),
                            [np.asarray(v, np.float64) for v in classes["log_dndy"]],
                            [cumulative_shares(v, overall) for v in tables])
        if "flow_ratio" in classes:
            ratios = [np.asarray(v, np.float64) for v in classes["flow_ratio"]]
            out["class_flow"] = [cumulative_flow(s, r) for s, r in zip(tables, ratios)]
            out["flow_harmonics"] = np.asarray(classes["flow_harmonics"], np.int64)
            out["flow_ratio_max"] = float(max(np.abs(r).max() for r in ratios))
    return out


def _bracket(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices lo, hi into the rising `grid` and weight w of hi for linear interpolation at x, constant beyond
    the ends."""
    x = np.clip(x, grid[0], grid[-1])
    hi = np.clip(np.searchsorted(grid, x, side="right"), 1, max(len(grid) - 1, 1))
    lo = hi - 1 if len(grid) > 1 else np.zeros_like(hi)
    hi = np.minimum(hi, len(grid) - 1)
    span = grid[hi] - grid[lo]
    w = np.where(span > 0, (x - grid[lo]) / np.where(span > 0, span, 1.0), 0.0)
    return lo, hi, w


def _mix_classes(arrays: dict, tables: list[np.ndarray], eta_s: np.ndarray, dndy: np.ndarray) -> np.ndarray:
    """The class tables (one (C, ...) array per tabulated eta/s) at each record's eta/s and dN/dy (R, ...): bilinear
    in (eta/s, log dN/dy) between the tabulated values, constant beyond them."""
    eta_grid, log_grids, _ = arrays["class_cdf"]
    e_lo, e_hi, e_w = _bracket(eta_grid, np.asarray(eta_s, np.float64))
    log_dndy = np.log(np.maximum(np.asarray(dndy, np.float64), 1e-300))
    mixed = None
    for index, weight in ((e_lo, 1.0 - e_w), (e_hi, e_w)):
        for e in np.unique(index[weight > 0]):  # the records at one tabulated eta/s share its classes
            at = np.flatnonzero((index == e) & (weight > 0))
            c_lo, c_hi, c_w = _bracket(log_grids[e], log_dndy[at])
            w_hi = (weight[at] * c_w).astype(np.float32)
            shape = (-1,) + (1,) * (tables[e].ndim - 1)
            part = tables[e][c_lo] * (weight[at].astype(np.float32) - w_hi).reshape(shape)
            part += tables[e][c_hi] * w_hi.reshape(shape)
            if mixed is None and len(at) == len(log_dndy):  # all records at one eta/s (a run's usual block)
                mixed = part
                continue
            mixed = np.zeros((len(log_dndy), *tables[e].shape[1:]), np.float32) if mixed is None else mixed
            mixed[at] += part
    return mixed


def record_species_cdf(mixture: dict, eta_s: np.ndarray | None = None, dndy: np.ndarray | None = None) -> np.ndarray:
    """Cumulative species shares (R', S - 1, P') for species_index, of a mixture (config.json's or mixture_arrays'):
    per record (R' = R) from its multiplicity classes given the records' eta_s and charged dN/dy dndy (R,), bilinear
    in (eta/s, log dN/dy) between the tabulated values and constant beyond them; else the min-bias shares (R' = 1).
    The cumulative shares of a mix of share vectors are the same mix of theirs, so the tables are mixed directly."""
    arrays = mixture if "cdf" in mixture else mixture_arrays(mixture)
    if "class_cdf" not in arrays or eta_s is None or dndy is None:
        return arrays["cdf"]
    return _mix_classes(arrays, arrays["class_cdf"][2], eta_s, dndy)


def record_flow_weights(arrays: dict, eta_s: np.ndarray, dndy: np.ndarray) -> np.ndarray:
    """The cumulative flow weights (R, h, H, P) (cumulative_flow) at the records' eta/s and dN/dy, mixed as
    record_species_cdf mixes the shares; needs 'class_flow' in the mixture_arrays `arrays`."""
    return _mix_classes(arrays, arrays["class_flow"], eta_s, dndy)


def azimuthal_basis(phi_edges: np.ndarray, harmonics: np.ndarray) -> np.ndarray:
    """cos(n phi), sin(n phi) (2 h, Q) float32 at the centres of the Q azimuthal bins, for n in `harmonics`."""
    centres = 0.5 * (phi_edges[1:] + phi_edges[:-1])
    return np.stack([f(n * centres) for n in harmonics for f in (np.cos, np.sin)]).astype(np.float32)


def charged_flow_vectors(expected: np.ndarray, basis: np.ndarray, ratio_max: float) -> tuple[np.ndarray, np.ndarray]:
    """The counts per pT row (R, P) of expected counts (R, P, Q) and their flow vectors (R, 2 h, P) float32: rows
    Re V_n, Im V_n of azimuthal_basis' harmonics, V_n = sum_phi N e^{i n phi} / sum_phi N at the bins' centres;
    scaled down where 2 ratio_max sum_n |V_n| exceeds 1, so that no species' weight 1 + 2 sum_n r_n
    Re(V_n e^{-i n phi}) turns negative."""
    moments = np.asarray(expected, np.float32) @ np.vstack([np.ones((1, basis.shape[1]), np.float32), basis]).T
    # (a stack of R small products, each below OpenBLAS's threading threshold: one (R P x Q) product spawns BLAS
    # threads, which stall (up to 7 ms for 64 records) against the writer threads and other jobs on busy cores)
    moments = np.ascontiguousarray(moments.transpose(0, 2, 1))  # (R, 1 + 2 h, P): rows, not strided columns
    totals = moments[:, 0]
    vectors = moments[:, 1:] / np.where(totals > 0, totals, 1.0)[:, None]
    size = sum(np.sqrt(vectors[:, j] ** 2 + vectors[:, j + 1] ** 2) for j in range(0, len(basis), 2))  # (R, P)
    vectors *= np.minimum(1.0, 1.0 / np.maximum(2.0 * ratio_max * size, 1e-30))[:, None]
    return totals, vectors


def species_index(cdf: np.ndarray, record: np.ndarray | None, pt_bin: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The species (index into the mixture's pid) of particles of records `record` (n,) (None: cdf holds one record)
    in pT bins `pt_bin` (n,) given uniforms `u` (n,) and cdf (R', S - 1, P') of record_species_cdf: as
    Generator.choice(p=shares) draws, the first species whose cumulative share exceeds u (the last species takes
    every uniform past the others)."""
    n_rec, n_columns, n_pt = cdf.shape
    row = pt_bin if n_pt > 1 else np.zeros(len(u), np.intp)
    if n_rec > 1:
        row = record * n_pt + row
    kind = np.zeros(len(u), np.intp)
    for s in range(n_columns):
        kind += cdf[:, s].ravel()[row] <= u  # a column at a time: 3x faster than comparing a (n, S) gather
    return kind


def flowing_species_index(cdf: np.ndarray, flow: np.ndarray, vectors: np.ndarray, basis: np.ndarray,
                          record: np.ndarray, pt_bin: np.ndarray, phi_bin: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The species of particles (as species_index) whose charge pair k is drawn with probability proportional to
    s_k (1 + 2 sum_n r_nk Re(V_n e^{-i n phi})): cdf (R, S - 1, P) of record_species_cdf, cumulative flow weights
    flow (R, h, H, P) (record_flow_weights), the events' flow vectors (R, 2 h, P) (charged_flow_vectors) on
    azimuthal_basis (2 h, Q), the particles' records, pT bins and azimuthal bins (n,) (phi at the bin's centre:
    the bins are 0.1 rad wide, and no trigonometry per particle). The uniform's upper half gives the second charge
    of the pair, its doubled rest (uniform again) the pair."""
    row = record * cdf.shape[2] + pt_bin
    modes = [vectors[:, 2 * j].ravel()[row] * basis[2 * j][phi_bin] + vectors[:, 2 * j + 1].ravel()[row] * basis[2 * j + 1][phi_bin]
             for j in range(len(basis) // 2)]  # Re(V_n e^{-i n phi}) = Re V_n cos(n phi) + Im V_n sin(n phi)
    n_pairs = flow.shape[2]
    second = u >= 0.5
    scaled = (2.0 * u - second).astype(np.float32)  # float32 like the tables: half the memory traffic
    scaled = scaled * (1.0 + sum(flow[:, j, n_pairs - 1].ravel()[row] * m for j, m in enumerate(modes)))
    pair = np.zeros(len(u), np.intp)
    for k in range(n_pairs - 1):  # the cumulative share of pairs 0..k is the cdf's column of k's second charge
        weight = cdf[:, 2 * k + 1].ravel()[row] + sum(flow[:, j, k].ravel()[row] * m for j, m in enumerate(modes))
        pair += weight <= scaled
    return 2 * pair + second


def draw_species(arrays: dict, counts: np.ndarray, expected: np.ndarray | None, eta_s: np.ndarray | None,
                 phi_edges: np.ndarray, mult: np.ndarray, pt_bin: np.ndarray, phi_bin: np.ndarray,
                 u: np.ndarray) -> np.ndarray:
    """The species (index into arrays['pid'], mixture_arrays) of the particles of histograms counts (B, P, Q), mult
    (B,) particles each in event order, in pT and azimuthal bins pt_bin, phi_bin (n,), from uniforms u (n,): the
    shares of each event's eta/s (eta_s (B,), else min-bias) and dN/dy (the sum of the smooth spectrum's expected
    counts `expected` (B, P, Q), else of the histogram), and with `expected` and flow ratios each species' own
    flow (flowing_species_index)."""
    flowing = expected is not None and eta_s is not None and "class_flow" in arrays
    if flowing:  # the flow vectors' products give the counts per pT row too, so dN/dy costs no second pass
        basis = azimuthal_basis(phi_edges, arrays["flow_harmonics"])
        rows, vectors = charged_flow_vectors(expected, basis, arrays["flow_ratio_max"])
        dndy = rows.sum(1)
    else:
        dndy = None if eta_s is None else (counts if expected is None else expected).reshape(len(counts), -1).sum(1)
    cdf = record_species_cdf(arrays, eta_s, dndy)
    record = np.repeat(np.arange(len(counts)), mult) if len(cdf) > 1 or flowing else None
    if not flowing:
        return species_index(cdf, record, pt_bin, u)
    flow = record_flow_weights(arrays, eta_s, dndy)
    return flowing_species_index(cdf, flow, vectors, basis, record, pt_bin, phi_bin, u)
