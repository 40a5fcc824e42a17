"""Diversity / homogenisation of a batch, each measure also relative to a human reference.

Measures (after Shaib et al. 2024, "Standardizing the Measurement of Text Diversity"):
``compression_ratio`` (raw / gzip size of the concatenated texts; higher = more repetitive),
``ngram_diversity`` (sum over n=1..4 of distinct n-grams / n-grams), ``homogenization``
(mean pairwise cosine of the texts' embeddings; higher = more alike), ``embedding_spread``
(mean cosine distance to the batch centroid; lower = more alike). Corpus-size effects are removed
by comparing equal budgets: the same number of characters / tokens / texts from batch and reference.
"""
from __future__ import annotations

import gzip
from collections.abc import Sequence
from typing import Any

import numpy as np

from provaudit.embed import encode
from provaudit.style.features import words

CHAR_BUDGET = 200_000
TOKEN_BUDGET = 20_000
TEXT_BUDGET = 400


def _sample(texts: list[str], k: int, seed: int) -> list[str]:
    if len(texts) <= k:
        return texts
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=k, replace=False))
    return [texts[i] for i in idx]


def _shuffled(texts: list[str], seed: int) -> list[str]:
    return [texts[i] for i in np.random.default_rng(seed).permutation(len(texts))]


def compression_ratio(texts: Sequence[str], budget: int) -> float:
    raw = "\n".join(texts)[:budget].encode("utf-8")
    return len(raw) / max(len(gzip.compress(raw, compresslevel=9, mtime=0)), 1)


def ngram_diversity(texts: Sequence[str], budget: int) -> float:
    toks: list[str] = []
    for t in texts:
        toks.extend(words(t))
        toks.append("\n")
        if len(toks) >= budget:
            break
    toks = toks[:budget]
    total = 0.0
    for n in (1, 2, 3, 4):
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1) if "\n" not in toks[i:i + n]]
        total += len(set(grams)) / max(len(grams), 1)
    return total


def _embedding_measures(emb: np.ndarray) -> tuple[float, float]:
    n = emb.shape[0]
    if n < 2:
        return float("nan"), float("nan")
    s = emb.sum(axis=0)
    homog = (float(s @ s) - float((emb * emb).sum())) / (n * (n - 1))
    c = s / max(float(np.linalg.norm(s)), 1e-12)
    spread = float(np.mean(1.0 - emb @ c))
    return homog, spread


def _measures(texts: list[str], chars: int, tokens: int, k: int, backend: str, seed: int) -> dict[str, float]:
    shuffled = _shuffled(texts, seed)
    homog, spread = _embedding_measures(encode(_sample(texts, k, seed), backend=backend))
    return {"compression_ratio": compression_ratio(shuffled, chars),
            "ngram_diversity": ngram_diversity(shuffled, tokens),
            "homogenization": homog, "embedding_spread": spread}


def diversity(texts: Sequence[str], human_texts: Sequence[str] | None = None, *, backend: str = "static",
              seed: int = 0) -> dict[str, Any]:
    """Diversity measures of ``texts``; with a human reference, the same on an equal budget and ratios.

    ``relative`` holds batch / human ratios oriented so that < 1 means *less diverse than human*
    (compression and homogenisation are inverted), and ``diversity_floor_ratio`` their minimum:
    the gate's single "diversity floor" number.
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        return {"n": 0}
    if human_texts is None:
        from provaudit.style.teacher import default_human_texts

        human_texts = default_human_texts()
    human = [t for t in human_texts if isinstance(t, str) and t.strip()]
    chars = min(CHAR_BUDGET, len("\n".join(texts)), len("\n".join(human)) if human else CHAR_BUDGET)
    tok_b = sum(len(words(t)) for t in texts)
    tok_h = sum(len(words(t)) for t in human) if human else TOKEN_BUDGET
    tokens = min(TOKEN_BUDGET, tok_b, tok_h)
    k = min(TEXT_BUDGET, len(texts), len(human) if human else TEXT_BUDGET)
    b = _measures(texts, chars, tokens, k, backend, seed)
    out: dict[str, Any] = {"n": len(texts), "budget": {"chars": chars, "tokens": tokens, "texts": k},
                           **{key: round(v, 4) for key, v in b.items()}}
    if human:
        h = _measures(human, chars, tokens, k, backend, seed)
        out["human"] = {key: round(v, 4) for key, v in h.items()}
        rel = {
            "compression_ratio": h["compression_ratio"] / b["compression_ratio"],
            "ngram_diversity": b["ngram_diversity"] / h["ngram_diversity"],
            "homogenization": (1 - b["homogenization"]) / max(1 - h["homogenization"], 1e-9),
            "embedding_spread": b["embedding_spread"] / max(h["embedding_spread"], 1e-9),
        }
        out["relative"] = {key: round(v, 4) for key, v in rel.items()}
        out["diversity_floor_ratio"] = round(min(rel.values()), 4)
    return out
