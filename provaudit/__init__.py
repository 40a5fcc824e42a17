"""provaudit: audit the provenance of LLM preference and fine-tune data.

Every CLI command is a function here that returns data (a polars frame, a dict or a
dataclass). Names resolve lazily so that ``import provaudit`` stays cheap (no torch).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_API: dict[str, str] = {
    # io + scan + catalog (issue: scan)
    "read_records": "provaudit.io:read_records",
    "scan": "provaudit.pipeline:scan",
    "register": "provaudit.pipeline:register",
    "Catalog": "provaudit.catalog.store:Catalog",
    "evaluate_gate": "provaudit.gate:evaluate_gate",
    "trivial_reason": "provaudit.contamination:trivial_reason",
    # origin tagging
    "tag_origin": "provaudit.origin:tag_origin",
    "train_detector": "provaudit.origin:train_detector",
    "evaluate_detector": "provaudit.origin:evaluate_detector",
    "load_detector": "provaudit.origin:load_detector",
    "corpus_estimate": "provaudit.origin.corpus:corpus_estimate",
    # teacher convergence, label origin, diversity
    "converge": "provaudit.style:converge",
    "trend": "provaudit.style:trend",
    "label_origin": "provaudit.style:label_origin",
    "diversity": "provaudit.style:diversity",
    "estimate_mixture": "provaudit.mixture:estimate_mixture",
    # checkpoints
    "analyze_checkpoints": "provaudit.checkpoints:analyze_checkpoints",
    "compare": "provaudit.checkpoints:compare",
    "harness_health": "provaudit.checkpoints.harness:harness_health",
    "labeler_homogenization": "provaudit.style.labelers:labeler_homogenization",
    "krippendorff_alpha": "provaudit.style.labelers:krippendorff_alpha",
    # lineage and erasure
    "add_checkpoint": "provaudit.catalog.lineage:add_checkpoint",
    "lineage_find": "provaudit.catalog.lineage:lineage_find",
    "erase": "provaudit.catalog.erase:erase",
    "overlap": "provaudit.catalog.lineage:overlap",
    # eval-set coverage of production traffic
    "coverage": "provaudit.coverage:coverage",
    "prompt_coverage": "provaudit.coverage:prompt_coverage",
}

__all__ = [*sorted(_API), "__version__"]  # noqa: PLE0604 (names of the lazy API)


def __getattr__(name: str) -> Any:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'provaudit' has no attribute {name!r}")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
