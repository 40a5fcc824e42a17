"""CSV/TSV files cut into byte ranges (provaudit.io.csv_ranges) read exactly like the whole file: the same
rows, row indexes, physical line numbers and bad rows, wherever the cuts fall (inside quoted multi-line
cells, between the two bytes of a CRLF, inside a "" escape)."""
from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import pytest

from provaudit.errors import InputError
from provaudit.io import csv_ranges
from provaudit.io.csv_ranges import check_joined, csv_range_rows, range_facts, read_header, stitch
from provaudit.io.formats import BadRow, iter_raw_rows

ROOT = Path(__file__).resolve().parent.parent
OASST = ROOT / "fixtures" / "scan" / "oasst_prompt_completion.csv"  # 80 rows, 55 with newlines in a cell


@pytest.fixture(autouse=True)
def _csv_limit():
    """csv.field_size_limit is process-wide and the readers set it: give it back to later tests."""
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


def _table() -> list[list[str]]:
    rows = list(csv.reader(OASST.open(newline="", encoding="utf-8")))
    # "" escapes, a quote at a cell's end, a cell that is only a newline, an empty cell
    rows.insert(5, ['He said "hi"\nand left', 'a "quoted"\r\nword "', "x"])
    rows.insert(9, ["\n", "", "y"])
    return rows


def _write(rows: list[list[str]], delimiter: str, terminator: str) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=delimiter, lineterminator=terminator).writerows(rows)
    return buf.getvalue().encode("utf-8")


def _with_oddities(blob: bytes, terminator: bytes, delimiter: bytes) -> bytes:
    """Blank lines, a stray quote in an unquoted cell (literal for csv, but it flips a quote parity), a row
    with a missing column and a line of invalid UTF-8 inside a quoted cell, between the records."""
    records = blob.split(terminator + b"Write")  # record boundaries before prompts starting "Write"
    assert len(records) > 4
    odd = [terminator,
           b"5\" tall" + delimiter + b"b" + delimiter + b"c" + terminator,
           b"only" + delimiter + b"two" + terminator,
           b"\"bad \xff" + terminator + b"utf8\"" + delimiter + b"b" + delimiter + b"c" + terminator]
    out = records[0]
    for k, rec in enumerate(records[1:]):
        out += terminator + (odd[k] if k < len(odd) else b"") + b"Write" + rec
    return out


def _sharded(path: Path, fmt: str, step: int | list[int], max_record_bytes: int = 16 << 20) -> list:
    """What the Ray scan reads: facts per range (``step`` bytes each, or cut at the offsets ``step``),
    stitched, each shard read from its start."""
    delim = csv_ranges.delimiter(fmt)
    size = path.stat().st_size
    cuts = [*range(0, size, step), size] if isinstance(step, int) else [0, *step, size]
    facts = [range_facts(path, a, b, delim, max_record_bytes) for a, b in itertools.pairwise(cuts)]
    header = read_header(path, delim, max_record_bytes)
    plan = stitch(facts, header, size)
    assert plan is not None and plan[0].start == header.end
    out: list = []
    for k, cut in enumerate(plan):
        tail: dict = {}
        out.extend(csv_range_rows(path, delim, cut, header.cells, tail, max_record_bytes))
        if k + 1 < len(plan):
            check_joined(str(path), cut, tail, plan[k + 1])
    return out


def _norm(rows: list) -> list:
    return [str(r.error) if isinstance(r, BadRow) else r for r in rows]


@pytest.mark.parametrize(("fmt", "terminator"), [("csv", "\n"), ("csv", "\r\n"), ("tsv", "\n")])
def test_byte_ranges_read_like_the_whole_file(tmp_path: Path, fmt: str, terminator: str) -> None:
    delim = "\t" if fmt == "tsv" else ","
    blob = _with_oddities(_write(_table(), delim, terminator), terminator.encode(), delim.encode())
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(blob)
    whole = _norm(list(iter_raw_rows(path, fmt)))
    # the file really holds what the cuts must survive
    bad = [r for r in whole if isinstance(r, str)]
    assert "expected 3 columns, found 2" in bad[0] and "invalid UTF-8" in bad[1]
    assert sum("\n" in v for r in whole if not isinstance(r, str) for v in r.data.values()) >= 55
    assert any(r.data.get("prompt") == '5" tall' for r in whole if not isinstance(r, str))
    lines = blob.count(b"\n")
    assert len(whole) == 80 + 2 + 1 + 2  # 80 + 2 inserted rows, the stray-quote row, 2 bad; blank lines not rows
    for step in (97, 1000, 4096, 30_000, len(blob)):
        assert _norm(_sharded(path, fmt, step)) == whole, step
    # cuts between the two quotes of every "" escape and the two bytes of every CRLF
    pairs = [i + 1 for i in range(1, len(blob) - 1) if blob[i:i + 2] in (b'""', b"\r\n")]
    assert len(pairs) > (50 if terminator == "\r\n" else 2)
    assert _norm(_sharded(path, fmt, pairs)) == whole
    # the bad rows name the physical line of the whole file
    expected = [i + 1 for i, line in enumerate(blob.split(b"\n")) if line.startswith((b"only", b"\"bad"))]
    assert [int(b.split(":")[1]) for b in bad] == expected and lines > 1000


def test_a_stray_quote_does_not_flip_the_state_as_a_parity_count_would(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b'prompt,completion\n5" tall,"multi\nline"\nplain,row\n')
    # one range from the line after the header: the reader is at a record start, and a parity count of
    # the quotes (3, odd) would say it ends inside a quoted field
    facts = range_facts(path, 18, path.stat().st_size, ",")
    assert facts.end[csv_ranges.OUTSIDE] == csv_ranges.OUTSIDE
    assert facts.rows[csv_ranges.OUTSIDE] == 2 and facts.lines == 3
    # started inside a quoted field, the first quote closes it and the field goes on literally (" tall")
    assert facts.first[csv_ranges.INSIDE] == 18 + len(b'5" tall,"multi\nline"\n')


def test_a_multiline_field_over_the_size_limit_is_caught_not_misread(tmp_path: Path) -> None:
    """csv ends such a field at the line where it crosses the limit: the one thing the per-line state
    rule does not follow; the join check stops the scan instead of misnumbering rows."""
    path = tmp_path / "x.csv"
    long = "\n".join(["y" * 90] * 4)
    path.write_text(f'a,b\n1,"{long}"\n2,"z"\n3,w\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.csv: a record read from byte 4 ends at byte \d+, not at the next cut"):
        _sharded(path, "csv", 200, max_record_bytes=250)


def test_a_header_over_several_ranges_and_an_overlong_line_inside_a_cell(tmp_path: Path) -> None:
    """The header (a quoted column name over lines) spans several ranges: no shard starts inside it. A
    line over the record size limit is read as a blank line (and reported), so a quote on it counts for
    nothing: the state must not flip on its bytes."""
    path = tmp_path / "x.csv"
    name = "\n".join(["col name"] * 20)
    rows = [f'{i},"cell {i}\nline two"' for i in range(30)]
    rows[12] = '12,"before\n' + 'x" ' * 100 + '\nafter"'  # a 300-byte line with quotes, over a 250 limit
    path.write_text(f'id,"{name}"\n' + "\n".join(rows) + "\n", encoding="utf-8")
    whole = _norm(list(iter_raw_rows(path, "csv", max_record_bytes=250)))
    assert len(whole) == 30 and "exceeds the record size limit" in whole[12]
    header = read_header(path, ",", 250)
    assert header.lines == 20 and header.cells[1] == name
    for step in (50, 97, 333):
        assert _norm(_sharded(path, "csv", step, max_record_bytes=250)) == whole, step


def test_stitch_refuses_a_record_start_inside_the_header() -> None:
    """Ranges that disagree with the header the driver read (a record start before its end) are not cut:
    the scan reads that file whole (provaudit.engine.ray_scan._csv_shards)."""
    header = csv_ranges.Header(cells=["a", "b"], end=40, lines=3, rows=1)
    f0 = csv_ranges.RangeFacts(lines=2, end=(1, 1), first=(0, None), before=(0, 0), rows=(1, 0))
    inside = csv_ranges.RangeFacts(lines=2, end=(0, 0), first=(20, 40), before=(0, 1), rows=(2, 1))
    assert stitch([f0, inside], header, 100) == [csv_ranges.Cut(40, 100, 0, 3)]  # range 1 starts inside: at 40
    # a third range, entered outside: its first record is row 1 (the header and one row before it) and
    # starts after line 2 + 2 + 1
    third = csv_ranges.RangeFacts(lines=3, end=(0, 0), first=(60, 70), before=(1, 2), rows=(2, 1))
    assert stitch([f0, inside, third], header, 100) == [csv_ranges.Cut(40, 60, 0, 3), csv_ranges.Cut(60, 100, 1, 5)]
    f0_out = csv_ranges.RangeFacts(lines=2, end=(0, 0), first=(0, None), before=(0, 0), rows=(1, 0))
    assert stitch([f0_out, inside], header, 100) is None  # outside at range 1: a record would start at 20


def test_the_pass_uses_the_readers_field_limit_not_csvs_default(tmp_path: Path) -> None:
    """A fresh worker process has csv's default limit (128 kB): a 200 kB quoted field on one line must
    not end the record there in the pass when the reader (16 MB) reads it whole."""
    path = tmp_path / "x.csv"
    path.write_text('a,b\n1,"' + "y" * 200_000 + '\nz"\n2,w\n', encoding="utf-8")
    csv.field_size_limit(131_072)
    facts = range_facts(path, 4, path.stat().st_size, ",")
    assert facts.rows[csv_ranges.OUTSIDE] == 2 and facts.end[csv_ranges.OUTSIDE] == csv_ranges.OUTSIDE
