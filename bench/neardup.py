"""Benchmark the fingerprint + near-duplicate stage against a plain datasketch MinHashLSH loop.

Both sides get the same output texts (chosen/rejected) of a generated preference file and do the
same job: MinHash (128 permutations) over word 3-grams of the normalized lowercased text, LSH
with 16 bands of 8 rows, and for each text the earliest earlier text it collides with.

- provaudit: ``add_fingerprints`` per 10,000-text batch (xxh3-128 + rensa MinHash band keys),
  Parquet parts, then the DuckDB cross-batch near-duplicate grouping of ``scan``.
- datasketch: ``MinHash.update_batch`` per text, ``MinHashLSH(params=(16, 8))``: query then insert.

Each side runs in its own subprocess so its peak RSS is its own. Wall and CPU seconds are both
reported (CPU time moves less when other jobs share the machine). Also prints the raw hashing
rates the issue quotes (xxh3-128, rensa MinHash, datasketch MinHash, in texts per CPU second) and
provaudit's own shingling + MinHash path (normalized text in, signature out).

Example::

    python bench/neardup.py --texts 20000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def load_texts(path: Path, n: int) -> list[str]:
    """The first ``n`` chosen/rejected texts of a generated preference JSONL file."""
    texts: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            texts.extend((r["chosen"], r["rejected"]))
            if len(texts) >= n:
                break
    return texts[:n]


def run_provaudit(texts: list[str], batch: int = 10_000) -> dict:
    import duckdb
    import polars as pl

    from provaudit.fingerprint import add_fingerprints
    from provaudit.pipeline import _finalize_records

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="pa-bench-") as tmp:
        parts = Path(tmp) / "parts"
        parts.mkdir()
        for i in range(0, len(texts), batch):
            chunk = texts[i:i + batch]
            n = len(chunk)
            df = pl.DataFrame({"record_id": [f"b:{i + j}:response" for j in range(n)], "role": ["response"] * n,
                               "text": chunk})
            out = add_fingerprints(df).with_columns(pl.int_range(i, i + n, dtype=pl.Int64).alias("_idx"))
            out.write_parquet(parts / f"part-{i:09d}.parquet")
        t_fp = time.perf_counter() - t0
        con = duckdb.connect(config={"temp_directory": str(Path(tmp) / "duck")})
        _finalize_records(con, str(parts / "*.parquet"), Path(tmp) / "records.parquet")
        res = con.execute(f"SELECT count(near_dup_of), count(exact_dup_of) FROM "
                          f"read_parquet('{Path(tmp) / 'records.parquet'}')").fetchone()
        con.close()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "fingerprint_seconds": t_fp, "near_flagged": res[0], "exact_flagged": res[1]}


def run_datasketch(texts: list[str]) -> dict:
    import xxhash
    from datasketch import MinHash, MinHashLSH

    from provaudit.fingerprint import NUM_PERM, _shingles, normalize_text

    t0, c0 = time.perf_counter(), time.process_time()
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(16, 8))
    first_by_hash: dict[str, int] = {}
    near = exact = 0
    for i, t in enumerate(texts):
        norm = normalize_text(t)
        h = xxhash.xxh3_128_hexdigest(norm.encode("utf-8"))
        if h in first_by_hash:
            exact += 1
            continue
        first_by_hash[h] = i
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode("utf-8") for s in _shingles(norm.lower())])
        if lsh.query(m):
            near += 1
        lsh.insert(i, m)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "near_flagged": near,
            "exact_flagged": exact}


def hash_rates(texts: list[str]) -> dict:
    """texts/s of the raw primitives (normalized text in, hash or signature out)."""
    import rensa
    import xxhash
    from datasketch import MinHash

    from provaudit.fingerprint import NUM_PERM, SEED, _shingles, minhash_signatures, normalize_text

    norm = [normalize_text(t) for t in texts]
    enc = [t.encode("utf-8") for t in norm]
    clock = time.process_time  # CPU time: stable when other jobs share the machine
    t = clock()
    for b in enc:
        xxhash.xxh3_128_intdigest(b)
    xx = len(enc) / (clock() - t)
    sh = [_shingles(t.lower()) for t in norm]
    t = clock()
    rensa.RMinHash.digest_matrix_from_token_sets(sh, NUM_PERM, SEED)
    rm = len(sh) / (clock() - t)
    t = clock()
    minhash_signatures(norm, normalized=True)  # provaudit's path: text in, shingles hashed vectorised
    pm = len(norm) / (clock() - t)
    k = min(len(sh), 3000)
    shb = [[s.encode("utf-8") for s in x] for x in sh[:k]]
    t = clock()
    for x in shb:
        MinHash(num_perm=NUM_PERM, seed=1).update_batch(x)
    ds = k / (clock() - t)
    return {"xxh3_128": round(xx), "rensa_minhash": round(rm), "datasketch_minhash": round(ds),
            "provaudit_shingle_and_minhash": round(pm)}


def _child(side: str, data: Path, n: int) -> None:
    texts = load_texts(data, n)
    fn = {"provaudit": run_provaudit, "datasketch": run_datasketch, "rates": hash_rates}[side]
    print(json.dumps(fn(texts)))


def run_side(side: str, data: Path, n: int) -> dict:
    """Run one side in a subprocess; add its peak RSS (MB) from the kernel's rusage."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", side, "--data", str(data), "--texts", str(n)],
                            stdout=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed (status {status})")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["peak_rss_mb"] = round(usage.ru_maxrss / 1024)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=20_000, help="texts to deduplicate (default 20000)")
    ap.add_argument("--data", type=Path, default=None, help="generated JSONL (default: generate one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        _child(a.child, a.data, a.texts)
        return 0
    with tempfile.TemporaryDirectory(prefix="pa-neardup-") as tmp:
        data = a.data
        if data is None:
            from generate import generate

            data = Path(tmp) / "prefs.jsonl"
            generate(data, (a.texts + 1) // 2, seed=a.seed)
        rates = run_side("rates", data, a.texts)
        pa = run_side("provaudit", data, a.texts)
        ds = run_side("datasketch", data, a.texts)
    n = a.texts
    result = {
        "texts": n,
        "hash_rates_texts_per_s": rates,
        "provaudit": {**pa, "texts_per_s": round(n / pa["seconds"]), "texts_per_cpu_s": round(n / pa["cpu_seconds"])},
        "datasketch": {**ds, "texts_per_s": round(n / ds["seconds"]), "texts_per_cpu_s": round(n / ds["cpu_seconds"])},
        "speedup": round(ds["seconds"] / pa["seconds"], 1),
        "cpu_speedup": round(ds["cpu_seconds"] / pa["cpu_seconds"], 1),
        "memory_ratio": round(pa["peak_rss_mb"] / max(1, ds["peak_rss_mb"]), 2),
    }
    for k in ("provaudit", "datasketch"):
        for f in ("seconds", "cpu_seconds", "fingerprint_seconds"):
            if f in result[k]:
                result[k][f] = round(result[k][f], 2)
    print(f"near-dup stage, {n} texts: provaudit {result['provaudit']['texts_per_s']} texts/s "
          f"({pa['peak_rss_mb']} MB peak), datasketch MinHashLSH loop {result['datasketch']['texts_per_s']} "
          f"texts/s ({ds['peak_rss_mb']} MB peak): {result['speedup']}x faster in wall time, "
          f"{result['cpu_speedup']}x in CPU time; hash rates (texts per CPU s) {rates}", file=sys.stderr)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
