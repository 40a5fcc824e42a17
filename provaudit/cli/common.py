"""Helpers shared by the command modules: error translation and output."""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from provaudit.errors import ProvauditError

CATALOG_OPTION = click.option(
    "--catalog", "catalog_path", type=click.Path(dir_okay=False), default=None,
    help="DuckDB catalog file (default: .provaudit/catalog.duckdb).",
)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProvauditError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


WAIT_OPTION = click.option(
    "--wait", "wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
    help="Seconds to queue for the catalog's write lock (or a catalog another process has open) before "
         "giving up with exit 3 (default 300, or PROVAUDIT_CATALOG_WAIT).",
)


def interruptible(not_done: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """SIGINT / SIGTERM end the command with one line, ``interrupted (SIGINT) while <phase>: <not_done>``,
    and exit 130 / 143, whatever the interrupted code raised (see :mod:`provaudit.interrupt`)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from provaudit import interrupt

            with interrupt.handle_signals():
                try:
                    return fn(*args, **kwargs)
                except BaseException as exc:
                    code = interrupt.report(exc, not_done)
                    if code is None:
                        raise
                    sys.exit(code)
                finally:
                    signum = interrupt.deferred()
                    if signum is not None:
                        click.echo(f"note: {interrupt.SIGNALS.get(signum, signum)} arrived during the final "
                                   "commit; the commit completed, so the command finished", err=True)

        return wrapper

    return decorate


def echo_json(obj: Any) -> None:
    """Print JSON deterministically (sorted keys, fixed float repr)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str))


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a readable table.")


def text_table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, max_cell: int = 60) -> str:
    """A plain fixed-width text table for terminal output. Cells are cut to ``max_cell`` characters,
    except in the last column (paths, details), which is printed in full."""
    last = len(header) - 1
    cells = [[str(h) for h in header]] + [["" if c is None else (str(c) if i == last else str(c)[:max_cell])
                                            for i, c in enumerate(r)] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
