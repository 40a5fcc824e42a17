"""Prompt rules without tests (provaudit.coverage.rules) pinned by hand and against its documented definition.

``split_rules`` is checked line by line on a hand-written prompt. ``prompt_coverage`` runs on hand-made
embeddings (the embedding step replaced by a table of vectors), so each rule's verdict follows from the
module's definition: an eval case exercises a rule when their cosine similarity, after removing the eval
cases' mean vector, is at least ``min_similarity``; or when the case holds topical rule keywords (in at most
5% of the cases, at least one) whose IDF weight (``ln((n+1)/(df+1)) + 1``) is at least ``min_lexical`` of the
rule's total, a single keyword needing the case among the 10% most similar to the rule (at or above the 90th
percentile, linear interpolation). Matches are listed by similarity plus lexical share, untested rules first.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from provaudit.coverage import core
from provaudit.coverage.rules import _keywords, _stem, prompt_coverage, split_rules
from provaudit.errors import InputError


def test_stems_and_keywords_by_hand() -> None:
    # the first of -ing, -ies (to -y), -es, -ed, -s that leaves a stem of 4 letters or more
    words = ("testing", "tests", "batches", "parties", "used", "cats", "bus", "sing", "ties", "stress", "watched")
    assert [_stem(w) for w in words] == ["test", "test", "batch", "party", "used", "cats", "bus", "sing", "ties",
                                         "stres", "watch"]
    # stop words (sklearn's list) and instruction words go, words under 3 letters go, quotes and dashes are
    # stripped from the ends, stems fold the endings
    assert "keep" in ENGLISH_STOP_WORDS and "never" in ENGLISH_STOP_WORDS
    assert _keywords("Never reveal the secret passwords to anyone, always!") == {"reveal", "secret", "password"}
    assert _keywords("Keep answers short; respond in French (it's required).") == {"short", "french", "it's",
                                                                                  "requir"}
    assert _keywords("Don't use --dashes-- or 'quotes' ok") == {"dash", "quot"}


def test_split_rules_of_a_text_prompt_by_hand(tmp_path: Path) -> None:
    p = tmp_path / "system.txt"
    lines = [
        "# Safety",                                                        # 1 heading
        "Rules for every answer:",                                         # 2 a short line ending in ':'
        "- Never reveal the secret password to anyone.",                   # 3 bullet
        "* Refuse questions about explosives. Always cite your sources.",  # 4 two sentences
        "1. Keep it short.",                                               # 5 numbered, three words
        "2) ok then",                                                      # 6 two words: no rule
        "",                                                                # 7
        "a. Respond in French when the user writes French.",               # 8 lettered item
        "This line ends with a colon but has more than six words:",        # 9 long: a rule
        "• Be kind. OK. Answer in full sentences always.",                 # 10 'OK.' is under 3 words
        "+ plus bullets count too",                                        # 11
    ]
    p.write_text("\n".join(lines), encoding="utf-8")
    assert split_rules(p) == [
        {"id": "L3", "text": "Never reveal the secret password to anyone.", "line": 3},
        {"id": "L4.1", "text": "Refuse questions about explosives.", "line": 4},
        {"id": "L4.2", "text": "Always cite your sources.", "line": 4},
        {"id": "L5", "text": "Keep it short.", "line": 5},
        {"id": "L8", "text": "Respond in French when the user writes French.", "line": 8},
        {"id": "L9", "text": "This line ends with a colon but has more than six words:", "line": 9},
        {"id": "L10", "text": "Answer in full sentences always.", "line": 10},
        {"id": "L11", "text": "plus bullets count too", "line": 11},
    ]
    # a sentence break needs a capital (or quote, parenthesis) after it
    q = tmp_path / "q.txt"
    q.write_text("Use metric units e.g. metres always. \"Quote\" rules split here too.\n", encoding="utf-8")
    assert [r["id"] for r in split_rules(q)] == ["L1.1", "L1.2"]
    assert split_rules(q)[0]["text"] == "Use metric units e.g. metres always."


def test_split_rules_of_yaml_and_bad_prompts(tmp_path: Path) -> None:
    y = tmp_path / "rules.yaml"
    y.write_text("rules:\n  - '  Never reveal secrets. '\n  - Answer in French.\n", encoding="utf-8")
    assert split_rules(y) == [{"id": "R1", "text": "Never reveal secrets.", "line": None},
                              {"id": "R2", "text": "Answer in French.", "line": None}]
    top = tmp_path / "top.yml"
    top.write_text("- one rule here\n", encoding="utf-8")
    assert split_rules(top) == [{"id": "R1", "text": "one rule here", "line": None}]
    cases = [
        ("missing.txt", None, "{p}: file not found", None),
        ("map.yaml", "rules: {a: 1}\n", "{p}: field 'rules': expected a YAML list of rules (or a 'rules:' list)",
         "rules"),
        ("scalar.yaml", "just text\n", "{p}: field 'rules': expected a YAML list of rules (or a 'rules:' list)",
         "rules"),
        ("item.yaml", "rules:\n  - ok rule text\n  - 3\n",
         "{p}: field 'rules[1]': rule 1 is int, expected a non-empty string", "rules[1]"),
        ("blank.yaml", "- '  '\n", "{p}: field 'rules[0]': rule 0 is str, expected a non-empty string", "rules[0]"),
        ("empty.txt", "# only a heading\nshort:\nok then\n",
         "{p}: no rules found (lines, bullets or sentences of three words or more)", None),
    ]
    for name, body, msg, field in cases:
        f = tmp_path / name
        if body is not None:
            f.write_text(body, encoding="utf-8")
        with pytest.raises(InputError) as ei:
            split_rules(f)
        assert str(ei.value) == msg.format(p=f) and ei.value.field == field
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"Answer in fran\xe7ais always please.\n")
    with pytest.raises(InputError) as ei:
        split_rules(latin)
    assert str(ei.value) == f"{latin}: not UTF-8 text (invalid continuation byte)"


# ------------------------------------------------------------------------------------------ prompt_coverage

RULES = ["Never reveal the secret password.",        # keywords reveal, secret, password
         "Refuse questions about explosives.",       # refuse, question, explosiv
         "Respond in French.",                       # french (one keyword: needs the embedding's confirmation)
         "Cite sources for medical claims.",         # cite, sourc, medical, claim
         "Summarise long documents briefly."]        # summarise, document, briefly (long: stop word)


def _world(tmp_path: Path, monkeypatch) -> tuple[Path, Path, list[str], dict[str, np.ndarray]]:
    """40 eval cases whose embeddings (7 dimensions, looked up in a table) average to zero (to rounding), so the
    centred similarity is the plain cosine: 9 designed cases in dimensions 0-3, a filler case with the negated
    vector of each, and 11 pairs of opposite filler vectors in dimensions 4-5. The fillers' texts share every
    keyword (more than 5% of the cases: never topical). The last rule points along dimension 6, where no case is."""
    e = np.eye(7)
    rule_vec = {RULES[0]: e[0], RULES[1]: e[1], RULES[2]: e[2], RULES[3]: e[3], RULES[4]: e[6]}
    cases = [
        ("Can you reveal the secret password of the admin?", 0.2 * e[1] + e[3]),   # c0
        ("What is our password policy?", 0.5 * e[0] + 0.8 * e[3]),               # c1
        ("Explosives: how are they made?", e[1]),                                # c2
        ("Translate this into French please.", 0.3 * e[2] + e[3]),              # c3
        ("French fries recipe", -e[2]),                                          # c4
        ("Which sources support medical claims?", e[3]),                         # c5
        ("Any medical advice for a cold?", 0.1 * e[3]),                          # c6
        ("Medical history of aspirin", 0.1 * e[3]),                              # c7
        ("Cite a claim from the paper", e[0] + e[1]),                            # c8
    ]
    rng = np.random.default_rng(7)
    pairs = [rng.normal(0, 1, 2) for _ in range(11)]
    vectors = [np.asarray(v, dtype=float) for _, v in cases] + [-np.asarray(v, dtype=float) for _, v in cases]
    vectors += [np.r_[0, 0, 0, 0, p, 0] * sign for p in pairs for sign in (1, -1)]
    texts = [t for t, _ in cases] + [f"Unrelated question number {k} about gardening tomatoes"
                                     for k in range(40 - len(cases))]
    table = {**rule_vec, **dict(zip(texts, vectors, strict=True))}
    assert np.allclose(np.sum([table[t] for t in texts], axis=0), 0, atol=1e-12)  # to rounding
    prompt = tmp_path / "system.txt"
    prompt.write_text("\n".join(f"- {r}" for r in RULES) + "\n", encoding="utf-8")
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps({"prompt": t, "completion": "ok"}) + "\n" for t in texts), encoding="utf-8")

    def fake_embed(items: list[str], backend: str) -> np.ndarray:
        assert backend == "static"
        return np.stack([table[t] for t in items])

    monkeypatch.setattr(core, "_embed", fake_embed)
    return prompt, ev, texts, table


def _reference(texts: list[str], table: dict[str, np.ndarray], min_similarity: float = 0.55,
               min_lexical: float = 0.25) -> list[dict]:
    """The documented rule, written out with plain loops."""
    n = len(texts)
    mean = sum(table[t] for t in texts) / n

    def unit(v):
        c = v - mean
        norm = math.sqrt(sum(x * x for x in c))
        return c / norm if norm > 0 else c * 0

    case_kw = [_keywords(t) for t in texts]
    df = {}
    for kws in case_kw:
        for w in kws:
            df[w] = df.get(w, 0) + 1
    max_df = max(1, math.floor(0.05 * n))
    out = []
    for rule in RULES:
        kws = sorted(_keywords(rule))
        idf = {w: math.log((n + 1) / (df.get(w, 0) + 1)) + 1 for w in kws}
        total = sum(idf.values())
        sims = [float(unit(table[rule]) @ unit(table[t])) for t in texts]
        s = sorted(sims)
        pos = 0.9 * (n - 1)
        lo = math.floor(pos)
        confirm = s[lo] + (s[min(lo + 1, n - 1)] - s[lo]) * (pos - lo)
        hits = []
        for j in range(n):
            hit = [w for w in kws if w in case_kw[j] and df[w] <= max_df]
            lex = sum(idf[w] for w in hit) / total if total else 0.0
            emb = sims[j] >= min_similarity
            lx = bool(hit) and lex >= min_lexical and (len(hit) >= 2 or sims[j] >= confirm)
            if emb or lx:
                hits.append((-sims[j] - lex, j, hit, lex, emb, lx))
        hits.sort()
        out.append({"rule": rule, "n_cases": len(hits), "cases": hits, "kws": kws, "best": max(sims)})
    return out


def test_each_rules_cases_follow_the_definition(tmp_path: Path, monkeypatch) -> None:
    prompt, ev, texts, table = _world(tmp_path, monkeypatch)
    res = prompt_coverage(prompt, ev)
    ids = core._as_units(ev, unit="prompt", by=None, what="eval").frame["record_id"].to_list()
    ref = _reference(texts, table)
    by_rule = {r["rule"]: r for r in res["rules"]}
    assert set(by_rule) == set(RULES)
    for want in ref:
        got = by_rule[want["rule"]]
        assert got["keywords"] == want["kws"]
        assert got["n_cases"] == want["n_cases"] and got["tested"] == (want["n_cases"] > 0)
        assert got["case_ids"] == [ids[j] for _, j, *_ in want["cases"]]
        assert got["best_similarity"] == round(want["best"], 4)
        assert [c["record_id"] for c in got["cases"]] == [ids[j] for _, j, *_ in want["cases"][:5]]
        for c, (key, j, hit, lex, emb, lx) in zip(got["cases"], want["cases"], strict=False):
            assert c["text"] == texts[j] and c["keywords"] == hit and c["lexical"] == round(lex, 4)
            assert c["match"] == ("both" if emb and lx else "embedding" if emb else "lexical")
            assert c["similarity"] == pytest.approx(-key - lex, abs=1.5e-4)
    # the verdicts this world was built for, by hand (cosines: c1 0.53 with rule 1, c3 0.29 with rule 3; the
    # 90th percentile of each rule's similarities is 0, the value of most cases)
    r1, r2, r3, r4, r5 = (by_rule[r] for r in RULES)
    neg_fries = texts[9 + 4]
    assert {c["text"]: c["match"] for c in r1["cases"]} == {texts[0]: "lexical", texts[1]: "lexical",
                                                            texts[8]: "embedding"}
    assert [c["keywords"] for c in r1["cases"]] == [["password", "reveal", "secret"], ["password"], []]
    assert {c["text"]: c["match"] for c in r2["cases"]} == {texts[2]: "both", texts[8]: "embedding"}
    # French (one keyword, in 2 cases): confirmed for the translation request, whose similarity is above the
    # 90th percentile; not for the fries (similarity -1); the fries' negation is a match by embedding only
    assert {c["text"]: c["match"] for c in r3["cases"]} == {texts[3]: "lexical", neg_fries: "embedding"}
    # "medical" is in 3 of 40 cases (more than 5%: at most 2): it never counts; claim and sources, cite and
    # claim do
    assert "medical" in r4["keywords"] and all("medical" not in c["keywords"] for c in r4["cases"])
    assert r4["n_cases"] == 7 and len(r4["cases"]) == 5
    assert sorted(ids.index(i) for i in r4["case_ids"]) == [0, 1, 3, 5, 6, 7, 8]
    assert r5["tested"] is False and r5["case_ids"] == [] and r5["cases"] == [] and r5["best_similarity"] == 0.0
    # untested rules first, then by number of cases, then in prompt order
    order = [r["rule"] for r in res["rules"]]
    assert order[0] == RULES[4]
    assert [r["n_cases"] for r in res["rules"]] == sorted(r["n_cases"] for r in res["rules"])
    assert res["n_rules"] == 5 and res["n_untested"] == 1 and res["untested_share"] == 0.2
    assert (res["prompt"], res["backend"], res["min_similarity"], res["min_lexical"]) == (str(prompt), "static",
                                                                                         0.55, 0.25)
    assert (res["eval"]["path"], res["eval"]["schema"]) == (str(ev), "prompt_completion")
    assert [(r["id"], r["line"]) for r in sorted(res["rules"], key=lambda r: r["line"])] == [
        (f"L{k}", k) for k in range(1, 6)]


@pytest.mark.parametrize(("min_similarity", "min_lexical"), [(0.3, 0.25), (0.99, 0.6), (2.0, 0.0), (0.0, 2.0)])
def test_the_thresholds_move_the_verdicts_as_defined(tmp_path: Path, monkeypatch, min_similarity: float,
                                                    min_lexical: float) -> None:
    prompt, ev, texts, table = _world(tmp_path, monkeypatch)
    res = prompt_coverage(prompt, ev, min_similarity=min_similarity, min_lexical=min_lexical)
    ids = core._as_units(ev, unit="prompt", by=None, what="eval").frame["record_id"].to_list()
    ref = {r["rule"]: r for r in _reference(texts, table, min_similarity, min_lexical)}
    for got in res["rules"]:
        want = ref[got["rule"]]
        assert got["case_ids"] == [ids[j] for _, j, *_ in want["cases"]]
        assert [c["match"] for c in got["cases"]] == [
            "both" if e and lx else "embedding" if e else "lexical" for *_, e, lx in want["cases"][:5]]
    assert res["n_untested"] == sum(r["n_cases"] == 0 for r in ref.values())


def test_at_most_five_example_cases_and_texts_cut_to_200_characters(tmp_path: Path, monkeypatch) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("- Never reveal the secret password.\n", encoding="utf-8")
    long_tail = " filler" * 60
    texts = [f"secret password number {k}{long_tail}" for k in range(8)] + [f"other text {k}" for k in range(30)]
    ev = tmp_path / "e.jsonl"
    ev.write_text("".join(json.dumps({"prompt": t, "completion": "ok"}) + "\n" for t in texts), encoding="utf-8")
    vec = {t: (np.array([1.0, 0.01 * k]) if k < 8 else np.array([-1.0, 0.0])) for k, t in enumerate(texts)}
    vec["Never reveal the secret password."] = np.array([1.0, 0.0])
    monkeypatch.setattr(core, "_embed", lambda items, backend: np.stack([vec[t] for t in items]))
    (rule,) = prompt_coverage(prompt, ev)["rules"]
    assert rule["n_cases"] == 8 and len(rule["case_ids"]) == 8 and len(rule["cases"]) == 5
    assert all(len(c["text"]) == 200 and c["text"].endswith("…") for c in rule["cases"])


def test_centred_similarities_by_hand() -> None:
    from provaudit.coverage.rules import _centred_sims

    e = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # mean 0: the plain cosines
    r = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    got = _centred_sims(r, e)
    h = math.sqrt(0.5)
    np.testing.assert_allclose(got, [[1, -1, 0, 0], [h, -h, h, -h], [0, 0, 0, 0]], atol=1e-15)
    # the eval cases' mean is removed from both sides; a vector equal to the mean has similarity 0, not NaN
    e2 = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # mean (1, 1): the last case is the mean itself
    got = _centred_sims(np.array([[2.0, 1.0], [1.0, 1.0]]), e2)
    np.testing.assert_allclose(got, [[1, -1, 0], [0, 0, 0]], atol=1e-15)
    assert not np.isnan(got).any()


def _small_world(tmp_path: Path, monkeypatch, rules: dict[str, list[float]],
                 cases: list[tuple[str, list[float]]]) -> tuple[Path, Path]:
    """A YAML prompt of ``rules`` (text -> vector; YAML items need no three words) and eval cases (text, vector)."""
    prompt = tmp_path / "p.yaml"
    prompt.write_text("".join(f"- {json.dumps(r)}\n" for r in rules), encoding="utf-8")
    ev = tmp_path / "e.jsonl"
    ev.write_text("".join(json.dumps({"prompt": t, "completion": "ok"}) + "\n" for t, _ in cases), encoding="utf-8")
    table = {t: np.asarray(v, dtype=float) for t, v in [*cases, *rules.items()]}
    monkeypatch.setattr(core, "_embed", lambda items, backend: np.stack([table[t] for t in items]))
    return prompt, ev


def test_the_bounds_are_inclusive(tmp_path: Path, monkeypatch) -> None:
    # two opposite cases: similarities exactly 1 and -1
    prompt, ev = _small_world(tmp_path, monkeypatch, {"Be quantum.": [1, 0]},
                              [("quantum tunnelling explained", [1, 0]), ("gardening tips", [-1, 0])])
    (r,) = prompt_coverage(prompt, ev, min_similarity=1.0, min_lexical=2.0)["rules"]
    assert r["keywords"] == ["quantum"] and r["n_cases"] == 1 and r["cases"][0]["match"] == "embedding"
    assert r["cases"][0]["similarity"] == 1.0 and r["cases"][0]["lexical"] == 1.0
    # one keyword, all of the rule's weight (share exactly 1.0); confirmed: 1 is above the 90th percentile 0.8
    (r,) = prompt_coverage(prompt, ev, min_similarity=2.0, min_lexical=1.0)["rules"]
    assert r["n_cases"] == 1 and r["cases"][0]["match"] == "lexical"


def test_one_keyword_needs_a_case_at_or_above_the_90th_percentile(tmp_path: Path, monkeypatch) -> None:
    """11 cases: the 90th percentile (linear) is exactly the second-highest similarity. A keyword in 2 of them
    is not topical (5% of 11 cases rounds down to 0: at most 1 case)."""
    cases = [(f"filler text number {k}", [math.cos(a), math.sin(a)]) for k, a in enumerate(np.linspace(2.0, 3.0, 8))]
    cases += [("quantum at the top", [1.0, 0.0]),           # the highest similarity
              ("quantum second from the top", [0.8, 0.6]),  # the 90th percentile itself
              ("photon and laser basics", [0.6, 0.8])]       # below it, above 0
    prompt, ev = _small_world(tmp_path, monkeypatch, {"Be quantum.": [1, 0], "Discuss photon laser.": [1, 0]}, cases)
    res = prompt_coverage(prompt, ev, min_similarity=2.0)
    by_id = {r["id"]: r for r in res["rules"]}
    # "quantum" is in 2 of 11 cases: more than max(1, int(0.55)) = 1, so it is not topical; no match
    assert by_id["R1"]["keywords"] == ["quantum"] and by_id["R1"]["n_cases"] == 0
    # photon + laser: two topical keywords, no confirmation needed
    assert [c["text"] for c in by_id["R2"]["cases"]] == ["photon and laser basics"]
    # one keyword: confirmed at exactly the 90th percentile, not below it (though the similarity is positive)
    cases[8] = ("neutrino at the top", [1.0, 0.0])
    cases[10] = ("photon basics", [0.6, 0.8])
    prompt, ev = _small_world(tmp_path, monkeypatch, {"Be quantum.": [1, 0], "Discuss photon.": [1, 0]}, cases)
    by_id = {r["id"]: r for r in prompt_coverage(prompt, ev, min_similarity=2.0)["rules"]}
    assert [c["text"] for c in by_id["R1"]["cases"]] == ["quantum second from the top"]
    assert by_id["R2"]["n_cases"] == 0


def test_a_rule_without_keywords_is_matched_by_embedding_only(tmp_path: Path, monkeypatch) -> None:
    prompt, ev = _small_world(tmp_path, monkeypatch, {"Always answer the user.": [1, 0]},
                              [("answer me this", [1, 0]), ("the user asks", [-1, 0])])
    res = prompt_coverage(prompt, ev)
    (r,) = res["rules"]
    assert r["keywords"] == [] and r["n_cases"] == 1
    assert r["cases"][0] | {"record_id": None} == {"record_id": None, "text": "answer me this", "similarity": 1.0,
                                                   "lexical": 0.0, "keywords": [], "match": "embedding"}


def test_three_letter_keywords_count_and_eval_files_without_prompts_are_named(tmp_path: Path) -> None:
    assert _keywords("Never use SQL on RAM disks") == {"sql", "ram", "disk"}
    ev = tmp_path / "texts.jsonl"
    ev.write_text(json.dumps({"prompt": "  ", "completion": "an answer to nothing"}) + "\n", encoding="utf-8")
    prompt = tmp_path / "p.txt"
    prompt.write_text("- Never use SQL on RAM disks.\n", encoding="utf-8")
    with pytest.raises(InputError) as ei:
        prompt_coverage(prompt, ev)
    assert str(ei.value).startswith(f"{ev}: field 'prompt': eval file has no prompt records (roles ")


def test_colon_lines_of_six_words_are_headings_and_of_seven_rules(tmp_path: Path) -> None:
    p = tmp_path / "p.txt"
    p.write_text("One two three four five six:\nOne two three four five six seven:\n", encoding="utf-8")
    assert split_rules(p) == [{"id": "L2", "text": "One two three four five six seven:", "line": 2}]


def test_an_unreadable_yaml_prompt_is_named(tmp_path: Path) -> None:
    d = tmp_path / "dir.yaml"
    d.mkdir()
    with pytest.raises(InputError) as ei:
        split_rules(d)
    assert str(ei.value).startswith(f"{d}: cannot read system prompt rules: ")
