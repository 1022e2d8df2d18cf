"""Particle species of `hicgen spectra --particles`: the reference chain's pi / K / p shares per pT bin, by eta/s
and event multiplicity.

A spectra checkpoint's config.json "species" holds the chain's mixture (species_mixture): 'pid' (S,) PDG ids,
'fraction' (S,) their shares over all records and pT, 'pt_fraction' (S x P) their shares in each pT bin over all
records and, from training files with per-record species yields (`hicgen truth hydro` since 2026-12-06),
'classes': the shares per pT bin in quantile classes of the records' charged multiplicity for each eta/s of the
file (multiplicity_class_shares). The multiplicity is the spectrum's: dN/dy of charged hadrons in |y| < 0.5 and
the spectra's pT range, the sum of the smooth spectrum's expected counts, which the sampler knows for each record.

At fixed pT the shares change with centrality and viscosity (radial flow moves heavy particles to higher pT): in
the 480-record min-bias run of the shipped model's mixture the proton share at 1.9 GeV goes from 0.115 in the least
central quarter at eta/s 0 to 0.088 in the most central at eta/s 0.2. A record's shares (record_species_cdf) are
those of its eta/s and dN/dy, interpolated linearly in eta/s between the file's values and in log dN/dy between the
classes' mean log dN/dy, constant beyond the outermost ones: a convex mix of measured share vectors, so never
negative and summing to one.
"""

from __future__ import annotations

import numpy as np

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


def multiplicity_class_shares(pt_dndy: np.ndarray, eta_s: np.ndarray, classes: int = SPECIES_CLASSES) -> dict:
    """The species shares per pT bin in the multiplicity classes (multiplicity_classes) of records with yields
    pt_dndy (N, H, P) of H charge pairs and eta/s eta_s (N,), a record's dN/dy being the sum of its yields; each
    class's summed yields give its shares (per_charge_shares). Returns {'eta_s': [E], 'log_dndy': E lists of the
    classes' mean log dN/dy, 'dndy_range': E lists of the classes' [lowest, highest] dN/dy, 'pt_fraction':
    E x C x 2H x P}."""
    pt_dndy = np.asarray(pt_dndy, np.float64)
    dndy = pt_dndy.sum(axis=(1, 2))
    table: dict = {"eta_s": [], "log_dndy": [], "dndy_range": [], "pt_fraction": []}
    for value, groups in multiplicity_classes(dndy, eta_s, classes):
        table["eta_s"].append(value)
        table["log_dndy"].append(_rounded(np.array([np.log(dndy[g]).mean() for g in groups])))
        table["dndy_range"].append(_rounded(np.array([[dndy[g].min(), dndy[g].max()] for g in groups])))
        table["pt_fraction"].append(_rounded(np.stack([per_charge_shares(pt_dndy[g].sum(0)) for g in groups])))
    return table


def species_mixture(attrs: dict, pt_dndy: np.ndarray | None = None, eta_s: np.ndarray | None = None,
                    classes: int = SPECIES_CLASSES) -> dict | None:
    """The pi/K/p charge mixture of a reference-chain file, if it records one.

    Looks for attributes `species_pid` (S,) PDG ids and `species_fraction` (S,) yield fractions of the charged
    hadrons in the file, and `species_pt_fraction` (S, P), those fractions in each pT bin of the spectra; returns
    {'pid': [...], 'fraction': [...]} with 'pt_fraction' (S lists of P) when the file has it and 'classes'
    (multiplicity_class_shares) given the records' yields pt_dndy (N, S / 2, P) of charge pairs in pid's order and
    their eta_s (N,); or None (pions only then)."""
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
        table = multiplicity_class_shares(pt_dndy, eta_s, classes)
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


def mixture_arrays(mixture: dict) -> dict:
    """What sampling needs of a mixture, as arrays made once (config.json's nested lists cost ~6 us a record to
    convert for every chunk): 'pid' (S,), 'cdf' (1, S - 1, P) the cumulative min-bias shares per pT bin
    (cumulative_shares; P = 1 without 'pt_fraction') and, with 'classes', 'class_cdf' (eta/s grid (E,),
    [log dN/dy (C,)] and [cumulative shares (C, S - 1, P)] per eta/s)."""
    overall = np.cumsum(np.asarray(mixture["fraction"], np.float64))
    overall /= overall[-1]
    shares = np.asarray(mixture.get("pt_fraction", np.ones((len(overall), 1))), np.float64)
    out = {"pid": np.asarray(mixture["pid"], np.int64), "cdf": cumulative_shares(shares, overall)[None]}
    if "pt_fraction" not in mixture:
        out["cdf"] = overall[None, :-1, None].astype(np.float32)
    if "classes" in mixture:
        classes = mixture["classes"]
        out["class_cdf"] = (np.asarray(classes["eta_s"], np.float64),
                            [np.asarray(v, np.float64) for v in classes["log_dndy"]],
                            [cumulative_shares(np.asarray(v, np.float64), overall) for v in classes["pt_fraction"]])
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


def record_species_cdf(mixture: dict, eta_s: np.ndarray | None = None, dndy: np.ndarray | None = None) -> np.ndarray:
    """Cumulative species shares (R', S - 1, P') for species_index, of a mixture (config.json's or mixture_arrays'):
    per record (R' = R) from its multiplicity classes given the records' eta_s and charged dN/dy dndy (R,), bilinear
    in (eta/s, log dN/dy) between the tabulated values and constant beyond them; else the min-bias shares (R' = 1).
    The cumulative shares of a mix of share vectors are the same mix of theirs, so the tables are mixed directly."""
    arrays = mixture if "cdf" in mixture else mixture_arrays(mixture)
    if "class_cdf" not in arrays or eta_s is None or dndy is None:
        return arrays["cdf"]
    eta_grid, log_grids, tables = arrays["class_cdf"]
    e_lo, e_hi, e_w = _bracket(eta_grid, np.asarray(eta_s, np.float64))
    log_dndy = np.log(np.maximum(np.asarray(dndy, np.float64), 1e-300))
    cdf = None
    for index, weight in ((e_lo, 1.0 - e_w), (e_hi, e_w)):
        for e in np.unique(index[weight > 0]):  # the records at one tabulated eta/s share its classes
            at = np.flatnonzero((index == e) & (weight > 0))
            c_lo, c_hi, c_w = _bracket(log_grids[e], log_dndy[at])
            w_hi = (weight[at] * c_w).astype(np.float32)
            part = tables[e][c_lo] * (weight[at].astype(np.float32) - w_hi)[:, None, None]
            part += tables[e][c_hi] * w_hi[:, None, None]
            if cdf is None and len(at) == len(log_dndy):  # all records at one eta/s (a run's usual block)
                cdf = part
                continue
            cdf = np.zeros((len(log_dndy), *tables[0].shape[1:]), np.float32) if cdf is None else cdf
            cdf[at] += part
    return cdf


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
