"""Teacher convergence per batch (provaudit.style.converge) pinned to its definitions.

A real teacher model is fitted once on fixture text (GPT-4 answers and human answers); every number a
batch report gives is then recomputed here from the model's own parts and the documented definitions:
teacher-likeness is the mean per-text P(teacher | text) with a seeded percentile document bootstrap
(the interval always holding the point), each position is d_human / (d_teacher + d_human) (0 = at the
human reference, 1 = at the teacher), the embedding side compares the batch's unit centroid with the
references' by cosine, and phrases are read relative to the teacher's own rate.
"""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

from provaudit.mixture import estimate_mixture
from provaudit.style.features import FORMAT_FEATURES, format_features
from provaudit.style.teacher import get_teacher_model

cv = importlib.import_module("provaudit.style.converge")


def _texts(path) -> list[str]:
    return [json.loads(line)["text"] for line in open(path, encoding="utf-8")]


@pytest.fixture(scope="module")
def world(fixtures_dir):
    d = fixtures_dir / "style"
    human, teacher = _texts(d / "human.jsonl"), _texts(d / "teacher_gpt4.jsonl")
    model = get_teacher_model(teacher[0:80:2], human[0:80:2])
    return {"model": model, "teacher": teacher[0:80:2], "human": human[0:80:2],
            "batch": teacher[1:30:2] + human[1:20:2]}


def test_r_and_position_by_hand() -> None:
    assert cv._r(0.123456) == 0.1235 and cv._r(0.123456, 2) == 0.12
    assert cv._r(None) is None and cv._r(float("nan")) is None and cv._r(float("inf")) is None
    assert cv._position(1.0, 3.0) == 0.75 and cv._position(2.0, 0.0) == 0.0 and cv._position(0.0, 2.0) == 1.0
    assert cv._position(0.0, 0.0) == 0.5 and cv._position(-1.0, 0.5) == 0.5  # no distance at all: halfway


def test_batch_measures_follow_their_definitions(world) -> None:
    model, texts = world["model"], world["batch"]
    res = cv.batch_teacher(texts + ["", "   ", None], model, name="b1", n_boot=50, seed=3, ci=0.9)
    n = len(texts)
    assert res["batch"] == "b1" and res["n"] == n  # blanks and non-texts dropped
    lr = model.log_ratio(texts)
    score = 1 / (1 + np.exp(-lr))
    mean = float(score.mean())
    assert res["teacher_likeness"] == round(mean, 4)
    # the seeded percentile bootstrap over documents, 5% in each tail at ci 0.9
    boots = score[np.random.default_rng(3).integers(0, n, size=(50, n))].mean(axis=1)
    lo, hi = np.quantile(boots, [0.05, 0.95])
    assert (res["ci_low"], res["ci_high"]) == (round(min(lo, mean), 4), round(max(hi, mean), 4))
    assert res["ci_low"] < res["teacher_likeness"] < res["ci_high"]
    frac = model.fraction(lr, n_boot=50, seed=3, ci=0.9)
    assert res["teacher_fraction"] == {"alpha": round(frac[0], 4), "ci_low": round(frac[1], 4),
                                       "ci_high": round(frac[2], 4)}
    word = estimate_mixture(texts, model.word_reference, n_boot=50, seed=3, ci=0.9).to_dict()
    assert res["word_mixture"] == word
    parts = model.parts
    z = parts.delta.z(texts)
    d_t, d_h = float(np.mean(np.abs(z - parts.z_teacher))), float(np.mean(np.abs(z - parts.z_human)))
    sty = res["stylometry"]
    assert (sty["delta_to_teacher"], sty["delta_to_human"]) == (round(d_t, 4), round(d_h, 4))
    assert sty["position"] == round(d_h / (d_t + d_h), 4)
    fmt, fmt_t, fmt_h = (format_features(x).mean(axis=0) for x in (texts, model.teacher_texts, model.human_texts))
    assert sty["formatting"] == {k: {"batch": round(float(fmt[i]), 4), "teacher": round(float(fmt_t[i]), 4),
                                     "human": round(float(fmt_h[i]), 4)} for i, k in enumerate(FORMAT_FEATURES)}
    from provaudit.embed import encode

    c = encode(texts).mean(axis=0)
    c = c / np.linalg.norm(c)
    cos_t, cos_h = float(c @ parts.c_teacher), float(c @ parts.c_human)
    emb = res["embedding"]
    assert emb == {"backend": "static", "cos_to_teacher": round(cos_t, 4), "cos_to_human": round(cos_h, 4),
                   "position": round((1 - cos_h) / ((1 - cos_t) + (1 - cos_h)), 4)}
    ph = res["phrases"]
    rate, t_rate = parts.phrases.rate(texts), parts.phrases.teacher_rate
    assert ph["rate_per_1k_words"] == round(rate, 4) and ph["teacher_rate_per_1k_words"] == round(t_rate, 4)
    assert ph["human_rate_per_1k_words"] == round(parts.phrases.human_rate, 4)
    assert ph["relative_to_teacher"] == round(rate / t_rate, 4) and t_rate > 0
    assert ph["n_phrases"] == len(parts.phrases.phrases) and ph["examples"] == parts.phrases.phrases[:10]


def test_teacher_text_sits_nearer_the_teacher_than_human_text(world) -> None:
    model = world["model"]
    t = cv.batch_teacher(world["batch"][:15], model, n_boot=0)
    h = cv.batch_teacher(world["batch"][15:], model, n_boot=0)
    assert t["teacher_likeness"] > h["teacher_likeness"]
    assert t["stylometry"]["position"] > h["stylometry"]["position"]
    assert t["embedding"]["position"] > h["embedding"]["position"]
    # no bootstrap: the interval is the point
    assert t["ci_low"] == t["teacher_likeness"] == t["ci_high"]
    assert t["teacher_fraction"]["ci_low"] == t["teacher_fraction"]["alpha"] == t["teacher_fraction"]["ci_high"]


def test_defaults_and_an_empty_batch(world) -> None:
    model, texts = world["model"], world["batch"]
    default = cv.batch_teacher(texts, model)
    explicit = cv.batch_teacher(texts, model, name="batch", n_boot=200, seed=0, ci=0.95)
    assert default == explicit and default["batch"] == "batch"
    assert cv.batch_teacher(texts, model, seed=1) != default  # the seed reaches the bootstraps
    assert cv.batch_teacher(["", None, "  "], model, name="e") == {"batch": "e", "n": 0, "teacher_likeness": None,
                                                                   "ci_low": None, "ci_high": None}


def test_converge_scores_each_batch_in_order_under_its_name(world) -> None:
    a, b = world["batch"][:15], world["batch"][15:]
    out = cv.converge([a, b], world["teacher"], world["human"], n_boot=20, seed=2, names=["first", "second"])
    model = get_teacher_model(world["teacher"], world["human"], seed=2)  # the seed fits the model too
    want = [dict(cv.batch_teacher(x, model, name=nm, n_boot=20, seed=2), index=i)
            for i, (x, nm) in enumerate(((a, "first"), (b, "second")))]
    assert out == want
    unnamed = cv.converge([b], world["teacher"], world["human"], n_boot=0)
    assert unnamed == [dict(cv.batch_teacher(b, world["model"], name="batch0", n_boot=0), index=0)]


def test_teacher_summary_says_where_its_human_reference_came_from(world) -> None:
    s = cv.teacher_summary(world["batch"], world["teacher"], world["human"], n_boot=10)
    assert "batch" not in s and s["n"] == len(world["batch"])
    assert s["reference"] == {"n_teacher": 40, "n_human": 40, "human": "given",
                              "weights": get_teacher_model(world["teacher"], world["human"]).weights()}
    from provaudit.style.diversity import diversity as div

    assert s["diversity"] == div(world["batch"], world["human"])
    assert "label_origin" not in s


def test_teacher_summary_without_a_human_reference_uses_the_shipped_one(world, monkeypatch) -> None:
    from provaudit.style import teacher

    # the shipped reference stood in for by the world's human texts (the model fitted on them is cached)
    monkeypatch.setattr(teacher, "default_human_texts", lambda: list(world["human"]))
    s = cv.teacher_summary(world["batch"], world["teacher"], n_boot=0)
    assert s["reference"]["human"] == "shipped default" and s["reference"]["n_human"] == len(world["human"])
    from provaudit.style.diversity import diversity as div

    assert s["diversity"] == div(world["batch"], world["human"])


def test_teacher_summary_passes_its_seed_and_resamples_on(world) -> None:
    s = cv.teacher_summary(world["batch"], world["teacher"], world["human"], seed=5, n_boot=30)
    want = cv.batch_teacher(world["batch"], get_teacher_model(world["teacher"], world["human"], seed=5),
                            n_boot=30, seed=5)
    want.pop("batch")
    assert {k: s[k] for k in want} == want
    assert cv.teacher_summary(world["batch"], world["teacher"], world["human"])["ci_low"] == cv.batch_teacher(
        world["batch"], world["model"], n_boot=200, seed=0)["ci_low"]  # defaults: 200 resamples, seed 0


def test_teacher_summary_label_origin_block_is_the_label_origin_verdict(world, monkeypatch) -> None:
    """The gate reads teacher.label_origin.ai_evidence_net (rules/gate.yaml): AI minus human evidence, from
    label_origin called on the scan's pairs with the same references, backend and seed (its real verdicts on
    real pairs: test_style_teacher.py)."""
    from provaudit.errors import InputError
    from provaudit.style import labels

    calls = []
    verdict = {"verdict": "AI-judge-like", "ai_evidence": 3, "human_evidence": 1, "evidence": [{"signal": "x"}],
               "measures": {"m": 0.5}, "not_computed": ["timing"], "batch": "scan", "extra": 1}
    monkeypatch.setattr(labels, "label_origin", lambda *a, **k: calls.append((a, k)) or verdict)
    pairs = object()
    s = cv.teacher_summary(world["batch"], world["teacher"], world["human"], seed=4, n_boot=0, pairs=pairs,
                           backend="static")
    assert calls == [((pairs, world["teacher"], world["human"]), {"backend": "static", "seed": 4, "name": "scan"})]
    assert s["label_origin"] == {"verdict": "AI-judge-like", "ai_evidence": 3, "human_evidence": 1,
                                 "ai_evidence_net": 2, "evidence": [{"signal": "x"}], "measures": {"m": 0.5},
                                 "not_computed": ["timing"]}

    def no_pairs(*a, **k):
        raise InputError("no preference pairs here", field="chosen")

    monkeypatch.setattr(labels, "label_origin", no_pairs)
    s2 = cv.teacher_summary(world["batch"], world["teacher"], world["human"], n_boot=0, pairs=pairs)
    assert s2["label_origin"] == {"verdict": "unknown", "note": "no preference pairs here"}


def test_converge_names_its_steps_and_its_inputs(world, monkeypatch) -> None:
    from provaudit import progress
    from provaudit.errors import InputError

    steps = []
    monkeypatch.setattr(progress, "step", steps.append)
    a, b = world["batch"][:15], world["batch"][15:]
    out = cv.converge([a, b], world["teacher"], world["human"], n_boot=10, ci=0.8, names=["first", "second"])
    assert steps == ["reading the teacher and human references", "fitting the teacher model (static embeddings)",
                     "scoring batch first (1/2)", "scoring batch second (2/2)"]
    assert out[1] == dict(cv.batch_teacher(b, world["model"], name="second", n_boot=10, ci=0.8), index=1)
    assert cv.converge([b], world["teacher"], world["human"], n_boot=0) == cv.converge(
        [b], world["teacher"], world["human"], n_boot=0, ci=0.95, seed=0)
    # a bad input is named in its one-line error
    for args, what in ((([a], [1, 2], world["human"]), "teacher reference item 0"),
                       (([a], world["teacher"], ["x", 3]), "human reference item 1"),
                       (([a, [None]], world["teacher"], world["human"]), "batch batch1 item 0")):
        with pytest.raises(InputError, match=what):
            cv.converge(*args, n_boot=0)
    with pytest.raises(InputError, match="teacher reference item 0"):
        cv.teacher_summary(a, [1], world["human"])
    with pytest.raises(InputError, match="human reference item 0"):
        cv.teacher_summary(a, world["teacher"], [None])


def test_the_backend_reaches_every_embedding(world, monkeypatch) -> None:
    """The model's, or the caller's, embedding backend is the one every step uses (recorded here: the real
    encoder runs the static backend, so no other model is loaded)."""
    import copy

    from provaudit.embed import encode

    asked = []
    monkeypatch.setattr(cv, "encode", lambda texts, backend="static": asked.append(backend) or encode(texts))
    other = copy.copy(world["model"])
    other.backend = "minilm"
    cv.batch_teacher(world["batch"], other, n_boot=0)
    assert asked == ["minilm"]
    fitted = []
    monkeypatch.setattr(cv, "get_teacher_model", lambda t, h, backend="static", seed=0: fitted.append(
        (backend, seed)) or world["model"])
    dv = importlib.import_module("provaudit.style.diversity")
    div_backends = []
    monkeypatch.setattr(dv, "diversity", lambda texts, human, backend="static", seed=0: div_backends.append(backend)
                        or {"n": len(texts)})
    cv.converge([world["batch"]], world["teacher"], world["human"], backend="minilm", n_boot=0, seed=3)
    cv.teacher_summary(world["batch"], world["teacher"], world["human"], backend="minilm", n_boot=0, seed=3)
    assert fitted == [("minilm", 3), ("minilm", 3)] and div_backends == ["minilm"]


def test_phrase_rate_relative_to_the_teacher_and_a_single_resample(world) -> None:
    import copy

    texts = world["batch"]
    low = copy.copy(world["model"])
    low.parts = copy.copy(world["model"].parts)
    low.parts.phrases = copy.copy(world["model"].parts.phrases)
    rate = world["model"].parts.phrases.rate(texts)
    low.parts.phrases.teacher_rate = 0.5
    assert cv.batch_teacher(texts, low, n_boot=0)["phrases"]["relative_to_teacher"] == round(rate / 0.5, 4)
    low.parts.phrases.teacher_rate = 0.0  # a teacher without over-used phrases: no ratio
    assert cv.batch_teacher(texts, low, n_boot=0)["phrases"]["relative_to_teacher"] is None
    # one resample is a bootstrap too: the interval spans the point and that resample's mean
    one = cv.batch_teacher(texts, world["model"], n_boot=1, seed=2)
    assert one["ci_low"] < one["ci_high"] and one["teacher_likeness"] in (one["ci_low"], one["ci_high"])


def test_two_hundred_resamples_by_default(world) -> None:
    texts, model = world["batch"], world["model"]
    d = cv.converge([texts], world["teacher"], world["human"])
    assert d == [dict(cv.batch_teacher(texts, model, name="batch0", n_boot=200), index=0)]
    assert d != [dict(cv.batch_teacher(texts, model, name="batch0", n_boot=201), index=0)]
    s = cv.teacher_summary(texts, world["teacher"], world["human"])
    keys = [k for k in d[0] if k not in ("batch", "index")]
    assert {k: s[k] for k in keys} == {k: d[0][k] for k in keys}
