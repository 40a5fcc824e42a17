"""One progress display for every long step, on a terminal only.

A *session* is one rich ``Progress`` rendered to stderr (transient: it disappears when done). While a
session is active, library code names what it is doing with :func:`step` (a spinner with the step's
name and elapsed time, or a bar when the step has a total) without knowing whether anyone watches:
with no active session every call here is a no-op, so notebooks and ``--json`` runs print nothing.

The CLI opens a session with ``session(tty_enabled(as_json))``: on only when stdout and stderr are both
terminals and the command does not print JSON, so piped or ``--json`` output never carries progress.
"""
from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

_lock = threading.Lock()
_active: _Session | None = None

F = TypeVar("F", bound=Callable[..., Any])


def tty_enabled(as_json: bool = False) -> bool:
    """The CLI default: progress only on a terminal, never with ``--json``."""
    return (not as_json) and _isatty(sys.stdout) and _isatty(sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _make_progress(enabled: bool, unit: str = ""):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class _Count(ProgressColumn):
        """``12000/100000 rows`` when the step has a total, nothing otherwise."""

        def render(self, task) -> Text:
            if task.total is None:
                return Text("")
            u = task.fields.get("unit", unit)
            return Text(f"{int(task.completed)}/{int(task.total)} {u}".rstrip())

    class _Bar(BarColumn):
        def render(self, task):
            return Text("") if task.total is None else super().render(task)

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), _Bar(bar_width=30), _Count(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True, disable=not enabled,
                    refresh_per_second=8)


class _Session:
    def __init__(self, enabled: bool):
        self.progress = _make_progress(enabled)
        self._step: Any = None
        self.history: list[str] = []  # every step and bar named in this session, in order

    def step(self, name: str, total: float | None = None, unit: str = "") -> None:
        with _lock:
            if self._step is not None:
                self.progress.remove_task(self._step)
            self._step = self.progress.add_task(name, total=total, unit=unit)
            self.history.append(name)

    def update(self, **kwargs: Any) -> None:
        with _lock:
            if self._step is not None:
                self.progress.update(self._step, **kwargs)

    def done(self) -> None:
        with _lock:
            if self._step is not None:
                self.progress.remove_task(self._step)
                self._step = None


@contextmanager
def session(enabled: bool) -> Iterator[_Session | None]:
    """Show progress for the block when ``enabled``; nested sessions reuse the outer one."""
    global _active
    if _active is not None or not enabled:
        yield _active
        return
    s = _Session(enabled)
    with s.progress:
        _active = s
        try:
            yield s
        finally:
            _active = None


def step(name: str, total: float | None = None, unit: str = "") -> None:
    """Name the step now running (replaces the previous one); a bar when ``total`` is given."""
    if _active is not None:
        _active.step(name, total=total, unit=unit)


def advance(n: float = 1) -> None:
    """Advance the current step's bar by ``n``."""
    if _active is not None:
        _active.update(advance=n)


def done() -> None:
    """Clear the current step (the session stays open)."""
    if _active is not None:
        _active.done()


def steps(items: Any, name: str, total: int | None = None, unit: str = "") -> Iterator[Any]:
    """Iterate ``items`` as one step with a bar (``total`` defaults to ``len(items)``)."""
    if _active is None:
        yield from items
        return
    if total is None:
        try:
            total = len(items)
        except TypeError:
            total = None
    step(name, total=total, unit=unit)
    for it in items:
        yield it
        advance(1)


@contextmanager
def bar(enabled: bool, unit: str = "rows") -> Iterator[Any]:
    """A rich ``Progress`` for code that manages its own tasks: the active session's (tasks added in the
    block are removed at its end), else a transient one of its own shown when ``enabled``."""
    if _active is not None:
        prog = _active.progress
        before = {t.id for t in prog.tasks}
        _active.done()
        try:
            yield _UnitProgress(prog, unit, _active.history)
        finally:
            for t in list(prog.tasks):
                if t.id not in before:
                    prog.remove_task(t.id)
        return
    with _make_progress(enabled, unit) as prog:
        yield prog


class _UnitProgress:
    """The session's ``Progress`` with ``unit`` as the default unit of the tasks added through it."""

    def __init__(self, prog: Any, unit: str, history: list[str]):
        self._prog, self._unit, self._history = prog, unit, history

    def add_task(self, description: str, **kwargs: Any) -> Any:
        kwargs.setdefault("unit", self._unit)
        self._history.append(description)
        return self._prog.add_task(description, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._prog, name)


def with_session(flag: str = "progress") -> Callable[[F], F]:
    """Decorator: run the function inside ``session(kwargs[flag])`` (for library calls with progress=True)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with session(bool(kwargs.get(flag))):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


__all__ = ["advance", "bar", "done", "session", "step", "steps", "tty_enabled", "with_session"]
