"""Clean interrupts: SIGINT and SIGTERM stop a command with one line and exit 130 / 143.

The command line installs :func:`handle_signals` around a long command (``scan``, ``register``,
``erase``). The first SIGINT or SIGTERM raises :class:`Interrupted` in the main thread, so every
``finally`` of the pipeline runs (worker processes are terminated, temporary files removed, an open
catalog transaction rolled back) and the command prints one line naming what was not done. Whatever
exception the interrupted code ends with (DuckDB reports ``Query interrupted``, a process pool
``BrokenProcessPool``), it is reported as the interruption, never as a traceback.

The final catalog commit and the renames of the finished outputs run inside :func:`critical`: a
signal that arrives there is held until the section ends, the commit completes, and the command
says so (:func:`deferred`).
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

#: Signals that stop a command, and their names in messages.
SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT / SIGTERM while :func:`handle_signals` is active."""

    def __init__(self, signum: int) -> None:
        super().__init__(SIGNALS.get(signum, str(signum)))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class _State:
    received: int | None = None   # the first signal seen while handling was active
    deferred: int | None = None   # a signal held back by a critical section
    critical: int = 0
    finishing: bool = False       # the final commit began: signals stay held until the command ends
    active: bool = False          # handle_signals is in force
    phase: str = "starting"


_state = _State()


def phase(description: str) -> None:
    """Name what the command is doing now (used in the interruption message)."""
    _state.phase = description


def received() -> int | None:
    """The signal that interrupted the command, if any."""
    return _state.received


def deferred() -> int | None:
    """A signal that arrived inside a critical section (the section completed)."""
    return _state.deferred


def _handler(signum: int, _frame) -> None:
    if _state.critical or _state.finishing:
        _state.deferred = _state.deferred or signum
        return
    if _state.received is not None:  # a second signal while the first one's cleanup runs: ignore
        return
    _state.received = signum
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def handle_signals() -> Iterator[None]:
    """Route SIGINT / SIGTERM to :class:`Interrupted` (main thread only; a no-op elsewhere)."""
    if not _in_main_thread():
        yield
        return
    _state.received = _state.deferred = None
    _state.critical = 0
    _state.finishing = False
    _state.phase = "starting"
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    _state.active = True
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state.finishing = _state.active = False


@contextmanager
def critical(description: str, *, final: bool = True) -> Iterator[None]:
    """Hold SIGINT / SIGTERM back while the block runs (the final commit): it completes, then
    :func:`deferred` names the signal. With ``final`` (a command's last commit) they stay held
    until :func:`handle_signals` ends: what follows the commit (removing the work folder) is part
    of finishing, and an interruption there would misreport a completed command. Outside
    :func:`handle_signals` (library use) SIGINT would raise KeyboardInterrupt, so the same handler
    is installed for the block when possible, and a signal it held is raised again under the previous
    handler once the block completes."""
    installed = {}
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is not _handler:
        installed = {s: signal.signal(s, _handler) for s in SIGNALS}
        # library use: only a signal that arrives in this section is delivered after it, never one a finished
        # command held back (its CLI has read it; delivered here it would kill a notebook much later)
        _state.deferred = None
    _state.critical += 1
    if final and _state.active:
        _state.finishing = True
    previous_phase, _state.phase = _state.phase, description
    try:
        yield
    finally:
        _state.critical -= 1
        _state.phase = previous_phase
        for s, h in installed.items():
            signal.signal(s, h)
        if installed and _state.deferred is not None and not _state.critical:
            # library use: the block completed; deliver the held signal as Python would have, to the handler
            # that was there before (Python's default raises KeyboardInterrupt for SIGINT; an ignored signal
            # stays ignored; the caller's own handler runs)
            signum, _state.deferred = _state.deferred, None
            signal.raise_signal(signum)


@contextmanager
def blocked() -> Iterator[None]:
    """Block SIGINT / SIGTERM (at the OS level) for the block; one that arrives meanwhile is delivered
    when it ends. For code that must not be interrupted half-way by an exception from the handler:
    ``Executor.submit`` holds a lock a later ``shutdown`` needs, and a process started inside the
    block inherits the blocked mask, so a worker is never killed by Ctrl-C while it starts up (it
    ignores SIGINT, then unblocks; see :mod:`provaudit.engine.local`)."""
    if not _in_main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, list(SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def result(future: Future, poll: float = 0.2) -> Any:
    """``future.result()`` that wakes every ``poll`` seconds. A signal is often delivered to another
    thread (a pool's feeder, polars' workers); Python then runs the handler only when the main thread
    next executes bytecode, which a plain ``result()`` would postpone until the future completes
    (seconds for a batch). Polling bounds the interrupt latency instead."""
    while True:
        try:
            return future.result(timeout=poll)
        except TimeoutError:
            continue


def report(exc: BaseException | None, what: str) -> int | None:
    """If the command was interrupted, print one line naming what was not done and return the exit
    code (130 for SIGINT, 143 for SIGTERM); None when it was not."""
    signum = _state.received
    if signum is None:
        return None
    name = SIGNALS.get(signum, str(signum))
    sys.stderr.write(f"interrupted ({name}) while {_state.phase}: {what}\n")
    sys.stderr.flush()
    return 128 + int(signum)


__all__ = ["Interrupted", "blocked", "critical", "deferred", "handle_signals", "phase", "received", "report",
           "result"]
