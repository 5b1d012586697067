"""Experiments: remedy trials over (arm x seed x fold), cached by config hash, with verdicts."""

from __future__ import annotations

from steadyval.experiments.remedies import REMEDIES, Hints, Remedy, SplitChange, apply_remedies
from steadyval.experiments.runner import run_grid
from steadyval.experiments.trials import TrialOutcome, TrialSpec, apply_split, fingerprint, measure, run_trial
from steadyval.experiments.verdicts import Interval, TrialSummary, compare, interval, summarise

__all__ = ["REMEDIES", "Hints", "Interval", "Remedy", "SplitChange", "TrialOutcome", "TrialSpec",
           "TrialSummary", "apply_remedies", "apply_split", "compare", "fingerprint", "interval", "measure",
           "run_grid", "run_trial", "summarise"]
