"""Catalog store: datasets, overlap, erased matches, scans, transactions and migrations."""
from __future__ import annotations

import json
import re

import duckdb
import polars as pl
import pytest
import xxhash

from provaudit.catalog import Catalog
from provaudit.catalog.migrations import LATEST_VERSION, MIGRATIONS, migrate
from provaudit.errors import InputError

TEXTS = [
    "The committee approved the budget after a long debate about school funding.",
    "Rain is expected across the north of the country on Thursday evening.",
    "Researchers found that the drug reduced symptoms in most of the patients studied.",
    "The striker scored twice in the second half to secure the win.",
]


def _hash(t: str) -> str:
    return xxhash.xxh3_128_hexdigest(t.lower().encode())


def frame(name: str, texts: list[str], bands: list[list[int]], metas: list[dict] | None = None) -> pl.DataFrame:
    """A minimal fingerprinted record table (hashes and band keys given explicitly)."""
    n = len(texts)
    metas = metas or [{} for _ in texts]
    return pl.DataFrame({
        "record_id": [f"{name}:{i}:text" for i in range(n)],
        "source_row": list(range(n)),
        "role": ["text"] * n,
        "pair_id": [f"{name}:{i}" for i in range(n)],
        "text_hash": [_hash(t) for t in texts],
        "band_keys": bands,
        "meta": [json.dumps(m, sort_keys=True) for m in metas],
    }, schema_overrides={"band_keys": pl.List(pl.UInt64)})


def add(cat: Catalog, name: str, df, tags=("train",), fp: str | None = None) -> int:
    n = df.height if isinstance(df, pl.DataFrame) else pl.read_parquet(df).height
    return cat.add_dataset(name=name, fingerprint=fp or f"fp-{name}", path=f"{name}.jsonl", fmt="jsonl",
                           schema="text", tags=list(tags), n_records=n, records=df)


@pytest.fixture()
def cat(tmp_path):
    c = Catalog(tmp_path / "sub" / "catalog.duckdb")
    yield c
    c.close()


def test_add_dataset_and_same_fingerprint_merges_tags(cat):
    df = frame("evalset", TEXTS[:3], [[1, 2], [3, 4], [5, 6]], [{"user_id": 7}, {"user_id": "x"}, {}])
    did = add(cat, "evalset", df, tags=["eval"])
    again = add(cat, "evalset", df, tags=["gold"])
    assert again == did
    ds = cat.datasets()
    assert ds.height == 1 and ds["tags"][0].to_list() == ["eval", "gold"]
    assert cat.con.execute("SELECT count(*) FROM records").fetchone()[0] == 3
    assert cat.con.execute("SELECT count(*) FROM record_bands").fetchone()[0] == 6
    fields = cat.con.execute("SELECT key, value FROM record_fields ORDER BY value").fetchall()
    assert fields == [("user_id", "7"), ("user_id", "x")]


def test_overlap_report_exact_near_and_exclude(cat):
    add(cat, "evalset", frame("evalset", TEXTS[:3], [[1, 2], [3, 4], [5, 6]]), tags=["eval"])
    add(cat, "other", frame("other", TEXTS[3:], [[90, 91]]))
    # batch: an exact copy of eval row 0, a near copy sharing one band with eval row 2, one unrelated
    batch = frame("batch", [TEXTS[0], TEXTS[2] + " Edited.", "Completely unrelated sentence here."],
                  [[1, 2], [100, 6], [200, 201]])
    rep = cat.overlap_report(batch)
    assert len(rep) == 1
    r = rep[0]
    assert (r["dataset"], r["exact_records"], r["near_records"], r["batch_records"]) == ("evalset", 1, 1, 3)
    assert r["exact_rate"] == pytest.approx(1 / 3, abs=1e-6) and r["tags"] == ["eval"]
    assert r["examples"] == ["batch:0:text", "batch:1:text"]
    assert cat.overlap_report(batch, exclude_fingerprint="fp-evalset") == []


def _pairs(name: str, rows: list[tuple[int, str, str, list[int]]], *, columns: tuple[str, ...] | None = None):
    """Records of ``(row, role, text, band keys)``: pair ``name:row``, id ``name:row:role``; only ``columns``."""
    df = pl.DataFrame({
        "record_id": [f"{name}:{r}:{role}" for r, role, _, _ in rows], "source_row": [r for r, _, _, _ in rows],
        "role": [role for _, role, _, _ in rows], "pair_id": [f"{name}:{r}" for r, _, _, _ in rows],
        "text_hash": [_hash(t) for _, _, t, _ in rows], "band_keys": [b for _, _, _, b in rows],
        "meta": ["{}"] * len(rows)}, schema_overrides={"band_keys": pl.List(pl.UInt64)})
    return df.select(columns) if columns else df


def test_a_catalog_answer_without_a_question_of_its_own_is_leaked_by_any_batch_answer(cat):
    """docs/overlap.md: an answer is a reused response only when both rows have a question and the questions
    differ. A catalog answer whose row has no prompt record (here next to a row that has one) cannot be
    answering another case: a batch answer equal to it leaks, under whatever question; and a records file of an
    older scan (no role or pair columns) counts every match as a leak."""
    q0, a0 = TEXTS[0], TEXTS[1]
    a1 = TEXTS[2]  # an answer alone in its row
    add(cat, "evalset", _pairs("evalset", [(0, "prompt", q0, [1]), (0, "response", a0, [2]),
                                           (1, "response", a1, [3])]), tags=["eval"])
    batch = _pairs("b", [(0, "prompt", "Which new study of the drug trial should the clinic read first today?", [10]),
                         (0, "response", a1, [11]),
                         (1, "prompt", "What did the committee decide about the budget in the end, and why?", [12]),
                         (1, "response", a0, [13])])
    (r,) = cat.overlap_report(batch)
    assert (r["exact_records"], r["near_records"], r["reused_records"]) == (1, 0, 1)
    assert r["examples"] == ["b:0:response"]  # the answer without a catalog question: a leak
    assert [e["record_id"] for e in r["reused_examples"]] == ["b:1:response"]  # another question's answer
    older = _pairs("b", [(0, "response", a0, [13]), (1, "response", a1, [11])],
                   columns=("record_id", "text_hash", "band_keys"))
    (r,) = cat.overlap_report(older)
    assert (r["exact_records"], r["reused_records"], r["examples"]) == (2, 0, ["b:0:response", "b:1:response"])
    # the "same question" test compares prompts with prompts: a batch answer quoting the catalog's question
    # leaks that question, and does not make the case's other answer a copy of the case
    quoting = _pairs("q", [(0, "prompt", "Which budget did the board of the school vote on this spring, and how?", [20]),
                           (0, "chosen", a0, [21]), (0, "rejected", q0, [22])])
    (r,) = cat.overlap_report(quoting)
    assert (r["exact_records"], r["reused_records"], r["examples"]) == (1, 1, ["q:0:rejected"])
    assert [e["record_id"] for e in r["reused_examples"]] == ["q:0:chosen"]


def test_match_records_gives_each_query_and_record_once_with_the_band_keys_they_share(cat):
    """An exact match is 'exact' whatever its band keys (here none shared: 0), once, with the keys it shares
    counted; a near match (one shared key) is 'near'; a record of an excluded dataset is not returned."""
    add(cat, "evalset", frame("evalset", TEXTS[:3], [[1, 2], [3, 4], [5, 6]]))
    other = add(cat, "other", frame("other", TEXTS[3:], [[7, 8]]))
    batch = frame("b", [TEXTS[0], TEXTS[1], TEXTS[2] + " Edited.", TEXTS[3]], [[1, 2], [30, 40], [6, 9], [7, 8]])
    m = cat.match_records(batch, exclude_dataset_ids=[other])
    assert list(zip(m["query_id"], m["record_id"], m["match"], m["shared_bands"])) == [
        ("b:0:text", "evalset:0:text", "exact", 2), ("b:1:text", "evalset:1:text", "exact", 0),
        ("b:2:text", "evalset:2:text", "near", 1)]


def test_erasures_are_numbered_one_after_the_last(cat):
    """Each erasure takes the next id (the largest so far plus one), including erasures of no record."""
    add(cat, "evalset", frame("evalset", TEXTS[:3], [[1, 2], [3, 4], [5, 6]]))
    rid = cat.con.execute("SELECT min(rid) FROM records").fetchone()[0]
    ids = [cat.add_erasure(selector=f"user_id=u-{n}", rids=[rid] if n == 1 else [], datasets=[], checkpoints=[],
                           outputs=[]) for n in range(4)]
    assert ids == [1, 2, 3, 4]
    assert cat.erasures()["erasure_id"].to_list() == ids
    assert cat.con.execute("SELECT DISTINCT erasure_id FROM erased_records").fetchall() == [(2,)]


def test_a_dataset_is_found_by_a_fingerprint_prefix_of_eight_characters_or_more(cat):
    add(cat, "evalset", frame("evalset", TEXTS[:1], [[1]]), fp="0123456789abcdef")
    for ref in ("evalset", "0123456789abcdef", "01234567", "0123456789a"):
        assert cat.resolve_dataset(ref)["name"] == "evalset", ref
    with pytest.raises(InputError, match="no catalog dataset named or fingerprinted '0123456'"):
        cat.resolve_dataset("0123456")  # 7 characters: too short a prefix to name a dataset


def test_a_dataset_is_found_by_its_stored_path_given_as_is_or_relative_to_here(cat, tmp_path, monkeypatch):
    stored = tmp_path / "data" / "prefs.jsonl"
    cat.add_dataset(name="prefs", fingerprint="fp-prefs", path=str(stored), fmt="jsonl", schema="text", tags=[],
                    n_records=1, records=frame("prefs", TEXTS[:1], [[1]]))
    monkeypatch.chdir(tmp_path)
    for ref in (str(stored), "data/prefs.jsonl", "prefs"):
        assert cat.resolve_dataset(ref)["fingerprint"] == "fp-prefs", ref


def test_parquet_input_equals_frame_input(cat, tmp_path):
    df = frame("pq", TEXTS, [[1], [2], [3], [4]], [{"k": i} for i in range(4)])
    p = tmp_path / "recs.parquet"
    df.write_parquet(p)
    add(cat, "pq", p)
    got = cat.con.execute("SELECT record_id, source_row, text_hash FROM records ORDER BY rid").fetchall()
    assert got == list(zip(df["record_id"], df["source_row"], df["text_hash"]))
    assert cat.overlap_report(p)[0]["exact_records"] == 4


def test_failed_write_leaves_catalog_unchanged(cat):
    add(cat, "first", frame("first", TEXTS[:2], [[1], [2]]))
    before = {t: cat.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("datasets", "records", "record_bands", "record_fields", "scans")}
    with pytest.raises(RuntimeError), cat.transaction():
        add(cat, "second", frame("second", TEXTS[2:], [[3], [4]], [{"a": 1}, {"b": 2}]))
        cat.add_scan(inputs=[{"path": "x"}], summary={"a": 1}, passed=True)
        raise RuntimeError("scan failed mid-way")
    after = {t: cat.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
    assert after == before


def test_bad_meta_json_is_a_clear_error_and_nothing_stored(cat):
    df = frame("bad", TEXTS[:2], [[1], [2]]).with_columns(pl.Series("meta", ['{"a": 1}', '{"broken": ']))
    with pytest.raises(InputError) as ei:
        add(cat, "bad", df)
    assert "bad.jsonl" in str(ei.value)
    assert cat.datasets().height == 0
    assert cat.con.execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_missing_column_names_the_field(cat):
    df = frame("x", TEXTS[:1], [[1]]).drop("text_hash")
    with pytest.raises(InputError) as ei:
        add(cat, "x", df)
    assert ei.value.field == "text_hash"


def test_scans_round_trip(cat):
    sid = cat.add_scan(inputs=[{"path": "a.jsonl"}], summary={"overlap": {"max_exact_rate": 0.5}}, passed=False)
    s = cat.scans()
    assert s["scan_id"].to_list() == [sid]
    assert json.loads(s["summary"][0]) == {"overlap": {"max_exact_rate": 0.5}}
    assert s["passed"][0] is False


def test_erased_matches_exact_and_near(cat):
    did = add(cat, "ds", frame("ds", TEXTS[:3], [[1, 2], [3, 4], [5, 6]]))
    rid = cat.con.execute("SELECT rid FROM records WHERE dataset_id = ? AND source_row = 1", [did]).fetchone()[0]
    eid = cat.add_erasure(selector="user_id=1", rids=[rid], datasets=[], checkpoints=[], outputs=[])
    batch = frame("b", [TEXTS[1], "Rain expected across the north on Thursday.", TEXTS[0]], [[3, 4], [4, 99], [1, 2]])
    assert cat.erased_matches(batch) == [
        {"record_id": "b:0:text", "erasure_id": eid, "match": "exact"},
        {"record_id": "b:1:text", "erasure_id": eid, "match": "near"},
    ]
    assert cat.erasures()["n_records"].to_list() == [1]


def test_upgrade_from_v1_keeps_data_and_backfills_fields(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, target=1)
    con.execute("INSERT INTO datasets VALUES (1, 'old', 'fp-old', 'old.jsonl', 'jsonl', 'text', ['eval'], 1, "
                "'{}', now())")
    con.execute(f"INSERT INTO records VALUES (0, 1, 'old:0:text', 0, 'text', 'old:0', '{_hash(TEXTS[0])}', "
                "'{\"user_id\": 42, \"nested\": {\"a\": 1}}')")
    con.execute("INSERT INTO record_bands VALUES (11, 1, 0)")
    con.close()
    with Catalog(path, read_only=True) as cat:  # a reader upgrades too
        assert cat.schema_version == LATEST_VERSION
        assert cat.datasets()["name"].to_list() == ["old"]
        assert cat.con.execute("SELECT key, value FROM record_fields ORDER BY key").fetchall() == [
            ("nested.a", "1"), ("user_id", "42")]
        # band keys of the first fingerprint version cannot be compared with today's: a clear refusal
        assert cat.band_keys_version() == "pa-fp-v1"
        with pytest.raises(InputError, match="computed by fingerprint pa-fp-v1"):
            cat.overlap_report(frame("b", [TEXTS[0]], [[11]]))
    versions = duckdb.connect(str(path)).execute("SELECT list(version ORDER BY version) FROM schema_version")
    assert versions.fetchone()[0] == [m.version for m in MIGRATIONS]


def test_catalog_records_the_fingerprint_version_of_its_band_keys(cat):
    from provaudit.fingerprint import FINGERPRINT_VERSION

    assert cat.band_keys_version() is None
    add(cat, "a", frame("a", TEXTS[:2], [[1, 2], [3, 4]]))
    assert cat.band_keys_version() == FINGERPRINT_VERSION
    assert cat.overlap_report(frame("b", [TEXTS[0]], [[1, 2]]))[0]["exact_records"] == 1
    cat.con.execute("UPDATE catalog_info SET value = 'pa-fp-v0' WHERE key = 'band_keys_version'")
    before = cat.con.execute("SELECT count(*) FROM records").fetchone()[0]
    with pytest.raises(InputError, match="register the datasets again"):
        add(cat, "c", frame("c", TEXTS[2:], [[5, 6], [7, 8]]))
    assert cat.con.execute("SELECT count(*) FROM records").fetchone()[0] == before
    with pytest.raises(InputError, match="pa-fp-v0"):
        cat.match_records(frame("q", [TEXTS[0]], [[1, 2]]))


def test_newer_catalog_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    Catalog(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version (version, description) VALUES (?, 'future')", [LATEST_VERSION + 1])
    con.close()
    with pytest.raises(InputError, match="newer than this provaudit"):
        Catalog(path)


def test_read_only_missing_catalog_is_clear(tmp_path):
    with pytest.raises(InputError, match="no catalog"):
        Catalog(tmp_path / "none.duckdb", read_only=True)
    assert not (tmp_path / "none.duckdb").exists()


def test_erasure_does_not_watch_texts_other_records_still_hold(cat):
    d1 = add(cat, "a", frame("a", TEXTS[:2], [[1, 2], [3, 4]]))
    add(cat, "b", frame("b", [TEXTS[0]], [[1, 2]]))  # TEXTS[0] is also held by another dataset
    rids = [r[0] for r in cat.con.execute("SELECT rid FROM records WHERE dataset_id = ?", [d1]).fetchall()]
    cat.add_erasure(selector="user_id=9", rids=rids, datasets=[], checkpoints=[], outputs=[])
    batch = frame("q", [TEXTS[0], TEXTS[1]], [[1, 2], [3, 4]])
    assert [m["record_id"] for m in cat.erased_matches(batch)] == ["q:1:text"]
    assert cat.con.execute("SELECT count(*) FROM erased_records").fetchone()[0] == 2  # audit keeps both


def test_field_table_flattens_nested_keys_and_skips_long_values(cat):
    metas = [{"account": {"user_id": "u1", "tier": 2}, "tags": ["a", "b"], "note": "x" * 300, "ok": True}]
    add(cat, "nested", frame("nested", TEXTS[:1], [[1]], metas))
    got = cat.con.execute("SELECT key, value FROM record_fields ORDER BY key, value").fetchall()
    assert got == [("account.tier", "2"), ("account.user_id", "u1"), ("ok", "true"), ("tags", "a"), ("tags", "b")]
    assert cat.field_matches("account.user_id", "u1").height == 1


def test_duckdb_draws_no_progress_bar_on_stdout(cat):
    """DuckDB's client prints its own bar to stdout on queries over 2 s, which would break --json."""
    from provaudit.duck import connect

    assert cat.con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
    con = connect(memory_limit="64MB")
    try:
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone()[0] is False
    finally:
        con.close()


def test_registering_a_dataset_again_fills_in_only_its_own_missing_word_counts(tmp_path) -> None:
    """Rows stored before schema version 9 have no n_words/trivial; the same dataset registered again fills in
    its own rows (matched by record id), never another dataset's, even one with the same record ids."""
    from provaudit.contamination import trivial_reason
    from provaudit.pipeline import register

    rows = {"a": [{"prompt": "Continue.", "completion": TEXTS[0]}, {"prompt": TEXTS[1], "completion": "Ok."}],
            "b": [{"prompt": TEXTS[2], "completion": TEXTS[3] + " " + TEXTS[0]}]}
    paths = {}
    for sub, rs in rows.items():  # both files are eval.jsonl: the same record ids (eval:0:prompt, ...)
        (tmp_path / sub).mkdir()
        paths[sub] = tmp_path / sub / "eval.jsonl"
        paths[sub].write_text("".join(json.dumps(r) + "\n" for r in rs), encoding="utf-8")
    cat = tmp_path / "c.duckdb"
    ids = {sub: register(p, catalog=cat)["dataset_id"] for sub, p in paths.items()}

    def stored(did: int) -> dict[str, tuple]:
        con = duckdb.connect(str(cat), read_only=True)
        try:
            return {r[0]: r[1:] for r in con.execute("SELECT record_id, n_words, trivial FROM records WHERE dataset_id = ?",
                                                     [did]).fetchall()}
        finally:
            con.close()

    want = {sub: {f"eval:{i}:{role}": (len(re.findall(r"\w+", r[k])), trivial_reason(r[k]))
                  for i, r in enumerate(rs) for k, role in (("prompt", "prompt"), ("completion", "response"))}
            for sub, rs in rows.items()}
    assert {sub: stored(did) for sub, did in ids.items()} == want
    assert want["a"]["eval:0:prompt"] == (1, "short") and want["a"]["eval:1:response"] == (1, "short")
    con = duckdb.connect(str(cat))  # both datasets as a catalog written before version 9 holds them
    con.execute("UPDATE records SET n_words = NULL, trivial = NULL")
    con.close()
    register(paths["a"], catalog=cat)
    assert stored(ids["a"]) == want["a"]
    assert set(stored(ids["b"]).values()) == {(None, None)}  # untouched: b was not registered again
    register(paths["b"], catalog=cat)
    assert stored(ids["b"]) == want["b"] and stored(ids["a"]) == want["a"]
    con = duckdb.connect(str(cat), read_only=True)
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 6  # filled in, nothing added
    con.close()
