"""Per-record origin tags and the batch summary (model fraction, corpus-level mixture estimate)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.errors import InputError, UsageError
from provaudit.origin.detector import Detector, _sigmoid, load_detector
from provaudit.origin.features import FEATURE_NAMES, feature_matrix
from provaudit.origin.rules import RuleSet, load_rules

DEFAULT_REFERENCE = Path(__file__).resolve().parent / "data" / "mixture_reference.json"
STRONG_RULE_WEIGHT = 3.0  # summed rule weight that decides a short text without the detector
MODES = ("fast", "full")
_TOP_FEATURES = 3

_RULES_CACHE: dict[str, RuleSet] = {}


def _default_rules() -> RuleSet:
    if "default" not in _RULES_CACHE:
        _RULES_CACHE["default"] = load_rules()
    return _RULES_CACHE["default"]


def tag_origin(records: pl.DataFrame, *, rules: RuleSet | None = None, detector: Detector | None = None,
               mode: str = "fast") -> pl.DataFrame:
    """Add ``origin`` (human/model/unknown), ``p_model``, ``rules_fired`` and ``evidence`` columns.

    ``p_model`` is the detector's calibrated probability with the fired rules' weights added in
    log-odds. A record is ``model`` when ``p_model >= threshold_model`` (set at the detector's nominal
    false-positive rate on human text), ``human`` when ``p_model <= threshold_human``, else ``unknown``;
    texts shorter than the detector's ``min_words`` are ``unknown`` unless rules alone are decisive.
    Pure function of the batch. ``mode="full"`` is currently the same model as ``"fast"`` (the
    embedding features did not transfer better across generators and domains; see docs/origin.md).
    """
    if mode not in MODES:
        raise UsageError(f"origin mode must be one of {list(MODES)}, not {mode!r}")
    if "text" not in records.columns:
        raise InputError("record batch has no 'text' column", field="text")
    det = detector or load_detector()
    rs = rules if rules is not None else _default_rules()
    n = records.height
    if n == 0:
        return records.with_columns(pl.lit(None, pl.Utf8).alias("origin"), pl.lit(None, pl.Float64).alias("p_model"),
                                    pl.lit(None, pl.List(pl.Utf8)).alias("rules_fired"),
                                    pl.lit(None, pl.Utf8).alias("evidence"))
    x, n_words = _features_per_distinct_text(records["text"])
    contrib = det.contributions(x)
    logit_det = contrib.sum(1) + det.platt_a * det.intercept + det.platt_b
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
    short = n_words < det.min_words
    origin = np.where(p >= det.threshold_model, "model", np.where(p <= det.threshold_human, "human", "unknown"))
    decisive = np.abs(wsum) >= STRONG_RULE_WEIGHT
    origin = np.where(short & ~decisive, "unknown", origin)
    origin = np.where(short & decisive, np.where(wsum > 0, "model", "human"), origin)
    k = min(_TOP_FEATURES, contrib.shape[1])
    absc = np.abs(contrib)
    order = _top_k_order(absc, k)
    vals = np.round(np.take_along_axis(x, order, 1), 4)
    cons = np.round(np.take_along_axis(contrib, order, 1), 3)
    p_det = np.round(_sigmoid(logit_det), 4)
    abstain = f'"abstain":"short text (<{det.min_words} words)",'
    # Evidence JSON, built column-wise: reprs of distinct values only, then one string concatenation.
    names = np.array([f'["{name}",' for name in FEATURE_NAMES], dtype=object)
    val_s, con_s = _reprs(vals), _reprs(cons)
    feats = np.full(n, "", dtype=object)
    for slot in range(k):
        feats = feats + ("," if slot else "") + names[order[:, slot]] + val_s[:, slot] + "," + con_s[:, slot] + "]"
    rules_js = np.array([json.dumps(c) for c in combos], dtype=object)[combo_of]
    head = np.where(short, "{" + abstain, "{")
    evidence = (head.astype(object) + '"features":[' + feats + '],"n_words":'
                + np.array([str(int(v)) for v in n_words], dtype=object) + ',"p_detector":' + _reprs(p_det)
                + ',"rules":' + rules_js + "}")
    fired = pl.Series("rules_fired", combos, dtype=pl.List(pl.Utf8)).gather(combo_of)
    return records.with_columns(
        pl.Series("origin", origin, dtype=pl.Utf8),
        pl.Series("p_model", np.round(p, 6), dtype=pl.Float64),
        fired,
        pl.Series("evidence", evidence.tolist(), dtype=pl.Utf8),
    )


def _features_per_distinct_text(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """``feature_matrix`` of ``texts``, computed once per distinct text (prompts and copied answers
    repeat within a batch) and gathered back to every record."""
    texts = texts.fill_null("")
    uniq = texts.unique(maintain_order=True)
    if len(uniq) == len(texts):
        return feature_matrix(texts)
    x, n_words = feature_matrix(uniq)
    pos = (pl.DataFrame({"t": texts}).join(pl.DataFrame({"t": uniq, "i": np.arange(len(uniq))}), on="t",
                                           how="left", maintain_order="left")["i"].to_numpy())
    return x[pos], n_words[pos]


def _reprs(a: np.ndarray) -> np.ndarray:
    """``repr(float(v))`` of every element (object array, same shape), computed once per distinct value
    (by bit pattern, so -0.0 and 0.0 stay distinct)."""
    flat = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    uniq, inv = np.unique(flat.view(np.int64), return_inverse=True)
    reps = np.array([repr(float(v)) for v in uniq.view(np.float64)], dtype=object)
    return reps[np.asarray(inv).reshape(-1)].reshape(a.shape)


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
    det = load_detector()
    out["detector"] = {"threshold_model": _round(det.threshold_model), "threshold_human": _round(det.threshold_human),
                       "nominal_fpr": det.meta.get("nominal_fpr"), "min_words": det.min_words}
    out["corpus_estimate"] = _corpus_estimate(tagged, det, seed) if n else None
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


def _corpus_estimate(tagged: pl.DataFrame, det: Any, seed: int) -> dict[str, Any]:
    """``corpus_estimate``: EM over the detector's calibrated posteriors with an interval that also
    spans adjusted classify-and-count under the detector's per-domain error rates
    (:mod:`provaudit.origin.corpus`), over the records long enough to score."""
    from provaudit.origin.corpus import corpus_estimate, detector_error_rates

    ev = tagged["evidence"].fill_null("{}")
    words = ev.str.json_path_match("$.n_words").cast(pl.Float64, strict=False).fill_null(0.0).to_numpy()
    p_det = ev.str.json_path_match("$.p_detector").cast(pl.Float64, strict=False)
    p = p_det.fill_null(tagged["p_model"]).fill_null(0.5).to_numpy()
    try:
        rates = detector_error_rates()  # the shipped detector, the one summarize_origin scores with
    except (ValueError, OSError) as exc:
        return {"alpha": None, "ci_low": None, "ci_high": None, "status": "unreliable", "reliable": 0,
                "reason": f"no stored detector error rates: {exc}", "n": 0}
    return corpus_estimate(p[words >= det.min_words], det.threshold_model, rates, seed=seed)


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
             mode: str = "fast") -> pl.DataFrame:
    """Read any file provaudit reads, and origin-tag all its records (one frame, for notebooks)."""
    from provaudit.io.reader import read_table

    rs = load_rules(rules_dirs) if rules_dirs else None
    det = load_detector(detector) if detector else None
    return tag_origin(read_table(path), rules=rs, detector=det, mode=mode)
