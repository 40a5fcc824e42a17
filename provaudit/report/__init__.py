"""Rendering of reports: self-contained HTML, Markdown and JSON.

``render_html``/``render_markdown``/``render_json`` take a
:class:`~provaudit.checkpoints.CheckpointReport`; the scan summary Markdown lives in
``provaudit.report.scan``. Names resolve lazily, so rendering a scan summary does not import
matplotlib and the checkpoint analysis.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["render_html", "render_json", "render_markdown"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("provaudit.report.checkpoints"), name)
    raise AttributeError(f"module 'provaudit.report' has no attribute {name!r}")
