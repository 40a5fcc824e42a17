"""``summarize_origin`` beyond the counts: the rule set it is given, per-role fractions where both origins
occur, the detector block and corpus estimate of a full-mode table (read from the shipped detector files,
not through the loader), and the word-mixture block (recomputed with ``estimate_mixture`` and a reference
fitted here). Mutants of these lines survived the first mutation run of ``provaudit/origin/tagging.py``."""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from provaudit.origin.detector import DEFAULT_DETECTOR, DEFAULT_FULL_DETECTOR
from provaudit.origin.rules import Rule, RuleSet
from provaudit.origin.tagging import EVIDENCE_DTYPE, _default_rules, summarize_origin

_SYL = [c + v for c in "bdklmn" for v in "aeiou"]
WORDS = [a + b + c for a in _SYL[:10] for b in _SYL[10:20] for c in _SYL[20:]][:300]  # 300 made-up words


def _table(origin: list[str], p: list[float], *, role: list[str | None] | None = None, lm: list[bool] | None = None,
           n_words: int = 60, text: list[str | None] | None = None, fired: list[list[str]] | None = None) -> pl.DataFrame:
    n = len(origin)
    lm = lm or [False] * n
    fired = fired or [[] for _ in range(n)]
    ev = pl.Series("evidence", [{"abstain": None, "features": [], "n_words": n_words, "p_detector": p[i],
                                 "rules": fired[i], "lm": lm[i]} for i in range(n)], dtype=EVIDENCE_DTYPE)
    cols = {"record_id": [f"r{i}" for i in range(n)], "role": role or ["response"] * n, "origin": origin,
            "p_model": p, "rules_fired": fired}
    if text is not None:
        cols["text"] = text
    return pl.DataFrame(cols, schema_overrides={"role": pl.Utf8, "origin": pl.Utf8, "p_model": pl.Float64,
                                                "rules_fired": pl.List(pl.Utf8), "text": pl.Utf8}
                        ).with_columns(ev)


def _shipped(path) -> dict:
    return json.loads((path / "detector.json").read_text())


def test_the_given_rule_set_names_the_counted_rules() -> None:
    own = RuleSet([Rule(id=i, kind="content", description="", weight=1.0, match={"regex": "zzz"}, roles=("response",))
                   for i in ("mine.a", "mine.b")])
    assert not set(own.ids) & set(_default_rules().ids)
    s = summarize_origin(_table(["model", "human", "unknown"], [0.9, 0.1, 0.5],
                                fired=[["mine.a"], [], ["mine.a"]]), n_boot=0, rules=own)
    assert s["rule_counts"] == {"mine.a": 2, "mine.b": 0}


@pytest.mark.parametrize(("m", "h"), [(2, 2), (1, 3), (3, 1)])
def test_a_role_with_both_origins_has_its_own_model_fraction(m: int, h: int) -> None:
    origin = ["model"] * m + ["human"] * h + ["unknown"]
    p = [0.9] * m + [0.1] * h + [0.5]
    s = summarize_origin(_table(origin, p, role=["chosen"] * len(origin)), n_boot=0)
    assert s["by_role"]["chosen"]["model_fraction"] == round(m / (m + h), 4)
    assert s["by_role"]["chosen"]["unknown"] == 1


def test_a_full_mode_table_reports_the_full_detector_and_estimates_over_lm_scored_records() -> None:
    full, fast = _shipped(DEFAULT_FULL_DETECTOR), _shipped(DEFAULT_DETECTOR)
    assert round(full["threshold_model"], 4) != round(fast["threshold_model"], 4)
    n = 12
    lm = [i % 3 != 0 for i in range(n)]                       # 8 records the language model scored
    p = [0.95 if i % 2 else 0.05 for i in range(n)]
    s = summarize_origin(_table(["model" if x > 0.5 else "human" for x in p], p, lm=lm), n_boot=0)
    assert s["detector"] == {"threshold_model": round(full["threshold_model"], 4),
                             "threshold_human": round(full["threshold_human"], 4),
                             "nominal_fpr": full["meta"].get("nominal_fpr"), "min_words": full["min_words"],
                             "mode": "full"}
    assert s["corpus_estimate"]["n"] == sum(lm)
    # the same table without a record the LM scored: the fast detector, every record
    s = summarize_origin(_table(["model" if x > 0.5 else "human" for x in p], p), n_boot=0)
    assert s["detector"]["mode"] == "fast" and s["detector"]["threshold_model"] == round(fast["threshold_model"], 4)
    assert s["corpus_estimate"]["n"] == n


def _sentences(rng: np.random.Generator, vocab: list[str], k: int) -> str:
    return ". ".join(" ".join(rng.choice(vocab, 8)) for _ in range(k)) + "."


def test_the_word_mixture_block_is_the_estimate_against_the_given_reference() -> None:
    from provaudit.mixture import estimate_mixture, fit_reference

    rng = np.random.default_rng(3)
    human_v, model_v = WORDS[:180], WORDS[120:]  # 60 shared
    ref = fit_reference([_sentences(rng, human_v, 4) for _ in range(60)],
                        [_sentences(rng, model_v, 4) for _ in range(60)], min_df=0.02, calibrate=False)
    texts = [_sentences(rng, model_v if i < 9 else human_v, 3) for i in range(30)] + [None]
    tab = _table(["unknown"] * 31, [0.5] * 31, text=texts)
    s = summarize_origin(tab, reference=ref, n_boot=60, seed=7)
    want = estimate_mixture([t or "" for t in texts], ref, n_boot=60, seed=7).to_dict()
    wm = s["word_mixture"]
    assert {k: wm[k] for k in want} == want and isinstance(wm["n"], int) and wm["n"] == 31
    assert 0.1 < wm["alpha"] < 0.5  # 9 of 30 texts from the model side
    assert wm["method"] == "liang2024_mle" and wm["note"].startswith("for comparison only: collapses toward 1")
    assert wm["note"].endswith("the reference never saw (bench/origin.py corpus-estimate table)")
    assert json.dumps(wm, sort_keys=True) == json.dumps(s["word_mixture"], sort_keys=True)
    # the seed and the number of resamples reach the bootstrap: other values, another interval
    other = summarize_origin(tab, reference=ref, n_boot=60, seed=8)["word_mixture"]
    fewer = summarize_origin(tab, reference=ref, n_boot=200, seed=7)["word_mixture"]
    assert (other["ci_low"], other["ci_high"]) != (wm["ci_low"], wm["ci_high"])
    assert (fewer["ci_low"], fewer["ci_high"]) != (wm["ci_low"], wm["ci_high"])
    # the default reference is another one: another estimate on the same texts
    default = summarize_origin(tab, n_boot=60, seed=7)["word_mixture"]
    assert not math.isclose(default["alpha"], wm["alpha"], abs_tol=1e-4)
    assert summarize_origin(tab.drop("text"), n_boot=0)["word_mixture"] is None
    # the defaults are 200 resamples and seed 0
    dflt = summarize_origin(tab, reference=ref)["word_mixture"]
    assert {k: dflt[k] for k in want} == estimate_mixture([t or "" for t in texts], ref, n_boot=200, seed=0).to_dict()
    for n_boot, seed in ((201, 0), (200, 1)):
        moved = estimate_mixture([t or "" for t in texts], ref, n_boot=n_boot, seed=seed).to_dict()
        assert (moved["ci_low"], moved["ci_high"]) != (dflt["ci_low"], dflt["ci_high"]), (n_boot, seed)
