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
