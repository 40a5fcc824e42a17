"""Surface style: function-word profile (Burrows' Delta), formatting habits, over-used phrases.

Everything here is cheap, model-free and topic-light: function words and formatting carry an
author's (or a model's) habits across subjects, which is why stylometry uses them.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022+]|\d{1,3}[.)])\s+\S")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_CODE = re.compile(r"```|`[^`\n]+`")

# Common English function words (Mosteller-Wallace / Burrows style list): topic-independent habits.
FUNCTION_WORDS: tuple[str, ...] = tuple(sorted({"a", "about", "above", "after", "again", "against", "all", "also", "although", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "either", "even", "ever", "every", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "however", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "may", "me", "might", "more", "most", "much", "must", "my", "myself", "neither", "no", "nor", "not", "now", "of", "off", "often", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "perhaps", "quite", "rather", "same", "shall", "she", "should", "since", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "therefore", "these", "they", "this", "those", "though", "through", "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "was", "we", "were", "what", "when", "where", "whether", "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would", "yet", "you", "your", "yours", "yourself", "yourselves"}))
_FW_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}

FORMAT_FEATURES: tuple[str, ...] = ("log_words", "words_per_sentence", "list_line_share", "header_rate",
                                    "bold_rate", "code_rate", "paragraphs_per_100w")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return WORD.findall((text or "").lower())


def function_word_rates(texts: Sequence[str]) -> np.ndarray:
    """Per-text relative frequency of each function word (rows: texts, columns: FUNCTION_WORDS)."""
    out = np.zeros((len(texts), len(FUNCTION_WORDS)), dtype=np.float64)
    for i, t in enumerate(texts):
        counts, n = _function_word_counts(t)
        if n:
            out[i] = counts / n
    return out


#: per-text results kept while a ``text_memo()`` block runs (None outside one): a teacher fit reads each reference
#: text in every cross-fitting fold (6 times); released when the block ends, so memory never grows with a scan
_MEMO: ContextVar[dict[str, dict] | None] = ContextVar("provaudit_text_memo", default=None)


@contextmanager
def text_memo() -> Iterator[None]:
    """Within the block (this thread), each text's n-grams and function-word counts are computed once."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({"ngrams": {}, "fw": {}})
    try:
        yield
    finally:
        _MEMO.reset(token)


def _function_word_counts(text: str) -> tuple[np.ndarray, int]:
    """(occurrences of each of FUNCTION_WORDS, words) of a text; the array is read-only."""
    memo = _MEMO.get()
    if memo is not None and text in memo["fw"]:
        return memo["fw"][text]
    counts = np.zeros(len(FUNCTION_WORDS), dtype=np.float64)
    toks = words(text)
    for w in toks:
        j = _FW_INDEX.get(w)
        if j is not None:
            counts[j] += 1.0
    counts.flags.writeable = False
    if memo is not None:
        memo["fw"][text] = (counts, len(toks))
    return counts, len(toks)


def format_features(texts: Sequence[str]) -> np.ndarray:
    """Per-text formatting habits, columns FORMAT_FEATURES (rates per line or per 100 words)."""
    out = np.zeros((len(texts), len(FORMAT_FEATURES)), dtype=np.float64)
    for i, t in enumerate(texts):
        t = t or ""
        n = len(words(t))
        lines = [ln for ln in t.split("\n") if ln.strip()]
        sents = [s for s in _SENT.split(t) if words(s)]
        per100 = 100.0 / max(n, 1)
        out[i] = (
            math.log1p(n),
            n / max(len(sents), 1),
            sum(bool(_LIST_LINE.match(ln)) for ln in lines) / max(len(lines), 1),
            len(_HEADER.findall(t)) * per100,
            len(_BOLD.findall(t)) * per100,
            len(_CODE.findall(t)) * per100,
            len(re.findall(r"\n\s*\n", t)) * per100,
        )
    return out


def corpus_profile(texts: Sequence[str]) -> np.ndarray:
    """Corpus-level function-word frequencies (pooled over all tokens)."""
    counts = np.zeros(len(FUNCTION_WORDS))
    total = 0
    for t in texts:
        c, n = _function_word_counts(t)
        counts += c  # whole numbers: the same sums in any order
        total += n
    return counts / max(total, 1)


@dataclass
class DeltaSpace:
    """Burrows' Delta: mean absolute z-score difference over the most frequent function words."""

    mean: np.ndarray
    std: np.ndarray
    cols: np.ndarray

    @classmethod
    def fit(cls, *corpora: Sequence[str], n_words: int = 100) -> DeltaSpace:
        """z-scores from per-text rates of the reference corpora pooled (each weighted equally)."""
        rates = [function_word_rates(c) for c in corpora if len(c)]
        means = np.mean([r.mean(axis=0) for r in rates], axis=0)
        stds = np.sqrt(np.mean([r.var(axis=0) for r in rates], axis=0))
        cols = np.argsort(-means, kind="stable")[:n_words]
        return cls(mean=means, std=np.where(stds > 0, stds, 1.0), cols=np.sort(cols))

    def z(self, texts: Sequence[str]) -> np.ndarray:
        return ((corpus_profile(texts) - self.mean) / self.std)[self.cols]

    def delta(self, a: Sequence[str], b: Sequence[str] | np.ndarray) -> float:
        zb = b if isinstance(b, np.ndarray) else self.z(b)
        return float(np.mean(np.abs(self.z(a) - zb)))


@dataclass
class PhraseSet:
    """A teacher's over-used phrases (word 2- and 3-grams) and the teacher's own rate of them."""

    phrases: list[str]
    teacher_rate: float  # occurrences per 1,000 words in the teacher reference
    human_rate: float | None = None

    @classmethod
    def fit(cls, teacher_texts: Sequence[str], human_texts: Sequence[str] | None, *, top_k: int = 100,
            min_count: int = 5) -> PhraseSet:
        """Top phrases by weighted log-odds with an informative Dirichlet prior (Monroe et al. 2008).

        Only n-grams used in at least ``min_count`` distinct teacher texts qualify, so one long
        answer cannot plant its topic words; without a human reference, plain frequency is used.
        """
        tc, tdf = _ngram_counts(teacher_texts)
        keep = [g for g, df in tdf.items() if df >= min_count]
        if human_texts:
            hc, _ = _ngram_counts(human_texts)
            nt, nh = sum(tc.values()), sum(hc.values())
            prior_total = 1000.0
            scores = {}
            for g in keep:
                a0 = prior_total * (tc[g] + hc.get(g, 0)) / (nt + nh)
                lt = math.log((tc[g] + a0) / (nt + prior_total - tc[g] - a0))
                lh = math.log((hc.get(g, 0) + a0) / (nh + prior_total - hc.get(g, 0) - a0))
                var = 1.0 / (tc[g] + a0) + 1.0 / (hc.get(g, 0) + a0)
                scores[g] = (lt - lh) / math.sqrt(var)
        else:
            scores = {g: float(tc[g]) for g in keep}
        ranked = sorted(keep, key=lambda g: (-scores[g], g))
        phrases = sorted(g for g in ranked[:top_k] if scores[g] > 0)
        ps = cls(phrases=phrases, teacher_rate=0.0)
        ps.teacher_rate = ps.rate(teacher_texts)
        ps.human_rate = ps.rate(human_texts) if human_texts else None
        return ps

    def counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-text (phrase occurrences, words)."""
        ph = set(self.phrases)
        occ = np.zeros(len(texts))
        nw = np.zeros(len(texts))
        for i, t in enumerate(texts):
            _, grams, nw[i] = _text_ngrams(t)
            occ[i] = sum(grams[g] for g in ph if g in grams)
        return occ, nw

    def rate(self, texts: Sequence[str]) -> float:
        occ, nw = self.counts(texts)
        return float(1000.0 * occ.sum() / max(nw.sum(), 1.0))


def _ngrams(toks: Sequence[str]) -> list[str]:
    """Word 2-grams then 3-grams, in text order."""
    return ([f"{a} {b}" for a, b in pairwise(toks)]
            + [f"{a} {b} {c}" for a, b, c in zip(toks, toks[1:], toks[2:])])


def _text_ngrams(text: str) -> tuple[tuple[str, ...], Counter, int]:
    """(the text's word 2- and 3-grams, their counts, its words); kept within a ``text_memo()`` block. Callers
    must not change the Counter."""
    memo = _MEMO.get()
    if memo is not None and text in memo["ngrams"]:
        return memo["ngrams"][text]
    toks = words(text)
    grams = tuple(_ngrams(toks))
    out = (grams, Counter(grams), len(toks))
    if memo is not None:
        memo["ngrams"][text] = out
    return out


def _ngram_counts(texts: Sequence[str]) -> tuple[Counter, Counter]:
    counts: Counter = Counter()
    dfs: Counter = Counter()
    for t in texts:
        grams, distinct, _ = _text_ngrams(t)
        counts.update(grams)  # an iterable of keys, not a mapping: counted in C
        dfs.update(distinct.keys())
    return counts, dfs
