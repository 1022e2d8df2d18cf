"""Compare closure runs of the spectra model (benchmarks/spectra_closure.py outputs) on the same initial states.

    python benchmarks/spectra_compare.py base=closure_a/closure.json new=closure_b/closure.json [--json out.json]

The first run is the baseline. For each run, over every (eta/s, centrality class, harmonic n = 2, 3) it reports:

- the per-IC flow residuals of the smooth spectra (`smooth_response`: rms of V_n(model) - V_n(reference) over the
  class's ICs, the mean of each IC's K spectra): in how many combinations the run's is smaller / larger than the
  baseline's, the median relative change, and the sum of their squares. The residuals are paired per IC (both runs
  on the same ICs and reference records), so they rank two models or two samplings more steadily than the ratios;
- the response slope of V_n(model) on V_n(reference) (`smooth_response`), per harmonic: its range over the
  (eta/s, class) combinations and the median of its paired change against the baseline, and the range of the
  slopes' standard errors over the ICs (`slope_error`, closures made since 2026-12-06). A paired change between two
  runs on the same ICs is known better than that error; a slope on one IC sample against one on another is not.
  A slope below 1 is a shrunk response, which lowers v_n{2} whatever the residual; a sampler that only widens the
  spread among an IC's samples raises v_n{2} (in quadrature) with its residual, not its slope;
- the rms spread of V_n among an IC's K samples (`sample_spread_rms`, K > 1), its range over the combinations;
- the issue-7 targets missed: bulk v_n{2}(pT) of the smooth spectra off by more than 5 % in some bin, smooth
  v_n{2} off by more than 5 %, multiplicity or <pT> off by more than 2 %, each listed as class/eta-s/observable
  with its bootstrap error (of the worst bin for v_n(pT)) where the closure has one.

The runs must hold the same eta/s values and classes with the same numbers of ICs (else the residuals are not
paired), which is checked. Prints a table; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FLOW_TARGET, ONE_PARTICLE_TARGET = 0.05, 0.02


def response(results: dict, field: str) -> dict[tuple[str, str, str], float]:
    """{(eta/s, class, 'V2'|'V3'): value} of a `smooth_response` field ('residual_rms', 'slope') of a closure's results."""
    return {(eta, label, h): cls["smooth_response"][h][field]
            for eta, per_eta in results.items() for label, cls in per_eta["classes"].items() for h in ("V2", "V3")}


def slope_summary(slopes: dict[tuple[str, str, str], float], base: dict[tuple[str, str, str], float],
                  errors: dict[tuple[str, str, str], float] | None = None) -> dict[str, dict]:
    """Per harmonic: the range of the response slopes over the combinations and the median paired change
    against the baseline's slopes; with `errors` (the closures' slope_error) also the range of the slopes' standard
    errors over the ICs, which says how far a slope of this IC sample may lie from that of another."""
    out = {}
    for h in ("V2", "V3"):
        keys = [k for k in base if k[2] == h]
        mine = np.array([slopes[k] for k in keys])
        out[h] = {"range": [float(mine.min()), float(mine.max())],
                  "median_change": float(np.median(mine - np.array([base[k] for k in keys])))}
        if errors is not None:
            out[h]["error_range"] = [min(errors[k] for k in keys), max(errors[k] for k in keys)]
    return out


def slope_errors(results: dict) -> dict[tuple[str, str, str], float] | None:
    """The slopes' standard errors of a closure, or None for one made before it recorded them."""
    try:
        return response(results, "slope_error")
    except KeyError:
        return None


def sample_spreads(results: dict) -> list[float]:
    """The rms V_n spreads among an IC's K samples over all combinations (empty for K = 1)."""
    return [cls["smooth_response"][h]["sample_spread_rms"] for per_eta in results.values()
            for cls in per_eta["classes"].values() for h in ("V2", "V3") if "sample_spread_rms" in cls["smooth_response"][h]]


def _worst_bulk_bin_error(differential: dict) -> float | None:
    """The bootstrap error of the ratio in the bulk bin whose deviation is `bulk_max_deviation` (None without errors)."""
    if "ratio_err" not in differential:
        return None
    deviations = np.abs(np.asarray(differential["ratio"], dtype=float) - 1)
    worst = int(np.nanargmin(np.abs(deviations - differential["bulk_max_deviation"])))
    return float(differential["ratio_err"][worst])


def _with_error(text: str, error: float | None, scale: float = 1.0, digits: int = 3) -> str:
    """`text +- scale * error`, or `text` alone where there is no finite error."""
    return text if error is None or not np.isfinite(error) else f"{text} +- {scale * error:.{digits}f}"


def misses(results: dict) -> list[str]:
    """The issue-7 targets a closure misses, as 'class/eta-s/observable: value +- bootstrap error' (the error where
    the closure has one), so that a miss within its error of the target can be told from a clear one."""
    out = []
    for eta, per_eta in results.items():
        for label, cls in per_eta["classes"].items():
            for key in ("v2{2}(pT)", "v3{2}(pT)"):
                differential = cls["smooth_differential"][key]
                dev = differential["bulk_max_deviation"]
                if dev > FLOW_TARGET:
                    value = _with_error(f"{100 * dev:.1f}", _worst_bulk_bin_error(differential), 100, 1)
                    out.append(f"{label}/{eta}/{key}: {value} %")
            for key, block, target in (("v2{2}", "smooth", FLOW_TARGET), ("v3{2}", "smooth", FLOW_TARGET),
                                       ("mult", "integrated", ONE_PARTICLE_TARGET), ("<pT>", "integrated", ONE_PARTICLE_TARGET)):
                entry = cls[block][key]
                if abs(entry["ratio"] - 1) > target:
                    value = _with_error(f"{entry['ratio']:.3f}", entry.get("ratio_err"))
                    out.append(f"{label}/{eta}/{key}: {value}")
    return out


def check_paired(base: dict, other: dict, name: str) -> None:
    """ValueError unless `other` holds the baseline's eta/s values and classes with the same numbers of ICs."""
    shape = lambda res: {(e, c): cls["events"] for e, per in res.items() for c, cls in per["classes"].items()}
    if shape(base) != shape(other):
        raise ValueError(f"run '{name}' is not on the baseline's initial states (eta/s, classes or IC counts differ); "
                         "compare closures of the same --reference files and classes")


def compare(runs: list[tuple[str, dict]]) -> list[dict]:
    """Summaries of each run against the first (see the module docstring)."""
    base, base_slopes = response(runs[0][1], "residual_rms"), response(runs[0][1], "slope")
    out = []
    for name, results in runs:
        check_paired(runs[0][1], results, name)
        mine = response(results, "residual_rms")
        change = np.array([mine[k] / base[k] - 1 for k in base])
        spreads = sample_spreads(results)
        out.append({
            "name": name,
            "combinations": len(base),
            "smaller": int(np.sum(change < -1e-12)), "larger": int(np.sum(change > 1e-12)),
            "median_change": float(np.median(change)),
            "sum_sq_residuals": float(sum(v * v for v in mine.values())),
            "slopes": slope_summary(response(results, "slope"), base_slopes, slope_errors(results)),
            "sample_spread_range": [min(spreads), max(spreads)] if spreads else None,
            "misses": misses(results),
        })
    return out


def read_results(path: str) -> dict:
    """The 'results' of a closure.json, or ValueError saying in one line what is wrong with the file."""
    try:
        results = json.loads(Path(path).read_text())["results"]
    except OSError as exc:
        raise ValueError(f"cannot read '{path}': {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"'{path}' is not JSON; give a closure.json") from None
    except (KeyError, TypeError):
        raise ValueError(f"'{path}' has no 'results'; give a closure.json of benchmarks/spectra_closure.py") from None
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=path/to/closure.json; the first is the baseline")
    parser.add_argument("--json", help="write the summaries here")
    args = parser.parse_args()
    runs = []
    for arg in args.runs:
        name, sep, path = arg.partition("=")
        if not sep:
            parser.error(f"give each run as NAME=path/closure.json, got '{arg}'")
        try:
            runs.append((name, read_results(path)))
        except ValueError as exc:
            parser.error(str(exc))
    try:
        summaries = compare(runs)
    except (ValueError, KeyError, TypeError) as exc:
        parser.error(f"{exc}" if isinstance(exc, ValueError) else f"a run lacks the closure field {exc}; give "
                     "closure.json files of benchmarks/spectra_closure.py with a smooth-spectrum model")
    for s in summaries:
        spread = "" if s["sample_spread_range"] is None else (
            f", sample spread {s['sample_spread_range'][0]:.4f}-{s['sample_spread_range'][1]:.4f}")
        print(f"{s['name']}: residual smaller in {s['smaller']}, larger in {s['larger']} of {s['combinations']} "
              f"(median {100 * s['median_change']:+.1f} %), sum of squares {s['sum_sq_residuals']:.3e}{spread}")
        print("  response slope " + ", ".join(
            f"{h} {v['range'][0]:.3f}-{v['range'][1]:.3f} (median {v['median_change']:+.3f}"
            + (f"; each +- {v['error_range'][0]:.3f}-{v['error_range'][1]:.3f})" if "error_range" in v else ")")
            for h, v in s["slopes"].items()))
        print(f"  targets missed ({len(s['misses'])}): {'; '.join(s['misses']) or 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": {n: str(p) for n, p in (a.partition('=')[::2] for a in args.runs)},
                                               "summaries": summaries}, indent=1))


if __name__ == "__main__":
    main()
