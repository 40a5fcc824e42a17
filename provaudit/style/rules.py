"""Load the style thresholds (rules/converge.yaml), with built-in defaults for missing keys."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from provaudit.errors import InputError
from provaudit.yamlfile import load_yaml

DEFAULTS: dict[str, Any] = {
    "teacher": {"max_teacher_fraction": 0.5, "max_teacher_likeness": 0.7},
    "trend": {"min_slope_per_step": 0.02, "ci": 0.95, "n_boot": 500},
    "label_origin": {"teacher_preference": 0.58, "length_preference": 0.62, "position_bias": 0.08,
                     "ai_words_per_minute": 1500, "human_words_per_minute": 700,
                     "model_name_pattern": r"(?i)(gpt|claude|gemini|llama|mistral|qwen|judge|rm[-_]|reward|auto)",
                     "min_evidence": 2, "min_pairs": 30},
    "diversity": {"min_diversity_ratio": 0.8},
}
def _default_path() -> Path | None:
    """``converge.yaml`` of the rules folder users edit, when there is one (else the defaults above)."""
    from provaudit.paths import rules_dir

    try:
        p = rules_dir() / "converge.yaml"
    except FileNotFoundError:
        return None
    return p if p.exists() else None


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """Thresholds from ``path`` (or ./rules/converge.yaml if present) over the defaults."""
    rules = copy.deepcopy(DEFAULTS)
    p = Path(path) if path is not None else _default_path()
    if p is None:
        return rules
    data = load_yaml(p, what="rules file") or {}
    if not isinstance(data, dict):
        raise InputError("rules must be a mapping of sections", file=str(p))
    for section, values in data.items():
        if section not in rules:
            raise InputError(f"unknown section (known: {', '.join(rules)})", file=str(p), field=section)
        if not isinstance(values, dict):
            raise InputError("section must be a mapping", file=str(p), field=section)
        for key, v in values.items():
            if key not in rules[section]:
                raise InputError("unknown key", file=str(p), field=f"{section}.{key}")
            if isinstance(rules[section][key], int | float) and not isinstance(v, int | float):
                raise InputError(f"expected a number, got {v!r}", file=str(p), field=f"{section}.{key}")
            rules[section][key] = v
    return rules
