"""Distributional MLE (Liang et al. 2024) on real human and GPT-4 text held out from the reference."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from provaudit.errors import InputError
from provaudit.mixture import MixtureEstimate, MixtureReference, estimate_mixture, fit_reference, mle_alpha

PROPS = [0.0, 0.10, 0.25, 0.50, 0.75, 1.00]


def _texts(path):
    return [json.loads(line)["text"] for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def corpora(fixtures_dir):
    human = _texts(fixtures_dir / "style" / "human.jsonl")
    teacher = _texts(fixtures_dir / "style" / "teacher_gpt4.jsonl")
    # reference = even rows, held-out mixes = odd rows: no text is in both
    return human[0::2], teacher[0::2], human[1::2], teacher[1::2]


@pytest.fixture(scope="module")
def reference(corpora):
    hr, tr, _, _ = corpora
    return fit_reference(hr, tr)


def _mix(human, teacher, prop, n, seed):
    rng = np.random.default_rng(seed)
    k = round(prop * n)
    return [teacher[i] for i in rng.permutation(len(teacher))[:k]] + \
        [human[i] for i in rng.permutation(len(human))[:n - k]]


def test_recovers_known_proportions_on_held_out_text(corpora, reference):
    _, _, hh, th = corpora
    means = []
    for prop in PROPS:
        est = [estimate_mixture(_mix(hh, th, prop, 200, s), reference, n_boot=0).alpha for s in range(5)]
        means.append(float(np.mean(est)))
        assert abs(means[-1] - prop) <= 0.05, (prop, est)
    assert all(b > a for a, b in itertools.pairwise(means)), means


def test_interval_brackets_estimate_and_truth(corpora, reference):
    _, _, hh, th = corpora
    for prop in (0.0, 0.5, 1.0):
        e = estimate_mixture(_mix(hh, th, prop, 200, 11), reference, n_boot=200, seed=0)
        assert isinstance(e, MixtureEstimate) and e.n == 200
        assert 0.0 <= e.ci_low <= e.alpha <= e.ci_high <= 1.0
        assert e.ci_low - 0.03 <= prop <= e.ci_high + 0.03
        assert e.ci_high - e.ci_low < 0.3


def test_vocabulary_is_shared_not_topical(reference):
    assert "the" in reference.vocab and "and" in reference.vocab
    assert len(reference.vocab) >= 100
    assert 0 < reference.calibration["scale"] < 1  # raw ratios are overconfident


def test_save_load_roundtrip_deterministic(tmp_path, corpora, reference):
    _, _, hh, th = corpora
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    reference.save(a)
    MixtureReference.load(a).save(b)
    assert a.read_bytes() == b.read_bytes()
    mix = _mix(hh, th, 0.25, 100, 3)
    e1 = estimate_mixture(mix, reference, n_boot=50, seed=1)
    e2 = estimate_mixture(mix, MixtureReference.load(a), n_boot=50, seed=1)
    assert e1.to_dict() == e2.to_dict()


def test_load_rejects_bad_file(tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="ref.json"):
        MixtureReference.load(bad)
    bad.write_text('{"vocab": []}')
    with pytest.raises(InputError, match="format_version"):
        MixtureReference.load(bad)


def test_mle_alpha_edges():
    assert mle_alpha(np.full(50, -5.0))[0] == 0.0
    assert mle_alpha(np.full(50, 5.0))[0] == 1.0
    # half clearly model, half clearly human -> about one half
    assert abs(mle_alpha(np.r_[np.full(50, 8.0), np.full(50, -8.0)])[0] - 0.5) < 0.01


def test_fit_needs_data():
    with pytest.raises(ValueError):
        fit_reference(["a b c"] * 3, ["d e f"] * 3)
    assert np.isnan(estimate_mixture([], fit_reference(["the cat is here"] * 12, ["the dog is there"] * 12)).alpha)
