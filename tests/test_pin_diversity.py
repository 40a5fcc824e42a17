"""The diversity measures (provaudit.style.diversity) pinned to their definitions.

Expected values are worked by hand from the module's documented definitions (Shaib et al. 2024): the
n-gram diversity sums, over n = 1..4, distinct n-grams / n-grams of the lower-cased word tokens, with no
n-gram crossing a text boundary and the token budget cut after the text that reaches it; the compression
ratio is raw bytes / gzip bytes of the texts joined by newlines and cut to a character budget;
homogenisation is the mean pairwise cosine and spread the mean cosine distance to the unit centroid; and
``diversity`` compares batch and human on the same budgets, with ratios oriented so that < 1 means less
diverse than human.
"""
from __future__ import annotations

import gzip
import importlib
import math

import numpy as np
import pytest

# the module, not the function of the same name that provaudit.style exports
dv = importlib.import_module("provaudit.style.diversity")


def test_ngram_diversity_by_hand() -> None:
    texts = ["Alpha beta gamma alpha BETA", "gamma delta"]
    # tokens: alpha beta gamma alpha beta | gamma delta |  (| = text boundary)
    # n=1: 7 tokens, 4 distinct; n=2: ab bg ga ab gd -> 5, 4 distinct; n=3: abg bga gab -> 3, 3; n=4: abga bgab -> 2, 2
    assert dv.ngram_diversity(texts, 1000) == pytest.approx(4 / 7 + 4 / 5 + 1 + 1)
    # budget 4: the first text reaches it; its first 4 tokens: alpha beta gamma alpha
    assert dv.ngram_diversity(texts, 4) == pytest.approx(3 / 4 + 1 + 1 + 1)
    # budget 7: both texts read, then cut to 7 tokens (the boundary counts as one): ... beta | gamma
    assert dv.ngram_diversity(texts, 7) == pytest.approx(3 / 6 + 3 / 4 + 1 + 1)
    assert dv.ngram_diversity([], 100) == 0.0 and dv.ngram_diversity(["one"], 100) == 1.0
    # every n counts on its own: a b c a b c a -> n=2: 6 grams, 3 distinct; n=3: 5, 3; n=4: 4, 3
    assert dv.ngram_diversity(["a b c a b c a"], 100) == pytest.approx(3 / 7 + 3 / 6 + 3 / 5 + 3 / 4)


def test_compression_ratio_by_hand() -> None:
    texts = ["abcabcabc" * 20, "xyz"]
    raw = ("abcabcabc" * 20 + "\n" + "xyz").encode("utf-8")
    assert dv.compression_ratio(texts, 10_000) == len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))
    cut = raw[:50]
    assert dv.compression_ratio(texts, 50) == len(cut) / len(gzip.compress(cut, compresslevel=9, mtime=0))
    # the budget counts characters; the ratio counts bytes (2 per é)
    e = ("é" * 40).encode("utf-8")
    assert len(e) == 80 and dv.compression_ratio(["é" * 100], 40) == 80 / len(gzip.compress(e, compresslevel=9, mtime=0))
    assert dv.compression_ratio([], 10) == 0.0


def test_embedding_measures_by_hand() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    homog, spread = dv._embedding_measures(emb)
    assert homog == pytest.approx((0 + 1 + 0) / 3)                   # pairs (1,2), (1,3), (2,3)
    assert spread == pytest.approx(1 - (2 + 1 + 2) / math.sqrt(5) / 3)  # centroid (2, 1) / sqrt(5)
    one = dv._embedding_measures(np.array([[0.6, 0.8]]))
    assert all(math.isnan(v) for v in one)
    # two texts are enough; a centroid shorter than 1 is still scaled to unit length: s = (0.4, 0.8)
    homog, spread = dv._embedding_measures(np.array([[1.0, 0.0], [-0.6, 0.8]]))
    assert homog == pytest.approx(-0.6)
    assert spread == pytest.approx(1 - 0.4 / math.sqrt(0.8))  # both rows at cos 0.4 / |s| to the centroid


def test_sample_keeps_input_order_and_size() -> None:
    texts = [f"t{i}" for i in range(10)]
    got = dv._sample(texts, 4, seed=3)
    assert len(got) == 4 == len(set(got)) and got == sorted(got, key=texts.index)
    assert all(len(set(dv._sample(texts, 8, seed=s))) == 8 for s in range(20))  # without replacement
    assert got == dv._sample(texts, 4, seed=3) and dv._sample(texts, 10, seed=3) == texts
    assert sorted(dv._shuffled(texts, 1)) == sorted(texts) and dv._shuffled(texts, 1) != texts


def test_diversity_budgets_orientation_and_floor(monkeypatch) -> None:
    calls = []
    batch_m = {"compression_ratio": 4.0, "ngram_diversity": 1.5, "homogenization": 0.6, "embedding_spread": 0.2}
    human_m = {"compression_ratio": 2.0, "ngram_diversity": 3.0, "homogenization": 0.2, "embedding_spread": 0.5}

    def fake(texts, chars, tokens, k, backend, seed):
        calls.append((list(texts), chars, tokens, k, backend, seed))
        return batch_m if len(calls) == 1 else human_m

    monkeypatch.setattr(dv, "_measures", fake)
    batch = ["one two three", "  ", None, "four five"]
    human = ["six seven", "eight", "nine ten eleven twelve", ""]
    out = dv.diversity(batch, human, backend="static", seed=7)
    kept_b, kept_h = ["one two three", "four five"], ["six seven", "eight", "nine ten eleven twelve"]
    chars = min(len("\n".join(kept_b)), len("\n".join(kept_h)))          # 23 vs 30
    tokens, k = min(5, 7), min(2, 3)
    assert calls == [(kept_b, chars, tokens, k, "static", 7), (kept_h, chars, tokens, k, "static", 7)]
    assert out["n"] == 2 and out["budget"] == {"chars": 23, "tokens": 5, "texts": 2}
    assert {key: out[key] for key in batch_m} == batch_m and out["human"] == human_m
    # < 1: less diverse than human (compression and homogenisation inverted)
    rel = {"compression_ratio": 2.0 / 4.0, "ngram_diversity": 1.5 / 3.0, "homogenization": 0.4 / 0.8,
           "embedding_spread": 0.2 / 0.5}
    assert out["relative"] == pytest.approx(rel) and out["diversity_floor_ratio"] == 0.4
    # no human texts: no comparison, and the budgets are the batch's own (under the caps)
    calls.clear()
    alone = dv.diversity(batch, [], seed=7)
    assert calls == [(kept_b, 23, 5, 2, "static", 7)] and "relative" not in alone and "human" not in alone
    assert dv.diversity(["", "  "], human) == {"n": 0}
    # a human reference smaller than the batch in characters, tokens and texts sets each budget; seed 0 by default
    calls.clear()
    dv.diversity(kept_h, ["tiny one", "two"], backend="minilm")
    assert calls[0][1:] == (12, 3, 2, "minilm", 0) == calls[1][1:]


def test_diversity_rounds_to_four_decimals(monkeypatch) -> None:
    third = {"compression_ratio": 1 / 3, "ngram_diversity": 2 / 3, "homogenization": 1 / 7, "embedding_spread": 1 / 9}
    other = {"compression_ratio": 1 / 6, "ngram_diversity": 1 / 6, "homogenization": 3 / 7, "embedding_spread": 1 / 3}
    seq = iter([third, other])
    monkeypatch.setattr(dv, "_measures", lambda *a: next(seq))
    out = dv.diversity(["a b"], ["c d"])
    assert {k: out[k] for k in third} == {k: round(v, 4) for k, v in third.items()}
    assert out["human"] == {k: round(v, 4) for k, v in other.items()}
    rel = {"compression_ratio": 0.5, "ngram_diversity": 4.0, "homogenization": (6 / 7) / (4 / 7), "embedding_spread": 1 / 3}
    assert out["relative"] == {k: round(v, 4) for k, v in rel.items()} and out["diversity_floor_ratio"] == 0.3333


def test_diversity_caps_its_budgets(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(dv, "_measures", lambda t, c, tok, k, b, s: calls.append((c, tok, k)) or {
        "compression_ratio": 1.0, "ngram_diversity": 1.0, "homogenization": 0.5, "embedding_spread": 0.5})
    monkeypatch.setattr(dv, "CHAR_BUDGET", 10)
    monkeypatch.setattr(dv, "TOKEN_BUDGET", 3)
    monkeypatch.setattr(dv, "TEXT_BUDGET", 1)
    out = dv.diversity(["one two three four", "five six"], ["seven eight nine ten", "eleven"])
    assert calls == [(10, 3, 1), (10, 3, 1)] and out["diversity_floor_ratio"] == 1.0
    # a floor on near-1 homogenisation: (1 - b) / max(1 - h, 1e-9)
    monkeypatch.setattr(dv, "_measures", lambda *a: {"compression_ratio": 1.0, "ngram_diversity": 1.0,
                                                      "homogenization": 1.0, "embedding_spread": 0.0})
    same = dv.diversity(["a b"], ["c d"])
    assert same["relative"] == {"compression_ratio": 1.0, "ngram_diversity": 1.0, "homogenization": 0.0,
                                "embedding_spread": 0.0}


def test_diversity_without_a_human_list_uses_the_shipped_reference(monkeypatch) -> None:
    from provaudit.style import teacher

    seen = []
    monkeypatch.setattr(teacher, "default_human_texts", lambda: ["shipped human text one", "and two"])
    monkeypatch.setattr(dv, "_measures", lambda t, *a: seen.append(list(t)) or {
        "compression_ratio": 1.0, "ngram_diversity": 1.0, "homogenization": 0.5, "embedding_spread": 0.5})
    dv.diversity(["batch text"])
    assert seen == [["batch text"], ["shipped human text one", "and two"]]


def test_measures_reads_the_budgets_on_a_seeded_shuffle(monkeypatch) -> None:
    texts = [f"text number {w} with some words" for w in ("one", "two", "three", "four", "five", "six", "seven",
                                                          "eight", "nine", "ten")]
    m = dv._measures(texts, 40, 9, 3, "static", 5)
    shuffled = dv._shuffled(texts, 5)
    assert m["compression_ratio"] == dv.compression_ratio(shuffled, 40)
    assert m["ngram_diversity"] == dv.ngram_diversity(shuffled, 9)
    from provaudit.embed import encode

    homog, spread = dv._embedding_measures(encode(dv._sample(texts, 3, 5), backend="static"))
    assert (m["homogenization"], m["embedding_spread"]) == (homog, spread)
    # the embedding side embeds the seeded sample of k texts with the backend asked for
    seen = []
    monkeypatch.setattr(dv, "encode", lambda t, backend="static": seen.append((list(t), backend)) or np.eye(len(t)))
    dv._measures(texts, 40, 9, 3, "minilm", 5)
    assert seen == [(dv._sample(texts, 3, 5), "minilm")]
