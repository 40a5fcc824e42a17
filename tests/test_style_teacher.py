"""Teacher-likeness per text and per batch on real GPT-4, human and open-model text."""
from __future__ import annotations

import itertools
import json

import numpy as np
import polars as pl
import pytest

from provaudit.errors import InputError
from provaudit.style import converge, diversity, teacher_similarity, teacher_summary
from provaudit.style.teacher import get_teacher_model

PROPS = [0.0, 0.10, 0.25, 0.50, 0.75, 1.00]


def _texts(path):
    return [json.loads(line)["text"] for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def refs(fixtures_dir):
    d = fixtures_dir / "style"
    human, teacher = _texts(d / "human.jsonl"), _texts(d / "teacher_gpt4.jsonl")
    return {"hr": human[0::2], "tr": teacher[0::2], "hh": human[1::2], "th": teacher[1::2], "dir": d}


def _mix(human, teacher, prop, n, seed):
    rng = np.random.default_rng(seed)
    k = round(prop * n)
    return [teacher[i] for i in rng.permutation(len(teacher))[:k]] + \
        [human[i] for i in rng.permutation(len(human))[:n - k]]


def test_per_text_scores_separate_held_out_teacher_from_human(refs):
    s_t = teacher_similarity(refs["th"][:60], refs["tr"], refs["hr"])
    s_h = teacher_similarity(refs["hh"][:60], refs["tr"], refs["hr"])
    assert s_t.shape == (60,) and ((0 <= s_t) & (s_t <= 1)).all()
    # AUC of held-out teacher vs held-out human
    auc = (s_t[:, None] > s_h[None, :]).mean()
    assert auc > 0.95, auc


def test_known_mixes_monotone_score_and_fraction_within_5_points(refs):
    batches = [_mix(refs["hh"], refs["th"], p, 200, 7) for p in PROPS]
    res = converge(batches, refs["tr"], refs["hr"], n_boot=100, names=[f"p{int(p * 100)}" for p in PROPS])
    scores = [r["teacher_likeness"] for r in res]
    assert all(b > a for a, b in itertools.pairwise(scores)), scores
    for p, r in zip(PROPS, res):
        assert abs(r["teacher_fraction"]["alpha"] - p) <= 0.05, (p, r["teacher_fraction"])
        assert r["ci_low"] <= r["teacher_likeness"] <= r["ci_high"]
        for key in ("word_mixture", "stylometry", "embedding", "phrases"):
            assert key in r
    # the components agree in direction between the pure ends
    lo, hi = res[0], res[-1]
    assert hi["stylometry"]["position"] > lo["stylometry"]["position"]
    assert hi["embedding"]["position"] > lo["embedding"]["position"]
    assert hi["phrases"]["relative_to_teacher"] > 2 * lo["phrases"]["relative_to_teacher"]


def test_distilled_model_more_teacher_like_than_human_data_control(refs):
    d = refs["dir"]
    vic, oas = converge([d / "vicuna-13b.jsonl", d / "oasst-sft-pythia-12b.jsonl"], d / "teacher_gpt4.jsonl",
                        n_boot=200)
    assert vic["batch"] == "vicuna-13b" and vic["n"] == 150
    assert vic["teacher_likeness"] > oas["teacher_likeness"]


def test_deterministic_json(refs):
    batch = _mix(refs["hh"], refs["th"], 0.3, 60, 1)
    a = json.dumps(converge([batch], refs["tr"], refs["hr"], n_boot=50), sort_keys=True)
    b = json.dumps(converge([list(batch)], list(refs["tr"]), list(refs["hr"]), n_boot=50), sort_keys=True)
    assert a == b


def test_inputs_dataframe_and_errors(refs, tmp_path):
    df = pl.DataFrame({"text": refs["th"][:30]})
    (r,) = converge([df], refs["tr"], refs["hr"], n_boot=20)
    assert r["n"] == 30
    with pytest.raises(InputError, match="missing.jsonl"):
        converge([tmp_path / "missing.jsonl"], refs["tr"], refs["hr"])
    with pytest.raises(InputError, match="item 1"):
        converge([["ok", 3]], refs["tr"], refs["hr"])
    with pytest.raises(ValueError, match="at least 20"):
        get_teacher_model(refs["tr"][:5], refs["hr"])


def test_teacher_summary_json_ready(refs):
    s = teacher_summary(refs["th"][:40], refs["tr"], refs["hr"], seed=0, n_boot=50)
    json.dumps(s)  # JSON-ready
    assert s["n"] == 40 and s["teacher_likeness"] > 0.7
    assert s["diversity"]["n"] == 40 and "diversity_floor_ratio" in s["diversity"]
    assert "label_origin" not in s


def test_teacher_summary_with_pairs(refs):
    from provaudit.io import read_table

    table = read_table(refs["dir"] / "alpaca_eval_gpt4_annotations.json")
    texts = table.filter(table["role"].is_in(["chosen", "rejected"]))["text"].to_list()
    s = teacher_summary(texts, refs["tr"], refs["hr"], n_boot=20, pairs=table)
    assert s["label_origin"]["verdict"] == "AI-judge-like" and s["label_origin"]["ai_evidence_net"] >= 2
    json.dumps(s)
    s2 = teacher_summary(refs["th"][:30], refs["tr"], refs["hr"], n_boot=20,
                         pairs=pl.DataFrame({"text": refs["th"][:30]}))
    assert s2["label_origin"]["verdict"] == "unknown"


def test_diversity_detects_homogenised_batch(refs):
    rng = np.random.default_rng(0)
    varied = [refs["hh"][i] for i in rng.permutation(len(refs["hh"]))[:120]]  # mixed genres
    # a homogenised batch: three teacher answers repeated with small edits
    base = refs["th"][:3]
    homog = [t.replace("the", "this") if i % 2 else t for i, t in enumerate(base * 40)]
    d_var, d_hom = diversity(varied, refs["hr"]), diversity(homog, refs["hr"])
    assert d_hom["compression_ratio"] > d_var["compression_ratio"]
    assert d_hom["ngram_diversity"] < d_var["ngram_diversity"]
    assert d_hom["homogenization"] > d_var["homogenization"]
    assert d_hom["diversity_floor_ratio"] < d_var["diversity_floor_ratio"]


def test_the_text_memo_gives_the_same_counts_and_is_released_after_the_block(fixtures_dir) -> None:
    """Inside ``text_memo()`` each text is counted once (the same phrases, rates and function-word rows as
    without it); nothing stays cached after the block, so a long scan's memory does not grow with it."""
    from provaudit.style import features as F

    texts = _texts(fixtures_dir / "style" / "teacher_gpt4.jsonl")[:60]
    human = _texts(fixtures_dir / "style" / "human.jsonl")[:60]
    plain = F.PhraseSet.fit(texts, human), F.function_word_rates(texts), F.DeltaSpace.fit(texts, human).z(human)
    with F.text_memo():
        memo = F._MEMO.get()
        with F.text_memo():  # nested: the same memo
            assert F._MEMO.get() is memo
        kept = F.PhraseSet.fit(texts, human), F.function_word_rates(texts), F.DeltaSpace.fit(texts, human).z(human)
        assert len(memo["ngrams"]) == len(set(texts) | set(human)) and len(memo["fw"]) == len(set(texts) | set(human))
    assert F._MEMO.get() is None
    assert kept[0] == plain[0] and np.array_equal(kept[1], plain[1]) and np.array_equal(kept[2], plain[2])
