"""The scale-out Ray scan (docs/scale-out.md) on a local two-node cluster gives the local scan's results.

One ``ray.cluster_utils.Cluster`` (two nodes of one CPU each, each with its own object store;
``conftest.ray_cluster``, shared with the other Ray modules) runs every test here; shards are made tiny
so that every file is cut in several and duplicates fall in different shards than their first occurrence.
"""
from __future__ import annotations

import gzip
import itertools
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from provaudit.errors import InputError
from provaudit.io import RecordReader
from provaudit.io.formats import count_range_rows, iter_raw_rows, range_lines
from provaudit.pipeline import register, scan

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "scan"


# ---------------------------------------------------------------- no cluster needed

@pytest.mark.parametrize(("picks", "steps"), [
    # the six shortest of the first 60 rows (about 1.6 KB): a cut at every byte, inside the 3-byte U+3000 and
    # the rows' multibyte quotes too, and every 7th
    ("shortest", (1, 7, 64)),
    # the first 60 rows (55 KB, every row its own length): cuts of a few rows to the whole file
    ("first", (1000, 4096, None)),
])
def test_byte_ranges_give_every_line_to_exactly_one_shard(tmp_path: Path, picks: str, steps: tuple) -> None:
    raw = (FIX / "trl_pairs.jsonl").read_bytes().splitlines(keepends=True)[:60]
    if picks == "shortest":
        raw = [raw[i] for i in sorted(sorted(range(60), key=lambda i: len(raw[i]))[:6])]
    head, mid = max(1, len(raw) // 12), len(raw) * 2 // 3  # 5 and 40 of 60 rows, 1 and 4 of 6
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(raw[:head] + [b"\n", b"   \n", "\u3000\n".encode()] + raw[head:mid] + [b"{bad\n"]
                              + raw[mid:]))
    size = path.stat().st_size
    rows = [r for r in iter_raw_rows(path, "jsonl") if not isinstance(r, Exception)]
    assert len(rows) == len(raw) and any(len(r) != len(r.decode()) for r in raw)  # multibyte characters in rows
    for step in steps:
        cuts = list(range(0, size, step or size)) + [size]
        pieces = [list(range_lines(path, a, b)) for a, b in itertools.pairwise(cuts)]
        assert b"".join(b"".join(p) for p in pieces) == path.read_bytes()
        counts = [count_range_rows(path, a, b) for a, b in itertools.pairwise(cuts)]
        # lines: physical lines; rows: non-blank lines (the bad one counts, three blank ones do not)
        assert sum(c[0] for c in counts) == len(raw) + 3 + 1
        assert sum(c[1] for c in counts) == len(raw) + 1 == len(rows) + 1


def test_an_inflated_copy_holds_what_the_local_reader_reads_of_a_damaged_gzip(tmp_path: Path) -> None:
    from provaudit.io.formats import inflate_lines

    blob = (FIX / "hh_rlhf.jsonl.gz").read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    local: list = []
    with pytest.raises(InputError) as err:
        local.extend(iter_raw_rows(path, "jsonl"))
    copy = tmp_path / "copy.jsonl"
    assert inflate_lines(path, copy) == err.value.reason and err.value.reason.startswith("cannot read compressed")
    assert list(iter_raw_rows(copy, "jsonl")) == local and 50 < len(local) < 200
    assert gzip.decompress(blob).startswith(copy.read_bytes()) and copy.read_bytes().endswith(b"\n")
    assert inflate_lines(FIX / "hh_rlhf.jsonl.gz", copy) is None and copy.read_bytes() == gzip.decompress(blob)


def test_records_output_replaces_a_file_by_a_folder_and_back(tmp_path: Path) -> None:
    from provaudit.pipeline import _replace_output

    out = tmp_path / "records.parquet"
    out.write_bytes(b"local")
    folder = tmp_path / "staged" / "records.parquet"
    folder.mkdir(parents=True)
    (folder / "part-00000000.parquet").write_bytes(b"ray")
    _replace_output(folder, out)
    assert out.is_dir() and (out / "part-00000000.parquet").read_bytes() == b"ray" and not folder.exists()
    single = tmp_path / "staged" / "single.parquet"
    single.write_bytes(b"local again")
    _replace_output(single, out)
    assert out.read_bytes() == b"local again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.parquet", "staged"]  # no .old-* left


# ---------------------------------------------------------------- on a two-node cluster

ray = pytest.importorskip("ray")


@pytest.fixture()
def small_shards(monkeypatch):
    from provaudit.engine import ray_scan

    monkeypatch.setattr(ray_scan, "SHARD_BYTES", 16_000)
    monkeypatch.setattr(ray_scan, "SHARD_ROWS", 20)


#: HH-RLHF rows of the inputs' gzip file: about 90 kB of JSON lines once inflated, 6 ranges of SHARD_BYTES
GZ_ROWS = 70


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """JSON lines with blank lines and exact and near copies of early rows at the end; Parquet with
    row groups of 40 rows; a save_to_disk folder; a gzip file (one shard in the plan: the first GZ_ROWS
    HH-RLHF rows); an eval set."""
    d = tmp_path_factory.mktemp("inputs")
    corpus = d / "corpus"  # pairs, hc3 and hc3_disk: scanned as a folder too
    corpus.mkdir()
    lines = (FIX / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    longest = max(range(60), key=lambda i: len(str(json.loads(lines[i])["chosen"])))
    near = json.loads(lines[longest])
    near["chosen"] = str(near["chosen"]).rsplit(" ", 1)[0] + " indeed."  # the last word changed
    body = lines[:10] + [""] + lines[10:] + ["", lines[3], lines[4], json.dumps(near)]
    (corpus / "pairs.jsonl").write_text("\n".join(body) + "\n", encoding="utf-8")
    bad = list(body)
    bad.insert(80, '{"prompt": "unterminated')
    (d / "bad.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    hc3 = pl.read_parquet(FIX / "hc3_texts.parquet")
    hc3.write_parquet(corpus / "hc3.parquet", row_group_size=40)
    import datasets

    datasets.Dataset.from_list(hc3.head(30).to_dicts()).save_to_disk(str(corpus / "hc3_disk"))
    (d / "eval.jsonl").write_text("\n".join(lines[20:40]) + "\n", encoding="utf-8")
    hh = gzip.decompress((FIX / "hh_rlhf.jsonl.gz").read_bytes()).splitlines(keepends=True)
    (d / "hh_rlhf.jsonl.gz").write_bytes(gzip.compress(b"".join(hh[:GZ_ROWS]), mtime=0))
    return {"pairs": corpus / "pairs.jsonl", "bad": d / "bad.jsonl", "parquet": corpus / "hc3.parquet",
            "disk": corpus / "hc3_disk", "gz": d / "hh_rlhf.jsonl.gz", "eval": d / "eval.jsonl",
            "corpus": corpus}


def _catalog_with_eval(tmp_path: Path, inputs: dict[str, Path], name: str) -> Path:
    cat = tmp_path / f"{name}.duckdb"
    register(inputs["eval"], tags=["eval"], catalog=cat)
    return cat


@pytest.mark.slow
def test_ray_scan_matches_local_scan(tmp_path: Path, inputs, ray_cluster, small_shards, catalog_dump) -> None:
    from provaudit.engine import ray_scan

    # the files of the corpus folder (sorted by name), then the gzip file
    paths = [inputs["parquet"], inputs["disk"], inputs["pairs"], inputs["gz"]]
    _specs, shards = ray_scan.plan([RecordReader(p) for p in paths])
    per_input = [sum(s.input == n for s in shards) for n in range(len(paths))]
    # the gzip file is one shard in the plan: a task inflates it, then its copy is cut like JSON lines
    assert per_input[0] == 4 and per_input[1] == 2 and per_input[2] >= 5 and shards[-1].kind == "gz"
    kw = {"origin": True, "batch_size": 32}
    local = scan(paths, catalog=_catalog_with_eval(tmp_path, inputs, "l"), out=tmp_path / "l", **kw)
    # on Ray as a folder and a glob pattern: the driver expands them to the same inputs
    dist = scan([str(inputs["corpus"]), str(inputs["gz"].parent / "hh_rlhf.*.gz")], catalog=_catalog_with_eval(tmp_path, inputs, "r"),
                out=tmp_path / "r", engine="ray", **kw)
    assert (tmp_path / "l" / "summary.json").read_bytes() == (tmp_path / "r" / "summary.json").read_bytes()
    a = local.records().sort("record_id")
    b = dist.records().sort("record_id")
    assert_frame_equal(a, b)
    # the input really has cross-shard duplicates and eval overlap, and the physical line numbering
    # (a blank line at line 11) is that of the whole file
    last_rows = a.filter(pl.col("dataset") == "pairs", pl.col("source_row") >= 100)
    assert last_rows["exact_dup_of"].drop_nulls().to_list() and last_rows["near_dup_of"].drop_nulls().to_list()
    assert dist.summary["overlap"]["by_tag"]["eval"]["eval"]["exact_records"] > 0
    assert dist.summary["input"]["records"] == a.height
    # written by the workers as a folder of parts (one per shard), and cataloged alike; the gzip file's
    # JSON lines were read in 16 kB ranges
    parts = sorted((tmp_path / "r" / "records.parquet").glob("part-*.parquet"))
    gz_parts = [f for f in parts if pl.read_parquet(f, columns=["dataset"])["dataset"][0] == "hh_rlhf"]
    inflated = len(gzip.decompress(inputs["gz"].read_bytes()))
    assert len(parts) >= sum(per_input) - 3 + len(gz_parts) and len(gz_parts) >= inflated // 16_000 >= 5
    local_cat, ray_cat = catalog_dump(tmp_path / "l.duckdb"), catalog_dump(tmp_path / "r.duckdb")
    assert local_cat["records"] == ray_cat["records"] and local_cat["record_bands"] == ray_cat["record_bands"]


@pytest.mark.slow
def test_bad_row_in_a_worker_shard_fails_like_local(tmp_path: Path, inputs, ray_cluster, small_shards,
                                                    catalog_dump) -> None:
    from provaudit.cli import main

    cat = _catalog_with_eval(tmp_path, inputs, "c")
    before = catalog_dump(cat)
    with pytest.raises(InputError) as local_err:
        scan([inputs["bad"]], catalog=tmp_path / "other.duckdb", out=tmp_path / "l", origin=False)
    # the bad line is line 81 of the file (index 80, 0-based): past the first shards
    assert str(local_err.value).startswith(f"{inputs['bad']}:81: malformed JSON")
    res = CliRunner().invoke(main, ["scan", str(inputs["bad"]), "--catalog", str(cat), "--out",
                                    str(tmp_path / "r"), "--engine", "ray", "--no-origin"])
    assert res.exit_code == 2
    assert str(local_err.value) in res.output
    assert catalog_dump(cat) == before
    assert not (tmp_path / "r" / "summary.json").exists() and not list((tmp_path / "r").glob(".provaudit-work-*"))


@pytest.mark.slow
def test_skip_bad_lists_the_same_bad_rows_with_uris(tmp_path: Path, inputs, ray_cluster, small_shards,
                                                    monkeypatch) -> None:
    """Also: inputs and out as file:// URIs (provaudit.io.fs): the workers open the inputs themselves (JSON
    lines by byte range, Parquet row groups through a pyarrow filesystem) and write records.parquet to
    the URI (a staging prefix, moved after the commit); the scratch parts go to --work-dir."""
    from provaudit.engine import ray_dups

    monkeypatch.setattr(ray_dups, "PARTITIONS", 1)  # results do not depend on the shuffle's partitions
    kw = {"origin": False, "skip_bad": True, "batch_size": 50}
    paths = [inputs["bad"], inputs["parquet"]]
    local = scan(paths, catalog=tmp_path / "l.duckdb", out=tmp_path / "l", **kw)
    uris = [f"file://{p}" for p in paths]
    dist = scan(uris, catalog=tmp_path / "r.duckdb", out=f"file://{tmp_path}/r", work_dir=tmp_path / "work",
                engine="ray", **kw)
    want = (tmp_path / "l" / "summary.json").read_text(encoding="utf-8")
    for p, u in zip(paths, uris):
        want = want.replace(str(p), u)
    assert want == (tmp_path / "r" / "summary.json").read_text(encoding="utf-8")
    assert dist.summary["input"]["bad_row_list"][0] == {"file": uris[0], "line": 81, "field": None,
                                                         "reason": dist.summary["input"]["bad_row_list"][0]["reason"]}
    first = dist.records()
    assert_frame_equal(local.records().drop("source_file"), first.drop("source_file"))
    assert sorted(f.name for f in (tmp_path / "r").iterdir()) == ["records.parquet", "summary.json", "summary.md"]
    assert len(list((tmp_path / "r" / "records.parquet").glob("part-*.parquet"))) >= 4
    assert list((tmp_path / "work").iterdir()) == []
    shutil.rmtree(tmp_path / "l")
    # a scan to the same URI that fails after the workers wrote its records (the catalog stays busy):
    # the URI out keeps the first scan's outputs, and the staging prefix is gone
    from conftest import lock_held_by_another_thread

    from provaudit.errors import CatalogBusy

    before = {f.name: f.read_bytes() for f in (tmp_path / "r").iterdir() if f.is_file()}
    with lock_held_by_another_thread(tmp_path / "r.duckdb"), pytest.raises(CatalogBusy):
        scan(uris[:1], catalog=tmp_path / "r.duckdb", out=f"file://{tmp_path}/r", work_dir=tmp_path / "work",
             engine="ray", wait=0.5, **kw)
    assert sorted(f.name for f in (tmp_path / "r").iterdir()) == ["records.parquet", "summary.json", "summary.md"]
    assert {f.name: f.read_bytes() for f in (tmp_path / "r").iterdir() if f.is_file()} == before
    assert_frame_equal(dist.records(), first)


@pytest.mark.slow
def test_workers_prepare_band_files_for_the_catalog(tmp_path: Path, inputs, ray_cluster, small_shards,
                                                    monkeypatch) -> None:
    from provaudit.catalog import files, store
    from provaudit.catalog.store import Catalog

    kw = {"origin": False, "batch_size": 50}
    local = scan([inputs["pairs"]], catalog=_catalog_with_eval(tmp_path, inputs, "l"), out=tmp_path / "l", **kw)
    monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)  # every dataset keeps its band keys in a file
    monkeypatch.setattr(files, "RECORD_FILE_RECORDS", 0)  # ... and its records and metadata fields
    dist = scan([inputs["pairs"]], catalog=_catalog_with_eval(tmp_path, inputs, "r"), out=tmp_path / "r",
                engine="ray", **kw)
    assert dist.summary == local.summary
    with Catalog(tmp_path / "r.duckdb", read_only=True) as r, Catalog(tmp_path / "l.duckdb", read_only=True) as loc:
        assert r.con.execute("SELECT count(*) FROM band_files").fetchone()[0] == 2  # eval and pairs
        assert r.con.execute("SELECT count(*) FROM record_files").fetchone()[0] == 2
        assert r.con.execute(f"SELECT count(*) FROM {r._table('records')}").fetchone()[0] == 0
        for sql in ("SELECT band_key, dataset_id, rid FROM record_bands ORDER BY ALL",
                    "SELECT * FROM records ORDER BY rid", "SELECT * FROM record_fields ORDER BY ALL"):
            assert r.con.execute(sql).fetchall() == loc.con.execute(sql).fetchall()



def _csv_inputs(d: Path) -> tuple[Path, Path]:
    """The real CSV fixture (prompt/completion cells over several lines) with "" escapes, a stray quote in an
    unquoted cell and CRLF line ends, and a row with a missing column near its end; the same as a TSV."""
    import csv
    import io

    rows = list(csv.reader((FIX / "oasst_prompt_completion.csv").open(newline="", encoding="utf-8")))
    rows.insert(3, ['Is 5" tall?', 'He said "no"\nand left', "x"])
    out = []
    for delim, end, name in ((",", "\r\n", "cells.csv"), ("\t", "\n", "cells.tsv")):
        buf = io.StringIO(newline="")
        csv.writer(buf, delimiter=delim, lineterminator=end).writerows(rows)
        text = buf.getvalue().replace('"Is 5"" tall?"', 'Is 5" tall?')  # a stray quote: odd parity
        if delim == ",":
            cut = text.rindex(end + "Write")
            text = text[:cut] + end + "only,two" + text[cut:]
        (d / name).write_text(text, encoding="utf-8", newline="")
        out.append(d / name)
    return out[0], out[1]


@pytest.mark.slow
def test_csv_cut_in_byte_ranges_reads_like_local(tmp_path: Path, inputs, ray_cluster, small_shards) -> None:
    from provaudit.cli import main
    from provaudit.engine import ray_scan
    from provaudit.io import csv_ranges

    bad_csv, tsv = _csv_inputs(tmp_path)
    size = bad_csv.stat().st_size
    # 16 kB ranges, and at least one cut falls inside a quoted multi-line cell
    cuts = [*range(0, size, ray_scan.SHARD_BYTES), size]
    facts = [csv_ranges.range_facts(bad_csv, a, b, ",") for a, b in itertools.pairwise(cuts)]
    states = list(itertools.accumulate(facts[:-1], lambda s, f: f.end[s], initial=csv_ranges.OUTSIDE))
    assert len(cuts) >= 7 and csv_ranges.INSIDE in states
    # without --skip-bad: the row with a missing column, read by a worker in a later shard, fails alike
    with pytest.raises(InputError) as local_err:
        scan([bad_csv], catalog=tmp_path / "x.duckdb", out=tmp_path / "x", origin=False)
    line = bad_csv.read_bytes().split(b"\n").index(b"only,two\r") + 1
    assert str(local_err.value) == f"{bad_csv}:{line}: expected 3 columns, found 2"
    res = CliRunner().invoke(main, ["scan", str(bad_csv), "--catalog", str(tmp_path / "y.duckdb"), "--out",
                                    str(tmp_path / "y"), "--engine", "ray", "--no-origin"])
    assert res.exit_code == 2 and str(local_err.value) in res.output
    # with it: the same rows, record ids, bad rows and summary (JSON lines cut in ranges between the two,
    # and the TSV again as gzip: inflated by a task, then cut)
    tsv_gz = tmp_path / "cells2.tsv.gz"
    tsv_gz.write_bytes(gzip.compress(tsv.read_bytes()))
    kw = {"origin": False, "skip_bad": True, "batch_size": 16}
    paths = [bad_csv, inputs["pairs"], tsv, tsv_gz]
    local = scan(paths, catalog=tmp_path / "l.duckdb", out=tmp_path / "l", **kw)
    dist = scan(paths, catalog=tmp_path / "r.duckdb", out=tmp_path / "r", engine="ray", **kw)
    assert (tmp_path / "l" / "summary.json").read_bytes() == (tmp_path / "r" / "summary.json").read_bytes()
    assert dist.summary["input"]["bad_row_list"] == [{"file": str(bad_csv), "line": line, "field": None,
                                                      "reason": "expected 3 columns, found 2"}]
    assert [f["rows"] for f in dist.summary["input"]["files"]] == [81, local.summary["input"]["files"][1]["rows"], 81, 81]
    assert_frame_equal(local.records(), dist.records())
    # every file was read in byte ranges (one records part per shard), not whole
    assert len(list((tmp_path / "r" / "records.parquet").glob("part-*.parquet"))) >= 3 * (len(cuts) - 2) + 5


@pytest.mark.slow
def test_a_damaged_gzip_file_fails_like_local(tmp_path: Path, ray_cluster, small_shards) -> None:
    """A gzip file cut after inflating: a bad line before the damage is the first error; with --skip-bad
    the stream error after the rows read (the local reader's), not a bad row of a half line."""
    lines = gzip.decompress((FIX / "hh_rlhf.jsonl.gz").read_bytes()).split(b"\n")[:150]
    lines.insert(50, b'{"chosen": "unterminated')
    blob = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(blob[: len(blob) * 3 // 4])
    # a damaged CSV: its copy may end inside a record the local reader never yields; read whole instead
    csv_blob = gzip.compress((FIX / "oasst_prompt_completion.csv").read_bytes())
    csv_path = tmp_path / "damaged.csv.gz"
    csv_path.write_bytes(csv_blob[: len(csv_blob) * 3 // 4])
    for p, skip in ((path, False), (path, True), (csv_path, True)):
        kw = {"origin": False, "skip_bad": skip, "catalog": tmp_path / "c.duckdb"}
        with pytest.raises(InputError) as local_err:
            scan([p], out=tmp_path / "l", **kw)
        with pytest.raises(InputError) as ray_err:
            scan([p], out=tmp_path / "r", engine="ray", **kw)
        assert str(ray_err.value) == str(local_err.value)
        assert str(local_err.value).startswith(f"{p}: cannot read compressed stream" if skip else f"{p}:51: malformed")
    assert not (tmp_path / "c.duckdb").exists() and not list((tmp_path / "r").iterdir())


@pytest.mark.slow
def test_catalog_checks_on_the_cluster_give_the_local_summary(tmp_path: Path, overlap_world, ray_cluster,
                                                              small_shards, monkeypatch) -> None:
    # eval overlap (exact, near, short trivial), boilerplate, a reused response and an erased record
    # brought back, checked by the workers (provaudit.engine.ray_overlap) and by DuckDB on one machine
    from provaudit.catalog.store import Catalog

    kw = {"catalog": overlap_world["catalog"], "origin": False, "record": False, "gate": ROOT / "rules" / "gate.yaml"}
    scan(overlap_world["inputs"], out=tmp_path / "l", **kw)

    def on_the_driver(*_a, **_k):
        raise AssertionError("the driver ran a per-record catalog check")

    monkeypatch.setattr(Catalog, "overlap_report", on_the_driver)
    monkeypatch.setattr(Catalog, "erased_matches", on_the_driver)
    dist = scan(overlap_world["inputs"], out=tmp_path / "r", engine="ray", **kw)
    assert (tmp_path / "l" / "summary.json").read_bytes() == (tmp_path / "r" / "summary.json").read_bytes()
    by = {o["dataset"]: o for o in dist.summary["overlap"]["datasets"]}
    assert by["hh_rlhf"]["exact_records"] and by["hh_rlhf"]["near_records"] and by["reused_eval"]["reused_records"]
    assert [e["reason"] for e in by["refusals"]["trivial_examples"]] == ["boilerplate"]
    assert dist.summary["erased"]["reintroduced"] >= 1 and "no_erased_records" in dist.summary["gate"]["failed"]
