"""The ``provaudit`` command line: click commands only, each a thin call into the library.

Each area of the tool registers its commands from its own module (``provaudit.cli.<area>``),
so the areas stay independent.
"""
from __future__ import annotations

import importlib

import click

from provaudit import __version__

_AREAS = ("scan", "origin", "style", "checkpoints", "lineage", "labelers", "coverage")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="provaudit")
def main() -> None:
    """Audit the provenance of LLM preference and fine-tune data."""


for _area in _AREAS:
    _mod = importlib.import_module(f"provaudit.cli.{_area}")
    for _cmd in getattr(_mod, "COMMANDS", []):
        main.add_command(_cmd)
