"""Band keys pinned to their documented layout and collision curve.

Catalogs store band keys; a change of band layout under the same ``FINGERPRINT_VERSION`` silently breaks
every near-duplicate lookup against an existing catalog. So:

- the keys of fixed texts are pinned (golden values of ``pa-fp-v2``: change them only with a version bump);
- each key is recomputed here in plain Python from the signature by the documented layout (16 bands of
  8 consecutive rows, each folded with splitmix64 starting from the band number + 1);
- two texts share a key exactly when some band of 8 signature values agrees, and over many constructed
  pairs at a chosen Jaccard similarity J the share of pairs that collide follows 1-(1-J^8)^16.
"""
from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from provaudit.fingerprint import (
    BANDS,
    FINGERPRINT_VERSION,
    NUM_PERM,
    ROWS,
    _shingles,
    add_fingerprints,
    band_keys,
    band_keys_from_signatures,
    estimate_jaccard,
    minhash_signatures,
    normalize_text,
    text_hash,
)

M64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """The splitmix64 finaliser (Steele et al.), written out from its definition."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def keys_by_definition(sig: list[int]) -> list[int]:
    out = []
    for b in range(16):
        h = b + 1
        for r in range(8):
            h = splitmix64(h ^ sig[b * 8 + r])
        out.append(h)
    return out


FIXED = ["The quick brown fox jumps over the lazy dog.", "Hello", ""]
GOLDEN = {  # pa-fp-v2: first, second, third and last band key
    FIXED[0]: (13987427483954477445, 11725242783961837314, 12793939717029318467, 2587569619069575106),
    FIXED[1]: (12698680607356933959, 12921747458996421929, 8118911485692566168, 15426079898827060223),
    FIXED[2]: (16283795756346981109, 10176454431179165179, 12110804414584820892, 12601914086873314823),
}


def test_layout_constants_are_the_documented_ones() -> None:
    assert (NUM_PERM, BANDS, ROWS) == (128, 16, 8)


def test_band_key_values_are_pinned_under_the_fingerprint_version() -> None:
    assert FINGERPRINT_VERSION == "pa-fp-v2", "new version: regenerate GOLDEN for it"
    keys = band_keys(FIXED)
    for text, k in zip(FIXED, keys):
        assert len(k) == 16
        assert (k[0], k[1], k[2], k[-1]) == GOLDEN[text], f"band keys of {text!r} changed under {FINGERPRINT_VERSION}"
    sig = minhash_signatures(FIXED[:2])
    assert sig.shape == (2, 128) and sig.dtype == np.uint32
    assert sig[0][:4].tolist() == [3515396990, 3714715124, 763608122, 2719167719]
    assert sig[1][:4].tolist() == [3903352874, 3629813563, 3747624915, 3839953679]
    assert text_hash(FIXED[0]) == "d06a8295313e6a153ff8e02db829c73c"


def test_each_key_is_its_band_of_eight_rows_folded_by_splitmix() -> None:
    rng = np.random.default_rng(3)
    sig = rng.integers(0, 2**32, size=(5, 128), dtype=np.uint64).astype(np.uint32)
    got = band_keys_from_signatures(sig)
    assert got.shape == (5, 16) and got.dtype == np.uint64
    for row, k in zip(sig.tolist(), got.tolist()):
        assert k == keys_by_definition(row)
    texts = FIXED + ["one two three four five six", "a completely different sentence of words here"]
    real = minhash_signatures(texts)
    assert band_keys(texts) == [keys_by_definition(r) for r in real.tolist()]


def test_changing_one_row_changes_only_its_band() -> None:
    sig = np.arange(128, dtype=np.uint32).reshape(1, 128) * 7919
    base = band_keys_from_signatures(sig)[0]
    for pos in (0, 7, 8, 63, 127):
        s2 = sig.copy()
        s2[0, pos] ^= 1
        k = band_keys_from_signatures(s2)[0]
        changed = [b for b in range(16) if k[b] != base[b]]
        assert changed == [pos // 8], pos
    # the band index is part of the key: equal bands at different positions give different keys
    same = np.tile(np.arange(8, dtype=np.uint32), 16).reshape(1, 128)
    assert len(set(band_keys_from_signatures(same)[0].tolist())) == 16


def _vocab(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(n)]


def _pair(rng: random.Random, common: int, own: int) -> tuple[str, str]:
    """Two texts sharing their first ``common`` words, then ``own`` words each of their own."""
    c = _vocab(rng, common)
    return " ".join(c + _vocab(rng, own)), " ".join(c + _vocab(rng, own))


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(_shingles(normalize_text(a).lower())), set(_shingles(normalize_text(b).lower()))
    return len(sa & sb) / len(sa | sb)


@pytest.mark.parametrize("common, own", [(42, 20), (72, 16), (100, 10)])  # J = 0.5, 0.65, 0.8 (about)
def test_collision_rate_follows_the_documented_curve(common: int, own: int) -> None:
    rng = random.Random(common)
    n = 400
    pairs = [_pair(rng, common, own) for _ in range(n)]
    j = _jaccard(*pairs[0])
    assert all(_jaccard(a, b) == j for a, b in pairs[:5])   # J is fixed by the construction
    sig = minhash_signatures([t for p in pairs for t in p])
    keys = band_keys_from_signatures(sig)
    a_sig, b_sig, a_k, b_k = sig[0::2], sig[1::2], keys[0::2], keys[1::2]
    share = (a_k == b_k).any(axis=1)
    # sharing a key is exactly some band of 8 signature values agreeing
    band_eq = (a_sig.reshape(n, 16, 8) == b_sig.reshape(n, 16, 8)).all(axis=2).any(axis=1)
    assert (share == band_eq).all()
    p = 1 - (1 - j ** 8) ** 16
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(share.mean() - p) < 4 * sd + 0.01, (j, share.mean(), p)
    # the MinHash agreement rate is an unbiased estimate of J
    est = np.mean([estimate_jaccard(x, y) for x, y in zip(a_sig, b_sig)])
    assert abs(est - j) < 0.02, (est, j)


def test_documented_curve_values_match_the_formula() -> None:
    """The example values quoted in the module docstring are the formula's values."""
    import re

    import provaudit.fingerprint as fp

    quoted = re.findall(r"(0\.\d+) at J=(0\.\d+)", " ".join(fp.__doc__.split()))
    assert len(quoted) == 3
    for p, j in quoted:
        assert round(1 - (1 - float(j) ** 8) ** 16, 2) == float(p), (p, j)


def test_add_fingerprints_equals_the_per_text_functions_with_repeats() -> None:
    texts = ["alpha beta gamma delta", "Hello", "alpha  beta gamma delta ", "", "Hello", "x y"]
    df = add_fingerprints(pl.DataFrame({"text": texts}))
    assert df["text_hash"].to_list() == [text_hash(t) for t in texts]
    assert df["band_keys"].to_list() == band_keys(texts)
    assert df["band_keys"][0].to_list() == df["band_keys"][2].to_list()  # spacing folds away


def test_dataset_fingerprint_value_is_pinned_under_the_fingerprint_version() -> None:
    """Catalogs store dataset fingerprints (registration, erasure checks): same version, same value."""
    from provaudit.fingerprint import dataset_fingerprint

    df = pl.DataFrame({"schema": ["pairs"] * 3, "role": ["prompt", "chosen", "rejected"],
                       "text": ["Hi there", "Hello! How can I help?", "Go away."],
                       "meta": ["{}", "{}", '{"a": 1}'], "source_row": [0, 0, 0]})
    assert FINGERPRINT_VERSION == "pa-fp-v2"
    assert dataset_fingerprint([df]) == "750a939ad14c446754a2c95de9063948"


@pytest.mark.parametrize("text, shingles", [
    ("", ["\x00"]), ("!!!", ["!!!"]), ("hello", ["hello"]), ("a, b", ["a b"]), ("a b c", ["a b c"]),
    ("one two three four", ["one two three", "two three four"]),
])
def test_reference_shingles_are_word_3grams(text: str, shingles: list[str]) -> None:
    """The string shingles the datasketch baselines in bench/ use: word 3-grams; shorter texts are one shingle."""
    assert _shingles(text) == shingles


def test_band_keys_are_computed_on_the_normalized_text() -> None:
    """NFKC first (documented: shingles of the lowercased normalized text): a ligature or a full-width
    letter gives the keys of its plain form."""
    plain = ["fine tuning data for the model", "ABC full width letters here"]
    compat = ["\ufb01ne tuning data for the model", "\uff21\uff22\uff23 full width letters here"]
    assert band_keys(compat) == band_keys(plain)
    assert minhash_signatures(compat).tolist() == minhash_signatures(plain).tolist()


def test_fingerprint_columns_have_the_documented_types_even_for_an_empty_batch() -> None:
    for df in (pl.DataFrame({"text": ["a b c", "d e"]}), pl.DataFrame({"text": []}, schema={"text": pl.Utf8})):
        out = add_fingerprints(df)
        assert out.schema["text_hash"] == pl.Utf8 and out.schema["band_keys"] == pl.List(pl.UInt64)
        assert out.height == df.height


def test_a_missing_text_is_fingerprinted_as_the_empty_text() -> None:
    from provaudit.fingerprint import shingle_hashes

    out = add_fingerprints(pl.DataFrame({"text": [None, ""]}, schema={"text": pl.Utf8}))
    assert out["text_hash"].to_list() == [text_hash("")] * 2
    assert out["band_keys"][0].to_list() == out["band_keys"][1].to_list() == band_keys([""])[0]
    hashes, offsets = shingle_hashes(pl.Series([None, ""], dtype=pl.Utf8))
    assert offsets.tolist() == [0, 1, 2] and hashes[0] == hashes[1]
