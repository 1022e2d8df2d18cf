"""Whether initial states carry the entropy scale of a spectra model's training ICs.

A TRENTo profile is norm x T_R. Its overall scale, the normalisation (`trento --normalization`, default 1;
`hicgen truth trento --norm`, default 181, tuned to ALICE's 0-5 % multiplicity with hicgen's hydro chain), sets the
entropy and so the multiplicity the hydro chain, and a model trained on it, give. A spectra model knows only the
scale of its training ICs: fed profiles made with another normalisation it extrapolates without knowing, so
`hicgen spectra` refuses them unless --allow-extrapolation.

The measure is the standard one of heavy-ion physics, the entropy per participant: the TRENTo multiplicity over the
participant number, mult / npart, which both the trento program and `hicgen truth trento` record per event. It
scales with the normalisation but hardly with centrality once a few tens of nucleons take part (the shipped
model's band, from ICs made with its training ICs' settings, is in its model card). The training band is the 1st
to 99th percentile over the training ICs with npart >= MIN_NPART; the input passes when the median over its ICs
with npart >= MIN_NPART lies inside it.
Files without mult or npart, and blocks with fewer than MIN_ICS such ICs (only peripheral events), go unchecked.
"""

from __future__ import annotations

import numpy as np

from hicgen.errors import InputError

MIN_NPART = 50  # participants from which mult / npart no longer depends much on centrality
MIN_ICS = 8  # ICs a block needs for a verdict: the median of fewer could stray outside the band by chance
BAND_PERCENTILES = (1.0, 99.0)
MIN_BAND_ICS = 50  # training ICs with npart >= MIN_NPART needed to set a band


def entropy_per_participant(mult: np.ndarray, npart: np.ndarray) -> np.ndarray:
    """mult / npart of the ICs with npart >= MIN_NPART and both values finite."""
    mult, npart = np.asarray(mult, np.float64), np.asarray(npart, np.float64)
    usable = np.isfinite(mult) & np.isfinite(npart) & (npart >= MIN_NPART)
    return mult[usable] / npart[usable]


def training_band(mult: np.ndarray, npart: np.ndarray, source: str) -> dict | None:
    """The checkpoint's record of its training ICs' entropy per participant (config.json
    "ic_entropy_per_participant"): the BAND_PERCENTILES percentiles and the median of mult / npart over the ICs with
    npart >= MIN_NPART, their number and `source` (where the ICs came from); None with fewer than MIN_BAND_ICS."""
    ratio = entropy_per_participant(mult, npart)
    if ratio.size < MIN_BAND_ICS:
        return None
    low, median, high = np.percentile(ratio, [BAND_PERCENTILES[0], 50.0, BAND_PERCENTILES[1]])
    return {"low": float(low), "median": float(median), "high": float(high), "min_npart": MIN_NPART,
            "ics": int(ratio.size), "source": source}


def check_ic_scale(mult: np.ndarray, npart: np.ndarray, band: dict | None, allow_extrapolation: bool = False) -> None:
    """InputError unless the median mult / npart of these ICs (those with npart >= the band's min_npart, at least
    MIN_ICS of them) lies inside the training `band`; nothing to check without a band, without enough such ICs, or
    with allow_extrapolation."""
    if band is None or allow_extrapolation:
        return
    mult, npart = np.asarray(mult, np.float64), np.asarray(npart, np.float64)
    usable = np.isfinite(mult) & np.isfinite(npart) & (npart >= band["min_npart"])
    if usable.sum() < MIN_ICS:
        return
    median = float(np.median(mult[usable] / npart[usable]))
    if band["low"] <= median <= band["high"]:
        return
    raise InputError(
        f"the initial states carry {median:.3g} units of TRENTo entropy per participant (mult / npart, median of "
        f"{int(usable.sum())} ICs with npart >= {band['min_npart']}), the model's training ICs {band['median']:.3g} "
        f"(98 % within {band['low']:.3g}-{band['high']:.3g}): they were made with another TRENTo normalisation; make "
        f"them with ~{band['median'] / median:.3g} times that normalisation (trento --normalization, hicgen truth "
        f"trento --norm), as the training ICs were made ({band['source']}), or pass --allow-extrapolation"
    )
