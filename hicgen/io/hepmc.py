"""HepMC3 ASCII (`.hepmc`, `.hepmc3`, and gzip-compressed with `.gz`): a vectorised writer and a pyhepmc reader.

Each event is written as HepMC3's Asciiv3 text (units GEV MM):
  E <number> 1 <particles>        one vertex; particles = 2 beams + final state; the number is the batch's
                                  event_number column where it has one (hicgen run, hicgen spectra --particles),
                                  else the event's position in the file
  W 1                             unit weight (run header names it 'default')
  A 0 GenHeavyIon v0 ...          impact parameter [fm], Ncoll, Npart (as proj = ceil(Npart/2), targ = floor(Npart/2)),
                                  event-plane angle psi2, centrality [percent]; unknown fields are -1
  A 0 <column> <value>            every other per-event column of the EventBatch (e.g. mean_pt, q2x), exactly
  P 1 0 <nucleus> ... 4           the two beam nuclei (status 4) entering vertex -1
  V -1 0 [1,2]
  P i -1 <pid> px py pz e m 1     final particles (status 1), momenta from (pT, eta, phi), masses from pdg_mass
The run header names hicgen (tool line), and the run information (model, seed, ...) as run attributes.

The particle lines are formatted for a whole chunk at once with numpy (`hicgen.io._text`), 9 significant
digits; it is several times faster than building pyhepmc events (`events_to_pyhepmc`, kept for users who want
GenEvent objects and as the benchmark reference). Files read back with `pyhepmc.open` and with HepMC3 itself.
"""

from __future__ import annotations

import gzip
import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hicgen import __version__
from hicgen.data.batch import EVENT_COLUMNS, EVENT_NUMBER, EventBatch, event_chunks, event_dtype
from hicgen.data.features import particle_event_features
from hicgen.data.species import PDG_MASS, pdg_mass
from hicgen.errors import InputError
from hicgen.io._text import Int, Sci, format_lines
from hicgen.io.h5columns import compression_threads
from hicgen.io.paths import check_input, check_output, partial_path

HEPMC_VERSION = "3.02.05"  # the Asciiv3 dialect written (that of the pyhepmc release tested against)
GZIP_LEVEL = 1  # stdlib zlib's fastest level (without zlib-ng): HepMC text compresses ~2.7x, only a few % better at 6
DIGITS = 9  # significant digits of momenta: float32 (pT, eta, phi) survive the round trip
FORMAT_PARTICLES = 1 << 15  # particles formatted per numpy pass (cache-sized: ~3 MB of text)
# Nuclei of the collision systems hicgen knows: (Z, A).
NUCLEI: dict[str, tuple[int, int]] = {"p": (1, 1), "O": (8, 16), "Pb": (82, 208)}
HEAVY_ION_COLUMNS = ("b", "ncoll", "npart", "psi2", "centrality")  # stored in GenHeavyIon, not as attributes


def event_numbers(batch: EventBatch, first_number: int) -> list[int]:
    """The HepMC3 event numbers of `batch`: its event_number column (written as the E line's number, not as an
    attribute), else first_number, first_number + 1, ..."""
    if EVENT_NUMBER in batch.events:
        return np.asarray(batch.events[EVENT_NUMBER], np.int64).tolist()
    return list(range(first_number, first_number + len(batch)))


def split_system(system: str) -> tuple[str, str]:
    """'OO' -> ('O', 'O'), 'PbPb' -> ('Pb', 'Pb'), 'pPb' -> ('p', 'Pb')."""
    for first in sorted(NUCLEI, key=len, reverse=True):
        rest = system[len(first):]
        if system.startswith(first) and rest in NUCLEI:
            return first, rest
    raise InputError(f"unknown collision system '{system}'; use one made of {', '.join(NUCLEI)} (e.g. OO, PbPb)")


def nucleus_pid(z: int, a: int) -> int:
    """PDG id 10LZZZAAAI of a nucleus (a proton for Z = A = 1)."""
    return 2212 if (z, a) == (1, 1) else 1000000000 + 10000 * z + 10 * a


def beam_momenta(system: str, sqrt_s_nn: float) -> list[tuple[int, float, float, float]]:
    """(pid, pz, E, mass) [GeV] of the two beams in the collider frame: energy A sqrt(s_NN)/2 each, +z first.
    Nucleus mass = Z m_p + (A - Z) m_n (binding energy, < 1%, neglected)."""
    beams = []
    for sign, name in zip((1.0, -1.0), split_system(system)):
        z, a = NUCLEI[name]
        mass = z * PDG_MASS[2212] + (a - z) * PDG_MASS[2112]
        energy = a * sqrt_s_nn / 2
        beams.append((nucleus_pid(z, a), sign * float(np.sqrt(energy**2 - mass**2)), energy, mass))
    return beams


def four_momenta(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, pid: np.ndarray) -> tuple[np.ndarray, ...]:
    """(px, py, pz, E, m) in GeV, float64, each (n,), from pT [GeV], eta, phi and PDG ids."""
    pt64, eta64, phi64 = (np.asarray(x, dtype=np.float64) for x in (pt, eta, phi))
    px, py, pz = pt64 * np.cos(phi64), pt64 * np.sin(phi64), pt64 * np.sinh(eta64)
    try:
        mass = pdg_mass(pid)
    except KeyError as exc:
        raise InputError(f"no mass known for PDG id {exc}; add it to hicgen.data.species.PDG_MASS") from None
    energy = np.sqrt((pt64 * np.cosh(eta64)) ** 2 + mass**2)
    return px, py, pz, energy, mass


def _escape(text: Any) -> str:
    return str(text).replace("\n", " ").replace("|", "\\|")


def _attr_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value).replace("\n", " ")


def run_header(run_info: dict[str, Any]) -> str:
    """The file header: version, listing start, weight name, the hicgen tool line and run attributes."""
    lines = [f"HepMC::Version {HEPMC_VERSION}", "HepMC::Asciiv3-START_EVENT_LISTING", "W default",
             f"T hicgen\\|{_escape(__version__)}\\|{_escape(run_info.get('description', 'diffusion-model heavy-ion event generator'))}"]
    lines += [f"A {key} {_attr_text(value)}" for key, value in run_info.items() if key != "description"]
    return "\n".join(lines) + "\n"


def _heavy_ion_line(b: float, ncoll: int, npart: int, psi2: float, centrality: float) -> str:
    """GenHeavyIon 'v0' record (field order of HepMC3's GenHeavyIon::to_string)."""
    return (f"A 0 GenHeavyIon v0 -1 {(npart + 1) // 2} {npart // 2} {ncoll} -1 -1 -1 -1 -1 "
            f"{b!r} {psi2!r} -1 -1 {centrality!r} -1 -1 -1 -1 -1 0 0\n")


def format_events(batch: EventBatch, first_number: int, beams_text: str) -> bytes:
    """Asciiv3 text of all events of `batch`, numbered from `first_number`."""
    n_events, n = len(batch), int(batch.offsets[-1])
    p = batch.particles
    px, py, pz, energy, mass = four_momenta(p["pt"], p["eta"], p["phi"], p["pid"])
    ids = np.arange(n, dtype=np.int64) - np.repeat(batch.offsets[:-1], batch.multiplicity) + 3
    text, line_off = format_lines(
        [b"P ", Int(ids, 10), b" -1 ", Int(p["pid"], 11), b" ", Sci(px, DIGITS), b" ", Sci(py, DIGITS), b" ",
         Sci(pz, DIGITS), b" ", Sci(energy, DIGITS), b" ", Sci(mass, DIGITS), b" 1\n"],
        n,
    )
    ev = batch.events
    cols = {k: np.asarray(v).tolist() for k, v in ev.items()}
    zeros = [0] * n_events
    b, ncoll, npart, psi2 = (cols.get(k, zeros) for k in ("b", "ncoll", "npart", "psi2"))
    cent = cols.get("centrality", [-1.0] * n_events)
    extra = [k for k in cols if k not in HEAVY_ION_COLUMNS and k not in ("mult", EVENT_NUMBER)]
    numbers = event_numbers(batch, first_number)
    mult = batch.multiplicity.tolist()
    byte_off = line_off[batch.offsets].tolist()
    out = []
    for i in range(n_events):
        attrs = "".join(f"A 0 {k} {float(cols[k][i])!r}\n" for k in extra)
        out.append(
            (f"E {numbers[i]} 1 {mult[i] + 2}\nU GEV MM\nW 1\n"
             + _heavy_ion_line(float(b[i]), int(ncoll[i]), int(npart[i]), float(psi2[i]), float(cent[i]))
             + attrs + beams_text).encode()
        )
        out.append(text[byte_off[i] : byte_off[i + 1]])
    return b"".join(out)


def gzip_writer(raw: io.BufferedIOBase, threads: int) -> io.BufferedIOBase:
    """A gzip stream into the open file `raw` (left open on close): zlib-ng's, compressing on `threads` threads
    besides the caller's, at level 2 (on HepMC3 text 5 % smaller and 1.2x faster than stdlib zlib's level 1), where
    zlib-ng is installed; else stdlib gzip at GZIP_LEVEL on the calling thread."""
    try:
        from zlib_ng import gzip_ng_threaded
    except ImportError:
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    return gzip_ng_threaded.open(raw, "wb", compresslevel=2, threads=threads)


class HepMCWriter:
    """Streams EventBatch chunks into a HepMC3 ASCII file (gzip when the name ends in .gz).

    The file is filled under '.NAME.part' and renamed by close(), so a closed file holds whole events and an
    existing file is replaced only by a complete one. `run_info` must name 'system' and 'sqrt_s' (GeV) for the beams.
    Chunks of FORMAT_PARTICLES particles are formatted on `threads` threads (default compression_threads(); numpy
    releases the GIL for most of the work) and written in order, up to 2 x threads chunks ahead of the file; the
    gzip stream compresses on as many threads again.
    """

    def __init__(self, path: str | os.PathLike, run_info: dict[str, Any], overwrite: bool = False,
                 threads: int | None = None) -> None:
        from hicgen.io import HEPMC_SUFFIXES

        self.path = check_output(path, overwrite, HEPMC_SUFFIXES)
        if "system" not in run_info or "sqrt_s" not in run_info:
            raise InputError("HepMC3 output needs the collision system and sqrt_s (run_info 'system', 'sqrt_s') for its beam particles")
        beams = beam_momenta(str(run_info["system"]), float(run_info["sqrt_s"]))
        self._beams = "".join(
            f"P {k + 1} 0 {pid} 0.0 0.0 {pz!r} {e!r} {m!r} 4\n" for k, (pid, pz, e, m) in enumerate(beams)
        ) + "V -1 0 [1,2]\n"
        threads = compression_threads() if threads is None else threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hicgen-hepmc") if threads > 1 else None
        self._formatting: deque[Future] = deque()  # chunks being formatted, in file order
        self._max_formatting = 2 * threads
        self._tmp = partial_path(self.path)
        raw = open(self._tmp, "wb")
        self._file: io.BufferedIOBase | None = gzip_writer(raw, threads) if self.path.name.lower().endswith(".gz") else raw
        self._raw = raw
        self._file.write(run_header(run_info).encode())
        self.n_events = 0
        self.n_particles = 0

    def write(self, batch: EventBatch) -> None:
        """Append whole events (handed to the formatting threads; close() writes the last of them)."""
        for start, stop in event_chunks(batch.offsets, FORMAT_PARTICLES):
            chunk = batch.slice(start, stop)
            if self._pool is None:
                self._file.write(format_events(chunk, self.n_events, self._beams))
            else:
                self._formatting.append(self._pool.submit(format_events, chunk, self.n_events, self._beams))
                while len(self._formatting) > self._max_formatting:
                    self._file.write(self._formatting.popleft().result())
            self.n_events += stop - start
            self.n_particles += int(batch.offsets[stop] - batch.offsets[start])

    def _finish(self) -> None:
        for pending in self._formatting:
            pending.cancel()
        if self._pool is not None:
            self._pool.shutdown()
        self._file.close()
        if self._file is not self._raw:
            self._raw.close()
        self._file = None

    def close(self) -> Path:
        """Write the events still being formatted and the end-of-listing line, and move the file to its final name."""
        if self._file is not None:
            try:
                while self._formatting:
                    self._file.write(self._formatting.popleft().result())
            except BaseException:
                self.abort()
                raise
            self._file.write(b"HepMC::Asciiv3-END_EVENT_LISTING\n\n")
            self._finish()
            os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; an existing file at the output path is untouched."""
        if self._file is not None:
            self._finish()
        self._tmp.unlink(missing_ok=True)


def events_to_pyhepmc(batch: EventBatch, run_info: dict[str, Any], first_number: int = 0) -> Iterator[Any]:
    """The same events as pyhepmc.GenEvent objects (built with GenEvent.from_hepevt), for in-memory use."""
    from hicgen.errors import require

    pyhepmc = require("pyhepmc", "io")
    info = pyhepmc.GenRunInfo()
    info.tools = [pyhepmc.GenRunInfo.ToolInfo("hicgen", __version__, "diffusion-model heavy-ion event generator")]
    info.weight_names = ["default"]
    info.attributes = {k: v for k, v in run_info.items() if k != "description"}
    beams = beam_momenta(str(run_info["system"]), float(run_info["sqrt_s"]))
    p = batch.particles
    px, py, pz, energy, mass = four_momenta(p["pt"], p["eta"], p["phi"], p["pid"])
    cent = batch.events.get("centrality", np.full(len(batch), -1.0))
    extra = [k for k in batch.events if k not in HEAVY_ION_COLUMNS and k not in ("mult", EVENT_NUMBER)]
    numbers = event_numbers(batch, first_number)
    for i in range(len(batch)):
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        n = int(hi - lo)
        event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
        event.from_hepevt(
            numbers[i],
            np.r_[0.0, 0.0, px[lo:hi]], np.r_[0.0, 0.0, py[lo:hi]],
            np.r_[beams[0][1], beams[1][1], pz[lo:hi]], np.r_[beams[0][2], beams[1][2], energy[lo:hi]],
            np.r_[beams[0][3], beams[1][3], mass[lo:hi]],
            np.r_[beams[0][0], beams[1][0], p["pid"][lo:hi]].astype(np.int32),
            np.r_[4, 4, np.ones(n)].astype(np.int32),
            parents=np.r_[[[-1, -1], [-1, -1]], np.tile([[0, 1]], (n, 1))].astype(np.int32),
            fortran=False,
        )
        event.run_info = info
        event.weights = [1.0]
        heavy = pyhepmc.GenHeavyIon()
        npart = int(batch.events["npart"][i])
        heavy.impact_parameter = float(batch.events["b"][i])
        heavy.Ncoll = int(batch.events["ncoll"][i])
        heavy.Npart_proj, heavy.Npart_targ = (npart + 1) // 2, npart // 2
        heavy.event_plane_angle = float(batch.events["psi2"][i])
        heavy.centrality = float(cent[i])
        event.heavy_ion = heavy
        for k in extra:
            event.attributes[k] = float(batch.events[k][i])
        yield event


def read_hepmc(path: str | os.PathLike) -> EventBatch:
    """A HepMC3 file as one EventBatch of its final-state (status 1) particles.

    Event columns: event_number (the E line's); b, ncoll, npart (proj + targ), psi2 (event-plane angle) and
    centrality from GenHeavyIon; every other column from the event's attributes when present (files written by hicgen), else computed
    from the particles (`particle_event_features`); mult is the number of final particles.
    """
    return next(iter_hepmc(path, None))


def iter_hepmc(path: str | os.PathLike, events_per_chunk: int | None = 10_000) -> Iterator[EventBatch]:
    """A HepMC3 file as EventBatches of `events_per_chunk` events (read_hepmc's columns, decided per chunk; the whole
    file as one batch for None), parsed chunk by chunk, so a large file costs the memory of one chunk."""
    from hicgen.errors import require

    pyhepmc = require("pyhepmc", "io")
    path = check_input(path, "HepMC3")
    columns: dict[str, list[float]] = {}
    parts: dict[str, list[np.ndarray]] = {"px": [], "py": [], "pz": [], "pid": []}
    counts: list[int] = []
    try:
        with pyhepmc.open(path) as stream:
            for event in stream:
                arr = event.numpy.particles
                final = arr.status == 1
                for key in parts:
                    parts[key].append(np.asarray(getattr(arr, key))[final])
                counts.append(int(final.sum()))
                heavy = event.heavy_ion
                row = {EVENT_NUMBER: event.event_number, "centrality": -1.0}
                if heavy is not None:
                    row.update({"b": heavy.impact_parameter, "ncoll": heavy.Ncoll, "npart": heavy.Npart_proj + heavy.Npart_targ,
                                "psi2": heavy.event_plane_angle, "centrality": heavy.centrality})
                for key, value in event.attributes.items():
                    if key != "GenHeavyIon" and hasattr(value, "astype"):
                        try:
                            row[key] = value.astype(float)
                        except (TypeError, ValueError):
                            continue
                for key, value in row.items():
                    columns.setdefault(key, []).append(value)
                if events_per_chunk is not None and len(counts) == events_per_chunk:
                    yield _hepmc_batch(columns, parts, counts)
                    columns, parts, counts = {}, {key: [] for key in parts}, []
    except (OSError, RuntimeError) as exc:
        raise InputError(f"'{path}' is not a readable HepMC3 file ({exc})") from None
    if counts or events_per_chunk is None:
        yield _hepmc_batch(columns, parts, counts)


def _hepmc_batch(columns: dict[str, list[float]], parts: dict[str, list[np.ndarray]], counts: list[int]) -> EventBatch:
    """The EventBatch of parsed events: final particles' (pt, eta, phi, pid) from (px, py, pz, pid), and the event
    columns held by every event (else, where the particles give them, computed from those)."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    px, py, pz = (np.concatenate(parts[k]) if counts else np.zeros(0) for k in ("px", "py", "pz"))
    pt = np.hypot(px, py)
    particles = {
        "pt": pt.astype(np.float32),
        "eta": np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0)).astype(np.float32),
        "phi": np.arctan2(py, px).astype(np.float32),
        "pid": (np.concatenate(parts["pid"]) if counts else np.zeros(0)).astype(np.int32),
    }
    features = particle_event_features(particles["pt"], particles["eta"], particles["phi"], offsets)
    events: dict[str, np.ndarray] = {}
    for name in EVENT_COLUMNS + tuple(k for k in columns if k not in EVENT_COLUMNS):
        values = columns.get(name)
        if name == "mult" or (values is None or len(values) != len(counts)):
            if name in features:
                events[name] = features[name]
            continue
        events[name] = np.asarray(values, dtype=event_dtype(name))
    return EventBatch(events=events, offsets=offsets, particles=particles)
