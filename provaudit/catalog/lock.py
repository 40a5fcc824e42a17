"""Who may write the catalog, and when: a queued write lock across processes, retried opens.

DuckDB lets one process open a database file read-write, or any number open it read-only, never
both; a second opener fails at once. provaudit therefore:

* serializes writers with an advisory lock (``flock``) on ``<catalog>.lock``, a small file that
  stays beside the catalog and names the current holder. A writer that finds it taken waits (up to
  ``wait`` seconds, ``--wait`` on the command line), saying once on stderr who holds it, then fails
  with :class:`~provaudit.errors.CatalogBusy` (exit 3). The kernel drops the lock when its process
  dies, so a killed writer never leaves the catalog locked;
* opens the DuckDB file read-write only while holding that lock, and only for as long as the
  write takes (a scan does all its work first and takes the lock for the final commit only);
* retries an open that DuckDB refuses because another process holds the file (a reader meeting a
  commit, or a commit meeting a reader) with a short back-off, up to the same wait.

The lock is re-entrant within a thread (a registration nested in ``checkpoint add`` reuses it) and
excludes other threads of the process.
"""
from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from provaudit.errors import CatalogBusy

#: Default seconds to wait for the write lock or a busy catalog file (``PROVAUDIT_CATALOG_WAIT``).
DEFAULT_WAIT = 300.0
#: A wait longer than this prints one line saying what it waits for.
NOTICE_AFTER = 1.0

T = TypeVar("T")


def default_wait() -> float:
    try:
        return float(os.environ.get("PROVAUDIT_CATALOG_WAIT", DEFAULT_WAIT))
    except ValueError:
        return DEFAULT_WAIT


def lock_path(catalog: Path) -> Path:
    return catalog.with_name(catalog.name + ".lock")


class _Held:
    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.fd: int | None = None
        self.count = 0


_registry: dict[str, _Held] = {}
_registry_mutex = threading.Lock()


def _entry(catalog: Path) -> _Held:
    key = str(catalog.resolve())
    with _registry_mutex:
        return _registry.setdefault(key, _Held())


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another provaudit process"
    return f"pid {text}" if text else "another provaudit process"


def _notice(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def holds_write_lock(catalog: Path) -> bool:
    """Whether this process already holds ``catalog``'s write lock."""
    return _entry(catalog).count > 0


@contextmanager
def write_lock(catalog: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the catalog's write lock for the block, queueing behind other writers for up to ``wait``
    seconds (default :func:`default_wait`); :class:`CatalogBusy` (exit 3) past the wait."""
    wait = default_wait() if wait is None else max(0.0, float(wait))
    entry = _entry(catalog)
    deadline = time.monotonic() + wait
    got = entry.mutex.acquire(timeout=wait) if wait > 0 else entry.mutex.acquire(False)
    if not got:
        raise CatalogBusy(f"{catalog}: another thread of this process held the catalog's write lock for {wait:g} s")
    try:
        if entry.count == 0:
            entry.fd = _acquire_file(lock_path(catalog), deadline, wait)
        entry.count += 1
        try:
            yield
        finally:
            entry.count -= 1
            if entry.count == 0 and entry.fd is not None:
                fd, entry.fd = entry.fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
    finally:
        entry.mutex.release()


def _acquire_file(path: Path, deadline: float, wait: float) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    noticed = False
    delay = 0.02
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now >= deadline:
                    raise CatalogBusy(f"{path.with_suffix('')}: the catalog's write lock was held by "
                                      f"{_holder(path)} for the whole wait ({wait:g} s); retry later or "
                                      "raise --wait") from None
                if not noticed and now - start >= min(NOTICE_AFTER, wait):
                    _notice(f"waiting for the catalog write lock ({path}) held by {_holder(path)}, "
                            f"up to {wait:g} s (--wait)")
                    noticed = True
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 1.5, 0.25)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv[:3])[:200]}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def retry_busy(open_fn: Callable[[], T], is_busy: Callable[[BaseException], bool], *, what: Path,
               wait: float | None = None) -> T:
    """Call ``open_fn`` until it does not fail with a "file is busy" error (``is_busy``), backing
    off up to ``wait`` seconds; then let the last error through."""
    wait = default_wait() if wait is None else max(0.0, float(wait))
    start = time.monotonic()
    delay = 0.01
    noticed = False
    while True:
        try:
            return open_fn()
        except Exception as exc:
            elapsed = time.monotonic() - start
            if not is_busy(exc) or elapsed >= wait:
                raise
            if not noticed and elapsed >= min(NOTICE_AFTER, wait):
                _notice(f"waiting for {what}: another provaudit process has it open, up to {wait:g} s")
                noticed = True
            time.sleep(min(delay, max(0.0, wait - elapsed)))
            delay = min(delay * 1.5, 0.2)


__all__ = ["DEFAULT_WAIT", "default_wait", "holds_write_lock", "lock_path", "retry_busy", "write_lock"]
