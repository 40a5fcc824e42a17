"""Eval-set coverage of production traffic: coverage, uncovered clusters, stale cases, drift, prompt rules."""

from provaudit.coverage.core import CoverageResult, coverage
from provaudit.coverage.rules import prompt_coverage, split_rules

__all__ = ["CoverageResult", "coverage", "prompt_coverage", "split_rules"]
