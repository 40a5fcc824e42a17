"""Origin tagging: who wrote each record, a person or a model, with evidence and a batch estimate.

Public API: ``tag_origin``, ``summarize_origin``, ``load_rules``, ``load_detector``,
``train_detector``, ``evaluate_detector``.
"""
from __future__ import annotations

from provaudit.origin.detector import Detector, evaluate_detector, load_detector, train_detector
from provaudit.origin.rules import Rule, RuleSet, load_rules
from provaudit.origin.tagging import load_reference, summarize_origin, tag_file, tag_origin

__all__ = ["Detector", "Rule", "RuleSet", "evaluate_detector", "load_detector", "load_reference", "load_rules",
           "summarize_origin", "tag_file", "tag_origin", "train_detector"]
