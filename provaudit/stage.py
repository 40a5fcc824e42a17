"""The per-batch stage: fingerprint and origin-tag one record batch.

A pure function of one batch, shared by the scan pipeline (:mod:`provaudit.pipeline`) and the
engines (:mod:`provaudit.engine`) that run it in this process, a local process pool or Ray.
Neither imports the other: both import this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from provaudit.fingerprint import add_fingerprints


@dataclass
class StageOptions:
    """What the per-batch stage computes; plain data so it pickles to workers and Ray tasks."""

    origin: bool = True
    origin_mode: str = "fast"
    rules_dirs: tuple[str, ...] = ()
    device: str = "cpu"          # where the language model runs in origin mode "full" (cpu, cuda)
    lm_sample: int = 400         # origin mode "sampled": output records the language model scores


def process_batch(batch: pl.DataFrame, options: StageOptions | None = None) -> pl.DataFrame:
    """Fingerprint (plus ``n_words``/``trivial``, :mod:`provaudit.contamination`) and origin-tag one
    record batch. Pure: the output depends on the batch only."""
    from provaudit.contamination import add_substance

    options = options or StageOptions()
    out = add_substance(add_fingerprints(batch))
    if options.origin:
        from provaudit.origin import tag_origin

        out = tag_origin(out, rules=_rules(options.rules_dirs), mode=options.origin_mode, device=options.device)
    return out


_RULES_CACHE: dict[tuple[str, ...], Any] = {}


def _rules(dirs: tuple[str, ...]) -> Any:
    if dirs not in _RULES_CACHE:
        from provaudit.origin import load_rules

        _RULES_CACHE[dirs] = load_rules([Path(d) for d in dirs] or None)
    return _RULES_CACHE[dirs]
