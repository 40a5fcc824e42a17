"""Origin rules: bundled YAML rules pass their own examples; bad files fail with one clear line."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from provaudit.errors import InputError
from provaudit.origin import load_rules
from provaudit.origin.rules import bundled_rules_dir

ROOT = Path(__file__).resolve().parent.parent


def _frame(rows):
    return pl.DataFrame(rows, schema={"text": pl.Utf8, "role": pl.Utf8, "model": pl.Utf8, "meta": pl.Utf8})


def test_bundled_rules_examples_pass():
    rs = load_rules()
    assert len(rs.rules) >= 12
    assert {r.kind for r in rs.rules} == {"content", "metadata"}
    assert rs.test() == []


def test_bundled_rules_are_the_editable_rules_folder(tmp_path, monkeypatch):
    assert bundled_rules_dir().resolve() == (ROOT / "rules" / "origin").resolve()
    # a user's copy of rules/ (PROVAUDIT_RULES) is what loads: an edit there takes effect
    (tmp_path / "origin").mkdir()
    for f in (ROOT / "rules" / "origin").glob("*.yaml"):
        (tmp_path / "origin" / f.name).write_text(f.read_text(encoding="utf-8").replace(
            "id: sig_as_an_ai", "id: sig_as_an_ai_edited"), encoding="utf-8")
    monkeypatch.setenv("PROVAUDIT_RULES", str(tmp_path))
    assert "sig_as_an_ai_edited" in load_rules().ids


def test_content_and_metadata_rules_fire_on_a_batch():
    rs = load_rules()
    df = _frame([
        {"text": "As an AI language model, I cannot do that.", "role": "response", "model": None, "meta": "{}"},
        {"text": "The bus was late again today.", "role": "chosen", "model": "gpt-4", "meta": "{}"},
        {"text": "Write me a poem.", "role": "prompt", "model": "gpt-4",
         "meta": json.dumps({"gen": {"temperature": 0.7}, "annotator": "alpaca_eval_gpt4"})},
        {"text": "Nothing here.", "role": "response", "model": None, "meta": json.dumps({"gen": {"top_p": 0.9}})},
    ])
    fired, weight = rs.apply(df)
    assert fired[0] == ["sig_as_an_ai"] and weight[0] == pytest.approx(4.0)
    assert fired[1] == ["meta_model_column"]
    # metadata rules default to output roles: only the judge rule (roles include prompt) fires on a prompt
    assert fired[2] == ["meta_llm_judge"] and weight[2] == 0.0
    assert fired[3] == ["meta_generation_params"]


def test_user_rules_add_and_override(tmp_path):
    (tmp_path / "mine.yaml").write_text("""
rules:
  - id: sig_hope_this_helps
    kind: content
    description: overridden weight
    weight: 0.5
    match: {regex: '(?i)hope this helps'}
    tests: {match: ["hope this helps"]}
  - id: house_style
    kind: content
    description: our annotation tool's boilerplate
    weight: -2
    match: {regex: 'ANNOTATED-BY-HUMAN'}
    tests: {match: ["x ANNOTATED-BY-HUMAN"], no_match: ["annotated"]}
""")
    rs = load_rules([tmp_path])
    assert rs.get("sig_hope_this_helps").weight == 0.5
    assert rs.get("house_style").weight == -2.0
    assert rs.test() == []
    assert len(rs.rules) == len(load_rules().rules) + 1


@pytest.mark.parametrize("body,field,needle", [
    (("rules:\n  - id: bad_re\n    kind: content\n    description: d\n    weight: 1\n"
     "    match: {regex: '(unclosed'}\n    tests: {match: ['x']}\n"), "match.regex", "bad_re"),
    (("rules:\n  - id: no_weight\n    kind: content\n    description: d\n"
     "    match: {regex: 'x'}\n    tests: {match: ['x']}\n"), "weight", "no_weight"),
    (("rules:\n  - id: wrong_kind\n    kind: vibes\n    description: d\n    weight: 1\n"
     "    match: {regex: 'x'}\n    tests: {match: ['x']}\n"), "kind", "wrong_kind"),
    (("rules:\n  - id: no_tests\n    kind: content\n    description: d\n    weight: 1\n"
     "    match: {regex: 'x'}\n"), "tests.match", "no_tests"),
])
def test_bad_rule_names_file_rule_and_field(tmp_path, body, field, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(InputError) as ei:
        load_rules([f])
    msg = str(ei.value)
    assert str(f) in msg and needle in msg and ei.value.field == field
    assert "\n" not in msg


def test_invalid_yaml_names_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("rules:\n  - id: a\n    kind: [content\n")
    with pytest.raises(InputError) as ei:
        load_rules([f])
    assert ei.value.file == str(f) and ei.value.line is not None


def test_failing_example_is_reported(tmp_path):
    (tmp_path / "r.yaml").write_text("""
rules:
  - id: needs_cat
    kind: content
    description: d
    weight: 1
    match: {regex: 'cat'}
    tests: {match: ["dog"]}
""")
    failures = load_rules([tmp_path], bundled=False).test()
    assert len(failures) == 1 and "needs_cat" in failures[0]
