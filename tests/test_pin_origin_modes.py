"""``tag_origin``'s dispatch between the fast and the full (language-model) detector, and its argument errors,
pinned without running the language model: ``_tag_full`` and ``lm_available`` are replaced by recorders (the
model itself is pinned in test_origin_lm.py). Mutants of these lines survived the first mutation run."""
from __future__ import annotations

import polars as pl
import pytest

import provaudit.origin.lm as lm_mod
from provaudit.errors import InputError, UsageError
from provaudit.origin import tagging
from provaudit.origin.detector import load_detector

BATCH = pl.DataFrame({"record_id": ["a", "b"], "role": ["response", "response"],
                      "text": ["one two three four five", "six seven eight nine ten eleven"]})


@pytest.fixture()
def recorder(monkeypatch):
    calls: list[tuple] = []

    def fake_full(records, rules, full, fast, device, progress):
        calls.append((full, fast, device, progress, rules))
        return records

    monkeypatch.setattr(tagging, "_tag_full", fake_full)
    return calls


def test_full_mode_with_the_language_model_goes_to_the_full_path_with_both_detectors(recorder, monkeypatch) -> None:
    monkeypatch.setattr(lm_mod, "lm_available", lambda: True)
    tick = print
    assert tagging.tag_origin(BATCH, mode="full", progress=tick) is BATCH
    full, fast = load_detector(mode="full"), load_detector()
    assert recorder == [(full, fast, "cpu", tick, None)]                   # device defaults to "cpu"
    recorder.clear()
    rules = tagging._default_rules()
    tagging.tag_origin(BATCH, mode="full", device="cuda:1", detector=full, rules=rules)
    assert recorder == [(full, fast, "cuda:1", None, rules)]   # a given full detector and rule set are used
    assert recorder[0][4] is rules


def test_full_mode_falls_back_to_the_fast_detector(recorder, monkeypatch, capsys) -> None:
    fast_tags = tagging.tag_origin(BATCH, mode="fast")
    # a fast detector given in full mode: the fast path, no language model asked for
    monkeypatch.setattr(lm_mod, "lm_available", lambda: pytest.fail("the LM must not be looked for"))
    out = tagging.tag_origin(BATCH, mode="full", detector=load_detector())
    assert recorder == [] and out.equals(fast_tags)
    # the language model not installed: the fast path, and the notice
    monkeypatch.setattr(lm_mod, "lm_available", lambda: False)
    monkeypatch.setattr(lm_mod, "_NOTICE_SHOWN", False)
    out = tagging.tag_origin(BATCH, mode="full")
    assert recorder == [] and out.equals(fast_tags) and capsys.readouterr().err.strip()
    # sampled tags like fast
    assert tagging.tag_origin(BATCH, mode="sampled").equals(fast_tags) and recorder == []


def test_argument_errors_are_exact() -> None:
    with pytest.raises(UsageError) as e:
        tagging.tag_origin(BATCH, mode="slow")
    assert str(e.value) == f"origin mode must be one of {list(tagging.MODES)}, not 'slow'"
    with pytest.raises(InputError) as e:
        tagging.tag_origin(BATCH.drop("text"))
    assert (str(e.value), e.value.field) == ("field 'text': record batch has no 'text' column", "text")
    with pytest.raises(UsageError) as e:
        tagging.tag_origin(BATCH, mode="fast", detector=load_detector(mode="full"))
    assert str(e.value) == "this detector needs the language-model features: use origin mode 'full'"
    with pytest.raises(InputError) as e:
        tagging.summarize_origin(pl.DataFrame({"origin": ["human"], "p_model": [0.1]}))
    assert str(e.value) == "field 'rules_fired': table is not origin-tagged (run tag_origin first)"
