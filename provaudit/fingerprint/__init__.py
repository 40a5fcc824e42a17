"""Fingerprints: normalized content hashes, MinHash LSH band keys, dataset digests.

- ``text_hash``: xxh3-128 of the normalized text (Unicode NFKC, whitespace folded, trimmed).
  Two records with the same hash are exact duplicates up to Unicode form and spacing.
- ``band_keys``: a 128-permutation MinHash (rensa) over word 3-gram shingles of the lowercased
  normalized text (each shingle hashed from its three xxh3-64 word hashes, vectorised), cut into
  16 bands of 8 rows; each band becomes one 64-bit key. Two texts
  that share a key are near-duplicate candidates: the chance of sharing at least one key is
  1-(1-J^8)^16 for Jaccard similarity J (about 0.95 at J=0.8, 0.40 at J=0.65, 0.06 at J=0.5).
- ``DatasetDigest``: an order-independent digest (sum of per-record 128-bit hashes modulo
  2**128, a multiset hash) plus schema and counts, so shuffling rows keeps the fingerprint and
  editing one record changes it.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import xxhash

NUM_PERM = 128
BANDS = 16
ROWS = NUM_PERM // BANDS
SEED = 1_234_567
SHINGLE = 3
FINGERPRINT_VERSION = "pa-fp-v2"

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """NFKC, whitespace folded to single spaces, trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def text_hash(text: str) -> str:
    """xxh3-128 hex digest (32 characters) of the normalized text."""
    return xxhash.xxh3_128_hexdigest(normalize_text(text).encode("utf-8"))


def _normalized_column(texts: pl.Series) -> pl.Series:
    """``normalize_text`` of every text, vectorised. NFKC leaves ASCII unchanged, so only the texts
    with a non-ASCII character go through it; a whitespace run is rewritten only when it is not
    already one space (the same result as replacing every ``\\s+``, with far fewer rewrites)."""
    texts = texts.fill_null("")
    idx = texts.str.contains(r"[^\x00-\x7F]").arg_true()
    if len(idx):
        texts = texts.clone().scatter(idx, texts.gather(idx).str.normalize("NFKC"))
    return texts.str.replace_all(r"\s{2,}|[^\S ]", " ").str.strip_chars()


def _shingles(norm_lower: str) -> list[str]:
    """Word 3-gram shingles of one lowercased normalized text, as strings, for the datasketch
    baselines in ``bench/``. ``shingle_hashes`` hashes the same 3-grams without building strings; its
    word characters are the Rust regex crate's ``\\w`` (Python's also counts a few symbols such as
    "½" and leaves out combining marks), so on rare texts the two differ by a word."""
    words = _WORD.findall(norm_lower)
    if len(words) < SHINGLE:
        return [" ".join(words)] if words else [norm_lower or "\x00"]
    return [" ".join(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)]


_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)
_MIX3 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x + _MIX1
    x = (x ^ (x >> np.uint64(30))) * _MIX2
    x = (x ^ (x >> np.uint64(27))) * _MIX3
    return x ^ (x >> np.uint64(31))


_PAD = np.uint64(0x5851F42D4C957F2D)   # stands for the missing words of a text shorter than a shingle


def _word_hash(word: str) -> int:
    return xxhash.xxh3_64_intdigest(word.encode("utf-8"))


def combine_shingle(h1: int, h2: int, h3: int) -> int:
    """Hash of one word 3-gram from its three word hashes (pure-Python reference of ``shingle_hashes``)."""
    mask = (1 << 64) - 1

    def mix(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    return mix(mix(mix(h1) ^ h2) ^ h3)


def shingle_hashes(norm: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Word 3-gram shingle hashes of normalized texts, flat, with row offsets (``n + 1``, uint64).

    Words are the ``\\w+`` runs of the lowercased text (Unicode word characters). Each distinct word
    is hashed once (xxh3-64 of its UTF-8 bytes); a shingle's hash combines the hashes of its three
    words (``combine_shingle``), so no shingle string is ever built. A text of one or two words has
    one shingle (the missing words padded with a constant); a text with no word character is
    hashed whole as one word (an empty text as ``"\\x00"``). Everything except the per-distinct-word
    hashing runs in polars and numpy.
    """
    low = norm.fill_null("").str.to_lowercase().alias("t")
    words = low.str.extract_all(r"\w+")
    lens = words.list.len().fill_null(0).to_numpy().astype(np.int64)
    if (lens == 0).any():  # the whole text stands for its one word
        words = pl.select(pl.when(pl.lit(lens) > 0).then(pl.lit(words))
                          .otherwise(pl.concat_list(pl.lit(low).replace("", "\x00")))).to_series()
        lens = np.maximum(lens, 1)
    flat = words.explode()
    vocab = flat.unique()
    vh = np.fromiter((_word_hash(w) for w in vocab.to_list()), dtype=np.uint64, count=len(vocab))
    h = (pl.DataFrame({"w": flat}).join(pl.DataFrame({"w": vocab, "h": pl.Series(vh, dtype=pl.UInt64)}),
                                        on="w", how="left", maintain_order="left")["h"].to_numpy())
    n_words = h.size
    ends = np.repeat(np.cumsum(lens), lens)          # end offset of each word's text
    pos = np.arange(n_words)
    padded = np.concatenate([h, np.array([_PAD, _PAD], dtype=np.uint64)])
    second = np.where(pos + 1 < ends, padded[1:n_words + 1], _PAD)
    third = np.where(pos + 2 < ends, padded[2:n_words + 2], _PAD)
    starts = ends - np.repeat(lens, lens)
    # a shingle starts at every word with two more words of its text after it, and at the first
    # word of a text shorter than a shingle
    keep = (pos + SHINGLE <= ends) | ((pos == starts) & (ends - starts < SHINGLE))
    with np.errstate(over="ignore"):
        hashes = _splitmix(_splitmix(_splitmix(h[keep]) ^ second[keep]) ^ third[keep])
    counts = np.maximum(lens - (SHINGLE - 1), 1)
    offsets = np.zeros(len(lens) + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    return hashes, offsets


_CHUNK = 4_096  # texts signed at a time: bounds the memory of the shingle arrays per batch


def minhash_signatures(texts: Sequence[str] | pl.Series, *, normalized: bool = False) -> np.ndarray:
    """(n, 128) uint32 MinHash signatures over word 3-gram shingles (rensa RMinHash, fixed seed)."""
    import rensa

    if not isinstance(texts, pl.Series):
        texts = pl.Series("t", texts, dtype=pl.Utf8)
    n = len(texts)
    out = np.zeros((n, NUM_PERM), dtype=np.uint32)
    for start in range(0, n, _CHUNK):
        chunk = texts.slice(start, _CHUNK)
        norm = chunk if normalized else _normalized_column(chunk)
        hashes, offsets = shingle_hashes(norm)
        rows = rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, SEED).to_rows()
        out[start:start + len(rows)] = np.array(rows, dtype=np.uint32)
    return out


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
    keys = band_keys_from_signatures(minhash_signatures(uniq, normalized=True))
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

    def merge(self, other: DatasetDigest) -> None:
        """Fold in the digest of later batches (computed elsewhere, e.g. on a Ray worker)."""
        self.schema = self.schema or other.schema
        self._sum = (self._sum + other._sum) & _MASK128
        self.n_rows += other.n_rows
        self.n_records += other.n_records
        for role, count in other.roles.items():
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
