"""Fault injection: interrupt or kill ``provaudit scan`` at random points and check what it leaves.

Each trial copies a prepared catalog, starts ``provaudit scan`` in its own process group, sends
SIGINT, SIGTERM or SIGKILL to the whole group after a random delay, and checks:

* the catalog opens and holds exactly the state before the scan or the state after a complete
  scan (measured once, uninterrupted), never a part of it;
* SIGINT / SIGTERM: exit 130 / 143 with one line on stderr, no traceback, the catalog as before and
  no temporary file in ``--out`` or beside the catalog; or, when the signal arrived during the
  final commit, the normal exit code with the commit complete and a line saying so;
* a signal that arrives while the command is still starting (before it installs its handlers) ends it
  by the signal's default action (status -N, 128 + N in a shell): accepted only if nothing changed;
* how long the command took to stop after the signal (the interrupt latency).

Example::

    python bench/faults.py --trials 40 --rows 20000 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from provaudit.cli import main; main()"]
OUTPUTS = {"records.parquet", "summary.json", "summary.md"}
CATALOG_FILES = {"catalog.duckdb", "catalog.duckdb.wal", "catalog.duckdb.lock"}
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGKILL: "SIGKILL"}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.setdefault("HF_HUB_OFFLINE", "1")
    return e


def catalog_state(path: Path) -> dict | None:
    """What a scan changes in the catalog, read through a plain read-only DuckDB connection."""
    import duckdb

    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()
        return {"datasets": q("SELECT name, fingerprint, n_records, tags FROM datasets ORDER BY dataset_id"),
                "records": q("SELECT count(*), coalesce(sum(hash(text_hash)), 0) FROM records")[0],
                "bands": q("SELECT count(*) FROM record_bands")[0][0],
                "fields": q("SELECT count(*) FROM record_fields")[0][0],
                # the datasets whose rows live in Parquet files beside the catalog (docs/lineage.md)
                "files": q("SELECT 'bands', dataset_id, n_rows FROM band_files UNION ALL "
                           "SELECT 'records', dataset_id, n_rows FROM record_files ORDER BY ALL"),
                "scans": q("SELECT count(*) FROM scans")[0][0]}
    finally:
        con.close()


def scan_cmd(inputs: list[Path], catalog: Path, out: Path, workers: int) -> list[str]:
    return [*CLI, "scan", *map(str, inputs), "--catalog", str(catalog), "--out", str(out),
            "--workers", str(workers), "--batch-size", "1000", "--no-progress", "--json"]


def prepare(work: Path, inputs: list[Path], base: Path, workers: int) -> tuple[Path, dict, dict, float]:
    """A catalog holding ``base`` registered, its state, the state after one full scan, the scan's time."""
    cat = work / "pristine" / "catalog.duckdb"
    cat.parent.mkdir(parents=True)
    subprocess.run([*CLI, "register", str(base), "--catalog", str(cat), "--tag", "eval"], check=True,
                   env=env(), capture_output=True)
    before = catalog_state(cat)
    full = work / "full"
    shutil.copytree(cat.parent, full)
    t = time.perf_counter()
    proc = subprocess.run(scan_cmd(inputs, full / "catalog.duckdb", work / "full-out", workers), env=env(),
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"the uninterrupted scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return cat, before, catalog_state(full / "catalog.duckdb"), seconds


def trial(k: int, work: Path, pristine: Path, inputs: list[Path], before: dict, after: dict, *, sig: int,
          delay: float, workers: int) -> dict:
    """One run killed by ``sig`` after ``delay`` seconds; returns what it found (``ok`` says all held)."""
    d = work / f"trial-{k}"
    shutil.copytree(pristine.parent, d / "cat")
    cat, out = d / "cat" / "catalog.duckdb", d / "out"
    out.mkdir(parents=True)
    cat_files = set(os.listdir(cat.parent))
    proc = subprocess.Popen(scan_cmd(inputs, cat, out, workers), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(delay)
    sent = time.perf_counter()
    finished_first = proc.poll() is not None
    if not finished_first:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            finished_first = True
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        return {"trial": k, "signal": SIGNAL_NAMES[sig], "ok": False, "why": "did not stop within 120 s"}
    latency = time.perf_counter() - sent
    if sig == signal.SIGKILL:  # workers die with the group; wait until no member is left
        _wait_group_gone(proc.pid)
    state = catalog_state(cat)
    rc = proc.returncode
    res = {"trial": k, "signal": SIGNAL_NAMES[sig], "delay_s": round(delay, 2), "rc": rc,
           "latency_s": round(latency, 3), "finished_before_signal": finished_first,
           "state": "before" if state == before else "after" if state == after else "PARTIAL",
           "message": (err.strip().splitlines() or [""])[-1][:200]}
    problems = []
    if res["state"] == "PARTIAL":
        problems.append("catalog holds neither the state before nor after the scan")
    left_out = set(os.listdir(out))
    left_cat = set(os.listdir(cat.parent)) - cat_files - CATALOG_FILES
    if sig != signal.SIGKILL and not finished_first:
        if rc in (130, 143):
            if rc != 128 + sig:
                problems.append(f"exit {rc} for {SIGNAL_NAMES[sig]}")
            if res["state"] != "before":
                problems.append("interrupted, but the catalog changed")
            if left_out:
                problems.append(f"left in --out: {sorted(left_out)}")
            lines = [x for x in err.splitlines() if x.strip()]
            if len(lines) != 1 or not lines[0].startswith("interrupted"):
                problems.append(f"stderr is not one 'interrupted' line: {err[-500:]!r}")
        elif rc == -sig:  # the signal came before the command installed its handlers (still importing):
            # the default action ended it (a shell reports 128 + signal) before it had done anything
            res["before_handlers"] = True
            if res["state"] != "before" or left_out:
                problems.append(f"killed by {SIGNAL_NAMES[sig]} before its handlers, but it had changed things")
        elif rc in (0, 1):  # the signal met the final commit: it completed and says so
            if res["state"] != "after" or "commit completed" not in err or not left_out <= OUTPUTS:
                problems.append(f"exit {rc} after a signal without a completed commit: {err[-300:]!r}")
            res["during_commit"] = True
        else:
            problems.append(f"exit {rc}: {err[-500:]!r}")
        if "Traceback" in err:
            problems.append("a traceback on stderr")
        if left_cat:
            problems.append(f"left beside the catalog: {sorted(left_cat)}")
    res["ok"] = not problems
    if problems:
        res["why"] = "; ".join(problems)
    shutil.rmtree(d, ignore_errors=True)
    return res


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def run(trials: int, inputs: list[Path], base: Path, *, workers: int, seed: int, budget_s: float,
        work: Path | None = None, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)) -> dict:
    """Prepare once, then up to ``trials`` faults at random points within the measured scan time
    (stopping early when ``budget_s`` is spent). Returns every trial and totals."""
    rng = random.Random(seed)
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="provaudit-faults-")) if own else work
    try:
        pristine, before, after, full_s = prepare(work, inputs, base, workers)
        start = time.perf_counter()
        results = []
        for k in range(trials):
            if time.perf_counter() - start > budget_s:
                break
            sig = signals[k % len(signals)]
            results.append(trial(k, work, pristine, inputs, before, after, sig=sig,
                                 delay=rng.uniform(0.3, full_s * 1.05), workers=workers))
        lat = sorted(r["latency_s"] for r in results if r.get("signal") != "SIGKILL" and r.get("rc") in (130, 143))
        return {"trials": len(results), "failures": sum(not r["ok"] for r in results),
                "partial": sum(r.get("state") == "PARTIAL" for r in results),
                "full_scan_s": round(full_s, 2), "interrupt_latency_s": {
                    "n": len(lat), "median": lat[len(lat) // 2] if lat else None, "max": lat[-1] if lat else None},
                "states": {s: sum(r.get("state") == s for r in results) for s in ("before", "after", "PARTIAL")},
                "results": results}
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the generated input (bench/generate.py)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=1800, help="stop starting trials after this many seconds")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    import generate

    with tempfile.TemporaryDirectory(prefix="provaudit-faults-input-") as tmp:
        data = Path(tmp) / "batch.jsonl"
        generate.generate(data, args.rows, seed=args.seed)
        report = run(args.trials, [data], ROOT / "fixtures" / "lineage" / "eval_set.json", workers=args.workers,
                     seed=args.seed, budget_s=args.budget)
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
    for r in report["results"]:
        if not r["ok"]:
            print(json.dumps(r), file=sys.stderr)
    return 0 if report["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
