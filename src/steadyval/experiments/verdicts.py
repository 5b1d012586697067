"""Verdicts: is a remedy's change over the baseline, across the same seeds, beyond chance?

For each seed (and fold) the remedy is paired with the baseline trained on the same seed.
Volatility and churn are compared as ratios (remedy / baseline, averaged and bounded on the
log scale, reported as a % change), AUROC as differences; each gets a mean and a 95 %
t-interval over the pairs. Rules (DESIGN.md:
"helps" only when the 95 % interval of the improvement excludes zero):

- ``hurts``: the model became useless (final AUROC within 0.05 of chance while the baseline
  was clearly above it), or final AUROC fell with an interval below zero and a mean loss of
  more than ``AUROC_MARGIN``;
- ``helps``: volatility or churn fell with an interval below zero, or final AUROC rose with an
  interval above zero, and final AUROC did not fall by more than ``AUROC_MARGIN`` (mean);
- ``hurts``: otherwise, volatility rose with an interval above zero and AUROC did not rise;
  a volatility rise counts only when the val-loss increases (``val_loss_rise_volatility``)
  grew too, since a faster descent to a lower val loss also raises volatility;
- ``no_effect`` otherwise.

A baseline that learns nothing has a flat, "calm" val loss; a remedy that makes it learn
raises volatility (the descent counts as change) while AUROC rises: that is ``helps``.

A remedy run that stopped early (early stopping) is compared with its baseline seed over the
epochs both ran: over its whole length the baseline's volatility and churn would be diluted
by the calmer late epochs, and the early stop would read as a rise in instability. Likewise a
run longer than its baseline (train.longer) has its volatility and churn taken over the
baseline's epochs; its AUROC is that of the model it ends with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from steadyval.experiments.trials import TrialOutcome, window_measures

AUROC_MARGIN = 0.02  # an AUROC loss smaller than this is not counted against a remedy
USELESS_AUROC = 0.55  # within 0.05 of chance (0.5)


@dataclass
class Interval:
    """Mean and 95 % interval of a quantity over seeds."""

    mean: float
    ci95: tuple[float, float]
    n: int

    @property
    def below_zero(self) -> bool:
        """The whole interval is below zero."""
        return self.n >= 2 and self.ci95[1] < 0

    @property
    def above_zero(self) -> bool:
        """The whole interval is above zero."""
        return self.n >= 2 and self.ci95[0] > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"mean": _num(self.mean), "ci95": [_num(self.ci95[0]), _num(self.ci95[1])], "n": self.n}


def interval(values: Sequence[float], within: tuple[float, float] = (-math.inf, math.inf)) -> Interval:
    """Mean and t-interval (95 %) of finite ``values``; a single value gets an infinite interval.

    ``within`` is the quantity's range (churn and AUROC in [0, 1], volatility >= 0): the
    interval of two or more values is cut to it, so three seeds' spread never reports a
    negative churn.
    """
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return Interval(math.nan, (math.nan, math.nan), 0)
    mean = float(v.mean())
    if len(v) == 1:
        return Interval(mean, (-math.inf, math.inf), 1)
    lo, hi = within
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Interval(mean, (max(lo, mean - half), min(hi, mean + half)), len(v))


@dataclass
class TrialSummary:
    """One arm (baseline, a remedy, or a combination) over its seeds, compared with the baseline."""

    arm: str
    remedies: list[str]
    outcomes: list[TrialOutcome]
    values: dict[str, Interval]  # absolute measures of this arm
    changes: dict[str, Interval] = field(default_factory=dict)  # vs baseline, paired by seed
    verdict: str = "baseline"
    reason: str = ""

    @property
    def seeds(self) -> int:
        """Number of distinct seeds."""
        return len({o.seed for o in self.outcomes})

    def to_dict(self) -> dict[str, Any]:
        """The ``trials`` entry of findings.json (DESIGN.md shape, with more detail)."""
        return {
            "remedy": self.arm, "remedies": self.remedies, "seeds": self.seeds,
            "folds": len({o.fold for o in self.outcomes if o.fold is not None}) or None,
            "val_loss_volatility": self.values["val_loss_volatility"].to_dict(),
            "val_auroc": self.values["final_auroc"].to_dict(),
            "best_val_auroc": self.values["best_auroc"].to_dict(),
            "churn": self.values["churn"].to_dict(),
            "change_vs_baseline": {k: v.to_dict() for k, v in self.changes.items()},
            "verdict": self.verdict, "reason": self.reason,
            "trials": [o.to_dict() for o in self.outcomes],
        }


# The measures of an arm, with where each can lie: an arm's absolute interval is cut to it
# (changes are not).
MEASURES = {"val_loss_volatility": (0.0, math.inf), "churn": (0.0, 1.0), "final_auroc": (0.0, 1.0),
            "best_auroc": (0.0, 1.0)}


def summarise(arm: str, outcomes: list[TrialOutcome]) -> TrialSummary:
    """An arm's absolute measures over its trials."""
    values = {k: interval([o.measures.get(k, math.nan) for o in outcomes], within) for k, within in MEASURES.items()}
    remedies = outcomes[0].remedies if outcomes else []
    return TrialSummary(arm, list(remedies), outcomes, values)


def compare(baseline: TrialSummary, arm: TrialSummary) -> TrialSummary:
    """Fill ``arm``'s paired changes against ``baseline`` and its verdict."""
    base = {(o.seed, o.fold): o for o in baseline.outcomes}
    matched = [_matched(base[(o.seed, o.fold)], o) for o in arm.outcomes if (o.seed, o.fold) in base]
    pairs = [(b, r) for b, r, _ in matched]

    def rel(k: str) -> Interval:
        # On the log scale, then back: a ratio's interval stays above -100 %.
        logs = interval([math.log(max(r[k], 1e-12) / b[k]) for b, r in pairs
                         if b.get(k, 0) > 0 and math.isfinite(r.get(k, math.nan)) and math.isfinite(b[k])])
        back = [math.exp(x) - 1 if math.isfinite(x) else x for x in (logs.mean, *logs.ci95)]
        return Interval(back[0], (back[1], back[2]), logs.n)

    def diff(k: str) -> Interval:
        # .get: trials cached before a measure existed lack it (their pairs drop out)
        return interval([r.get(k, math.nan) - b.get(k, math.nan) for b, r in pairs])

    arm.changes = {"val_loss_volatility": rel("val_loss_volatility"), "churn": rel("churn"),
                   "final_auroc": diff("final_auroc"), "best_auroc": diff("best_auroc"),
                   # A difference, not a ratio: a steady descent has no rises at all (0).
                   "val_loss_rises": diff("val_loss_rise_volatility")}
    arm.verdict, arm.reason = _verdict(baseline, arm)
    shorter = sum(w == "shorter" for _, _, w in matched)
    longer = sum(w == "longer" for _, _, w in matched)
    if shorter:
        arm.reason += (f" (volatility and churn compared with the baseline over the epochs each of "
                       f"{shorter} run(s) that stopped early trained)")
    if longer:
        arm.reason += (f" (volatility and churn of {longer} longer run(s) compared over the baseline's "
                       "epochs; the extra epochs count in AUROC)")
    return arm


def _matched(base: TrialOutcome, other: TrialOutcome) -> tuple[dict[str, float], dict[str, float], str]:
    """``base``'s and ``other``'s measures, volatility and churn over the epochs both ran, and which
    run was cut to them: "shorter" (the baseline, to an early-stopped ``other``), "longer"
    (``other``, to the baseline's epochs) or ""."""
    ran, base_ran = other.measures.get("epochs_run", math.nan), base.measures.get("epochs_run", math.nan)
    if not (math.isfinite(ran) and math.isfinite(base_ran) and ran != base_ran):
        return base.measures, other.measures, ""
    if ran < base_ran:
        window = window_measures(base.run_dir, int(ran))
        return (base.measures, other.measures, "") if window is None else (
            {**base.measures, **window}, other.measures, "shorter")
    # A longer run (train.longer) is calmer late in training: over its whole length that calm
    # would read as a cut in volatility that is only dilution.
    window = window_measures(other.run_dir, int(base_ran))
    return (base.measures, other.measures, "") if window is None else (
        base.measures, {**other.measures, **window}, "longer")


def _verdict(baseline: TrialSummary, arm: TrialSummary) -> tuple[str, str]:
    c = arm.changes
    vol, ch, auc = c["val_loss_volatility"], c["churn"], c["final_auroc"]
    arm_auc, base_auc = arm.values["final_auroc"].mean, baseline.values["final_auroc"].mean
    if arm.values["final_auroc"].n == 0:
        return "hurts", "no trial produced a usable model"
    if arm_auc <= USELESS_AUROC < base_auc - AUROC_MARGIN:
        return "hurts", (f"the model became useless: val AUROC {arm_auc:.2f} (chance is 0.5) against "
                         f"{base_auc:.2f}; any calm in the curves is the calm of a model that learned nothing")
    if auc.below_zero and auc.mean < -AUROC_MARGIN:
        return "hurts", _auroc_fell(auc)
    gains = []
    if vol.below_zero:
        gains.append(f"val-loss volatility {-vol.mean:.0%} lower [{-vol.ci95[1]:.0%}, {-vol.ci95[0]:.0%}]")
    if ch.below_zero:
        gains.append(f"churn {-ch.mean:.0%} lower [{-ch.ci95[1]:.0%}, {-ch.ci95[0]:.0%}]")
    if auc.above_zero:
        gains.append(f"val AUROC +{auc.mean:.3f} [{auc.ci95[0]:+.3f}, {auc.ci95[1]:+.3f}]")
        if vol.above_zero:
            # Volatility counts every epoch-to-epoch change, descent included: a model that
            # now learns moves its val loss more than one that sat at chance.
            gains.append(f"val-loss volatility {vol.mean:.0%} higher, from a model that now learns")
    if gains and not (auc.n and auc.mean < -AUROC_MARGIN):
        return "helps", "; ".join(gains)
    # A significant rise in either instability measure is the opposite of the goal: churn counts
    # as volatility does (class weights on the demo data multiplied churn by 12 [3.6, 45]).
    # Volatility also rises when val loss only falls faster, to a lower median (a site-shifted
    # split re-split: 0.69 -> 0.08 in 25 epochs against 0.69 -> 0.40, "+327 %" with no jump in
    # either curve); such a rise counts only when the val-loss increases grew too.
    up = c.get("val_loss_rises")
    descent = vol.above_zero and up is not None and up.n >= 2 and not up.above_zero
    counted = ([("val-loss volatility", vol)] if not descent else []) + [("churn", ch)]
    rises = "; ".join(f"{name} rose by {x.mean:.0%} [{x.ci95[0]:.0%}, {x.ci95[1]:.0%}]"
                      for name, x in counted if x.above_zero)
    if rises and not auc.mean > 0:
        return "hurts", rises
    if rises:
        return "no_effect", f"{rises} while val AUROC rose by {auc.mean:.3f} (interval includes zero)"
    if gains:
        return "no_effect", "; ".join(gains) + f", but val AUROC fell by {-auc.mean:.3f} on average"
    if auc.below_zero:  # significant, but smaller than the margin that makes it a loss
        return "no_effect", (f"{_auroc_fell(auc)}, within the {AUROC_MARGIN:g} margin; no other change "
                             "whose 95 % interval excludes zero")
    if descent:
        return "no_effect", (f"no change whose 95 % interval over seeds excludes zero; val-loss volatility "
                             f"is {vol.mean:.0%} higher from a faster descent, not from jumps (its "
                             "epoch-to-epoch increases did not grow)")
    return "no_effect", "no change whose 95 % interval over seeds excludes zero"


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _auroc_fell(auc: Interval) -> str:
    return f"val AUROC fell by {-auc.mean:.3f} [{-auc.ci95[1]:.3f}, {-auc.ci95[0]:.3f}]"
