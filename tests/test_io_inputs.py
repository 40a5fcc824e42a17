"""Glob patterns and folders of files as inputs (provaudit.io.inputs): which files, in which order, with
which names, and that a pattern or folder scans exactly like its files listed one by one."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from provaudit.errors import InputError, UsageError
from provaudit.io.inputs import InputPath, expand_inputs

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "scan"


def _tree(base: Path, files: list[str]) -> None:
    for f in files:
        p = base / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}\n", encoding="utf-8")


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A corpus folder as Spark / Hive / datasets leave them: markers, hidden and scratch entries, a
    save_to_disk folder (its marker files are .json), names that sort differently by component."""
    d = tmp_path / "corpus"
    _tree(d, ["part-2.jsonl", "part-10.jsonl", "a/x.csv", "a-b/x.tsv.gz", "a/deep/y.PARQUET", "n.ndjson",
              "arr.json", "_SUCCESS", "_tmp.jsonl", ".hidden.jsonl", ".cache/c.jsonl", "_temporary/0/p.jsonl",
              "README.md", "notes.txt", "hf/dataset_info.json", "hf/state.json", "hf/data-00000-of-00001.arrow"])
    return d


def _paths(items: list[InputPath], base: Path) -> list[str]:
    return [Path(i.path).relative_to(base).as_posix() for i in items]


def test_a_folder_expands_to_its_data_files_sorted_by_component(tree: Path) -> None:
    got = expand_inputs([str(tree)])
    # by component: "a" < "a-b" although the string "a-b/..." sorts before "a/..."; "part-10" < "part-2"
    assert _paths(got, tree) == ["a/deep/y.PARQUET", "a/x.csv", "a-b/x.tsv.gz", "arr.json", "hf", "n.ndjson",
                                 "part-10.jsonl", "part-2.jsonl"]
    assert all(i.name is None for i in got)
    # a save_to_disk folder given or found is one input; --format datasets reads any folder as one
    assert expand_inputs([str(tree / "hf")]) == [InputPath(str(tree / "hf"))]
    assert expand_inputs([str(tree / "a")], fmt="datasets") == [InputPath(str(tree / "a"))]
    assert _paths(expand_inputs([f"{tree}/a*"], fmt="datasets"), tree) == ["a", "a-b", "arr.json"]


def test_globs_expand_recursively_and_skip_scratch_entries(tree: Path) -> None:
    assert _paths(expand_inputs([f"{tree}/part-*.jsonl"]), tree) == ["part-10.jsonl", "part-2.jsonl"]
    assert _paths(expand_inputs([f"{tree}/part-?.jsonl"]), tree) == ["part-2.jsonl"]
    assert _paths(expand_inputs([f"{tree}/[an]*"]), tree) == ["a/deep/y.PARQUET", "a/x.csv", "a-b/x.tsv.gz",
                                                               "arr.json", "n.ndjson"]
    # ** reaches every level but not into _temporary/, .cache/ or the save_to_disk folder (its .json
    # markers): a match inside that folder is the folder; matched folders expand, each file once
    everything = _paths(expand_inputs([str(tree)]), tree)
    assert _paths(expand_inputs([f"{tree}/**"]), tree) == everything
    assert _paths(expand_inputs([f"{tree}/**/*.json"]), tree) == ["arr.json", "hf"]
    assert _paths(expand_inputs([f"{tree}/**/x.*"]), tree) == ["a/x.csv", "a-b/x.tsv.gz"]
    # arguments keep their order; within one the files are sorted
    got = expand_inputs([f"{tree}/part-*", str(tree / "a")])
    assert _paths(got, tree) == ["part-10.jsonl", "part-2.jsonl", "a/deep/y.PARQUET", "a/x.csv"]


def test_an_existing_name_with_glob_characters_is_taken_literally(tmp_path: Path) -> None:
    odd = tmp_path / "batch[1].jsonl"
    odd.write_text("{}\n", encoding="utf-8")
    (tmp_path / "batch1.jsonl").write_text("{}\n", encoding="utf-8")
    assert expand_inputs([str(odd)]) == [InputPath(str(odd))]
    assert _paths(expand_inputs([f"{tmp_path}/batch[1].jsonl".replace("[1]", "[0-9]")]), tmp_path) == ["batch1.jsonl"]


def test_names_per_argument_or_per_file(tree: Path) -> None:
    pattern = f"{tree}/**/x.*"
    one = str(tree / "n.ndjson")
    per_arg = expand_inputs([pattern, one], names=["web", "news"])
    assert [i.name for i in per_arg] == ["web/a/x", "web/a-b/x", "news"]  # data suffixes dropped, .gz too
    per_file = expand_inputs([pattern, one], names=["p", "q", "r"])
    assert [(i.name, Path(i.path).name) for i in per_file] == [("p", "x.csv"), ("q", "x.tsv.gz"), ("r", "n.ndjson")]
    with pytest.raises(UsageError, match=r"--name given 3 times for 1 inputs \(2 files\)"):
        expand_inputs([pattern], names=["a", "b", "c"])


def test_errors_name_the_pattern_or_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "empty" / "_x.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"^.*/nothing-\*\.jsonl: the pattern matches no data files") as e:
        expand_inputs([f"{tmp_path}/nothing-*.jsonl"])
    assert e.value.file == f"{tmp_path}/nothing-*.jsonl"
    with pytest.raises(InputError, match=r"/empty: the folder holds no data files"):
        expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(InputError, match=r"/gone\.jsonl: no such file or directory"):
        expand_inputs([str(tmp_path / "gone.jsonl")])


def test_a_folder_and_a_glob_scan_like_their_files_listed(tmp_path: Path) -> None:
    from provaudit.pipeline import scan

    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    # two real inputs, one of them twice under the same stem in a subfolder; in order by component
    listed = [d / "pairs.jsonl", d / "sub" / "pairs.jsonl", d / "texts.csv"]
    for src, dst in zip(["trl_pairs.jsonl", "trl_pairs.jsonl", "oasst_prompt_completion.csv"], listed):
        shutil.copyfile(FIX / src, dst)
    assert [Path(i.path) for i in expand_inputs([str(d)])] == listed
    kw = {"origin": False, "record": False}
    a = scan(listed, catalog=tmp_path / "a.duckdb", out=tmp_path / "a", **kw)
    b = scan([str(d)], catalog=tmp_path / "b.duckdb", out=tmp_path / "b", **kw)
    c = scan([f"{d}/*.jsonl", f"{d}/sub/*", f"{d}/*.csv"], catalog=tmp_path / "c.duckdb", out=tmp_path / "c", **kw)
    summary = (tmp_path / "a" / "summary.json").read_bytes()
    assert (tmp_path / "b" / "summary.json").read_bytes() == summary == (tmp_path / "c" / "summary.json").read_bytes()
    assert_frame_equal(a.records(), b.records())
    assert_frame_equal(a.records(), c.records())
    # the second pairs.jsonl is named as when listed (stem, then "-<position>"), so its ids are unique
    assert [f["dataset"] for f in a.summary["input"]["files"]] == ["pairs", "pairs-1", "texts"]
    # --name for the folder: a prefix of its files' paths (record ids "corpus/sub/pairs:0:prompt", ...)
    from provaudit.pipeline import _open_readers

    readers = _open_readers([str(d)], ["corpus"], None, False, 100, None)
    assert [r.name for r in readers] == ["corpus/pairs", "corpus/sub/pairs", "corpus/texts"]
    assert next(readers[1].batches())["record_id"][0] == "corpus/sub/pairs:0:prompt"


def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    from provaudit.cli import main

    (tmp_path / "empty").mkdir()
    d = tmp_path / "two"
    (d / "sub").mkdir(parents=True)
    shutil.copyfile(FIX / "trl_pairs.jsonl", d / "a.jsonl")
    shutil.copyfile(FIX / "trl_pairs.jsonl", d / "sub" / "b.jsonl")
    cat = ["--catalog", str(tmp_path / "c.duckdb")]
    for args, message in [
        (["scan", f"{tmp_path}/*.parquet", *cat], f"{tmp_path}/*.parquet: the pattern matches no data files"),
        (["scan", str(tmp_path / "empty"), *cat], f"{tmp_path / 'empty'}: the folder holds no data files"),
        (["register", str(d), *cat], f"register adds one dataset, and {d} holds 2 data files"),
    ]:
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "c.duckdb").exists()
    # a pattern that matches one file registers it
    res = CliRunner().invoke(main, ["register", f"{d}/s*/*.jsonl", "--json", *cat])
    assert res.exit_code == 0, res.output
    assert '"dataset": "b"' in res.output


def test_a_rerun_over_a_folder_does_not_read_the_last_scans_outputs(tmp_path: Path, monkeypatch) -> None:
    """--out and the catalog inside the scanned folder: records.parquet, summary.json (a .json) and the
    catalog's band-key folder are data files by name, but never inputs of the folder."""
    from provaudit.catalog import store
    from provaudit.pipeline import scan

    monkeypatch.setattr(store, "BAND_FILE_RECORDS", 0)  # the catalog keeps band keys in Parquet files beside it
    d = tmp_path / "data"
    d.mkdir()
    shutil.copyfile(FIX / "trl_pairs.jsonl", d / "pairs.jsonl")
    kw = {"origin": False, "catalog": d / "cat.duckdb", "out": d / "scan"}
    first = scan([d], **kw)
    assert (d / "scan" / "summary.json").exists() and list((d / "cat.duckdb.bands").glob("*.parquet"))
    assert len(expand_inputs([d])) == 4  # what the folder holds by name alone
    again = scan([d], **kw)
    assert [f["path"] for f in again.summary["input"]["files"]] == [str(d / "pairs.jsonl")]
    assert again.summary["input"] == first.summary["input"]
    # the same from a pattern, and for a records.parquet folder (--engine ray writes one)
    from provaudit.pipeline import _own_folders

    (d / "scan" / "records.parquet").unlink()
    (d / "scan" / "records.parquet").mkdir()
    shutil.copyfile(FIX / "hc3_texts.parquet", d / "scan" / "records.parquet" / "part-0.parquet")
    own = _own_folders(d / "scan", d / "cat.duckdb")
    assert expand_inputs([f"{d}/**"], exclude=own) == [InputPath(f"{d}/pairs.jsonl")]
    assert len(expand_inputs([f"{d}/**"])) == 4
