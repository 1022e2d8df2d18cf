"""Ctrl-C and SIGTERM within stop_on_signals: the signal only asks the run to stop, the run stops at its next
check_stop, after its current batch, and no lock is left held by an exception raised mid-way."""

from __future__ import annotations

import os
import signal
import threading

import h5py
import numpy as np
import pytest

from hicgen.engine import stopping
from hicgen.engine.generate import RunStats, write_events
from hicgen.engine.stopping import check_stop, stop_on_signals
from tests.conftest import toy_batch


def _deliver(sig: signal.Signals) -> None:
    """Send `sig` to this process and run bytecode until its handler has run (handlers run between bytecodes)."""
    os.kill(os.getpid(), sig)
    for _ in range(10_000):
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_asks_second_raises(sig, monkeypatch):
    monkeypatch.setattr(stopping, "REPEAT_WINDOW_S", 0.0)
    before = signal.getsignal(sig)
    with stop_on_signals():
        _deliver(sig)  # nothing raised here
        with pytest.raises(KeyboardInterrupt):
            check_stop()
        with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
            _deliver(sig)
    assert signal.getsignal(sig) is before
    check_stop()  # the request does not outlive the block


def test_a_signal_passed_on_at_once_is_the_same_stop():
    """torchrun sends its workers the SIGTERM it gets, which a SIGTERM to the job's process group has already
    delivered to them: that second signal, right after the first, must not raise (the run saves its state first)."""
    with stop_on_signals():
        _deliver(signal.SIGTERM)
        _deliver(signal.SIGTERM)  # nothing raised
        with pytest.raises(KeyboardInterrupt):
            check_stop()


def test_a_signal_blocked_by_the_parent_still_stops_the_run():
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        with stop_on_signals():
            _deliver(signal.SIGTERM)
            with pytest.raises(KeyboardInterrupt):
                check_stop()
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the mask comes back
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class _Generator:
    """Yields toy batches; SIGTERM arrives while batch `signal_at` is made, with a lock held (as a queue's)."""

    def __init__(self, n_batches: int, signal_at: int) -> None:
        self.stats, self.n_batches, self.signal_at = RunStats(), n_batches, signal_at
        self.lock = threading.Lock()

    def batches(self):
        for k in range(self.n_batches):
            self.lock.acquire()
            if k == self.signal_at:
                _deliver(signal.SIGTERM)
            self.lock.release()
            batch = toy_batch(10, seed=k)
            self.stats.events += len(batch)
            yield batch


class _Plan:
    def __init__(self, generator: _Generator) -> None:
        self.generator = generator
        self.run_info = {"system": "OO", "sqrt_s": 5360.0}


def test_sigterm_mid_batch_finishes_the_batch_and_leaves_no_lock_held(tmp_path):
    """The batch being made when SIGTERM came is finished and written, then the run stops with whole events; the
    lock its maker held at that moment is free (a KeyboardInterrupt raised by the handler would have left it held)."""
    plan = _Plan(_Generator(n_batches=20, signal_at=2))
    with stop_on_signals():
        stats = write_events(plan, tmp_path / "events.h5")
    assert stats.interrupted and stats.extra["written_events"] == 30
    assert plan.generator.lock.acquire(timeout=1)
    with h5py.File(tmp_path / "events.h5") as f:
        assert len(f["events/mult"]) == 30 and np.all(f["events/mult"][()] > 0)


def _stop_signals_job(index: int, n_events: int, log):
    """A worker job (module level, for the spawned workers): one chunk per call, whose `failed` count says whether
    the worker ignores SIGINT and SIGTERM; endless, so that only the parent can end it."""
    ignored = all(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM))
    while True:
        yield toy_batch(1, seed=index), int(ignored)


def test_angantyr_workers_leave_stop_signals_to_the_parent(tmp_path):
    """The workers of `hicgen truth angantyr` ignore SIGINT and SIGTERM: a SIGTERM to the job's process group would
    otherwise end a worker in the middle of a chunk it is putting into the queue, and the parent's read of that chunk
    would wait forever. The parent ends them (SIGKILL) when it stops reading."""
    import multiprocessing as mp

    from hicgen.truth.workers import run_workers

    chunks = run_workers(_stop_signals_job, 10**6, 2, tmp_path)
    assert [next(chunks)[1] for _ in range(4)] == [1, 1, 1, 1]
    chunks.close()  # the parent stops reading, as on a stop
    assert not [p for p in mp.active_children() if p.is_alive()]
