"""Fingerprints: normalized content hashes, MinHash LSH band keys, dataset digests.

- ``text_hash``: xxh3-128 of the normalized text (Unicode NFKC, whitespace folded, trimmed).
  Two records with the same hash are exact duplicates up to Unicode form and spacing.
- ``band_keys``: a 128-permutation MinHash (rensa) over word 3-gram shingles of the lowercased
  normalized text, cut into 16 bands of 8 rows; each band becomes one 64-bit key. Two texts
  that share a key are near-duplicate candidates: the chance of sharing at least one key is
  1-(1-J^8)^16 for Jaccard similarity J (about 0.98 at J=0.8, 0.55 at J=0.65, 0.06 at J=0.5).
- ``DatasetDigest``: an order-independent digest (sum of per-record 128-bit hashes modulo
  2**128, a multiset hash) plus schema and counts, so shuffling rows keeps the fingerprint and
  editing one record changes it.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import polars as pl
import xxhash

NUM_PERM = 128
BANDS = 16
ROWS = NUM_PERM // BANDS
SEED = 1_234_567
SHINGLE = 3
FINGERPRINT_VERSION = "pa-fp-v1"

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """NFKC, whitespace folded to single spaces, trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def text_hash(text: str) -> str:
    """xxh3-128 hex digest (32 characters) of the normalized text."""
    return xxhash.xxh3_128_hexdigest(normalize_text(text).encode("utf-8"))


def _normalized_column(texts: pl.Series) -> pl.Series:
    return (texts.str.normalize("NFKC").str.replace_all(r"\s+", " ").str.strip_chars())


def _shingles(norm_lower: str) -> list[str]:
    words = _WORD.findall(norm_lower)
    if len(words) < SHINGLE:
        return [" ".join(words)] if words else [norm_lower or "\x00"]
    return [" ".join(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)]


_CHUNK = 2_048  # texts shingled at a time: bounds the memory of the shingle lists per batch


def minhash_signatures(texts: Sequence[str], *, normalized: bool = False) -> np.ndarray:
    """(n, 128) uint32 MinHash signatures over word 3-gram shingles (rensa RMinHash, fixed seed)."""
    import rensa

    n = len(texts)
    out = np.zeros((n, NUM_PERM), dtype=np.uint32)
    for start in range(0, n, _CHUNK):
        chunk = texts[start:start + _CHUNK]
        norm = chunk if normalized else [normalize_text(t) for t in chunk]
        token_sets = [_shingles(t.lower()) for t in norm]
        rows = rensa.RMinHash.digest_matrix_from_token_sets(token_sets, NUM_PERM, SEED).to_rows()
        out[start:start + len(rows)] = np.fromiter(chain.from_iterable(rows), dtype=np.uint32,
                                                   count=len(rows) * NUM_PERM).reshape(len(rows), NUM_PERM)
    return out


_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)
_MIX3 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + _MIX1
    x = (x ^ (x >> np.uint64(30))) * _MIX2
    x = (x ^ (x >> np.uint64(27))) * _MIX3
    return x ^ (x >> np.uint64(31))


def band_keys_from_signatures(sig: np.ndarray) -> np.ndarray:
    """(n, BANDS) uint64 keys: each band's 8 MinHash values mixed into one 64-bit key (band index included)."""
    n = sig.shape[0]
    with np.errstate(over="ignore"):
        s = sig.reshape(n, BANDS, ROWS).astype(np.uint64)
        h = np.broadcast_to(np.arange(BANDS, dtype=np.uint64) + np.uint64(1), (n, BANDS)).copy()
        for r in range(ROWS):
            h = _splitmix(h ^ s[:, :, r])
    return h


def band_keys(texts: Sequence[str]) -> list[list[int]]:
    """LSH band keys for each text (list of 16 unsigned 64-bit ints)."""
    return band_keys_from_signatures(minhash_signatures(texts)).tolist()


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal MinHash values: an unbiased estimate of the shingle-set Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def add_fingerprints(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``text_hash`` (str) and ``band_keys`` (list[u64]) to a record batch. Pure function of the batch."""
    norm = _normalized_column(df["text"])
    # each distinct text is signed once (prompts and copied answers repeat within a batch)
    uniq = norm.unique(maintain_order=True)
    uniq_list = uniq.to_list()
    hashes = [xxhash.xxh3_128_hexdigest(t.encode("utf-8")) for t in uniq_list]
    keys = band_keys_from_signatures(minhash_signatures(uniq_list, normalized=True))
    if len(uniq_list) != df.height:
        pos = pl.DataFrame({"t": norm}).join(pl.DataFrame({"t": uniq, "i": np.arange(len(uniq_list))}),
                                             on="t", how="left", maintain_order="left")["i"].to_numpy()
        keys = keys[pos]
        hashes = [hashes[i] for i in pos]
    return df.with_columns(
        pl.Series("text_hash", hashes, dtype=pl.Utf8),
        pl.Series("band_keys", keys, dtype=pl.List(pl.UInt64)),
    )


# ---------------------------------------------------------------- dataset fingerprint

_MASK128 = (1 << 128) - 1


@dataclass
class DatasetDigest:
    """Accumulates an order-independent dataset fingerprint batch by batch."""

    schema: str = ""
    n_rows: int = 0
    n_records: int = 0
    _sum: int = 0
    roles: dict[str, int] = field(default_factory=dict)

    def update(self, batch: pl.DataFrame) -> None:
        """Fold a fingerprinted batch (needs role, text_hash, meta, source_row) into the digest."""
        if batch.height == 0:
            return
        if not self.schema:
            self.schema = str(batch["schema"][0])
        parts = zip(batch["role"].to_list(), batch["text_hash"].to_list(), batch["meta"].to_list())
        total = self._sum
        for role, h, meta in parts:
            rec = f"{role}\x1f{h}\x1f{meta}".encode()
            total += xxhash.xxh3_128_intdigest(rec)
        self._sum = total & _MASK128
        self.n_records += batch.height
        self.n_rows += batch["source_row"].n_unique()
        for role, count in batch["role"].value_counts().iter_rows():
            self.roles[role] = self.roles.get(role, 0) + count

    def fingerprint(self) -> str:
        roles = ",".join(f"{r}={c}" for r, c in sorted(self.roles.items()))
        desc = (f"{FINGERPRINT_VERSION}|schema={self.schema}|rows={self.n_rows}|records={self.n_records}"
                f"|roles={roles}|sum={self._sum:032x}")
        return xxhash.xxh3_128_hexdigest(desc.encode("utf-8"))


def dataset_fingerprint(batches: Iterable[pl.DataFrame]) -> str:
    """Fingerprint of a whole dataset from its (fingerprinted) record batches, in any order."""
    digest = DatasetDigest()
    for b in batches:
        digest.update(b if "text_hash" in b.columns else add_fingerprints(b))
    return digest.fingerprint()


__all__ = ["BANDS", "NUM_PERM", "ROWS", "DatasetDigest", "add_fingerprints", "band_keys",
           "band_keys_from_signatures", "dataset_fingerprint", "estimate_jaccard", "minhash_signatures",
           "normalize_text", "text_hash"]
