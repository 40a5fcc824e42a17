"""Per-record origin tags and the batch summary (model fraction, corpus-level mixture estimate)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.errors import InputError, UsageError
from provaudit.origin.detector import Detector, _sigmoid, load_detector
from provaudit.origin.features import feature_matrix, word_counts
from provaudit.origin.rules import RuleSet, load_rules

DEFAULT_REFERENCE = Path(__file__).resolve().parent / "data" / "mixture_reference.json"
STRONG_RULE_WEIGHT = 3.0  # summed rule weight that decides a short text without the detector
# fast: stylometric detector; full: stylometric + language-model detector on every record of min_words+;
# sampled: fast tags per record, and the LM on a bounded sample for the corpus-level estimate (scan summary)
MODES = ("fast", "full", "sampled")
_TOP_FEATURES = 3

_RULES_CACHE: dict[str, RuleSet] = {}


def _default_rules() -> RuleSet:
    if "default" not in _RULES_CACHE:
        _RULES_CACHE["default"] = load_rules()
    return _RULES_CACHE["default"]


def tag_origin(records: pl.DataFrame, *, rules: RuleSet | None = None, detector: Detector | None = None,
               mode: str = "fast", device: str = "cpu", progress: Any = None) -> pl.DataFrame:
    """Add ``origin`` (human/model/unknown), ``p_model``, ``rules_fired`` and ``evidence`` columns.

    ``p_model`` is the detector's calibrated probability with the fired rules' weights added in
    log-odds. A record is ``model`` when ``p_model >= threshold_model`` (set at the detector's nominal
    false-positive rate on human text), ``human`` when ``p_model <= threshold_human``, else ``unknown``;
    texts shorter than the detector's ``min_words`` are ``unknown`` unless rules alone are decisive.
    Pure function of the batch. ``mode="full"`` scores records of ``min_words``+ words with the
    stylometric + language-model detector (``provaudit.origin.lm``, on ``device``; ``progress(k)`` after
    each k texts scored); shorter records, and every record when the LM is not installed (a one-line
    notice says how to install it), get the fast stylometric detector. ``"sampled"`` tags like ``"fast"``.
    """
    if mode not in MODES:
        raise UsageError(f"origin mode must be one of {list(MODES)}, not {mode!r}")
    if "text" not in records.columns:
        raise InputError("record batch has no 'text' column", field="text")
    if mode == "full" and not (detector is not None and not detector.uses_lm):
        from provaudit.origin.lm import lm_available, notice_once

        if lm_available():
            full = detector or load_detector(mode="full")
            return _tag_full(records, rules, full, load_detector(), device, progress)
        notice_once()
        detector = None
    elif detector is not None and detector.uses_lm:
        raise UsageError("this detector needs the language-model features: use origin mode 'full'")
    det = detector or load_detector()
    x, n_words = _features_per_distinct_text(records["text"]) if records.height else (None, None)
    return _tag(records, rules, det, x, n_words, None)


def _tag_full(records: pl.DataFrame, rules: RuleSet | None, full: Detector, fast: Detector, device: str,
              progress: Any) -> pl.DataFrame:
    """Full mode: LM features for the distinct texts of ``full.min_words``+ words, the full detector on
    those records and the fast one on the rest (same columns; LM feature columns zero there)."""
    if records.height == 0:
        return _tag(records, rules, fast, None, None, None)
    uniq, pos = _distinct(records["text"])
    xu, nwu = feature_matrix(uniq)
    elig = np.flatnonzero(nwu >= full.min_words)
    from provaudit.origin.lm import DETECTOR_LM_FEATURES, detector_columns, lm_features

    lm = np.zeros((len(uniq), len(DETECTOR_LM_FEATURES)))
    if elig.size:
        lm[elig] = detector_columns(lm_features([uniq[int(i)] for i in elig], device=device, progress=progress))
    use_full = np.zeros(len(uniq), dtype=bool)
    use_full[elig] = True
    if pos is None:
        pos = np.arange(len(uniq))
    return _tag(records, rules, full, np.hstack([xu, lm])[pos], nwu[pos], (fast, use_full[pos]))


def _tag(records: pl.DataFrame, rules: RuleSet | None, det: Detector, x: np.ndarray | None,
         n_words: np.ndarray | None, fallback: tuple[Detector, np.ndarray] | None) -> pl.DataFrame:
    """Tags from feature rows ``x`` (columns ``det.feature_names``); with ``fallback = (fast, use_full)``
    the rows where ``use_full`` is false are scored by ``fast`` over its (leading) columns instead."""
    rs = rules if rules is not None else _default_rules()
    n = records.height
    if n == 0:
        return records.with_columns(pl.lit(None, pl.Utf8).alias("origin"), pl.lit(None, pl.Float64).alias("p_model"),
                                    pl.lit(None, pl.List(pl.Utf8)).alias("rules_fired"),
                                    pl.lit(None, EVIDENCE_DTYPE).alias("evidence"))
    contrib = det.contributions(x)
    logit_det = contrib.sum(1) + det.platt_a * det.intercept + det.platt_b
    t_model, t_human, min_words = det.threshold_model, det.threshold_human, det.min_words
    lm_rows = None
    if fallback is not None:
        fast, lm_rows = fallback
        k_fast = len(fast.feature_names)
        c_fast = fast.contributions(x[:, :k_fast])
        contrib = np.where(lm_rows[:, None], contrib, np.hstack([c_fast, np.zeros((n, x.shape[1] - k_fast))]))
        logit_det = np.where(lm_rows, logit_det, c_fast.sum(1) + fast.platt_a * fast.intercept + fast.platt_b)
        t_model = np.where(lm_rows, det.threshold_model, fast.threshold_model)
        t_human = np.where(lm_rows, det.threshold_human, fast.threshold_human)
        min_words = np.where(lm_rows, det.min_words, fast.min_words)
    if isinstance(rs, RuleSet) and type(rs).apply is RuleSet.apply:
        hit, wsum = rs._hit_matrix(records)
        combos, combo_of = rs._combos(hit)
    else:  # a rule set with its own apply(): use it as is
        fired_lists, wsum = rs.apply(records)
        index: dict[tuple[str, ...], int] = {}
        combo_of = np.array([index.setdefault(tuple(f), len(index)) for f in fired_lists], dtype=np.int64)
        combos = [list(c) for c in index]
    logit = logit_det + wsum
    p = _sigmoid(logit)
    short = n_words < min_words
    origin = np.where(p >= t_model, "model", np.where(p <= t_human, "human", "unknown"))
    decisive = np.abs(wsum) >= STRONG_RULE_WEIGHT
    origin = np.where(short & ~decisive, "unknown", origin)
    origin = np.where(short & decisive, np.where(wsum > 0, "model", "human"), origin)
    k = min(_TOP_FEATURES, contrib.shape[1])
    absc = np.abs(contrib)
    order = _top_k_order(absc, k)
    vals = np.round(np.take_along_axis(x, order, 1), 4)
    cons = np.round(np.take_along_axis(contrib, order, 1), 3)
    p_det = np.round(_sigmoid(logit_det), 4)
    fired = pl.Series("rules_fired", combos, dtype=pl.List(pl.Utf8)).gather(combo_of)
    return records.with_columns(
        pl.Series("origin", origin, dtype=pl.Utf8),
        pl.Series("p_model", np.round(p, 6), dtype=pl.Float64),
        fired,
        _evidence(det.feature_names, order, vals, cons, n_words, p_det, fired, short, det.min_words, lm_rows),
    )


#: ``evidence``: one struct per record. ``features`` is a list of {name, value, contribution} (the
#: detector's top features by |log-odds contribution|; other scorers may append their own entries)
EVIDENCE_FEATURE = pl.Struct({"name": pl.Utf8, "value": pl.Float64, "contribution": pl.Float64})
EVIDENCE_DTYPE = pl.Struct({"abstain": pl.Utf8, "features": pl.List(EVIDENCE_FEATURE), "n_words": pl.Int64,
                            "p_detector": pl.Float64, "rules": pl.List(pl.Utf8), "lm": pl.Boolean})


def _evidence(feature_names: list[str], order: np.ndarray, vals: np.ndarray, cons: np.ndarray, n_words: np.ndarray,
              p_det: np.ndarray, fired: pl.Series, short: np.ndarray, min_words: int,
              lm_rows: np.ndarray | None) -> pl.Series:
    """The ``evidence`` struct column, built column-wise (no per-record Python). ``lm`` is true for the
    records the language-model detector scored (full mode), false otherwise."""
    names = np.array(feature_names, dtype=object)
    k = order.shape[1]
    cols: dict[str, Any] = {}
    for slot in range(k):
        cols[f"n{slot}"] = pl.Series(names[order[:, slot]].tolist(), dtype=pl.Utf8)
        cols[f"v{slot}"] = pl.Series(vals[:, slot], dtype=pl.Float64)
        cols[f"c{slot}"] = pl.Series(cons[:, slot], dtype=pl.Float64)
    frame = pl.DataFrame(cols, height=len(n_words)).with_columns(
        pl.when(pl.Series(short, dtype=pl.Boolean)).then(pl.lit(f"short text (<{min_words} words)"))
        .otherwise(pl.lit(None, pl.Utf8)).alias("abstain"),
        pl.Series("n_words", n_words.astype(np.int64), dtype=pl.Int64),
        pl.Series("p_detector", p_det, dtype=pl.Float64), fired.alias("rules"),
        pl.Series("lm", np.zeros(len(n_words), dtype=bool) if lm_rows is None else lm_rows, dtype=pl.Boolean))
    feats = (pl.concat_list([pl.struct(pl.col(f"n{s}").alias("name"), pl.col(f"v{s}").alias("value"),
                                       pl.col(f"c{s}").alias("contribution")) for s in range(k)])
             if k else pl.lit([], dtype=pl.List(EVIDENCE_FEATURE)))
    return frame.select(pl.struct(pl.col("abstain"), feats.alias("features"), pl.col("n_words"),
                                  pl.col("p_detector"), pl.col("rules"), pl.col("lm")).alias("evidence"))["evidence"].cast(
        EVIDENCE_DTYPE)


def _distinct(texts: pl.Series) -> tuple[pl.Series, np.ndarray | None]:
    """The distinct texts (first-seen order) and each record's index into them (None: all distinct)."""
    texts = texts.fill_null("")
    uniq = texts.unique(maintain_order=True)
    if len(uniq) == len(texts):
        return uniq, None
    pos = (pl.DataFrame({"t": texts}).join(pl.DataFrame({"t": uniq, "i": np.arange(len(uniq))}), on="t",
                                           how="left", maintain_order="left")["i"].to_numpy())
    return uniq, pos


def _features_per_distinct_text(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """``feature_matrix`` of ``texts``, computed once per distinct text (prompts and copied answers
    repeat within a batch) and gathered back to every record."""
    uniq, pos = _distinct(texts)
    x, n_words = feature_matrix(uniq)
    return (x, n_words) if pos is None else (x[pos], n_words[pos])


def _top_k_order(absc: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` largest values (``absc`` is left unchanged), largest first: the same as
    ``argpartition`` + stable ``argsort`` (which the evidence format was defined with), computed by
    ``k`` argmax passes; rows where a tie could make the two differ use the original computation."""
    n, m = absc.shape
    if k <= 0 or n == 0:
        return np.zeros((n, max(k, 0)), dtype=np.int64)
    # masks the picked entries in place (no copy of the large matrix) and restores them afterwards
    order = np.empty((n, k), dtype=np.int64)
    rows = np.arange(n)
    top = np.empty((n, k), dtype=absc.dtype)
    for slot in range(k):
        j = np.argmax(absc, axis=1)
        order[:, slot] = j
        top[:, slot] = absc[rows, j]
        absc[rows, j] = -np.inf
    # a row is tie-free when its top values are strictly decreasing, strictly above the rest, and not NaN
    nxt = absc.max(axis=1) if m > k else np.full(n, -np.inf)
    for slot in range(k - 1, -1, -1):
        absc[rows, order[:, slot]] = top[:, slot]
    ok = np.all(top[:, :-1] > top[:, 1:], axis=1) & (top[:, -1] > nxt) & ~np.isnan(top).any(axis=1)
    ok &= ~np.isnan(absc).any(axis=1)
    bad = np.flatnonzero(~ok)
    if bad.size:
        sub = absc[bad]
        part = np.argpartition(-sub, k - 1, axis=1)[:, :k]
        order[bad] = np.take_along_axis(part, np.argsort(-np.take_along_axis(sub, part, 1), axis=1, kind="stable"), 1)
    return order


def load_reference(reference: Any = None) -> Any:
    """A ``MixtureReference``: given, loaded from a path, or the shipped human-vs-model default."""
    from provaudit.mixture import MixtureReference

    if reference is None:
        reference = DEFAULT_REFERENCE
    if isinstance(reference, (str, Path)):
        if not Path(reference).exists():
            raise InputError("mixture reference not found", file=str(reference))
        return MixtureReference.load(reference)
    return reference


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), nd)


def summarize_origin(tagged: pl.DataFrame, *, reference: Any = None, seed: int = 0, n_boot: int = 200,
                     rules: RuleSet | None = None) -> dict[str, Any]:
    """JSON-ready ``summary["origin"]`` for a tagged table.

    ``model_fraction`` = records tagged ``model`` / records tagged ``model`` or ``human`` (abstentions
    excluded; ``null`` when nothing was decided); ``model_fraction_all`` divides by all records.
    ``corpus_estimate`` is the Liang et al. (2024) mixture MLE over all texts, with a bootstrap
    interval, against ``reference`` (default: the shipped human-vs-model reference).
    ``rule_counts`` has every loaded rule id (zero when it never fired), for the gate.
    """
    for col in ("origin", "p_model", "rules_fired"):
        if col not in tagged.columns:
            raise InputError("table is not origin-tagged (run tag_origin first)", field=col)
    n = tagged.height
    counts = {k: int((tagged["origin"] == k).sum()) for k in ("human", "model", "unknown")}
    decided = counts["human"] + counts["model"]
    rs = rules if rules is not None else _default_rules()
    rule_counts = {rid: 0 for rid in rs.ids}
    for rid, c in tagged.select(pl.col("rules_fired").explode().drop_nulls().value_counts()).unnest(
            "rules_fired").iter_rows():
        rule_counts[rid] = int(c)
    by_role = {}
    if "role" in tagged.columns:
        for role in sorted(tagged["role"].drop_nulls().unique().to_list()):
            sub = tagged.filter(pl.col("role") == role)
            m, h = int((sub["origin"] == "model").sum()), int((sub["origin"] == "human").sum())
            by_role[role] = {"n": sub.height, "model": m, "human": h, "unknown": sub.height - m - h,
                             "model_fraction": _round(m / (m + h)) if m + h else None,
                             "mean_p_model": _round(sub["p_model"].mean())}
    out: dict[str, Any] = {
        "n": n, "counts": counts,
        "model_fraction": _round(counts["model"] / decided) if decided else None,
        "model_fraction_all": _round(counts["model"] / n) if n else None,
        "mean_p_model": _round(tagged["p_model"].mean()) if n else None,
        "rule_counts": rule_counts, "by_role": by_role,
    }
    mode = _scored_mode(tagged)
    det = load_detector(mode=mode)
    out["detector"] = {"threshold_model": _round(det.threshold_model), "threshold_human": _round(det.threshold_human),
                       "nominal_fpr": det.meta.get("nominal_fpr"), "min_words": det.min_words, "mode": mode}
    out["corpus_estimate"] = _corpus_estimate(tagged, det, seed, mode) if n else None
    if "text" in tagged.columns and n:
        from provaudit.mixture import estimate_mixture

        ref = load_reference(reference)
        est = estimate_mixture(tagged["text"].fill_null("").to_list(), ref, n_boot=n_boot, seed=seed)
        out["word_mixture"] = {k: (_round(v) if isinstance(v, float) else v) for k, v in est.to_dict().items()}
        out["word_mixture"]["method"] = "liang2024_mle"
        out["word_mixture"]["note"] = ("for comparison only: collapses toward 1 on human text whose vocabulary "
                                       "the reference never saw (bench/origin.py corpus-estimate table)")
    else:
        out["word_mixture"] = None
    return out


def _scored_mode(tagged: pl.DataFrame) -> str:
    """``full`` when the language-model detector scored records of this table (``evidence.lm``), else ``fast``:
    the detector whose thresholds and error rates the summary and the corpus estimate must use."""
    ev = tagged["evidence"] if "evidence" in tagged.columns else None
    if ev is None or not isinstance(ev.dtype, pl.Struct) or "lm" not in {f.name for f in ev.dtype.fields}:
        return "fast"
    return "full" if bool(ev.struct.field("lm").fill_null(False).any()) else "fast"


def _corpus_estimate(tagged: pl.DataFrame, det: Any, seed: int, mode: str = "fast") -> dict[str, Any]:
    """``corpus_estimate``: EM over the detector's calibrated posteriors with an interval that also
    spans adjusted classify-and-count under the detector's per-domain error rates
    (:mod:`provaudit.origin.corpus`), over the records long enough to score. In ``full`` mode, over the
    records the language-model detector scored, with that detector's threshold and error rates."""
    from provaudit.origin.corpus import corpus_estimate, detector_error_rates, detector_score_reference
    from provaudit.origin.detector import DEFAULT_FULL_DETECTOR

    ev = tagged["evidence"]
    if ev.dtype == pl.Utf8:  # records files written before evidence was a struct: JSON text
        ev = ev.fill_null("{}")
        n_words, p_det = ev.str.json_path_match("$.n_words"), ev.str.json_path_match("$.p_detector")
    else:
        n_words, p_det = ev.struct.field("n_words"), ev.struct.field("p_detector")
    words = n_words.cast(pl.Float64, strict=False).fill_null(0.0).to_numpy()
    p_det = p_det.cast(pl.Float64, strict=False)
    p = p_det.fill_null(tagged["p_model"]).fill_null(0.5).to_numpy()
    use = words >= det.min_words
    if mode == "full":
        use &= ev.struct.field("lm").fill_null(False).to_numpy()
    try:  # the shipped detector that scored these records
        rates = detector_error_rates(DEFAULT_FULL_DETECTOR if mode == "full" else None)
    except (ValueError, OSError) as exc:
        return {"alpha": None, "ci_low": None, "ci_high": None, "status": "unreliable", "reliable": 0,
                "reason": f"no stored detector error rates: {exc}", "n": 0}
    reference = detector_score_reference(DEFAULT_FULL_DETECTOR if mode == "full" else None)
    return corpus_estimate(p[use], det.threshold_model, rates, seed=seed, reference=reference)


def detector_mixture_estimate(p_model: np.ndarray, *, n_boot: int = 200, seed: int = 0,
                              ci: float = 0.95) -> dict[str, Any]:
    """Mixture MLE (the same likelihood as Liang et al.) over per-record detector likelihood ratios.

    ``p_model`` is calibrated at 1:1 prior odds, so ``p / (1 - p)`` is the record's likelihood ratio
    Q(x)/P(x); the model share ``a`` maximises ``sum log((1 - a) + a r_i)``. Complements the
    word-occurrence estimate; not in the summary because bench/origin.py shows it biased upward when
    the detector's calibration does not transfer (kept for comparison).
    """
    from provaudit.mixture import mle_alpha

    p = np.clip(np.asarray(p_model, dtype=np.float64), 1e-6, 1 - 1e-6)
    lr = np.log(p) - np.log1p(-p)
    n = int(lr.size)
    if n == 0:
        return {"alpha": None, "ci_low": None, "ci_high": None, "n": 0, "method": "detector_lr_mle"}
    alpha = float(mle_alpha(lr)[0])
    lo = hi = alpha
    if n_boot > 0:
        counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot)
        boots = mle_alpha(lr, counts)
        lo, hi = (float(v) for v in np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2]))
    return {"alpha": _round(alpha), "ci_low": _round(min(lo, alpha)), "ci_high": _round(max(hi, alpha)), "n": n,
            "method": "detector_lr_mle"}


def tag_file(path: str | Path, *, rules_dirs: list[str | Path] | None = None, detector: str | Path | None = None,
             mode: str = "fast", device: str = "cpu", progress: bool = False) -> pl.DataFrame:
    """Read any file provaudit reads, and origin-tag all its records (one frame, for notebooks).

    ``progress``: show the step (:mod:`provaudit.progress`), with a bar over the texts the language
    model scores in mode ``full``."""
    from provaudit import progress as display
    from provaudit.io.reader import read_table

    rs = load_rules(rules_dirs) if rules_dirs else None
    det = load_detector(detector) if detector else None
    with display.session(progress):
        display.step(f"reading {path}")
        records = read_table(path)
        display.step(f"tagging {path}")
        if mode != "full" or not progress:
            return tag_origin(records, rules=rs, detector=det, mode=mode, device=device)
        uniq, _ = _distinct(records["text"])
        total = int((word_counts(uniq) >= (det or load_detector(mode="full")).min_words).sum())
        display.step("scoring with the language model", total=total, unit="texts")
        return tag_origin(records, rules=rs, detector=det, mode=mode, device=device, progress=display.advance)


def lm_sample_estimate(frame: pl.DataFrame, *, n: int = 400, seed: int = 0, device: str = "cpu",
                       rules: RuleSet | None = None, n_boot: int = 200) -> dict[str, Any]:
    """The batch's model share from the full (language-model) detector on a bounded random sample.

    Draws ``n`` records of 50+ words from ``frame`` (seeded), tags them in origin mode ``full`` and
    corrects the tagged share for the detector's stored out-of-fold error rates at its threshold
    (adjusted classify-and-count: ``(tagged - fpr) / (tpr - fpr)``, clipped to [0, 1]), with a seeded
    bootstrap interval over the sample. Costs ``n`` LM scorings whatever the batch size.
    """
    from provaudit.origin.lm import INSTALL_HINT, lm_available, notice_once

    if not lm_available():
        notice_once()
        return {"available": False, "enable": INSTALL_HINT}
    det = load_detector(mode="full")
    words = word_counts(frame["text"])
    elig = np.flatnonzero(words >= det.min_words)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(elig, min(n, elig.size), replace=False)) if elig.size else elig
    out: dict[str, Any] = {"available": True, "n_eligible": int(elig.size), "n": int(pick.size),
                           "method": "adjusted classify-and-count, full detector on a random sample",
                           "detector": {"threshold_model": _round(det.threshold_model), **det.error_rates}}
    if pick.size == 0:
        return {**out, "tagged_model_fraction": None, "model_fraction": None, "ci_low": None, "ci_high": None}
    tagged = tag_origin(frame[pick.tolist()], rules=rules, mode="full", device=device, detector=det)
    is_model = (tagged["origin"] == "model").to_numpy()
    tpr, fpr = det.error_rates["tpr"], det.error_rates["fpr"]

    def adjusted(rate: np.ndarray) -> np.ndarray:
        if tpr is None or fpr is None or tpr - fpr < 0.05:
            return rate
        return np.clip((rate - fpr) / (tpr - fpr), 0.0, 1.0)

    boots = adjusted(np.random.default_rng(seed).binomial(pick.size, is_model.mean(), n_boot) / pick.size)
    est = float(adjusted(np.array([is_model.mean()]))[0])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {**out, "tagged_model_fraction": _round(float(is_model.mean())), "model_fraction": _round(est),
            "ci_low": _round(min(float(lo), est)), "ci_high": _round(max(float(hi), est)),
            "mean_p_model": _round(float(tagged["p_model"].mean()))}
