"""Overlap that means contamination: trivial texts (empty, short, boilerplate) never trip the leak checks,
real leaks of long or short-but-specific eval records do."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from provaudit.contamination import MIN_WORDS, trivial_reason
from provaudit.fingerprint import normalize_text
from provaudit.pipeline import register, scan

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "fixtures" / "scan" / "hh_rlhf.jsonl.gz"          # HH-RLHF harmless test rows 0-199
BATCH = ROOT / "fixtures" / "overlap" / "hh_rlhf_1001_1600.jsonl.gz"  # rows 1001-1600 of the same file
MATH = ROOT / "fixtures" / "overlap" / "alpaca_eval_math.json"
GATE = ROOT / "rules" / "gate.yaml"


def _last_turn(transcript: str) -> str:
    """The final assistant turn of an HH-RLHF transcript (what the hh_rlhf schema makes chosen/rejected)."""
    return transcript.rsplit("\n\nAssistant:", 1)[-1].strip()


def _rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    cat = tmp_path_factory.mktemp("cat") / "c.duckdb"
    register(EVAL, tags=["eval"], catalog=cat)
    return cat


def _check(result, cid: str) -> dict:
    return next(c for c in result.summary["gate"]["checks"] if c["id"] == cid)


def test_issue_case_boilerplate_is_not_an_eval_leak(catalog: Path) -> None:
    # independent: the batch's final responses whose text equals an eval final response
    eval_texts = {normalize_text(_last_turn(r[k])) for r in _rows(EVAL) for k in ("chosen", "rejected")}
    shared = [t for r in _rows(BATCH) for k in ("chosen", "rejected")
              if normalize_text(t := _last_turn(r[k])) in eval_texts]
    assert len(shared) >= 8 and all(_words(t) < MIN_WORDS for t in shared)  # You're welcome., What do you mean?, ''
    res = scan(BATCH, catalog=catalog, gate=GATE, record=False, origin=False)
    (ov,) = res.summary["overlap"]["datasets"]
    assert ov["exact_records"] == 0 and ov["trivial_exact_records"] >= len(shared)
    reasons = {e["reason"] for e in ov["trivial_examples"]}
    assert "short" in reasons and "empty" in reasons
    assert _check(res, "no_eval_exact_overlap")["status"] == "pass"
    assert res.passed, [c for c in res.summary["gate"]["checks"] if c["status"] == "fail"]
    # empty responses (no word: "" or "......") are a finding of their own, counted from the raw file
    n_empty = sum(_words(_last_turn(r[k])) == 0 for r in _rows(BATCH) for k in ("chosen", "rejected"))
    dup = res.summary["duplicates"]
    assert n_empty >= 1 and dup["empty_records"] == n_empty
    assert dup["empty_rate"] == round(n_empty / dup["records"], 6)
    assert dup["exact_duplicates"] == 0 and dup["trivial_records"] >= 1
    assert _check(res, "max_empty_output_rate")["value"] == dup["empty_rate"]


def test_planted_leaks_of_long_eval_records_fail_the_gate(catalog: Path, tmp_path: Path) -> None:
    long_texts = [t for r in _rows(EVAL) if _words(t := _last_turn(r["chosen"])) >= 20][:12]
    assert len(long_texts) == 12
    leak = tmp_path / "leak.jsonl"
    leak.write_text("".join(json.dumps({"prompt": "Continue.", "completion": t}) + "\n" for t in long_texts))
    res = scan([BATCH, leak], catalog=catalog, gate=GATE, record=False, origin=False)
    (ov,) = res.summary["overlap"]["datasets"]
    assert ov["exact_records"] == len(long_texts)  # every planted leak, nothing else
    assert all(e.startswith("leak:") for e in ov["examples"])
    fail = _check(res, "no_eval_exact_overlap")
    assert fail["status"] == "fail" and fail["reason"] == f"{len(long_texts)} exceeds max 0"
    assert not res.passed


def test_a_short_but_specific_leak_fails_and_a_short_generic_match_does_not(tmp_path: Path) -> None:
    rows = json.loads(MATH.read_text())
    equation = rows[2]["instruction"].splitlines()[-1]  # AlpacaEval: "x^3 - 4x^2 + 6x - 24 = 0"
    assert _words(equation) < MIN_WORDS and trivial_reason(equation) is None
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps({"prompt": p, "completion": r["output"]}) + "\n"
                          for p, r in zip([equation, "What do you mean?", "Thank you!"], rows)))
    cat = tmp_path / "c.duckdb"
    register(ev, tags=["eval"], catalog=cat)
    generic = tmp_path / "generic.jsonl"
    generic.write_text(json.dumps({"prompt": "What do you mean?", "completion": "Thank you!"}) + "\n")
    ok = scan(generic, catalog=cat, gate=GATE, record=False, origin=False)
    assert ok.summary["overlap"]["datasets"][0]["trivial_exact_records"] == 2 and ok.passed
    specific = tmp_path / "specific.jsonl"
    specific.write_text(json.dumps({"prompt": equation, "completion": "x = 4"}) + "\n")
    bad = scan(specific, catalog=cat, gate=GATE, record=False, origin=False)
    assert bad.summary["overlap"]["datasets"][0]["exact_records"] == 1
    assert "no_eval_exact_overlap" in bad.summary["gate"]["failed"]


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("  \n ", "empty"), ("...", "empty"), ("You’re welcome!", "short"),
    ("What do you mean?", "short"), ("I have 2 cats.", "short"),
    ("What is 48 / 2 + 17?", None), ("Natalia sold clips to 48 of her friends in April.", None),
    ("w " * 13, None), ("w " * 12, "short"),
    ("Is there anything else I can help you with today?", "short"),   # stock line, nothing specific
    ("Who was the first president of the United States?", None),      # 9 words with a name
    ("Who was the first president of the country?", "short"),
])
def test_trivial_reason_follows_the_documented_rule(text: str, reason: str | None) -> None:
    assert trivial_reason(text) == reason


def test_boilerplate_recurring_in_many_rows_is_reported_apart(tmp_path: Path) -> None:
    # a 15-word refusal in 6 rows of an eval set and in the batch: boilerplate, not a leak;
    # a 13-19 word answer that occurs once in each is a leak
    refusal = "I'm sorry, but I cannot help you with that request, it is against my guidelines."
    assert trivial_reason(refusal) is None
    answer = next(t for r in _rows(EVAL) if 13 <= _words(t := _last_turn(r["chosen"])) < 20)
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps({"prompt": f"question number {i} about chemistry homework please",
                                      "completion": refusal}) + "\n" for i in range(6))
                  + json.dumps({"prompt": "unrelated prompt with enough words to be substantive here",
                                "completion": answer}) + "\n")
    cat = tmp_path / "c.duckdb"
    register(ev, tags=["eval"], catalog=cat)
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"prompt": "Hi.", "completion": refusal}) + "\n"
                     + json.dumps({"prompt": "Hello.", "completion": answer}) + "\n")
    res = scan(batch, catalog=cat, gate=GATE, record=False, origin=False)
    (ov,) = res.summary["overlap"]["datasets"]
    assert ov["exact_records"] == 1 and ov["examples"] == ["b:1:response"]
    assert {(e["record_id"], e["reason"], e["match"]) for e in ov["trivial_examples"]} >= {
        ("b:0:response", "boilerplate", "exact")}


REUSED = ROOT / "fixtures" / "overlap" / "hh_rlhf_reused_answer.jsonl"  # HH-RLHF rows 237 and 2291


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_response_reused_under_another_question_is_not_a_leak_but_the_case_is(tmp_path) -> None:
    first, second = (json.loads(line) for line in REUSED.read_text(encoding="utf-8").splitlines())
    answer = _last_turn(first["rejected"])
    # independent: the same long answer closes both rows, after different final questions
    assert answer == _last_turn(second["rejected"]) and _words(answer) >= 100
    assert first["rejected"].rsplit("\n\nAssistant:", 1)[0] != second["rejected"].rsplit("\n\nAssistant:", 1)[0]
    cat = tmp_path / "c.duckdb"
    register(_jsonl(tmp_path / "eval.jsonl", [first]), tags=["eval"], catalog=cat)
    res = scan(_jsonl(tmp_path / "batch.jsonl", [second]), catalog=cat, gate=GATE, record=False, origin=False)
    (ov,) = res.summary["overlap"]["datasets"]
    assert ov["exact_records"] == 0 and ov["reused_records"] == 1
    assert ov["reused_examples"][0]["record_id"].endswith(":0:rejected") and ov["reused_examples"][0]["match"] == "exact"
    assert res.summary["overlap"]["by_tag"]["eval"]["eval"]["reused_records"] == 1
    assert _check(res, "no_eval_exact_overlap")["status"] == "pass" and res.passed
    # the same answer without a question of its own (nothing says it answers another case): a leak
    bare = _jsonl(tmp_path / "bare.jsonl", [{"prompt": "Continue.", "completion": answer}])
    leak = scan(bare, catalog=cat, gate=GATE, record=False, origin=False)
    assert leak.summary["overlap"]["datasets"][0]["exact_records"] == 1
    assert "no_eval_exact_overlap" in leak.summary["gate"]["failed"]
    # the eval case itself (its prompt and answers) in another file: its prompt and its long answer leak
    case = scan(_jsonl(tmp_path / "case.jsonl", [second, first]), catalog=cat, gate=GATE, record=False, origin=False)
    (ov,) = case.summary["overlap"]["datasets"]
    # row 1's chosen answer ("What does the price of popcorn have to do with it?") is short: trivial
    assert trivial_reason(_last_turn(first["chosen"])) == "short"
    assert ov["exact_records"] == 2 and ov["reused_records"] == 1 and ov["trivial_exact_records"] == 1
    assert [e["record_id"] for e in ov["reused_examples"]] == ["case:0:rejected"]  # not the leaks or the trivial
    assert sorted(ov["examples"]) == ["case:1:prompt", "case:1:rejected"]


def test_an_eval_answer_under_a_trivial_eval_question_is_a_leak_under_any_batch_question(tmp_path) -> None:
    """docs/overlap.md: an answer is reused (not a leak) only when *both* rows have substantive questions. An eval
    case "Continue." + a long answer is its answer: the same answer under a substantive batch question leaks it."""
    first, _ = (json.loads(line) for line in REUSED.read_text(encoding="utf-8").splitlines())
    answer = _last_turn(first["rejected"])
    assert trivial_reason("Continue.") == "short" and _words(answer) >= 100
    cat = tmp_path / "c.duckdb"
    register(_jsonl(tmp_path / "eval.jsonl", [{"prompt": "Continue.", "completion": answer}]), tags=["eval"],
             catalog=cat)
    batch = _jsonl(tmp_path / "b.jsonl", [{"prompt": "Explain in a few sentences what you would tell a friend who "
                                                     "asked you this question at dinner.", "completion": answer}])
    (ov,) = scan(batch, catalog=cat, gate=GATE, record=False, origin=False).summary["overlap"]["datasets"]
    assert (ov["exact_records"], ov["reused_records"]) == (1, 0)
    # the catalog stored the eval row's word counts and trivial class (counted here from the texts)
    import duckdb

    con = duckdb.connect(str(cat), read_only=True)
    stored = dict(con.execute("SELECT role, (n_words, trivial) FROM records").fetchall())
    con.close()
    assert stored == {"prompt": (1, "short"), "response": (_words(answer), None)}


#: a 16-word instruction with nothing specific: substantive alone, boilerplate when it opens many rows
TEMPLATE = "Please read the request below carefully and then write a helpful and complete reply to it."
QUESTION = "Explain in a few sentences what you would tell a friend who asked you this question at dinner."


def _long_answers(n: int) -> list[str]:
    return [t for r in _rows(EVAL) if _words(t := _last_turn(r["chosen"])) >= 30][:n]


@pytest.mark.parametrize(("rows", "leak", "echo"), [(4, False, False), (5, True, False), (4, False, True)])
def test_an_eval_answer_under_a_templated_eval_question_is_a_leak(tmp_path: Path, rows: int, leak: bool,
                                                                   echo: bool) -> None:
    """A templated instruction opening BOILERPLATE_MIN_ROWS (5) or more catalog rows is not the eval case's
    question (docs/overlap.md): the answer is the case, and leaks under any batch question; in 4 rows the
    instruction is still a question of its own, and the answer under another question is reused. Rows are
    counted, not records: one row that echoes the instruction as its answer too is still one row (``echo``)."""
    from provaudit.contamination import BOILERPLATE_MAX_WORDS, BOILERPLATE_MIN_ROWS

    assert trivial_reason(TEMPLATE) is None and _words(TEMPLATE) < BOILERPLATE_MAX_WORDS and BOILERPLATE_MIN_ROWS == 5
    answers = _long_answers(rows)
    cat = tmp_path / "c.duckdb"
    rows_ = [{"prompt": TEMPLATE, "completion": a} for a in answers]
    if echo:  # 5 records of the instruction in 4 rows
        rows_[3]["completion"] = TEMPLATE
    register(_jsonl(tmp_path / "eval.jsonl", rows_), tags=["eval"], catalog=cat)
    batch = _jsonl(tmp_path / "b.jsonl", [{"prompt": QUESTION, "completion": answers[1]}])
    (ov,) = scan(batch, catalog=cat, gate=GATE, record=False, origin=False).summary["overlap"]["datasets"]
    assert (ov["exact_records"], ov["reused_records"]) == ((1, 0) if leak else (0, 1))
    assert (ov["examples"] if leak else [e["record_id"] for e in ov["reused_examples"]]) == ["b:0:response"]


def _eval_case(tmp_path: Path) -> tuple[Path, Path, str]:
    first, _ = (json.loads(line) for line in REUSED.read_text(encoding="utf-8").splitlines())
    answer = _last_turn(first["rejected"])
    ev = _jsonl(tmp_path / "eval.jsonl", [{"prompt": "Continue.", "completion": answer}])
    return ev, _jsonl(tmp_path / "b.jsonl", [{"prompt": QUESTION, "completion": answer}]), answer


def _verdict(batch: Path, cat: Path) -> tuple[int, int]:
    (ov,) = scan(batch, catalog=cat, gate=GATE, record=False, origin=False).summary["overlap"]["datasets"]
    return ov["exact_records"], ov["reused_records"]


def test_rows_stored_before_the_word_counts_keep_the_old_rule_until_registered_again(tmp_path: Path) -> None:
    import duckdb

    ev, batch, _ = _eval_case(tmp_path)
    cat = tmp_path / "c.duckdb"
    register(ev, tags=["eval"], catalog=cat)
    assert _verdict(batch, cat) == (1, 0)
    con = duckdb.connect(str(cat))  # as a catalog written before schema version 9 holds them
    con.execute("UPDATE records SET n_words = NULL, trivial = NULL")
    con.close()
    assert _verdict(batch, cat) == (0, 1)  # unknown: the eval question counts as substantive, as it did then
    again = register(ev, tags=["eval", "v2"], catalog=cat)  # same fingerprint: fills the counts in, adds no rows
    con = duckdb.connect(str(cat), read_only=True)
    assert con.execute("SELECT count(*), count(n_words), count(trivial) FROM records").fetchone() == (2, 2, 1)
    con.close()
    assert again["dataset_id"] == 1 and _verdict(batch, cat) == (1, 0)


def test_record_files_keep_the_word_counts_and_older_files_read_as_unknown(tmp_path: Path, monkeypatch) -> None:
    import duckdb

    from provaudit.catalog import files as catalog_files

    ev, batch, answer = _eval_case(tmp_path)
    cat = tmp_path / "c.duckdb"
    monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    register(ev, tags=["eval"], catalog=cat)
    con = duckdb.connect(str(cat))
    (name, substance), = con.execute("SELECT path, substance FROM record_files").fetchall()
    assert substance and con.execute("SELECT count(*) FROM records").fetchone()[0] == 0  # in the file, not the table
    rec = Path(f"{cat}.records") / name
    assert con.execute(f"SELECT list(n_words ORDER BY row), list(trivial ORDER BY row) FROM '{rec}'").fetchone() == (
        [1, _words(answer)], ["short", None])
    con.close()
    assert _verdict(batch, cat) == (1, 0)
    # a records file written before schema version 9: no such columns, and the catalog says so
    con = duckdb.connect(str(cat))
    con.execute(f"COPY (SELECT * EXCLUDE (n_words, trivial) FROM '{rec}') TO '{rec}.old' (FORMAT PARQUET)")
    Path(f"{rec}.old").replace(rec)
    con.execute("UPDATE record_files SET substance = false")
    con.close()
    assert _verdict(batch, cat) == (0, 1)


def test_a_substantive_text_nearly_matching_only_a_short_eval_text_is_no_leak(tmp_path: Path) -> None:
    """HH-RLHF's stock line in a 13-word form (substantive by the word count) nearly matches the 11-word form of
    an eval row (short): a stock line, not the eval case, so neither a leak nor a reused response. A short batch
    text nearly matching it stays a trivial match, reported apart; a substantive near match still leaks."""
    stock13 = "I’m sorry, I’m not sure what you’re asking me here."  # HH-RLHF harmless test rows
    stock11 = "I’m sorry, I’m not sure what you’re asking."
    assert (trivial_reason(stock13), _words(stock13), trivial_reason(stock11)) == (None, 13, "short")
    long = _long_answers(1)[0]
    cat = tmp_path / "c.duckdb"
    register(_jsonl(tmp_path / "eval.jsonl", [{"prompt": "Hm?", "completion": stock11},
                                               {"prompt": TEMPLATE, "completion": long}]), tags=["eval"], catalog=cat)
    batch = _jsonl(tmp_path / "b.jsonl", [{"prompt": QUESTION, "completion": stock13},
                                           {"prompt": "What?", "completion": "I’m sorry, I’m not sure what you’re asking!"},
                                           {"prompt": "Go on.", "completion": long.rsplit(" ", 1)[0] + " indeed."}])
    res = scan(batch, catalog=cat, gate=GATE, record=False, origin=False, out=tmp_path / "o")
    (ov,) = res.summary["overlap"]["datasets"]
    assert (ov["exact_records"], ov["near_records"], ov["reused_records"]) == (0, 1, 0)
    assert ov["examples"] == ["b:2:response"]
    assert [(e["record_id"], e["reason"]) for e in ov["trivial_examples"]] == [("b:1:response", "short")]
    # the 13-word line does nearly match the 11-word one (so the rule, not the hashing, keeps it out)
    from provaudit.catalog.store import Catalog

    with Catalog(cat, read_only=True) as c:
        found = c.match_records(res.records().filter(res.records()["record_id"] == "b:0:response"))
    assert found["match"].to_list() == ["near"] and found["record_id"].to_list() == ["eval:0:response"]
