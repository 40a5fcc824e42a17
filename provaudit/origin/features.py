"""Vectorised stylometric features for human-vs-model detection.

All features are rates or shape statistics (no topic words, and not text length: length says which
corpus a text came from, not who wrote it; with it, long human essays read as "model"), chosen because they transfer across
generators and domains better than content n-grams: sentence-length mean and spread (burstiness),
lexical diversity (mean segmental TTR over 50-word windows, a fast MATTR stand-in), word length,
punctuation habits (em dashes, semicolons, curly quotes...), markdown and list density,
signature-phrase and overused-model-word rates, a unigram word-frequency (surprisal) profile from
the offline ``wordfreq`` tables, and a function-word profile. Everything is computed
with polars string/list expressions and numpy, so a batch of thousands of texts takes milliseconds.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl

from provaudit.paths import cache_root, write_cache_file

FUNCTION_WORDS: tuple[str, ...] = (
    "a", "about", "above", "after", "again", "against", "all", "also", "although", "am", "among",
    "an", "and", "another", "any", "are", "around", "as", "at", "be", "because", "been", "before",
    "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing",
    "down", "during", "each", "either", "enough", "even", "ever", "every", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him",
    "himself", "his", "how", "however", "i", "if", "in", "into", "is", "it", "its", "itself",
    "just", "least", "less", "like", "many", "may", "me", "might", "more", "most", "much", "must",
    "my", "myself", "neither", "no", "nor", "not", "now", "of", "off", "often", "on", "once", "one",
    "only", "or", "other", "others", "our", "ours", "ourselves", "out", "over", "own", "per",
    "perhaps", "quite", "rather", "same", "several", "she", "should", "since", "so", "some", "such",
    "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these",
    "they", "this", "those", "though", "through", "thus", "to", "too", "toward", "under", "until",
    "up", "upon", "us", "very", "was", "we", "were", "what", "whatever", "when", "where", "whether",
    "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would",
    "yet", "you", "your", "yours", "yourself", "yourselves"
)

# Words that model text over-uses relative to human text (Liang et al. 2024 list it among others).
MODEL_WORDS: tuple[str, ...] = (
    "additionally", "comprehensive", "crucial", "delve", "delves", "delving", "enhance",
    "enhancing", "ensure", "ensuring", "essential", "foster", "fostering", "furthermore",
    "insights", "intricate", "landscape", "leverage", "meticulous", "moreover", "multifaceted",
    "navigate", "navigating", "notable", "noteworthy", "overall", "paramount", "pivotal", "realm",
    "robust", "seamless", "seamlessly", "showcasing", "significant", "significantly", "tapestry",
    "utilize", "various", "vibrant", "valuable", "versatile", "commendable", "innovative",
    "underscores", "highlights", "potential", "ultimately"
)

SIGNATURE_PATTERN = (
    r"(?i)as an ai\b|language model|i hope this helps|i'm sorry, but|i apologi[sz]e|"
    r"it is important to note|it's important to note|it's worth noting|it is worth noting|"
    r"in conclusion|in summary|overall,|feel free to|let me know if|here are some|here is a|"
    r"here's a|i cannot|i can't assist|as of my|knowledge cutoff|great question|certainly!|"
    r"sure!|absolutely!|i'd be happy to|i would be happy to"
)

# SIGNATURE_PATTERN's first alternative ends in a Unicode word boundary, which makes the whole
# case-insensitive search slow on non-ASCII text. A text with no case-insensitive "as an ai" cannot match
# that alternative, so there the pattern without it gives the same count (leftmost-first matching never
# tries an alternative that cannot match); only the few texts with the phrase need the full pattern.
_SIG_HEAD = r"as an ai\b|"
_SIG_TRIGGER = r"(?i)as an ai"
_SIG_REST = "(?i)" + SIGNATURE_PATTERN[len("(?i)" + _SIG_HEAD):]
assert SIGNATURE_PATTERN == "(?i)" + _SIG_HEAD + _SIG_REST[len("(?i)"):]


def _signature_counts(s: pl.Series) -> pl.Series:
    """``s.str.count_matches(SIGNATURE_PATTERN)`` (UInt32), computed the fast way described above."""
    counts = s.str.count_matches(_SIG_REST).to_numpy().copy()
    idx = np.flatnonzero(s.str.contains(_SIG_TRIGGER).fill_null(False).to_numpy())
    if idx.size:
        counts[idx] = s.gather(idx).str.count_matches(SIGNATURE_PATTERN).to_numpy()
    return pl.Series("_sig", counts, dtype=pl.UInt32)


_PUNCT = {
    "comma": r",", "semicolon": r";", "colon": r":", "em_dash": r"—|--", "en_dash": r"–",
    "paren": r"\(", "quote": r"\"",
    "exclaim": r"!", "question": r"\?", "ellipsis": r"\.\.\.|…", "digit": r"[0-9]",
    "asterisk": r"\*", "hash": r"#",
}

DENSE_FEATURES: tuple[str, ...] = (
    "mean_word_len", "sd_word_len", "long_word_rate", "sent_len_mean", "sent_len_sd",
    "sent_len_cv", "msttr", "upper_rate", "allcaps_rate", "lower_sent_start", "contraction_rate",
    "first_person_rate", "second_person_rate", "signature_rate", "model_word_rate", "lowercase_i",
    *(f"p_{k}" for k in _PUNCT),
)
FREQ_FEATURES: tuple[str, ...] = ("zipf_mean", "zipf_sd", "zipf_q10", "zipf_step", "rare_rate", "oov_rate")
FEATURE_NAMES: tuple[str, ...] = DENSE_FEATURES + FREQ_FEATURES + tuple(f"fw_{w}" for w in FUNCTION_WORDS)

_WORD_RE = r"[a-z]+(?:'[a-z]+)?"
# word classes counted per text: first-person, second-person and overused model words (disjoint)
_WORD_CLASSES: tuple[tuple[str, ...], ...] = (
    ("i", "me", "my", "mine", "i'm", "i've", "i'd", "i'll"),
    ("you", "your", "yours", "you're", "you'll", "you've"),
    MODEL_WORDS,
)
_WS_RUN = r"\s{2,}|[^\S ]"


def normalize_layout(texts: pl.Series | list[str]) -> pl.Series:
    """Collapse whitespace and straighten curly quotes before measuring style.

    The public human corpora were stored with newlines and typographic quotes stripped while the
    model sides kept them, so layout and quote style would be learned as dataset artefacts, not as
    authorship. Layout habits (markdown, bold list items) are left to the content rules instead.
    """
    s = pl.Series("text", texts, dtype=pl.Utf8).fill_null("")
    # Same result as replacing every run of ``\s+`` with one space, but a run that already is a single
    # space is left alone instead of being matched and rewritten (a maximal run of 2+ whitespace matches
    # the first branch whole, a lone non-space whitespace character the second).
    return (s.str.replace_all(_WS_RUN, " ").str.replace_all("[’‘]", "'").str.replace_all("[“”]", '"')
            .str.strip_chars())


def _safe_div(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return (a.cast(pl.Float64) / pl.max_horizontal(b.cast(pl.Float64), pl.lit(1.0)))


def word_counts(texts: pl.Series) -> np.ndarray:
    """Words per text as :func:`feature_matrix` counts them (its ``n_words``), without the features:
    for choosing the texts long enough for a detector before scoring them."""
    s = normalize_layout(texts.fill_null(""))
    return s.str.to_lowercase().str.count_matches(_WORD_RE).to_numpy()


def _word_lists(s: pl.Series) -> pl.Series:
    """Lower-cased words of each (normalised) text, as a list column."""
    return pl.DataFrame({"text": s}).select(pl.col("text").str.to_lowercase().str.extract_all(_WORD_RE))["text"]


def dense_feature_frame(texts: pl.Series | list[str], *, normalized: bool = False,
                        words: pl.Series | None = None, word_class_counts: np.ndarray | None = None) -> pl.DataFrame:
    """Stylometric features, one row per text (columns ``DENSE_FEATURES``) plus ``n_words``.

    ``words`` (optional) is ``_word_lists`` of the same normalised texts, to share with ``word_matrices``;
    ``word_class_counts`` (optional) the per-text counts of first-person, second-person and model words
    (``_word_stats``), which then need not be recounted from the word lists.
    """
    df = pl.DataFrame({"text": texts if normalized else normalize_layout(texts)})
    t = pl.col("text")
    # Each intermediate list column is computed once (eager selects do not eliminate repeated
    # sub-expressions, and per-sentence regex counts are the costliest part).
    df = df.with_columns(
        pl.Series("_w", words) if words is not None else t.str.to_lowercase().str.extract_all(_WORD_RE).alias("_w"),
        t.str.to_lowercase().alias("_low"),
        t.str.extract_all(r"[^.!?]+").alias("_s"),
    )
    df = df.with_columns(_signature_counts(df["text"])).with_columns(
        pl.col("_w").list.eval(pl.element().str.len_chars()).alias("_wl"),
        pl.col("_s").list.eval(pl.element().str.count_matches(r"[A-Za-z0-9']+"))
        .list.eval(pl.element().filter(pl.element() > 0)).alias("_sl"),
        pl.col("_s").list.len().alias("_ns"),
    ).with_columns(
        pl.col("_sl").list.mean().alias("_slm"),
        pl.col("_sl").list.std().fill_null(0.0).alias("_sls"),
    )
    if word_class_counts is not None:
        df = df.with_columns(pl.Series(f"_c{c}", word_class_counts[:, c], dtype=pl.Int64) for c in range(3))
        class_counts = [pl.col(f"_c{c}") for c in range(3)]
    else:
        class_counts = [pl.col("_w").list.eval(pl.element().is_in(list(ws)).cast(pl.Int32)).list.sum()
                        for ws in _WORD_CLASSES]
    w = pl.col("_w")
    low = pl.col("_low")
    nw = w.list.len()
    wl = pl.col("_wl")
    # window k is full (50 words) exactly when the text has at least 50 * (k + 1) words
    ttrs = [pl.when(nw >= 50 * (k + 1)).then(w.list.slice(50 * k, 50).list.n_unique() / 50.0).otherwise(None)
            for k in range(6)]
    whole_ttr = _safe_div(w.list.n_unique(), nw)
    exprs = [
        nw.alias("n_words"),
        wl.list.mean().fill_null(0.0).alias("mean_word_len"),
        wl.list.std().fill_null(0.0).alias("sd_word_len"),
        _safe_div(wl.list.eval((pl.element() >= 9).cast(pl.Int32)).list.sum(), nw).alias("long_word_rate"),
        pl.col("_slm").fill_null(0.0).alias("sent_len_mean"),
        pl.col("_sls").alias("sent_len_sd"),
        (pl.col("_sls") / pl.max_horizontal(pl.col("_slm").fill_null(1.0), pl.lit(1.0)))
        .alias("sent_len_cv"),
        pl.coalesce(pl.mean_horizontal(ttrs), whole_ttr).alias("msttr"),
        _safe_div(t.str.count_matches(r"[A-Z]"), t.str.len_chars()).alias("upper_rate"),
        _safe_div(t.str.count_matches(r"\b[A-Z]{2,}\b"), nw).alias("allcaps_rate"),
        _safe_div(t.str.count_matches(r"[.!?]\s+[a-z]"), pl.col("_ns")).alias("lower_sent_start"),
        _safe_div(low.str.count_matches(r"[a-z]'(?:s|t|re|ll|ve|d|m)\b"), nw).alias("contraction_rate"),
        _safe_div(class_counts[0], nw).alias("first_person_rate"),
        _safe_div(class_counts[1], nw).alias("second_person_rate"),
        _safe_div(pl.col("_sig"), nw).mul(100).alias("signature_rate"),
        _safe_div(class_counts[2], nw).mul(100).alias("model_word_rate"),
        _safe_div(t.str.count_matches(r"(?:^|\s)i(?:\s|')"), nw).alias("lowercase_i"),
    ]
    for k, pat in _PUNCT.items():
        exprs.append(_safe_div(t.str.count_matches(pat), nw).alias(f"p_{k}"))
    return df.select(exprs)


#: the vocabulary table's columns; bump _VOCAB_FORMAT when they or their meaning change
_VOCAB_SCHEMA = {"w": pl.String, "z": pl.Float64, "j": pl.Int64, "c": pl.Int8}
_VOCAB_FORMAT = 1


def _build_vocab_table() -> pl.DataFrame:
    """English word frequencies (wordfreq, offline data) on the Zipf scale (log10 per billion), with
    the column index of each function word (null for other words) and the ``_WORD_CLASSES`` index ``c``
    (null for other words; words not in wordfreq get ``z`` 0, as unmatched words do)."""
    import wordfreq

    freqs = wordfreq.get_frequency_dict("en", "best")
    zipf = pl.DataFrame({"w": list(freqs.keys()),
                         "z": np.log10(np.fromiter(freqs.values(), dtype=np.float64)) + 9.0})
    fw = pl.DataFrame({"w": list(FUNCTION_WORDS), "j": np.arange(len(FUNCTION_WORDS), dtype=np.int64)})
    cls = pl.DataFrame({"w": [w for ws in _WORD_CLASSES for w in ws],
                        "c": [c for c, ws in enumerate(_WORD_CLASSES) for _ in ws]}, schema={"w": pl.Utf8, "c": pl.Int8})
    return (zipf.join(fw, on="w", how="full", coalesce=True).join(cls, on="w", how="full", coalesce=True)
            .with_columns(pl.col("z").fill_null(0.0)))


def vocab_cache_path() -> Path:
    """Where :func:`_vocab_table` keeps its table: ``<cache>/wordfreq/en-best-<key>.parquet``, the key a hash
    of the installed wordfreq's version, the function words, the word classes and the table's format, so a
    change of any of them reads a new file."""
    from importlib.metadata import version

    key = json.dumps([_VOCAB_FORMAT, version("wordfreq"), FUNCTION_WORDS, _WORD_CLASSES])
    return cache_root() / "wordfreq" / f"en-best-{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"


def _read_vocab_cache(path: Path) -> pl.DataFrame | None:
    """The cached table, or None where it is missing, truncated, not Parquet or another table."""
    try:
        table = pl.read_parquet(path)
    except Exception:  # noqa: BLE001 -- whatever the file's damage, the table is rebuilt
        return None
    return table if dict(table.schema) == _VOCAB_SCHEMA and table.height else None


@functools.lru_cache(maxsize=1)
def _vocab_table() -> pl.DataFrame:
    """:func:`_build_vocab_table`, read from the cache (:func:`vocab_cache_path`) where an earlier process
    left it: 12 ms instead of 1.2 s here (importing wordfreq and building its 321,180-word table), which every
    command that tags origin paid. A missing or unreadable file is built and written (atomically: a temporary
    file renamed), a read-only cache only costs the build."""
    path = vocab_cache_path()
    cached = _read_vocab_cache(path)
    if cached is not None:
        return cached
    table = _build_vocab_table()
    write_cache_file(path, table.write_parquet)
    return table


def word_matrices(texts: pl.Series | list[str], *, normalized: bool = False,
                  words: pl.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Word-frequency profile (``FREQ_FEATURES``) and function-word rates (``FUNCTION_WORDS``).

    The frequency profile is a zero-resource stand-in for perplexity: mean, spread, 10th percentile
    and step-to-step change of each word's Zipf frequency, plus rare-word and out-of-vocabulary
    rates (model text keeps word frequency steady; human text is burstier). Function-word rates are
    each word's share of the text's words. One explode + join serves both.
    """
    s = texts if normalized else normalize_layout(texts)
    if words is None:
        words = _word_lists(s)
    freq, fw, _ = _word_stats(words)
    return freq, fw


def _word_stats(words: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``word_matrices`` of the word lists, plus the per-text counts of each ``_WORD_CLASSES`` class."""
    n = len(words)
    words = pl.DataFrame({"w": words}).with_row_index("i").explode("w").drop_nulls()
    joined = words.join(_vocab_table(), on="w", how="left", maintain_order="left").with_columns(
        pl.col("z").fill_null(0.0))
    z = pl.col("z")
    agg = joined.group_by("i").agg(
        z.mean().alias("zipf_mean"), z.std().alias("zipf_sd"), z.quantile(0.1).alias("zipf_q10"),
        z.diff().abs().mean().alias("zipf_step"), (z < 3.0).mean().alias("rare_rate"),
        (z <= 0.0).mean().alias("oov_rate"), pl.len().alias("nw"))
    full = (pl.DataFrame({"i": np.arange(n, dtype=np.uint32)}).join(agg, on="i", how="left")
            .sort("i").fill_null(0.0))
    freq = full.select(FREQ_FEATURES).to_numpy().astype(np.float64)
    hits = joined.filter(pl.col("j").is_not_null())
    nf = len(FUNCTION_WORDS)
    cell = hits["i"].to_numpy().astype(np.int64) * nf + hits["j"].to_numpy().astype(np.int64)
    m = np.bincount(cell, minlength=n * nf).reshape(n, nf)  # integer counts (exact as floats)
    fw = np.divide(m, np.maximum(full["nw"].to_numpy().astype(np.float64), 1.0)[:, None])
    cls = joined.filter(pl.col("c").is_not_null())
    counts = np.zeros((n, len(_WORD_CLASSES)), dtype=np.int64)
    np.add.at(counts, (cls["i"].to_numpy().astype(np.int64), cls["c"].to_numpy().astype(np.int64)), 1)
    return freq, fw, counts


def feature_matrix(texts: pl.Series | list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All features as a float matrix (columns ``FEATURE_NAMES``) and the word counts."""
    s = normalize_layout(texts)
    words = _word_lists(s)
    freq, fw, counts = _word_stats(words)
    dense = dense_feature_frame(s, normalized=True, words=words, word_class_counts=counts)
    n_words = dense["n_words"].to_numpy()
    x = np.hstack([dense.select(DENSE_FEATURES).to_numpy().astype(np.float64, copy=False), freq, fw])
    return np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0), n_words
