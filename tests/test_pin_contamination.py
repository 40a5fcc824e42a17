"""The substantive-text rule and the boilerplate rule (provaudit.contamination) pinned at their boundaries.

Expected values come from the module's documented rule, worked by hand for each text: a text is ``empty``
without a word, ``short`` under 13 words unless specific (3+ words with 2+ numbers, or 8+ words with a
number or a name), and boilerplate when, under 20 words, it recurs in 5+ distinct rows of the batch and
the catalog together. The SQL and the polars forms of the boilerplate rule are checked against a
reference written here from that definition.
"""
from __future__ import annotations

import random

import duckdb
import polars as pl
import pytest

from provaudit import contamination as c
from provaudit.contamination import (
    BOILERPLATE_MAX_WORDS,
    BOILERPLATE_MIN_ROWS,
    add_substance,
    boilerplate_agg,
    boilerplate_sql,
    substance_columns,
    trivial_reason,
)


def _words(n: int) -> str:
    return " ".join(["word"] * n)


@pytest.mark.parametrize(("text", "n_words", "reason"), [
    (None, 0, "empty"),                                   # a missing text has no word
    ("", 0, "empty"), ("?! ...", 0, "empty"),
    ("ok", 1, "short"),
    (_words(12), 12, "short"), (_words(13), 13, None),   # MIN_WORDS
    # short but specific: 3+ words with 2+ numbers
    ("add 4 5", 3, None), ("add 4", 2, "short"), ("4 5", 2, "short"), ("add four 5", 3, "short"),
    ("add 4 and 5 please", 5, None),
    # a number is one word however it is written (3,000.50 is one number but three \w+ words)
    ("pay 3,000.50 now", 5, "short"),
    ("pay 3,000.50 now 7", 6, None),
    # 8+ words with a number or a name
    ("the cat sat on the mat with 1", 8, None), ("the cat sat on the mat 1", 7, "short"),
    ("the cat sat on the mat with Tom", 8, None), ("cat sat on the mat with Tom", 7, "short"),
    ("we went to see NASA and the moon", 8, None),        # an acronym is a name
    ("The cat sat on the mat with us", 8, "short"),       # a capital at the start is not a name
    ("the cat and I sat on the mat", 8, "short"),         # nor is "I"
    ("the cat sat on the mat, Tom said", 8, None),        # a capital after a comma is one
    ("the cat sat on the mat; Tom said", 8, None),
    ("the cat sat on the mat (yes) Tom said", 9, None),   # after a closing parenthesis
    ("the cat sat on the mat. Tom said", 8, "short"),     # after a full stop: sentence start
    ("the cat sat on the mat 2 Tom said", 9, None),
])
def test_substance_columns_by_hand(text: str | None, n_words: int, reason: str | None) -> None:
    df = add_substance(pl.DataFrame({"text": [text]}, schema={"text": pl.Utf8}))
    assert df.columns == ["text", "n_words", "trivial"]
    assert df.schema["n_words"] == pl.UInt32 and df.schema["trivial"] == pl.Utf8
    assert df.row(0) == (text, n_words, reason)
    assert trivial_reason(text) == reason


def test_substance_columns_are_named_and_keep_rows() -> None:
    texts = ["", _words(20), "add 4 5", None]
    out = pl.DataFrame({"t": texts}, schema={"t": pl.Utf8}).select(substance_columns(pl.col("t")))
    assert out.columns == ["n_words", "trivial"]
    assert out.rows() == [(0, "empty"), (20, None), (3, None), (0, "empty")]


def test_rule_text_names_every_threshold() -> None:
    assert c.RULE == ("substantive: >= 13 words, or >= 3 words with >= 2 numbers, or >= 8 words with a number or "
                      "a name; trivial: empty (no word), short (otherwise), boilerplate (< 20 words recurring in "
                      ">= 5 distinct rows of the batch and catalog)")


# ------------------------------------------------------------------------------------------- boilerplate

def _reference(batch: list[tuple[str, str, int]], catalog: list[tuple[str, str]] | None) -> set[str]:
    """Hashes of texts under BOILERPLATE_MAX_WORDS words (fewest words of any of its batch rows) in
    BOILERPLATE_MIN_ROWS or more distinct rows: the batch's pair ids plus the catalog's, counted apart."""
    out = set()
    for h in {b[0] for b in batch}:
        rows = [b for b in batch if b[0] == h]
        if min(b[2] for b in rows) >= BOILERPLATE_MAX_WORDS:
            continue
        n = len({b[1] for b in rows}) + (len({p for hh, p in catalog if hh == h}) if catalog is not None else 0)
        if n >= BOILERPLATE_MIN_ROWS:
            out.add(h)
    return out


def _sql(batch: list[tuple[str, str, int]], catalog: list[tuple[str, str]] | None,
         con: duckdb.DuckDBPyConnection | None = None) -> set[str]:
    """``boilerplate_sql`` run by DuckDB on the rows as tables ``b`` and ``r`` (frames registered as views)."""
    own = con is None
    con = duckdb.connect() if own else con
    try:
        con.register("b", pl.DataFrame(batch, schema={"text_hash": pl.Utf8, "pair_id": pl.Utf8, "n_words": pl.Int32},
                                       orient="row"))
        if catalog is not None:
            con.register("r", pl.DataFrame(catalog, schema={"text_hash": pl.Utf8, "pair_id": pl.Utf8}, orient="row"))
        return {h for (h,) in con.execute(boilerplate_sql("b", "r" if catalog is not None else None)).fetchall()}
    finally:
        if own:
            con.close()


def _agg(batch: list[tuple[str, str, int]]) -> set[str]:
    df = pl.DataFrame(batch, schema={"text_hash": pl.Utf8, "pair_id": pl.Utf8, "n_words": pl.Int64}, orient="row")
    g = df.group_by("text_hash").agg(boilerplate_agg().alias("bp"))
    return set(g.filter(pl.col("bp"))["text_hash"].to_list())


def _rows(h: str, n: int, words: int, prefix: str = "p") -> list[tuple[str, str, int]]:
    return [(h, f"{prefix}{i}", words) for i in range(n)]


@pytest.mark.parametrize(("batch", "catalog", "expected"), [
    (_rows("a", 5, 19), None, {"a"}),                        # 5 rows, 19 words
    (_rows("a", 4, 19), None, set()),                        # 4 rows
    (_rows("a", 5, 20), None, set()),                        # 20 words: substantive whatever recurs
    ([("a", "p0", 19)] * 5, None, set()),                    # one row five times: distinct rows count
    (_rows("a", 4, 20) + [("a", "p9", 19)], None, {"a"}),    # the fewest words of the group decide
    (_rows("a", 3, 19), [("a", "c0"), ("a", "c1")], {"a"}),  # 3 in the batch + 2 in the catalog
    (_rows("a", 3, 19), [("a", "c0"), ("a", "c0")], set()),  # the catalog's rows count distinct too
    (_rows("a", 3, 19), [("z", "c0"), ("z", "c1")], set()),  # another text's catalog rows do not count
    (_rows("a", 4, 19), [], set()),                          # an empty catalog adds nothing
    (_rows("a", 2, 25), [("a", f"c{i}") for i in range(9)], set()),   # long: never boilerplate
    (_rows("a", 5, 19) + _rows("b", 1, 3), [("b", f"c{i}") for i in range(4)], {"a", "b"}),
])
def test_boilerplate_sql_and_agg_by_hand(batch, catalog, expected) -> None:
    assert _sql(batch, catalog) == expected == _reference(batch, catalog)
    if catalog is None:
        assert _agg(batch) == expected


def test_boilerplate_rule_matches_its_definition_on_random_batches() -> None:
    rng = random.Random(7)
    con = duckdb.connect()
    for _ in range(40):
        hashes = [f"h{i}" for i in range(6)]
        batch = [(rng.choice(hashes), f"p{rng.randrange(9)}", rng.choice([3, 18, 19, 20, 21])) for _ in range(30)]
        catalog = [(rng.choice(hashes + ["x"]), f"c{rng.randrange(5)}") for _ in range(rng.randrange(12))]
        assert _sql(batch, catalog, con) == _reference(batch, catalog)
        assert _sql(batch, None, con) == _reference(batch, None) == _agg(batch)
    con.close()


def test_substantive_prompts_follow_the_definition_by_hand() -> None:
    """``substantive_prompts_sql`` on a hand-made ``records`` table: a row asks a substantive question when its
    prompt record is not trivial and is not a text of under 20 words held by 5+ distinct (dataset, row) pairs of
    the catalog (any role); unknown word counts (stored before schema 9) count as substantive."""
    from provaudit.contamination import substantive_prompts_sql

    rows = [  # (dataset_id, pair_id, role, text_hash, n_words, trivial)
        (1, "a:0", "prompt", "q-long", 40, None),          # substantive
        (1, "a:1", "prompt", "cont", 1, "short"),           # trivial
        (1, "a:2", "response", "q-long", 40, None),         # not a prompt
        (1, "a:3", "prompt", "old", None, None),            # stored before schema 9: substantive
        (1, "a:4", "prompt", None, None, None),             # no hash, unknown: substantive
    ]
    # a 16-word instruction in 5 distinct rows (two datasets; one row holds it twice): boilerplate
    rows += [(2, f"t:{i}", "prompt", "tmpl", 16, None) for i in range(4)] + [(3, "t:0", "prompt", "tmpl", 16, None),
                                                                            (3, "t:0", "response", "tmpl", 16, None)]
    # a 16-word text in 4 distinct rows (as prompt or answer, one row twice): still a question of its own
    rows += [(4, f"u:{i}", "prompt", "four", 16, None) for i in range(3)] + [(4, "u:2", "response", "four", 16, None),
                                                                            (4, "u:3", "chosen", "four", 16, None)]
    # a 20-word instruction in 6 rows: never boilerplate
    rows += [(5, f"w:{i}", "prompt", "twenty", 20, None) for i in range(6)]
    con = duckdb.connect()
    con.execute("CREATE TABLE records (dataset_id INTEGER, pair_id VARCHAR, role VARCHAR, text_hash VARCHAR, "
                "n_words INTEGER, trivial VARCHAR)")
    con.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)", rows)
    got = set(con.execute(substantive_prompts_sql()).fetchall())
    want = ({(1, "a:0"), (1, "a:3"), (1, "a:4")} | {(4, f"u:{i}") for i in range(3)}
            | {(5, f"w:{i}") for i in range(6)})
    assert got == want
    # restricted to some rows (those a batch matched): the same answer for them, nothing else; the template's
    # rows are counted over the whole catalog, not over the restriction
    con.execute("CREATE TABLE m AS SELECT * FROM (VALUES (1, 'a:0'), (1, 'a:1'), (2, 't:0'), (4, 'u:0'), "
                "(9, 'a:0')) v(dataset_id, pair_id)")
    assert set(con.execute(substantive_prompts_sql("records", "m")).fetchall()) == {(1, "a:0"), (4, "u:0")}
    assert set(con.execute(substantive_prompts_sql("records", "(SELECT * FROM m WHERE false)")).fetchall()) == set()
