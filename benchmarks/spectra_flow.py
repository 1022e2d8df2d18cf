"""Speed of `hicgen data flow` on a spectra file: the histograms' cumulant terms with and without the pT-summed
phi projection of binned spectra, alternated in one run, and the whole flow table.

    python benchmarks/spectra_flow.py --spectra spectra.h5 --records 1024 --repeats 3 --json out.json

(a) per_event_sums (hicgen.analysis.spectra_closure: the Q-cumulant terms v2{2..8}, v3{2,4} of every histogram) on
the first --records histograms, with the Q-vectors from the pT-summed phi projection (since 2026-12-07) and, in turn,
from every (pT, phi) bin as before (the same FlowParticles without the projection); the two must agree, and are
checked to 1e-9 relative; (b) flow_table over the whole file (reading, the per-record terms of histograms and smooth
spectra, the bootstrap), once. Microseconds per record; the best of --repeats for (a).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import time
from pathlib import Path
from unittest import mock

import h5py
import numpy as np

from hicgen.analysis import flow
from hicgen.analysis.spectra_closure import per_event_sums
from hicgen.analysis.flow_table import spectra_flow_table


def _without_projection(spectra, pt_edges, phi_edges):
    """from_spectra as before 2026-12-07: its entries only, every Q-vector summed over all (pT, phi) bins."""
    return dataclasses.replace(flow.from_spectra(spectra, pt_edges, phi_edges), cache={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spectra", type=Path, required=True, help="a hicgen-spectra file")
    parser.add_argument("--records", type=int, default=1024, help="histograms timed in (a)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with h5py.File(args.spectra, "r") as f:
        histograms = f["histogram"][: args.records].astype(np.float64)
        pt_edges, phi_edges = f["pt_edges"][()], f["phi_edges"][()]
        total_records = int(f["eta_s"].shape[0])
    n = len(histograms)
    timings: dict[str, list[float]] = {"projection": [], "every_bin": []}
    results = {}
    for _ in range(args.repeats):
        for name, make in (("projection", flow.from_spectra), ("every_bin", _without_projection)):
            start = time.perf_counter()
            with mock.patch("hicgen.analysis.spectra_closure.from_spectra", make):
                results[name] = per_event_sums(histograms, pt_edges, phi_edges)
            timings[name].append((time.perf_counter() - start) / n * 1e6)
    for key, value in results["every_bin"].items():
        np.testing.assert_allclose(results["projection"][key], value, rtol=1e-9, atol=1e-9 * np.abs(value).max())
    start = time.perf_counter()
    spectra_flow_table(args.spectra)
    table_us = (time.perf_counter() - start) / total_records * 1e6
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "command": "python benchmarks/spectra_flow.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "records_timed": n, "file_records": total_records,
        "per_event_sums_us_per_record": {k: {"best": min(v), "all": v} for k, v in timings.items()},
        "speedup": min(timings["every_bin"]) / min(timings["projection"]),
        "flow_table_us_per_record": table_us,
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
