"""Erasure law (hypothesis), through the public API: for any row order, any blank lines and each line format
(JSONL, CSV, TSV), the redacted copy is the original with exactly the requested person's rows removed;
every other line (header, other rows, blank lines) is kept byte for byte, and the original is untouched."""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import provaudit
from provaudit import erase

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


@st.composite
def layouts(draw):
    n = draw(st.integers(min_value=2, max_value=9))
    users = draw(st.lists(st.sampled_from(["u-1", "u-2", "u-3"]), min_size=n, max_size=n))
    texts = [" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=8))) + f" row{i}" for i in range(n)]
    blanks = draw(st.lists(st.integers(min_value=0, max_value=n), max_size=4))   # blank line before row k
    blank = draw(st.sampled_from(["\n", "   \n", "\t\n"]))
    fmt = draw(st.sampled_from(["jsonl", "csv", "tsv"]))
    target = draw(st.sampled_from(["u-1", "u-2", "u-3"]))
    return n, users, texts, sorted(blanks), blank, fmt, target


def _row_line(fmt: str, prompt: str, completion: str, user: str) -> str:
    if fmt == "jsonl":
        return json.dumps({"prompt": prompt, "completion": completion, "user_id": user}) + "\n"
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n").writerow([prompt, completion, user])
    return buf.getvalue()


LAYOUT_JSONL = (4, ["u-1", "u-2", "u-2", "u-1"], ["a row0", "b row1", "c row2", "d row3"], [0, 2, 2, 4], "   \n",
                "jsonl", "u-2")
LAYOUT_TSV = (4, ["u-2", "u-1", "u-3", "u-2"], ["a row0", "b row1", "c row2", "d row3"], [1, 3], "\n", "tsv", "u-2")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
@example(LAYOUT_JSONL)
@example(LAYOUT_TSV)
def test_erase_removes_exactly_the_persons_rows_and_keeps_every_other_line(layout) -> None:
    n, users, texts, blanks, blank, fmt, target = layout
    # blank lines inside a CSV/TSV are not rows either; the header is never a row
    lines: list[tuple[str, str | None]] = []   # (line, user of the row or None)
    if fmt != "jsonl":
        header = "prompt\tcompletion\tuser_id" if fmt == "tsv" else "prompt,completion,user_id"
        lines.append((header + "\n", None))
    for k in range(n + 1):
        lines += [(blank if fmt == "jsonl" else "\n", None)] * blanks.count(k)
        if k < n:
            lines.append((_row_line(fmt, f"Question {k}?", texts[k], users[k]), users[k]))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / f"data.{fmt}"
        original = "".join(line for line, _ in lines).encode("utf-8")
        src.write_bytes(original)
        cat = tmp / "c.duckdb"
        provaudit.register(src, catalog=cat)
        res = erase(field=f"user_id={target}", out=tmp / "out", catalog=cat)
        assert src.read_bytes() == original
        want_rows = [i for i, u in enumerate(users) if u == target]
        if not want_rows:
            assert res["datasets"] == [] and not (tmp / "out" / src.name).exists()
            return
        assert [d["rows_removed"] for d in res["datasets"]] == [want_rows]
        expected = "".join(line for line, u in lines if u != target).encode("utf-8")
        assert (tmp / "out" / src.name).read_bytes() == expected
