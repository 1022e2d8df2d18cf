"""Writes initial states as the real trento program's text output (`trento --output DIR`): one file N.dat per
event, N zero-padded to the width of the largest number, a header of '# key = value' lines, one grid row a line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def write_trento_text(folder: Path, profiles: np.ndarray, attrs: list[dict]) -> list[Path]:
    """profiles (N, G, G), attrs one dict per event (b, npart, mult, e2, ...); returns the files in event order."""
    folder.mkdir(parents=True, exist_ok=True)
    width = max(1, math.ceil(math.log10(len(profiles))))
    files = []
    for num, (grid, head) in enumerate(zip(profiles, attrs)):
        lines = [f"# event {num}"] + [f"# {key:5s} = {value:.10g}" for key, value in head.items()]
        lines += [" ".join(f"{v:.10g}" for v in row) for row in grid]
        path = folder / f"{num:0{width}d}.dat"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    return files
