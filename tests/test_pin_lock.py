"""The catalog's write lock and busy-file retries (provaudit.catalog.lock) pinned in one process.

``flock`` locks belong to an open file description, so a second ``os.open`` of the lock file in this process
stands for another provaudit process: it cannot take the lock while a writer holds it, and a writer cannot take
it while that descriptor does. Waiting is checked on a fake clock (``time.monotonic`` and ``time.sleep`` of
the module replaced), so the deadline, the one notice and the back-off are exact and the tests take no time.
"""
from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from provaudit.catalog import lock
from provaudit.errors import CatalogBusy


class Clock:
    """``time.monotonic`` / ``time.sleep`` for the lock module: sleeping advances the clock, and each sleep is
    recorded; ``on_sleep`` may act (release a lock, change what an open returns) after a given sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.now += s
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    # the module's own name for the time module, so nothing else in the process sees the fake clock
    monkeypatch.setattr(lock, "time", SimpleNamespace(monotonic=c.monotonic, sleep=c.sleep))
    return c


def _other_holder(path: Path, text: str = "") -> int:
    """Another "process" holding the lock file (its own open file description), naming itself with ``text``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
    return fd


def _free(path: Path) -> bool:
    """Whether another process could take the lock now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock taken here
    return True


def test_the_default_wait_and_its_environment_variable(monkeypatch) -> None:
    monkeypatch.delenv("PROVAUDIT_CATALOG_WAIT", raising=False)
    assert lock.default_wait() == 300.0 == lock.DEFAULT_WAIT
    monkeypatch.setenv("PROVAUDIT_CATALOG_WAIT", "2.5")
    assert lock.default_wait() == 2.5
    monkeypatch.setenv("PROVAUDIT_CATALOG_WAIT", "soon")
    assert lock.default_wait() == 300.0
    assert lock.lock_path(Path("/x/cat.duckdb")) == Path("/x/cat.duckdb.lock")


def test_the_lock_is_held_for_the_block_names_its_holder_and_nests(tmp_path: Path, monkeypatch) -> None:
    cat = tmp_path / "sub" / "cat.duckdb"
    path = lock.lock_path(cat)
    monkeypatch.setattr(lock.sys, "argv", ["provaudit", "scan", "batch.jsonl", "--more"])
    assert not lock.holds_write_lock(cat)
    with lock.write_lock(cat, wait=0):
        assert path.exists() and not _free(path) and lock.holds_write_lock(cat)
        assert path.read_text() == f"{os.getpid()} provaudit scan batch.jsonl\n"
        with lock.write_lock(cat, wait=0):  # the same thread again: re-entrant
            assert lock.holds_write_lock(cat) and not _free(path)
        assert lock.holds_write_lock(cat) and not _free(path)  # still held by the outer block
    assert not lock.holds_write_lock(cat) and _free(path)
    # an error inside the block releases it too
    with pytest.raises(RuntimeError), lock.write_lock(cat, wait=0):
        raise RuntimeError("boom")
    assert not lock.holds_write_lock(cat) and _free(path)
    # the same catalog through another spelling of its path is the same lock
    (tmp_path / "sub" / "x").mkdir()
    with lock.write_lock(tmp_path / "sub" / "x" / ".." / "cat.duckdb", wait=0):
        assert lock.holds_write_lock(cat)


def test_another_thread_waits_for_the_lock_or_gives_up_at_once(tmp_path: Path) -> None:
    cat = tmp_path / "cat.duckdb"
    inside, release, out = threading.Event(), threading.Event(), []

    def holder() -> None:
        with lock.write_lock(cat, wait=0):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    with pytest.raises(CatalogBusy) as ei, lock.write_lock(cat, wait=0):
        pass
    assert str(ei.value) == f"{cat}: another thread of this process held the catalog's write lock for 0 s"
    assert ei.value.exit_code == 3
    with pytest.raises(CatalogBusy, match="for 0.05 s"), lock.write_lock(cat, wait=0.05):
        pass

    def waiter() -> None:
        with lock.write_lock(cat, wait=10):
            out.append("got it")

    w = threading.Thread(target=waiter)
    w.start()
    release.set()
    t.join(10)
    w.join(10)
    assert out == ["got it"] and not lock.holds_write_lock(cat)


def test_a_writer_queues_behind_another_process_then_takes_the_lock(tmp_path: Path, clock: Clock, capsys) -> None:
    cat = tmp_path / "cat.duckdb"
    path = lock.lock_path(cat)
    other = _other_holder(path, "4242 provaudit scan other.jsonl\n")

    def release(n: int) -> None:
        if n == 60:
            fcntl.flock(other, fcntl.LOCK_UN)

    clock.on_sleep = release
    with lock.write_lock(cat, wait=30):
        assert lock.holds_write_lock(cat) and path.read_text().startswith(f"{os.getpid()} ")
    os.close(other)
    assert len(clock.sleeps) == 60
    # back-off: 20 ms growing by half each time, capped at a quarter second
    want, d = [], 0.02
    for _ in range(60):
        want.append(d)
        d = min(d * 1.5, 0.25)
    assert clock.sleeps == pytest.approx(want)
    # one line once the wait passes a second, naming the holder and the wait
    err = capsys.readouterr().err
    assert err == (f"waiting for the catalog write lock ({path}) held by pid 4242 provaudit scan other.jsonl, "
                   "up to 30 s (--wait)\n")


def test_a_writer_past_the_wait_fails_with_exit_3_and_sleeps_no_longer_than_the_wait(tmp_path: Path, clock: Clock,
                                                                                       capsys) -> None:
    cat = tmp_path / "cat.duckdb"
    path = lock.lock_path(cat)
    other = _other_holder(path, "")  # a holder that wrote nothing: "another provaudit process"
    start = clock.now
    with pytest.raises(CatalogBusy) as ei, lock.write_lock(cat, wait=2):
        pass
    assert clock.now - start == pytest.approx(2.0) and sum(clock.sleeps) == pytest.approx(2.0)
    assert max(clock.sleeps) <= 0.25
    assert str(ei.value) == (f"{cat}: the catalog's write lock was held by another provaudit process for the whole "
                             "wait (2 s); retry later or raise --wait")
    assert capsys.readouterr().err.count("waiting for the catalog write lock") == 1
    assert not lock.holds_write_lock(cat)
    # a short wait says nothing before it gives up... unless it reaches the wait itself (the notice comes at
    # min(1 s, wait)): a 0.5 s wait notices at 0.5 s, which is its deadline, so it fails without the line
    clock.sleeps.clear()
    with pytest.raises(CatalogBusy, match=r"for the whole wait \(0.5 s\)"), lock.write_lock(cat, wait=0.5):
        pass
    assert capsys.readouterr().err == ""
    # no wait at all: one try
    clock.sleeps.clear()
    with pytest.raises(CatalogBusy, match=r"\(0 s\)"), lock.write_lock(cat, wait=0):
        pass
    assert clock.sleeps == [] and capsys.readouterr().err == ""
    # a negative wait is no wait
    with pytest.raises(CatalogBusy, match=r"\(0 s\)"), lock.write_lock(cat, wait=-3):
        pass
    os.close(other)
    with lock.write_lock(cat, wait=0):
        assert lock.holds_write_lock(cat)


def test_the_holder_text(tmp_path: Path) -> None:
    f = tmp_path / "x.lock"
    assert lock._holder(f) == "another provaudit process"  # unreadable (missing)
    f.write_text("  \n")
    assert lock._holder(f) == "another provaudit process"
    f.write_text("77 provaudit erase\n")
    assert lock._holder(f) == "pid 77 provaudit erase"


class Busy(Exception):
    pass


def test_retry_busy_retries_only_busy_errors_until_the_wait(tmp_path: Path, clock: Clock, capsys) -> None:
    calls: list[int] = []

    def opener(fail: int, exc: type[Exception] = Busy):
        def f() -> str:
            calls.append(1)
            if len(calls) <= fail:
                raise exc("file is busy")
            return "open"
        return f

    def is_busy(e: BaseException) -> bool:
        return isinstance(e, Busy)

    what = tmp_path / "cat.duckdb"
    assert lock.retry_busy(opener(0), is_busy, what=what, wait=5) == "open" and calls == [1] and clock.sleeps == []
    calls.clear()
    assert lock.retry_busy(opener(4), is_busy, what=what, wait=5) == "open" and len(calls) == 5
    assert clock.sleeps == pytest.approx([0.01, 0.015, 0.0225, 0.03375])
    assert capsys.readouterr().err == ""  # under a second: no line
    # another error is not retried
    calls.clear()
    clock.sleeps.clear()
    with pytest.raises(ValueError):
        lock.retry_busy(opener(3, ValueError), is_busy, what=what, wait=5)
    assert calls == [1] and clock.sleeps == []
    # busy for the whole wait: the last busy error, after sleeping exactly the wait, with one line past a second
    calls.clear()
    clock.sleeps.clear()
    with pytest.raises(Busy):
        lock.retry_busy(opener(10 ** 6), is_busy, what=what, wait=3)
    assert sum(clock.sleeps) == pytest.approx(3.0) and max(clock.sleeps) == pytest.approx(0.2)
    assert len(calls) == len(clock.sleeps) + 1
    assert capsys.readouterr().err == (f"waiting for {what}: another provaudit process has it open, "
                                       "up to 3 s\n")
    # no wait: one try
    calls.clear()
    clock.sleeps.clear()
    with pytest.raises(Busy):
        lock.retry_busy(opener(1), is_busy, what=what, wait=0)
    assert calls == [1] and clock.sleeps == []
    # the default wait is the environment's
    calls.clear()
    clock.sleeps.clear()
    os.environ["PROVAUDIT_CATALOG_WAIT"] = "0.5"
    try:
        with pytest.raises(Busy):
            lock.retry_busy(opener(10 ** 6), is_busy, what=what)
    finally:
        del os.environ["PROVAUDIT_CATALOG_WAIT"]
    assert sum(clock.sleeps) == pytest.approx(0.5)


def test_each_catalog_has_its_own_lock_file_created_with_its_folders(tmp_path: Path, monkeypatch) -> None:
    a, b = tmp_path / "one" / "two" / "a.duckdb", tmp_path / "b.duckdb"
    monkeypatch.setattr(lock.sys, "argv", ["provaudit", "register", "x" * 300])
    with lock.write_lock(a, wait=0):
        # the folders are made, and the file is rw-r--r-- (less what the umask removes)
        umask = os.umask(0)
        os.umask(umask)
        assert os.stat(lock.lock_path(a)).st_mode & 0o777 == 0o644 & ~umask
        # the holder's command line is cut to 200 characters
        assert lock.lock_path(a).read_text() == f"{os.getpid()} {('provaudit register ' + 'x' * 300)[:200]}\n"
        # holding one catalog's lock is not holding another's: the second is taken on its own file
        assert not lock.holds_write_lock(b) and _free(lock.lock_path(b))
        with lock.write_lock(b, wait=0):
            assert not _free(lock.lock_path(b)) and not _free(lock.lock_path(a))
        assert _free(lock.lock_path(b)) and not _free(lock.lock_path(a)) and lock.holds_write_lock(a)
    assert _free(lock.lock_path(a))


def test_a_holder_text_that_is_not_utf8_is_still_named(tmp_path: Path) -> None:
    f = tmp_path / "x.lock"
    f.write_bytes(b"12 scan \xff\xfe caf\xc3\xa9\n")
    assert lock._holder(f) == "pid 12 scan \ufffd\ufffd caf\u00e9"


def test_a_thread_waits_up_to_its_wait_and_no_descriptor_is_left_open(tmp_path: Path) -> None:
    cat = tmp_path / "cat.duckdb"
    inside, out = threading.Event(), []

    def holder() -> None:
        with lock.write_lock(cat, wait=0):
            inside.set()
            threading.Event().wait(0.15)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    with lock.write_lock(cat, wait=0.9):  # under a second: still a wait, not a single try
        out.append("got it")
    t.join(10)
    assert out == ["got it"]
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with lock.write_lock(cat, wait=0):
            pass
    assert len(os.listdir("/proc/self/fd")) == fds
