"""README promises of `scan`, read back from the catalog and the files on disk:

- a batch that fails its gate stays out of the catalog (exit 1; only the scan itself is logged);
- each failed check is printed with its value and threshold;
- a scan that fails after the catalog write has begun leaves the catalog exactly as it was;
- records.parquet and summary.json are byte-identical across two runs of the same input;
- summary.md states the numbers of summary.json.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import provaudit
from provaudit.catalog.store import Catalog
from provaudit.cli import main
from provaudit.fingerprint import text_hash

ROOT = Path(__file__).resolve().parent.parent
SCAN = ROOT / "fixtures" / "scan"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def setup(tmp_path: Path) -> dict:
    """A catalog holding a 20-row eval set, a clean 12-row batch and a leaky one (the clean rows plus 4 eval
    rows), all small so the CLI runs stay fast."""
    gpt4 = json.loads((SCAN / "alpaca_eval_gpt4.json").read_text(encoding="utf-8"))
    vicuna = [json.loads(x) for x in (SCAN / "sharegpt_vicuna.jsonl").read_text(encoding="utf-8").splitlines()]
    eval_rows = [{"instruction": r["instruction"], "output": r["output"]} for r in gpt4[:20]]
    clean = vicuna[:12]
    leaked = [{"id": f"leak-{i}", "conversations": [{"from": "human", "value": r["instruction"]},
                                                    {"from": "gpt", "value": r["output"]}]}
              for i, r in enumerate(eval_rows[3:7])]
    cat = tmp_path / "cat.duckdb"
    ev = _jsonl(tmp_path / "evalset.jsonl", eval_rows)
    provaudit.register(ev, tags=["eval"], catalog=cat)
    gate = tmp_path / "gate.yaml"
    gate.write_text("checks:\n"
                    "  - {id: no_eval_exact_overlap, metric: 'overlap.by_tag.eval.*.exact_records', max: 0}\n"
                    "  - {id: max_exact_duplicate_rate, metric: duplicates.exact_rate, max: 0.05}\n")
    return {"cat": cat, "gate": gate, "eval_rows": eval_rows, "leaked": leaked,
            "clean": _jsonl(tmp_path / "clean.jsonl", clean),
            "leaky": _jsonl(tmp_path / "leaky.jsonl", clean + leaked), "tmp": tmp_path}


def test_failed_gate_keeps_the_batch_out_of_the_catalog_and_prints_value_and_threshold(setup: dict,
                                                                                      catalog_dump,
                                                                                      raw_catalog) -> None:
    s, _query = setup, raw_catalog
    before = catalog_dump(s["cat"])
    res = CliRunner().invoke(main, ["scan", str(s["leaky"]), "--catalog", str(s["cat"]), "--gate", str(s["gate"]),
                                    "--no-origin", "--out", str(s["tmp"] / "o")])
    assert res.exit_code == 1, res.output
    # 4 leaked rows = 4 prompts + 4 responses found verbatim in the eval set (computed from the texts)
    eval_hashes = {text_hash(r[k]) for r in s["eval_rows"] for k in ("instruction", "output")}
    leaked = sum(text_hash(m["value"]) in eval_hashes for r in s["leaked"] for m in r["conversations"])
    assert leaked == 8
    # only substantive texts count as leaks (docs/overlap.md): 20+ words, or 8+ words with a number; here
    # the 4 responses, the 21-word crossword prompt and "What is some cool music from the 1920s?" (6), not
    # the two 7-8 word how-to questions without a number or name
    texts = [m["value"] for r in s["leaked"] for m in r["conversations"]]
    counted = sum(len(t.split()) >= 20 or (len(t.split()) >= 8 and any(c.isdigit() for c in t)) for t in texts)
    assert counted == 6
    failed = [line for line in res.stderr.splitlines() if "no_eval_exact_overlap" in line]
    assert failed and f"{counted} exceeds max 0" in failed[0], res.stderr
    assert "max_exact_duplicate_rate" not in " ".join(line for line in res.stderr.splitlines() if "FAIL" in line)
    # read back from the catalog: no dataset, no record, no band of the batch; the scan itself is logged as failed
    after = catalog_dump(s["cat"])
    for table in ("datasets", "records", "record_bands", "record_fields", "erased_records"):
        assert after.get(table) == before.get(table), table
    assert _query(s["cat"], "SELECT count(*) FROM datasets") == [(1,)]
    assert _query(s["cat"], "SELECT passed FROM scans") == [(False,)]
    # the clean batch passes and is added, with every one of its records
    res = CliRunner().invoke(main, ["scan", str(s["clean"]), "--catalog", str(s["cat"]), "--gate", str(s["gate"]),
                                    "--no-origin"])
    assert res.exit_code == 0, res.output
    assert _query(s["cat"], "SELECT name FROM datasets ORDER BY dataset_id") == [("evalset",), ("clean",)]
    n = _query(s["cat"], "SELECT count(*) FROM records r JOIN datasets d USING (dataset_id) WHERE d.name = 'clean'")
    assert n == [(24,)]   # 12 conversations x (prompt + response)
    assert _query(s["cat"], "SELECT passed FROM scans ORDER BY scan_id") == [(False,), (True,)]


def test_a_scan_failing_inside_the_catalog_transaction_leaves_the_catalog_as_it_was(setup: dict, monkeypatch,
                                                                                     catalog_dump) -> None:
    s = setup
    before = catalog_dump(s["cat"])
    added: list[str] = []
    original = Catalog.add_dataset

    def add_then_track(self, **kw):
        added.append(kw["name"])
        return original(self, **kw)

    def boom(self, **kw):
        raise RuntimeError("disk full while logging the scan")

    monkeypatch.setattr(Catalog, "add_dataset", add_then_track)
    monkeypatch.setattr(Catalog, "add_scan", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        provaudit.scan([s["clean"]], catalog=s["cat"], origin=False)
    assert added == ["clean"]           # the write had begun: the dataset and its records were inserted
    assert catalog_dump(s["cat"]) == before     # and rolled back


def test_two_runs_write_byte_identical_records_and_summary(tmp_path: Path) -> None:
    src = SCAN / "trl_pairs.jsonl"
    outs = []
    for run in ("a", "b"):
        provaudit.scan([src], catalog=tmp_path / f"{run}.duckdb", out=tmp_path / run, origin=False, batch_size=17)
        outs.append(tmp_path / run)
    a, b = outs
    assert (a / "records.parquet").read_bytes() == (b / "records.parquet").read_bytes()
    assert (a / "summary.json").read_bytes() == (b / "summary.json").read_bytes()
    assert (a / "summary.md").read_bytes() == (b / "summary.md").read_bytes()


def test_summary_md_states_the_numbers_of_summary_json(setup: dict) -> None:
    s = setup
    out = s["tmp"] / "md"
    result = provaudit.scan([s["leaky"]], catalog=s["cat"], out=out, gate=s["gate"], origin=False)
    summary = json.loads((out / "summary.json").read_text())
    md = (out / "summary.md").read_text()
    f = summary["input"]["files"][0]
    assert f"| leaky | {f['format']} | {f['schema']} | 16 | 32 | 0 | `{f['fingerprint'][:16]}` |" in md
    recs = pl.read_parquet(out / "records.parquet")
    outputs = recs.filter(pl.col("role") != "prompt")
    exact = outputs.height - outputs["text_hash"].n_unique()
    dup = summary["duplicates"]
    assert dup["exact_duplicates"] == exact and dup["records"] == outputs.height
    assert f"{exact} exact ({100 * dup['exact_rate']:.1f}%)" in md and f"among {outputs.height} output records" in md
    assert "| evalset | eval | 6 |" in md  # substantive leaked records (see the test above)
    assert "**FAILED**: no_eval_exact_overlap" in md
    assert "| no_eval_exact_overlap | fail | 6 | <= 0 | 6 exceeds max 0 | overlap.by_tag.eval.evalset.exact_records |" in md
    rate = dup["exact_rate"]
    assert f"| max_exact_duplicate_rate | {'fail' if rate > 0.05 else 'pass'} | {rate:.6g} | <= 0.05 |" in md
    assert not result.passed


def test_diversity_cli_json(tmp_path: Path) -> None:
    import gzip

    varied = pl.read_ndjson(ROOT / "fixtures" / "origin" / "labelled.jsonl")["text"].to_list()[:40]
    same = [varied[0]] * 40
    a = _jsonl(tmp_path / "same.jsonl", [{"text": t} for t in same])
    h = _jsonl(tmp_path / "human.jsonl", [{"text": t} for t in varied])
    res = CliRunner().invoke(main, ["diversity", str(a), str(h), "--human", str(h), "--json"])
    assert res.exit_code == 0, res.output
    rep, ref = json.loads(res.stdout)
    assert (rep["batch"], rep["n"], ref["batch"], ref["n"]) == ("same", 40, "human", 40)
    # the reference measured against itself: every ratio 1
    assert ref["diversity_floor_ratio"] == 1.0 and set(ref["relative"].values()) == {1.0}
    # a batch of one repeated text: compression ratio = raw / gzip size of the joined texts on the shared budget
    chars = min(200_000, len("\n".join(same)), len("\n".join(varied)))
    raw = "\n".join(same)[:chars].encode()
    assert rep["budget"]["chars"] == chars
    assert rep["compression_ratio"] == round(len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0)), 4)
    assert rep["compression_ratio"] > 5 * ref["compression_ratio"]
    assert rep["diversity_floor_ratio"] < 0.5 and rep["relative"]["ngram_diversity"] < 1
    text = CliRunner().invoke(main, ["diversity", str(a), "--human", str(h)])
    assert text.exit_code == 0 and "same" in text.output and "floor_ratio" in text.output


def test_compare_json_names_columns_best_checkpoint_and_proxy_gain(tmp_path: Path) -> None:
    fx = ROOT / "fixtures" / "checkpoints"
    rules = tmp_path / "ck.yaml"   # the bundled rules with fewer bootstrap resamples (speed only)
    rules.write_text((ROOT / "rules" / "checkpoints.yaml").read_text().replace("bootstrap: 1000", "bootstrap: 200"))
    res = CliRunner().invoke(main, ["compare", str(fx / "compare_sft.jsonl"), str(fx / "compare_rlhf.jsonl"), "--json",
                                    "--rules", str(rules)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    sft, rlhf = (pl.read_ndjson(fx / f"compare_{n}.jsonl") for n in ("sft", "rlhf"))
    assert (d["proxy"], d["outcome"]) == ("rm_score", "outcome_judge_win")
    assert d["checkpoints"] == ["compare_sft", "compare_rlhf"]
    best = "compare_rlhf" if rlhf["outcome_judge_win"].mean() >= sft["outcome_judge_win"].mean() else "compare_sft"
    assert d["best_checkpoint"] == best == "compare_rlhf"
    assert d["decoupled"] is False and d["summary"]["n_decoupling_flags"] == 0
    gain = rlhf["rm_score"].mean() - sft["rm_score"].mean()
    (flag,) = [f for f in d["flags"] if f["kind"] == "length_confound"]
    assert f"proxy gain {gain:.3g}" in flag["evidence"]
    assert d["summary"]["n_flags"] == len(d["flags"])


def test_duplicate_groups_follow_their_definition(tmp_path: Path) -> None:
    """exact_dup_of = the first record (input order) with the same text hash; near_dup_of, for the first record
    of its hash only, = the earliest first-of-hash record sharing a band key and having another hash. The
    summary counts them per role and, in the headline, over output records (prompts repeat by design)."""
    gpt4 = json.loads((SCAN / "alpaca_eval_gpt4.json").read_text(encoding="utf-8"))
    base = [r["output"] for r in gpt4 if len(r["output"].split()) > 80][:4]

    def edit(t: str, k: int, word: str = "indeed") -> str:
        w = t.split()
        w[len(w) // 2 + k] = word
        return " ".join(w)

    rows = [{"prompt": "Q1", "completion": base[0]}, {"prompt": "Q2", "completion": base[1]},
            {"prompt": "Q1", "completion": edit(base[0], 0)},       # near copy of row 0, repeated prompt
            {"prompt": "Q3", "completion": base[0]},                # exact copy of row 0
            {"prompt": "Q4", "completion": edit(base[0], 0)},       # exact copy of row 2 (itself near row 0)
            {"prompt": "Q5", "completion": base[2]}, {"prompt": "Q6", "completion": edit(base[1], 3)},
            {"prompt": "Q7", "completion": base[3]},                # unrelated: no duplicate
            # near copy of row 2 (a second word edited) and of row 0: row 2 shares band keys with row 0 and, first
            # of them, with this row; its representative is still row 0 (the earliest), not itself
            {"prompt": "Q8", "completion": edit(edit(base[0], 0), -12, "surely")}]
    src = _jsonl(tmp_path / "d.jsonl", rows)
    result = provaudit.scan([src], catalog=tmp_path / "c.duckdb", out=tmp_path / "o", origin=False)
    df = pl.read_parquet(tmp_path / "o" / "records.parquet")
    ids, hashes, keys = df["record_id"].to_list(), df["text_hash"].to_list(), [set(k) for k in df["band_keys"]]
    first_of: dict[str, int] = {}
    want_exact, want_near = [], []
    for i, h in enumerate(hashes):
        first_of.setdefault(h, i)
        want_exact.append(ids[first_of[h]] if first_of[h] != i else None)
        near = None
        if first_of[h] == i:
            cands = [j for j in range(i) if first_of[hashes[j]] == j and hashes[j] != h and keys[j] & keys[i]]
            near = ids[min(cands)] if cands else None
        want_near.append(near)
    assert df["exact_dup_of"].to_list() == want_exact
    assert df["near_dup_of"].to_list() == want_near
    pos = {rid: i for i, rid in enumerate(ids)}
    r0, r2, r8 = (keys[pos[f"d:{n}:response"]] for n in (0, 2, 8))
    assert (r2 & r8) - r0 and r8 & r0  # the chain: keys row 2 is the first to hold, shared with row 8
    by_id = dict(zip(ids, zip(want_exact, want_near)))
    assert by_id["d:3:response"] == ("d:0:response", None) and by_id["d:4:response"] == ("d:2:response", None)
    assert by_id["d:2:response"] == (None, "d:0:response") and by_id["d:6:response"] == (None, "d:1:response")
    assert by_id["d:2:prompt"] == ("d:0:prompt", None) and by_id["d:7:response"] == (None, None)
    assert by_id["d:8:response"] == (None, "d:0:response")
    dup = result.summary["duplicates"]
    roles = df["role"].to_list()
    for role in set(roles):
        idx = [i for i, r in enumerate(roles) if r == role]
        # the completions are 80+ words (substantive); the prompts "Q1".."Q7" are trivial (docs/overlap.md):
        # their repeats are reported as trivial_records, never as duplicates
        trivial = role == "prompt"
        dups = [i for i in idx if want_exact[i] is not None or want_near[i] is not None]
        e = 0 if trivial else sum(want_exact[i] is not None for i in idx)
        nd = 0 if trivial else sum(want_near[i] is not None for i in idx)
        assert dup["by_role"][role] == {"records": len(idx), "exact_duplicates": e, "near_duplicates": nd,
                                        "exact_rate": round(e / len(idx), 6), "near_rate": round(nd / len(idx), 6),
                                        "empty_records": 0, "trivial_records": len(dups) if trivial else 0}
    assert (dup["records"], dup["exact_duplicates"], dup["near_duplicates"]) == (9, 2, 3)
    assert (dup["exact_rate"], dup["near_rate"]) == (round(2 / 9, 6), round(3 / 9, 6))
    assert dup["exact_examples"] == [{"record_id": "d:3:response", "duplicate_of": "d:0:response"},
                                     {"record_id": "d:4:response", "duplicate_of": "d:2:response"}]
    assert dup["near_examples"] == [{"record_id": "d:2:response", "near_duplicate_of": "d:0:response"},
                                    {"record_id": "d:6:response", "near_duplicate_of": "d:1:response"},
                                    {"record_id": "d:8:response", "near_duplicate_of": "d:0:response"}]


def test_the_duplicate_step_reports_each_of_its_sql_steps_in_order(tmp_path: Path, monkeypatch) -> None:
    """The progress bar of the cross-batch step advances once per SQL step, each named (FINALIZE_STEPS)."""
    import contextlib

    from provaudit import pipeline

    seen: list[tuple[str, int]] = []

    class Bar:
        def add_task(self, desc, total):
            seen.append((desc, total))
            return 0

        def update(self, task, advance=0, description=None, **_):
            if description is not None:
                seen.append((description, advance))

    real = pipeline._progress

    def fake(enabled, unit="rows"):
        return contextlib.nullcontext(Bar()) if unit == "steps" else real(False, unit)

    monkeypatch.setattr(pipeline, "_progress", fake)
    pipeline.scan(ROOT / "fixtures" / "scan" / "trl_pairs.jsonl", record=False, origin=False, out=tmp_path / "o",
                  catalog=tmp_path / "c.duckdb")
    assert seen == [("finalize: duplicate groups", pipeline.FINALIZE_STEPS)] + [
        (f"finalize: {d}", 1) for d in ("exact groups", "band keys", "shared band keys", "near-duplicate groups",
                                         "near-duplicate representatives", "duplicate table")]


def test_boilerplate_empty_and_prompt_duplicates_in_the_duplicate_summary(tmp_path: Path) -> None:
    """By the contamination rule: a 16-word text (13+ words: substantive alone) recurring in 5+ rows is
    boilerplate, its copies trivial, not duplicates; the same length in 4 rows and a 23-word text in any
    number of rows are duplicates; an empty output is an empty record; prompt copies are counted under
    their role but kept out of the headline and its examples; a role without any duplicate has zeros."""
    boiler = "Please call the Acme support desk at 555 0100 before you reset the account password today"
    four = "Our team will review the attached invoice from March and reply to you within two days"
    long = ("The committee reviewed every proposal submitted this year and selected the three projects that best "
            "matched the criteria published in the spring call")
    assert (len(boiler.split()), len(four.split()), len(long.split())) == (16, 16, 23)
    rows = ([{"prompt": f"Write reply number {i} for the customer about the billing issue", "completion": boiler}
             for i in range(6)]
            + [{"prompt": f"Summarise memo number {i} for the board in plain words please", "completion": four}
               for i in range(4)]
            + [{"prompt": "Describe in detail the selection process of the committee for the annual research grants",
                "completion": long} for _ in range(3)]
            + [{"prompt": "An empty answer follows for this question about the weather in Paris", "completion": ""}])
    res = provaudit.scan([_jsonl(tmp_path / "d.jsonl", rows)], catalog=tmp_path / "c.duckdb", out=tmp_path / "o",
                         origin=False)
    dup = res.summary["duplicates"]
    resp = dup["by_role"]["response"]
    assert (resp["records"], resp["exact_duplicates"], resp["trivial_records"], resp["empty_records"]) == (14, 3 + 2, 5, 1)
    prm = dup["by_role"]["prompt"]
    assert (prm["records"], prm["exact_duplicates"], prm["trivial_records"]) == (14, 2, 0)
    assert (dup["records"], dup["exact_duplicates"], dup["trivial_records"], dup["empty_records"]) == (14, 5, 5, 1)
    assert [e["record_id"] for e in dup["exact_examples"]] == sorted(
        [f"d:{i}:response" for i in (7, 8, 9, 11, 12)])                    # outputs only: no "d:11:prompt"
    assert {e["reason"] for e in dup["trivial_examples"]} == {"boilerplate"} and len(dup["trivial_examples"]) == 5
    assert all(e["duplicate_of"] == "d:0:response" for e in dup["trivial_examples"])
    assert len(boiler) > 80 and all(e["text"] == boiler[:80] for e in dup["trivial_examples"])  # 80 characters
    assert dup["empty_examples"] == ["d:13:response"]
    # every prompt distinct: the prompt role reports zeros
    uniq = [{"prompt": f"Distinct question number {i} about the history of the region", "completion": long + f" {i}"}
            for i in range(3)]
    zero = provaudit.scan([_jsonl(tmp_path / "u.jsonl", uniq)], catalog=tmp_path / "c2.duckdb", out=tmp_path / "o2",
                          origin=False).summary["duplicates"]["by_role"]["prompt"]
    assert (zero["exact_duplicates"], zero["near_duplicates"], zero["trivial_records"], zero["empty_records"]) == (
        0, 0, 0, 0)


def test_each_kind_of_duplicate_example_is_the_first_five_by_record_id(tmp_path: Path) -> None:
    """Six or more of each kind (exact, near, trivial, empty): the summary shows five of each, the smallest
    record ids (as strings: "d:10" before "d:2"), outputs only."""
    gpt4 = json.loads((SCAN / "alpaca_eval_gpt4.json").read_text(encoding="utf-8"))
    long, near = [r["output"] for r in gpt4 if len(r["output"].split()) > 80][:2]

    def edit(t: str, k: int) -> str:
        w = t.split()
        w[len(w) // 2 + 7 * k] = "indeed"
        return " ".join(w)

    boiler = "Please call the Acme support desk at 555 0100 before you reset the account password today"
    outputs = [long] * 7 + [near] + [edit(near, k) for k in range(1, 7)] + [boiler] * 7 + [""] * 7
    rows = [{"prompt": f"Question {i}: {w} about the topic of this row, answered below in full", "completion": o}
            for i, (w, o) in enumerate(zip(itertools.cycle(["apples", "rivers", "engines", "poems"]), outputs))]
    res = provaudit.scan([_jsonl(tmp_path / "d.jsonl", rows)], catalog=tmp_path / "c.duckdb", out=tmp_path / "o",
                         origin=False)
    dup = res.summary["duplicates"]
    ids = [f"d:{i}:response" for i in range(len(rows))]
    exact, nears, boil, empty = ids[1:7], ids[8:14], ids[15:21], ids[21:28]
    assert (dup["exact_duplicates"], dup["near_duplicates"], dup["empty_records"]) == (6, 6, 7)
    assert dup["exact_examples"] == [{"record_id": r, "duplicate_of": "d:0:response"} for r in sorted(exact)[:5]]
    assert dup["near_examples"] == [{"record_id": r, "near_duplicate_of": "d:7:response"} for r in sorted(nears)[:5]]
    # trivial: the boilerplate copies and the empty outputs after the first (copies of an empty text)
    assert [e["record_id"] for e in dup["trivial_examples"]] == sorted(boil + empty[1:])[:5]
    assert dup["empty_examples"] == sorted(empty)[:5]


def test_an_input_of_prompts_only_counts_and_shows_its_prompt_duplicates(tmp_path: Path) -> None:
    q = "What is the capital city of France and why is it famous around the world today"
    src = _jsonl(tmp_path / "p.jsonl", [{"prompt": q}, {"prompt": q}, {"prompt": q + " exactly"}])
    dup = provaudit.scan([src], catalog=tmp_path / "c.duckdb", out=tmp_path / "o", origin=False,
                         mapping={"prompt": "prompt"}).summary["duplicates"]
    assert (dup["records"], dup["exact_duplicates"], dup["exact_rate"]) == (3, 1, round(1 / 3, 6))
    assert dup["exact_examples"] == [{"record_id": "p:1:prompt", "duplicate_of": "p:0:prompt"}]


def test_the_commit_names_its_phases_and_passes_the_wait_to_the_lock_and_the_catalog(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """An interrupt names the phase it stopped (docs: one line naming the phase): the commit announces
    "waiting for the catalog write lock", then holds signals back while "committing to the catalog"; the
    ``wait`` given to scan() bounds both the write lock and the catalog's own open."""
    from provaudit import interrupt
    from provaudit import progress as progress_display
    from provaudit.catalog import lock, store

    seen: list[tuple] = []
    monkeypatch.setattr(interrupt, "phase", lambda name: seen.append(("phase", name)))
    real_critical, real_lock, real_catalog = interrupt.critical, lock.write_lock, store.Catalog

    def critical(name):
        seen.append(("critical", name))
        return real_critical(name)

    def write_lock(path, wait):
        seen.append(("lock", wait))
        return real_lock(path, wait)

    class Catalog(real_catalog):
        def __init__(self, path, *args, wait=None, **kw):
            if path == tmp_path / "c.duckdb" and kw.get("read_only") is not True and not args:
                seen.append(("catalog", wait))
            super().__init__(path, *args, wait=wait, **kw)

    monkeypatch.setattr(interrupt, "critical", critical)
    monkeypatch.setattr(lock, "write_lock", write_lock)
    monkeypatch.setattr(store, "Catalog", Catalog)
    steps: list[str] = []
    monkeypatch.setattr(progress_display, "step", lambda name: steps.append(name))
    provaudit.scan(SCAN / "trl_pairs.jsonl", catalog=tmp_path / "c.duckdb", out=tmp_path / "o", origin=False,
                   wait=7.5)
    i = seen.index(("phase", "waiting for the catalog write lock"))
    assert seen[i + 1:i + 3] == [("lock", 7.5), ("critical", "committing to the catalog")]
    assert ("catalog", 7.5) in seen[i + 3:]
    assert "committing to the catalog" in steps


# ----------------------------------------------------------- the catalog parts of a scan (_dataset_parts)

def _parts_dir(tmp_path: Path, with_idx: bool = True, name: str = "ds") -> Path:
    """Two part files whose file order is not the records' order: a.parquet holds _idx 3-5, b.parquet 0-2."""
    d = tmp_path / "parts"
    d.mkdir()
    for fname, idx in (("a.parquet", [3, 4, 5]), ("b.parquet", [0, 1, 2])):
        frame = pl.DataFrame({"record_id": [f"r{i}" for i in idx], "source_row": idx, "role": ["response"] * 3,
                              "pair_id": [None] * 3, "text_hash": [f"h{i}" for i in idx],
                              "band_keys": [[i, i + 100] for i in idx], "meta": ["{}"] * 3,
                              "dataset": [name, name, "other"] if fname == "a.parquet" else [name] * 3,
                              "_idx": idx, "n_words": [10 * i for i in idx],
                              "trivial": ["short" if i == 4 else None for i in idx]},
                             schema_overrides={"pair_id": pl.Utf8, "band_keys": pl.List(pl.UInt64),
                                               "n_words": pl.UInt32, "trivial": pl.Utf8})
        # without _idx: an older scan's parts, without the word counts either
        (frame if with_idx else frame.drop("_idx", "n_words", "trivial")).write_parquet(d / fname)
    return d


def test_catalog_parts_are_in_record_order_whatever_the_file_order(tmp_path: Path, monkeypatch) -> None:
    """The catalog keeps a dataset's records in scan order (_idx), one part per input, only its own rows; the
    step runs capped at the per-thread budget and spills into the scan's scratch folder."""
    from types import SimpleNamespace

    from provaudit import duck, pipeline

    seen: list[dict] = []
    real = duck.connect
    monkeypatch.setattr(duck, "connect", lambda *a, **k: seen.append(k) or real(*a, **k))
    monkeypatch.setenv(duck.THREADS_ENV, "1")
    parts = _parts_dir(tmp_path, name="it's")
    (work := tmp_path / "work").mkdir()
    info = SimpleNamespace(dataset="it's")
    ((got_info, part),) = pipeline._dataset_parts([info], f"{parts}/*.parquet", work)
    assert got_info is info
    rows = pl.read_parquet(part)
    assert rows["record_id"].to_list() == ["r0", "r1", "r2", "r3", "r4"]   # r5 belongs to "other"
    assert rows.columns == ["record_id", "source_row", "role", "pair_id", "text_hash", "band_keys", "meta",
                            "n_words", "trivial"]
    assert rows["n_words"].to_list() == [0, 10, 20, 30, 40] and rows["trivial"].to_list() == [None] * 4 + ["short"]
    assert seen == [{"temp_directory": str(work / "duck-catalog"), "threads": 1,
                     "memory_limit": duck.spill_memory(1)}]
    # parts without _idx (an input read in order): taken as they come, no ORDER BY on a missing column
    (tmp_path / "x").mkdir()
    parts2 = _parts_dir(tmp_path / "x", with_idx=False)
    ((_, part2),) = pipeline._dataset_parts([SimpleNamespace(dataset="ds")], f"{parts2}/*.parquet", work)
    older = pl.read_parquet(part2)
    assert older["record_id"].to_list() == ["r3", "r4", "r0", "r1", "r2"]
    assert older["n_words"].null_count() == older["trivial"].null_count() == 5  # unknown: stored as null


@pytest.mark.parametrize("in_files", [False, True])
def test_a_recorded_scan_stores_each_inputs_description(tmp_path: Path, monkeypatch, raw_catalog,
                                                         in_files: bool) -> None:
    """The catalog's datasets row (path, format, schema, columns, rows, mapping) as the scan read the input;
    with the file thresholds at 0, its records and band keys in the files beside the catalog."""
    import provaudit.catalog.files as catalog_files
    from provaudit.catalog import store

    if in_files:
        monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)
        monkeypatch.setattr(catalog_files, "RECORD_FILE_RECORDS", 0)
    src = ROOT / "fixtures" / "scan" / "trl_pairs.jsonl"
    cat = tmp_path / "c.duckdb"
    given: list[tuple] = []   # the files prepared before the commit are the ones the catalog takes in
    real_add = Catalog.add_dataset

    def add_dataset(self, **kw):
        given.append((kw["band_file"], kw["record_files"],
                      [p.exists() for p in [kw["band_file"], *(kw["record_files"] or [])] if p is not None]))
        return real_add(self, **kw)

    monkeypatch.setattr(Catalog, "add_dataset", add_dataset)
    res = provaudit.scan([src], catalog=cat, record=True)
    ((band_file, record_files, exist),) = given
    if in_files:
        assert band_file.name.endswith(".bands.parquet") and len(record_files) == 3 and exist == [True] * 4
    else:
        assert (band_file, record_files) == (None, None)
    (inp,) = res.summary["input"]["files"]
    (row,) = raw_catalog(cat, "SELECT dataset_id, name, path, fmt, schema, meta, n_records FROM datasets")
    dataset_id, name, path, fmt, schema, meta, n_records = row
    assert (name, path, fmt) == (src.stem, str(src.resolve()), "jsonl")
    meta = json.loads(meta)
    rows = sum(1 for line in src.read_text(encoding="utf-8").splitlines() if line.strip())
    assert meta["rows"] == rows and set(meta["columns"]) == set(json.loads(src.read_text().splitlines()[0]))
    assert "mapping" in meta and (schema, n_records) == (inp["schema"], inp["records"]) == ("trl", 3 * rows)
    bands = raw_catalog(cat, "SELECT dataset_id, n_rows FROM band_files")
    files = raw_catalog(cat, "SELECT dataset_id, n_rows FROM record_files")
    if in_files:
        assert bands and bands[0][0] == dataset_id and files == [(dataset_id, n_records)]
    else:
        assert bands == [] and files == []
