"""The row accounting and redaction steps of ``erase``, pinned one by one on hand-written files.

A row index counts only what the reader counts as a row (JSONL: non-blank lines; CSV/TSV: the physical lines of
one record after the header; blank lines never); everything else is copied byte for byte. The verification step
must say no when the copy has one unit more, one fewer or one changed. Expected values are written by hand."""
from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path

import pytest

from provaudit.catalog import erase as er
from provaudit.errors import InputError, UsageError


def test_copy_except_counts_only_rows_and_writes_everything_else() -> None:
    units = [([b"head\n"], False), ([b"r0\n"], True), ([b"\n"], False), ([b"r1a\n", b"r1b\n"], True),
             ([b"r2\n"], True), ([b"tail\n"], False)]
    out = io.BytesIO()
    assert er._copy_except(units, {1}, out) == 1
    assert out.getvalue() == b"head\nr0\n\nr2\ntail\n"
    out = io.BytesIO()
    assert er._copy_except(units, {0, 2, 7}, out) == 2
    assert out.getvalue() == b"head\n\nr1a\nr1b\ntail\n"
    out = io.BytesIO()
    assert er._copy_except(units, set(), out) == 0
    assert out.getvalue() == b"head\nr0\n\nr1a\nr1b\nr2\ntail\n"


def test_blank_means_whitespace_only_utf8() -> None:
    assert er._is_blank(b"\n") and er._is_blank(b"  \t \r\n") and er._is_blank(b"")
    assert not er._is_blank(b" x \n")
    assert not er._is_blank(b"\xff\n")      # undecodable bytes are not blank (the reader reports them)


def _units(tmp_path: Path, name: str, data: bytes, fmt: str) -> list[tuple[bytes, bool]]:
    p = tmp_path / name
    p.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return [(b"".join(raw), is_row) for raw, is_row in er._line_units(p, fmt)]


def test_line_units_jsonl_rows_are_non_blank_lines(tmp_path: Path) -> None:
    data = b'{"a": 1}\n\n  \n{"a": 2}\n{"a": 3}'
    want = [(b'{"a": 1}\n', True), (b"\n", False), (b"  \n", False), (b'{"a": 2}\n', True), (b'{"a": 3}', True)]
    assert _units(tmp_path, "x.jsonl", data, "jsonl") == want
    assert _units(tmp_path, "x.jsonl.gz", data, "jsonl") == want


def test_line_units_csv_header_multiline_cells_and_blank_lines(tmp_path: Path) -> None:
    data = b'p,c\r\n"one\nline two",x\r\n\r\nb,y\r\n'
    assert _units(tmp_path, "x.csv", data, "csv") == [
        (b"p,c\r\n", False), (b'"one\nline two",x\r\n', True), (b"\r\n", False), (b"b,y\r\n", True)]
    assert _units(tmp_path, "x.tsv", b"p\tc\na,b\tz\n", "tsv") == [(b"p\tc\n", False), (b"a,b\tz\n", True)]
    # a quoted TSV cell opens after a tab (not after a comma) and may span lines: one row of two lines
    assert _units(tmp_path, "q.tsv", b'p\tc\na,x\t"b\nc"\nd\te\n', "tsv") == [
        (b"p\tc\n", False), (b'a,x\t"b\nc"\n', True), (b"d\te\n", True)]
    assert _units(tmp_path, "e.csv", b"", "csv") == []
    assert _units(tmp_path, "h.csv", b"p,c\n", "csv") == [(b"p,c\n", False)]


def test_redact_lines_keeps_compression_and_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl.gz"
    src.write_bytes(gzip.compress(b'{"a": 1}\n\n{"a": 2}\n{"a": 3}\n', mtime=0))
    assert er._redact_lines(src, tmp_path / "o1", {1}, "jsonl") == 1
    assert er._redact_lines(src, tmp_path / "o2", {1}, "jsonl") == 1
    assert gzip.decompress((tmp_path / "o1").read_bytes()) == b'{"a": 1}\n\n{"a": 3}\n'
    assert (tmp_path / "o1").read_bytes() == (tmp_path / "o2").read_bytes()
    plain = tmp_path / "d.csv"
    plain.write_bytes(b"p\nx\ny\n")
    assert er._redact(  # dispatch by format: CSV through the line writer, not compressed
        "csv", plain, tmp_path / "o3", {0}) == 1
    assert (tmp_path / "o3").read_bytes() == b"p\ny\n"


def test_redact_json_list_columns_and_single_object(tmp_path: Path) -> None:
    src = tmp_path / "d.json"
    rows = [{"t": "a"}, {"t": "b"}, {"t": "c"}]
    src.write_text(json.dumps(rows, indent=2) + "\n")
    assert er._redact_json(src, tmp_path / "o", {1}) == 1
    assert (tmp_path / "o").read_text() == json.dumps([rows[0], rows[2]], indent=2) + "\n"
    src.write_text(json.dumps(rows))            # one line, no trailing newline: compact, none added
    assert er._redact_json(src, tmp_path / "o", {0, 2}) == 2
    assert (tmp_path / "o").read_text() == json.dumps([rows[1]])
    src.write_text(json.dumps({"t": ["a", "b", "c"], "u": [1, 2, 3]}))
    assert er._redact_json(src, tmp_path / "o", {2}) == 1
    assert json.loads((tmp_path / "o").read_text()) == {"t": ["a", "b"], "u": [1, 2]}
    src.write_text(json.dumps({"t": "ü"}))
    assert er._redact_json(src, tmp_path / "o", {1}) == 0
    assert (tmp_path / "o").read_bytes() == '{"t": "ü"}'.encode()   # kept as is, not \\u-escaped
    assert er._redact_json(src, tmp_path / "o", {0}) == 1
    assert json.loads((tmp_path / "o").read_text()) == []
    gz = tmp_path / "d.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(rows).encode(), mtime=0))
    assert er._redact("json", gz, tmp_path / "og", {0}) == 1
    assert json.loads(gzip.decompress((tmp_path / "og").read_bytes())) == rows[1:]


def test_concrete_format_of_files_read_through_datasets() -> None:
    for name, fmt in (("a.jsonl", "jsonl"), ("a.NDJSON.gz", "jsonl"), ("a.json", "json"), ("a.csv", "csv"),
                      ("a.tsv.gz", "tsv"), ("a.parquet", "parquet"), ("a.txt", "datasets")):
        assert er._concrete_format("datasets", Path(name)) == fmt, name
    assert er._concrete_format("csv", Path("a.jsonl")) == "csv"   # a declared format is kept
    with pytest.raises(InputError, match="cannot write a redacted copy of format 'datasets'") as e:
        er._redact("datasets", Path("a.txt"), Path("o"), {0})
    assert e.value.file == "a.txt"


def test_same_value_treats_nan_and_bytes_like_their_json() -> None:
    assert er._same_value(1, 1) and er._same_value({"a": [1, 2]}, {"a": [1, 2]})
    assert er._same_value(float("nan"), math.nan)
    assert er._same_value({"b": 1, "a": 2}, {"a": 2, "b": 1})
    # rows holding NaN (never == itself) compare by their JSON, whatever the key order
    assert er._same_value({"b": 1, "a": float("nan")}, {"a": float("nan"), "b": 1})
    assert not er._same_value(1, 2) and not er._same_value({"a": 1}, {"a": "1"})
    assert not er._same_value(b"x", b"y")


def test_verification_says_no_to_a_copy_with_one_unit_more_fewer_or_changed(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_bytes(b'{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    copy = tmp_path / "c.jsonl"
    for body, want in ((b'{"a": 1}\n\n{"a": 3}\n', (True, "")),
                       (b'{"a": 1}\n\n{"a": 3}\n{"a": 4}\n', (False, "the copy has more units than expected (at unit 3)")),
                       (b'{"a": 1}\n\n', (False, "the copy has fewer units than expected (at unit 2)")),
                       (b'{"a": 1}\n{"a": 3}\n', (False, "unit 1 of the copy differs from the original's")),
                       (b'{"a": 1}\n\n{"a":3}\n', (False, "unit 2 of the copy differs from the original's"))):
        copy.write_bytes(body)
        assert er._kept_units_identical("jsonl", src, copy, {1}) == want, body
    # line formats are compared byte for byte: a CSV/TSV copy with the same values but other quoting or
    # line ends is refused
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        src = tmp_path / f"d.{fmt}"
        src.write_bytes(f'p{sep}c\r\nx{sep}"y"\r\nz{sep}w\r\n'.encode())
        copy = tmp_path / f"c.{fmt}"
        copy.write_bytes(f'p{sep}c\r\nx{sep}"y"\r\n'.encode())
        assert er._kept_units_identical(fmt, src, copy, {1}) == (True, "")
        copy.write_bytes(f'p{sep}c\r\nx{sep}y\r\n'.encode())
        assert er._kept_units_identical(fmt, src, copy, {1}) == (False, "unit 1 of the copy differs from the original's")
        copy.write_bytes(f'p{sep}c\nx{sep}"y"\n'.encode())
        assert er._kept_units_identical(fmt, src, copy, {1}) == (False, "unit 0 of the copy differs from the original's")
    # the copy is split into units by its own format: a TSV cell quoted over two lines is one unit there too
    src, copy = tmp_path / "m.tsv", tmp_path / "mc.tsv"
    src.write_bytes(b'p\tc\na,x\t"b\nc"\nd\te\n')
    copy.write_bytes(b'p\tc\na,x\t"b\nc"\n')
    assert er._kept_units_identical("tsv", src, copy, {1}) == (True, "")
    # row values for the other formats
    src = tmp_path / "d.json"
    src.write_text(json.dumps([{"t": "a"}, {"t": "b"}, {"t": "c"}]))
    copy = tmp_path / "c.json"
    copy.write_text(json.dumps([{"t": "a"}, {"t": "c"}], indent=2))
    assert er._kept_units_identical("json", src, copy, {1}) == (True, "")
    copy.write_text(json.dumps([{"t": "a"}, {"t": "b"}]))
    assert er._kept_units_identical("json", src, copy, {1}) == (False, "unit 1 of the copy differs from the original's")
    copy.write_text(json.dumps([{"t": "a"}]))
    assert er._kept_units_identical("json", src, copy, {1})[0] is False
    # Parquet rows holding NaN (never equal to itself) still verify
    import polars as pl

    pl.DataFrame({"t": ["a", "b", "c"], "x": [float("nan"), 1.0, float("nan")]}).write_parquet(tmp_path / "d.parquet")
    pl.DataFrame({"t": ["a", "c"], "x": [float("nan"), float("nan")]}).write_parquet(tmp_path / "c.parquet")
    assert er._kept_units_identical("parquet", tmp_path / "d.parquet", tmp_path / "c.parquet", {1}) == (True, "")
    pl.DataFrame({"t": ["a", "c"], "x": [float("nan"), 2.0]}).write_parquet(tmp_path / "c.parquet")
    assert er._kept_units_identical("parquet", tmp_path / "d.parquet", tmp_path / "c.parquet", {1})[0] is False


def test_targets_name_clash_gets_the_dataset_id_and_originals_are_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    affected = [{"dataset_id": 3, "path": str(tmp_path / "a" / "d.jsonl")},
                {"dataset_id": 5, "path": str(tmp_path / "b" / "d.jsonl")},
                {"dataset_id": 7, "path": str(tmp_path / "e.csv")}]
    assert er._targets(affected, out, set()) == {3: out / "d.jsonl", 5: out / "5_d.jsonl", 7: out / "e.csv"}
    with pytest.raises(UsageError, match="would overwrite the original"):
        er._targets(affected, tmp_path / "a", {(tmp_path / "a" / "d.jsonl").resolve()})


def test_rows_with_field_uses_the_catalog_field_rule() -> None:
    metas = {0: '{"user_id": "u-1"}', 1: '{"user_id": "u-2"}', 4: '{"account": {"user_id": "u-1"}}',
             6: '{"user_id": "u-1", "tags": ["x", "u-1"]}', 9: '{"tags": ["u-1"]}', 11: "not json"}
    assert er._rows_with_field(metas, "user_id", "u-1") == [0, 6]
    assert er._rows_with_field(metas, "account.user_id", "u-1") == [4]
    assert er._rows_with_field(metas, "tags", "u-1") == [6, 9]
    assert er._rows_with_field(metas, "user_id", "u-3") == []
    assert er._rows_with_field({}, "user_id", "u-1") == []
    assert er._rows_with_field({2: '{"n": 5}'}, "n", "5") == [2]
    # a row whose array holds the value twice is one row (listed once in "still carry ..." and counted once)
    assert er._rows_with_field({3: '{"tags": ["u-1", "x", "u-1"]}', 5: '{"tags": ["u-1"]}'}, "tags", "u-1") == [3, 5]


def test_an_unreadable_json_element_is_a_kept_unit_not_a_crash(tmp_path: Path) -> None:
    """A ``null`` in a JSON array is an unreadable row: verification keeps it as a unit of its own (it was
    an AttributeError traceback), and the whole erase through the CLI keeps it in the copy."""
    from click.testing import CliRunner

    from provaudit.cli import main

    src, copy = tmp_path / "d.json", tmp_path / "c.json"
    src.write_text('[{"t": "a"}, null, {"t": "b"}, {"t": "c"}]')
    copy.write_text('[{"t": "a"}, null, {"t": "c"}]')
    assert er._kept_units_identical("json", src, copy, {2}) == (True, "")
    copy.write_text('[{"t": "a"}, {"t": "c"}]')  # the unreadable row lost
    assert er._kept_units_identical("json", src, copy, {2}) == (False, "unit 1 of the copy differs from the original's")

    data, cat = tmp_path / "p.json", tmp_path / "c.duckdb"
    rows = [{"prompt": "what is two plus two", "response": "four is the answer to that one", "user_id": "u1"},
            {"prompt": "name a colour of the sky", "response": "blue on a clear day", "user_id": "u2"}]
    data.write_text(json.dumps(rows))
    r = CliRunner().invoke(main, ["scan", str(data), "--catalog", str(cat)])
    assert r.exit_code == 0, r.output
    data.write_text(json.dumps([rows[0], None, rows[1]]))  # an unreadable element appears later
    r = CliRunner().invoke(main, ["erase", "--field", "user_id=u1", "--catalog", str(cat), "--out", str(tmp_path / "red")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "red" / "p.json").read_text()) == [None, rows[1]]
