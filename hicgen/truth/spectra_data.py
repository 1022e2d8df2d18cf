"""The 'hicgen-spectra' HDF5 file written by `hicgen truth hydro` and read by the spectra-model trainer.

Layout (format_version 1; one record per (initial state, eta/s)):
  ic          float32 (N, 64, 64)  initial entropy profile resampled over the IC file's grid, rows y, columns x
  eta_s       float32 (N,)
  spectrum    float32 (N, 64, 64)  smooth charged-hadron dN/(dy pT dpT dphi) [GeV^-2], axis 0 pT, axis 1 phi
  histogram   float32 (N, 64, 64)  Poisson-sampled charged-hadron counts per (pT, phi) bin for |y| < 0.5
  pt_edges (65,) [GeV], phi_edges (65,) [rad]
  b, npart, mult, e2, e3, e4, e5 (N,)  from the IC file's event attributes; ic_index (N,) int64
  added by hicgen: dnch_deta, dnch_dy, mean_pt (N,) (charged, all pT), tau_end (N,) [fm], energy_balance (N,),
  species_dndy (N, 3) dN/dy of pi+ + pi-, K+ + K-, p + pbar (all pT)
  species_pt_dndy float32 (N, 3, 64)  the same per pT bin (files made since 2026-12-06; OPTIONAL_RECORD_FIELDS)
  species_pt_flow float32 (N, 3, 4, 64)  each species pair's flow vector per pT bin, V_n(pT) = sum_phi N e^{i n phi} /
      sum_phi N for n in SPECIES_FLOW_HARMONICS (2, 3) as rows Re V2, Im V2, Re V3, Im V3 (0 in an empty bin; phi at
      the bin centres, as the charged spectrum's; files made since 2026-12-06, later the same day; OPTIONAL_RECORD_FIELDS)
  surface_at_grid_edge bool (N,)  the switching surface ran into the hydro grid's edge (a cell above e_sw on its
      outermost ring at some time): what lay beyond is missing from the spectrum; a larger hydro_grid_max fixes it
      (files made since 2026-12-06; OPTIONAL_RECORD_FIELDS)
File attributes: format='hicgen-spectra', format_version=1, generator, eos, tau_fs, tau0, e_sw, grid_step,
grid_max (of the IC grid), hicgen_version, seed, source (IC file name), delta_f, hydro_grid_max, n_records,
species_pid (6,) and species_fraction (6,) (the charged-hadron yield shares of pi+-, K+-, p pbar over the file)
and, with species_pt_dndy, species_pt_fraction (6, 64) (those shares in each pT bin): the spectra model draws
particle species from them, failed_ic_index when some records were left out because
their hydro went unstable, and interrupted=True when a run was stopped early (Ctrl-C, SIGTERM) and kept its finished records.
`hicgen spectra` writes the same layout (MODEL_RECORD_FIELDS, one record per (IC, eta/s, sample)), with
`centrality` (N,) [%] when given a centrality calibration (MODEL_OPTIONAL_FIELDS).
The file is filled under a partial name and renamed when complete, so an existing file is never half-replaced.
The image columns are stored in chunks of 64 records, gzip level 1 after shuffle (hicgen.io.h5columns), the others
uncompressed.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import numpy as np

FORMAT = "hicgen-spectra"


def bin_measure(pt_edges: np.ndarray, phi_edges: np.ndarray, dy: float = 1.0) -> np.ndarray:
    """Integral of pT dpT dphi dy over each bin, (P, Q) in GeV^2: a record's `spectrum` times it gives its expected
    counts per bin."""
    pt_edges, phi_edges = np.asarray(pt_edges, np.float64), np.asarray(phi_edges, np.float64)
    return dy * np.outer(0.5 * np.diff(pt_edges**2), np.diff(phi_edges))
FORMAT_VERSION = 1
RECORD_FIELDS = {  # name -> (per-record shape, dtype)
    "ic": ((64, 64), np.float32),
    "eta_s": ((), np.float32),
    "spectrum": ((64, 64), np.float32),
    "histogram": ((64, 64), np.float32),
    "b": ((), np.float64),
    "npart": ((), np.float64),
    "mult": ((), np.float64),
    "e2": ((), np.float64),
    "e3": ((), np.float64),
    "e4": ((), np.float64),
    "e5": ((), np.float64),
    "ic_index": ((), np.int64),
    "dnch_deta": ((), np.float64),
    "dnch_dy": ((), np.float64),
    "mean_pt": ((), np.float64),
    "tau_end": ((), np.float64),
    "energy_balance": ((), np.float64),
    "species_dndy": ((3,), np.float64),
}
# fields added after format_version 1 was fixed: written by hicgen truth hydro, kept by a merge when every part has them
SPECIES_FLOW_HARMONICS = (2, 3)  # the harmonics of species_pt_flow
OPTIONAL_RECORD_FIELDS = {"species_pt_dndy": ((3, 64), np.float32),
                          "species_pt_flow": ((3, 2 * len(SPECIES_FLOW_HARMONICS), 64), np.float32),
                          "surface_at_grid_edge": ((), np.bool_)}


class SpectraWriter:
    """Appends records to a partial file; close() renames it to `path`, abort() removes it. `fields` (name ->
    (per-record shape, dtype)): the hydro chain's RECORD_FIELDS, or those of `hicgen spectra`'s output."""

    def __init__(self, path: str | os.PathLike, attrs: dict, pt_edges: np.ndarray, phi_edges: np.ndarray,
                 fields: dict[str, tuple[tuple[int, ...], type]] = RECORD_FIELDS):
        import h5py

        from hicgen import __version__
        from hicgen.io.h5columns import RecordColumns
        from hicgen.io.paths import partial_path

        self.path = Path(path)
        self._tmp = partial_path(self.path)
        self._f = h5py.File(self._tmp, "w")
        self._f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "hicgen_version": __version__})
        self._f.attrs.update(attrs)
        self._f["pt_edges"] = np.asarray(pt_edges, dtype=np.float64)
        self._f["phi_edges"] = np.asarray(phi_edges, dtype=np.float64)
        self._fields = tuple(fields)
        self._columns = RecordColumns(self._f, fields, compressed=[name for name in fields if name in IMAGE_FIELDS])

    @property
    def n(self) -> int:
        return self._columns.n

    def append(self, records: dict[str, np.ndarray]) -> None:
        self._columns.append({name: records[name] for name in self._fields})
        self._f.attrs["n_records"] = self.n
        self._f.flush()

    def copy_stored(self, source, data: dict[str, np.ndarray]) -> int:
        """Append the leading records of an open spectra file `source` (its per-record scalars in `data`) whose
        images are whole chunks this file can take as stored (RecordColumns.append_stored), MERGE_BLOCK records
        at a time; how many (0 when its images cannot be copied so)."""
        images = {name: source[name] for name in IMAGE_FIELDS if name in self._fields}
        m = self._columns.copyable_chunks(images, 0)
        if not m:  # e.g. images stored contiguous or with other chunks or filters: the caller recompresses them
            return 0
        chunk = next(iter(images.values())).chunks[0]
        step = max(1, MERGE_BLOCK // chunk) * chunk
        for start in range(0, m, step):
            stop = min(start + step, m)
            self._columns.append_stored({k: data[k][start:stop] for k in self._fields if k not in images}, images,
                                        start, stop - start)
        self._f.attrs["n_records"] = self.n
        self._f.flush()
        return m

    def set_species(self, pid, yields, pt_yields=None) -> None:
        """File attributes species_pid and species_fraction (yield share of each charged species in the file) and,
        given their yields per pT bin (S, P), species_pt_fraction (S, P): the shares in each pT bin (0 where a bin
        is empty)."""
        yields = np.asarray(yields, dtype=np.float64)
        self._f.attrs["species_pid"] = np.asarray(pid, dtype=np.int64)
        self._f.attrs["species_fraction"] = yields / max(yields.sum(), 1e-300)
        if pt_yields is not None:
            pt_yields = np.asarray(pt_yields, dtype=np.float64)
            self._f.attrs["species_pt_fraction"] = pt_yields / np.maximum(pt_yields.sum(0), 1e-300)

    def set_failed(self, ic_index: np.ndarray) -> None:
        """File attribute failed_ic_index: ICs with an eta/s whose hydro went unstable (records left out)."""
        self._f.attrs["failed_ic_index"] = np.asarray(ic_index, dtype=np.int64)

    def mark_interrupted(self) -> None:
        """Record that the run stopped early: the file holds only the n_records finished records."""
        self._f.attrs["interrupted"] = True

    def close(self) -> Path:
        self._columns.close()
        self._f.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._columns.close()
        self._f.close()
        self._tmp.unlink(missing_ok=True)


def _open_spectra(path: str | os.PathLike):
    """The open (read-only) h5py file of a hicgen-spectra file; InputError when it is missing or of another format."""
    import h5py

    from hicgen.errors import InputError
    from hicgen.io.paths import check_input

    path = check_input(path, "spectra")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"'{path}' is not a readable HDF5 file ({exc}); give a {FORMAT} file (.h5)") from None
    if f.attrs.get("format") == "hicgen-events":
        f.close()
        raise InputError(f"'{path}' holds particle events, not binned spectra (event files are joined by 'hicgen data merge')")
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise InputError(f"'{path}' is not a {FORMAT} file (make one with: hicgen truth hydro --ic ic.h5 --out {path.name})")
    return f


def read_spectra(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """All datasets as arrays and the file attributes; InputError when the file is not a hicgen-spectra file."""
    with _open_spectra(path) as f:
        return {k: f[k][()] for k in f.keys()}, dict(f.attrs)


def read_spectra_rows(path: str | os.PathLike, names: tuple[str, ...], rows: np.ndarray | None = None
                      ) -> tuple[dict[str, np.ndarray], dict]:
    """The datasets `names` of a hicgen-spectra file at the records `rows` (any order, repeats allowed; all when
    None), plus pt_edges and phi_edges, and the file attributes. The file is read MERGE_BLOCK records at a time and
    only the chosen rows are kept, so a few records of a file of millions cost little memory. InputError when the
    file is not a hicgen-spectra file or lacks one of `names`."""
    from hicgen.errors import InputError

    with _open_spectra(path) as f:
        missing = [k for k in names if k not in f]
        if missing:
            raise InputError(f"'{path}' lacks {', '.join(missing)}; give a file of 'hicgen truth hydro' or 'hicgen spectra'")
        out = {k: f[k][()] for k in ("pt_edges", "phi_edges")}
        n = int(f[names[0]].shape[0]) if names else 0
        if rows is None:
            chosen, inverse = np.arange(n), None
        else:
            chosen, inverse = np.unique(np.asarray(rows, np.int64), return_inverse=True)
        for k in names:
            ds = f[k]
            blocks = []
            for start in range(0, n, MERGE_BLOCK):
                here = chosen[(chosen >= start) & (chosen < start + MERGE_BLOCK)]
                if len(here):
                    blocks.append(ds[start : start + MERGE_BLOCK][here - start])
            values = np.concatenate(blocks) if blocks else np.empty((0,) + ds.shape[1:], ds.dtype)
            out[k] = values if inverse is None else values[inverse]
        return out, dict(f.attrs)


def spectra_info(path: str | os.PathLike) -> dict:
    """Summary of a hicgen-spectra file from its per-record scalars (the images are not read, so it is quick for
    millions of records): records, initial states and their ic_index range, records and samples per IC at each
    eta/s, the impact-parameter range, the final-state multiplicity where the file stores it per record (the
    reference chain's dnch_dy), and the file attributes. InputError when it is not a hicgen-spectra file."""
    with _open_spectra(path) as f:
        scalars = {k: f[k][()] for k in ("ic_index", "eta_s", "sample_index", "b", "dnch_dy") if k in f}
        grid = (len(f["pt_edges"]) - 1, len(f["phi_edges"]) - 1) if "pt_edges" in f and "phi_edges" in f else None
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v.decode() if isinstance(v, bytes) else v)
                 for k, v in f.attrs.items()}
    n = len(scalars.get("eta_s", ()))
    ic = scalars.get("ic_index", np.arange(n))
    per_eta = []
    for value in np.unique(scalars.get("eta_s", np.empty(0, np.float32))):
        at = scalars["eta_s"] == value
        row = {"eta_s": float(value), "records": int(at.sum()), "initial_states": int(np.unique(ic[at]).size)}
        if "dnch_dy" in scalars:
            row["dnch_dy_mean"] = float(np.mean(scalars["dnch_dy"][at]))
        per_eta.append(row)
    b = scalars.get("b", np.empty(0))
    b = b[np.isfinite(b)]
    return {"records": n, "initial_states": int(np.unique(ic).size),
            "ic_index_range": [int(ic.min()), int(ic.max())] if n else None,
            "samples_per_ic": int(scalars["sample_index"].max()) + 1 if n and "sample_index" in scalars else 1,
            "eta_s": per_eta, "b_range": [float(b.min()), float(b.max())] if b.size else None,
            "grid": grid, "attrs": attrs}


# attributes that must agree for records of several files to form one sample
MERGE_KEYS = ("format_version", "generator", "eos", "tau_fs", "tau0", "e_sw", "grid_step", "grid_max", "seed", "source",
              "delta_f", "hydro_grid_max", "dtau_over_dx", "resonance_decays")
# `hicgen spectra` writes the same format (hicgen.spectra.pipeline): its records and the attributes of one production
MODEL_GENERATOR = "hicgen spectra"
MODEL_RECORD_FIELDS = ("histogram", "spectrum", "ic", "eta_s", "ic_index", "sample_index",
                       "b", "npart", "mult", "e2", "e3", "e4", "e5")
MODEL_OPTIONAL_FIELDS = ("centrality",)  # hicgen spectra --centrality-ic
MODEL_MERGE_KEYS = ("format_version", "generator", "model_sha256", "source", "ic_grid_step", "seed", "steps", "sampler",
                    "precision", "samples_per_ic", "eta_s", "logsnr_range", "centrality_ic", "centrality_coverage")
IMAGE_FIELDS = ("ic", "spectrum", "histogram")  # per-record images: a merge copies them a block at a time
MERGE_BLOCK = 1024  # records per copy step of a merge (~50 MB of images)


def ic_origin(ic_index: np.ndarray, attrs: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Where the ICs of a hicgen-spectra file come from: the IC file names (attribute `source`, comma-separated
    after a --renumber-ics merge, with their `ic_index_offset`), and per ic_index which of those files (position in
    the list) and the event number within it."""
    names = str(attrs.get("source")).split(",")
    offsets = np.ravel(attrs.get("ic_index_offset", [0])).astype(np.int64)
    if len(names) != len(offsets):  # a plain production, or a file of a merge that did not record the offsets
        names, offsets = [str(attrs.get("source"))], np.zeros(1, np.int64)
    block = np.searchsorted(offsets, ic_index, side="right") - 1
    return names, block, ic_index - offsets[block]


def part_seeds(attrs: dict, name: str | os.PathLike) -> list[tuple[str, str]]:
    """(file name, histogram seed) of each production in a hicgen-spectra file: its own, or those a merge recorded."""
    if "part_seeds" in attrs:
        return [tuple(item.rsplit(":", 1)) for item in str(attrs["part_seeds"]).split(",")]
    return [(Path(name).name, str(attrs.get("seed")))]


def at_eta_s(values: np.ndarray, eta_s: list[float]) -> np.ndarray:
    """Which of the records' eta/s `values` is one of `eta_s` (within 1e-6): a boolean mask."""
    return np.isclose(np.asarray(values, np.float64)[:, None], np.asarray(eta_s, np.float64)[None, :], rtol=0, atol=1e-6).any(1)


def _repeats(columns: list[np.ndarray]) -> bool:
    """Whether two rows of the equal-length `columns` hold the same values in all of them (sorted, not hashed:
    memory and time stay those of the columns for millions of records)."""
    order = np.lexsort(columns[::-1])
    same = np.ones(max(len(order) - 1, 0), bool)
    for column in columns:
        ranked = column[order]
        same &= ranked[1:] == ranked[:-1]
    return bool(same.any())


def merge_spectra(inputs: list[str | os.PathLike], out: str | os.PathLike, renumber_ics: bool = False,
                  eta_s: list[float] | None = None) -> Path:
    """Join hicgen-spectra files made from one IC file in separate jobs (`hicgen truth hydro --first` or
    `hicgen spectra --first`) into `out`; the records come ordered by ic_index (parts by their first IC), so the
    parts of a split production give the records of one whole run, in its order.

    With renumber_ics, files made from different IC files (same chain settings) are joined too: the ic_index of
    each IC file's records is offset past those of the IC files before it, so ICs stay distinct (training splits
    by ic_index); the attributes `source` (comma-separated) and `ic_index_offset` record the mapping, and an
    already merged input is traced back to its IC files through them (one offset per IC file).
    The reference chain's parts may have different histogram seeds (each job's Poisson draws), and so may every
    part with renumber_ics; `part_seeds` ("file:seed,...") replaces `seed` where they differ.
    With eta_s, only the records at those eta/s values are kept (InputError when no input holds one of them).
    InputError when the inputs mix the reference chain's and the model's files, their settings differ (for the
    model's: the weights by their sha256, sampler, steps, precision, seed, ...) or a record (ic_index, eta_s and,
    for the model's, sample_index) appears twice. The species mixture is recomputed from the joined per-record
    yields; `parts` lists the inputs in the joined order (as does `part_seeds`), `interrupted_parts` those that were
    stopped early (attribute interrupted). The images are copied MERGE_BLOCK records at a time, so memory stays flat
    however many records the inputs hold."""
    from hicgen.errors import InputError

    with ExitStack() as stack:
        files = [stack.enter_context(_open_spectra(p)) for p in inputs]
        parts = [({k: f[k][()] for k in f.keys() if k not in IMAGE_FIELDS}, dict(f.attrs)) for f in files]
        kinds = {attrs.get("generator") == MODEL_GENERATOR for _, attrs in parts}
        if len(kinds) > 1:
            raise InputError("the inputs mix the spectra model's output (hicgen spectra) with the reference chain's "
                             "(hicgen truth hydro); merge each kind on its own")
        model_output = kinds == {True}
        optional = {k: v for k, v in OPTIONAL_RECORD_FIELDS.items() if all(k in f for f in files)}
        if model_output:
            optional_model = tuple(k for k in MODEL_OPTIONAL_FIELDS if all(k in f for f in files))
            merge_keys, fields = MODEL_MERGE_KEYS, MODEL_RECORD_FIELDS + optional_model
        else:
            merge_keys, fields = MERGE_KEYS, tuple(RECORD_FIELDS) + tuple(optional)
        data0, attrs0 = parts[0]
        # the chain's histogram seed is each job's own (its Poisson draws), as is every seed with renumber_ics;
        # the model's seed keys its samples, so its parts of one IC file share it
        per_job = {"source", "seed"} if renumber_ics else set() if model_output else {"seed"}
        checked = tuple(k for k in merge_keys if k not in per_job)
        for (data, attrs), name in zip(parts[1:], inputs[1:]):
            differ = [k for k in checked if str(attrs.get(k)) != str(attrs0.get(k))]
            if differ or not all(np.array_equal(data[k], data0[k]) for k in ("pt_edges", "phi_edges")):
                hint = (" (files of different IC files: add --renumber-ics)" if "source" in differ and set(differ) <= {"source", "seed"} else
                        "; only files of one production (same IC file and options) can be merged")
                raise InputError(f"'{name}' was made with other settings than '{inputs[0]}' ({', '.join(differ) or 'grids'}){hint}")
        for f, (_, attrs), name in zip(files, parts, inputs):
            missing = [k for k in fields if k not in f] + (["the attribute model_sha256"] if model_output and "model_sha256" not in attrs else [])
            if missing:
                remake = "hicgen spectra" if model_output else "hicgen truth hydro"
                raise InputError(f"'{name}' lacks {', '.join(missing)} (made by an older hicgen); remake it with '{remake}'")
        keep = [np.arange(len(data["eta_s"])) for data, _ in parts]  # the records of each input that are joined
        if eta_s is not None:
            held = np.unique(np.concatenate([data["eta_s"] for data, _ in parts]).astype(np.float64))
            absent = [v for v in eta_s if not np.isclose(held, v, rtol=0, atol=1e-6).any()]
            if absent:
                raise InputError(f"no input holds records at eta/s {', '.join(f'{v:g}' for v in absent)}; "
                                 f"they hold {', '.join(f'{v:g}' for v in held)}: choose --eta-s among these")
            keep = [np.flatnonzero(at_eta_s(data["eta_s"], eta_s)) for data, _ in parts]
        origins = [ic_origin(data["ic_index"], attrs) for data, attrs in parts]
        sources = list(dict.fromkeys(name for names, _, _ in origins for name in names))
        offset_of, next_offset = {}, 0
        for source in sources:  # each IC file's events after those of the IC files before it
            offset_of[source] = next_offset
            next_offset += 1 + max(int(np.max(local[np.asarray(names)[block] == source], initial=-1))
                                   for names, block, local in origins)
        for (data, attrs), (names, block, local) in zip(parts, origins):
            data["ic_index"] = np.array([offset_of[name] for name in names], np.int64)[block] + local
            if "failed_ic_index" in attrs:
                f_names, f_block, f_local = ic_origin(np.ravel(attrs["failed_ic_index"]).astype(np.int64), attrs)
                attrs["failed_ic_index"] = np.array([offset_of[name] for name in f_names], np.int64)[f_block] + f_local
        key_fields = ("ic_index", "eta_s", "sample_index") if model_output else ("ic_index", "eta_s")
        if _repeats([np.concatenate([data[k][rows] for (data, _), rows in zip(parts, keep)]) for k in key_fields]):
            raise InputError("the inputs share records (same IC and eta/s); give files made with disjoint --first/--events ranges or --shard parts")
        attrs = {k: v for k, v in attrs0.items() if k not in ("format", "format_version", "hicgen_version", "n_records",
                                                              "interrupted", "species_pid", "species_fraction",
                                                              "species_pt_fraction", "failed_ic_index", "interrupted_parts")}
        first_ic = [int(data["ic_index"][rows].min(initial=np.iinfo(np.int64).max)) for (data, _), rows in zip(parts, keep)]
        order = sorted(range(len(parts)), key=first_ic.__getitem__)  # the joined order (stable: ties keep the inputs')
        attrs["parts"] = ",".join(Path(inputs[j]).name for j in order)
        stopped = [name for p, (_, a) in zip(inputs, parts)  # whole records, but not all of those parts' ranges
                   for name in ([Path(p).name] if a.get("interrupted") else []) + str(a.get("interrupted_parts", "")).split(",") if name]
        if stopped:
            attrs["interrupted_parts"] = ",".join(dict.fromkeys(stopped))
        seeds = [part_seeds(parts[j][1], inputs[j]) for j in order]
        if len({seed for per_part in seeds for _, seed in per_part}) > 1:
            attrs.pop("seed", None)
            attrs["part_seeds"] = ",".join(f"{name}:{seed}" for per_part in seeds for name, seed in per_part)
        if len(sources) > 1:
            attrs["source"], attrs["ic_index_offset"] = ",".join(sources), np.array([offset_of[s] for s in sources])
        if model_output and eta_s is not None:  # the eta/s values the joined file holds
            values = np.asarray(attrs0["eta_s"], np.float64).ravel()
            kept = values[at_eta_s(values, eta_s)].tolist()
            attrs["eta_s"] = kept[0] if len(kept) == 1 else kept
        spec = {k: (files[0][k].shape[1:], files[0][k].dtype) for k in fields} if model_output else {**RECORD_FIELDS, **optional}
        writer = SpectraWriter(out, attrs, data0["pt_edges"], data0["phi_edges"], spec)
        try:
            for j in order:
                (data, _), rows = parts[j], keep[j]
                # whole chunks copied as stored (the parts of --shard hold whole 64-IC blocks); the rest inflated
                # and deflated again, as every record of a part that follows a partial chunk
                copied = writer.copy_stored(files[j], data) if eta_s is None else 0
                rows = rows[rows >= copied]
                for start in range(copied, len(data["eta_s"]), MERGE_BLOCK):
                    chosen = rows[(rows >= start) & (rows < start + MERGE_BLOCK)]
                    if len(chosen):
                        writer.append({k: (files[j][k][start : start + MERGE_BLOCK] if k in IMAGE_FIELDS else data[k][start:])[chosen - start]
                                       for k in fields})
            failed = sorted({int(i) for _, a in parts for i in np.ravel(a.get("failed_ic_index", []))})
            if failed:
                writer.set_failed(np.array(failed))
            if "species_pid" in attrs0:
                yields = sum(d["species_dndy"][rows].sum(0) for (d, _), rows in zip(parts, keep))
                pt_yields = (sum(d["species_pt_dndy"][rows].sum(0, dtype=np.float64) for (d, _), rows in zip(parts, keep))
                             if "species_pt_dndy" in optional else None)
                writer.set_species(attrs0["species_pid"], np.repeat(yields / 2, 2),
                                   None if pt_yields is None else np.repeat(pt_yields / 2, 2, axis=0))
        except BaseException:
            writer.abort()
            raise
        return writer.close()
