"""Concurrent scans on one catalog, with a reader polling it meanwhile.

Starts N ``provaudit scan`` processes at once on one catalog (distinct generated inputs), and
while they run calls ``list_datasets`` (what ``provaudit datasets`` does) in a loop, timing each
call. Reports whether every scan landed (exit code, one dataset each, one scan row each: no lost
update), the wall time, and how long the reader was blocked: the slowest read, and how many reads
took over a second (a scan's work phase must never block a reader; only a commit may, briefly).

Example::

    python bench/concurrency.py --scans 2 4 --rows 20000
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import faults  # the CLI command line and environment

BLOCKED: list[float] = []  # seconds each read spent retrying an open the catalog refused (held by a writer)


def _measure_blocking() -> None:
    """Time, per open, from DuckDB's first "file is locked" refusal to the open that succeeded."""
    from provaudit.catalog import store

    original = store.retry_busy

    def timed(open_fn, is_busy, **kw):
        first: list[float] = []

        def busy(exc):
            hit = is_busy(exc)
            if hit and not first:
                first.append(time.perf_counter())
            return hit

        try:
            return original(open_fn, busy, **kw)
        finally:
            if first:
                BLOCKED.append(time.perf_counter() - first[0])

    store.retry_busy = timed


def trial(n: int, rows: int, work: Path, workers: int) -> dict:
    import generate

    from provaudit.catalog.lineage import list_datasets
    from provaudit.errors import ProvauditError
    from provaudit.pipeline import register

    d = work / f"n{n}"
    d.mkdir(parents=True)
    cat = d / "catalog.duckdb"
    register(ROOT / "fixtures" / "lineage" / "eval_set.json", catalog=cat, tags=["eval"])
    inputs = []
    for k in range(n):
        p = d / f"batch{k}.jsonl"
        generate.generate(p, rows, seed=100 + k)
        inputs.append(p)
    idle = []
    for _ in range(10):  # the same read with no scan running: what CPU load alone costs
        t = time.perf_counter()
        list_datasets(catalog=cat)
        idle.append(time.perf_counter() - t)
    BLOCKED.clear()
    start = time.perf_counter()
    procs = [subprocess.Popen(faults.scan_cmd([p], cat, d / f"out{k}", workers), env=faults.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for k, p in enumerate(inputs)]
    reads: list[float] = []
    errors = 0
    while any(p.poll() is None for p in procs):
        t = time.perf_counter()
        try:
            list_datasets(catalog=cat)
        except ProvauditError:  # a reader that fails counts as blocked for good
            errors += 1
        reads.append(time.perf_counter() - t)
        time.sleep(0.1)
    wall = time.perf_counter() - start
    errs = [p.communicate()[1] for p in procs]
    names = {r["dataset"] for r in list_datasets(catalog=cat)}
    import duckdb

    con = duckdb.connect(str(cat), read_only=True)
    scans = con.execute("SELECT count(*) FROM scans").fetchone()[0]
    con.close()
    reads.sort()
    return {"scans": n, "rows_each": rows, "exit_codes": [p.returncode for p in procs],
            "landed": sum(f"batch{k}" in names for k in range(n)), "scan_rows": scans, "wall_s": round(wall, 2),
            "waited_for_lock": sum("waiting for the catalog write lock" in e for e in errs),
            "reads": len(reads), "read_errors": errors,
            "read_max_s": round(reads[-1], 3) if reads else None,
            "read_p50_s": round(reads[len(reads) // 2], 3) if reads else None,
            "reads_over_1s": sum(r > 1.0 for r in reads), "read_idle_p50_s": round(sorted(idle)[5], 3),
            "reads_blocked_by_a_writer": len(BLOCKED), "blocked_max_s": round(max(BLOCKED, default=0.0), 3),
            "blocked_total_s": round(sum(BLOCKED), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    _measure_blocking()
    work = Path(tempfile.mkdtemp(prefix="provaudit-concurrency-"))
    try:
        results = [trial(n, args.rows, work, args.workers) for n in args.scans]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    ok = all(r["landed"] == r["scans"] and set(r["exit_codes"]) <= {0, 1} and not r["read_errors"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
