"""The spectra model card's closure table from a closure run (benchmarks/spectra_closure.py's closure.json).

    python benchmarks/spectra_card_table.py docs/spectra_bench/closure736_stage14/closure_default_1_4.json [--per-eta-s]

One markdown row per centrality class, each cell the range of the model / reference ratio over the eta/s values of
the run (with --per-eta-s one row per class and eta/s, each cell its value): ICs per eta/s, multiplicity and <pT>
(the histograms'), v2{2}, v3{2}, v2{4} and v4{2} of the smooth spectra (undefined where the reference's cumulant is
not of the right sign in some bootstrap: "undef."), the largest |ratio - 1| of the smooth v2{2}(pT) and v3{2}(pT)
in the bulk bins, and the V2 and V3 response slopes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# (column header, section of a class, observable, field)
COLUMNS = (
    ("mult", "integrated", "mult", "ratio"),
    ("<pT>", "integrated", "<pT>", "ratio"),
    ("v2{2}", "smooth", "v2{2}", "ratio"),
    ("v3{2}", "smooth", "v3{2}", "ratio"),
    ("v2{4}", "smooth", "v2{4}", "ratio"),
    ("v4{2}", "smooth", "v4{2}", "ratio"),
    ("bulk v2(pT)", "smooth_differential", "v2{2}(pT)", "bulk_max_deviation"),
    ("bulk v3(pT)", "smooth_differential", "v3{2}(pT)", "bulk_max_deviation"),
    ("V2 slope", "smooth_response", "V2", "slope"),
    ("V3 slope", "smooth_response", "V3", "slope"),
)


def value_range(values: list[float], percent: bool = False) -> str:
    """'lo-hi' of finite values (one value alone), as a percentage for deviations; 'undef.' when none is finite."""
    finite = sorted(v for v in values if v is not None and math.isfinite(v))
    if not finite:
        return "undef."
    text = [f"{100 * v:.1f}" if percent else f"{v:.3f}" for v in (finite[0], finite[-1])]
    cell = text[0] if text[0] == text[1] else f"{text[0]}-{text[1]}"
    return cell + (" %" if percent else "")


def _row(label: str, per_eta: list[dict]) -> str:
    """One markdown row: the class label, its ICs per eta/s, and each column's range over `per_eta`."""
    cells = [label, "/".join(str(cls["events"]) for cls in per_eta)]
    for _, section, name, field in COLUMNS:
        values = [cls.get(section, {}).get(name, {}).get(field) for cls in per_eta]
        cells.append(value_range(values, percent=field == "bulk_max_deviation"))
    return "| " + " | ".join(cells) + " |"


def class_table(results: dict, per_eta_s: bool = False) -> list[str]:
    """Markdown lines of the card's table: per class, ranges over the eta/s values of `results`; with per_eta_s a
    row per class and eta/s ('30-70%, eta/s 0.05'), classes first."""
    etas = list(results)
    labels = list(results[etas[0]]["classes"])
    lines = ["| class | ICs | " + " | ".join(c[0] for c in COLUMNS) + " |", "| --- " * (len(COLUMNS) + 2) + "|"]
    for label in labels:
        present = [eta for eta in etas if label in results[eta]["classes"]]
        if per_eta_s:
            lines += [_row(f"{label}, eta/s {eta}", [results[eta]["classes"][label]]) for eta in present]
        else:
            lines.append(_row(label, [results[eta]["classes"][label] for eta in present]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("closure", help="closure.json of benchmarks/spectra_closure.py")
    parser.add_argument("--per-eta-s", action="store_true", help="a row per class and eta/s instead of ranges")
    args = parser.parse_args()
    run = json.loads(Path(args.closure).read_text())
    meta = run["meta"]
    print(f"eta/s {', '.join(run['results'])}; {meta.get('steps')} {meta.get('sampler')} steps on "
          f"{meta.get('logsnr_range')}, K = {meta.get('samples_per_ic')}")
    print("\n".join(class_table(run["results"], args.per_eta_s)))


if __name__ == "__main__":
    main()
