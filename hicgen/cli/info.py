"""`hicgen --version` and `hicgen info`."""

from __future__ import annotations

from typing import Optional

import typer

from hicgen import __version__
from hicgen.cli.app import app


def _version_callback(value: bool) -> None:
    if value:
        print(f"hicgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    """Heavy-ion event generator driven by diffusion models."""


@app.command("info")
def info() -> None:
    """Show versions, the compute device found and the shipped models."""
    from rich.console import Console
    from rich.table import Table

    from hicgen.environment import environment_report

    report = environment_report()
    console = Console()
    table = Table(title=f"hicgen {__version__}", show_header=False)
    for key, value in report["environment"].items():
        table.add_row(key, str(value))
    console.print(table)
    models = Table(title="shipped models")
    for column in ("name", "kind", "path"):
        models.add_column(column)
    for model in report["models"]:
        models.add_row(model["name"], model["kind"], model["path"])
    if not report["models"]:
        models.add_row("(none found)", "", report["weights_dir"])
    console.print(models)
