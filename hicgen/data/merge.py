"""Joining hicgen event files (`hicgen data merge`): the parts of one production made by separate jobs.

The parts are the files of `hicgen run --shard i/N`, of `hicgen spectra --particles` jobs over parts of one IC
file (--shard, --first/--events), or of `hicgen truth angantyr` runs with different seeds. They join when they are
samples of one generator: every provenance attribute agrees but those of PER_PART, which name one job (its seed and
shard, where it ran), and the event and particle columns are the same. The joined file records the parts' names
(`parts`) and, for each PER_PART attribute whose values differ, the list of them in the joined order
(`part_<name>`).

No event may appear twice: parts made record by record from one input file (hicgen spectra --particles: an ic_index
column; an event is its record's, numbered in event_number) must not share an event_number, and parts of independent
random streams (hicgen run, hicgen truth angantyr) must not come from the same one (the same seed and shard index:
`hicgen run`'s streams are keyed by (seed, shard index), so shard 0/2 and 0/4 hold the same events; its
event_number, shard index x --events + position, is not that key when shards differ in --events).
The parts are joined in order of their first event number (record-made parts), else of (seed, shard index), so the
joined file does not depend on the order the files are named in; `hicgen spectra` jobs then join into the whole
run's event order, and `hicgen run` shards into shard order.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from hicgen.data.batch import EVENT_NUMBER, event_chunks
from hicgen.data.dataset import DatasetReader, DatasetWriter
from hicgen.errors import InputError

# attributes that name one job of a production, not the sample: they may differ between parts
PER_PART = ("seed", "seeds", "shard", "workers", "device", "model", "hicgen_version", "failed_tries")
# attributes each file writes about itself: the joined file writes its own
OWN = ("format", "format_version", "created", "n_events")
RECORD_INDEX = "ic_index"  # event column of files made record by record from an input file (hicgen spectra)
MERGE_PARTICLES = 1 << 21  # particles read and written per step (~20 MB of columns): memory stays flat


def comparable(value: Any) -> Any:
    """An attribute value in a form that compares by content (arrays as lists, bytes as text)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def jobs_of(attrs: dict[str, Any], name: str | os.PathLike) -> list[dict[str, Any]]:
    """The jobs whose events a file holds, each as {"name": file name, PER_PART attribute: value}: the file's own
    job, or the parts a merge recorded (`parts`, `part_<name>`), so that merged files merge again."""
    if "parts" not in attrs:
        return [{"name": Path(name).name, **{k: comparable(attrs[k]) for k in PER_PART if k in attrs}}]
    names = str(comparable(attrs["parts"])).split(",")
    jobs = [{"name": n} for n in names]
    for key in PER_PART:
        if f"part_{key}" in attrs:
            values = json.loads(comparable(attrs[f"part_{key}"]))
        else:
            values = [comparable(attrs[key])] * len(names) if key in attrs else [None] * len(names)
        for job, value in zip(jobs, values):
            if value is not None:
                job[key] = value
    return jobs


def stream_of(job: dict[str, Any]) -> tuple[int, int] | None:
    """(seed, shard index) of a job's random stream; None when it records no seed."""
    if "seed" not in job:
        return None
    return int(job["seed"]), int(str(job.get("shard", "0/1")).split("/")[0])


def _settings(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes that must agree between parts: all but the per-job, the file's own and a merge's."""
    return {k: comparable(v) for k, v in attrs.items()
            if k not in PER_PART + OWN and k != "parts" and not k.startswith("part_")}


def check_parts(readers: list[DatasetReader], names: list[str]) -> list[int]:
    """The order in which the parts join; InputError when they are not parts of one production or share events.
    Parts without events (a job stopped before its first) are checked for their settings only and join last."""
    settings0 = _settings(readers[0].attrs)
    for reader, name in zip(readers[1:], names[1:]):
        settings = _settings(reader.attrs)
        differ = sorted(k for k in set(settings) | set(settings0) if settings.get(k) != settings0.get(k))
        if differ:
            raise InputError(f"'{name}' was made with other settings than '{names[0]}' ({', '.join(differ)}); only parts "
                             "of one production (same generator, model and options, other seeds or shards) can be merged")
    filled = [j for j, reader in enumerate(readers) if len(reader)]
    empty = [j for j in range(len(readers)) if j not in filled]
    if not filled:
        return empty
    first = readers[filled[0]]
    for j in filled[1:]:
        reader = readers[j]
        if set(reader.event_columns) != set(first.event_columns) or set(reader.particle_columns) != set(first.particle_columns):
            raise InputError(f"'{names[j]}' has other columns than '{names[filled[0]]}' (events: "
                             f"{', '.join(sorted(reader.event_columns))}; against {', '.join(sorted(first.event_columns))}); "
                             "only parts of one production can be merged")
    if RECORD_INDEX in first.event_columns:
        numbers = {j: readers[j].event_column(EVENT_NUMBER) for j in filled}
        joined = np.concatenate(list(numbers.values()))
        if np.unique(joined).size < joined.size:
            raise InputError("the inputs share events (the same event_number): give the particle files of jobs over "
                             "disjoint --first/--events ranges or --shard parts of one run")
        return sorted(filled, key=lambda j: int(numbers[j].min())) + empty
    streams = {j: [stream_of(job) for job in jobs_of(readers[j].attrs, names[j])] for j in filled}
    seen: dict[tuple[int, int], str] = {}
    for j, part_streams in streams.items():
        for stream in part_streams:
            if stream in seen:
                raise InputError(f"'{names[j]}' and '{seen[stream]}' hold events of the same random stream (seed {stream[0]}, "
                                 f"shard index {stream[1]}), so the same events; make the parts with other --seed or --shard values")
            if stream is not None:
                seen[stream] = names[j]
    if any(None in s for s in streams.values()):
        return filled + empty
    return sorted(filled, key=lambda j: streams[j][0]) + empty


def merged_attrs(readers: list[DatasetReader], names: list[str]) -> dict[str, Any]:
    """The joined file's attributes (parts in joined order): the common settings, `parts` (the jobs' file names)
    and each PER_PART attribute: as it is where all jobs agree, else `part_<name>`, a JSON list with one value per
    job (null where a job did not record it)."""
    attrs = {k: v for k, v in readers[0].attrs.items() if k in _settings(readers[0].attrs)}
    jobs = [job for reader, name in zip(readers, names) for job in jobs_of(reader.attrs, name)]
    attrs["parts"] = ",".join(job["name"] for job in jobs)
    for key in PER_PART:
        values = [job.get(key) for job in jobs]
        if all(v is None for v in values):
            continue
        if all(v == values[0] for v in values):
            attrs[key] = values[0]
        else:
            attrs[f"part_{key}"] = json.dumps(values)
    return attrs


def merge_events(inputs: list[str | os.PathLike], out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, int, int]:
    """Join the hicgen event files `inputs`, parts of one production, into `out` (see the module's notes); returns
    (path, events, particles). Streams MERGE_PARTICLES particles at a time; the file appears whole or not at all."""
    names = [str(p) for p in inputs]
    with ExitStack() as stack:
        readers = [stack.enter_context(DatasetReader(p)) for p in inputs]
        order = check_parts(readers, names)
        readers, names = [readers[j] for j in order], [names[j] for j in order]
        writer = DatasetWriter(out, merged_attrs(readers, names), overwrite)
        try:  # any stop drops the file: a merged file lacking events of its parts would pass for the whole production
            for reader in readers:
                for start, stop in event_chunks(reader.offsets, MERGE_PARTICLES):
                    writer.append(reader.read(start, stop))
        except BaseException:
            writer.abort()
            raise
        writer.close()
        return writer.path, writer.n_events, writer.n_particles
