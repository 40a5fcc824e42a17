"""The origin rule engine (provaudit.origin.rules) pinned on hand-written rules and records.

Expected values are worked by hand from the documented behaviour: a content rule fires where its regex
matches at least ``min_count`` times in a record of one of its roles; a metadata rule fires on a record's
``model`` field, or on a key/value pair of its JSON metadata (nested keys dotted, list items under their
parent key), a missing value pattern meaning "the key is present"; a record's weight is the sum of the
weights of the rules that fired, its fired list in rule order; word boundaries are stripped only to build
an exact prefilter, never changing what matches.
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from provaudit.origin.rules import Rule, RuleSet, _flatten, _strip_word_boundaries, load_rule_file


def _rule(rid: str, kind: str, match: dict, weight: float = 1.0, roles=("chosen", "rejected", "response", "text"),
          tests: dict | None = None) -> Rule:
    return Rule(id=rid, kind=kind, description=rid, weight=weight, match=match, roles=tuple(roles),
                tests=tests or {}, source="test.yaml")


def _records(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([{"text": r.get("text", ""), "role": r.get("role", "response"), "model": r.get("model"),
                          "meta": json.dumps(r["meta"]) if "meta" in r else "{}"} for r in rows],
                        schema={"text": pl.Utf8, "role": pl.Utf8, "model": pl.Utf8, "meta": pl.Utf8})


def test_flatten_by_hand() -> None:
    obj = {"a": {"b": 1, "c": [1, {"d": None}, [True]]}, "e": None, "f": "x"}
    assert _flatten(obj) == [("a", ""), ("a.b", "1"), ("a.c", ""), ("a.c", "1"), ("a.c.d", ""), ("a.c", "True"),
                             ("e", ""), ("f", "x")]
    assert _flatten([{"k": 2}, None], "p") == [("p.k", "2"), ("p", "")]
    assert _flatten("scalar") == [] and _flatten({}) == []


def test_content_rules_count_roles_and_weights() -> None:
    rules = RuleSet([
        _rule("delve", "content", {"regex": r"(?i)\bdelve\b"}, weight=2.0),
        _rule("twice", "content", {"regex": "as an ai", "min_count": 2}, weight=0.5),
        _rule("prompt_only", "content", {"regex": "please"}, weight=1.5, roles=("prompt",)),
    ])
    recs = _records([
        {"text": "Let us Delve in."},                                    # delve
        {"text": "delved deeper, delving"},                               # no word \bdelve\b
        {"text": "as an ai, as an ai model"},                             # twice (2 matches)
        {"text": "as an ai model"},                                       # one match: not enough
        {"text": "please delve", "role": "prompt"},                       # prompt_only; delve is not for prompts
        {"text": "please", "role": "chosen"},                             # prompt_only is prompts only
        {"text": "DELVE as an ai as an ai please", "role": "rejected"},   # delve + twice
    ])
    fired, weight = rules.apply(recs)
    assert fired == [["delve"], [], ["twice"], [], ["prompt_only"], [], ["delve", "twice"]]
    assert weight.tolist() == [2.0, 0.0, 0.5, 0.0, 1.5, 0.0, 2.5]
    assert rules.ids == ["delve", "twice", "prompt_only"] and rules.get("twice").weight == 0.5
    with pytest.raises(KeyError) as ei:
        rules.get("missing")
    assert ei.value.args == ("missing",)


def test_records_without_roles_or_texts() -> None:
    rules = RuleSet([_rule("x", "content", {"regex": "x"}, roles=("prompt",))])
    # no role column: every rule applies whatever its roles
    fired, weight = rules.apply(pl.DataFrame({"text": ["x", "y", None]}))
    assert fired == [["x"], [], []] and weight.tolist() == [1.0, 0.0, 0.0]
    # no text column: no content rule fires; an empty batch gives nothing
    assert rules.apply(pl.DataFrame({"role": ["prompt"]}))[0] == [[]]
    fired, weight = rules.apply(_records([]))
    assert fired == [] and weight.shape == (0,)
    none_fired, w = RuleSet([]).apply(_records([{"text": "x"}, {"text": "y"}]))
    assert none_fired == [[], []] and w.tolist() == [0.0, 0.0]
    # a missing text is no text: a rule matching any character does not fire on it
    anything = RuleSet([_rule("any", "content", {"regex": "(?s)."})])
    assert anything.apply(pl.DataFrame({"text": [None, "a"]}, schema={"text": pl.Utf8}))[0] == [[], ["any"]]
    assert anything.apply(pl.DataFrame({"role": ["response"]}))[0] == [[]]
    # metadata rules on an empty batch
    meta = RuleSet([_rule("m", "metadata", {"key": "^k$"}), _rule("f", "metadata", {"field": "model"})])
    fired, weight = meta.apply(_records([]))
    assert fired == [] and weight.shape == (0,)


def test_metadata_rules_by_model_field_key_and_value() -> None:
    rules = RuleSet([
        _rule("gpt_model", "metadata", {"field": "model", "value": "(?i)gpt"}, weight=3.0),
        _rule("any_model", "metadata", {"field": "model"}, weight=0.25),
        _rule("judge", "metadata", {"key": r"^annotator\.type$", "value": "^llm$"}, weight=2.0),
        _rule("has_source", "metadata", {"key": "^source$"}, weight=1.0),
        _rule("tag_synth", "metadata", {"key": "^tags$", "value": "^synthetic$"}, weight=1.0, roles=("chosen",)),
    ])
    recs = _records([
        {"model": "GPT-4o"},                                                  # gpt_model + any_model
        {"model": "llama-3"},                                                 # any_model
        {"model": ""},                                                        # an empty model is none
        {"meta": {"annotator": {"type": "llm"}}},                             # judge
        {"meta": {"annotator": {"type": "llm-assisted"}}},                    # value anchored: no
        {"meta": {"source": None}},                                           # has_source (key present)
        {"meta": {"tags": ["x", "synthetic"]}, "role": "chosen"},             # tag_synth (list item)
        {"meta": {"tags": ["synthetic"]}, "role": "response"},                # tag_synth is chosen only
        {"text": "", "meta": None},                                           # "null"
    ])
    recs = recs.with_columns(pl.when(pl.int_range(pl.len()) == 8).then(pl.lit("not json")).otherwise(pl.col("meta"))
                             .alias("meta"))
    fired, weight = rules.apply(recs)
    assert fired == [["gpt_model", "any_model"], ["any_model"], [], ["judge"], [], ["has_source"], ["tag_synth"], [], []]
    assert weight.tolist() == [3.25, 0.25, 0.0, 2.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    # the same (model, meta) twice gives the same answer (evaluated once)
    again, _ = rules.apply(pl.concat([recs.slice(3, 1), recs.slice(3, 1), recs.slice(0, 1)]))
    assert again == [["judge"], ["judge"], ["gpt_model", "any_model"]]


def test_a_metadata_value_pattern_needs_a_non_empty_value() -> None:
    rules = RuleSet([_rule("v", "metadata", {"key": "^k$", "value": ".*"})])
    fired, _ = rules.apply(_records([{"meta": {"k": None}}, {"meta": {"k": ""}}, {"meta": {"k": "a"}}]))
    assert fired == [[], [], ["v"]]


@pytest.mark.parametrize(("rx", "want"), [
    (r"\bdelve\b", "delve"), (r"(?i)\b(?:tapestry|delve)\b", "(?i)(?:tapestry|delve)"),
    (r"\Bing\b", "ing"), ("plain", None), (r"[\w]x\b", r"[\w]x"), (r"a\b{2}", None), ("[abc", None),
    (r"[]a]z\b", "[]a]z"), (r"[^]a]\bq", "[^]a]q"), (r"x[\]]\b", r"x[\]]"), (r"\d+\b", r"\d+"), (r"\b(", None),
    (r"[\b]x\b", None),  # a \b inside a class is kept, and Rust's regex refuses it there: no prefilter
    # the same for a class opened by ^, by a literal ], or inside another class; and \b{...} past the start
    (r"[\ba]x\b", None), (r"[^]\ba]\b", None), (r"[]\ba]\b", None), (r"[a[b]\bc]\b", None),
    (r"cats\b{2}", None), (r"[^a]\b", "[^a]"), (r"[a[b]c]\b", "[a[b]c]"),
])
def test_strip_word_boundaries_by_hand(rx: str, want: str | None) -> None:
    assert _strip_word_boundaries(rx) == want


def test_the_prefilter_never_changes_a_verdict() -> None:
    rules = RuleSet([_rule("w", "content", {"regex": r"\bcat\b", "min_count": 2}),
                     _rule("u", "content", {"regex": r"(?i)\bnaïve\b"})])
    texts = ["cat cat", "cat concatenate cat", "cats cat", "concat cat", "Naïve idea", "naïveté", "", "CAT cat"]
    fired, _ = rules.apply(pl.DataFrame({"text": texts}))
    import re

    want = [[rid for rid, rx, k in (("w", r"\bcat\b", 2), ("u", r"(?i)\bnaïve\b", 1)) if len(re.findall(rx, t)) >= k]
            for t in texts]
    assert fired == want and fired[1] == ["w"] and fired[2] == []


def test_rule_examples_are_run_and_failures_named(tmp_path) -> None:
    good = RuleSet([_rule("c", "content", {"regex": "beep"}, tests={"match": ["beep boop"], "no_match": ["boop"]}),
                    _rule("m", "metadata", {"key": "^src$", "value": "^gpt$"},
                          tests={"match": [{"meta": {"src": "gpt"}}], "no_match": [{"meta": {"src": "human"}},
                                                                                  {"meta": {"src": "gpt"}, "role": "prompt"}]})])
    assert good.test() == []
    bad = RuleSet([_rule("c", "content", {"regex": "beep"}, tests={"match": ["boop"], "no_match": ["beep"]})])
    assert bad.test() == ["test.yaml: rule 'c': example expected to match: 'boop'",
                          "test.yaml: rule 'c': example expected to not match: 'beep'"]
    f = tmp_path / "mine.yaml"
    f.write_text("rules:\n  - id: my_rule\n    kind: content\n    description: d\n    weight: 0.5\n"
                 "    match:\n      regex: 'x+'\n      min_count: 2\n    tests:\n      match: ['x x']\n"
                 "      no_match: ['x']\n", encoding="utf-8")
    (r,) = load_rule_file(f)
    assert (r.id, r.kind, r.weight, r.match, r.source) == ("my_rule", "content", 0.5, {"regex": "x+", "min_count": 2},
                                                          str(f))
    assert np.array_equal(RuleSet([r]).apply(pl.DataFrame({"text": ["x", "x x", "xx"]}))[1], [0.0, 0.5, 0.0])
