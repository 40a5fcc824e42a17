"""Readable summaries of ``detector train`` / ``detector eval`` metrics, and the threshold-shift warning."""
from __future__ import annotations

from typing import Any

#: the per-domain threshold rule may raise the pooled threshold by at most this much before the
#: commands warn (a larger move trades recall for one domain's false-positive rate)
MAX_THRESHOLD_SHIFT = 0.10


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def threshold_warning(metrics: dict[str, Any], max_shift: float = MAX_THRESHOLD_SHIFT) -> str | None:
    """A one-line warning when the per-domain rule moved the threshold by more than ``max_shift``."""
    rule = metrics.get("threshold_rule") or {}
    shift = rule.get("shift")
    if shift is None or shift <= max_shift:
        return None
    who = (f"human domain {rule['forced_by']!r} ({rule['forced_how']})" if rule.get("forced_by")
           else "a human domain")
    tpr = ""
    if rule.get("tpr_at_pooled") is not None and rule.get("tpr_at_threshold") is not None:
        tpr = f"; TPR {_pct(rule['tpr_at_pooled'])} -> {_pct(rule['tpr_at_threshold'])}"
    return (f"warning: the per-domain rule raised the threshold from {_num(rule['pooled_threshold'])} to "
            f"{_num(rule['threshold'])} (+{shift:.3f} > {max_shift:g}), forced by {who}{tpr}")


def render_detector_metrics(metrics: dict[str, Any], *, title: str) -> str:
    """Plain-text summary: AUROC, TPR at the chosen FPR, threshold, per-domain FPR and TPR."""
    head = metrics.get("out_of_fold_min_words") or metrics.get("out_of_fold") or metrics
    thr = metrics.get("threshold_model", metrics.get("threshold"))
    fpr = metrics.get("nominal_fpr")
    lines = [title,
             f"  texts: {head.get('n_human', 0)} human, {head.get('n_model', 0)} model"
             + (f" (n_train {metrics['n_train']})" if "n_train" in metrics else ""),
             (f"  AUROC {_num(head.get('auroc'))}   TPR at 1% FPR {_pct(head.get('tpr_at_1pct_fpr'))}   "
              f"TPR at 5% FPR {_pct(head.get('tpr_at_5pct_fpr'))}   ECE {_num(head.get('ece'))}"),
             f"  threshold {_num(thr)}" + (f" (chosen for {_pct(fpr)} FPR on human text)" if fpr is not None else "")
             + f": FPR {_pct(head.get('fpr_at_threshold'))}, TPR {_pct(head.get('tpr_at_threshold'))}"]
    rule = metrics.get("threshold_rule")
    if rule:
        lines.append(f"  pooled threshold {_num(rule.get('pooled_threshold'))}, per-domain rule shift "
                     f"{_num(rule.get('shift'))}" + (f" (forced by {rule['forced_by']})" if rule.get("forced_by")
                                                     else ""))
    rows = metrics.get("per_domain") or []
    if rows:
        lines.append(f"  {'domain':<20} {'human':>6} {'model':>6} {'FPR':>7} {'TPR':>7} {'AUROC':>7}")
        for r in rows:
            lines.append(f"  {str(r['domain'])[:20]:<20} {r['n_human']:>6} {r['n_model']:>6} "
                         f"{_pct(r.get('fpr_at_threshold')) if r['n_human'] else '-':>7} "
                         f"{_pct(r.get('tpr_at_threshold')) if r['n_model'] else '-':>7} {_num(r.get('auroc')):>7}")
    return "\n".join(lines)
