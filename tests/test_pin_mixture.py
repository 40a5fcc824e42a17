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
