"""Reading through storage URIs (``provaudit.io.fs``) against plain paths: rows/s of ``RecordReader``.

Repeats a JSON-lines file ``--copies`` times (default: the bundled ``fixtures/scan/trl_pairs.jsonl``),
writes the normalized records of it as Parquet (row groups of 5,000), and reads each through a plain
path, a ``file://`` URI (fsspec's local filesystem; Parquet through ``pyarrow.fs.PyFileSystem``) and a
``memory://`` URI, best of ``--repeat`` runs. Measures the per-row cost of the fsspec layer only (no
network: an object store adds its own latency and bandwidth).

Example::

    python bench/read_uris.py --copies 100
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import fsspec
import polars as pl

from provaudit.io.reader import RecordReader

ROOT = Path(__file__).resolve().parent.parent


def _best(path: str, repeat: int) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        reader = RecordReader(path, batch_size=5000)
        for _batch in reader.batches():
            pass
        best, rows = min(best, time.perf_counter() - t), reader.n_rows
    return best, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=ROOT / "fixtures" / "scan" / "trl_pairs.jsonl")
    ap.add_argument("--copies", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    mem = fsspec.filesystem("memory")
    with tempfile.TemporaryDirectory(prefix="provaudit-bench-uris-") as tmp:
        d = Path(tmp)
        (d / "big.jsonl").write_bytes(args.source.read_bytes() * args.copies)
        pl.concat(list(RecordReader(d / "big.jsonl").batches())).write_parquet(d / "big.parquet", row_group_size=5000)
        print(f"{(d / 'big.jsonl').stat().st_size / 1e6:.1f} MB of JSON lines, {args.copies} copies of {args.source.name}")
        print("| file | through | rows | best s | rows/s | vs path |\n|---|---|---:|---:|---:|---:|")
        for name in ("big.jsonl", "big.parquet"):
            mem.put_file(str(d / name), f"/provaudit-bench/{name}")
            base = None
            for label, p in (("path", str(d / name)), ("file://", f"file://{d / name}"),
                             ("memory://", f"memory://provaudit-bench/{name}")):
                s, rows = _best(p, args.repeat)
                base = base or s
                print(f"| {name} | {label} | {rows:,} | {s:.3f} | {rows / s:,.0f} | {s / base:.2f}x |")
        mem.rm("/provaudit-bench", recursive=True)


if __name__ == "__main__":
    main()
