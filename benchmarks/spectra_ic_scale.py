"""How far a spectra model follows the reference chain when its initial states carry another TRENTo normalisation,
or other TRENTo parameters.

    python benchmarks/spectra_ic_scale.py scale ic.h5 --factors 0.4,0.55,0.7,0.85,1,1.15,1.3,1.5,1.75,2.2 --out scaled.h5
    python benchmarks/spectra_ic_scale.py join ic_p+0.3.h5 ic_w0.5.h5 ... --out joined.h5
    hicgen truth hydro --ic scaled.h5 --eta-s 0.1 --out hydro.h5 [--shard i/N ..., hicgen truth merge]
    hicgen spectra --trento scaled.h5 --eta-s 0.1 -k 8 --allow-extrapolation --out model.h5
    python benchmarks/spectra_ic_scale.py compare scaled.h5 model.h5 hydro.h5 [hydro_part2.h5 ...] --json out.json
    python benchmarks/spectra_ic_scale.py accept ic.h5 [--checkpoint weights/spectra] [--json out.json]

`scale` writes every IC of a trento HDF5 file (`hicgen truth trento`'s or the trento program's) once per factor, its
profile and its `mult` times the factor: the same events made with factor x the normalisation (a TRENTo profile
is norm x T_R). `join` writes the ICs of several trento HDF5 files (made with other p, k, w, ...) one file after
the other, as many of each as the smallest holds. Either file's attributes `groups` and `ics_per_group` name its
consecutive groups of ICs. `compare` takes the chain's and the model's records of those ICs and, per group, the
model's mean multiplicity, <pT> and v2{2}, v3{2} over the chain's (smooth spectra: expected counts; per IC the mean
of the model's samples; bootstrap errors over the ICs) and the offset of the ICs' entropy per participant from the
model's training ICs (hicgen.spectra.ic_scale.scale_offset); for the factors of `scale`, the followed range: the
factors around 1, contiguous, at which every ratio, at every eta/s of both files, is within the issue's targets
(multiplicity and <pT> 2 %, v_n{2} 5 %). ICs the chain has no record of at some eta/s (its hydro went unstable:
attribute failed_ic_index) are left out of their group at every eta/s, and listed. `python scripts/set_ic_reference.py CHECKPOINT ics.h5 --followed
out.json` records that range in the checkpoint, and `hicgen spectra` then accepts ICs whose scale lies in it; the JSON
names the ODE solve the model's file was made with (`sampling`), which must be the checkpoint's default there.
`accept` gives, for blocks of ICs of the training settings (all impact parameters, central, peripheral), the
normalisation factors at which `hicgen spectra` takes them: the block's ICs with mult times a factor pass
hicgen.spectra.ic_scale.check_ic_scale from the lowest to the highest factor it prints (computed from the block's
measured offset and error, then confirmed by the check itself 0.1 % inside and outside each edge).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hicgen.analysis.flow import spectra_flow_vectors
from hicgen.environment import WEIGHTS_DIR
from hicgen.errors import InputError
from hicgen.spectra.ic_scale import SCALE_Z, accepted_range, check_ic_scale, followed_range, scale_offset
from hicgen.truth.spectra_data import bin_measure
from hicgen.truth.trento_io import TrentoReader, read_event_attrs

TARGETS = {"mult": 0.02, "<pT>": 0.02, "v2{2}": 0.05, "v3{2}": 0.05}


def _copy_event(source: h5py.Dataset, target: h5py.File, number: int, factor: float = 1.0) -> None:
    """Copy trento event `source` into `target` as event_<number>, profile and mult times `factor`."""
    event = target.create_dataset(f"event_{number}", data=source[()] * np.float32(factor) if factor != 1 else source[()])
    event.attrs.update(dict(source.attrs))
    if factor != 1:
        event.attrs["mult"] = source.attrs["mult"] * factor


def scale(ics: Path, factors: list[float], out: Path) -> None:
    """Write the ICs of `ics` once per factor (factor-major), profiles and mult scaled; attributes norm_factors,
    groups (x<factor>) and ics_per_group say which is which."""
    with TrentoReader(ics) as reader:
        names = reader.names  # event_0, event_1, ... in event-number order
    with h5py.File(ics, "r") as f, h5py.File(out, "w-") as g:
        g.attrs.update(dict(f.attrs))
        g.attrs.update(norm_factors=factors, groups=[f"x{factor:g}" for factor in factors], ics_per_group=len(names))
        for i, factor in enumerate(factors):
            for j, name in enumerate(names):
                _copy_event(f[name], g, i * len(names) + j, factor)


def join(files: list[Path], out: Path) -> None:
    """Write the first N ICs of each of `files` (N: the fewest any holds) one file after the other; attributes
    groups (the files' names without .h5) and ics_per_group; the file attributes are the first file's."""
    names = []
    for path in files:
        with TrentoReader(path) as reader:
            names.append(reader.names)
    count = min(len(group) for group in names)
    with h5py.File(out, "w-") as g:
        for i, (path, group) in enumerate(zip(files, names)):
            with h5py.File(path, "r") as f:
                if i == 0:
                    g.attrs.update(dict(f.attrs))
                for j, name in enumerate(group[:count]):
                    _copy_event(f[name], g, i * count + j)
        g.attrs.update(groups=[path.stem for path in files], ics_per_group=count)


def record_values(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(ic_index, eta/s, values) of a spectra file's records: the smooth spectrum's multiplicity, sum of pT and
    |V_n|^2 (n = 2, 3)."""
    with h5py.File(path, "r") as f:
        pt_edges, phi_edges = f["pt_edges"][()], f["phi_edges"][()]
        counts = f["spectrum"][()].astype(np.float64) * bin_measure(pt_edges, phi_edges)
        ic_index, eta_s = f["ic_index"][()], np.round(f["eta_s"][()].astype(np.float64), 6)
    values = {"mult": counts.sum(axis=(1, 2)),
              "sum_pt": counts.sum(axis=2) @ (0.5 * (pt_edges[1:] + pt_edges[:-1]))}
    values.update({f"v{n}^2": np.abs(spectra_flow_vectors(counts, phi_edges, n)) ** 2 for n in (2, 3)})
    return ic_index, eta_s, values


def per_ic(paths: list[Path]) -> dict[float, dict[str, np.ndarray]]:
    """Per eta/s and IC (indexed by ic_index), the mean over the IC's records in `paths` (the parts of one
    production) of record_values."""
    parts = [record_values(path) for path in paths]
    ic_index, eta_s = (np.concatenate([part[j] for part in parts]) for j in (0, 1))
    values = {k: np.concatenate([part[2][k] for part in parts]) for k in parts[0][2]}
    out = {}
    for value in np.unique(eta_s):
        rows = eta_s == value
        records = np.bincount(ic_index[rows], minlength=ic_index.max() + 1)
        out[float(value)] = {k: np.bincount(ic_index[rows], v[rows], minlength=len(records)) / np.maximum(records, 1)
                             for k, v in values.items()} | {"records": records}
    return out


def _padded(records: np.ndarray, n: int) -> np.ndarray:
    """records (per ic_index) extended with zeros to at least n entries."""
    return np.concatenate([records, np.zeros(max(n - len(records), 0), records.dtype)])


def _recorded(rows: np.ndarray, per_eta_s: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The ICs of `rows` with records at every eta/s of `per_eta_s` (per_ic's values). ICs that the chain lacks went
    unstable in its hydro (file attribute failed_ic_index) and are left out of the comparison at every eta/s."""
    recorded = np.ones(len(rows), bool)
    for values in per_eta_s:
        recorded &= _padded(values["records"], rows[-1] + 1)[rows] > 0
    return rows[recorded]


def observables(values: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, float]:
    """Mean multiplicity, <pT> and v_n{2} = sqrt(<|V_n|^2>) over the ICs `rows`."""
    mult = values["mult"][rows]
    return {"mult": float(mult.mean()), "<pT>": float(values["sum_pt"][rows].sum() / mult.sum()),
            **{f"v{n}{{2}}": float(np.sqrt(values[f"v{n}^2"][rows].mean())) for n in (2, 3)}}


def model_sampling(attrs: Any) -> dict[str, Any] | None:
    """The ODE solve a `hicgen spectra` file's spectra came from (its attributes sampler, steps, logsnr_range, the
    last a [lo, hi] pair or 'full'), as config.json `sampling` names it; None for a file that records none."""
    if "sampler" not in attrs or "steps" not in attrs:
        return None
    grid = attrs.get("logsnr_range", "full")
    grid = grid.decode() if isinstance(grid, bytes) else grid
    return {"sampler": str(attrs["sampler"]), "steps": int(attrs["steps"]),
            "logsnr_range": grid if isinstance(grid, str) else [float(v) for v in grid]}


def compare(scaled: Path, hydro: list[Path], model: Path, checkpoint: Path, boots: int, seed: int) -> dict:
    """Per group of ICs: the model's observables over the chain's with bootstrap errors and the ICs' scale offset;
    for the factors of `scale`, the followed range."""
    with h5py.File(scaled, "r") as f:
        if "groups" not in f.attrs or "ics_per_group" not in f.attrs:
            raise SystemExit(f"'{scaled}' names no groups of ICs; give a file of `scale` or `join`")
        groups = [str(v) for v in f.attrs["groups"]]
        factors = [float(v) for v in f.attrs["norm_factors"]] if "norm_factors" in f.attrs else None
        per_group = int(f.attrs["ics_per_group"])
    attrs = read_event_attrs(scaled, ("mult", "npart"))
    mult, npart = attrs["mult"], attrs["npart"]
    config = json.loads((checkpoint / "config.json").read_text())
    band = config.get("ic_entropy_per_participant")
    with h5py.File(model, "r") as f:
        model_sha256 = str(f.attrs.get("model_sha256", ""))
        sampling = model_sampling(f.attrs)
    if model_sha256 != config.get("tensors_sha256"):
        raise SystemExit(f"'{model}' was made by another model than {checkpoint}'s; give its checkpoint with --checkpoint")
    reference, generated = per_ic(hydro), per_ic([model])
    eta_values = sorted(set(reference) & set(generated))
    if not eta_values:
        raise SystemExit(f"the hydro files and '{model}' share no eta/s value")
    rng = np.random.default_rng(seed)
    result = {"rows": [], "targets": TARGETS, "checkpoint": str(checkpoint), "model_sha256": model_sha256,
              "sampling": sampling, "hydro": [str(path) for path in hydro], "model": str(model),
              "ics_per_factor": per_group,
              "eta_s": eta_values, "groups": groups,
              "factors": None if factors is None else [f"{factor:g}" for factor in factors]}
    within = []
    for i, group in enumerate(groups):
        group_rows = np.arange(i * per_group, (i + 1) * per_group)
        rows = _recorded(group_rows, [reference[value] for value in eta_values])
        if rows.size < len(group_rows) // 2:
            raise SystemExit(f"the hydro files hold records at every eta/s for only {rows.size} of ICs "
                             f"{group_rows[0]}-{group_rows[-1]}; give all the parts of the chain's run")
        if len(_recorded(rows, [generated[value] for value in eta_values])) < rows.size:
            raise SystemExit(f"'{model}' lacks records of ICs {group_rows[0]}-{group_rows[-1]}; give the spectra of all of them")
        left_out = np.setdiff1d(group_rows, rows)
        offset = scale_offset(mult[rows], npart[rows], band) if band and "curve" in band else None
        factor_within = True
        for value in eta_values:
            chain, net = reference[value], generated[value]
            chain_obs = observables(chain, rows)
            ratio = {k: v / chain_obs[k] for k, v in observables(net, rows).items()}
            draws = []
            for _ in range(boots):
                pick = rng.choice(rows, len(rows))
                ref, gen = observables(chain, pick), observables(net, pick)
                draws.append([gen[k] / ref[k] for k in ratio])
            errors = np.std(draws, axis=0)
            row_within = all(abs(ratio[k] - 1) <= TARGETS[k] for k in ratio)
            factor_within &= row_within
            result["rows"].append({
                "group": group, "factor": None if factors is None else factors[i], "eta_s": value, "chain_mult": chain_obs["mult"],
                **{k: {"ratio": ratio[k], "error": float(e)} for k, e in zip(ratio, errors)},
                "scale_offset": None if offset is None else {"ln": offset[0], "error": offset[1], "ics": offset[2]},
                "ics": int(rows.size), "left_out_ic_index": left_out.tolist(), "within_targets": row_within})
        within.append(factor_within)
    result["followed_range"] = None if factors is None else followed_range(factors, within)
    return result


ACCEPT_BLOCKS = {  # name: (ICs, lowest npart, highest npart) of the blocks `accept` measures
    "all impact parameters": (256, 0.0, np.inf),
    "central (npart >= 300)": (64, 300.0, np.inf),
    "peripheral (50 <= npart < 100)": (64, 50.0, 100.0),
}


def _passes(mult: np.ndarray, npart: np.ndarray, band: dict) -> bool:
    """Whether hicgen spectra's check takes ICs of these mult and npart."""
    try:
        check_ic_scale(mult, npart, band)
    except InputError:
        return False
    return True


def accept(ics: Path, checkpoint: Path) -> dict:
    """Per ACCEPT_BLOCKS block (the first ICs of `ics` in its npart range): the lowest and highest factor of the
    normalisation at which check_ic_scale takes it. A factor f moves the block's offset by ln f and leaves its error,
    so the edges are ln accepted_range -+ SCALE_Z errors - offset; each is confirmed by the check 0.1 % inside
    and outside (SystemExit if not)."""
    band = json.loads((checkpoint / "config.json").read_text()).get("ic_entropy_per_participant")
    if not band or "curve" not in band:
        raise SystemExit(f"{checkpoint} records no curve of its training ICs' entropy per participant")
    attrs = read_event_attrs(ics, ("mult", "npart"))
    mult, npart = attrs["mult"], attrs["npart"]
    low, high = accepted_range(band)
    result = {"ics": str(ics), "checkpoint": str(checkpoint), "accepted_range": [low, high], "scale_z": SCALE_Z,
              "blocks": []}
    for name, (count, npart_low, npart_high) in ACCEPT_BLOCKS.items():
        rows = np.flatnonzero((npart >= npart_low) & (npart < npart_high))[:count]
        if rows.size < count:
            raise SystemExit(f"'{ics}' holds {rows.size} ICs for the block '{name}', which needs {count}; make more")
        offset, error, used = scale_offset(mult[rows], npart[rows], band)
        edges = [low * np.exp(-SCALE_Z * error - offset), high * np.exp(SCALE_Z * error - offset)]
        for edge, inward in zip(edges, (1.001, 0.999)):
            if not (_passes(mult[rows] * edge * inward, npart[rows], band)
                    and not _passes(mult[rows] * edge / inward, npart[rows], band)):
                raise SystemExit(f"the check does not change its verdict at {edge:.4g}x for the block '{name}'")
        result["blocks"].append({"block": name, "ics": int(rows.size), "ics_npart_50": used, "ln_offset": offset,
                                 "error": error, "factors": [float(edge) for edge in edges]})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("scale", help="write the ICs once per normalisation factor")
    make.add_argument("ics", type=Path)
    make.add_argument("--factors", required=True, help="comma list, e.g. 0.7,1,1.3 (include 1)")
    make.add_argument("--out", type=Path, required=True)
    joined = commands.add_parser("join", help="write the ICs of several trento files one file after the other")
    joined.add_argument("files", type=Path, nargs="+")
    joined.add_argument("--out", type=Path, required=True)
    check = commands.add_parser("compare", help="the model against the chain per factor")
    check.add_argument("scaled", type=Path, help="the file `scale` or `join` wrote")
    check.add_argument("model", type=Path, help="hicgen spectra on it")
    check.add_argument("hydro", type=Path, nargs="+", help="hicgen truth hydro on it (one file or its parts)")
    check.add_argument("--checkpoint", type=Path, default=WEIGHTS_DIR / "spectra")
    check.add_argument("--boots", type=int, default=400)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--json", type=Path)
    taken = commands.add_parser("accept", help="the normalisation factors at which hicgen spectra takes blocks of ICs")
    taken.add_argument("ics", type=Path, help="ICs of the training settings (hicgen truth trento --grid-step 0.4)")
    taken.add_argument("--checkpoint", type=Path, default=WEIGHTS_DIR / "spectra")
    taken.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        _run(args)
    except (InputError, OSError, SystemExit) as exc:  # bad input: one line, exit code 2
        if isinstance(exc, SystemExit) and not isinstance(exc.code, str):
            raise
        print(f"spectra_ic_scale.py: {exc.code if isinstance(exc, SystemExit) else exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> None:
    """The command `args` names."""
    if args.command == "scale":
        scale(args.ics, [float(v) for v in args.factors.split(",")], args.out)
        return
    if args.command == "join":
        join(args.files, args.out)
        return
    if args.command == "accept":
        result = accept(args.ics, args.checkpoint)
        for block in result["blocks"]:
            print(f"{block['ics']} ICs, {block['block']}: taken at {block['factors'][0]:.3f}-{block['factors'][1]:.3f}x "
                  f"the training normalisation (ln offset {block['ln_offset']:+.4f} +- {block['error']:.4f})")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        return
    result = compare(args.scaled, args.hydro, args.model, args.checkpoint, args.boots, args.seed)
    for row in result["rows"]:
        offset = row["scale_offset"]
        print(f"{row['group']:<8} eta/s {row['eta_s']:<5g} chain dN/dy {row['chain_mult']:7.1f}  " + "  ".join(
            f"{k} {row[k]['ratio']:.4f} +- {row[k]['error']:.4f}" for k in TARGETS)
            + ("" if offset is None else f"  ln offset {offset['ln']:+.3f} +- {offset['error']:.3f}")
            + ("" if not row["left_out_ic_index"] else f"  ({len(row['left_out_ic_index'])} ICs without chain records left out)")
            + ("" if row["within_targets"] else "  MISSES"))
    if result["factors"] is not None:
        print("followed range:", result["followed_range"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
