"""The mixture reference as documented in provaudit/mixture.py: the shared vocabulary (document frequency
>= max(3, min_df * n) on BOTH sides, most frequent first, capped, then sorted), the first max_words words
of a unit, sentence units of 3+ words summed per text (first max_sentences), and a calibration that is the
identity when the words really are independent."""
from __future__ import annotations

import numpy as np
import pytest

from provaudit.mixture import MixtureEstimate, MixtureReference, _units, fit_reference


def _letters(i: int) -> str:
    return "".join(chr(97 + int(d)) for d in f"{i:03d}")


def _corpus(n: int, counts: dict[str, int], salt: str) -> list[str]:
    """n documents; word w appears in the first counts[w] of them; each document also has a word of its own."""
    return [" ".join([w for w, c in counts.items() if i < c] + [salt + _letters(i)]) for i in range(n)]


def test_vocabulary_needs_min_df_on_both_sides_with_a_floor_of_three() -> None:
    human = _corpus(100, {"every": 100, "edge": 5, "below": 4, "onlyhuman": 50, "three": 3}, "h")
    model = _corpus(100, {"every": 90, "edge": 5, "below": 40, "onlymodel": 50, "three": 3}, "m")
    ref = fit_reference(human, model, min_df=0.05, calibrate=False)
    assert ref.vocab == sorted(["edge", "every"])          # 5 = 0.05 * 100 is enough; 4 is not, on either side
    loose = fit_reference(human, model, min_df=0.01, calibrate=False)
    assert loose.vocab == sorted(["below", "edge", "every", "three"])   # floor of 3 documents
    two = fit_reference(human, model, min_df=0.01, max_vocab=2, calibrate=False)
    assert two.vocab == ["below", "every"]                  # the two most frequent (combined rates), sorted
    assert ref.n_human == ref.n_model == 100
    i = ref.vocab.index("edge")
    assert np.exp(ref.log_p[i]) == pytest.approx((5 + 1) / (100 + 2))
    assert np.exp(ref.log_1mp[i]) == pytest.approx(1 - (5 + 1) / (100 + 2))
    smooth = fit_reference(human, model, min_df=0.05, calibrate=False, smoothing=0.5)
    assert np.exp(smooth.log_q[smooth.vocab.index("every")]) == pytest.approx((90 + 0.5) / (100 + 1))


def test_only_the_first_max_words_of_a_unit_count() -> None:
    human = ["a b c d late"] * 20
    model = ["a b c d late"] * 20
    ref = fit_reference(human, model, min_df=0.1, max_words=4, calibrate=False)
    assert ref.vocab == ["a", "b", "c", "d"]
    assert fit_reference(human, model, min_df=0.1, max_words=0, calibrate=False).vocab == ["a", "b", "c", "d", "late"]
    # the same cap applies when scoring: a word after the cap leaves the ratio unchanged
    ref.options["max_words"] = 2
    assert ref.unit_log_ratios(["a b c"])[0] == pytest.approx(ref.unit_log_ratios(["a b"])[0])
    from provaudit.mixture import _words

    assert _words("The cat's cat sat", 1) == {"the"} and _words("The cat's cat sat", 2) == {"the", "cat's"}
    assert _words("The cat's cat sat", 0) == {"the", "cat's", "cat", "sat"}


def test_sentence_units_are_split_filtered_and_summed() -> None:
    assert _units(["One two three. Four five! Six seven eight nine?\nTen eleven twelve"], "sentence") == [
        "One two three.", "Six seven eight nine?", "Ten eleven twelve"]
    assert _units(["x", None], "document") == ["x", ""]
    with pytest.raises(ValueError, match="unit"):
        _units(["x"], "paragraph")
    ref = MixtureReference(vocab=["alpha", "beta"], log_p=list(np.log([0.2, 0.5])), log_1mp=list(np.log([0.8, 0.5])),
                           log_q=list(np.log([0.6, 0.25])), log_1mq=list(np.log([0.4, 0.75])), n_human=1, n_model=1,
                           options={"unit": "sentence", "max_words": 0, "clip": 30.0, "max_sentences": 0})
    s1, s2, s3 = "alpha is here now.", "beta is there too.", "alpha and beta both."
    per = ref.unit_log_ratios([f"{s1} {s2} {s3}"])
    want = [np.log(0.6 / 0.2) + np.log(0.75 / 0.5), np.log(0.4 / 0.8) + np.log(0.25 / 0.5),
            np.log(0.6 / 0.2) + np.log(0.25 / 0.5)]
    assert per == pytest.approx(want)
    assert ref.doc_log_ratios([f"{s1} {s2} {s3}"])[0] == pytest.approx(sum(want))
    ref.options["max_sentences"] = 2
    assert ref.doc_log_ratios([f"{s1} {s2} {s3}"])[0] == pytest.approx(want[0] + want[1])
    assert ref.doc_log_ratios(["no vocabulary words in it."])[0] == pytest.approx(np.log(0.4 / 0.8) + np.log(0.75 / 0.5))


def test_calibration_is_the_identity_for_independent_words() -> None:
    """Words drawn independently: the raw ratios are already calibrated, so the cross-fitted logistic fit
    gives scale ~1 and shift ~0."""
    rng = np.random.default_rng(11)
    vocab = [f"v{chr(97 + i)}" for i in range(12)]
    p = np.linspace(0.2, 0.5, 12)
    q = p[::-1].copy()

    def docs(probs: np.ndarray, n: int) -> list[str]:
        present = rng.random((n, len(vocab))) < probs
        return [" ".join(w for w, k in zip(vocab, row) if k) + " end" for row in present]

    ref = fit_reference(docs(p, 400), docs(q, 400), min_df=0.02, max_words=0)
    assert ref.calibration["scale"] == pytest.approx(1.0, abs=0.2)
    assert ref.calibration["shift"] == pytest.approx(0.0, abs=0.2)
    h, m = docs(p, 40), docs(q, 40)
    assert fit_reference(h, m, min_df=0.02, seed=3).calibration == fit_reference(h, m, min_df=0.02, seed=3).calibration


def test_estimate_dict_rounds_to_four_places_and_fit_refuses_small_corpora() -> None:
    assert MixtureEstimate(0.123456, 0.1, 0.2000049, 7).to_dict() == {"alpha": 0.1235, "ci_low": 0.1,
                                                                       "ci_high": 0.2, "n": 7}
    with pytest.raises(ValueError, match="at least 10"):
        fit_reference(["a b c"] * 9, ["a b c"] * 20)
    with pytest.raises(ValueError, match="no word is common"):
        fit_reference([f"h{i} x{i}" for i in range(20)], [f"m{i} y{i}" for i in range(20)], calibrate=False)


def test_a_reference_without_options_scores_by_the_documented_defaults() -> None:
    """A reference whose ``options`` are empty (an older or hand-written file) scores whole documents, every
    word of a unit, every sentence, and clips a text's log-ratio at 30 nats; ``max_sentences`` 1 keeps one
    sentence. Expected values from the occurrence model by hand: log(q/p) for a vocabulary word present,
    log((1-q)/(1-p)) for one absent."""
    p, q = np.array([0.2, 0.5, 1e-20]), np.array([0.6, 0.25, 0.5])
    kw = {"vocab": ["alpha", "beta", "gamma"], "log_p": list(np.log(p)), "log_1mp": list(np.log1p(-p)),
          "log_q": list(np.log(q)), "log_1mq": list(np.log1p(-q)), "n_human": 1, "n_model": 1}
    ref = MixtureReference(**kw, options={})

    def ratio(present: set[int]) -> float:
        return float(sum(np.log(q[i] / p[i]) if i in present else np.log((1 - q[i]) / (1 - p[i])) for i in range(3)))

    # the second word counts (no word cap), the whole document is one unit
    assert ref.unit_log_ratios(["x beta y"])[0] == pytest.approx(ratio({1}))
    assert ref.doc_log_ratios(["x beta. alpha y"])[0] == pytest.approx(ratio({0, 1}))
    assert ref.doc_log_ratios(["alpha beta"], calibrated=False)[0] == pytest.approx(ratio({0, 1}))
    # gamma alone is worth 45 nats: the ratio is clipped at +30
    assert ratio({2}) > 40 and ref.doc_log_ratios(["gamma"])[0] == 30.0
    assert ref.doc_log_ratios(["gamma"], calibrated=False)[0] == 30.0
    # sentence units without a cap: every sentence of 3+ words summed; with max_sentences 1: the first only
    s1, s2 = "alpha is here now.", "beta is there too."
    sent = MixtureReference(**kw, options={"unit": "sentence"})
    assert sent.doc_log_ratios([f"{s1} {s2}"])[0] == pytest.approx(ratio({0}) + ratio({1}))
    one = MixtureReference(**kw, options={"unit": "sentence", "max_sentences": 1})
    assert one.doc_log_ratios([f"{s1} {s2}"])[0] == pytest.approx(ratio({0}))


def test_defaults_size_floor_rounding_and_the_vocabulary_cut() -> None:
    """``fit_reference``'s documented defaults are what it records; 10 texts a side is enough and 9 is not;
    an estimate's interval is rounded to 4 places; ``min_df`` is a share of each side's documents; the cap
    keeps the words most frequent over both sides; ``smoothing`` k gives (count + k) / (n + 2k)."""
    human = _corpus(20, {"alpha": 20, "beta": 3, "gamma": 10}, "h")
    model = _corpus(20, {"alpha": 3, "beta": 10, "gamma": 10}, "m")
    ref = fit_reference(human, model, min_df=0.1)
    assert ref.options == {"unit": "document", "min_df": 0.1, "max_vocab": 2000, "max_words": 300,
                           "max_sentences": 0, "smoothing": 1.0, "clip": 30.0}
    # combined frequency alpha 1.15, gamma 1.0, beta 0.65: a cap of two keeps alpha and gamma
    assert fit_reference(human, model, min_df=0.1, max_vocab=2, calibrate=False).vocab == ["alpha", "gamma"]
    half = fit_reference(human, model, min_df=0.1, smoothing=0.5, calibrate=False)
    i = half.vocab.index("beta")
    assert np.exp(half.log_p[i]) == pytest.approx((3 + 0.5) / (20 + 1.0))
    assert np.exp(half.log_q[i]) == pytest.approx((10 + 0.5) / (20 + 1.0))
    # min_df 0.1 of 100 model documents is 10: a word in 5 of them is out, in 10 it is in
    h100 = _corpus(100, {"seen": 100, "rare": 100, "enough": 100}, "h")
    m100 = _corpus(100, {"seen": 100, "rare": 5, "enough": 10}, "m")
    assert fit_reference(h100, m100, min_df=0.1, calibrate=False).vocab == ["enough", "seen"]
    for n_h, n_m, ok in ((10, 10, True), (9, 10, False), (10, 9, False)):
        h, m = _corpus(n_h, {"alpha": n_h}, "h"), _corpus(n_m, {"alpha": n_m}, "m")
        if ok:
            assert fit_reference(h, m, min_df=0.1, calibrate=False).n_human == 10
        else:
            with pytest.raises(ValueError, match="at least 10"):
                fit_reference(h, m, min_df=0.1, calibrate=False)
    assert MixtureEstimate(0.5, 0.123456, 0.654321, 3).to_dict() == {"alpha": 0.5, "ci_low": 0.1235,
                                                                     "ci_high": 0.6543, "n": 3}


def test_calibration_is_the_logistic_fit_of_held_out_fold_ratios() -> None:
    """The cross-fitted calibration by its definition: texts dealt into ``folds`` folds per side (a seeded
    permutation), each fold scored UNcalibrated by a reference fitted on the other folds, and a balanced
    logistic regression (C = 1) of the label on those held-out ratios; scale and shift rounded to 8 places.
    The defaults are 5 folds and seed 0."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    words = [_letters(i) for i in range(40)]
    human = [" ".join(w for w in words if rng.random() < 0.2 + 0.3 * (j % 2) * (w < "ab")) for j in range(60)]
    model = [" ".join(w for w in words if rng.random() < 0.35 + 0.3 * (w > "ab")) for _ in range(50)]
    for folds, seed, kw in ((5, 0, {}), (3, 7, {"folds": 3, "seed": 7})):
        ref = fit_reference(human, model, min_df=0.05, **kw)
        perm = np.random.default_rng(seed)
        fh, fm = perm.permutation(len(human)) % folds, perm.permutation(len(model)) % folds
        xs, ys = [], []
        for k in range(folds):
            part = fit_reference([t for t, f in zip(human, fh) if f != k], [t for t, f in zip(model, fm) if f != k],
                                 min_df=0.05, calibrate=False)
            for texts, label in (([t for t, f in zip(human, fh) if f == k], 0), ([t for t, f in zip(model, fm) if f == k], 1)):
                xs.append(part.doc_log_ratios(texts, calibrated=False))
                ys.append(np.full(len(texts), label))
        clf = LogisticRegression(C=1.0, class_weight="balanced").fit(np.concatenate(xs)[:, None], np.concatenate(ys))
        assert ref.calibration == {"scale": round(float(clf.coef_[0, 0]), 8), "shift": round(float(clf.intercept_[0]), 8)}
        assert ref.calibration["scale"] != 1.0


def test_a_word_past_max_words_changes_nothing_and_missing_texts_are_empty() -> None:
    """With words that do carry weight (different corpora): the (max_words + 1)-th word of a unit is ignored
    and one within the cap is not; texts that are not strings are fitted as empty texts."""
    human = _corpus(20, {"alpha": 15, "beta": 4, "gamma": 5}, "h")
    model = _corpus(20, {"alpha": 5, "beta": 15, "gamma": 12}, "m")
    ref = fit_reference(human, model, min_df=0.1, calibrate=False)
    ref.options["max_words"] = 2
    assert ref.unit_log_ratios(["alpha beta gamma"])[0] == pytest.approx(ref.unit_log_ratios(["alpha beta"])[0])
    assert ref.unit_log_ratios(["alpha beta"])[0] != pytest.approx(ref.unit_log_ratios(["alpha"])[0])
    with_none = fit_reference(human + [None] * 4, model + [None] * 4, min_df=0.1, calibrate=False)
    with_empty = fit_reference(human + [""] * 4, model + [""] * 4, min_df=0.1, calibrate=False)
    assert with_none == with_empty and with_none.n_human == 24


def test_log_ratios_are_the_same_bits_under_any_string_hashing() -> None:
    """A text's log-ratio sums its words' terms in vocabulary order: summed in the order of a set of words it
    would change in the last bits with each process's hash seed, and the same input would not give the same
    output bytes from run to run."""
    import os
    import subprocess
    import sys

    code = ("import gzip, json, sys; from provaudit.mixture import MixtureReference; "
            "from provaudit.origin.tagging import DEFAULT_REFERENCE; "
            "rows = [json.loads(x) for x in gzip.open(sys.argv[1], 'rt')][:60]; "
            "texts = [r['chosen'] for r in rows] + [r['rejected'] for r in rows]; "
            "print(MixtureReference.load(DEFAULT_REFERENCE).doc_log_ratios(texts, calibrated=False).tobytes().hex())")
    from conftest import FIXTURES

    outs = {subprocess.run([sys.executable, "-c", code, str(FIXTURES / "scan" / "hh_rlhf.jsonl.gz")], check=True,
                           capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2", "3")}
    assert len(outs) == 1 and len(next(iter(outs))) > 100
