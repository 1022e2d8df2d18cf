"""The typer application objects and the small parsers every command shares.

Commands live in sibling modules (one per command group) and register on these objects;
each command parses and checks its options, then calls one library function.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hicgen.errors import InputError

if TYPE_CHECKING:
    from hicgen.truth.trento import CentralityCalibration

app = typer.Typer(
    name="hicgen",
    help="Heavy-ion event generator driven by diffusion models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
truth_app = typer.Typer(help="Reference generators that make training and validation data.", no_args_is_help=True)
data_app = typer.Typer(help="Inspect, measure and convert hicgen dataset files.", no_args_is_help=True)
app.add_typer(truth_app, name="truth")
app.add_typer(data_app, name="data")


def parse_count(text: str, option: str = "--events") -> int:
    """Parse a positive event count written as '2000', '1e6' or '1_000_000'."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise InputError(f"{option} must be a positive number such as 2000 or 1e6, got '{text}'") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise InputError(f"{option} must be a positive whole number such as 2000 or 1e6, got '{text}'")
    return int(value)


def parse_choice(text: str, choices: tuple[str, ...], option: str) -> str:
    """Return `text` matched case-insensitively against `choices`, or raise InputError."""
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise InputError(f"{option} must be one of {', '.join(choices)}, got '{text}'")


def parse_eta_s(text: str) -> list[float]:
    """'0.1' or '0,0.1,0.2' -> list of distinct eta/s values in [0, 1]."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--eta-s must be a number or a comma list such as 0,0.1,0.2, got '{text}'") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InputError(f"--eta-s values must lie in [0, 1], got '{text}'")
    if len(set(values)) < len(values):
        raise InputError(f"--eta-s lists a value twice in '{text}'; give each once")
    return values


COVERAGE_HELP = ("Percent of the measured Pb-Pb cross section the --centrality-ic sample covers (default: computed "
                 "from its TRENTo parameters, ~8 s; needed for files of the real trento program).")


def centrality_calibration_of(centrality_ic: Path | None, coverage: float | None) -> CentralityCalibration | None:
    """The centrality calibration of --centrality-ic [--coverage] (hicgen.truth.trento.centrality_calibration), or
    None without --centrality-ic; InputError for --coverage alone."""
    if coverage is not None and centrality_ic is None:
        raise InputError("--coverage needs --centrality-ic: the min-bias file whose TRENTo multiplicities it calibrates")
    if centrality_ic is None:
        return None
    from hicgen.truth.trento import centrality_calibration
    from hicgen.truth.trento_io import check_trento_path

    return centrality_calibration(check_trento_path(centrality_ic, "centrality-calibration"), coverage)
