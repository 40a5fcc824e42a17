"""Inputs and ``--out`` as fsspec URIs (``provaudit.io.fs``): the same rows, errors, summary and records
as plain paths; outputs published to a URI after the commit with ``summary.json`` last; a failing scan
leaves nothing there. Local engine only (the Ray case is in ``test_engine_ray_scale.py``)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import ClassVar

import fsspec
import polars as pl
import pytest
from click.testing import CliRunner
from fsspec.implementations.memory import MemoryFileSystem
from polars.testing import assert_frame_equal

from provaudit.cli import main
from provaudit.errors import InputError
from provaudit.io.fs import URIPath, publish
from provaudit.io.reader import read_table
from provaudit.pipeline import scan

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "scan"
FILES = ["trl_pairs.jsonl", "hh_rlhf.jsonl.gz", "hc3_texts.parquet", "oasst_prompt_completion.csv",
         "alpaca_farm_sft.json", "ultrafeedback_style.jsonl"]


@pytest.fixture()
def mem():
    """A fresh folder of the (process-wide) memory filesystem; removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:12]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_every_format_reads_the_same_rows_through_uris(mem, tmp_path: Path) -> None:
    fs, root = mem
    for name in FILES:
        fs.put_file(str(FIX / name), f"{root}/{name}")
        plain = read_table(FIX / name)
        for uri in (f"memory://{root}/{name}", f"file://{FIX / name}"):
            got = read_table(uri)
            assert got["source_file"].unique().to_list() == [uri]  # the file as given
            assert_frame_equal(got.drop("source_file"), plain.drop("source_file"))
            assert got.height > 0
    # a save_to_disk folder at a URI
    import datasets

    datasets.Dataset.from_list(pl.read_parquet(FIX / "hc3_texts.parquet").head(12).to_dicts()).save_to_disk(
        str(tmp_path / "disk"))
    assert_frame_equal(read_table(f"file://{tmp_path / 'disk'}").drop("source_file"),
                       read_table(tmp_path / "disk").drop("source_file"))


def test_a_bad_row_at_a_uri_is_named_by_the_uri_and_line(mem) -> None:
    fs, root = mem
    lines = (FIX / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    lines.insert(2, '{"prompt": "unterminated')
    fs.pipe(f"{root}/bad.jsonl", ("\n".join(lines) + "\n").encode())
    with pytest.raises(InputError) as err:
        read_table(f"memory://{root}/bad.jsonl")
    assert str(err.value).startswith(f"memory://{root}/bad.jsonl:3: malformed JSON")


def _same_summary(plain: str, uri_text: str, replacements: dict[str, str]) -> None:
    for path, uri in replacements.items():
        plain = plain.replace(path, uri)
    assert plain == uri_text


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_scan_with_uri_inputs_and_out_matches_paths(kind: str, mem, tmp_path: Path, catalog_dump) -> None:
    fs, root = mem
    names = ["trl_pairs.jsonl", "hc3_texts.parquet"]
    local = scan([FIX / n for n in names], catalog=tmp_path / "l.duckdb", out=tmp_path / "l", origin=False)
    if kind == "memory":
        for n in names:
            fs.put_file(str(FIX / n), f"{root}/in/{n}")
        uris = [f"memory://{root}/in/{n}" for n in names]
        out, out_fs, out_path = f"memory://{root}/out", fs, f"{root}/out"
    else:
        uris = [f"file://{FIX / n}" for n in names]
        out, out_fs, out_path = f"file://{tmp_path}/u", fsspec.filesystem("file"), str(tmp_path / "u")
    work = tmp_path / "work"
    res = scan(uris, catalog=tmp_path / "u.duckdb", out=out, origin=False, work_dir=work)
    assert str(res.records_path) == f"{out}/records.parquet"
    # every output there, and nothing else (no staging or work folders)
    assert sorted(p.rsplit("/", 1)[-1] for p in out_fs.ls(out_path, detail=False)) == [
        "records.parquet", "summary.json", "summary.md"]
    assert list(work.iterdir()) == []  # the scratch folder went with the scan
    repl = {str(FIX / n): u for n, u in zip(names, uris)}
    for name in ("summary.json", "summary.md"):
        _same_summary((tmp_path / "l" / name).read_text(encoding="utf-8"),
                      out_fs.cat_file(f"{out_path}/{name}").decode("utf-8"), repl)
    assert json.loads(out_fs.cat_file(f"{out_path}/summary.json")) == res.summary
    a, b = local.records(), res.records()
    assert_frame_equal(a.drop("source_file"), b.drop("source_file"))
    assert b["source_file"].unique(maintain_order=True).to_list() == uris
    # the catalog holds the inputs by the URIs as given
    dump = catalog_dump(tmp_path / "u.duckdb")
    assert all(any(u in row for row in dump["datasets"]) for u in uris)


def test_out_uri_without_work_dir_uses_a_local_temporary_folder(mem, tmp_path: Path, monkeypatch) -> None:
    import tempfile

    _fs, root = mem
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.gettempdir() -> tmp_path
    res = scan([FIX / "trl_pairs.jsonl"], catalog=tmp_path / "c.duckdb", out=f"memory://{root}/o", origin=False)
    assert res.records().height == res.summary["input"]["records"] > 0
    assert not list(tmp_path.glob(".provaudit-work-*"))  # made there during the scan, removed after it


def test_a_local_out_with_a_work_dir_elsewhere(tmp_path: Path) -> None:
    plain = scan([FIX / "trl_pairs.jsonl"], catalog=tmp_path / "a.duckdb", out=tmp_path / "a", origin=False)
    res = scan([FIX / "trl_pairs.jsonl"], catalog=tmp_path / "b.duckdb", out=tmp_path / "b", origin=False,
               work_dir=tmp_path / "scratch")
    assert sorted(f.name for f in (tmp_path / "b").iterdir()) == ["records.parquet", "summary.json", "summary.md"]
    assert list((tmp_path / "scratch").iterdir()) == []
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    assert_frame_equal(plain.records(), res.records())


def test_a_failing_scan_leaves_nothing_at_the_uri_out(mem, tmp_path: Path, catalog_dump) -> None:
    fs, root = mem
    lines = (FIX / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    lines.insert(40, "{oops")
    fs.pipe(f"{root}/in/bad.jsonl", ("\n".join(lines) + "\n").encode())
    scan([FIX / "trl_pairs.jsonl"], catalog=tmp_path / "c.duckdb", out=tmp_path / "first", origin=False)
    before = catalog_dump(tmp_path / "c.duckdb")
    with pytest.raises(InputError, match=rf"^memory://{root}/in/bad.jsonl:41: malformed JSON"):
        scan([f"memory://{root}/in/bad.jsonl"], catalog=tmp_path / "c.duckdb", out=f"memory://{root}/out",
             origin=False, work_dir=tmp_path / "w")
    assert not fs.exists(f"{root}/out")
    assert catalog_dump(tmp_path / "c.duckdb") == before
    assert list((tmp_path / "w").iterdir()) == []


class _LoggingMemory(MemoryFileSystem):
    """The memory filesystem, logging every write and removal (in order)."""

    protocol = "logmem"
    log: ClassVar[list[tuple[str, str]]] = []

    def put_file(self, lpath, rpath, **kw):
        self.log.append(("write", rpath.rsplit("/", 1)[-1]))
        return super().put_file(lpath, rpath, **kw)

    def rm(self, path, recursive=False, maxdepth=None):
        self.log.append(("rm", str(path).rsplit("/", 1)[-1]))
        return super().rm(path, recursive=recursive, maxdepth=maxdepth)


def test_publish_removes_the_old_marker_first_and_writes_summary_json_last(tmp_path: Path) -> None:
    fsspec.register_implementation("logmem", _LoggingMemory, clobber=True)
    out = URIPath(f"logmem://p-{uuid.uuid4().hex[:8]}")
    for name, text in (("records.parquet", "new records"), ("summary.md", "new md"), ("summary.json", "{}")):
        (tmp_path / name).write_text(text)
    out.fs.pipe_file(f"{out.path}/summary.json", b"old")
    out.fs.pipe_file(f"{out.path}/records.parquet", b"old records")
    _LoggingMemory.log.clear()
    publish(tmp_path, out)
    assert _LoggingMemory.log == [("rm", "summary.json"), ("rm", "records.parquet"), ("write", "records.parquet"),
                                  ("write", "summary.md"), ("write", "summary.json")]
    assert out.fs.cat_file(f"{out.path}/records.parquet") == b"new records"
    out.remove()


def test_uri_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    cat = ["--catalog", str(tmp_path / "c.duckdb"), "--no-origin"]
    pairs = str(FIX / "trl_pairs.jsonl")
    cases = [
        (["foo://bucket/x.jsonl"], "error: foo://bucket/x.jsonl: cannot open foo:// URIs (Protocol not known: foo)"),
        ([f"file://{tmp_path}/missing.jsonl"], f"error: file://{tmp_path}/missing.jsonl: no such file or directory"),
        ([pairs, "--out", "foo://x/out"], "error: --out foo://x/out: cannot open foo:// URIs (Protocol not known: foo)"),
        ([pairs, "--out", f"file://{tmp_path}/o", "--engine", "ray"],
         f"error: --out file://{tmp_path}/o is a URI: a Ray scan needs --work-dir"),
    ]
    try:
        import s3fs  # noqa: F401
    except ImportError:  # the driver is not installed here: say which one to install
        cases.append((["s3://bucket/x.jsonl"], "error: s3://bucket/x.jsonl: cannot open s3:// URIs (Install s3fs"))
    for args, message in cases:
        res = CliRunner().invoke(main, ["scan", *args, *cat])
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith(message) and res.output.count("\n") == 1, res.output
    assert not (tmp_path / "o").exists()


def test_a_uri_pattern_expands_like_a_local_one(tmp_path: Path) -> None:
    from provaudit.io.inputs import expand_inputs

    d = tmp_path / "shards"
    (d / "_tmp").mkdir(parents=True)
    rows = (FIX / "trl_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    for i in range(3):
        (d / f"part-{i}.jsonl").write_text("\n".join(rows[i * 10:(i + 1) * 10]) + "\n", encoding="utf-8")
    (d / "_tmp" / "part-9.jsonl").write_text(rows[40] + "\n", encoding="utf-8")     # skipped: under _tmp
    (d / "notes.txt").write_text("not data\n", encoding="utf-8")
    uri = f"file://{d}/**"
    got = [x.path for x in expand_inputs([uri])]
    assert got == [f"file://{d}/part-{i}.jsonl" for i in range(3)]
    local = scan([str(d / f"part-{i}.jsonl") for i in range(3)], record=False, origin=False,
                 catalog=tmp_path / "c.duckdb")
    via = scan([f"file://{d}/part-*.jsonl"], record=False, origin=False, catalog=tmp_path / "c.duckdb")
    assert via.summary["input"]["records"] == local.summary["input"]["records"] == 90  # 30 rows, 3 records each
    assert_frame_equal(via.records().drop("source_file"), local.records().drop("source_file"))
    with pytest.raises(InputError, match="matches no data files"):
        expand_inputs([f"file://{d}/*.parquet"])
