"""Turning the many accepted inputs (paths, frames, lists of strings) into texts or pairs."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.errors import InputError

TextSource = str | Path | pl.DataFrame | Sequence[str]
TEXT_ROLES = ("response", "chosen", "rejected", "text")


def source_name(src: Any, index: int) -> str:
    if isinstance(src, str | Path) and not _is_text_list(src):
        return Path(src).stem if Path(src).suffix else str(src)
    if isinstance(src, pl.DataFrame) and "dataset" in src.columns and src.height:
        return str(src["dataset"][0])
    return f"batch{index}"


def _is_text_list(src: Any) -> bool:
    return not isinstance(src, str | Path | pl.DataFrame) and isinstance(src, Sequence)


def read_frame(path: str | Path) -> pl.DataFrame:
    """Read a file into the normalized record table (provaudit.io)."""
    from provaudit.io import read_table

    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=str(path))
    return read_table(p)


def load_texts(src: TextSource, *, roles: Sequence[str] = TEXT_ROLES, what: str = "batch") -> list[str]:
    """Texts of a batch: response-like records of a file or record table, or the strings given."""
    if isinstance(src, str | Path):
        df = read_frame(src)
    elif isinstance(src, pl.DataFrame):
        df = src
    elif isinstance(src, Sequence):
        bad = next((i for i, t in enumerate(src) if not isinstance(t, str)), None)
        if bad is not None:
            raise InputError(f"{what} item {bad} is {type(src[bad]).__name__}, expected a string", field="text")
        return list(src)
    else:
        raise InputError(f"{what}: expected a path, a polars DataFrame or a list of strings, "
                         f"got {type(src).__name__}")
    if "text" not in df.columns:
        raise InputError(f"{what}: the table has no 'text' column", field="text")
    if "role" in df.columns:
        df = df.filter(pl.col("role").is_in(list(roles)))
    texts = [t for t in df["text"].to_list() if isinstance(t, str) and t.strip()]
    if not texts:
        where = str(src) if isinstance(src, str | Path) else None
        raise InputError(f"{what} has no response texts (roles {', '.join(roles)})", file=where, field="text")
    return texts


def load_pairs(src: str | Path | pl.DataFrame) -> pl.DataFrame:
    """Preference pairs as one row per pair.

    Columns: pair_id, prompt, chosen, rejected (the two responses for ties), tie (bool),
    chosen_position (1 or 2 when the source says which slot won, else null), annotator, timestamp,
    seconds (labelling time, when recorded).
    Accepts a file or record table (hh_rlhf, trl, pairwise AlpacaEval annotations, ...) or a frame
    that already has ``chosen``/``rejected`` columns.
    """
    if isinstance(src, str | Path):
        df = read_frame(src)
    elif isinstance(src, pl.DataFrame):
        df = src
    else:
        raise InputError(f"pairs: expected a path or a polars DataFrame, got {type(src).__name__}")
    if {"chosen", "rejected"} <= set(df.columns):
        out = df.with_columns(pl.lit(False).alias("tie")) if "tie" not in df.columns else df
        if "pair_id" not in out.columns:
            out = out.with_row_index("pair_id").with_columns(pl.col("pair_id").cast(pl.Utf8))
        for col in ("prompt", "chosen_position", "annotator", "timestamp", "seconds"):
            if col not in out.columns:
                out = out.with_columns(pl.lit(None).alias(col))
        return out.select("pair_id", "prompt", "chosen", "rejected", "tie", "chosen_position", "annotator",
                          "timestamp", "seconds")
    if not {"pair_id", "role", "text"} <= set(df.columns):
        raise InputError("pairs: need a record table (pair_id, role, text) or chosen/rejected columns",
                         field="chosen")
    rows: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for rec in df.select("pair_id", "role", "text", *[c for c in ("meta", "record_id") if c in df.columns]
                         ).iter_rows(named=True):
        pid = rec["pair_id"]
        if pid not in rows:
            rows[pid] = {"pair_id": pid, "prompt": None, "chosen": None, "rejected": None, "responses": [],
                         "meta": {}}
            order.append(pid)
        r = rows[pid]
        role = rec["role"]
        if role in ("prompt", "chosen", "rejected"):
            r[role] = rec["text"]
        elif role == "response":
            r["responses"].append(rec["text"])
        if rec.get("meta") and not r["meta"]:
            try:
                r["meta"] = json.loads(rec["meta"])
            except (TypeError, json.JSONDecodeError):
                r["meta"] = {}
    out_rows = []
    for pid in order:
        r = rows[pid]
        meta = r["meta"] if isinstance(r["meta"], dict) else {}
        tie = r["chosen"] is None and len(r["responses"]) >= 2
        if r["chosen"] is None and not tie:
            continue
        chosen, rejected = (r["responses"][0], r["responses"][1]) if tie else (r["chosen"], r["rejected"])
        out_rows.append({
            "pair_id": pid, "prompt": r["prompt"], "chosen": chosen, "rejected": rejected, "tie": tie,
            "chosen_position": _position(meta, tie),
            "annotator": _first(meta, ("annotator", "annotator_id", "worker_id", "labeler", "judge")),
            "timestamp": _first(meta, ("timestamp", "created_at", "annotated_at")),
            "seconds": _first(meta, ("time_per_example", "seconds", "duration_s", "annotation_seconds",
                                     "time_spent")),
        })
    if not out_rows:
        raise InputError("no preference pairs (chosen/rejected) found", field="chosen")
    return pl.DataFrame(out_rows, schema={"pair_id": pl.Utf8, "prompt": pl.Utf8, "chosen": pl.Utf8,
                                          "rejected": pl.Utf8, "tie": pl.Boolean, "chosen_position": pl.Int64,
                                          "annotator": pl.Utf8, "timestamp": pl.Utf8, "seconds": pl.Utf8})


def _first(meta: dict[str, Any], keys: Sequence[str]) -> str | None:
    for k in keys:
        if meta.get(k) not in (None, ""):
            return str(meta[k])
    return None


def _position(meta: dict[str, Any], tie: bool) -> int | None:
    """Shown position of the winner when the source records it (pairwise 'preference' 1/2)."""
    if tie:
        return None
    for key in ("preference", "chosen_position", "winner_position"):
        v = meta.get(key)
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if abs(f - 1.0) < 1e-9 or abs(f - 2.0) < 1e-9:
            return int(f)
    return None
