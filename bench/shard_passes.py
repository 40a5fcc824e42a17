"""Cost of the work ``--engine ray`` does before reading the shards of a file (docs/scale-out.md), in
CPU seconds of one process:

* a CSV/TSV file: the first pass over its byte ranges (``provaudit.io.csv_ranges.range_facts``),
  against reading the same file's rows (the local reader: ``csv`` over physical lines);
* a gzip JSON-lines file: inflating it line by line (``provaudit.io.formats.inflate_lines``).

Example::

    python bench/shard_passes.py /tmp/bench/prefs-20000-s0.csv --ranges 4
    python bench/shard_passes.py /tmp/bench/prefs-20000-s0.jsonl.gz
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from provaudit.io import csv_ranges
    from provaudit.io.formats import iter_raw_rows

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path, help="an uncompressed .csv or .tsv file, or a .jsonl.gz file")
    ap.add_argument("--ranges", type=int, default=8, help="byte ranges to cut a CSV/TSV file into")
    a = ap.parse_args(argv)
    if a.file.name.endswith(".gz"):
        return _inflate(a.file)
    fmt = "tsv" if a.file.suffix.lower() == ".tsv" else "csv"
    delim = csv_ranges.delimiter(fmt)
    size = a.file.stat().st_size
    step = -(-size // a.ranges)
    cuts = [*range(0, size, step), size]
    t0 = time.process_time()
    facts = [csv_ranges.range_facts(a.file, x, y, delim) for x, y in itertools.pairwise(cuts)]
    plan = csv_ranges.stitch(facts, csv_ranges.read_header(a.file, delim), size)
    pass_s = time.process_time() - t0
    t0 = time.process_time()
    rows = sum(1 for _ in iter_raw_rows(a.file, fmt))
    read_s = time.process_time() - t0
    mb = size / 1e6
    print(json.dumps({"file": str(a.file), "mb": round(mb, 1), "rows": rows, "ranges": len(facts),
                      "shards": len(plan or []), "pass_cpu_s": round(pass_s, 3), "read_cpu_s": round(read_s, 3),
                      "pass_mb_per_cpu_s": round(mb / max(pass_s, 1e-9), 1),
                      "read_mb_per_cpu_s": round(mb / max(read_s, 1e-9), 1),
                      "pass_share_of_read": round(pass_s / max(read_s, 1e-9), 3)}, indent=2))
    return 0


def _inflate(path: Path) -> int:
    import tempfile

    from provaudit.io.formats import inflate_lines

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.jsonl"
        t0 = time.process_time()
        error = inflate_lines(path, copy)
        cpu = time.process_time() - t0
        mb = copy.stat().st_size / 1e6
    print(json.dumps({"file": str(path), "gz_mb": round(path.stat().st_size / 1e6, 1), "mb": round(mb, 1),
                      "inflate_cpu_s": round(cpu, 3), "mb_per_cpu_s": round(mb / max(cpu, 1e-9), 1),
                      "error": error}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
