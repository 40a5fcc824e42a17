"""The language model's per-text features (``provaudit.origin.lm._token_stats``) against their definitions, on
synthetic logits: no model is loaded, so every statistic is checked exactly where it is defined, in float64
numpy, for rows that span the 64-position chunks, an empty row, and the two ratio guards.

Per real (masked) position: the log-probability of the actual next token, the entropy ``-sum p log p``, the
variance of ``log p`` under the model, and the log-rank ``ln(1 + #tokens ranked above the actual one)``; per
text: the mean, standard deviation and 10/25/50/75th percentiles of the log-probabilities, the mean log-rank, the
mean entropy, Fast-DetectGPT's analytic criterion ``(sum ll + sum entropy) / sqrt(sum variance)``, the
ratios ``-mean ll / mean entropy`` and ``-mean ll / mean log-rank`` (denominators at least 1e-6), and the number of
tokens (docs/origin.md, "Scoring").
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
#: imports torch: runs on the worker that loads the models anyway (conftest)
pytestmark = pytest.mark.torch_models

from provaudit.origin.lm import LM_FEATURES, STAT_ROWS, _token_stats


def _reference(logits: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows = np.zeros((mask.shape[0], len(LM_FEATURES)))
    for r in range(mask.shape[0]):
        pos = np.flatnonzero(mask[r])
        if not pos.size:
            continue
        z = logits[r, pos].astype(np.float64)
        lp = z - z.max(axis=1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
        ll = lp[np.arange(pos.size), target[r, pos]]
        p = np.exp(lp)
        ent = -(p * lp).sum(axis=1)
        var = np.maximum((p * lp * lp).sum(axis=1) - ent ** 2, 0.0)
        logrank = np.log1p((lp > ll[:, None]).sum(axis=1))
        q = np.quantile(ll, [0.10, 0.25, 0.50, 0.75])
        fdg = (ll.sum() + ent.sum()) / np.sqrt(max(var.sum(), 1e-12))
        rows[r] = [ll.mean(), ll.std(), *q, logrank.mean(), ent.mean(), fdg, -ll.mean() / max(ent.mean(), 1e-6),
                   -ll.mean() / max(logrank.mean(), 1e-6), pos.size]
    return rows


def _batch(lengths: list[int], width: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (len(lengths), width, vocab)).astype(np.float32)
    target = rng.integers(0, vocab, (len(lengths), width))
    mask = np.zeros((len(lengths), width), dtype=bool)
    for r, n in enumerate(lengths):
        mask[r, :n] = True
    return logits, target, mask


def _run(logits, target, mask) -> np.ndarray:
    return _token_stats(torch.from_numpy(logits), torch.from_numpy(target), torch.from_numpy(mask))


def test_every_feature_is_its_definition_across_chunks_and_rows() -> None:
    # 70 + 0 + 60 + 1 real positions: the 64-position chunks of the flattened positions split the first text,
    # and there are more than two chunks
    logits, target, mask = _batch([70, 0, 60, 1], width=70, vocab=50)
    assert mask.sum() > 2 * STAT_ROWS and 70 > STAT_ROWS
    got = _run(logits, target, mask)
    want = _reference(logits, target, mask)
    assert got.shape == (4, len(LM_FEATURES)) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert got[1].tolist() == [0.0] * len(LM_FEATURES)  # a text with no token pair: a row of zeros
    assert got[:, -1].tolist() == [70.0, 0.0, 60.0, 1.0]
    # each row depends only on its own positions: the same text alone gives the same features
    alone = _run(logits[2:3], target[2:3], mask[2:3])
    np.testing.assert_allclose(alone[0], got[2], rtol=1e-6, atol=1e-6)


def test_a_padded_mask_and_the_ratio_guards() -> None:
    # the model is sure of every actual token: nothing ranks above it (log-rank 0, guarded by 1e-6)
    vocab, n = 20, 6
    logits = np.zeros((2, 8, vocab), dtype=np.float32)
    target = np.zeros((2, 8), dtype=np.int64)
    for t in range(8):
        target[:, t] = t % vocab
        logits[:, t, t % vocab] = 8.0
    mask = np.zeros((2, 8), dtype=bool)
    mask[0, :n] = True
    mask[1, 2:5] = True  # positions need not start at 0
    got = _run(logits, target, mask)
    want = _reference(logits, target, mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got[0, LM_FEATURES.index("lm_logrank_mean")] == 0.0
    mean_ll = want[0, 0]
    assert got[0, LM_FEATURES.index("lm_ll_logrank_ratio")] == pytest.approx(-mean_ll / 1e-6, rel=1e-5)
    assert got[:, -1].tolist() == [6.0, 3.0]
    # surer still (a margin of 12): the variance of log p sums to under 1, so the criterion divides by its root
    sure = logits * 1.5
    got = _run(sure, target, mask)
    want = _reference(sure, target, mask)
    fdg = LM_FEATURES.index("lm_fdg")  # (the log-probabilities near 0 carry float32's error into the ratios)
    np.testing.assert_allclose(got[:, fdg], want[:, fdg], rtol=1e-3)
    p_other = np.exp(-12.0) / (1 + (vocab - 1) * np.exp(-12.0))
    assert (vocab - 1) * p_other * 12.0 ** 2 * 3 < 1  # the summed variance of the second text, roughly
    # a flat distribution: every token ties with the actual one (none strictly above), entropy ln V, variance 0
    flat = np.zeros((1, 3, vocab), dtype=np.float32)
    got = _run(flat, np.zeros((1, 3), dtype=np.int64), np.ones((1, 3), dtype=bool))[0]
    assert got[LM_FEATURES.index("lm_logrank_mean")] == 0.0
    assert got[LM_FEATURES.index("lm_entropy_mean")] == pytest.approx(np.log(vocab), rel=1e-6)
    assert got[LM_FEATURES.index("lm_ll_mean")] == pytest.approx(-np.log(vocab), rel=1e-6)
    assert got[LM_FEATURES.index("lm_ll_sd")] == pytest.approx(0.0, abs=1e-6)
    assert got[LM_FEATURES.index("lm_ll_entropy_ratio")] == pytest.approx(1.0, rel=1e-6)
