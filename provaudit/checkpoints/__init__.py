"""Checkpoint comparison: where did the proxy reward and the real outcome come apart?

``analyze_checkpoints`` reads a checkpoint series (metrics tables, per-sample results, a TRL
``trainer_state.json`` or OpenRLHF CSV) and ``compare`` one pair of per-sample files; both return a
:class:`CheckpointReport` that ``provaudit.report`` renders as HTML, Markdown or JSON.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.checkpoints import analysis as an
from provaudit.checkpoints import harness
from provaudit.checkpoints.harness import harness_health
from provaudit.checkpoints.io import load_rules, read_table
from provaudit.checkpoints.load import Loaded, load_inputs
from provaudit.checkpoints.model import DECOUPLING_KINDS, CheckpointReport, Flag
from provaudit.errors import InputError, UsageError

__all__ = ["DECOUPLING_KINDS", "CheckpointReport", "Flag", "analyze_checkpoints", "compare", "harness_health"]

_FLAG_ORDER = {"decoupling": 0, "decoupling_trend": 1, "decoupling_step": 1, "decoupling_window": 2,
               "overoptimization": 3,
               "length_confound": 4, "teacher_confound": 5, "tail_regression": 6, "see_saw": 7,
               "harness_change": 8, "homogenizing": 10}


def _thresholds(rules: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    th = dict(rules.get("thresholds", {}))
    for key, value in opts.items():
        if value is not None:
            th[key] = value
    return th


def _teacher_scores(loaded: Loaded, teacher: str | Path | None, backend: str) -> tuple[pl.DataFrame | None,
                                                                                         list[str]]:
    """Add a ``teacher`` score per sample using provaudit.style.teacher_similarity (when available)."""
    samples = loaded.samples
    if teacher is None:
        return samples, []
    if samples is None or "response" not in samples.columns:
        raise UsageError("--teacher needs per-sample files with a response column")
    frame = read_table(teacher)
    col = next((c for c in ("output", "response", "text", "completion", "answer") if c in frame.columns), None)
    if col is None:
        raise InputError("teacher file needs a text column (output, response, text, completion or answer)",
                         file=str(teacher), field="output")
    teacher_texts = [t for t in frame[col].cast(pl.Utf8).to_list() if t]
    try:
        from provaudit.style import teacher_similarity  # written by the style area
    except ImportError as exc:
        return samples, [f"teacher-likeness not computed: provaudit.style.teacher_similarity unavailable ({exc})"]
    texts = samples["response"].fill_null("").to_list()
    scores = np.clip(np.asarray(teacher_similarity(texts, teacher_texts, backend=backend), dtype=float), 1e-4, 1 - 1e-4)
    # the logit is the calibrated teacher-vs-human log-likelihood ratio: linear scale for the regression
    note = ("teacher-likeness: logit of provaudit.style.teacher_similarity (teacher vs human reference); a noisy "
            "measure, so the explained share is a lower bound (attenuation)")
    return samples.with_columns(pl.Series("teacher", np.log(scores / (1 - scores)))), [note]


def _run(loaded: Loaded, *, mode: str, inputs: list[str], rules: dict[str, Any], seed: int,
         opts: dict[str, Any], teacher: str | Path | None, teacher_backend: str,
         labels: Sequence[str | Path] | None = None, label_opts: dict[str, Any] | None = None) -> CheckpointReport:
    th = _thresholds(rules, opts)
    samples, notes = _teacher_scores(loaded, teacher, teacher_backend)
    ctx = an.Ctx(loaded.series, samples, th, seed)
    flags: list[Flag] = []
    over, oflags = an.overoptimization(ctx, loaded.series["kl"].to_numpy().astype(float)
                                       if "kl" in loaded.series.columns else None)
    best = int(over["best_index"])
    fit_note = ctx.noise_from_fit(over)
    flags += an.decoupling(ctx, best)
    flags += oflags
    length, lflags = an.confound(ctx, "length", "length", float(th.get("length_share", 0.5)))
    length.update(an.length_series(ctx))
    flags += lflags
    teacher_out: dict[str, Any] = {}
    if samples is not None and "teacher" in samples.columns:
        teacher_out, tflags = an.confound(ctx, "teacher", "teacher", float(th.get("teacher_share", 0.5)))
        flags += tflags
    pairs = [(i, i + 1) for i in range(ctx.n - 1)]
    tails, tflags = an.tails(ctx, pairs)
    flags += tflags
    seesaw, sflags = an.seesaw(ctx, loaded.extra_metrics, rules.get("seesaw_pairs", []),
                               rules["columns"].get("outcome", []))
    flags += sflags
    harness_out, hflags = harness.assess(loaded, ctx.names, th, seed)
    broken = {f.checkpoint for f in hflags if f.kind in ("harness_change", "harness_missing_samples")}
    for f in flags:  # a drop at a checkpoint whose harness broke may belong to the measurement
        if f.checkpoint in broken:
            f.details["harness_confounded"] = True
            f.evidence += "; note: the harness health of this checkpoint's samples changed (see harness_change)"
    flags += hflags
    labelers_out = None
    if labels:
        from provaudit.style.labelers import labeler_homogenization

        labelers_out = labeler_homogenization(labels, seed=seed, **(label_opts or {}))
        flags += [Flag(**{k: v for k, v in f.items() if k != "id"}) for f in labelers_out.get("flags", [])]
    pair = an.pair_stats(ctx) if mode == "pair" and samples is not None else None
    if pair is not None:
        thr = an.one_sided_threshold(ctx.alpha, 1, None)
        p, o = pair["proxy"], pair["outcome"]
        if p["z"] > thr and o["z"] < -thr and not any(f.decoupling for f in flags):
            flags.append(Flag("decoupling_step", ctx.names[1],
                              f"proxy rose {an._fmt(p['delta'])} (z={an._fmt(p['z'])}) while the outcome fell "
                              f"{an._fmt(-o['delta'])} (z={an._fmt(o['z'])}, Wilcoxon p={an._fmt(o.get('wilcoxon_p'))})",
                              o["interval"], metric="outcome", value=o["delta"], p_value=o.get("wilcoxon_p"),
                              details={"from": ctx.names[0], "threshold_z": thr}))
    flags.sort(key=lambda f: (_FLAG_ORDER.get(f.kind, 9 if f.kind.startswith("harness") else 99),
                              ctx.names.index(f.checkpoint)
                              if f.checkpoint in ctx.names else -1, f.metric or ""))
    points = None
    if samples is not None:
        cols = [c for c in ("checkpoint", "sample_id", "proxy", "outcome", "length", "slice") if c in samples.columns]
        points = samples.select(cols)
    series = loaded.series
    noise_note = []
    if samples is None:
        sig = ctx.sigma
        noise_note = [f"noise per checkpoint estimated from the series (MAD of leave-one-out local-quadratic "
                      f"residuals): proxy {an._fmt(sig['proxy'])}, outcome " + an._fmt(sig["outcome"])]
    return CheckpointReport(
        mode=mode, inputs=inputs, proxy=loaded.proxy, outcome=loaded.outcome, columns=loaded.columns,
        series=series, flags=flags, best_checkpoint=over["best_checkpoint"],
        correlation=an.correlation(ctx), overoptimization=over, length=length, teacher=teacher_out, pair=pair,
        tails=tails, slices=an.slice_table(ctx), seesaw=seesaw, win_rates=an.win_rates(ctx), points=points,
        notes=loaded.notes + notes + noise_note + fit_note,
        seed=seed, harness=harness_out, labelers=labelers_out,
        gate_on=tuple((rules.get("gate") or {}).get("fail_on", ["decoupling"])))


def analyze_checkpoints(inputs: Sequence[str | Path], *, proxy: str | None = None, outcome: str | None = None,
                        rules: Path | str | None = None, seed: int = 0, teacher: str | Path | None = None,
                        teacher_backend: str = "static", labels: Sequence[str | Path] | None = None,
                        label_opts: dict[str, Any] | None = None, **opts: Any) -> CheckpointReport:
    """Analyse a checkpoint series for proxy/outcome decoupling, confounds, tail regressions and see-saws.

    ``inputs``: metrics tables (CSV/JSONL/Parquet), per-sample files, ``trainer_state.json`` files.
    ``opts`` override thresholds of the rules file (``alpha``, ``bootstrap``, ``window``, ...).
    """
    rules_d = load_rules(rules)
    loaded = load_inputs([str(p) for p in inputs], rules_d, proxy=proxy, outcome=outcome)
    return _run(loaded, mode="series", inputs=[str(p) for p in inputs], rules=rules_d, seed=seed, opts=opts,
                teacher=teacher, teacher_backend=teacher_backend, labels=labels, label_opts=label_opts)


def compare(a: str | Path, b: str | Path, *, proxy: str | None = None, outcome: str | None = None,
            rules: Path | str | None = None, seed: int = 0, teacher: str | Path | None = None,
            teacher_backend: str = "static", labels: Sequence[str | Path] | None = None,
            label_opts: dict[str, Any] | None = None, **opts: Any) -> CheckpointReport:
    """Compare two checkpoints' per-sample files (A = before, B = after) with paired significance."""
    rules_d = load_rules(rules)
    names = [Path(str(a)).name.split(".")[0], Path(str(b)).name.split(".")[0]]
    if names[0] == names[1]:
        names = ["A", "B"]
    loaded = load_inputs([str(a), str(b)], rules_d, proxy=proxy, outcome=outcome, checkpoint_names=names)
    if loaded.samples is None or loaded.series.height != 2:
        raise InputError(f"compare needs two per-sample files of one checkpoint each (found "
                         f"{loaded.series.height} checkpoints)", file=str(a), field="checkpoint")
    # keep the A-then-B order whatever the names
    first = loaded.samples.filter(pl.col("_file") == str(a))["checkpoint"][0]
    if loaded.series["checkpoint"][0] != first:
        loaded.series = loaded.series.reverse()
    return _run(loaded, mode="pair", inputs=[str(a), str(b)], rules=rules_d, seed=seed, opts=opts,
                teacher=teacher, teacher_backend=teacher_backend, labels=labels, label_opts=label_opts)
