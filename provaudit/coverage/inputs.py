"""Eval and production inputs for coverage: any file the scanner reads -> one text per unit.

A unit is a prompt (roles ``prompt`` and ``text``, the default) or a whole record (every text of one
source row joined, ``unit="record"``). Each input keeps its dataset fingerprint, computed exactly as
``provaudit scan``/``register`` compute it, so the catalog can tie a coverage run to registered datasets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from provaudit.errors import InputError, UsageError
from provaudit.fingerprint import DatasetDigest, _normalized_column

UNITS = ("prompt", "record")
PROMPT_ROLES = ("prompt", "text")
#: record-table columns --by may name directly; anything else is looked up in the row's metadata
RECORD_COLUMNS = ("dataset", "source_file", "model", "schema")


@dataclass
class Units:
    """Texts to compare, one row per unit: record_id, text, source_file, source_row, window."""

    frame: pl.DataFrame
    inputs: list[dict]  # per file: path, dataset, schema, fingerprint, n_units


def _fingerprint(df: pl.DataFrame) -> str:
    import xxhash

    norm = _normalized_column(df["text"])
    hashes = [xxhash.xxh3_128_hexdigest(t.encode("utf-8")) for t in norm.to_list()]
    digest = DatasetDigest()
    digest.update(df.with_columns(pl.Series("text_hash", hashes, dtype=pl.Utf8)))
    return digest.fingerprint()


def _by_values(df: pl.DataFrame, by: str, path: str) -> pl.Series:
    if by in RECORD_COLUMNS:
        vals = df[by].cast(pl.Utf8)
    else:
        vals = (
            df["meta"].str.json_path_match("$." + by)
            if re.fullmatch(r"[A-Za-z_][\w.]*", by)
            else df["meta"].map_elements(lambda m: _meta_value(m, by), return_dtype=pl.Utf8)
        )
    vals = vals.set(
        vals.str.starts_with("{") | vals.str.starts_with("["), None
    )  # objects and lists: no window
    missing = vals.is_null().arg_true()
    if len(missing):
        row = int(df["source_row"][int(missing[0])])
        raise InputError(
            f"--by column missing in {len(missing)} of {df.height} records (row {row} is the first)",
            file=path,
            line=row + 1,
            field=by,
        )
    return vals


def _meta_value(meta: str | None, key: str) -> str | None:
    try:
        obj = json.loads(meta) if meta else {}
    except json.JSONDecodeError:
        return None
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    if obj is None or isinstance(obj, dict | list):
        return None
    return str(obj)


def load_units(
    paths: Sequence[str | Path],
    *,
    unit: str = "prompt",
    by: str | None = None,
    what: str = "production",
    mapping: dict[str, str] | None = None,
) -> Units:
    """Read ``paths`` into units; ``window`` is the ``by`` value, else the file's position (file order)."""
    from provaudit.io import read_table

    if unit not in UNITS:
        raise UsageError(f"unknown unit {unit!r}; choose one of {UNITS}")
    frames, inputs = [], []
    for i, path in enumerate(paths):
        p = Path(path)
        if not p.exists():
            raise InputError("file not found", file=str(path))
        df = read_table(p, mapping=mapping)
        fp = _fingerprint(df)  # of every record, as register/scan fingerprint the file
        if unit == "prompt":
            df = df.filter(
                pl.col("role").is_in(PROMPT_ROLES) & pl.col("text").str.strip_chars().str.len_chars().gt(0)
            )
            if df.height == 0:
                raise InputError(
                    f"{what} file has no prompt records (roles {', '.join(PROMPT_ROLES)}); "
                    "use unit 'record' to compare whole records",
                    file=str(path),
                    field="prompt",
                )
            units = df.select(
                "record_id", "text", "source_file", "source_row", "meta", "dataset", "model", "schema"
            )
        else:
            df = df.filter(pl.col("text").str.strip_chars().str.len_chars().gt(0))
            if df.height == 0:
                raise InputError(f"{what} file has no texts", file=str(path), field="text")
            units = (
                df.group_by("pair_id", maintain_order=True)
                .agg(
                    pl.col("text").str.join("\n\n"),
                    pl.first("source_file"),
                    pl.first("source_row"),
                    pl.first("meta"),
                    pl.first("dataset"),
                    pl.first("model"),
                    pl.first("schema"),
                )
                .rename({"pair_id": "record_id"})
            )
        window = _by_values(units, by, str(path)) if by else pl.Series([f"{i:03d}:{p.name}"] * units.height)
        frames.append(
            units.with_columns(window.alias("window")).select(
                "record_id", "text", "source_file", "source_row", "window"
            )
        )
        inputs.append(
            {
                "path": str(path),
                "dataset": str(df["dataset"][0]),
                "schema": str(df["schema"][0]),
                "fingerprint": fp,
                "n_units": units.height,
            }
        )
    if not frames:
        raise UsageError(f"no {what} files given")
    return Units(pl.concat(frames), inputs)


def order_windows(values: Sequence[str], max_windows: int) -> tuple[list[str], dict[str, str]]:
    """Window labels in time order and the map value -> label (consecutive values merged past ``max_windows``).

    Values sort as numbers when every one parses as a number, else as strings (ISO dates sort in time order).
    """
    distinct = sorted(set(values))
    try:
        distinct = sorted(distinct, key=float)
    except ValueError:
        pass
    if len(distinct) <= max_windows:
        return distinct, {v: v for v in distinct}
    labels, mapping = [], {}
    n = len(distinct)
    for k in range(max_windows):
        chunk = distinct[k * n // max_windows : (k + 1) * n // max_windows]
        label = f"{chunk[0]}..{chunk[-1]}" if len(chunk) > 1 else chunk[0]
        labels.append(label)
        mapping.update({v: label for v in chunk})
    return labels, mapping
