"""Fingerprint laws (hypothesis): a dataset fingerprint ignores row order and batching, and changes with
any record's content, role or count; a text hash ignores spacing only."""
from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from provaudit.fingerprint import DatasetDigest, add_fingerprints, dataset_fingerprint, text_hash

words = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
texts = st.lists(words, min_size=1, max_size=8).map(" ".join)
records = st.lists(st.tuples(st.sampled_from(["prompt", "chosen", "rejected"]), texts), min_size=1, max_size=12)


def _frame(recs: list[tuple[str, str]], rows: list[int] | None = None) -> pl.DataFrame:
    return pl.DataFrame({"schema": ["pairs"] * len(recs), "role": [r for r, _ in recs],
                         "text": [t for _, t in recs], "meta": ["{}"] * len(recs),
                         "source_row": rows if rows is not None else list(range(len(recs)))})


@settings(max_examples=40, deadline=None)
@given(records, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=5))
def test_order_and_batching_do_not_change_the_fingerprint(recs: list, rnd, size: int) -> None:
    df = _frame(recs)
    perm = list(range(df.height))
    rnd.shuffle(perm)
    shuffled = df[perm]
    batches = [shuffled.slice(i, size) for i in range(0, shuffled.height, size)]
    assert dataset_fingerprint([df]) == dataset_fingerprint(batches)


@settings(max_examples=40, deadline=None)
@given(records, st.data())
def test_any_edit_changes_the_fingerprint(recs: list, data) -> None:
    base = dataset_fingerprint([_frame(recs)])
    i = data.draw(st.integers(min_value=0, max_value=len(recs) - 1))
    role, text = recs[i]
    edited = list(recs)
    edited[i] = (role, text + " z")
    assert dataset_fingerprint([_frame(edited)]) != base
    other_role = "chosen" if role != "chosen" else "rejected"
    edited[i] = (other_role, text)
    assert dataset_fingerprint([_frame(edited)]) != base
    assert dataset_fingerprint([_frame(recs + [recs[i]])]) != base          # a repeated record counts
    assert dataset_fingerprint([_frame(recs[:i] + recs[i + 1:])]) != base   # a dropped record counts


@settings(max_examples=60, deadline=None)
@given(texts, st.sampled_from([" ", "  ", "\t", "\n", " \u00a0"]))
def test_text_hash_ignores_spacing_and_sees_every_word(text: str, gap: str) -> None:
    assert text_hash(gap + text.replace(" ", gap) + gap) == text_hash(text)
    assert text_hash(text + "x") != text_hash(text)
    assert text_hash(text.upper()) != text_hash(text)


def test_digest_counts_rows_records_and_roles() -> None:
    df = add_fingerprints(_frame([("prompt", "a b"), ("chosen", "c d"), ("rejected", "e f"), ("prompt", "g")],
                                 rows=[0, 0, 0, 1]))
    d = DatasetDigest()
    d.update(df.slice(0, 3))
    d.update(df.slice(3, 1))
    d.update(df.slice(0, 0))
    assert (d.schema, d.n_rows, d.n_records, d.roles) == ("pairs", 2, 4, {"prompt": 2, "chosen": 1, "rejected": 1})
    assert d.fingerprint() == dataset_fingerprint([df])
    assert len(d.fingerprint()) == 32
