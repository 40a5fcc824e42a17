"""The fast paths of origin tagging give the same answers as slow, obviously-correct versions."""
from __future__ import annotations

import re
import statistics

import numpy as np
import polars as pl
import pytest

from provaudit.origin import load_detector, load_rules, tag_origin
from provaudit.origin.detector import _sigmoid
from provaudit.origin.features import (
    _WORD_CLASSES,
    DENSE_FEATURES,
    FEATURE_NAMES,
    MODEL_WORDS,
    SIGNATURE_PATTERN,
    _signature_counts,
    dense_feature_frame,
    feature_matrix,
    normalize_layout,
)
from provaudit.origin.rules import Rule, RuleSet, _content_hits, _strip_word_boundaries
from provaudit.origin.tagging import STRONG_RULE_WEIGHT, _top_k_order

TEXTS = [
    "",
    "   ",
    "I",
    "Certainly! As an AI language model, I cannot assist with that. I hope this helps.",
    "As an AI cannot... as an aide, AS AN AI? as an ai\u2014really. Feel free to ask!",
    "Caf\u00e9 na\u00efve \u2014 \u201cquoted\u201d and \u2018single\u2019 text.\n\n\tTabs\u00a0and\u2003spaces  here.",
    "In conclusion, the realm of tapestry is pivotal. Moreover, we delve into a vibrant, intricate landscape.",
    "- **Bold** item one\n- **Bold** item two\n1. **Third** item\n\nOverall, it's worth noting this.",
    "lol i dunno. i'm not sure?? maybe... you're right!!! ok",
    "Word " * 120 + "end. Another sentence here! And a question? Yes.",
    "Numbers 12, 34; colons: (paren) #hash *star* \"dq\" -- dash \u2013 en \u2026 done",
    "Cr\u00e8me br\u00fbl\u00e9e is delicious \u2014 the realm of desserts, truly a tapestry; pivotal and vibrant.",
]


def _slow_normalize(t: str | None) -> str:
    t = re.sub(r"\s+", " ", t or "")
    return t.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"').strip()


def test_normalize_layout_matches_plain_whitespace_collapse():
    texts = [*TEXTS, None, "a\r\n\r\nb", " lead", "trail ", "x\u2003y", "x \u2003 y"]
    assert normalize_layout(texts).to_list() == [_slow_normalize(t) for t in texts]


def test_sentence_length_features_match_python_reference():
    s = normalize_layout(TEXTS)
    dense = dense_feature_frame(s, normalized=True)
    for t, row in zip(s.to_list(), dense.iter_rows(named=True)):
        lens = [n for n in (len(re.findall(r"[A-Za-z0-9']+", sent)) for sent in re.findall(r"[^.!?]+", t)) if n > 0]
        mean = statistics.fmean(lens) if lens else 0.0
        sd = statistics.stdev(lens) if len(lens) > 1 else 0.0
        assert row["sent_len_mean"] == pytest.approx(mean, abs=1e-9)
        assert row["sent_len_sd"] == pytest.approx(sd, abs=1e-9)
        assert row["sent_len_cv"] == pytest.approx(sd / max(mean if lens else 1.0, 1.0), abs=1e-9)
        words = re.findall(r"[a-z]+(?:'[a-z]+)?", t.lower())
        assert row["n_words"] == len(words)
        for name, ws, scale in (("first_person_rate", _WORD_CLASSES[0], 1), ("second_person_rate", _WORD_CLASSES[1], 1),
                                ("model_word_rate", MODEL_WORDS, 100)):
            want = scale * sum(wd in ws for wd in words) / max(len(words), 1)
            assert row[name] == pytest.approx(want, abs=1e-9), name
        sig = len(re.findall(SIGNATURE_PATTERN[4:], t, flags=re.IGNORECASE))
        assert row["signature_rate"] == pytest.approx(100 * sig / max(len(words), 1), abs=1e-9)


def test_feature_matrix_equals_standalone_dense_frame():
    x, n_words = feature_matrix(TEXTS)
    dense = dense_feature_frame(TEXTS)  # counts word classes from the word lists itself
    np.testing.assert_allclose(x[:, :len(DENSE_FEATURES)], np.nan_to_num(dense.select(DENSE_FEATURES).to_numpy()),
                               rtol=0, atol=1e-12)
    assert n_words.tolist() == dense["n_words"].to_list()
    assert x[6, DENSE_FEATURES.index("model_word_rate")] > 0


def test_signature_counts_equal_the_single_regex_count():
    s = normalize_layout(TEXTS)
    assert _signature_counts(s).to_list() == s.str.count_matches(SIGNATURE_PATTERN).to_list()
    assert _signature_counts(s)[4] > 0


@pytest.mark.parametrize("rx, stripped", [
    (r"\bab\b", "ab"), (r"(?i)\bi'm\b", "(?i)i'm"), (r"[^]x]\Bz", "[^]x]z"),
    (r"abc", None), (r"\\b", None), (r"\b{start}x", None), (r"[\b]x\b", None),
])
def test_strip_word_boundaries(rx, stripped):
    assert _strip_word_boundaries(rx) == stripped


def test_content_hits_equal_direct_counts():
    rs = load_rules()
    content = [r for r in rs.rules if r.kind == "content"]
    extra = [Rule(id="wb2", kind="content", description="d", weight=1.0, roles=("text",),
                  match={"regex": r"(?i)\b(?:realm|tapestry|pivotal)\b", "min_count": 2}),
             Rule(id="wb_only", kind="content", description="d", weight=1.0, roles=("text",),
                  match={"regex": r"\b", "min_count": 3})]
    examples = [str(e) for r in content for v in r.tests.values() for e in v]
    t = pl.Series([*TEXTS, *examples, *(e.upper() for e in examples)])
    got = _content_hits(t, content + extra)
    for r in content + extra:
        want = (t.str.count_matches(r.match["regex"]) >= int(r.match.get("min_count", 1))).to_numpy()
        assert np.array_equal(got[r.id], want), r.id


def _reference_order(absc: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-absc, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(absc, part, 1), axis=1, kind="stable"), 1)


@pytest.mark.parametrize("levels", [3, 1000, None])
def test_top_k_order_matches_argpartition(levels):
    rng = np.random.default_rng(0)
    a = rng.integers(0, levels, size=(500, 20)).astype(float) if levels else rng.normal(size=(500, 20))
    a = np.abs(a)
    a[3, 5] = np.nan
    before = a.copy()
    for k in (1, 3):
        assert np.array_equal(_top_k_order(a, k), _reference_order(a, k))
    np.testing.assert_array_equal(a, before)  # left unchanged


def test_tag_origin_matches_slow_reference():
    rs, det = load_rules(), load_detector()
    roles = ["prompt", "chosen", "rejected", "response", None, "text"]
    df = pl.DataFrame({"text": TEXTS, "role": [roles[i % len(roles)] for i in range(len(TEXTS))],
                       "model": [None] * (len(TEXTS) - 1) + ["gpt-4"], "meta": ["{}"] * len(TEXTS)})
    out = tag_origin(df, rules=rs, detector=det)
    # the original per-row construction
    x, n_words = feature_matrix(df["text"])
    contrib = det.contributions(x)
    logit_det = contrib.sum(1) + det.platt_a * det.intercept + det.platt_b
    fired, wsum = rs.apply(df)
    p = _sigmoid(logit_det + wsum)
    assert out["rules_fired"].to_list() == fired
    np.testing.assert_allclose(out["p_model"].to_numpy(), np.round(p, 6), rtol=0, atol=1e-12)
    for i, ev in enumerate(out["evidence"].to_list()):
        order = _reference_order(np.abs(contrib[i:i + 1]), 3)[0]
        short = n_words[i] < det.min_words
        want = {"abstain": f"short text (<{det.min_words} words)" if short else None,
                "features": [{"name": FEATURE_NAMES[j], "value": float(np.round(x[i, j], 4)),
                              "contribution": float(np.round(contrib[i, j], 3))} for j in order],
                "n_words": int(n_words[i]), "p_detector": float(np.round(_sigmoid(logit_det[i]), 4)),
                "rules": fired[i], "lm": False}
        assert ev == want
        o = out["origin"][i]
        if short:
            assert o == ("unknown" if abs(wsum[i]) < STRONG_RULE_WEIGHT else ("model" if wsum[i] > 0 else "human"))


def test_custom_apply_rule_set_still_works():
    class Fixed(RuleSet):
        def apply(self, records):
            return [["x"] if i % 2 else [] for i in range(records.height)], np.zeros(records.height)

    out = tag_origin(pl.DataFrame({"text": TEXTS[:4]}), rules=Fixed([]))
    assert out["rules_fired"].to_list() == [[], ["x"], [], ["x"]]
    assert [e["rules"] for e in out["evidence"]] == [[], ["x"], [], ["x"]]


def test_repeated_texts_are_featurized_once_with_the_same_answers():
    """A batch with repeated texts (and a null) tags every record exactly as tagging it alone does."""
    texts = TEXTS + TEXTS[3:8] + [None, TEXTS[3]]
    df = pl.DataFrame({"text": texts, "role": ["chosen"] * len(texts), "model": [None] * len(texts),
                       "meta": ["{}"] * len(texts)}, schema_overrides={"text": pl.Utf8, "model": pl.Utf8})
    out = tag_origin(df)
    for i in range(df.height):
        alone = tag_origin(df.slice(i, 1))
        assert out.row(i) == alone.row(0)


def test_the_cached_vocabulary_table_is_the_built_one_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch) -> None:
    """The word-frequency table behind the frequency features is read from provaudit's cache after the first
    build: the same table, bit for bit; a truncated file, a foreign file and an unwritable cache all fall back
    to the build, and the per-text features do not change."""
    from provaudit.origin import features

    monkeypatch.setenv("PROVAUDIT_CACHE", str(tmp_path / "cache"))
    features._vocab_table.cache_clear()
    monkeypatch.setattr(features, "_vocab_table", features._vocab_table.__wrapped__)
    built = features._build_vocab_table()
    path = features.vocab_cache_path()
    assert path.parent == tmp_path / "cache" / "wordfreq" and not path.exists()
    first = features._vocab_table()
    assert first.equals(built) and path.exists() and not list(path.parent.glob(".tmp-*"))
    assert pl.read_parquet(path).equals(built)
    want = feature_matrix(TEXTS)[0]
    calls = []
    monkeypatch.setattr(features, "_build_vocab_table", lambda: calls.append(1) or built)
    assert features._vocab_table().equals(built) and calls == []  # read, not built
    np.testing.assert_array_equal(feature_matrix(TEXTS)[0], want)
    for damage in (path.read_bytes()[: 1000], b"not parquet", None):
        if damage is None:  # a parquet file of another table
            pl.DataFrame({"w": ["x"]}).write_parquet(path)
        else:
            path.write_bytes(damage)
        assert features._vocab_table().equals(built) and pl.read_parquet(path).equals(built)
    assert len(calls) == 3
    # a cache that cannot be written: built each time, no error
    monkeypatch.setenv("PROVAUDIT_CACHE", str(tmp_path / "file"))
    (tmp_path / "file").write_text("a file, not a folder")
    assert features._vocab_table().equals(built) and len(calls) == 4
    # another wordfreq version (or word lists) reads another file
    monkeypatch.setattr("importlib.metadata.version", lambda name: "0.0-test")
    assert features.vocab_cache_path() != path
