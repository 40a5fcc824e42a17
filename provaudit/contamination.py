"""Which texts can carry contamination: the substantive-text rule behind duplicates and eval overlap.

A match between two texts says something only when the text is specific enough that it could not
recur by chance. Contamination studies count a match only above a minimum span: GPT-3 (Brown et al.
2020, appendix C) used 13-gram overlap, shortened to the benchmark's 5th-percentile length (at least
8) for short examples; the Llama 2 contamination analysis (Touvron et al. 2023, appendix A.6) counts a
token as contaminated only inside a shared span of at least 10 tokens; open-instruct's decontamination
matches n-grams (8- and 13-grams) of each eval prompt, so a prompt shorter than the n-gram cannot
match. Short answers like ``You're welcome.`` or ``What do you mean?`` recur in any dialogue corpus
and match between an eval set and unrelated data without anything having leaked.

provaudit's rule (the thresholds are module constants, documented in docs/overlap.md):

* ``empty``: no word at all (empty, whitespace or punctuation only). A data-quality finding of its
  own (``duplicates.empty_records``, gated by ``max_empty_output_rate``), never a duplicate or a leak.
* ``short``: fewer than ``MIN_WORDS`` (13, GPT-3's n-gram) words, unless it is short but specific:
  ``MIN_SPECIFIC_WORDS`` (3) or more words of which ``MIN_NUMBERS`` (2) or more are numbers (a one-line
  math question such as ``What is 48 / 2 + 17?``), or ``MIN_NAMED_WORDS`` (8, GPT-3's floor) or more
  words with a number or a name (a capitalised word inside the sentence, an acronym: ``Who was the
  first president of the United States?``). Stock assistant lines (``Is there anything else I can
  help you with?``, ``I'm sorry, I can't help you with this.``: 9-11 words, nothing specific) stay
  trivial; on HH-RLHF they otherwise match between any two splits.
* ``boilerplate`` (cross-record, so decided in the scan's finalize step, not per record): a text of
  fewer than ``BOILERPLATE_MAX_WORDS`` words that recurs in ``BOILERPLATE_MIN_ROWS`` or more distinct
  rows across the batch and the catalog (refusals, greetings, templated replies). Every record of 20
  or more words is substantive whatever its recurrence, so a leak of a long eval record always counts.

Only substantive texts count towards ``duplicates.exact_rate``/``near_rate`` and the
``overlap.by_tag.*.*.exact_records``/``near_records`` the gate checks; trivial matches are reported
apart (``trivial_records`` and examples with their reason).
"""
from __future__ import annotations

import polars as pl

MIN_WORDS = 13
MIN_NAMED_WORDS = 8
MIN_SPECIFIC_WORDS = 3
MIN_NUMBERS = 2
BOILERPLATE_MIN_ROWS = 5
BOILERPLATE_MAX_WORDS = 20

_WORD = r"\w+"
_NUMBER = r"\d+(?:[.,]\d+)*"
# a name: a capitalised word after a lower-case word, digit or comma (not sentence-initial, not "I"),
# or an acronym of 2+ capitals
_NAME = r"(?:[a-z0-9,;:)]\s+[A-Z][a-z]+|\b[A-Z]{2,}\b)"

RULE = (f"substantive: >= {MIN_WORDS} words, or >= {MIN_SPECIFIC_WORDS} words with >= {MIN_NUMBERS} numbers, "
        f"or >= {MIN_NAMED_WORDS} words with a number or a name; "
        f"trivial: empty (no word), short (otherwise), boilerplate (< {BOILERPLATE_MAX_WORDS} words recurring in "
        f">= {BOILERPLATE_MIN_ROWS} distinct rows of the batch and catalog)")


def substance_columns(text: pl.Expr) -> list[pl.Expr]:
    """``n_words`` (u32) and ``trivial`` (``empty``, ``short`` or null) of a text column."""
    t = text.fill_null("")
    n_words = t.str.count_matches(_WORD)
    n_numbers = t.str.count_matches(_NUMBER)
    named = t.str.contains(_NAME) | (n_numbers >= 1)
    specific = (((n_words >= MIN_SPECIFIC_WORDS) & (n_numbers >= MIN_NUMBERS))
                | ((n_words >= MIN_NAMED_WORDS) & named))
    trivial = (pl.when(n_words == 0).then(pl.lit("empty"))
               .when((n_words < MIN_WORDS) & ~specific).then(pl.lit("short"))
               .otherwise(pl.lit(None, dtype=pl.Utf8)))
    return [n_words.cast(pl.UInt32).alias("n_words"), trivial.alias("trivial")]


def add_substance(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``n_words`` and ``trivial`` to a record batch (pure per batch)."""
    return df.with_columns(substance_columns(pl.col("text")))


def trivial_reason(text: str | None) -> str | None:
    """``empty``, ``short`` or None (substantive) for one text, by the same rule as the scan."""
    return pl.select(substance_columns(pl.lit(text, dtype=pl.Utf8)))["trivial"][0]


__all__ = ["BOILERPLATE_MAX_WORDS", "BOILERPLATE_MIN_ROWS", "MIN_NAMED_WORDS", "MIN_NUMBERS", "MIN_SPECIFIC_WORDS",
           "MIN_WORDS",
           "RULE", "add_substance", "substance_columns", "trivial_reason"]
