"""Teacher-likeness: how much a text (or a batch) looks written by a given teacher model.

A :class:`TeacherModel` is fitted from teacher texts and a human reference (a small human corpus
ships with provaudit for when none is given). Per text it combines, in one logistic model fitted
on cross-fitted (out-of-fold) features, so no component is scored on texts it was fitted on:

* the word-occurrence log-likelihood ratio of the distributional MLE (:mod:`provaudit.mixture`),
* the embedding offset cos(text, teacher centroid) - cos(text, human centroid),
* a function-word Delta offset (Burrows), formatting habits (lists, markdown, length, sentence length),
* the rate of the teacher's over-used phrases.

Balanced class weights make the logistic decision value a calibrated log-likelihood ratio
log p(text | teacher) / p(text | human). ``score`` returns its sigmoid: the probability, on a
0-1 scale, that the text comes from the teacher rather than from the human reference when both
are equally likely a priori (0.5 = undecided). The batch headline ``teacher_likeness`` is the
mixture MLE of these ratios: the estimated share of the batch drawn from the teacher.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from provaudit.embed import encode
from provaudit.mixture import MixtureReference, fit_reference, mle_alpha
from provaudit.style.features import DeltaSpace, PhraseSet, format_features, function_word_rates, text_memo

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_HUMAN = DATA / "human_reference.jsonl.gz"
FEATURE_NAMES = ("word_llr", "embed_offset", "delta_offset", "log_words", "words_per_sentence",
                 "list_line_share", "header_rate", "bold_rate", "code_rate", "paragraphs_per_100w",
                 "phrase_rate")


def default_human_texts() -> list[str]:
    """The shipped human reference (see provaudit/style/data/SOURCES.md)."""
    with gzip.open(DEFAULT_HUMAN, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


@dataclass
class _Parts:
    mixture: MixtureReference
    phrases: PhraseSet
    delta: DeltaSpace
    z_teacher: np.ndarray
    z_human: np.ndarray
    c_teacher: np.ndarray
    c_human: np.ndarray


def _fit_parts(teacher: Sequence[str], human: Sequence[str], e_t: np.ndarray, e_h: np.ndarray,
               calibrate: bool) -> _Parts:
    delta = DeltaSpace.fit(teacher, human)
    return _Parts(
        mixture=fit_reference(human, teacher, calibrate=calibrate),
        phrases=PhraseSet.fit(teacher, human),
        delta=delta,
        z_teacher=delta.z(teacher),
        z_human=delta.z(human),
        c_teacher=_unit(e_t.mean(axis=0)),
        c_human=_unit(e_h.mean(axis=0)),
    )


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _features(parts: _Parts, texts: Sequence[str], emb: np.ndarray) -> np.ndarray:
    word = parts.mixture.doc_log_ratios(texts, calibrated=False)
    emb_off = emb @ parts.c_teacher - emb @ parts.c_human
    rates = function_word_rates(texts)
    z = ((rates - parts.delta.mean) / parts.delta.std)[:, parts.delta.cols]
    delta_off = np.abs(z - parts.z_human).mean(axis=1) - np.abs(z - parts.z_teacher).mean(axis=1)
    fmt = format_features(texts)
    occ, nw = parts.phrases.counts(texts)
    phrase = np.log1p(100.0 * occ / np.maximum(nw, 1.0))
    return np.column_stack([word, emb_off, delta_off, fmt, phrase])


class TeacherModel:
    """Per-text teacher-vs-human log-likelihood ratios from cross-fitted style evidence."""

    def __init__(self, teacher_texts: Sequence[str], human_texts: Sequence[str] | None = None, *,
                 backend: str = "static", folds: int = 5, seed: int = 0) -> None:
        with text_memo():  # each reference text tokenised and counted once for the 5 folds and the final fit
            self._fit(teacher_texts, human_texts, backend, folds, seed)

    def _fit(self, teacher_texts: Sequence[str], human_texts: Sequence[str] | None, backend: str, folds: int,
             seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        teacher = [t for t in teacher_texts if isinstance(t, str) and t.strip()]
        human = [t for t in (human_texts if human_texts is not None else default_human_texts())
                 if isinstance(t, str) and t.strip()]
        if len(teacher) < 20 or len(human) < 20:
            raise ValueError(f"need at least 20 teacher and 20 human texts, got {len(teacher)} and {len(human)}")
        self.backend = backend
        self.n_teacher, self.n_human = len(teacher), len(human)
        self.teacher_texts, self.human_texts = teacher, human
        e_t, e_h = encode(teacher, backend=backend), encode(human, backend=backend)
        rng = np.random.default_rng(seed)
        ft, fh = rng.permutation(len(teacher)) % folds, rng.permutation(len(human)) % folds
        xs, ys = [], []
        for k in range(folds):
            parts = _fit_parts([t for t, f in zip(teacher, ft) if f != k], [t for t, f in zip(human, fh) if f != k],
                               e_t[ft != k], e_h[fh != k], calibrate=False)
            xs.append(_features(parts, [t for t, f in zip(teacher, ft) if f == k], e_t[ft == k]))
            ys.append(np.ones(int((ft == k).sum())))
            xs.append(_features(parts, [t for t, f in zip(human, fh) if f == k], e_h[fh == k]))
            ys.append(np.zeros(int((fh == k).sum())))
        x, y = np.vstack(xs), np.concatenate(ys)
        self.x_mean, self.x_std = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
        clf.fit((x - self.x_mean) / self.x_std, y)
        self.coef, self.intercept = clf.coef_[0].copy(), float(clf.intercept_[0])
        self.oof_log_ratio = self._lr_from_x(x)
        self.oof_label = y
        self.parts = _fit_parts(teacher, human, e_t, e_h, calibrate=False)
        self.word_reference = fit_reference(human, teacher, calibrate=True, seed=seed)
        self.e_teacher, self.e_human = e_t, e_h

    def _lr_from_x(self, x: np.ndarray) -> np.ndarray:
        return np.clip(((x - self.x_mean) / self.x_std) @ self.coef + self.intercept, -30.0, 30.0)

    def features(self, texts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        emb = encode(texts, backend=self.backend) if emb is None else emb
        return _features(self.parts, texts, emb)

    def log_ratio(self, texts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        """Calibrated log p(text | teacher) / p(text | human), one per text."""
        if len(texts) == 0:
            return np.zeros(0)
        return self._lr_from_x(self.features(texts, emb))

    def score(self, texts: Sequence[str], emb: np.ndarray | None = None) -> np.ndarray:
        """P(teacher | text) with equal priors, in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.log_ratio(texts, emb)))

    def weights(self) -> dict[str, float]:
        """Standardised logistic weights per feature (what drives the score)."""
        return {n: round(float(w), 4) for n, w in zip(FEATURE_NAMES, self.coef)}

    def fraction(self, log_ratios: np.ndarray, *, n_boot: int = 200, seed: int = 0,
                 ci: float = 0.95) -> tuple[float, float, float]:
        """Mixture-MLE teacher share of a batch from its per-text log-ratios, with bootstrap CI."""
        n = int(log_ratios.size)
        if n == 0:
            return float("nan"), float("nan"), float("nan")
        a = float(mle_alpha(log_ratios)[0])
        if n_boot <= 0:
            return a, a, a
        rng = np.random.default_rng(seed)
        boots = mle_alpha(log_ratios, rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot))
        lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        return a, float(min(lo, a)), float(max(hi, a))


_CACHE: dict[str, TeacherModel] = {}


def get_teacher_model(teacher_texts: Sequence[str], human_texts: Sequence[str] | None = None, *,
                      backend: str = "static", seed: int = 0) -> TeacherModel:
    """Fit (or reuse) the teacher model for these references (cached on their content)."""
    h = xxhash.xxh3_128()
    for part in (teacher_texts, ["\x00human"], human_texts or ["\x00default"]):
        for t in part:
            h.update(str(t).encode("utf-8", "replace"))
            h.update(b"\x1e")
    key = f"{h.hexdigest()}:{backend}:{seed}"
    if key not in _CACHE:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = TeacherModel(teacher_texts, human_texts, backend=backend, seed=seed)
    return _CACHE[key]


def teacher_similarity(texts: Sequence[str], teacher_texts: Sequence[str],
                       human_texts: Sequence[str] | None = None, *, backend: str = "static") -> np.ndarray:
    """One teacher-likeness score per text: P(teacher | text) in [0, 1], 0.5 = undecided.

    Equal priors: the logit of the score is the calibrated log-likelihood ratio of teacher vs human
    reference (``human_texts`` or the shipped human reference). Higher = more teacher-like.
    """
    texts = [t if isinstance(t, str) else "" for t in texts]
    return get_teacher_model(teacher_texts, human_texts, backend=backend).score(texts)
