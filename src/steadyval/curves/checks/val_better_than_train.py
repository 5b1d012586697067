"""curves.val_better_than_train: val loss below train loss through most of the run."""

from __future__ import annotations

import numpy as np

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


class ValBetterThanTrain(CurveCheck):
    """A hint: heavy regularisation/augmentation explains it; leakage is the other suspect."""

    id = "curves.val_better_than_train"
    needs = ("loss", "val_loss")
    remedies = ("split.rebalance",)

    def run(self, ctx: CurveContext) -> list[Finding]:
        train, val = ctx.history.column("loss"), ctx.history.column("val_loss")
        assert train is not None and val is not None
        ok = np.isfinite(train) & np.isfinite(val)
        train, val = train[ok][1:], val[ok][1:]
        if len(train) < 3:
            return []
        below = float(np.mean(val < train))
        gap = float(np.median((train - val) / np.maximum(train, 1e-9)))
        if below < 0.8 or gap < 0.1:
            return []
        acc_gap = 0.0
        t_acc, v_acc = ctx.history.column("accuracy"), ctx.history.column("val_accuracy")
        if t_acc is not None and v_acc is not None:
            acc_gap = float(np.nanmedian(v_acc[1:] - t_acc[1:]))
        severity = Severity.MEDIUM if acc_gap >= 0.05 else Severity.LOW
        return [self.finding(
            severity, f"Val loss is below train loss in {below:.0%} of epochs",
            f"Val loss is a median {gap:.0%} below train loss"
            + (f" and val accuracy {100 * acc_gap:.1f} points above train" if acc_gap > 0 else "")
            + ". Dropout and augmentation (active only in training) explain part of that; if they "
            "do not, suspect patients or duplicates shared between train and val (run steadyval audit).",
            {"share_of_epochs_val_below_train": below, "median_relative_gap": gap,
             "median_accuracy_gap": acc_gap},
        )]
