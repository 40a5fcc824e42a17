"""Reading the YAML files users edit (rules, gate thresholds): safe loading, one-line errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from provaudit.errors import InputError

#: libyaml's safe loader where PyYAML was built with it (its wheels are): the same documents, parsed about
#: 14x faster than the pure-Python one; rules and gate files are read by nearly every command
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path, *, what: str = "file") -> Any:
    """Safe YAML loading of ``path``; a missing, unreadable or malformed file raises ``InputError``
    naming the file and, for syntax errors, the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {str(exc).splitlines()[0]}", file=str(p)) from None
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise InputError(f"invalid YAML ({problem})", file=str(p),
                         line=mark.line + 1 if mark is not None else None) from None
