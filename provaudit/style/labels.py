"""Label-origin signature: do these preference labels look like a human's or an AI judge's?

Evidence, each reported with its value, interval and weight (strong = 2, moderate = 1):

* throughput: words of both responses per minute of labelling time (``time_per_example``-style
  fields or per-annotator timestamp gaps). Faster than any human reads -> AI (strong); reading
  speed -> human (strong).
* annotator ids that name a model (gpt, claude, judge, ...) -> AI (strong).
* teacher preference: share of pairs whose chosen response is more teacher-like (LLM judges prefer
  their own voice). Interval above the threshold -> AI (moderate).
* length preference: share of pairs whose chosen response is longer (LLM verbosity bias), same logic.
* position bias when the winner's slot is known (LLM judges favour a slot) -> AI (moderate).
* tie rate is reported, never weighed (whether ties were allowed is rarely known).

A bias ruled out (interval below the threshold) is *not* evidence of a human: an unbiased AI judge
shows none either (GPT-4-judged AlpacaEval pairs without their metadata rule out both). It is listed
under ``consistent_with_human`` and weighs nothing; only reading-speed throughput points to humans.

Verdict: ``AI-judge-like`` when AI evidence reaches ``min_evidence`` and exceeds human evidence by
as much; ``human-like`` symmetrically; otherwise ``unknown``. ``not_computed`` lists each signal
that could not be measured and why (no timing columns, no annotator ids, no teacher reference, ...).
"""
from __future__ import annotations

import itertools
import math
import re
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from provaudit import progress
from provaudit.style.features import words
from provaudit.style.inputs import TextSource, load_pairs, load_texts
from provaudit.style.rules import load_rules
from provaudit.style.teacher import TeacherModel, get_teacher_model


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _share(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"share": round(k / n, 4) if n else None, "ci_low": round(lo, 4) if n else None,
            "ci_high": round(hi, 4) if n else None, "n": n}


def _seconds(v: Any) -> float | None:
    """Epoch seconds from an ISO string or a number (None if unreadable)."""
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(v)).timestamp()
    except ValueError:
        return None


def _throughput(df: pl.DataFrame) -> dict[str, Any] | None:
    """Median seconds per label and implied words per minute, from durations or timestamp gaps."""
    n_words = np.array([len(words(c or "")) + len(words(r or ""))
                        for c, r in zip(df["chosen"].to_list(), df["rejected"].to_list())], dtype=float)
    secs = np.array([_seconds(v) if v is not None else np.nan for v in df["seconds"].to_list()], dtype=float)
    source = "duration field"
    if np.isfinite(secs).sum() < max(5, len(secs) // 2):
        ts = [_seconds(v) for v in df["timestamp"].to_list()]
        ann = df["annotator"].to_list()
        if sum(t is not None for t in ts) < 6:
            return None
        secs = np.full(len(ts), np.nan)
        for a in set(ann):
            idx = sorted((t, i) for i, (t, b) in enumerate(zip(ts, ann)) if b == a and t is not None)
            for (t0, _), (t1, i1) in itertools.pairwise(idx):
                gap = t1 - t0
                if 0 < gap <= 3600:  # longer gaps are breaks, not labelling time
                    secs[i1] = gap
        source = "timestamp gaps per annotator"
    ok = np.isfinite(secs) & (secs > 0)
    if ok.sum() < 5:
        return None
    wpm = 60.0 * n_words[ok] / secs[ok]
    return {"source": source, "n": int(ok.sum()), "median_seconds_per_label": round(float(np.median(secs[ok])), 3),
            "median_words_per_minute": round(float(np.median(wpm)), 1),
            "labels_per_hour": round(3600.0 / float(np.median(secs[ok])), 1)}


def _assess(df: pl.DataFrame, model: TeacherModel | None, rules: dict[str, Any],
            annotator: str | None = None) -> dict[str, Any]:
    r = rules["label_origin"]
    n = df.height
    decided = df.filter(~pl.col("tie"))
    measures: dict[str, Any] = {"n_pairs": n, "tie_rate": round(float(df["tie"].mean()), 4) if n else None}
    evidence: list[dict[str, Any]] = []

    consistent: list[dict[str, Any]] = []
    not_computed: list[dict[str, str]] = []

    def add(signal: str, points_to: str, weight: int, detail: str) -> None:
        if points_to == "human" and signal != "throughput":  # a bias ruled out: consistent, not evidence
            consistent.append({"signal": signal, "detail": detail})
            return
        evidence.append({"signal": signal, "points_to": points_to, "weight": weight, "detail": detail})

    def missing(signal: str, reason: str) -> None:
        not_computed.append({"signal": signal, "reason": reason})

    chosen, rejected = decided["chosen"].to_list(), decided["rejected"].to_list()
    lc = np.array([len(words(t or "")) for t in chosen])
    lr_ = np.array([len(words(t or "")) for t in rejected])
    diff = lc != lr_
    length = _share(int((lc > lr_)[diff].sum()), int(diff.sum()))
    measures["length_preference"] = length
    enough = decided.height >= r["min_pairs"]
    if not enough or not length["n"]:
        missing("length_preference", f"{decided.height} decided pairs (< {r['min_pairs']}) or no length differences"
                if not enough else "no pair with responses of different length")
    if enough and length["n"]:
        thr = r["length_preference"]
        if length["ci_low"] > thr:
            add("length_preference", "AI-judge", 1, f"chosen is longer in {length['share']:.0%} of pairs "
                f"(CI {length['ci_low']:.2f}-{length['ci_high']:.2f} > {thr}): LLM-judge verbosity bias")
        elif length["ci_high"] < thr:
            add("length_preference", "human", 1, f"chosen is longer in {length['share']:.0%} of pairs "
                f"(CI {length['ci_low']:.2f}-{length['ci_high']:.2f} < {thr}): no verbosity bias")

    if model is None:
        missing("teacher_preference", "no teacher reference given")
    elif not enough:
        missing("teacher_preference", f"{decided.height} decided pairs (< {r['min_pairs']})")
    if model is not None and decided.height:
        sc, sr = model.log_ratio(chosen), model.log_ratio(rejected)
        neq = sc != sr
        tp = _share(int((sc > sr)[neq].sum()), int(neq.sum()))
        tp["mean_score_chosen"] = round(float(np.mean(1 / (1 + np.exp(-sc)))), 4)
        tp["mean_score_rejected"] = round(float(np.mean(1 / (1 + np.exp(-sr)))), 4)
        measures["teacher_preference"] = tp
        thr = r["teacher_preference"]
        if enough and tp["n"]:
            if tp["ci_low"] > thr:
                add("teacher_preference", "AI-judge", 1, f"chosen is the more teacher-like response in "
                    f"{tp['share']:.0%} of pairs (CI {tp['ci_low']:.2f}-{tp['ci_high']:.2f} > {thr})")
            elif tp["ci_high"] < thr:
                add("teacher_preference", "human", 1, f"chosen is the more teacher-like response in "
                    f"{tp['share']:.0%} of pairs (CI {tp['ci_low']:.2f}-{tp['ci_high']:.2f} < {thr}): "
                    "no preference for the teacher's voice")

    pos = decided.filter(pl.col("chosen_position").is_not_null())
    if pos.height < r["min_pairs"]:
        missing("position_bias", "the winning response's slot is not recorded" if not pos.height
                else f"slot known for {pos.height} pairs (< {r['min_pairs']})")
    if pos.height:
        k1 = int((pos["chosen_position"] == 1).sum())
        ps = _share(k1, pos.height)
        measures["position_first"] = ps
        thr = r["position_bias"]
        if pos.height >= r["min_pairs"] and (ps["ci_low"] > 0.5 + thr or ps["ci_high"] < 0.5 - thr):
            add("position_bias", "AI-judge", 1, f"slot 1 wins {ps['share']:.0%} of pairs "
                f"(CI {ps['ci_low']:.2f}-{ps['ci_high']:.2f}, beyond 0.5 +/- {thr}); note: slots may also "
                "differ by source model")

    tput = _throughput(df)
    if tput is None:
        missing("throughput", "no labelling-time field (time_per_example, seconds) or annotator timestamps "
                              "for at least 5 labels")
    if tput is not None:
        measures["throughput"] = tput
        wpm = tput["median_words_per_minute"]
        if wpm > r["ai_words_per_minute"]:
            add("throughput", "AI-judge", 2, f"{tput['median_seconds_per_label']} s per label = {wpm:.0f} words "
                f"per minute of both responses (> {r['ai_words_per_minute']}: faster than humans read)")
        elif wpm < r["human_words_per_minute"]:
            add("throughput", "human", 2, f"{tput['median_seconds_per_label']} s per label = {wpm:.0f} words "
                f"per minute (< {r['human_words_per_minute']}: reading speed)")

    names = sorted({a for a in df["annotator"].to_list() if a})
    if not names:
        missing("annotator_id", "no annotator / judge id column")
    if names:
        pat = re.compile(r["model_name_pattern"])
        model_named = [a for a in names if pat.search(a)]
        measures["annotator_ids"] = names[:20]
        if model_named and len(model_named) == len(names):
            add("annotator_id", "AI-judge", 2, f"annotator id names a model: {', '.join(model_named[:5])}")

    ai = sum(e["weight"] for e in evidence if e["points_to"] == "AI-judge")
    hu = sum(e["weight"] for e in evidence if e["points_to"] == "human")
    need = r["min_evidence"]
    if ai >= need and ai - hu >= need:
        verdict = "AI-judge-like"
    elif hu >= need and hu - ai >= need:
        verdict = "human-like"
    else:
        verdict = "unknown"
    out = {"verdict": verdict, "ai_evidence": ai, "human_evidence": hu, "evidence": evidence, "measures": measures,
           "consistent_with_human": consistent, "not_computed": not_computed}
    if annotator is not None:
        out["annotator"] = annotator
    return out


def _homogenisation(df: pl.DataFrame, model: TeacherModel | None) -> dict[str, Any] | None:
    """Do annotators converge over time (spread of their teacher preference, early vs late half)?"""
    if model is None:
        return None
    ts = [_seconds(v) for v in df["timestamp"].to_list()]
    if sum(t is not None for t in ts) < 20 or df["annotator"].n_unique() < 2:
        return None
    d = df.with_columns(pl.Series("_t", ts, dtype=pl.Float64)).filter(pl.col("_t").is_not_null() & ~pl.col("tie"))
    sc, sr = model.log_ratio(d["chosen"].to_list()), model.log_ratio(d["rejected"].to_list())
    d = d.with_columns(pl.Series("_pref", (sc > sr).astype(float)))
    cut = float(d["_t"].median())
    halves = {}
    for name, part in (("early", d.filter(pl.col("_t") <= cut)), ("late", d.filter(pl.col("_t") > cut))):
        per = part.group_by("annotator").agg(pl.col("_pref").mean(), pl.len()).filter(pl.col("len") >= 5)
        vals = per["_pref"].to_numpy()
        halves[name] = {"annotators": len(vals), "mean_teacher_preference": round(float(vals.mean()), 4)
                        if len(vals) else None,
                        "spread": round(float(vals.std()), 4) if len(vals) >= 2 else None}
    e, late = halves["early"], halves["late"]
    homog = (e["spread"] is not None and late["spread"] is not None and late["spread"] < e["spread"]
             and (late["mean_teacher_preference"] or 0) > (e["mean_teacher_preference"] or 0))
    return {**halves, "homogenising_toward_teacher": bool(homog)}


def label_origin(pairs: str | Any, teacher: TextSource | None = None, human: TextSource | None = None, *,
                 rules: dict[str, Any] | str | None = None, backend: str = "static", seed: int = 0,
                 name: str | None = None) -> dict[str, Any]:
    """Label-origin verdict (human-like / AI-judge-like / unknown) with evidence, per batch and annotator.

    ``pairs``: a preference file or table (hh_rlhf, trl, AlpacaEval pairwise annotations, or a frame
    with chosen/rejected and optional annotator, timestamp, seconds, chosen_position columns).
    ``teacher``: reference texts of the suspected judge/teacher (enables teacher preference).
    """
    rules = rules if isinstance(rules, dict) else load_rules(rules)
    progress.step(f"reading preference pairs {name or ''}".rstrip())
    df = load_pairs(pairs)
    model = None
    if teacher is not None:
        progress.step(f"fitting the teacher model ({backend} embeddings)")
        t = load_texts(teacher, what="teacher reference")
        h = load_texts(human, what="human reference") if human is not None else None
        model = get_teacher_model(t, h, backend=backend, seed=seed)
    progress.step(f"assessing {df.height} labels")
    result = _assess(df, model, rules)
    result["batch"] = name or (str(pairs) if isinstance(pairs, str) else getattr(pairs, "name", None) or "pairs")
    result["teacher_reference"] = model is not None
    annotators = sorted({a for a in df["annotator"].to_list() if a})
    if len(annotators) >= 2:
        result["annotators"] = [_assess(df.filter(pl.col("annotator") == a), model, rules, annotator=a)
                                for a in annotators]
        homog = _homogenisation(df, model)
        if homog is not None:
            result["homogenisation"] = homog
    return result
