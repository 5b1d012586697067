"""Curve checks: the same contract as the audit checks, over one History."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from steadyval.curves import measures as m
from steadyval.curves.history import History
from steadyval.findings import Finding, FindingSource, run_isolated


class CurveContext:
    """One History and the measures several checks share, each computed once."""

    def __init__(self, history: History) -> None:
        self.history = history

    @cached_property
    def n_val(self) -> int | None:
        """Validation-set size: per-image data, else what the user told us."""
        if self.history.per_image:
            return int(self.history.val_probs.shape[1])  # type: ignore[union-attr]
        return self.history.val_size

    @cached_property
    def correct(self) -> np.ndarray | None:
        """(E, n) bool: each val image right or wrong at each epoch (threshold 0.5)."""
        h = self.history
        if not h.per_image:
            return None
        labels = h.val_index["label"].to_numpy().astype(bool)  # type: ignore[index]
        return (h.val_probs >= 0.5) == labels[None, :]  # type: ignore[operator]

    @cached_property
    def jump_pvalues(self) -> np.ndarray | None:
        """p-value of each consecutive-epoch accuracy change (McNemar, else binomial)."""
        if self.correct is not None:
            return m.mcnemar_pvalues(self.correct[1:])  # epochs 2..end, like volatility
        acc = self.history.column("val_accuracy")
        if acc is None or not self.n_val:
            return None
        acc = acc[1:][np.isfinite(acc[1:])]
        return m.binomial_jump_pvalues(acc, self.n_val) if len(acc) > 2 else None

    @cached_property
    def accuracy_changes(self) -> np.ndarray | None:
        """Signed val-accuracy change of each consecutive pair (aligned with jump_pvalues)."""
        if self.correct is not None:
            return np.diff(self.correct[1:].mean(axis=1))
        acc = self.history.column("val_accuracy")
        if acc is None:
            return None
        acc = acc[1:][np.isfinite(acc[1:])]
        return np.diff(acc)

    @cached_property
    def image_losses(self) -> np.ndarray | None:
        """(E-1, n_val) per-image val losses from epoch 2 on, or None without per-image predictions."""
        h = self.history
        if not h.per_image:
            return None
        return m.per_image_losses(h.val_probs[1:], h.val_index["label"].to_numpy())  # type: ignore[index]

    @cached_property
    def loss_changes(self) -> np.ndarray | None:
        """Signed val-loss change of each consecutive pair (aligned with loss_jump_pvalues)."""
        if self.image_losses is not None:
            return np.diff(self.image_losses.mean(axis=1))
        v = self.history.column("val_loss")
        if v is None:
            return None
        v = v[1:][np.isfinite(v[1:])]
        return np.diff(v)

    @cached_property
    def loss_jump_pvalues(self) -> np.ndarray | None:
        """p-value of each consecutive-epoch val-loss change (paired on images, else approximate)."""
        if self.image_losses is not None:
            return m.paired_loss_pvalues(self.image_losses)
        val_loss = self.history.column("val_loss")
        if val_loss is None or not self.n_val:
            return None
        v = val_loss[1:][np.isfinite(val_loss[1:])]
        return m.loss_jump_pvalues(v, self.n_val) if len(v) > 2 else None

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The headline measures of this run."""
        h = self.history
        out: dict[str, Any] = {"epochs": h.n_epochs, "n_val": self.n_val}
        val_loss = h.column("val_loss")
        if val_loss is not None:
            out["val_loss_volatility"] = m.val_loss_volatility(val_loss)
        if self.jump_pvalues is not None and len(self.jump_pvalues):
            out["jumps_beyond_noise"] = float((self.jump_pvalues < 0.05).mean())
            out["jump_test"] = "mcnemar" if self.correct is not None else "binomial approximation"
        if self.loss_jump_pvalues is not None and len(self.loss_jump_pvalues):
            out["loss_jumps_beyond_noise"] = float((self.loss_jump_pvalues < 0.05).mean())
        # Instability is a significant change for the worse; significant improvements are learning.
        if "jumps_beyond_noise" in out and self.accuracy_changes is not None:
            worse = (self.jump_pvalues < 0.05) & (self.accuracy_changes < 0)  # type: ignore[operator]
            out["accuracy_drops_beyond_noise"] = float(worse.mean())
        if "loss_jumps_beyond_noise" in out and self.loss_changes is not None:
            worse = (self.loss_jump_pvalues < 0.05) & (self.loss_changes > 0)  # type: ignore[operator]
            out["loss_rises_beyond_noise"] = float(worse.mean())
        acc = h.column("val_accuracy")
        if acc is not None and self.n_val:
            tail = acc[1:][np.isfinite(acc[1:])]
            if len(tail) > 2:
                se = m.accuracy_se(float(np.mean(tail)), self.n_val)
                out["val_accuracy_se"] = se
                out["val_accuracy_jump_rms"] = float(np.sqrt(np.mean(np.diff(tail) ** 2)))
                out["val_accuracy_jump_expected_rms"] = float(np.sqrt(2) * se)
        if h.per_image:
            out["churn"] = m.churn(h.val_probs[1:] >= 0.5)  # type: ignore[index]
        return out

    @cached_property
    def attribution(self) -> dict[str, Any] | None:
        """Loss attribution by image and subgroup (needs per-image predictions)."""
        h = self.history
        if not h.per_image or h.val_probs.shape[0] < 3:  # type: ignore[union-attr]
            return None
        cols = [c for c in h.val_index.columns  # type: ignore[union-attr]
                if c not in ("path", "label", "group")]
        return m.loss_attribution(h.val_probs, h.val_index, cols)  # type: ignore[arg-type]


class CurveCheck(FindingSource, abstract=True):
    """One curve diagnostic: declares its id and the columns it needs; returns findings."""

    needs: ClassVar[tuple[str, ...]] = ()

    def missing(self, ctx: CurveContext) -> str | None:
        """Why this check cannot run, or None."""
        for col in self.needs:
            if col == "n_val":
                if not ctx.n_val:
                    return "validation-set size unknown (pass --val-size N)"
            elif ctx.history.column(col) is None:
                return f"the log has no '{col}' column"
        return None



@dataclass
class CurveResult:
    """What the analysis found on one run."""

    history: History
    findings: list[Finding]
    summary: dict[str, Any]
    attribution: dict[str, Any] | None
    skipped: dict[str, str] = field(default_factory=dict)


def run_curve_checks(history: History, checks: list[CurveCheck]) -> CurveResult:
    """Run checks on one History; a check that raises becomes a ``check.failed`` info finding."""
    ctx = CurveContext(history)
    findings, skipped, _ = run_isolated(checks, ctx)
    return CurveResult(history, findings, ctx.summary, ctx.attribution, skipped)
