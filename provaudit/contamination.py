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

A near match needs a specific text on both sides: a substantive batch text whose only near match in a
catalog row is a text the catalog stored as trivial (empty, short) is no match (HH-RLHF's 13-word ``I'm
sorry, I'm not sure what you're asking me here.`` nearly matches the 11-word form, a stock line). An exact
match has the same text on both sides, so the batch side decides.

Only substantive texts count towards ``duplicates.exact_rate``/``near_rate`` and the
``overlap.by_tag.*.*.exact_records``/``near_records`` the gate checks; trivial matches are reported
apart (``trivial_records`` and examples with their reason).

What a leak is (the eval *case*, not a reused answer). A contamination study asks whether an eval case
(its input, or its input with the reference answer) reappears in training data: GPT-3 and open-instruct
match the eval *prompt*; a reference answer matters because it answers *that* prompt. A generic response
that a model gave to several different questions (HH-RLHF's 52B assistant repeats one 104-word
movie-theater answer under two different final questions) is not the eval case reappearing. So a match
between a batch *output* (chosen, rejected, response) and an eval *output* counts as a leak only when the
case could be the same: the eval row has no substantive prompt (none, a trivial one such as ``Continue.``, or
a templated instruction recurring in many catalog rows: the answer is the case), or the batch row has no
substantive prompt (a bare answer: nothing says it answers another question), or the batch row's prompt
matches the eval row's prompt (exactly or near). Otherwise it is a reused response, reported apart
(``reused_records`` with examples) and not a leak. A prompt or unpaired text that matches is always a
leak, and so is a batch prompt that contains an eval answer.
"""
from __future__ import annotations

import polars as pl

MIN_WORDS = 13
MIN_NAMED_WORDS = 8
MIN_SPECIFIC_WORDS = 3
MIN_NUMBERS = 2
BOILERPLATE_MIN_ROWS = 5
BOILERPLATE_MAX_WORDS = 20

#: roles holding an answer (the rest: ``prompt``, and ``text`` for unpaired text)
OUTPUT_ROLES = ("chosen", "rejected", "response")

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


def boilerplate_sql(batch: str, catalog_records: str | None = None) -> str:
    """The one SQL definition of boilerplate: ``SELECT text_hash`` of the texts of fewer than
    ``BOILERPLATE_MAX_WORDS`` words that recur in ``BOILERPLATE_MIN_ROWS`` or more distinct rows
    (``pair_id``) of ``batch`` plus, when given, the catalog's ``catalog_records`` table. ``batch`` must
    have ``text_hash``, ``pair_id`` and ``n_words``."""
    within = (f"SELECT text_hash, count(DISTINCT pair_id) AS n FROM {batch} GROUP BY text_hash "
              f"HAVING min(n_words) < {BOILERPLATE_MAX_WORDS}")
    if catalog_records is None:
        return f"SELECT text_hash FROM ({within}) WHERE n >= {BOILERPLATE_MIN_ROWS}"
    return (f"""SELECT bh.text_hash FROM ({within}) bh
                LEFT JOIN (SELECT r.text_hash, count(DISTINCT r.pair_id) AS n FROM {catalog_records} r
                           SEMI JOIN ({within}) w ON w.text_hash = r.text_hash GROUP BY r.text_hash) ch
                       USING (text_hash)
                WHERE bh.n + coalesce(ch.n, 0) >= {BOILERPLATE_MIN_ROWS}""")


def substantive_prompts_sql(records: str = "records", rows: str | None = None) -> str:
    """The distinct ``(dataset_id, pair_id)`` of the catalog rows that ask a substantive question: a
    ``prompt`` record that is not trivial (its stored ``trivial`` is null) and not boilerplate within the
    catalog (fewer than ``BOILERPLATE_MAX_WORDS`` words and present in ``BOILERPLATE_MIN_ROWS`` or more
    distinct rows, ``(dataset_id, pair_id)``, of the catalog: a templated instruction). The catalog side
    of the reused-response rule: an eval answer under a trivial or templated question is the eval case
    itself. ``rows``: a relation of ``(dataset_id, pair_id)`` to restrict the answer to (the rows a batch
    matched). A record stored before the catalog kept ``n_words``/``trivial`` (schema version 9) has
    both null and counts as substantive, as it did then."""
    within = "" if rows is None else f"SEMI JOIN {rows} w ON w.dataset_id = p.dataset_id AND w.pair_id = p.pair_id"
    def short(col: str) -> str:  # null (stored before version 9): not short
        return f"coalesce({col}, {BOILERPLATE_MAX_WORDS}) < {BOILERPLATE_MAX_WORDS}"

    return f"""WITH pr AS (SELECT p.dataset_id, p.pair_id, p.text_hash, p.n_words, p.trivial FROM {records} p {within}
                           WHERE p.role = 'prompt'),
                    bo AS (SELECT r.text_hash FROM {records} r
                           SEMI JOIN (SELECT text_hash FROM pr WHERE {short('n_words')}) s ON s.text_hash = r.text_hash
                           WHERE {short('r.n_words')} GROUP BY r.text_hash
                           HAVING count(DISTINCT (r.dataset_id, r.pair_id)) >= {BOILERPLATE_MIN_ROWS})
               SELECT DISTINCT pr.dataset_id, pr.pair_id FROM pr ANTI JOIN bo ON bo.text_hash = pr.text_hash
               WHERE pr.trivial IS NULL"""


def boilerplate_agg() -> pl.Expr:
    """The same rule as ``boilerplate_sql`` (batch only) as a polars aggregation over one ``text_hash``
    group with ``pair_id`` and ``n_words``: true where the group's text is boilerplate."""
    return (pl.col("pair_id").n_unique() >= BOILERPLATE_MIN_ROWS) & (pl.col("n_words").min() < BOILERPLATE_MAX_WORDS)


def trivial_reason(text: str | None) -> str | None:
    """``empty``, ``short`` or None (substantive) for one text, by the same rule as the scan."""
    return pl.select(substance_columns(pl.lit(text, dtype=pl.Utf8)))["trivial"][0]


__all__ = ["BOILERPLATE_MAX_WORDS", "BOILERPLATE_MIN_ROWS", "MIN_NAMED_WORDS", "MIN_NUMBERS", "MIN_SPECIFIC_WORDS",
           "MIN_WORDS", "OUTPUT_ROLES",
           "RULE", "add_substance", "boilerplate_agg", "boilerplate_sql", "substance_columns", "substantive_prompts_sql",
           "trivial_reason"]
