"""Output-path rules shared by every writer: never overwrite without permission, never leave half-written files."""

from __future__ import annotations

import os
from pathlib import Path

from hicgen.errors import InputError, OutputExistsError


def check_output(path: str | os.PathLike, overwrite: bool, suffixes: tuple[str, ...] | None = None) -> Path:
    """Validate an output path before any work starts: suffix known, directory writable, no silent overwrite."""
    path = Path(path)
    if suffixes is not None and not any(path.name.lower().endswith(s) for s in suffixes):
        raise InputError(f"output '{path}' has an unknown suffix; use one of {', '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"output '{path}' is a directory; give a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output '{path}' exists; refusing to overwrite it (use --overwrite to replace it)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write '{path}': directory '{parent}' does not exist (create it first)")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write '{path}': directory '{parent}' is not writable (choose another --out)")
    return path


def partial_path(path: Path) -> Path:
    """The temporary name a writer fills before renaming it to `path` on close."""
    return path.with_name(f".{path.name}.part")


def check_input(path: str | os.PathLike, what: str = "input") -> Path:
    """An existing, readable file, or InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file '{path}' does not exist (check the path)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} file '{path}' is not readable (check its permissions)")
    return path
