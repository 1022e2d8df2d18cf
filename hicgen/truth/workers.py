"""Run a chunked event source in K worker processes and merge the chunks in a fixed order.

Worker k makes its share of the events with its own seed and sends chunks through a queue; the
parent writes them round-robin (chunk 0 of worker 0, chunk 0 of worker 1, ..., chunk 1 of worker 0, ...),
so the file depends only on (seed, workers), never on timing. Workers print to their own log files.
Ctrl-C, and a batch system's SIGTERM, reach the whole process group; the parent decides when to stop (at its next
check_stop, keeping the chunks it wrote), so a worker ignores both, and the parent ends the workers with SIGKILL
once it no longer reads their queue. A worker ended by SIGTERM could leave half a chunk in the queue's pipe, on
which the parent's read would wait forever (the parent holds the pipe's write end too). A worker that died
otherwise while the parent was asked to stop is part of that stop, not a failure.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hicgen.data.batch import EventBatch
from hicgen.engine.stopping import check_stop
from hicgen.errors import HicgenError

# A job builds a chunk iterator inside the worker: job(worker_index, n_events, log_path) -> Iterator[(batch, failed)].
Job = Callable[[int, int, Path], Iterator[tuple[EventBatch, int]]]


@dataclass
class WorkerStats:
    events: int = 0
    failed: int = 0


def split_events(n_events: int, workers: int) -> list[int]:
    """Events per worker: as equal as possible, the first ones get the remainder."""
    base, extra = divmod(n_events, workers)
    return [base + (1 if k < extra else 0) for k in range(workers)]


def _worker_main(job: Job, index: int, n_events: int, log: Path, out: mp.Queue) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # the parent's to handle (module docstring)
        signal.signal(sig, signal.SIG_IGN)
    try:
        for chunk_index, (batch, failed) in enumerate(job(index, n_events, log)):
            out.put(("chunk", index, chunk_index, batch, failed))
        out.put(("done", index, None, None, 0))
    except BaseException as exc:  # reported to the parent, which raises it as one line
        with open(log, "a") as fh:
            fh.write(traceback.format_exc())
        out.put(("error", index, None, f"{type(exc).__name__}: {exc}", 0))


def run_workers(job: Job, n_events: int, workers: int, log_dir: Path) -> Iterator[tuple[EventBatch, int]]:
    """Yield (batch, failed) chunks of all workers in round-robin order; stops workers on exit or Ctrl-C."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue(maxsize=4 * workers)
    shares = split_events(n_events, workers)
    procs = [
        ctx.Process(target=_worker_main, args=(job, k, shares[k], log_dir / f"worker{k}.log", results), daemon=True)
        for k in range(workers)
    ]
    for proc in procs:
        proc.start()
    pending: dict[tuple[int, int], tuple[EventBatch, int]] = {}
    finished = [shares[k] == 0 for k in range(workers)]
    next_chunk = [0] * workers
    turn = 0
    try:
        while not all(finished) or pending:
            check_stop()
            # emit every chunk that is next in round-robin order
            while True:
                live = [k for k in range(workers) if not finished[k] or (k, next_chunk[k]) in pending]
                if not live:
                    break
                while turn not in live:
                    turn = (turn + 1) % workers
                key = (turn, next_chunk[turn])
                if key not in pending:
                    break
                yield pending.pop(key)
                next_chunk[turn] += 1
                turn = (turn + 1) % workers
            if all(finished) and not pending:
                break
            try:
                kind, k, chunk_index, payload, failed = results.get(timeout=1.0)
            except queue_module.Empty:
                check_stop()  # a worker that died while this process was asked to stop: a stop, not a failure
                dead = [k for k, p in enumerate(procs) if not p.is_alive() and not finished[k]]
                if dead:
                    raise HicgenError(f"worker {dead[0]} stopped unexpectedly; see {log_dir / f'worker{dead[0]}.log'}")
                continue
            if kind == "chunk":
                pending[(k, chunk_index)] = (payload, failed)
            elif kind == "done":
                finished[k] = True
            else:
                raise HicgenError(f"worker {k} failed: {payload} (log: {log_dir / f'worker{k}.log'})")
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()  # SIGKILL: the workers ignore SIGTERM (module docstring)
        for proc in procs:
            proc.join(timeout=5)
