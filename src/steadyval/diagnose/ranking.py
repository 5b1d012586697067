"""Diagnosis: audit, curve (over the baseline seeds) and probe findings -> one ranked list of causes.

A cause's score is its severity (high 3, medium 2, low 1, info 0) plus up to one point of
evidence strength: half a point for how many baseline seeds reproduce a curve finding (an
audit or probe finding is deterministic and gets the full half, except a probe whose fault
shows in the train curves: it gets the share of baseline seeds that show it, and drops one
severity level when none does), and half a point when the
val-loss swings are attributed to the very column the finding names (e.g. the scanner of a
site shift drives the swings). A cause reported by several stages (the LR signature in the
curves and the range-test probe) is listed once, with a quarter point per other stage that
agrees. Equal scores fall back to a fixed order that puts first the
causes that make the validation measurement itself untrustworthy (leakage, an
unrepresentative or tiny val set), then broken training (non-finite, initialisation, LR),
then the data and the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from steadyval.findings import Finding, Severity

SEVERITY_POINTS = {Severity.HIGH: 3.0, Severity.MEDIUM: 2.0, Severity.LOW: 1.0, Severity.INFO: 0.0}
# Symptoms and bookkeeping: reported, but not causes.
NOT_CAUSES = {"curves.volatile", "check.failed"}
# Tie-break order (earlier = more fundamental); ids not listed come last.
PRIORITY = (
    "split.group_leakage", "split.duplicate_leakage", "split.site_shift", "split.image_shift",
    "split.label_shift", "split.small_validation", "curves.noise_floor", "train.nonfinite", "model.bad_init",
    "model.output_loss_mismatch", "optim.lr_too_high", "model.batchnorm_small_batch", "data.label_noise",
    "data.shortcut", "data.class_imbalance", "model.overfitting", "model.overcapacity", "optim.batch_too_small",
    "optim.batch_too_large", "train.underfitting", "curves.val_better_than_train", "data.outliers",
    "data.unreadable",
)
_ORDER = {fid: i for i, fid in enumerate(PRIORITY)}
# Probe findings whose fault has its own signature in the train curves (the curve check of
# the same id): the baseline seeds confirm or contradict them. Measured: an LR range test
# called Adam at 1e-3 high on a wide CNN whose train loss then fell smoothly in every seed
# to 0.02, and whose lower-LR trial did not help.
OBSERVABLE_IN_CURVES = {"optim.lr_too_high"}
_SEVERITY_ORDER = list(Severity)


@dataclass
class Cause:
    """One ranked cause: the finding, its score, why it ranks where it does, and its remedies."""

    finding: Finding
    source: str  # audit, curves or probes
    score: float
    reason: str
    drives_swings: bool = False

    @property
    def id(self) -> str:
        """The finding id."""
        return self.finding.id

    def to_dict(self) -> dict[str, Any]:
        """JSON form for findings.json's ``diagnosis``."""
        return {"id": self.id, "severity": self.finding.severity.value, "title": self.finding.title,
                "source": self.source, "score": round(self.score, 3), "reason": self.reason,
                "remedies": list(self.finding.remedies)}


def merge_seeds(per_seed: Sequence[Sequence[Finding]]) -> list[Finding]:
    """One finding per id from the curve findings of several seeds of one config.

    The severity is the median over seeds, counting a seed without the finding as below
    ``info``; a finding reproduced by fewer than half the seeds is kept at ``low`` at most,
    with the count in its evidence (``seeds_reporting``).
    """
    n = len(per_seed)
    by_id: dict[str, list[Finding]] = defaultdict(list)
    for findings in per_seed:
        for f in {f.id: f for f in findings}.values():  # one per id per seed
            by_id[f.id].append(f)
    merged = []
    for found in by_id.values():
        ranks = sorted([f.severity.rank for f in found] + [len(_SEVERITY_ORDER)] * (n - len(found)))
        median = ranks[(n - 1) // 2]
        representative = min(found, key=lambda f: abs(f.severity.rank - min(median, 3)))
        severity = _SEVERITY_ORDER[median] if median < len(_SEVERITY_ORDER) else (
            Severity.LOW if min(ranks) <= Severity.MEDIUM.rank else Severity.INFO)
        evidence = {**representative.evidence, "seeds_reporting": len(found), "seeds": n,
                    "severity_per_seed": [f.severity.value for f in found]}
        message = representative.message
        if n > 1:
            message += f" (reported in {len(found)} of {n} baseline seeds)"
        merged.append(replace(representative, severity=severity, evidence=evidence, message=message))
    return sorted(merged, key=lambda f: f.severity.rank)


def rank_causes(audit: Sequence[Finding], curves: Sequence[Finding], probes: Sequence[Finding],
                seeds: int = 0) -> list[Cause]:
    """Every cause, best-supported first, each with the reason for its rank.

    ``seeds``: how many baseline runs the curve findings were merged from (0: no curves).
    """
    driver = _swing_driver(curves)
    in_curves = {f.id: f for f in curves}
    causes: list[Cause] = []
    for source, findings in (("audit", audit), ("curves", curves), ("probes", probes)):
        for f in findings:
            if f.id in NOT_CAUSES:
                continue
            parts = [f"{f.severity.value} in the {source if source != 'probes' else 'probe'}"
                     + (" checks" if source == "audit" else "")]
            if source == "curves" and f.evidence.get("seeds"):
                agree = f.evidence["seeds_reporting"] / f.evidence["seeds"]
                parts.append(f"{f.evidence['seeds_reporting']}/{f.evidence['seeds']} baseline seeds")
            elif source == "probes" and seeds and f.id in OBSERVABLE_IN_CURVES:
                # A probe predicts what training will show; the baseline's own runs show it or not.
                seen = in_curves.get(f.id)
                reporting = int(seen.evidence.get("seeds_reporting", 0)) if seen is not None else 0
                agree = reporting / seeds
                if reporting == 0 and f.severity in (Severity.HIGH, Severity.MEDIUM):
                    f = replace(f, severity=_SEVERITY_ORDER[f.severity.rank + 1])
                    parts.append(f"lowered to {f.severity.value}: not seen in the train curves of any of the "
                                 f"{seeds} baseline seeds")
            else:
                agree = 1.0
            points = SEVERITY_POINTS[f.severity]
            drives = driver is not None and _names_column(f, driver[0])
            if drives:
                assert driver is not None
                parts.append(f"'{driver[0]} = {driver[1]}' drives the val-loss swings "
                             f"({driver[2]:.1f}x per image)")
            strength = _strength(f)
            if strength:
                parts.append(strength)
            score = points + 0.5 * agree + (0.5 if drives else 0.0)
            causes.append(Cause(f, source, score, "; ".join(parts), drives))
    merged = _corroborate(causes)
    _explains(merged)
    return sorted(merged, key=lambda c: (-c.score, _ORDER.get(c.id, len(_ORDER))))


def _explains(causes: list[Cause]) -> None:
    """A cause that explains another ranks above it (by at least a quarter point).

    Class imbalance explains a small validation set when the small-validation check says its
    minority class, not its size, is what makes it too small. A batch too small explains a
    learning rate too high when the noise-scale probe saw the same learning rate train at a
    larger batch and stall at the configured one: the LR is too high only for this batch.
    """
    by_id = {c.id: c for c in causes}
    imbalance, small = by_id.get("data.class_imbalance"), by_id.get("split.small_validation")
    if imbalance is not None and small is not None:
        ev = small.finding.evidence
        n_min = min(ev.get("n_val_positive", 0), ev.get("n_val_negative", 0))
        if ev.get("limited_by_minority"):
            _rank_above(imbalance, small, f"the val set has only {n_min} minority images")
    batch, lr = by_id.get("optim.batch_too_small"), by_id.get("optim.lr_too_high")
    if batch is not None and lr is not None:
        ev = batch.finding.evidence
        if ev.get("stalls_at_batch"):
            _rank_above(batch, lr, f"the same learning rate trains at batch {ev.get('larger_batch')} "
                                   f"and stalls at {ev.get('batch_size')}")


def _rank_above(explainer: Cause, explained: Cause, why: str) -> None:
    explainer.score = max(explainer.score, explained.score) + 0.25
    explainer.reason += f"; explains {explained.id} ({why})"


def _corroborate(causes: list[Cause]) -> list[Cause]:
    """One cause per id: the best-scored one, a quarter point for each other stage that agrees."""
    by_id: dict[str, list[Cause]] = defaultdict(list)
    for c in causes:
        by_id[c.id].append(c)
    merged = []
    for same in by_id.values():
        best = max(same, key=lambda c: c.score)
        others = [c for c in same if c is not best and c.finding.severity.at_least(Severity.LOW)]
        if others:
            best = replace(best, score=best.score + 0.25 * len({c.source for c in others}),
                           reason=best.reason + "; corroborated: " + "; ".join(c.reason for c in others))
        merged.append(best)
    return merged


def _swing_driver(curves: Sequence[Finding]) -> tuple[str, str, float] | None:
    """(column, level, per-image ratio) of the subgroup that drives val-loss swings, if one does."""
    for f in curves:
        att = f.evidence.get("loss_attribution") if f.id == "curves.volatile" else None
        if not att:
            continue
        best = None
        for col, levels in att.get("by_column", {}).items():
            if col in ("label", "label_name"):
                continue
            for level, v in levels.items():
                strong = v.get("n_images", 0) >= 10 and v.get("ratio", 0) >= 1.5
                if strong and (best is None or v["ratio"] > best[2]):
                    best = (str(col), str(level), float(v["ratio"]))
        return best
    return None


def _names_column(f: Finding, column: str) -> bool:
    if f.id not in ("split.site_shift", "split.image_shift", "data.shortcut"):
        return False
    ev = f.evidence
    named = {str(ev.get("column", ""))}
    named |= {str(c.get("column", "")) for c in ev.get("columns", []) if isinstance(c, dict)}
    return column in named or f.id == "split.image_shift"


def _strength(f: Finding) -> str:
    """A few words on the effect size, where the evidence has a standard one."""
    ev = f.evidence
    for key, label in (("cramers_v", "Cramér's V {:.2f}"), ("domain_auroc", "train-vs-val AUROC {:.2f}"),
                       ("minority_share", "minority share {:.0%}"), ("onset_epoch", "onset at epoch {:.0f}"),
                       ("share_flagged", "{:.1%} of images flagged")):
        value = ev.get(key)
        if isinstance(value, (int, float)):
            return label.format(value)
    return ""


__all__ = ["Cause", "merge_seeds", "rank_causes"]
