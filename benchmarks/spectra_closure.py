"""Closure of the spectra model against its reference chain on held-out initial states (issue 7, "Must show").

    python benchmarks/spectra_closure.py --reference spectra.h5 --model weights/spectra --out closure/

For every record of --reference ('hicgen-spectra', from `hicgen truth hydro`) whose IC was held out in training
(the checkpoint's provenance val_ic_index, so --reference must then be the training file itself, which its sha256
in the provenance checks; --all-records uses every record, for a file of ICs the model never saw), the model
generates --samples-per-ic K spectra from the same resampled IC and eta/s, made histograms as
`hicgen spectra` makes them (Poisson draws from a smooth-spectrum model). The reference gets K histograms too:
the file's own histogram for K = 1, else K Poisson draws from the record's smooth spectrum, which is how the
chain samples its histogram; K > 1 shrinks the counting noise of both sides alike. Per trained eta/s and per
centrality class it compares, as model / reference ratios:

  1 particle:  multiplicity (sum of counts) and <pT> (count-weighted bin centres)
  2 particles: v2{2}, v3{2};  4: v2{4}, v3{4};  6: v2{6};  8: v2{8};  and the cumulant ratios v2{6}/v2{4}, v2{8}/v2{6}
  the normalized four-particle cumulants nc_n{4} = c_n{4} / c_n{2}^2 (n = 2, 3; -v_n{4}^4 / v_n{2}^4 where v_n{4}
  exists), compared as the difference model - reference: defined also where c_n{4} >= 0 leaves v_n{4} undefined,
  as for v3 in most classes (Gaussian-like v3 fluctuations put c3{4} near zero)
  v_n{2}(pT), n = 2, 3, in 8 bins of 0.25 GeV; the largest |ratio - 1| among the bins centred in the bulk
  (0.3 < pT < 1.5 GeV by default)

The analysis is hicgen.analysis.spectra_closure's (`hicgen validate` runs it on two spectra files). Flow cumulants
come from hicgen.analysis.flow (Q-vectors of the binned spectrum, generic framework). Errors on
every ratio: paired bootstrap over initial states (--bootstrap resamplings; the same resampled ICs, with all
their K histograms, for model and reference). Also per IC: the spread of the model / reference ratio of the
expected multiplicity, and for a smooth-spectrum model the flow of the smooth spectra themselves (v_n{2}, v_n{4}
from the per-IC v_n of the expected distribution, n = 2, 3, and v_n{2}(pT) against the 0-2 GeV flow vector,
each of an IC's K generated spectra counting as one event, as `hicgen spectra` returns them): the learned
response without counting noise; and how the per-IC flow vectors (of the mean of an IC's K spectra) follow the
reference's (slope of V_n(model) on V_n(reference) and the rms residual, which tells a shrunk response from per-IC scatter; with
K > 1 also the rms spread of V_n among an IC's K samples, which tells a systematic per-IC error from sampling noise).
Centrality is a property of the IC, so both samples are classified identically: the percentile of the record's
TRENTo multiplicity among all ICs of --centrality-ic (a min-bias IC file; default: the reference records
themselves), scaled to the percent of the measured Pb-Pb cross section that sample covers: computed from the TRENTo parameters
the --centrality-ic file records (hicgen.truth.trento.sample_coverage: 69.97 % for the shipped `--b-max 13.07`
files) or given as --coverage, as benchmarks/hydro.py does. With a min-bias calibration file, several --reference files
(e.g. a min-bias and a central-enriched one) can be pooled without biasing the class edges.
Targets (issue 7): flow within 5 %, multiplicity and <pT> within 2 %.
Writes out/closure.json, out/closure_ratios.png (the ratio panel of paper 000, fig. 4: gray band 1 +- 0.05;
filled circles from the histograms, open squares the flow of the smooth spectra) and out/closure_centrality.png
(paper 000, fig. 2: multiplicity, <pT> and flow against centrality, reference bands and model points per eta/s, over
their ratio) and, for a model of smooth spectra, out/closure_pt.png (fig. 3: v2{2}(pT), v3{2}(pT) of the smooth
spectra in every other class).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hicgen.analysis.flow import centrality_percentile
from hicgen.analysis.spectra_closure import (
    CLASSES, TARGET, closure_results, plot, plot_differential, plot_vs_centrality, summary_lines,
)
from hicgen.checkpoint import file_sha256
from hicgen.diffusion.samplers import make_grid
from hicgen.errors import InputError
from hicgen.spectra.generate import generate_spectra, load_spectra_model, poisson_histograms, to_histograms
from hicgen.truth.spectra_data import bin_measure, read_spectra
from hicgen.truth.trento import sample_coverage, trento_config_of
from hicgen.truth.trento_io import read_multiplicities


def read_reference(path: str, model, all_records: bool, with_histograms: bool) -> dict[str, np.ndarray]:
    """The records of one reference file the closure uses (all, or the model's held-out ICs), expected counts per bin.
    InputError when the file is missing or not a hicgen-spectra file, or when held-out ICs are asked of a file other
    than the model's training file (its IC numbers would pick arbitrary records)."""
    data, _ = read_spectra(path)
    provenance = model.config["provenance"]
    if not all_records and file_sha256(path) != provenance.get("data_sha256"):
        raise InputError(f"'{path}' is not the file the model was trained on ('{Path(str(provenance.get('data'))).name}'), "
                         "whose IC numbers name its held-out ICs: give that file, or --all-records for ICs it never saw")
    keep = np.ones(len(data["ic_index"]), bool) if all_records else np.isin(data["ic_index"], provenance["val_ic_index"])
    rows = np.flatnonzero(keep)
    pt_edges, phi_edges = data["pt_edges"], data["phi_edges"]
    out = {"pt_edges": pt_edges, "phi_edges": phi_edges, "ic": data["ic"][rows], "eta_s": data["eta_s"][rows],
           "trento_mult": data["mult"][rows],
           "expected": data["spectrum"][rows].astype(np.float64) * bin_measure(pt_edges, phi_edges)}
    if with_histograms:
        out["histogram"] = data["histogram"][rows].astype(np.float64)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, nargs="+", help="'hicgen-spectra' file(s) of the reference chain")
    parser.add_argument("--model", required=True, help="spectra checkpoint folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--all-records", action="store_true", help="use every record, not only the held-out ICs")
    parser.add_argument("--steps", type=int, help="ODE steps (default: the checkpoint's measured setting, else 12)")
    parser.add_argument("--sampler", help="ODE sampler (default: the checkpoint's, else dpm++2m)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="spectra per network batch (default: "
                        "hicgen spectra's for the device, 32 on a CPU, 256 on CUDA)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (long runs)")
    parser.add_argument("--samples-per-ic", type=int, default=1, help="histograms per IC on both sides (K)")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--bulk", type=float, nargs=2, default=(0.3, 1.5), help="pT range [GeV] of the v_n(pT) check")
    parser.add_argument("--plot-class", default="0-5%", help="centrality class of the ratio panel")
    parser.add_argument("--classes", type=float, nargs="+", default=CLASSES, help="centrality class edges [%%]")
    parser.add_argument("--centrality-ic", help="min-bias IC file whose TRENTo multiplicities define the centrality")
    parser.add_argument("--coverage", type=float, help="centrality range [%%] the min-bias sample covers "
                        "(default: computed from the --centrality-ic file's TRENTo parameters)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logsnr-range", nargs="+", default=["model"], metavar="LO HI",
                        help="time grid of the sampler: 'model' (the checkpoint's), 'full', or two log-SNR values")
    args = parser.parse_args()
    if args.samples_per_ic < 1 or args.bootstrap < 2 or (args.steps is not None and args.steps < 1):
        parser.error("--samples-per-ic and --steps must be >= 1 and --bootstrap >= 2")

    model = load_spectra_model(args.model, args.device)
    args.steps = model.default_steps if args.steps is None else args.steps
    if args.logsnr_range != ["model"]:
        try:
            model.set_logsnr_range(None if args.logsnr_range == ["full"] else tuple(float(v) for v in args.logsnr_range))
            make_grid(model.schedule, args.steps, "logsnr", model.logsnr_range)
        except (ValueError, TypeError):
            parser.error(f"--logsnr-range takes 'model', 'full' or two numbers, got {' '.join(args.logsnr_range)}")
    k = args.samples_per_ic
    try:  # a missing or foreign file is one line, before anything is computed
        records = [read_reference(path, model, args.all_records, k == 1) for path in args.reference]
        calibration = read_multiplicities(args.centrality_ic) if args.centrality_ic else None
        if args.coverage is None and not args.centrality_ic:
            raise InputError("give --centrality-ic (a 'hicgen truth trento' min-bias file) or --coverage")
        coverage = ({"percent": args.coverage} if args.coverage is not None
                    else sample_coverage(trento_config_of(args.centrality_ic)))
    except InputError as err:
        parser.error(str(err))
    pt_edges, phi_edges = records[0]["pt_edges"], records[0]["phi_edges"]
    if any(not (np.array_equal(r["pt_edges"], pt_edges) and np.array_equal(r["phi_edges"], phi_edges)) for r in records):
        parser.error("the --reference files have different (pT, phi) bins; give files of one hydro production")
    expected, ic, eta_s, trento_mult = (np.concatenate([r[key] for r in records])
                                        for key in ("expected", "ic", "eta_s", "trento_mult"))
    ref = np.concatenate([r["histogram"] for r in records]) if k == 1 else None
    rows = np.arange(len(eta_s))
    if not rows.size:
        parser.error("no held-out records in the reference file (was the model trained on another file? try --all-records)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibration = trento_mult if calibration is None else calibration
    print(f"centrality: the sample covers {coverage['percent']:.2f} % of the measured Pb-Pb cross section", flush=True)
    centrality_of = centrality_percentile(calibration, trento_mult) * coverage["percent"] / 100.0
    ic_of, k_of = np.repeat(rows, k), np.tile(np.arange(k), rows.size)
    if ref is None:  # K draws per record, seeded apart from the chain's own histogram and from the model's
        ref = poisson_histograms(np.repeat(expected, k, axis=0), args.seed + 1_000_003, ic_of, k_of).astype(np.float64)
    gen = np.empty((rows.size * k,) + expected.shape[1:], np.float32)
    smooth = np.empty(gen.shape, np.float32) if model.generates_expected_counts else None
    for eta in np.unique(eta_s):
        sel = np.flatnonzero(eta_s == eta)
        out_rows = (sel[:, None] * k + np.arange(k)).ravel()
        generated = generate_spectra(model, ic[sel], float(eta), k, args.steps, args.sampler, args.seed, args.device,
                                     args.precision, args.batch_size, compiled=args.compile)
        if smooth is not None:  # a histogram model has no smooth spectra to compare
            smooth[out_rows] = generated
        gen[out_rows] = to_histograms(model, generated, args.seed, ic_of[out_rows], k_of[out_rows])
    results = closure_results(expected, ref, eta_s, centrality_of, gen, smooth, k, pt_edges, phi_edges, args.classes,
                              args.bootstrap, tuple(args.bulk), np.random.default_rng(args.seed))
    meta = {"reference": args.reference, "centrality_ic": args.centrality_ic, "coverage_percent": coverage["percent"],
            "coverage": coverage,
            "model": str(args.model), "steps": args.steps or model.default_steps,
            "sampler": args.sampler or model.default_sampler, "logsnr_range": model.logsnr_range,
            "samples_per_ic": k, "all_records": args.all_records,
            "bootstrap": args.bootstrap, "targets": TARGET, "bulk_pt": list(args.bulk)}
    (out / "closure.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))
    plot(results, args.plot_class, out / "closure_ratios.png")
    figures = [out / "closure_ratios.png"]
    if any(res["classes"] for res in results.values()):  # the figures over classes need one
        figures.append(out / "closure_centrality.png")
        plot_vs_centrality(results, figures[-1])
        if smooth is not None:
            figures.append(out / "closure_pt.png")
            plot_differential(results, figures[-1])
    print("\n".join(summary_lines(results)))
    print(f"wrote {out / 'closure.json'} and " + ", ".join(str(path) for path in figures))


if __name__ == "__main__":
    main()
