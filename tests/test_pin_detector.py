"""The origin detector's arithmetic and threshold rule, pinned to their documented meaning.

Scoring: signed log1p, standardise, linear score, Platt calibration; contributions sum to the calibrated
log-odds. Thresholds (``fit_detector``): ``threshold_model`` is the (1 - nominal FPR) quantile ("higher") of
the out-of-fold human scores of long texts (all human texts when under 20 are long), raised to each human
domain's (1 - 2 FPR) quantile for domains of 30+ long texts; ``threshold_human`` is the human-miss quantile
of the model texts' scores, never above ``threshold_model``. Expected values are recomputed here with numpy
from the returned out-of-fold probabilities."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from provaudit.errors import InputError
from provaudit.origin.detector import (
    FEATURE_NAMES,
    FULL_FEATURE_NAMES,
    Detector,
    _sigmoid,
    _transform,
    fit_detector,
    load_detector,
    score_metrics,
    tpr_at_fpr,
)


def _det(**kw) -> Detector:
    k = len(FEATURE_NAMES)
    base = {"feature_names": list(FEATURE_NAMES), "mean": np.linspace(-0.5, 0.5, k),
            "scale": np.linspace(0.5, 2.0, k), "coef": np.linspace(1.0, -1.0, k), "intercept": 0.3, "platt_a": 0.8,
            "platt_b": -0.2, "threshold_model": 0.9, "threshold_human": 0.2, "min_words": 50}
    return Detector(**{**base, **kw})


def test_scoring_arithmetic_and_contributions() -> None:
    d = _det()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=(5, len(FEATURE_NAMES)))
    z = (np.sign(x) * np.log(1 + np.abs(x)) - d.mean) / d.scale
    assert _transform(np.array([-math.e + 1, 0.0, math.e - 1])) == pytest.approx([-1.0, 0.0, 1.0])
    assert d.standardized(x) == pytest.approx(z)
    assert d.decision(x) == pytest.approx(z @ d.coef + 0.3)
    assert d.calibrated_logit(x) == pytest.approx(0.8 * (z @ d.coef + 0.3) - 0.2)
    c = d.contributions(x)
    assert c == pytest.approx(z * d.coef * 0.8)
    assert c.sum(1) + 0.8 * 0.3 - 0.2 == pytest.approx(d.calibrated_logit(x))
    assert _sigmoid(np.array([0.0, 2.0, -2.0])) == pytest.approx([0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))])
    # clipped at |z| = 40: finite, no overflow warning, and exactly the value at 40
    assert _sigmoid(np.array([1e6, -1e6])) == pytest.approx([1 / (1 + math.exp(-40)), 1 / (1 + math.exp(40))],
                                                            rel=1e-12)
    assert _sigmoid(np.array([-1e6]))[0] > 0


def test_lm_use_and_error_rates_come_from_the_feature_set_and_training_metrics() -> None:
    assert _det().uses_lm is False
    k = len(FULL_FEATURE_NAMES)
    full = _det(feature_names=list(FULL_FEATURE_NAMES), mean=np.zeros(k), scale=np.ones(k), coef=np.zeros(k))
    assert full.uses_lm is True
    d = _det(meta={"training_metrics": {"tpr_at_threshold": 0.7, "fpr_at_threshold": 0.04}})
    assert d.error_rates == {"tpr": 0.7, "fpr": 0.04}
    assert _det().error_rates == {"tpr": None, "fpr": None}


def test_saved_detector_loads_every_field(tmp_path: Path) -> None:
    d = _det(meta={"note": "x"})
    path = d.save(tmp_path / "det")
    assert path == tmp_path / "det" / "detector.json" and not (tmp_path / "det" / "detector.json.tmp").exists()
    blob = json.loads(path.read_text())
    assert blob["kind"] == "provaudit-origin-detector" and blob["format_version"] == 1
    for target in (tmp_path / "det", path):
        e = Detector.load(target)
        assert (e.intercept, e.platt_a, e.platt_b, e.threshold_model, e.threshold_human, e.min_words) == \
            (0.3, 0.8, -0.2, 0.9, 0.2, 50)
        assert e.mean == pytest.approx(d.mean) and e.scale == pytest.approx(d.scale)
        assert e.coef == pytest.approx(d.coef) and e.meta == {"note": "x"} and e.feature_names == list(FEATURE_NAMES)
    assert load_detector(path) is load_detector(tmp_path / "det" / "detector.json")   # cached per resolved path
    blob["feature_names"] = blob["feature_names"][:-1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(blob))
    with pytest.raises(InputError, match="another feature set") as e:
        Detector.load(bad)
    assert e.value.field == "feature_names"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a detector file"):
        Detector.load(bad)
    bad.write_text("[]")
    with pytest.raises(InputError, match="not a provaudit detector"):
        Detector.load(bad)
    shipped = load_detector()
    assert shipped.feature_names == list(FEATURE_NAMES) and shipped.threshold_human <= shipped.threshold_model


def test_tpr_at_fpr_and_threshold_metrics_by_hand() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.9, 0.25, 0.35, 0.95, 0.9])
    # human (1 - 0.5) quantile, method "higher" (position 1.5 -> 2): 0.3; model scores above it: 0.35, 0.95, 0.9
    assert tpr_at_fpr(y, p, 0.5) == pytest.approx(3 / 4)
    # (1 - 0.25): position 2.25 -> 3: 0.9, and only 0.95 is strictly above (0.9 is not)
    assert tpr_at_fpr(y, p, 0.25) == pytest.approx(1 / 4)
    # (1 - 0.01) quantile "higher": 0.9; only 0.95 is strictly above
    assert tpr_at_fpr(y, p, 0.01) == pytest.approx(1 / 4)
    assert tpr_at_fpr(np.array([1, 1]), np.array([0.3, 0.4]), 0.05) is None
    m = score_metrics(y, p, threshold=0.9)
    assert m["fpr_at_threshold"] == 0.25 and m["tpr_at_threshold"] == 0.5      # >= at the threshold
    assert (m["n_human"], m["n_model"]) == (4, 4)
    assert "fpr_at_threshold" not in score_metrics(y, p)


def _training(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    k = len(FEATURE_NAMES)
    y = np.array([0] * n + [1] * n)
    x = np.abs(rng.normal(size=(2 * n, k)))
    x[:, 0] += 1.2 * y
    x[:, 1] += 0.8 * y
    n_words = rng.integers(10, 200, size=2 * n)
    groups = ["a" if i % 2 == 0 else ("tiny" if i % 10 == 1 else "b") for i in range(2 * n)]
    return x, y, n_words, groups


def test_thresholds_follow_the_rule_on_out_of_fold_scores() -> None:
    x, y, n_words, _ = _training()
    det, p = fit_detector(x, y, n_words=n_words, nominal_fpr=0.05, human_miss=0.10, min_words=50)
    long = n_words >= 50
    assert ((y == 0) & long).sum() >= 20
    t_model = np.quantile(p[(y == 0) & long], 0.95, method="higher")
    assert det.threshold_model == pytest.approx(t_model)
    assert det.meta["pooled_threshold"] == pytest.approx(t_model, abs=1e-6)
    assert det.threshold_human == pytest.approx(min(np.quantile(p[(y == 1) & long], 0.10), t_model))
    assert det.min_words == 50 and det.meta["nominal_fpr"] == 0.05 and det.meta["human_miss_rate"] == 0.10
    assert det.meta["domain_thresholds"] == {} and det.meta["folds"] == 5
    # under 20 long human texts: all human texts count; a human_miss above the model threshold is capped
    few = np.where(y == 0, np.where(np.arange(len(y)) < 10, 100, 10), 100)
    det2, p2 = fit_detector(x, y, n_words=few, min_words=50, human_miss=0.99)
    assert det2.threshold_model == pytest.approx(np.quantile(p2[y == 0], 0.95, method="higher"))
    assert det2.threshold_human == pytest.approx(min(np.quantile(p2[(y == 1) & (few >= 50)], 0.99),
                                                     det2.threshold_model))
    assert det2.threshold_human <= det2.threshold_model
    # no word counts: every text is long
    det3, p3 = fit_detector(x, y)
    assert det3.threshold_model == pytest.approx(np.quantile(p3[y == 0], 0.95, method="higher"))
    with pytest.raises(InputError, match="both human and model"):
        fit_detector(x[:5], np.zeros(5, dtype=int))


def test_each_human_domain_of_30_long_texts_raises_the_threshold_to_its_own_2fpr_quantile() -> None:
    x, y, n_words, groups = _training()
    det, p = fit_detector(x, y, groups=groups, n_words=n_words, nominal_fpr=0.05, min_words=50,
                          domain_holdout_threshold=False)
    g = np.asarray(groups, dtype=object)
    long = n_words >= 50
    want = {}
    for dom in sorted(set(g[(y == 0) & long])):
        sel = (y == 0) & long & (g == dom)
        if sel.sum() >= 30:
            want[dom] = float(np.quantile(p[sel], 0.90, method="higher"))
    assert set(want) == {"a", "b"}           # "tiny" has under 30 long human texts: no domain threshold
    assert det.meta["domain_thresholds"] == pytest.approx(want, abs=1e-6)
    pooled = float(np.quantile(p[(y == 0) & long], 0.95, method="higher"))
    assert det.meta["pooled_threshold"] == pytest.approx(pooled, abs=1e-6)
    assert det.threshold_model == pytest.approx(max(pooled, *want.values()))
    assert det.meta["unseen_domain_thresholds"] == {}


def test_the_fitted_detector_keeps_its_settings_and_says_how_its_threshold_was_set() -> None:
    """What a saved detector records of its fit: a non-default ``min_words`` (the tagger's long-text cut),
    C, the folds actually used, the seed and caller meta, the threshold rule in words (with and without the
    unseen-domain rule), and its diagnostic thresholds rounded to 6 decimals."""
    from provaudit.origin.detector import UNSEEN_DOMAIN_MIN_HUMAN

    x, y, n_words, groups = _training()
    det, p = fit_detector(x, y, n_words=n_words, groups=groups, min_words=35, c=0.7, folds=4, seed=2,
                          domain_holdout_threshold=False, meta={"trained_on": "fixture"})
    assert det.min_words == 35
    assert (det.meta["C"], det.meta["folds"], det.meta["seed"], det.meta["trained_on"]) == (0.7, 4, 2, "fixture")
    rule = ("max(pooled human (1-fpr) quantile, each human domain's (1-2 fpr) quantile), out of fold")
    assert det.meta["threshold_rule"] == rule
    long = n_words >= 35
    assert det.meta["pooled_threshold"] == round(float(np.quantile(p[(y == 0) & long], 0.95, method="higher")), 6)
    g = np.asarray(groups, dtype=object)
    assert det.meta["domain_thresholds"] == {
        d: round(float(np.quantile(p[(y == 0) & long & (g == d)], 0.90, method="higher")), 6)
        for d in ("a", "b")}
    # the unseen-domain rule: a human domain of UNSEEN_DOMAIN_MIN_HUMAN long texts, and its text in the rule
    rng = np.random.default_rng(7)
    n_h = UNSEEN_DOMAIN_MIN_HUMAN
    groups2 = ["big"] * (n_h + 60) + ["other"] * (n_h + 60)
    y2 = np.array(([0] * n_h + [1] * 60) * 2)
    x2 = np.abs(rng.normal(size=(len(y2), len(FEATURE_NAMES))))
    x2[:, 0] += y2
    det2, _ = fit_detector(x2, y2, groups=groups2, seed=0)
    assert det2.meta["threshold_rule"] == rule + ("; and each human domain's (1-2 fpr) quantile scored by a "
                                                  "model trained without that domain")
    unseen = det2.meta["unseen_domain_thresholds"]
    assert set(unseen) == {"big", "other"}
    for v in (*unseen.values(), *det2.meta["domain_thresholds"].values(), det2.meta["pooled_threshold"]):
        assert v == round(v, 6)


def test_every_load_error_names_the_file_and_field_exactly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InputError) as e:
        Detector.load(missing)
    assert (str(e.value), e.value.file, e.value.field) == (
        f"{missing}: detector file not found", str(missing), None)
    d = _det(min_words=40)
    path = d.save(tmp_path / "det")
    blob = json.loads(path.read_text())
    bad = tmp_path / "bad.json"
    cases = [("{not json", "not a detector file (Expecting property name enclosed in double quotes)", None),
             ("[]", "not a provaudit detector", "kind"),
             (json.dumps({**blob, "kind": "other"}), "not a provaudit detector", "kind"),
             (json.dumps({**blob, "feature_names": blob["feature_names"][:-1]}),
              "detector was built for another feature set; retrain it", "feature_names")]
    for text, reason, field in cases:
        bad.write_text(text)
        with pytest.raises(InputError) as e:
            Detector.load(bad)
        where = f"{bad}: " + (f"field '{field}': " if field else "")
        assert (str(e.value), e.value.reason, e.value.file, e.value.field) == (where + reason, reason, str(bad), field)
    # min_words is read from the file (40, not the class default); a file without "meta" loads with {}
    assert Detector.load(path).min_words == 40
    bad.write_text(json.dumps({k: v for k, v in blob.items() if k != "meta"}))
    assert Detector.load(bad).meta == {}


def test_features_and_probabilities_pass_the_device_and_progress_to_the_language_model(monkeypatch) -> None:
    """Wiring only (the model itself is pinned in test_origin_lm.py): a full detector asks the language model
    for its columns on the given device with the given progress callback; a fast one never does."""
    import provaudit.origin.lm as lm_mod

    calls = []

    def fake_lm_features(texts, *, device="cpu", progress=None, **_):
        calls.append((list(texts), device, progress))
        return np.arange(len(texts) * len(lm_mod.LM_FEATURES), dtype=float).reshape(len(texts), -1)

    monkeypatch.setattr(lm_mod, "lm_features", fake_lm_features)
    k = len(FULL_FEATURE_NAMES)
    full = _det(feature_names=list(FULL_FEATURE_NAMES), mean=np.zeros(k), scale=np.ones(k), coef=np.full(k, 0.01))
    texts = ["one two three four", "five six seven"]
    tick = calls.append
    x, nw = full.features(texts, device="cuda:3", progress=tick)
    assert x.shape == (2, k) and list(nw) == [4, 3]
    assert calls == [(texts, "cuda:3", tick)]
    lm_cols = lm_mod.detector_columns(fake_lm_features(texts))
    assert np.array_equal(x[:, len(FEATURE_NAMES):], lm_cols)
    calls.clear()
    p = full.predict_proba(texts, device="cuda:5")
    assert calls[0][1] == "cuda:5" and p.shape == (2,)
    assert np.allclose(p, _sigmoid_ref(full.calibrated_logit(x)))
    calls.clear()
    fx, _ = _det().features(texts, device="cuda:3", progress=tick)
    assert calls == [] and fx.shape == (2, len(FEATURE_NAMES))


def _sigmoid_ref(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def test_score_metrics_counts_each_class_and_names_every_rate() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])                     # 3 human, 5 model: the counts differ
    p = np.array([0.1, 0.2, 0.7, 0.25, 0.6, 0.8, 0.9, 0.95])
    m = score_metrics(y, p, threshold=0.7)
    assert (m["n_human"], m["n_model"]) == (3, 5)
    # (1 - 0.01) and (1 - 0.05) "higher" quantiles of the human scores are both 0.7: model scores above it
    assert m["tpr_at_1pct_fpr"] == m["tpr_at_5pct_fpr"] == round(3 / 5, 4)
    assert m["fpr_at_threshold"] == round(1 / 3, 4) and m["tpr_at_threshold"] == round(3 / 5, 4)
    only_model = score_metrics(np.ones(3, dtype=int), np.array([0.2, 0.8, 0.9]), threshold=0.5)
    assert only_model["fpr_at_threshold"] is None and only_model["tpr_at_threshold"] == round(2 / 3, 4)
    assert only_model["n_human"] == 0 and only_model["tpr_at_1pct_fpr"] is None
    only_human = score_metrics(np.zeros(3, dtype=int), np.array([0.2, 0.8, 0.9]), threshold=0.5)
    assert only_human["tpr_at_threshold"] is None and only_human["fpr_at_threshold"] == round(2 / 3, 4)
    assert tpr_at_fpr(np.array([0, 1]), np.array([0.2, 0.9]), 0.05) == 1.0   # one text of each class is enough


def test_the_shipped_detectors_by_mode_and_the_cache_by_file(tmp_path: Path) -> None:
    assert load_detector(mode="full").feature_names == list(FULL_FEATURE_NAMES)
    assert load_detector(mode="fast").feature_names == list(FEATURE_NAMES)
    a = _det(threshold_model=0.91).save(tmp_path / "a")
    b = _det(threshold_model=0.81).save(tmp_path / "b")
    assert (load_detector(a).threshold_model, load_detector(b).threshold_model) == (0.91, 0.81)


def test_save_writes_sorted_indented_json_rounded_to_10_digits_via_a_temporary_file(tmp_path: Path) -> None:
    v = 0.123456789012345
    d = _det(intercept=v, platt_a=v, platt_b=-v, threshold_model=v, threshold_human=v / 2,
             coef=np.full(len(FEATURE_NAMES), v))
    path = d.save(tmp_path / "deep" / "er" / "det")           # parents are created
    text = path.read_text()
    blob = json.loads(text)
    assert text == json.dumps(blob, indent=1, sort_keys=True)
    for key in ("intercept", "platt_a", "threshold_model"):
        assert blob[key] == round(v, 10) != v
    assert blob["platt_b"] == round(-v, 10) and blob["threshold_human"] == round(v / 2, 10)
    assert blob["coef"] == [round(v, 10)] * len(FEATURE_NAMES)
    assert sorted(p.name for p in path.parent.iterdir()) == ["detector.json"]


def test_fit_detector_defaults_errors_and_group_weights() -> None:
    x, y, n_words, groups = _training()
    base, p0 = fit_detector(x, y, n_words=n_words)
    same, p1 = fit_detector(x, y, n_words=n_words, c=0.3, seed=0, min_words=50)
    assert np.array_equal(p0, p1) and np.array_equal(base.coef, same.coef) and base.min_words == 50
    assert not np.array_equal(fit_detector(x, y, n_words=n_words, seed=1)[1], p0)
    assert not np.allclose(fit_detector(x, y, n_words=n_words, c=1.3)[0].coef, base.coef)
    with pytest.raises(InputError) as e:
        fit_detector(x[:5], np.zeros(5, dtype=int))
    assert (str(e.value), e.value.field) == ("field 'label': training needs both human and model texts", "label")
    # groups weigh every (group, label) cell equally: one group for all is the same as none; real groups differ
    keep = np.flatnonzero((y == 1) | (np.arange(len(y)) % 3 == 0))    # fewer human texts: labels imbalanced
    xs, ys, gs = x[keep], y[keep], [groups[i] for i in keep]
    plain = fit_detector(xs, ys)[0].coef
    assert np.allclose(fit_detector(xs, ys, groups=["one"] * len(ys))[0].coef, plain)
    assert not np.allclose(fit_detector(xs, ys, groups=gs)[0].coef, plain)


def _reference_fit(x, y, groups, c, folds, seed):
    """fit_detector's weights and calibration from their definition, with sklearn and numpy: signed-log1p
    features, standardised on the training rows (a constant column's scale 1), a weighted L2 logistic
    regression (C = c) with every (group, label) cell of equal total weight, stratified out-of-fold scores
    (n_splits = max(2, min(folds, smallest class))), then a weighted Platt fit (C = 1e6) on those scores.
    Returns the full fit, Platt (a, b), the out-of-fold probabilities, n_splits, and (the fit on given rows,
    the transformed features) for rules that refit on a subset."""
    from collections import Counter

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    cells = list(zip(groups, y)) if groups is not None else list(y)
    cnt = Counter(cells)
    w = np.array([1.0 / cnt[g] for g in cells])
    w = w * len(w) / w.sum()
    z = np.sign(x) * np.log1p(np.abs(x))

    def fit(idx):
        mu, sd = z[idx].mean(0), z[idx].std(0)
        sd = np.where(sd < 1e-9, 1.0, sd)
        lr = LogisticRegression(C=c, max_iter=5000).fit((z[idx] - mu) / sd, y[idx], sample_weight=w[idx])
        return mu, sd, lr.coef_[0], lr.intercept_[0]

    k = max(2, min(folds, int(np.bincount(y).min())))
    oof = np.zeros(len(y))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(z, y):
        mu, sd, cf, b = fit(tr)
        oof[te] = ((z[te] - mu) / sd) @ cf + b
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof[:, None], y, sample_weight=w)
    a, bb = platt.coef_[0, 0], platt.intercept_[0]
    return fit(np.arange(len(y))), (a, bb), 1 / (1 + np.exp(-(a * oof + bb))), k, (fit, z)


@pytest.mark.parametrize(("n_human", "folds", "with_groups"), [(120, 5, True), (3, 5, False), (2, 5, True)])
def test_fit_detector_weights_and_calibration_equal_the_definition(n_human: int, folds: int, with_groups: bool) -> None:
    x, y, n_words, groups = _training()
    keep = np.concatenate([np.flatnonzero(y == 0)[:n_human], np.flatnonzero(y == 1)])
    x, y, n_words = x[keep].copy(), y[keep], n_words[keep]
    x[:, 5] = 2.0                                                   # a constant feature: scale 1, weight 0
    g = [groups[i] for i in keep] if with_groups else None
    det, p = fit_detector(x, y, groups=g, n_words=n_words, c=0.7, folds=folds, seed=3)
    (mu, sd, cf, b), (a, bb), p_ref, k, _ = _reference_fit(x, y, g, 0.7, folds, 3)
    assert det.meta["folds"] == k and det.scale[5] == 1.0
    assert np.allclose(det.mean, mu) and np.allclose(det.scale, sd)
    assert np.allclose(det.coef, cf, atol=1e-6) and det.intercept == pytest.approx(b, abs=1e-6)
    assert (det.platt_a, det.platt_b) == (pytest.approx(a, rel=1e-5), pytest.approx(bb, rel=1e-5, abs=1e-6))
    assert np.allclose(p, p_ref, atol=1e-6)


def test_unseen_domain_thresholds_score_each_big_human_domain_with_a_model_trained_without_it() -> None:
    """With ``domain_holdout_threshold``: a human domain of UNSEEN_DOMAIN_MIN_HUMAN (50)+ long texts is scored
    by a model fitted on every other row (same weights, same Platt map), and its (1 - 2 FPR) "higher" quantile
    joins the threshold; a domain of 30-49 long human texts gets only the in-fold rule; a domain of human texts
    only is found too."""
    from provaudit.origin.detector import UNSEEN_DOMAIN_MIN_HUMAN

    rng = np.random.default_rng(7)
    k = len(FEATURE_NAMES)
    sizes = {"big": (UNSEEN_DOMAIN_MIN_HUMAN, 60), "edge": (UNSEEN_DOMAIN_MIN_HUMAN - 1, 40), "thirty": (30, 30),
             "human_only": (UNSEEN_DOMAIN_MIN_HUMAN, 0), "small": (29, 30)}
    groups, ys = [], []
    for g, (h, m) in sizes.items():
        groups += [g] * (h + m)
        ys += [0] * h + [1] * m
    y = np.array(ys)
    x = np.abs(rng.normal(size=(len(y), k)))
    x[:, 0] += 1.0 * y
    x[:, 2] += 0.5 * (np.array(groups) == "big")                   # domains differ, so holding one out matters
    det, p = fit_detector(x, y, groups=groups, nominal_fpr=0.05, c=0.3, seed=0)
    _, (a, bb), _, _, (fit, z) = _reference_fit(x, y, groups, 0.3, 5, 0)
    g_arr = np.array(groups)
    want_unseen, want_domain = {}, {}
    for g, (h, _) in sizes.items():
        sel = (y == 0) & (g_arr == g)
        if h >= 30:
            want_domain[g] = float(np.quantile(p[sel], 0.90, method="higher"))
        if h >= UNSEEN_DOMAIN_MIN_HUMAN:
            mu, sd, cf, b = fit(np.flatnonzero(g_arr != g))
            pu = 1 / (1 + np.exp(-(a * (((z[sel] - mu) / sd) @ cf + b) + bb)))
            want_unseen[g] = float(np.quantile(pu, 0.90, method="higher"))
    assert set(want_unseen) == {"big", "human_only"} and set(want_domain) == {"big", "edge", "thirty", "human_only"}
    assert det.meta["domain_thresholds"] == pytest.approx(want_domain, abs=1e-6)
    assert det.meta["unseen_domain_thresholds"] == pytest.approx(want_unseen, abs=1e-5)
    pooled = float(np.quantile(p[y == 0], 0.95, method="higher"))
    assert det.threshold_model == pytest.approx(max(pooled, *want_domain.values(), *want_unseen.values()), abs=1e-5)


@pytest.mark.parametrize(("human_long", "model_long"), [(19, 19), (20, 20), (25, 15), (15, 25)])
def test_each_side_decides_its_own_20_long_text_rule(human_long: int, model_long: int) -> None:
    """threshold_model is the (1 - FPR) quantile of the long human texts when there are 20 or more of them, else
    of every human text; threshold_human the human_miss quantile of the model texts by the same rule."""
    x, y, _, _ = _training()
    pos = np.arange(len(y)) % 120
    n_words = np.where(((y == 0) & (pos < human_long)) | ((y == 1) & (pos < model_long)), 100, 10)
    det, p = fit_detector(x, y, n_words=n_words, human_miss=0.3, nominal_fpr=0.05)
    long = n_words >= 50
    ph = p[(y == 0) & long] if human_long >= 20 else p[y == 0]
    pm = p[(y == 1) & long] if model_long >= 20 else p[y == 1]
    t_model = np.quantile(ph, 0.95, method="higher")
    assert det.threshold_model == pytest.approx(t_model)
    assert det.threshold_human == pytest.approx(min(np.quantile(pm, 0.3), t_model))


def test_fit_detector_names_its_features_by_width_or_as_given(monkeypatch) -> None:
    import provaudit.origin.lm as lm_mod

    x, y, _, _ = _training(n=40)
    wide = np.hstack([x, np.abs(np.random.default_rng(1).normal(size=(len(y), len(FULL_FEATURE_NAMES) - x.shape[1])))])
    assert fit_detector(wide, y)[0].feature_names == list(FULL_FEATURE_NAMES)
    assert fit_detector(x, y)[0].feature_names == list(FEATURE_NAMES)
    given = [f"f{i}" for i in range(x.shape[1])]
    assert fit_detector(x, y, feature_names=given)[0].feature_names == given
    # a full detector's default device is the CPU
    calls = []
    monkeypatch.setattr(lm_mod, "lm_features", lambda texts, *, device="?", progress=None, **_: calls.append(device)
                        or np.zeros((len(texts), len(lm_mod.LM_FEATURES))))
    k = len(FULL_FEATURE_NAMES)
    full = _det(feature_names=list(FULL_FEATURE_NAMES), mean=np.zeros(k), scale=np.ones(k), coef=np.zeros(k))
    full.features(["a b c"])
    full.predict_proba(["a b c"])
    assert calls == ["cpu", "cpu"]
