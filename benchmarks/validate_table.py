"""A point-cloud model card's validation table from `hicgen validate` reports, one column per report.

    python benchmarks/validate_table.py "stage 2=report_stage2" "stage 1=report_stage1" "truth vs truth=report_truth"

Each argument is LABEL=REPORT_DIR (the folder holding metrics.json). One markdown row per metric: the candidate's
mean multiplicity, the ratios to the reference with their errors, the W1 scores, the Q closure, the flow ratios,
the classifier AUCs and the ratio of the two-particle cumulants c2{2}; "n/a" where a report lacks the metric
(e.g. --no-classifier) or it is undefined.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

# (row label, metric, where its error is: a top-level key, a key of details.flow_ratio_errors, or None)
ROWS = (
    ("mult ratio (candidate / reference)", "mult_ratio", "mult_ratio_err"),
    ("<pT> ratio", "mean_pt_ratio", "mean_pt_ratio_err"),
    ("`w1_event_mean` (units of reference std)", "w1_event_mean", None),
    ("`w1_particle_mean`", "w1_particle_mean", None),
    ("`q_closure_rho_x` / `_y`", ("q_closure_rho_x", "q_closure_rho_y"), None),
    ("`cos2dpsi`", "cos2dpsi", None),
    ("`species_max_abs_diff`", "species_max_abs_diff", None),
    ("v2{2} ratio", "v2_2_ratio", "flow:v2_2_ratio"),
    ("v2{4} ratio", "v2_4_ratio", "flow:v2_4_ratio"),
    ("v3{2} ratio", "v3_2_ratio", "flow:v3_2_ratio"),
    ("v2{SP} ratio", "v2_sp_ratio", "flow:v2_sp_ratio"),
    ("`auc_event`", "auc_event", "auc_event_err"),
    ("`auc_particle`", "auc_particle", "auc_particle_err"),
)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _format(value: float, error: float | None = None) -> str:
    """Three significant digits; with an error, 'value +- error' with the error's two and the value to the same
    decimal place."""
    if error is None or error <= 0:
        return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    decimals = max(0, 1 - math.floor(math.log10(error)))
    return f"{value:.{decimals}f} +- {error:.{decimals}f}"


def cell(metrics: dict, metric: str | tuple[str, ...], error: str | None) -> str:
    """One table cell: the metric (several joined by ' / '), '+- error' where the report has one, else 'n/a'."""
    if isinstance(metric, tuple):
        return " / ".join(cell(metrics, name, None) for name in metric)
    value = _number(metrics.get(metric))
    if value is None:
        return "n/a"
    if error is None:
        return _format(value)
    if error.startswith("flow:"):
        return _format(value, _number(metrics.get("details", {}).get("flow_ratio_errors", {}).get(error[5:])))
    return _format(value, _number(metrics.get(error)))


def c2_ratio_cell(metrics: dict) -> str:
    """Candidate / reference of the all-event two-particle cumulant c2{2} = v2{2}^2, with its error: defined also
    where the candidate's c2{2} is negative and v2{2} has no value."""
    flow = metrics.get("details", {}).get("flow", {})
    try:
        ref, cand = (flow[side]["cumulants"]["0-100%"]["n=2"] for side in ("reference", "candidate"))
    except (KeyError, TypeError):
        return "n/a"
    values = [_number(c.get(k)) for c in (ref, cand) for k in ("c{2}", "c{2}_err")]
    if None in values or values[0] == 0:
        return "n/a"
    c_ref, e_ref, c_cand, e_cand = values
    ratio = c_cand / c_ref
    return _format(ratio, math.hypot(e_cand / c_ref, ratio * e_ref / c_ref))


def card_table(reports: dict[str, dict]) -> list[str]:
    """Markdown lines: a header with the report labels, the candidate's mean multiplicity, one row per ROWS and the
    c2{2} ratio."""
    labels = list(reports)
    lines = ["| metric | " + " | ".join(labels) + " |", "| --- " * (len(labels) + 1) + "|"]
    means = []
    for metrics in reports.values():
        candidate = metrics.get("details", {}).get("means", {}).get("candidate", {})
        mult, err = _number(candidate.get("mult")), _number(candidate.get("mult_err"))
        means.append("n/a" if mult is None else _format(mult, err))
    lines.append("| mean multiplicity of the candidate | " + " | ".join(means) + " |")
    for label, metric, error in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(m, metric, error) for m in reports.values()) + " |")
    lines.append("| c2{2} ratio (all events) | " + " | ".join(c2_ratio_cell(m) for m in reports.values()) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", metavar="LABEL=REPORT_DIR", help="a column: its label and report folder")
    args = parser.parse_args()
    reports = {}
    for item in args.reports:
        label, sep, folder = item.partition("=")
        if not sep or not (Path(folder) / "metrics.json").is_file():
            parser.error(f"'{item}': give LABEL=REPORT_DIR, a folder with the metrics.json of hicgen validate")
        reports[label] = json.loads((Path(folder) / "metrics.json").read_text())
    print("\n".join(card_table(reports)))


if __name__ == "__main__":
    main()
