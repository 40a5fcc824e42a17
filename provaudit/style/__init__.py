"""Teacher convergence, trend, label-origin signature and diversity (see docs/style.md).

Public functions return data (lists of dicts, dicts, numpy arrays); ``provaudit.cli.style`` renders them.
Importing this package does not load torch: models load on first use.
"""
from __future__ import annotations

from provaudit.style.converge import converge, teacher_summary
from provaudit.style.diversity import diversity
from provaudit.style.teacher import TeacherModel, teacher_similarity

__all__ = ["TeacherModel", "converge", "diversity", "label_origin", "scan_history", "teacher_similarity",
           "teacher_summary", "trend"]


def __getattr__(name: str):  # label_origin / trend modules arrive lazily (they need the catalog)
    if name == "label_origin":
        from provaudit.style.labels import label_origin

        return label_origin
    if name in ("trend", "scan_history"):
        from provaudit.style import trends

        return getattr(trends, name)
    raise AttributeError(f"module 'provaudit.style' has no attribute {name!r}")
