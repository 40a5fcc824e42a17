"""Turn input files into two standard frames: per-sample results and a per-checkpoint series.

Per-sample frame columns: checkpoint, sample_id, proxy, outcome, and when available length,
slice, response, prompt, preference, baseline_length, step. Series columns: checkpoint, step,
proxy, outcome (means), their standard errors when per-sample data exists, kl, length, n and any
extra metric columns of a metrics table.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.checkpoints.io import Source, is_ignored, match_column, read_table, to_float
from provaudit.errors import InputError

_HELPER_ROLES = ("checkpoint", "step", "sample_id", "kl", "length", "preference", "baseline_length",
                 "baseline_response", "prompt", "response", "slice")


def _numeric_like(frame: pl.DataFrame, col: str) -> bool:
    s = frame[col]
    if s.dtype.is_numeric():
        return True
    if s.dtype == pl.Utf8:
        nonnull = s.drop_nulls()
        if len(nonnull) == 0:
            return False
        cast = nonnull.cast(pl.Float64, strict=False)
        return cast.null_count() == 0
    return False


def _detect_helpers(frame: pl.DataFrame, rules: dict[str, Any]) -> dict[str, str | None]:
    cols = [c for c in frame.columns if not c.startswith("_")]
    pats = rules["columns"]
    roles: dict[str, str | None] = {}
    used: set[str] = set()
    for role in _HELPER_ROLES:
        col = match_column(cols, pats.get(role, []), exclude=used)
        numeric_role = role in ("kl", "length", "step", "preference", "baseline_length")
        if col is not None and numeric_role and not _numeric_like(frame, col):
            col = None
        text_role = role in ("response", "prompt", "slice", "baseline_response")
        if col is not None and text_role and frame[col].dtype != pl.Utf8:
            col = None
        roles[role] = col
        if col is not None:
            used.add(col)
    return roles


def _classify(frame: pl.DataFrame, path: str, roles: dict[str, str | None]) -> str:
    """'samples' when rows are items (a sample id, several rows per checkpoint), else 'metrics'."""
    if roles.get("sample_id") is None:
        if roles.get("checkpoint") is None and roles.get("step") is None:
            raise InputError("cannot tell the checkpoint of each row: no checkpoint or step column, "
                             "and no sample id column for a per-sample file", file=path, field="checkpoint")
        return "metrics"
    ck = roles.get("checkpoint") or roles.get("step")
    if ck is None:
        return "samples"
    return "samples" if frame[ck].n_unique() < frame.height else "metrics"


def _metric_candidates(frame: pl.DataFrame, roles: dict[str, str | None], rules: dict[str, Any]) -> list[str]:
    used = {c for c in roles.values() if c}
    return [c for c in frame.columns if not c.startswith("_") and c not in used and not is_ignored(c, rules)
            and _numeric_like(frame, c)]


def _pick(sources: list[Source], role: str, given: str | None, rules: dict[str, Any],
          taken: set[str]) -> str:
    if given is not None:
        for src in sources:
            if given in src.frame.columns:
                return given
        avail = sorted({c for s in sources for c in s.frame.columns if not c.startswith("_")})
        raise InputError(f"column {given!r} not found (columns: {', '.join(avail[:30])})",
                         file=sources[0].path, field=role)
    # prefer per-sample files, then metrics tables, in input order
    ordered = [s for s in sources if s.kind == "samples"] + [s for s in sources if s.kind == "metrics"]
    for src in ordered:
        used = {c for c in src.roles.values() if c} | taken
        cands = [c for c in src.frame.columns if not c.startswith("_") and c not in used and not is_ignored(c, rules)
                 and (src.frame[c].dtype.is_numeric() or src.frame[c].dtype == pl.Utf8)]
        if role == "proxy":
            cands = [c for c in cands if match_column([c], rules["columns"].get("not_proxy", [])) is None]
        col = match_column(cands, rules["columns"].get(role, []))
        if col is not None:
            frame = _failure_tokens_to_null(src.frame, col) if src.kind == "samples" else src.frame
            if not _numeric_like(frame, col):
                to_float(frame, col, src.path)  # raises naming the first non-numeric value's line
            return col
    avail = sorted({c for s in sources for c in _metric_candidates(s.frame, s.roles, rules)})
    raise InputError(f"cannot detect the {role} column from names (numeric columns: "
                     f"{', '.join(avail[:30]) or 'none'}); pass --{role} COLUMN", file=sources[0].path,
                     field=role)


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


@dataclass
class Loaded:
    """Inputs after reading, role detection and standardisation."""

    sources: list[Source]
    proxy: str
    outcome: str
    samples: pl.DataFrame | None
    series: pl.DataFrame
    extra_metrics: list[str] = field(default_factory=list)
    columns: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unscored: pl.DataFrame | None = None  # per-sample rows whose proxy or outcome is missing (harness faults)


def _standard_samples(src: Source, proxy: str, outcome: str, default_ckpt: str, force_name: bool = False
                      ) -> pl.DataFrame:
    f, r, path = src.frame, src.roles, src.path
    for role, col in (("proxy", proxy), ("outcome", outcome)):
        if col not in f.columns:
            raise InputError(f"per-sample file lacks the {role} column {col!r}", file=path, field=col)
    out: dict[str, pl.Series] = {}
    ck = None if force_name else (r.get("checkpoint") or r.get("step"))
    out["checkpoint"] = (f[ck].cast(pl.Utf8) if ck else pl.Series([default_ckpt] * f.height)).alias("checkpoint")
    sid = r["sample_id"]
    out["sample_id"] = f[sid].cast(pl.Utf8).alias("sample_id")
    for name, col in (("checkpoint", ck), ("sample_id", sid)):
        missing = out[name].is_null()
        if missing.any():
            i = int(missing.arg_true()[0])
            raise InputError("missing value", file=path, line=int(f["_line"][i]), field=col)
    for name, col in (("proxy", proxy), ("outcome", outcome)):
        # a score the harness failed to produce (null, "error", "n/a", ...) is kept as null: load_inputs sets
        # such rows aside (Loaded.unscored) and provaudit.checkpoints.harness reports them
        out[name] = to_float(_failure_tokens_to_null(f, col), col, path).alias(name)
    if r.get("step"):
        out["step"] = to_float(f, r["step"], path).alias("step")
    for role in ("length", "preference", "baseline_length"):
        if r.get(role):
            out[role] = to_float(f, r[role], path).alias(role)
    for role in ("slice", "response", "prompt", "baseline_response"):
        if r.get(role):
            out[role] = f[r[role]].cast(pl.Utf8).alias(role)
    if "length" not in out and "response" in out:
        out["length"] = out["response"].fill_null("").str.split(" ").list.len().cast(pl.Float64).alias("length")
    if "baseline_length" not in out and "baseline_response" in out:
        out["baseline_length"] = (out["baseline_response"].fill_null("").str.split(" ").list.len()
                                  .cast(pl.Float64).alias("baseline_length"))
    if "preference" in out:
        p = out["preference"]
        bad = (p.is_not_null() & ((p < 0) | (p > 1))).arg_true()
        if len(bad):
            i = int(bad[0])
            raise InputError("preference must lie in [0, 1] (1 = checkpoint wins)", file=path,
                             line=int(f["_line"][i]), field=r["preference"])
    out["_line"] = f["_line"]
    out["_file"] = pl.Series("_file", [path] * f.height)
    frame = pl.DataFrame(list(out.values()))
    dup = frame.select(["checkpoint", "sample_id"]).is_duplicated()
    if dup.any():
        i = int(dup.arg_true()[1] if dup.sum() > 1 else dup.arg_true()[0])
        raise InputError(f"duplicate sample id {frame['sample_id'][i]!r} for checkpoint "
                         f"{frame['checkpoint'][i]!r}", file=path, line=int(f["_line"][i]), field=sid)
    return frame


SCORE_FAILURE_TOKENS = ("", "n/a", "na", "nan", "none", "null", "error", "invalid", "failed", "fail", "timeout",
                        "-")


def _failure_tokens_to_null(f: pl.DataFrame, col: str) -> pl.DataFrame:
    """Harness failure markers in a score column ("error", "n/a", ...) read as missing scores."""
    if f[col].dtype != pl.Utf8:
        return f
    low = f[col].str.strip_chars().str.to_lowercase()
    return f.with_columns(pl.when(low.is_in(list(SCORE_FAILURE_TOKENS))).then(None).otherwise(pl.col(col))
                          .alias(col))


def _standard_metrics(src: Source, cols: list[str], se_cols: dict[str, str]) -> pl.DataFrame:
    f, r, path = src.frame, src.roles, src.path
    out: dict[str, pl.Series] = {}
    if r.get("checkpoint"):
        out["checkpoint"] = f[r["checkpoint"]].cast(pl.Utf8).alias("checkpoint")
    if r.get("step"):
        out["step"] = to_float(f, r["step"], path).alias("step")
        if "checkpoint" not in out:
            out["checkpoint"] = pl.Series("checkpoint", [f"step-{int(v)}" if v is not None and float(v).is_integer()
                                                         else f"step-{v}" for v in out["step"].to_list()])
    for role in ("kl", "length"):
        if r.get(role):
            out[role] = to_float(f, r[role], path).alias(role)
    for c in cols:
        if c in f.columns and c not in out:
            out[c] = to_float(f, c, path).alias(c)
    for c, name in se_cols.items():
        if c in f.columns:
            out[name] = to_float(f, c, path).alias(name)
    out["_line"] = f["_line"]
    frame = pl.DataFrame(list(out.values()))
    dup = frame["checkpoint"].is_duplicated()
    if dup.any():
        i = int(dup.arg_true()[1])
        raise InputError(f"checkpoint {frame['checkpoint'][i]!r} appears twice (a per-sample file needs a sample id "
                         "column such as sample_id or id)", file=path,
                         line=int(f["_line"][i]), field=r.get("checkpoint") or r.get("step"))
    return frame


def _interp_missing(series: pl.DataFrame, cols: list[str]) -> tuple[pl.DataFrame, list[str]]:
    """Fill gaps in proxy/kl/length at evaluation steps by linear interpolation over the step."""
    notes = []
    if "step" not in series.columns:
        return series, notes
    x = series["step"].to_numpy().astype(float)
    for c in cols:
        if c not in series.columns:
            continue
        y = series[c].to_numpy().astype(float)
        miss = ~np.isfinite(y)
        if miss.any() and (~miss).sum() >= 2:
            y2 = y.copy()
            y2[miss] = np.interp(x[miss], x[~miss], y[~miss])
            series = series.with_columns(pl.Series(c, y2))
            notes.append(f"{c}: {int(miss.sum())} value(s) interpolated over steps at evaluation checkpoints")
    return series, notes


def load_inputs(inputs: Sequence[str | Path], rules: dict[str, Any], *, proxy: str | None,
                outcome: str | None, checkpoint_names: Sequence[str] | None = None) -> Loaded:
    """Read, classify and standardise the inputs (see module docstring)."""
    if not inputs:
        raise InputError("no input files given")
    sources: list[Source] = []
    for p in inputs:
        frame = read_table(p)
        roles = _detect_helpers(frame, rules)
        sources.append(Source(str(p), _classify(frame, str(p), roles), frame, roles))
    proxy_col = _pick(sources, "proxy", proxy, rules, set())
    outcome_col = _pick(sources, "outcome", outcome, rules, {proxy_col})
    if proxy_col == outcome_col:
        raise InputError("proxy and outcome must be different columns", file=sources[0].path, field="outcome")
    notes: list[str] = []
    sample_frames = []
    metric_frames = []
    for k, src in enumerate(sources):
        if src.kind == "samples":
            name = checkpoint_names[k] if checkpoint_names else Path(src.path).name.split(".")[0]
            sample_frames.append(_standard_samples(src, proxy_col, outcome_col, name,
                                                   force_name=checkpoint_names is not None))
        else:
            cols = _metric_candidates(src.frame, src.roles, rules)
            se_cols = {}
            for role, col in (("proxy", proxy_col), ("outcome", outcome_col)):
                for pat in rules["columns"].get("stderr", []):
                    if pat.format(metric=col) in src.frame.columns:
                        se_cols[pat.format(metric=col)] = f"{role}_se"
                        break
            metric_frames.append(_standard_metrics(src, cols, se_cols))
    samples = pl.concat(sample_frames, how="diagonal_relaxed") if sample_frames else None
    unscored = None
    if samples is not None:
        missing = pl.col("proxy").is_null() | pl.col("outcome").is_null()
        if samples.filter(missing).height:
            unscored = samples.filter(missing)
            samples = samples.filter(~missing)
            notes.append(f"{unscored.height} per-sample row(s) without a proxy or outcome score left out of the "
                         "analysis (see the harness section)")
            if samples.height == 0:
                raise InputError("no per-sample row has both scores", file=unscored["_file"][0],
                                 line=int(unscored["_line"][0]), field=outcome_col)
        dup = samples.select(["checkpoint", "sample_id"]).is_duplicated()
        if dup.any():
            i = int(dup.arg_true()[-1])
            raise InputError(f"sample {samples['sample_id'][i]!r} of checkpoint {samples['checkpoint'][i]!r} "
                             "appears in two files", file=samples["_file"][i], line=int(samples["_line"][i]),
                             field="sample_id")
    metrics = None
    if metric_frames:
        metrics = metric_frames[0]
        for mf in metric_frames[1:]:
            metrics = metrics.join(mf.drop("_line"), on="checkpoint", how="full", coalesce=True, suffix="_2")

    extra: list[str] = []
    if samples is not None:
        agg = [pl.len().alias("n"), pl.col("proxy").mean().alias("proxy"), pl.col("outcome").mean().alias("outcome"),
               (pl.col("proxy").std() / pl.len().sqrt()).alias("proxy_se"),
               (pl.col("outcome").std() / pl.len().sqrt()).alias("outcome_se")]
        if "length" in samples.columns:
            agg.append(pl.col("length").mean().alias("length"))
        if "step" in samples.columns:
            agg.append(pl.col("step").first().alias("step"))
        first_seen = samples.with_row_index("_order").group_by("checkpoint").agg(pl.col("_order").min())
        series = samples.group_by("checkpoint").agg(agg).join(first_seen, on="checkpoint")
        if metrics is not None:
            mcols = [c for c in metrics.columns if c not in series.columns and c not in ("_line", proxy_col,
                                                                                        outcome_col)]
            series = series.join(metrics.select(["checkpoint", *mcols]), on="checkpoint", how="left")
            unmatched = set(series["checkpoint"]) - set(metrics["checkpoint"])
            if unmatched and len(unmatched) == series.height:
                notes.append("no checkpoint of the metrics table matches the per-sample checkpoints; "
                             "metrics table ignored")
            extra = [c for c in mcols if c not in ("step", "kl", "length")]
    else:
        assert metrics is not None
        if proxy_col not in metrics.columns or outcome_col not in metrics.columns:
            raise InputError("the metrics tables need both the proxy and the outcome column",
                             file=sources[0].path, field=outcome_col if proxy_col in metrics.columns else proxy_col)
        series = metrics.rename({proxy_col: "proxy", outcome_col: "outcome"}).with_row_index("_order")
        for role in ("proxy", "outcome"):
            if f"{role}_se" in series.columns:
                notes.append(f"{role}: per-checkpoint standard errors taken from the metrics table")
        series = series.with_columns(pl.col("_order").cast(pl.UInt32))
        extra = [c for c in series.columns if c not in ("checkpoint", "step", "kl", "length", "proxy", "outcome",
                                                        "_line", "_order", "proxy_se", "outcome_se")]
    # order: by step, else natural order of names that all carry numbers, else first appearance
    if "step" in series.columns and series["step"].null_count() == 0:
        series = series.sort(["step", "_order"])
    elif all(re.search(r"\d", c) for c in series["checkpoint"].to_list()):
        order = sorted(series["checkpoint"].to_list(), key=_natural_key)
        series = series.with_columns(pl.col("checkpoint").replace_strict(
            order, list(range(len(order))), return_dtype=pl.Int64).alias("_nat")).sort("_nat").drop("_nat")
    else:
        series = series.sort("_order")
    series = series.drop([c for c in ("_order", "_line") if c in series.columns])
    if samples is None:
        series, more = _interp_missing(series, ["proxy", "kl", "length"])
        notes += more
        keep = series["outcome"].is_not_null() & series["proxy"].is_not_null()
        if (~keep).any():
            notes.append(f"{int((~keep).sum())} logged step(s) without both proxy and outcome left out")
        series = series.filter(keep)
    if series.height < 2:
        raise InputError(f"need at least 2 checkpoints with both {proxy_col!r} and {outcome_col!r}, found "
                         f"{series.height}", file=sources[0].path, field=outcome_col)
    for role, col in (("proxy", proxy_col), ("outcome", outcome_col)):
        if match_column([col], rules["columns"].get("lower_is_better", [])) is not None:
            series = series.with_columns(-pl.col(role))
            if samples is not None:
                samples = samples.with_columns(-pl.col(role))
            notes.append(f"{role} column {col!r} is lower-is-better by name: analysed as -{col}")
    columns = {"proxy": proxy_col, "outcome": outcome_col}
    for role in ("kl", "length", "slice", "step", "sample_id", "response", "preference"):
        columns[role] = next((s.roles.get(role) for s in sources if s.roles.get(role)), None)
    return Loaded(sources, proxy_col, outcome_col, samples, series, extra, columns, notes, unscored)
