"""The origin rule files' validator and loader (provaudit.origin.rules) pinned message by message.

A user who edits ``rules/origin/*.yaml`` sees one line: the file, the field and what is wrong with which rule
(``file: field 'weight': rule 'my_rule': weight must be a number in [-10, 10]``), and exit code 2. Each case
below is one documented constraint of the rule format (the module docstring and docs/origin.md), written as
the whole line the user reads, the field named, and the values just inside every bound that must still load.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from provaudit.errors import InputError
from provaudit.origin.rules import ROLES, Rule, _parse_rule, load_rule_file, load_rules, regex_error_reason

F = "rules/origin/mine.yaml"
CONTENT = {"id": "my_rule", "kind": "content", "description": "d", "weight": 1, "match": {"regex": "x"},
           "tests": {"match": ["x"]}}
META = {"id": "my_meta", "kind": "metadata", "description": "d", "weight": 1, "match": {"field": "model"},
        "tests": {"match": [{"model": "gpt"}]}}
ALL_ROLES = "['prompt', 'chosen', 'rejected', 'response', 'text']"


def _with(base: dict, **changes) -> dict:
    raw = copy.deepcopy(base)
    for k, v in changes.items():
        if v is _DROP:
            raw.pop(k, None)
        else:
            raw[k] = v
    return raw


_DROP = object()


def _error(raw, idx: int = 0) -> InputError:
    with pytest.raises(InputError) as ei:
        _parse_rule(raw, F, idx)
    return ei.value


# (rule as parsed from YAML, field named, the line's message after the file and field)
BAD = [
    ("not a mapping", ["a"], "rules", "rule #3: must be a mapping"),
    ("a string", "my_rule", "rules", "rule #3: must be a mapping"),
    ("no id", _with(CONTENT, id=_DROP), "id", "rule #3: id must be lower_snake_case"),
    ("empty id", _with(CONTENT, id=""), "id", "rule #3: id must be lower_snake_case"),
    ("id with capitals", _with(CONTENT, id="My-Rule"), "id", "rule 'My-Rule': id must be lower_snake_case"),
    ("id starting with a digit", _with(CONTENT, id="1rule"), "id", "rule '1rule': id must be lower_snake_case"),
    ("id not a string", _with(CONTENT, id=7), "id", "rule '7': id must be lower_snake_case"),
    ("unknown kind", _with(CONTENT, kind="vibes"), "kind", "rule 'my_rule': kind must be 'content' or 'metadata'"),
    ("no kind", _with(CONTENT, kind=_DROP), "kind", "rule 'my_rule': kind must be 'content' or 'metadata'"),
    ("no description", _with(CONTENT, description=_DROP), "description", "rule 'my_rule': description is required"),
    ("blank description", _with(CONTENT, description="  \t"), "description",
     "rule 'my_rule': description is required"),
    ("description not text", _with(CONTENT, description=3), "description", "rule 'my_rule': description is required"),
    ("no weight", _with(CONTENT, weight=_DROP), "weight", "rule 'my_rule': weight must be a number in [-10, 10]"),
    ("weight true", _with(CONTENT, weight=True), "weight", "rule 'my_rule': weight must be a number in [-10, 10]"),
    ("weight as text", _with(CONTENT, weight="1"), "weight", "rule 'my_rule': weight must be a number in [-10, 10]"),
    ("weight above", _with(CONTENT, weight=10.5), "weight", "rule 'my_rule': weight must be a number in [-10, 10]"),
    ("weight below", _with(CONTENT, weight=-10.5), "weight", "rule 'my_rule': weight must be a number in [-10, 10]"),
    ("match not a mapping", _with(CONTENT, match="x"), "match", "rule 'my_rule': match must be a mapping"),
    ("no match", _with(CONTENT, match=_DROP), "match", "rule 'my_rule': match must be a mapping"),
    ("unknown keys", _with(CONTENT, zeta=1, extra=2), "extra", "rule 'my_rule': unknown keys ['extra', 'zeta']"),
    ("no regex", _with(CONTENT, match={}), "match.regex", "rule 'my_rule': content rules need match.regex"),
    ("empty regex", _with(CONTENT, match={"regex": ""}), "match.regex",
     "rule 'my_rule': content rules need match.regex"),
    ("regex not text", _with(CONTENT, match={"regex": 5}), "match.regex",
     "rule 'my_rule': content rules need match.regex"),
    ("min_count 0", _with(CONTENT, match={"regex": "x", "min_count": 0}), "match.min_count",
     "rule 'my_rule': min_count must be a positive integer"),
    ("min_count -1", _with(CONTENT, match={"regex": "x", "min_count": -1}), "match.min_count",
     "rule 'my_rule': min_count must be a positive integer"),
    ("min_count true", _with(CONTENT, match={"regex": "x", "min_count": True}), "match.min_count",
     "rule 'my_rule': min_count must be a positive integer"),
    ("min_count 1.5", _with(CONTENT, match={"regex": "x", "min_count": 1.5}), "match.min_count",
     "rule 'my_rule': min_count must be a positive integer"),
    ("min_count as text", _with(CONTENT, match={"regex": "x", "min_count": "2"}), "match.min_count",
     "rule 'my_rule': min_count must be a positive integer"),
    ("metadata field not model", _with(META, match={"field": "text"}), "match.field",
     "rule 'my_meta': field must be 'model' (or use key)"),
    ("metadata field not model, with a key", _with(META, match={"field": "text", "key": "a"}), "match.field",
     "rule 'my_meta': field must be 'model' (or use key)"),
    ("metadata with neither", _with(META, match={"value": "gpt"}), "match.key",
     "rule 'my_meta': metadata rules need match.field: model or match.key"),
    ("metadata key not text", _with(META, match={"key": 3}), "match.key",
     "rule 'my_meta': metadata rules need match.field: model or match.key"),
    ("roles not a list", _with(CONTENT, roles="chosen"), "roles",
     f"rule 'my_rule': roles must be a list drawn from {ALL_ROLES}"),
    ("no roles", _with(CONTENT, roles=[]), "roles", f"rule 'my_rule': roles must be a list drawn from {ALL_ROLES}"),
    ("unknown role", _with(CONTENT, roles=["chosen", "system"]), "roles",
     f"rule 'my_rule': roles must be a list drawn from {ALL_ROLES}"),
    ("tests a list of examples", _with(CONTENT, tests=["x"]), "tests",
     "rule 'my_rule': tests must be {match: [...], no_match: [...]}"),
    ("tests with another key", _with(CONTENT, tests={"match": ["x"], "maybe": ["y"]}), "tests",
     "rule 'my_rule': tests must be {match: [...], no_match: [...]}"),
    ("tests.match not a list", _with(CONTENT, tests={"match": "x"}), "tests",
     "rule 'my_rule': tests must be {match: [...], no_match: [...]}"),
    ("tests.no_match not a list", _with(CONTENT, tests={"match": ["x"], "no_match": "y"}), "tests",
     "rule 'my_rule': tests must be {match: [...], no_match: [...]}"),
    ("no tests", _with(CONTENT, tests=_DROP), "tests.match", "rule 'my_rule': tests.match needs at least one example"),
    ("empty tests", _with(CONTENT, tests=None), "tests.match",
     "rule 'my_rule': tests.match needs at least one example"),
    ("only no_match", _with(CONTENT, tests={"match": [], "no_match": ["y"]}), "tests.match",
     "rule 'my_rule': tests.match needs at least one example"),
    ("metadata example a string", _with(META, tests={"match": ["gpt"]}), "tests",
     "rule 'my_meta': metadata rule examples are {model: ..., meta: {...}} objects"),
    ("metadata no_match example a string", _with(META, tests={"match": [{"model": "gpt"}], "no_match": ["x"]}),
     "tests", "rule 'my_meta': metadata rule examples are {model: ..., meta: {...}} objects"),
]


@pytest.mark.parametrize(("raw", "field", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_each_broken_rule_gives_its_one_line(raw, field: str, message: str) -> None:
    err = _error(raw, idx=3)
    assert (err.file, err.field, err.line) == (F, field, None)
    assert str(err) == f"{F}: field '{field}': {message}"


@pytest.mark.parametrize(("rx", "reason"), [
    ("(unclosed", "unclosed group at character 1"),
    ("ab(c", "unclosed group at character 3"),
    ("[z-a]", "invalid character class range, the start must be <= the end at character 2"),
    (r"\p{Nope}", "Unicode property not found at character 1"),
])
def test_a_bad_content_regex_says_why_and_where(rx: str, reason: str) -> None:
    """polars' message starts with the bare line ``regex error: regex parse error:``; the user reads the
    Rust regex crate's reason and the 1-based character its carets mark."""
    err = _error(_with(CONTENT, match={"regex": rx}))
    assert str(err) == f"{F}: field 'match.regex': rule 'my_rule': invalid regex ({reason})"


def test_the_regex_reason_of_other_messages() -> None:
    # no "error:" line: the first line, cut to 120 characters; a pattern of several lines gets no position
    assert regex_error_reason("x" * 130 + "\nmore", "p") == "x" * 120
    assert regex_error_reason("", "p") == "unparseable"
    multi = "regex error: regex parse error:\n    a\n    ^\nerror: something " + "y" * 200 + "\n"
    assert regex_error_reason(multi, "a") == ("something " + "y" * 200 + " at character 1")[:120]
    assert regex_error_reason(multi.replace("y" * 200, "bad"), "(?x)a\nb") == "something bad"
    assert regex_error_reason("error: no caret here", "a") == "no caret here"


@pytest.mark.parametrize("fld", ["key", "value"])
def test_a_bad_metadata_regex_names_its_field_and_pythons_reason(fld: str) -> None:
    match = {"key": "^source$", fld: "(unclosed"}
    with pytest.raises(re.error) as ref:
        re.compile("(unclosed")
    err = _error(_with(META, match=match))
    assert str(err) == f"{F}: field 'match.{fld}': rule 'my_meta': invalid regex ({ref.value})"
    # a value pattern with the model field is checked too
    if fld == "value":
        err = _error(_with(META, match={"field": "model", "value": "[z-a]"}))
        assert err.field == "match.value" and "invalid regex (bad character range z-a" in str(err)


def test_the_bounds_that_must_still_load() -> None:
    for w in (-10, 10, -10.0, 10.0, 0, 0.25):
        assert _parse_rule(_with(CONTENT, weight=w), F, 0).weight == float(w)
    for mc in (1, 2, 40):
        assert _parse_rule(_with(CONTENT, match={"regex": "x", "min_count": mc}), F, 0).match["min_count"] == mc
    ok = _parse_rule(_with(CONTENT, id="a", tests={"match": ["x"], "no_match": []}), F, 0)
    assert ok.id == "a" and ok.tests == {"match": ["x"], "no_match": []}
    assert _parse_rule(_with(META, match={"key": "^source$"}), F, 0).match == {"key": "^source$"}
    assert _parse_rule(_with(META, match={"field": "model", "value": "(?i)gpt"}), F, 0).match["value"] == "(?i)gpt"


def test_a_parsed_rule_keeps_each_field_and_the_documented_defaults() -> None:
    raw = _with(CONTENT, description="  Signs off as a bot.  ", weight=2, match={"regex": "beep", "min_count": 2},
                tests={"match": ["beep beep"], "no_match": ["beep"]})
    r = _parse_rule(raw, F, 0)
    assert r == Rule(id="my_rule", kind="content", description="Signs off as a bot.", weight=2.0,
                     match={"regex": "beep", "min_count": 2}, roles=ROLES,
                     tests={"match": ["beep beep"], "no_match": ["beep"]}, source=F)
    assert isinstance(r.weight, float) and isinstance(r.roles, tuple)
    # the rule's match is its own copy: editing the parsed YAML later does not change the rule
    raw["match"]["regex"] = "boop"
    assert r.match["regex"] == "beep"
    # a metadata rule applies to every role but the prompt unless it says otherwise
    m = _parse_rule(META, F, 0)
    assert (m.kind, m.roles, m.source) == ("metadata", ("chosen", "rejected", "response", "text"), F)
    assert _parse_rule(_with(META, roles=["prompt"]), F, 0).roles == ("prompt",)
    assert _parse_rule(_with(CONTENT, roles=["chosen", "rejected"]), F, 0).roles == ("chosen", "rejected")


def _write(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


RULE_A = ("  - id: {id}\n    kind: content\n    description: {desc}\n    weight: {w}\n"
          "    match: {{regex: '{rx}'}}\n    tests: {{match: ['{rx}']}}\n")


def _rule_yaml(rid: str, rx: str = "x", desc: str = "d", w: float = 1) -> str:
    return RULE_A.format(id=rid, rx=rx, desc=desc, w=w)


def test_rule_files_empty_malformed_and_duplicated(tmp_path: Path) -> None:
    assert load_rule_file(_write(tmp_path / "empty.yaml", "")) == []
    assert load_rule_file(_write(tmp_path / "comment.yaml", "# nothing yet\n")) == []
    for name, body in (("list.yaml", "- id: a\n"), ("norules.yaml", "other: 1\n"), ("scalar.yaml", "rules: x\n"),
                       ("map.yaml", "rules: {id: a}\n")):
        f = _write(tmp_path / name, body)
        with pytest.raises(InputError) as ei:
            load_rule_file(f)
        assert str(ei.value) == f"{f}: field 'rules': expected a mapping with a 'rules' list"
    f = _write(tmp_path / "dup.yaml", "rules:\n" + _rule_yaml("a") + _rule_yaml("b") + _rule_yaml("a", "y"))
    with pytest.raises(InputError) as ei:
        load_rule_file(f)
    assert str(ei.value) == f"{f}: field 'id': rule 'a': duplicate id"
    # a broken rule is numbered by its place in the file (0-based) when it has no id to name it by
    f = _write(tmp_path / "third.yaml", "rules:\n" + _rule_yaml("a") + _rule_yaml("b") + "  - kind: content\n")
    with pytest.raises(InputError) as ei:
        load_rule_file(f)
    assert str(ei.value) == f"{f}: field 'id': rule #2: id must be lower_snake_case"
    rules = load_rule_file(_write(tmp_path / "ok.yaml", "rules:\n" + _rule_yaml("b", "y") + _rule_yaml("a")))
    assert [(r.id, r.match["regex"], r.source) for r in rules] == [("b", "y", str(tmp_path / "ok.yaml")),
                                                                   ("a", "x", str(tmp_path / "ok.yaml"))]


def test_rule_folders_load_in_name_order_and_later_ids_win(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    _write(first / "b.yml", "rules:\n" + _rule_yaml("from_b"))
    _write(first / "a.yaml", "rules:\n" + _rule_yaml("shared", "one") + _rule_yaml("from_a"))
    _write(first / "notes.txt", "rules: [not, rules]\n")  # neither .yaml nor .yml: not read
    _write(second / "z.yaml", "rules:\n" + _rule_yaml("shared", "two", w=-2))
    rs = load_rules([first], bundled=False)
    assert rs.ids == ["shared", "from_a", "from_b"]
    # a later folder's rule of the same id replaces the earlier one and takes its place at the end
    rs = load_rules([first, second], bundled=False)
    assert rs.ids == ["from_a", "from_b", "shared"]
    assert (rs.get("shared").match["regex"], rs.get("shared").weight) == ("two", -2.0)
    assert rs.get("shared").source == str(second / "z.yaml")
    # a single file is a rules path too, and the bundled rules come first unless left out
    single = load_rules([second / "z.yaml"], bundled=False)
    assert single.ids == ["shared"]
    bundled = load_rules()
    with_mine = load_rules([first])
    assert with_mine.ids == bundled.ids + ["shared", "from_a", "from_b"]
    assert load_rules([], bundled=False).ids == [] and load_rules(None, bundled=False).ids == []


def test_a_missing_rules_path_is_named(tmp_path: Path) -> None:
    gone = tmp_path / "nope"
    with pytest.raises(InputError) as ei:
        load_rules([gone], bundled=False)
    assert str(ei.value) == f"{gone}: rules path not found" and ei.value.field is None
    with pytest.raises(InputError) as ei:
        load_rule_file(gone / "mine.yaml")
    assert str(ei.value) == f"{gone / 'mine.yaml'}: rules file not found"
    bad = _write(tmp_path / "bad.yaml", "rules:\n  - id: a\n    kind: [content\n")
    with pytest.raises(InputError) as ei:
        load_rule_file(bad)
    # the unclosed list of line 3 is noticed where the file ends (line 4)
    assert str(ei.value) == f"{bad}:4: invalid YAML (did not find expected ',' or ']')" and ei.value.line == 4


def _rule(rid: str, kind: str, match: dict, roles=ROLES, tests: dict | None = None) -> Rule:
    return Rule(id=rid, kind=kind, description=rid, weight=1.0, match=match, roles=tuple(roles),
                tests=tests or {}, source="t.yaml")


def test_rule_examples_run_as_records_of_a_role_the_rule_applies_to() -> None:
    from provaudit.origin.rules import RuleSet

    # a prompt-only content rule: its examples are prompts (as responses it could never fire)
    prompt_only = _rule("p", "content", {"regex": "please"}, roles=("prompt",),
                        tests={"match": ["please do"], "no_match": ["do it"]})
    assert RuleSet([prompt_only]).test() == []
    # a content rule for every role: its examples are responses; a text with no model and no metadata
    everywhere = _rule("c", "content", {"regex": "^beep$"}, tests={"match": ["beep"], "no_match": ["beep beep"]})
    assert RuleSet([everywhere]).test() == []
    # metadata examples: the example's model and metadata (nested, in any key order), its role if it names one
    meta = _rule("m", "metadata", {"key": r"^gen\.temperature$", "value": "^0\\.7$"}, roles=("chosen", "rejected"),
                 tests={"match": [{"meta": {"gen": {"top_p": 1, "temperature": 0.7}}}],
                        "no_match": [{"meta": {"gen": {"temperature": 0.7}}, "role": "prompt"},
                                     {"meta": {"gen": {"temperature": 0.2}}}, {}]})
    assert RuleSet([meta]).test() == []
    model = _rule("gpt", "metadata", {"field": "model", "value": "(?i)gpt"},
                  tests={"match": [{"model": "gpt-4"}], "no_match": [{"model": "llama"}, {"meta": {"model": "gpt"}}]})
    assert RuleSet([model]).test() == []
    # and the failures say which example of which rule went the wrong way
    wrong = _rule("m2", "metadata", {"key": "^src$"}, tests={"match": [{"meta": {"other": 1}}],
                                                            "no_match": [{"meta": {"src": "x"}, "role": "chosen"}]})
    assert RuleSet([wrong]).test() == ["t.yaml: rule 'm2': example expected to match: {'meta': {'other': 1}}",
                                       ("t.yaml: rule 'm2': example expected to not match: "
                                        "{'meta': {'src': 'x'}, 'role': 'chosen'}")]


def test_metadata_rules_on_records_without_model_or_meta_columns() -> None:
    import json

    import numpy as np
    import polars as pl

    from provaudit.origin.rules import RuleSet

    rules = RuleSet([_rule("any_model", "metadata", {"field": "model"}),
                     _rule("src", "metadata", {"key": "^src$"})])
    only_meta = pl.DataFrame({"text": ["a", "b", "c"], "meta": [json.dumps({"src": 1}), "{}", "null"]})
    fired, weight = rules.apply(only_meta)
    assert fired == [["src"], [], []] and weight.tolist() == [1.0, 0.0, 0.0]
    only_model = pl.DataFrame({"text": ["a", "b"], "model": ["gpt", None]})
    fired, weight = rules.apply(only_model)
    assert fired == [["any_model"], []] and weight.dtype == np.float64
    # the same metadata text under two models: each (model, meta) pair answers for itself
    both = pl.DataFrame({"model": ["gpt", None, "gpt", None], "meta": ['{"src": 1}', '{"src": 1}', "{}", "{}"]})
    assert rules.apply(both)[0] == [["any_model", "src"], ["src"], ["any_model"], []]
    # metadata that is not JSON, or JSON that is not an object, gives no key
    odd = pl.DataFrame({"meta": ["{not json", '"src"', "[1, 2]", '{"src": null}']})
    assert rules.apply(odd)[0] == [[], [], [], ["src"]]
