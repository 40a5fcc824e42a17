"""Harness health: is a change in the numbers the model's, or the evaluation harness's?

Per sample, from the per-sample results that ``compare`` and ``checkpoints`` read, a status: ``ok`` or
the first of these faults:

* ``empty``: empty or whitespace output;
* ``truncated``: cut at a length cap (among the outputs within 3% of the longest, by characters or words,
  those that end mid-sentence, when at least ``harness_min_count`` pile up there), or ``finish_reason``
  = length;
* ``echo``: the output repeats the prompt or carries prompt-template markers;
* ``duplicate``: the same output (12+ words, not a refusal) for different prompts;
* ``generation_error``: an ``error`` / ``exception`` column is set;
* ``score_missing`` / ``score_non_numeric``: no score, or a failure marker ("error", "n/a", ...);
* ``score_out_of_scale``: outside the declared ``harness_scales`` or the inferred scale of integer
  scores (0-1 when most checkpoints keep to it, else the tightest of 1-5, 0-5, 1-10, 0-10, 0-100);
* ``extraction_failed``: an extracted-answer column is empty or "[invalid]".

Per checkpoint: the share of each fault (flag ``harness_<fault>`` at ``harness_min_share``), and
changes of generation settings or prompt template between consecutive checkpoints (columns such as
``temperature``, ``max_new_tokens``, ``prompt_template``, keys of a ``metadata``/``generation_config``
JSON column, or the prompt text of shared samples) as ``harness_settings`` / ``harness_template``.

Per consecutive pair: how many samples changed health (McNemar exact test), the share of the score
change those samples carry, and the change on samples healthy in both, each with a paired bootstrap
interval (``harness_change`` flag when the health change is significant at ``alpha``), and samples of the
earlier checkpoint that vanished from the later one (``harness_missing_samples``).
"""
from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats as sps

from provaudit.checkpoints.model import Flag

FAULTS = ("empty", "truncated", "echo", "duplicate", "generation_error", "score_missing", "score_non_numeric",
          "score_out_of_scale", "extraction_failed")
_TERMINAL = re.compile(r"""[.!?。！？"'”’)\]}>*`:;~]\s*$""")
_TEMPLATE = ("### instruction:", "### response:", "### input:", "<|im_start|>", "<|im_end|>", "[inst]", "[/inst]",
             "<|assistant|>", "<|user|>", "<|system|>", "<|endoftext|>", "{instruction}", "{prompt}", "{input}")
_REFUSAL = re.compile(r"(i'?m sorry|i am sorry|sorry,|i cannot|i can'?t|i'?m unable|i am unable|as an ai)")
_TEMPLATE_RX = re.compile("|".join(re.escape(m) for m in _TEMPLATE))
_EXTRACTED = ("extracted", "extracted_answer", "extracted_.*", ".*_extracted", "parsed_answer", "parsed",
              "pred_answer", "predicted_answer", "final_answer", "answer_extracted")
_EXTRACT_FAIL = ("", "[invalid]", "invalid", "none", "null", "n/a", "no answer", "error", "[no_answer]", "nan")
_SETTINGS = ("prompt_template", "template", "chat_template", "system_prompt", "system", "temperature", "top_p",
             "top_k", "max_tokens", "max_new_tokens", "max_length", "stop", "stop_sequences?", "num_beams",
             "do_sample", "repetition_penalty", "decoding", "sampling", "generation_config", "metadata", "meta",
             "harness_version", "eval_harness", "judge", "judge_model", "judge_prompt")
_META_COLS = ("generation_config", "metadata", "meta")
_FINISH = ("finish_reason", "stop_reason", "finish", "stopped_by")
_LENGTH_STOP = ("length", "max_tokens", "max_length", "max_new_tokens", "token_limit")
_ERROR = ("error", "errors", "exception", "generation_error", "api_error")
_SCALES = ((0.0, 1.0), (1.0, 5.0), (0.0, 5.0), (1.0, 10.0), (0.0, 10.0), (0.0, 100.0))


def _norm(t: str | None) -> str:
    return " ".join((t or "").lower().split())


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    """Wilson score interval of the share k/n (the interval behind a per-checkpoint fault flag)."""
    if n == 0:
        return [0.0, 1.0]
    p, den = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / den, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, mid - half), min(1.0, mid + half)]


def _iv(iv: list[float] | None) -> str:
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]" if iv else "[n/a]"


def _col(frame: pl.DataFrame, patterns: tuple[str, ...], skip: set[str]) -> list[str]:
    out = []
    for c in frame.columns:
        if c.startswith("_") or c in skip:
            continue
        if any(re.fullmatch(p, c, re.IGNORECASE) for p in patterns):
            out.append(c)
    return out


def _raw_rows(loaded: Any) -> pl.DataFrame:
    """All per-sample rows (scored and unscored) with the raw source columns joined on (file, line)."""
    parts = [f for f in (loaded.samples, loaded.unscored) if f is not None]
    rows = pl.concat(parts, how="diagonal_relaxed")
    raws = []
    skip = set(rows.columns)
    for src in loaded.sources:
        if src.kind != "samples":
            continue
        f = src.frame
        keep = [c for c in f.columns if not c.startswith("_") and c not in skip]
        raw = f.select(["_line", *keep]).with_columns([pl.col(c).cast(pl.Utf8) for c in keep])
        raw = raw.with_columns(pl.lit(src.path).alias("_file"))
        for role, col in (("proxy", loaded.proxy), ("outcome", loaded.outcome)):
            if col in f.columns:
                raw = raw.with_columns(f[col].cast(pl.Utf8).alias(f"_raw_{role}"))
        raws.append(raw)
    raw_all = pl.concat(raws, how="diagonal_relaxed")
    return rows.join(raw_all, on=["_file", "_line"], how="left")


def _scale(values: np.ndarray, ckpts: list[str], given: list[float] | None) -> tuple[float, float] | None:
    """The score scale: declared, else inferred for integer-valued scores: 0-1 when at least half of the
    checkpoints keep >= 97% of their scores in [0, 1] (a switch to percentages shows as out of scale),
    otherwise the tightest of 1-5, 0-5, 1-10, 0-10, 0-100 holding >= 97% of all scores (a weak checkpoint
    that never leaves 1-5 on a 1-10 scale is not a fault)."""
    if given is not None:
        return float(given[0]), float(given[1])
    ok = np.isfinite(values)
    v = values[ok]
    if len(v) < 20 or np.mean(v == np.round(v)) < 0.95:
        return None
    ck = np.asarray(ckpts, dtype=object)[ok]
    names = list(dict.fromkeys(ck.tolist()))
    unit = [np.mean((v[ck == c] >= 0) & (v[ck == c] <= 1)) >= 0.97 for c in names]
    if sum(unit) >= len(names) / 2:
        return 0.0, 1.0
    for lo, hi in _SCALES[1:]:
        if np.mean((v >= lo) & (v <= hi)) >= 0.97:
            return lo, hi
    return None


def _truncated(chars: np.ndarray, words: np.ndarray, open_end: np.ndarray, min_count: int
               ) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Outputs piled up at the longest length (chars or words) that end mid-sentence (``open_end``)."""
    best = (np.zeros(len(chars), dtype=bool), None)
    for unit, lens in (("chars", chars), ("words", words)):
        if len(lens) == 0 or lens.max() <= 0:
            continue
        top = float(lens.max())
        cut = (lens >= top - max(1.0, 0.03 * top)) & open_end
        if cut.sum() >= min_count and cut.sum() > best[0].sum():
            best = (cut, {"unit": unit, "cap": int(top), "n_at_cap": int(cut.sum())})
    return best


def sample_status(loaded: Any, thresholds: dict[str, Any] | None = None) -> pl.DataFrame:
    """One row per (checkpoint, sample): ``status`` (``ok`` or the first fault) and ``faults`` (all)."""
    return _status(loaded, thresholds)[0]


def _status(loaded: Any, thresholds: dict[str, Any] | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``sample_status`` and what was inferred on the way (length caps, score scales, extraction column)."""
    th = thresholds or {}
    min_count = int(th.get("harness_min_count", 3))
    rows = _raw_rows(loaded)
    n = rows.height
    faults: list[list[str]] = [[] for _ in range(n)]
    resp = rows["response"].to_list() if "response" in rows.columns else [None] * n
    prompt = rows["prompt"].to_list() if "prompt" in rows.columns else [None] * n
    ckpts = np.asarray(rows["checkpoint"].to_list(), dtype=object)
    sids = rows["sample_id"].to_list()
    extra: dict[str, Any] = {"truncation": {}, "scales": {}, "extracted_column": None}
    if "response" in rows.columns:
        stripped = [(t or "").strip() for t in resp]
        norm = [" ".join(t.lower().split()) for t in stripped]
        qnorm = [_norm(q) for q in prompt]
        chars = np.array([len(t) for t in stripped], dtype=float)
        words = np.array([len(t.split()) for t in norm], dtype=float)
        open_end = np.array([bool(t) and not _TERMINAL.search(t) for t in stripped])
        for i, t in enumerate(stripped):
            if not t:
                faults[i].append("empty")
        for ck in dict.fromkeys(ckpts.tolist()):
            idx = np.nonzero(ckpts == ck)[0]
            cut, info = _truncated(chars[idx], words[idx], open_end[idx], min_count)
            if info is not None:
                extra["truncation"][ck] = info
                for k in np.nonzero(cut)[0]:
                    faults[idx[k]].append("truncated")
            groups: dict[str, set[str]] = {}
            for i in idx:
                # canned short answers and refusals legitimately repeat across prompts
                if words[i] >= 12 and not _REFUSAL.match(norm[i]):
                    groups.setdefault(norm[i], set()).add(qnorm[i] or str(sids[i]))
            dup = {r for r, ps in groups.items() if len(ps) >= 2}
            for i in idx:
                if norm[i] in dup:
                    faults[i].append("duplicate")
        for i, (r, q) in enumerate(zip(norm, qnorm)):
            if not r:
                continue
            echo = r == q or (len(q) >= 20 and (r.startswith(q[:200]) or (q.startswith(r) and len(r) >= 0.8 * len(q))))
            if echo or _TEMPLATE_RX.search(r):
                faults[i].append("echo")
    scales = th.get("harness_scales") or {}
    for role, col in (("proxy", loaded.proxy), ("outcome", loaded.outcome)):
        vals = rows[role].to_numpy().astype(float)
        raw = rows[f"_raw_{role}"].to_list() if f"_raw_{role}" in rows.columns else [None] * n
        sc = _scale(vals, ckpts, scales.get(col))
        if sc is not None:
            extra["scales"][col] = list(sc)
        for i, v in enumerate(vals):
            if not math.isfinite(v):
                faults[i].append("score_non_numeric" if raw[i] is not None and str(raw[i]).strip() != ""
                                 else "score_missing")
            elif sc is not None and not sc[0] <= v <= sc[1]:
                faults[i].append("score_out_of_scale")
    fin = _col(rows, _FINISH, set())
    if fin:  # the generator said it stopped at the token limit
        for i, v in enumerate(rows[fin[0]].to_list()):
            if v is not None and _norm(v) in _LENGTH_STOP and "truncated" not in faults[i]:
                faults[i].append("truncated")
    for col in _col(rows, _ERROR, {loaded.proxy, loaded.outcome}):
        for i, v in enumerate(rows[col].to_list()):
            if v is not None and _norm(v) not in ("", "none", "null", "false", "0", "0.0", "[]", "{}", "nan"):
                faults[i].append("generation_error")
    ext = _col(rows, _EXTRACTED, {"response", "prompt"})
    if ext:
        extra["extracted_column"] = ext[0]
        for i, v in enumerate(rows[ext[0]].to_list()):
            if v is None or _norm(v) in _EXTRACT_FAIL:
                faults[i].append("extraction_failed")
    uniq = [list(dict.fromkeys(f)) for f in faults]
    out = rows.select([c for c in ("checkpoint", "sample_id", "proxy", "outcome", "prompt", "response")
                       if c in rows.columns]).with_columns(
        pl.Series("faults", uniq, dtype=pl.List(pl.Utf8)),
        pl.Series("status", [f[0] if f else "ok" for f in uniq], dtype=pl.Utf8))
    out = out.with_columns(pl.col("status").eq("ok").alias("healthy"))
    return out.sort(["checkpoint", "sample_id"]), extra


def _examples(frame: pl.DataFrame, k: int = 3) -> list[dict[str, Any]]:
    out = []
    for r in frame.head(k).iter_rows(named=True):
        ex = {"sample_id": r["sample_id"], "status": r["status"]}
        if r.get("response") is not None:
            ex["response"] = r["response"][:160] + ("…" if len(r["response"]) > 160 else "")
        if r.get("prompt") is not None:
            ex["prompt"] = r["prompt"][:100] + ("…" if len(r["prompt"]) > 100 else "")
        out.append(ex)
    return out


def _settings(loaded: Any, names: list[str]) -> tuple[list[dict[str, Any]], list[Flag]]:
    """Generation settings and prompt templates per checkpoint; changes between neighbours."""
    rows = _raw_rows(loaded)
    cols = _col(rows, _SETTINGS, {"checkpoint", "sample_id", "prompt", "response", "proxy", "outcome"})
    per: dict[str, dict[str, list[str]]] = {}
    for ck in names:
        sub = rows.filter(pl.col("checkpoint") == ck)
        vals: dict[str, list[str]] = {}
        for c in cols:
            seen = [v for v in sub[c].to_list() if v is not None]
            if c in _META_COLS:
                for v in seen:
                    try:
                        obj = json.loads(v)
                    except (TypeError, json.JSONDecodeError):
                        obj = None
                    if isinstance(obj, dict):  # only setting-like keys: metadata also holds per-sample fields
                        for key, x in obj.items():
                            if key not in _META_COLS and any(re.fullmatch(pat, key, re.IGNORECASE)
                                                             for pat in _SETTINGS):
                                vals.setdefault(f"{c}.{key}", []).append(json.dumps(x, sort_keys=True))
                    else:
                        vals.setdefault(c, []).append(v)
            else:
                vals[c] = seen
        per[ck] = {k: sorted(set(v))[:5] for k, v in vals.items()}
    changes: list[dict[str, Any]] = []
    flags: list[Flag] = []
    for a, b in itertools.pairwise(names):
        diff = {k: {"from": per[a].get(k), "to": per[b].get(k)} for k in sorted(set(per[a]) | set(per[b]))
                if per[a].get(k) != per[b].get(k)}
        tmpl = None
        if "prompt" in rows.columns:
            pa = rows.filter(pl.col("checkpoint") == a).select("sample_id", pl.col("prompt").alias("pa"))
            pb = rows.filter(pl.col("checkpoint") == b).select("sample_id", pl.col("prompt").alias("pb"))
            j = pa.join(pb, on="sample_id").filter(pl.col("pa").is_not_null() & pl.col("pb").is_not_null())
            if j.height >= 3:
                changed = j.filter(pl.col("pa") != pl.col("pb")).sort("sample_id")
                if changed.height >= 0.5 * j.height:
                    ex = changed.row(0, named=True)
                    tmpl = {"share": changed.height / j.height, "n": j.height,
                            "sample_ids": changed["sample_id"].head(20).to_list(),
                            "example": {"sample_id": ex["sample_id"], "from": ex["pa"][:200], "to": ex["pb"][:200]}}
        changes.append({"from": a, "to": b, "settings": diff, "template": tmpl})
        n_b = rows.filter(pl.col("checkpoint") == b).height
        if diff:
            flags.append(Flag("harness_settings", b, f"generation settings changed from {a} to {b}: " + "; ".join(
                f"{k} {v['from']} -> {v['to']}" for k, v in list(diff.items())[:4]), _wilson(n_b, n_b),
                metric="settings", value=1.0, details={"from": a, "changes": diff}))
        if tmpl is not None:
            flags.append(Flag("harness_template", b, f"the prompt text differs for {tmpl['share']:.0%} of the "
                              f"{tmpl['n']} shared samples from {a} to {b} (prompt template changed); e.g. "
                              f"{tmpl['example']['sample_id']}: {tmpl['example']['from'][:60]!r} -> "
                              f"{tmpl['example']['to'][:60]!r}", _wilson(round(tmpl["share"] * tmpl["n"]), tmpl["n"]),
                              metric="prompt", value=tmpl["share"],
                              details={"from": a, **tmpl}))
    return [{"checkpoint": ck, "settings": per[ck]} for ck in names], flags


def _mcnemar_p(b: int, c: int) -> float:
    return float(sps.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0


def health_change(status: pl.DataFrame, a: str, b: str, what: str, rng: np.random.Generator,
                  n_boot: int = 1000, level: float = 0.95, cache: dict[int, np.ndarray] | None = None
                  ) -> dict[str, Any]:
    """Paired decomposition of the change of ``what`` from a to b by harness health.

    ``carried`` = sum of the changes on samples whose health changed / n (their part of the mean change);
    ``share`` = carried / total; ``healthy`` = mean change on samples healthy in both, with a paired
    bootstrap interval and a two-sided z test (normal approximation). ``cache`` shares the bootstrap
    weights between metrics of the same pair (same paired samples, same resamples).
    """
    sa = status.filter(pl.col("checkpoint") == a).select("sample_id", pl.col(what).alias("ya"),
                                                         pl.col("healthy").alias("ha"), pl.col("status").alias("sa"))
    sb = status.filter(pl.col("checkpoint") == b).select("sample_id", pl.col(what).alias("yb"),
                                                         pl.col("healthy").alias("hb"), pl.col("status").alias("sb"))
    j = sa.join(sb, on="sample_id").sort("sample_id")
    ha, hb = j["ha"].to_numpy(), j["hb"].to_numpy()
    broke, fixed = ha & ~hb, ~ha & hb
    out: dict[str, Any] = {"from": a, "to": b, "metric": what, "n_paired": j.height,
                           "became_unhealthy": int(broke.sum()), "became_healthy": int(fixed.sum()),
                           "mcnemar_p": _mcnemar_p(int(broke.sum()), int(fixed.sum())),
                           "new_faults": dict(sorted(j.filter(pl.Series(broke))["sb"].value_counts()
                                                     .iter_rows()) if broke.any() else {}),
                           "fixed_faults": dict(sorted(j.filter(pl.Series(fixed))["sa"].value_counts()
                                                       .iter_rows()) if fixed.any() else {})}
    ya, yb = j["ya"].to_numpy().astype(float), j["yb"].to_numpy().astype(float)
    ok = np.isfinite(ya) & np.isfinite(yb)
    d, ch, both = (yb - ya)[ok], (ha != hb)[ok], (ha & hb)[ok]
    n = len(d)
    if n < 2:
        return out
    total = float(d.mean())
    carried = float(d[ch].sum() / n)
    n_boot = max(200, min(n_boot, 5_000_000 // n))  # bound memory on large files
    w = None if cache is None else cache.get(n)
    if w is None:
        idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)  # counts per sample
        if cache is not None:
            cache[n] = w
    b_total = w @ d / n
    b_carried = w @ (d * ch) / n
    tail = (1 - level) / 2
    q = lambda x: [float(v) for v in np.quantile(x, [tail, 1 - tail])]
    out.update({"total": total, "total_interval": q(b_total), "carried": carried, "carried_interval": q(b_carried)})
    with np.errstate(invalid="ignore", divide="ignore"):
        b_share = np.where(np.abs(b_total) > 1e-12, b_carried / b_total, np.nan)
    out["share"] = carried / total if abs(total) > 1e-12 else None
    out["share_interval"] = q(b_share[np.isfinite(b_share)]) if np.isfinite(b_share).sum() > 10 else None
    dh = d[both]
    if len(dh) >= 2:
        se = float(np.std(dh, ddof=1) / math.sqrt(len(dh)))
        cnt = np.maximum(w @ both.astype(float), 1)
        b_h = w @ (d * both) / cnt
        mh = float(dh.mean())
        z = mh / se if se > 0 else 0.0
        p = float(2 * sps.norm.sf(abs(z))) if se > 0 else 1.0
        out["healthy"] = {"n": len(dh), "delta": mh, "interval": q(b_h), "z": z, "p_value": p,
                          "significant": bool(p < 0.05)}
    return out


def assess(loaded: Any, names: list[str], thresholds: dict[str, Any], seed: int) -> tuple[dict[str, Any],
                                                                                            list[Flag]]:
    """Harness health of a run: per-checkpoint fault shares, settings changes, health-change decomposition."""
    if loaded.samples is None:
        return {}, []
    th = thresholds
    min_share = float(th.get("harness_min_share", 0.05))
    min_count = int(th.get("harness_min_count", 3))
    alpha = float(th.get("alpha", 0.01))
    n_boot = int(th.get("bootstrap", 1000))
    st, extra = _status(loaded, th)
    flags: list[Flag] = []
    per_ckpt = []
    for ck in names:
        sub = st.filter(pl.col("checkpoint") == ck)
        n = sub.height
        row: dict[str, Any] = {"checkpoint": ck, "n": n, "healthy_share": float(sub["healthy"].mean()) if n else None}
        for fault in FAULTS:
            hit = sub.filter(pl.col("faults").list.contains(fault)).sort("sample_id")
            row[fault] = hit.height / n if n else 0.0
            if hit.height >= max(min_count, min_share * n):
                info = extra.get("truncation", {}).get(ck) if fault == "truncated" else None
                where = f" (cap {info['cap']} {info['unit']})" if info else ""
                flags.append(Flag(
                    f"harness_{fault}", ck, f"{hit.height} of {n} outputs ({hit.height / n:.0%}) are "
                    f"{fault.replace('_', ' ')}{where}; e.g. {hit['sample_id'][0]}", _wilson(hit.height, n),
                    metric=fault,
                    value=hit.height / n, details={"n_affected": hit.height, "n": n,
                                                   "sample_ids": hit["sample_id"].head(50).to_list(),
                                                   "examples": _examples(hit), **({"cap": info} if info else {})}))
        per_ckpt.append(row)
    settings, sflags = _settings(loaded, names)
    flags += sflags
    pairs = []
    for k, (a, b) in enumerate(itertools.pairwise(names)):
        shared: dict[int, np.ndarray] = {}
        entry = {what: health_change(st, a, b, what, np.random.default_rng([seed, 7919, k, i]), n_boot, cache=shared)
                 for i, what in enumerate(("outcome", "proxy"))}
        o = entry["outcome"]
        ids_a = set(st.filter(pl.col("checkpoint") == a)["sample_id"])
        ids_b = set(st.filter(pl.col("checkpoint") == b)["sample_id"])
        lost = sorted(ids_a - ids_b)
        entry["missing_in_to"] = len(lost)
        pairs.append({"from": a, "to": b, **entry})
        # the same eval set, but samples vanished: a harness that drops failures instead of scoring them
        if len(ids_a & ids_b) >= 0.5 * len(ids_a) and len(lost) >= max(min_count, min_share * len(ids_a)):
            flags.append(Flag(
                "harness_missing_samples", b, f"{len(lost)} of the {len(ids_a)} samples of {a} have no result in {b} "
                f"(the two share {len(ids_a & ids_b)}); e.g. {', '.join(lost[:3])}",
                _wilson(len(lost), len(ids_a)), metric="samples", value=len(lost) / len(ids_a),
                details={"from": a, "n_affected": len(lost), "n": len(ids_a), "sample_ids": lost[:50]}))
        moved = abs(o["became_unhealthy"] - o["became_healthy"])
        if o["mcnemar_p"] < alpha and moved >= max(min_count, 0.02 * max(o["n_paired"], 1)):
            h = o.get("healthy") or {}
            changed = st.filter(pl.col("checkpoint") == b).join(
                st.filter(pl.col("checkpoint") == a).select("sample_id", pl.col("healthy").alias("ha")),
                on="sample_id").filter(pl.col("healthy") != pl.col("ha")).sort("sample_id")
            verdict = ("not significant" if h and not h.get("significant") else "significant" if h else "n/a")
            flags.append(Flag(
                "harness_change", b,
                f"from {a} to {b}, {o['became_unhealthy']} samples became unhealthy "
                f"({', '.join(f'{k2} {v}' for k2, v in o['new_faults'].items()) or 'none'}) and "
                f"{o['became_healthy']} recovered (McNemar p={_fmt(o['mcnemar_p'])}); they carry "
                f"{_fmt(o.get('carried'))} {_iv(o.get('carried_interval'))} of the outcome change "
                f"{_fmt(o.get('total'))} {_iv(o.get('total_interval'))} (share {_fmt(o.get('share'))}); "
                f"on the {h.get('n', 0)} samples "
                f"healthy in both the change is {_fmt(h.get('delta'))} {_iv(h.get('interval'))}"
                f", p={_fmt(h.get('p_value'))} ({verdict})",
                o.get("carried_interval"), metric="outcome", value=o.get("carried"), p_value=o["mcnemar_p"],
                details={**o, "sample_ids": changed["sample_id"].head(50).to_list(),
                         "examples": _examples(changed)}))
    out = {"per_checkpoint": per_ckpt, "settings": settings, "pairs": pairs, "truncation": extra.get("truncation"),
           "scales": extra.get("scales"), "extracted_column": extra.get("extracted_column"),
           "thresholds": {"min_share": min_share, "min_count": min_count, "alpha": alpha},
           "flagged": bool(flags)}
    return out, flags


def harness_health(inputs: Any, *, proxy: str | None = None, outcome: str | None = None,
                   rules: Any = None, seed: int = 0, pair: bool | None = None, **opts: Any) -> dict[str, Any]:
    """Harness health of per-sample result files on their own (the report's ``harness`` section + flags).

    ``pair`` (default: when two files are given) reads each file as one checkpoint, as ``compare`` does;
    otherwise the files form a series, as in ``analyze_checkpoints``.
    """
    if pair is None:
        pair = not isinstance(inputs, (str, Path)) and len(list(inputs)) == 2
    from provaudit.checkpoints import _thresholds
    from provaudit.checkpoints.io import load_rules
    from provaudit.checkpoints.load import load_inputs

    rules_d = load_rules(rules)
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    names = None
    if pair:  # like compare: one checkpoint per file, named after the file (A, B when the stems are equal)
        names = [Path(p).name.split(".")[0] for p in paths]
        names = names if len(set(names)) == len(names) else [chr(65 + i) for i in range(len(paths))]
    loaded = load_inputs(paths, rules_d, proxy=proxy, outcome=outcome, checkpoint_names=names)
    order = names or loaded.series["checkpoint"].to_list()
    out, flags = assess(loaded, order, _thresholds(rules_d, opts), seed)
    out["flags"] = [f.to_dict() for f in flags]
    return out
