"""model.output_loss_mismatch: the logged val accuracy is not the accuracy of the model's outputs."""

from __future__ import annotations

import numpy as np

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


class LoggedAccuracyMismatch(CurveCheck):
    """A run recorded from another framework logs its own val accuracy; with every val image's
    probability the analysis can recompute it. When they disagree, the framework's metric did
    not read the outputs as probabilities: typically Keras's ``accuracy`` (a 0.5 threshold) on
    a model that outputs logits (``from_logits=True``), so the curve the user watches is not
    the model's accuracy. steadyval's own runs compute both from the same probabilities.
    """

    id = "model.output_loss_mismatch"
    needs = ("val_accuracy",)

    def run(self, ctx: CurveContext) -> list[Finding]:
        if ctx.correct is None:
            return []
        logged = ctx.history.column("val_accuracy")
        assert logged is not None
        actual = ctx.correct.mean(axis=1)
        ok = np.isfinite(logged)
        if ok.sum() < 2:
            return []
        gap = np.abs(logged[ok] - actual[ok])
        n = ctx.correct.shape[1]
        # A 0.5 threshold taken as > or >= can move the odd image sitting on it; more is a mismatch.
        off = gap > 2.0 / n
        if off.mean() < 0.5 or float(np.median(gap)) < 0.01:
            return []
        return [self.finding(
            Severity.MEDIUM, "The logged val accuracy is not the accuracy of the model's outputs",
            f"In {off.mean():.0%} of epochs the val accuracy the training logged differs from the share of "
            f"val images the recorded probabilities classify correctly (median gap {100 * np.median(gap):.1f} "
            "points). The metric read the outputs on another scale than the loss: usually logits "
            "thresholded at 0.5 as if they were probabilities (Keras: metrics=['accuracy'] with "
            "from_logits=True; use keras.metrics.BinaryAccuracy(threshold=0.0) or a sigmoid output). "
            "The logged accuracy curve, and its jumps, are then not the model's.",
            {"median_gap": float(np.median(gap)), "share_of_epochs_off": float(off.mean()),
             "logged_val_accuracy": logged.tolist(), "recomputed_val_accuracy": actual.tolist()},
        )]
