"""Readers for checkpoint evaluation results: metrics tables, per-sample files, trainer logs.

Every reader returns a polars frame with a ``_line`` column (the physical line for CSV/JSONL,
the record index for Parquet and ``trainer_state.json``) so that later checks can name the
offending line and field in an :class:`~provaudit.errors.InputError`.
"""
from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.errors import InputError
from provaudit.yamlfile import load_yaml


def _default_rules() -> Path:
    from provaudit.paths import rules_dir

    return rules_dir() / "checkpoints.yaml"


def load_rules(path: Path | str | None = None) -> dict[str, Any]:
    """Load the name-detection and threshold rules (``rules/checkpoints.yaml`` by default)."""
    path = Path(_default_rules() if path is None else path)
    data = load_yaml(path, what="rules file")
    if not isinstance(data, dict) or "columns" not in data:
        raise InputError("rules must be a mapping with a 'columns' section", file=str(path), field="columns")
    data.setdefault("thresholds", {})
    data.setdefault("seesaw_pairs", [])
    return data


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _clean(value: Any) -> Any:
    """Make JSON values frame-friendly: NaN/inf strings become floats, nested objects JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _frame_from_rows(rows: list[dict[str, Any]], file: str) -> pl.DataFrame:
    if not rows:
        raise InputError("no records", file=file)
    keys: dict[str, None] = {}
    for row in rows:
        for k in row:
            keys.setdefault(k, None)
    columns: dict[str, list[Any]] = {k: [row.get(k) for row in rows] for k in keys}
    series = []
    for name, values in columns.items():
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float, bool} and kinds - {bool}:
            vals = [None if v is None else float(v) for v in values]
            if kinds == {int}:
                series.append(pl.Series(name, [None if v is None else int(v) for v in values], dtype=pl.Int64))
            else:
                series.append(pl.Series(name, vals, dtype=pl.Float64))
        elif kinds == {bool}:
            series.append(pl.Series(name, values, dtype=pl.Boolean))
        else:
            series.append(pl.Series(name, [None if v is None else (v if isinstance(v, str) else json.dumps(v))
                                           for v in values], dtype=pl.Utf8))
    return pl.DataFrame(series)


def _read_jsonl(path: Path) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON ({exc.msg})", file=str(path), line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", file=str(path), line=lineno)
            row = {k: _clean(v) for k, v in obj.items()}
            row["_line"] = lineno
            rows.append(row)
    return _frame_from_rows(rows, str(path))


def _read_trainer_state(path: Path, obj: dict[str, Any]) -> pl.DataFrame:
    """Merge TRL ``log_history`` entries by step: one row per step, last value of each key wins."""
    history = obj.get("log_history")
    if not isinstance(history, list):
        raise InputError("trainer_state.json has no 'log_history' list", file=str(path), field="log_history")
    by_step: dict[int, dict[str, Any]] = {}
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise InputError(f"log_history[{i}] is not an object", file=str(path), field="log_history")
        step = entry.get("step")
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            raise InputError(f"log_history[{i}] has no numeric step", file=str(path), field="step")
        row = by_step.setdefault(int(step), {"step": int(step), "_line": i})
        for key, value in entry.items():
            if key == "step":
                continue
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise InputError(f"log_history[{i}] value {value!r} is not a number", file=str(path),
                                     field=key) from None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = float(value)
    rows = [by_step[s] for s in sorted(by_step)]
    for row in rows:
        row["checkpoint"] = f"step-{row['step']}"
    return _frame_from_rows(rows, str(path))


def _read_json(path: Path) -> pl.DataFrame:
    try:
        with _open_text(path) as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", file=str(path), line=exc.lineno) from None
    if isinstance(obj, dict) and "log_history" in obj:
        return _read_trainer_state(path, obj)
    if isinstance(obj, dict):
        # {"rows": [...]} or column-oriented {"col": [..]}
        for key in ("rows", "data", "records", "samples"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise InputError("expected a JSON list of objects or a trainer_state.json", file=str(path))
    rows = []
    for i, r in enumerate(obj):
        row = {k: _clean(v) for k, v in r.items()}
        row["_line"] = i
        rows.append(row)
    return _frame_from_rows(rows, str(path))


def read_table(path: str | Path) -> pl.DataFrame:
    """Read one CSV/TSV/JSONL/JSON/Parquet/trainer_state.json file into a frame with ``_line``."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=str(path))
    suffix = _base_suffix(p)
    if suffix in (".csv", ".tsv"):
        try:
            frame = pl.read_csv(p, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=None,
                                null_values=["", "NA", "nan", "NaN", "null", "None"])
        except Exception as exc:  # noqa: BLE001 - polars raises several error classes for malformed CSV
            msg = str(exc).splitlines()[0][:200]
            raise InputError(f"cannot parse CSV: {msg}", file=str(path)) from None
        frame = frame.with_columns((pl.int_range(0, pl.len()) + 2).cast(pl.Int64).alias("_line"))
    elif suffix in (".jsonl", ".ndjson"):
        frame = _read_jsonl(p)
    elif suffix == ".json":
        frame = _read_json(p)
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pl.read_parquet(p)
        except Exception as exc:  # noqa: BLE001 - any pyarrow/polars read failure is bad input
            raise InputError(f"cannot read Parquet: {str(exc).splitlines()[0][:200]}", file=str(path)) from None
        frame = frame.with_columns(pl.int_range(0, pl.len()).cast(pl.Int64).alias("_line"))
    else:
        raise InputError(f"unsupported file type {suffix or '(none)'}; use CSV, JSONL, JSON or Parquet",
                         file=str(path))
    if frame.height == 0:
        raise InputError("no records", file=str(path))
    return frame


def match_column(columns: list[str], patterns: list[str], exclude: set[str] = frozenset()) -> str | None:
    """Return the first column matching the earliest pattern (whole-name, case-insensitive)."""
    for pat in patterns:
        rx = re.compile(pat, re.IGNORECASE)
        for col in columns:
            if col in exclude:
                continue
            if rx.fullmatch(col):
                return col
    return None


def is_ignored(col: str, rules: dict[str, Any]) -> bool:
    """True for bookkeeping columns (loss, runtime, learning rate, ...) never used as metrics."""
    return match_column([col], rules["columns"].get("ignore", [])) is not None


@dataclass
class Source:
    """One input file after reading and classification."""

    path: str
    kind: str  # "samples" or "metrics"
    frame: pl.DataFrame
    roles: dict[str, str | None] = field(default_factory=dict)


def to_float(frame: pl.DataFrame, col: str, file: str) -> pl.Series:
    """Cast a column to floats; a value that is present but not numeric is an InputError naming its line."""
    s = frame[col]
    if s.dtype.is_numeric() or s.dtype == pl.Boolean:
        out = s.cast(pl.Float64)
    else:
        out = s.cast(pl.Float64, strict=False)
        bad = (out.is_null() & s.is_not_null()).arg_true()
        if len(bad):
            i = int(bad[0])
            raise InputError(f"value {s[i]!r} is not a number", file=file, line=int(frame["_line"][i]), field=col)
    nonfinite = out.is_not_null() & ~out.is_finite()
    if nonfinite.any():
        i = int(nonfinite.arg_true()[0])
        raise InputError(f"value {s[i]!r} is not finite", file=file, line=int(frame["_line"][i]), field=col)
    return out


def finite(x: float | None) -> bool:
    """True for a real, finite number."""
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
