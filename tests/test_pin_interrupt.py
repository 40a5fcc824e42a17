"""Signals (provaudit.interrupt) pinned in one process: ``signal.raise_signal`` in the main thread runs the
handler before the next line, so each case is deterministic. The safety tests (test_safety.py) check the same
rules end to end on real commands in subprocesses; these check every rule of the module directly, in under a
second: the first SIGINT / SIGTERM interrupts (exit 130 / 143, one line naming the phase), a second is ignored,
a critical section holds signals until it ends (and a final one until the command ends), library use gets
Python's own behaviour back after the section, ``blocked`` delays delivery, handlers are restored.
"""
from __future__ import annotations

import signal
import threading
from concurrent.futures import Future

import pytest

from provaudit import interrupt
from provaudit.interrupt import (
    Interrupted,
    blocked,
    critical,
    deferred,
    handle_signals,
    phase,
    received,
    report,
)


@pytest.fixture(autouse=True)
def _restore_handlers():
    before = {s: signal.getsignal(s) for s in interrupt.SIGNALS}
    yield
    for s, h in before.items():
        signal.signal(s, h)


def test_the_main_thread_test_and_a_report_for_another_signal(monkeypatch, capsys) -> None:
    assert interrupt._in_main_thread() is True
    seen = []
    t = threading.Thread(target=lambda: seen.append(interrupt._in_main_thread()))
    t.start()
    t.join(10)
    assert seen == [False]
    monkeypatch.setattr(interrupt._state, "received", signal.SIGHUP)
    monkeypatch.setattr(interrupt._state, "phase", "registering")
    assert report(None, "nothing was recorded") == 128 + int(signal.SIGHUP)
    assert capsys.readouterr().err == f"interrupted ({int(signal.SIGHUP)}) while registering: nothing was recorded\n"


@pytest.mark.parametrize(("signum", "name", "code"), [(signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143)])
def test_the_first_signal_interrupts_with_its_exit_code_and_one_line(signum, name, code, capsys) -> None:
    with pytest.raises(Interrupted) as ei, handle_signals():
        phase("reading batch.jsonl")
        signal.raise_signal(signum)
        pytest.fail("the handler did not raise")  # pragma: no cover
    assert (ei.value.signum, ei.value.exit_code, str(ei.value)) == (signum, code, name)
    assert received() == signum and deferred() is None
    assert report(ei.value, "nothing was recorded") == code
    assert capsys.readouterr().err == f"interrupted ({name}) while reading batch.jsonl: nothing was recorded\n"


def test_an_unnamed_signal_number_is_its_own_name() -> None:
    e = Interrupted(signal.SIGHUP)
    assert str(e) == str(int(signal.SIGHUP)) and e.exit_code == 128 + int(signal.SIGHUP)


def test_handlers_are_installed_for_the_block_and_restored(capsys) -> None:
    seen = []
    mine = lambda s, f: seen.append(s)
    signal.signal(signal.SIGTERM, mine)
    with handle_signals():
        assert signal.getsignal(signal.SIGINT) is interrupt._handler
        assert signal.getsignal(signal.SIGTERM) is interrupt._handler
        assert interrupt._state.active and received() is None
    assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is not interrupt._handler
    assert not interrupt._state.active and not interrupt._state.finishing
    # nothing received: no line, no exit code
    assert report(None, "x") is None and capsys.readouterr().err == ""
    signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM]


def test_a_second_signal_during_the_cleanup_is_ignored() -> None:
    cleaned = []
    with pytest.raises(Interrupted) as ei, handle_signals():
        try:
            signal.raise_signal(signal.SIGINT)
        finally:
            signal.raise_signal(signal.SIGTERM)  # ignored: the first one's cleanup runs
            cleaned.append(True)
    assert cleaned == [True] and ei.value.signum == signal.SIGINT and received() == signal.SIGINT


def test_each_command_starts_with_a_clean_state(monkeypatch) -> None:
    with pytest.raises(Interrupted), handle_signals():
        phase("first")
        signal.raise_signal(signal.SIGINT)
    # whatever an earlier command left (a section count, a finishing flag) is reset
    monkeypatch.setattr(interrupt._state, "critical", 2)
    monkeypatch.setattr(interrupt._state, "finishing", True)
    with pytest.raises(Interrupted), handle_signals():
        assert interrupt._state.critical == 0 and not interrupt._state.finishing
        signal.raise_signal(signal.SIGINT)  # so a signal interrupts instead of being held
    with handle_signals():
        assert received() is None and deferred() is None and interrupt._state.phase == "starting"
        assert interrupt._state.critical == 0 and not interrupt._state.finishing
    assert received() is None


def test_a_final_critical_section_completes_and_holds_signals_to_the_end(capsys) -> None:
    done = []
    with handle_signals():
        phase("scanning")
        with critical("committing to the catalog"):
            assert interrupt._state.phase == "committing to the catalog"
            signal.raise_signal(signal.SIGTERM)  # held
            signal.raise_signal(signal.SIGINT)   # held too; the first is the one named
            done.append("commit")
        assert interrupt._state.phase == "scanning"
        signal.raise_signal(signal.SIGINT)  # after a final commit: still held (the command is finishing)
        done.append("cleanup")
    assert done == ["commit", "cleanup"]
    assert deferred() == signal.SIGTERM and received() is None
    assert report(None, "x") is None and capsys.readouterr().err == ""


def test_a_critical_section_that_is_not_final_lets_the_next_signal_interrupt() -> None:
    with pytest.raises(Interrupted) as ei, handle_signals():
        with critical("writing the work files", final=False):
            signal.raise_signal(signal.SIGTERM)
        assert deferred() == signal.SIGTERM and not interrupt._state.finishing
        with critical("outer", final=False), critical("inner", final=False):  # nested: held until both end
            signal.raise_signal(signal.SIGINT)
            assert interrupt._state.critical == 2
        assert interrupt._state.critical == 0
        signal.raise_signal(signal.SIGINT)
    assert ei.value.signum == signal.SIGINT


def test_library_use_gets_the_held_signal_after_the_section() -> None:
    # no handle_signals (a notebook): the section installs the handler for itself and, once it completes,
    # raises KeyboardInterrupt for a SIGINT as Python would have
    assert signal.getsignal(signal.SIGINT) is not interrupt._handler
    done = []
    with pytest.raises(KeyboardInterrupt), critical("committing"):
        signal.raise_signal(signal.SIGINT)
        done.append("commit")
    assert done == ["commit"] and deferred() is None
    assert signal.getsignal(signal.SIGINT) is not interrupt._handler
    # a SIGTERM is raised again under the handler that was there before the section
    seen = []
    signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    with critical("committing"):
        signal.raise_signal(signal.SIGTERM)
        assert seen == []
    assert seen == [signal.SIGTERM] and deferred() is None
    # nothing held: nothing raised
    with critical("committing"):
        pass
    # the caller's own SIGINT handler gets the held SIGINT (no KeyboardInterrupt); an ignored one stays ignored
    signal.signal(signal.SIGINT, lambda s, f: seen.append(s))
    with critical("committing"):
        signal.raise_signal(signal.SIGINT)
        assert seen == [signal.SIGTERM]
    assert seen == [signal.SIGTERM, signal.SIGINT]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with critical("committing"):
        signal.raise_signal(signal.SIGINT)
    assert seen == [signal.SIGTERM, signal.SIGINT] and deferred() is None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # nested sections deliver once, when the outermost ends
    with pytest.raises(KeyboardInterrupt), critical("outer"):
        with critical("inner"):
            signal.raise_signal(signal.SIGINT)
        done.append("inner ended")
    assert done == ["commit", "inner ended"]


def test_blocked_delays_a_signal_to_the_end_of_the_block() -> None:
    order = []
    with pytest.raises(Interrupted), handle_signals():
        with blocked():
            signal.raise_signal(signal.SIGINT)
            order.append("inside")
        order.append("after")  # pragma: no cover - the signal is delivered as the block ends
    assert order == ["inside"]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_other_threads_are_left_alone() -> None:
    out = []

    def worker() -> None:
        with handle_signals(), blocked():  # no-ops: signal.signal works in the main thread only
            out.append(signal.getsignal(signal.SIGINT) is interrupt._handler)
        with critical("a worker's section"):
            out.append(interrupt._state.critical)

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert out == [False, 1]


def test_result_waits_for_the_future_in_short_polls() -> None:
    f: Future = Future()
    calls = []
    real = f.result

    def result(timeout=None):
        calls.append(timeout)
        if len(calls) == 3:
            f.set_result("done")
        return real(timeout=timeout if len(calls) >= 3 else 0)

    f.result = result  # type: ignore[method-assign]
    assert interrupt.result(f, poll=0.05) == "done" and calls == [0.05, 0.05, 0.05]
    g: Future = Future()
    g.set_exception(ValueError("bad batch"))
    with pytest.raises(ValueError, match="bad batch"):
        interrupt.result(g)
    h: Future = Future()
    h.set_result(1)
    seen = []
    real_h = h.result
    h.result = lambda timeout=None: seen.append(timeout) or real_h(timeout)  # type: ignore[method-assign]
    assert interrupt.result(h) == 1 and seen == [0.2]


def test_a_signal_a_finished_command_held_back_is_not_delivered_by_a_later_library_section() -> None:
    """A SIGTERM held during a command's final commit is the command's (its CLI reports it); a notebook's later
    library call whose commit section ends must not raise it again (under the default handler it would kill
    the process)."""
    with handle_signals(), critical("committing to the catalog"):
        signal.raise_signal(signal.SIGTERM)
    assert deferred() == signal.SIGTERM  # what the command line reads once the command ends
    seen = []
    signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    with critical("a later library commit"):
        pass
    assert seen == [] and deferred() is None

