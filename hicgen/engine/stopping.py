"""Stopping a long run cleanly on Ctrl-C or SIGTERM: the signal only sets a flag, and the run stops at its next
whole unit of work (a network evaluation or batch, a chunk of events, a hydro time step, a training step).

Python's own Ctrl-C handling raises KeyboardInterrupt after whatever bytecode the main thread happens to be in,
for instance between a lock's acquire and the `try` that would release it (the signal module's "Note on Signal
Handlers and Exceptions"). A run whose main thread shares queues and locks with its writer, reader and
compression threads can then be left holding a lock forever, and hang while it closes its files. Within
`stop_on_signals()` SIGINT and SIGTERM instead set a flag, and `check_stop()`, which the loops call where they hold
no lock, raises the KeyboardInterrupt there; the run then keeps what it finished, as before (training instead asks
`stop_requested()` after each step, saves its state and returns). A second signal raises at once, for a run that
does not reach its next check soon enough; one that comes within REPEAT_WINDOW_S of the first is the same stop
(a launcher passing on the signal its process group also got: torchrun sends its workers the SIGTERM it receives).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_WINDOW_S = 2.0  # a second signal sooner than this after the first is the same stop passed on
_requested = threading.Event()
_first_signal_at = 0.0


def check_stop() -> None:
    """Raise KeyboardInterrupt when a signal has asked the run to stop (never outside `stop_on_signals`)."""
    if _requested.is_set():
        raise KeyboardInterrupt


def stop_requested() -> bool:
    """Whether a signal has asked the run to stop, for a loop that saves its state before it stops (training)."""
    return _requested.is_set()


@contextlib.contextmanager
def signal_handlers(handler: Callable[[int, Any], None], signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[bool]:
    """Within the block, `handler` handles `signals`; the previous handlers come back afterwards. Yields whether it
    took them: signals reach the main thread only, so elsewhere this changes nothing and yields False."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM (Ctrl-C, Slurm, kill) asks the run to stop at its next
    `check_stop()`; a second one raises KeyboardInterrupt at once, unless it comes within REPEAT_WINDOW_S of the
    first (the same stop passed on). Both are set and unblocked explicitly, since a process started with them
    ignored or blocked (nohup, some launchers) would otherwise never stop. The previous handlers and signal mask
    come back afterwards. A no-op outside the main thread (signals only reach that one)."""

    def request_stop(signum, frame) -> None:
        global _first_signal_at
        if not _requested.is_set():
            _first_signal_at = time.monotonic()
            _requested.set()
        elif time.monotonic() - _first_signal_at >= REPEAT_WINDOW_S:
            raise KeyboardInterrupt

    with signal_handlers(request_stop) as taken:
        if not taken:
            yield
            return
        _requested.clear()
        # a signal mask inherited from the parent (e.g. a launcher that blocked SIGINT) would hold them pending forever
        blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            _requested.clear()
