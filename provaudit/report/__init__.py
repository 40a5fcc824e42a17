"""Rendering of reports: self-contained HTML, Markdown and JSON.

``render_html``/``render_markdown``/``render_json`` take a
:class:`~provaudit.checkpoints.CheckpointReport`; the scan summary Markdown lives in
``provaudit.report.scan``.
"""
from __future__ import annotations

from provaudit.report.checkpoints import render_html, render_json, render_markdown

__all__ = ["render_html", "render_json", "render_markdown"]
