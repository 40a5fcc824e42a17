"""The result objects of the checkpoint analyses: flags and the report."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# flag kinds that mean "the proxy and the outcome came apart" (these drive --gate)
DECOUPLING_KINDS = ("decoupling", "decoupling_trend", "decoupling_step", "decoupling_window")


def rnd(x: Any, digits: int = 6) -> Any:
    """Round floats (recursively) to ``digits`` significant digits so JSON output is stable."""
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            return None
        return float(f"{x:.{digits}g}")
    if isinstance(x, int):
        return x
    if isinstance(x, dict):
        return {str(k): rnd(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rnd(v, digits) for v in x]
    if hasattr(x, "item"):  # numpy scalar
        return rnd(x.item(), digits)
    return x


def frame_records(frame: pl.DataFrame | None) -> list[dict[str, Any]] | None:
    """A frame as a list of rounded row dicts (None stays None)."""
    if frame is None:
        return None
    return [rnd(r) for r in frame.to_dicts()]


@dataclass
class Flag:
    """One finding: what kind, at which checkpoint, the evidence in words and the interval behind it."""

    kind: str
    checkpoint: str | None
    evidence: str
    interval: list[float] | None = None
    metric: str | None = None
    value: float | None = None
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def decoupling(self) -> bool:
        """True for the kinds that make ``--gate`` fail."""
        return self.kind in DECOUPLING_KINDS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with rounded numbers."""
        return rnd({"id": self.kind, "kind": self.kind, "checkpoint": self.checkpoint, "evidence": self.evidence,
                    "interval": self.interval, "metric": self.metric, "value": self.value,
                    "p_value": self.p_value, "details": self.details, "decoupling": self.decoupling})


@dataclass
class CheckpointReport:
    """Everything ``analyze_checkpoints`` / ``compare`` found; render with ``provaudit.report``."""

    mode: str  # "series" or "pair"
    inputs: list[str]
    proxy: str
    outcome: str
    columns: dict[str, str | None]
    series: pl.DataFrame
    flags: list[Flag]
    best_checkpoint: str | None
    correlation: dict[str, Any] = field(default_factory=dict)
    overoptimization: dict[str, Any] = field(default_factory=dict)
    length: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)
    pair: dict[str, Any] | None = None
    tails: pl.DataFrame | None = None
    slices: pl.DataFrame | None = None
    seesaw: list[dict[str, Any]] = field(default_factory=list)
    win_rates: pl.DataFrame | None = None
    points: pl.DataFrame | None = None  # per-sample (checkpoint, proxy, outcome, length) for plots
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    harness: dict[str, Any] = field(default_factory=dict)  # provaudit.checkpoints.harness.assess
    labelers: dict[str, Any] | None = None  # provaudit.style.labelers.labeler_homogenization (--labels)
    gate_on: tuple[str, ...] = ("decoupling",)  # flag families that fail --gate (rules: gate.fail_on)

    @property
    def harness_flagged(self) -> bool:
        """True when a harness flag (id starting ``harness``) fired."""
        return any(f.kind.startswith("harness") for f in self.flags)

    @property
    def gate_failed(self) -> bool:
        """True when a flag of a family in ``gate_on`` fired (decoupling, harness, homogenizing)."""
        fams = {"decoupling": self.decoupled, "harness": self.harness_flagged,
                "homogenizing": any(f.kind == "homogenizing" for f in self.flags)}
        return any(fams.get(k, False) for k in self.gate_on)

    @property
    def decoupled(self) -> bool:
        """True when at least one decoupling flag fired."""
        return any(f.decoupling for f in self.flags)

    @property
    def checkpoints(self) -> list[str]:
        """Checkpoint names in analysis order."""
        return self.series["checkpoint"].to_list()

    def summary(self) -> dict[str, Any]:
        """Gate-ready metrics under the ``checkpoints`` key (dotted paths for rules/gate.yaml)."""
        kinds = [f.kind for f in self.flags]
        return rnd({"checkpoints": {
            "n_checkpoints": self.series.height,
            "decoupled": self.decoupled,
            "n_decoupling_flags": sum(k in DECOUPLING_KINDS for k in kinds),
            "n_flags": len(kinds),
            "n_tail_regressions": kinds.count("tail_regression"),
            "n_seesaw": kinds.count("see_saw"),
            "length_confounded": "length_confound" in kinds,
            "proxy_outcome_spearman": self.correlation.get("spearman"),
            "best_checkpoint": self.best_checkpoint,
            "checkpoints_past_best": self.overoptimization.get("checkpoints_past_best"),
            "proxy_rise_past_best": self.overoptimization.get("proxy_rise_past_best"),
            "outcome_drop_from_best": self.overoptimization.get("outcome_drop_from_best"),
            "length_share_of_proxy_gain": self.length.get("share"),
            "harness_flagged": self.harness_flagged,
            "n_harness_flags": sum(k.startswith("harness") for k in kinds),
            "homogenizing": "homogenizing" in kinds,
        }})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, deterministic dict of the whole report."""
        return rnd({
            "mode": self.mode,
            "inputs": list(self.inputs),
            "proxy": self.proxy,
            "outcome": self.outcome,
            "columns": self.columns,
            "checkpoints": self.checkpoints,
            "best_checkpoint": self.best_checkpoint,
            "decoupled": self.decoupled,
            "flags": [f.to_dict() for f in self.flags],
            "series": frame_records(self.series),
            "correlation": self.correlation,
            "overoptimization": self.overoptimization,
            "length": self.length,
            "teacher": self.teacher,
            "pair": self.pair,
            "tails": frame_records(self.tails),
            "slices": frame_records(self.slices),
            "seesaw": self.seesaw,
            "win_rates": frame_records(self.win_rates),
            "summary": self.summary()["checkpoints"],
            "notes": list(self.notes),
            "seed": self.seed,
            "harness": self.harness,
            "labelers": self.labelers,
            "gate_failed": self.gate_failed,
        })
