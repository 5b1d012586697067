"""model.overfitting: val loss turns upward while train loss keeps falling; onset epoch given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from steadyval.curves import measures as m
from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


class Overfitting(CurveCheck):
    """Onset = minimum of the median-smoothed val loss; rise measured on the last epochs."""

    id = "model.overfitting"
    needs = ("loss", "val_loss")
    remedies = ("stop.early", "reg.weight_decay", "reg.dropout", "aug.geometric", "model.smaller")

    def run(self, ctx: CurveContext) -> list[Finding]:
        val = ctx.history.column("val_loss")
        train = ctx.history.column("loss")
        assert val is not None and train is not None
        n = len(val)
        if n < 5 or not np.isfinite(val).all():
            return []
        window = max(1, n // 20) * 2 + 1  # odd, ~10 % of the run: robust to single spikes
        smooth = pd.Series(val).rolling(window, center=True, min_periods=1).median().to_numpy()
        onset = int(np.argmin(smooth))
        tail = max(3, n // 10)
        if onset >= n - 2:
            return []
        lowest = float(smooth[onset])
        end = float(np.mean(val[-tail:]))
        rise = (end - lowest) / max(lowest, m.EPS)
        train_fell = float(np.mean(train[-tail:])) < 0.95 * float(train[onset])
        noise = 2 * m.loss_se(lowest, ctx.n_val) if ctx.n_val else 0.0
        if not train_fell or end - lowest <= noise or rise < 0.05:
            return []
        severity = Severity.HIGH if rise >= 0.5 else Severity.MEDIUM if rise >= 0.15 else Severity.LOW
        epochs = ctx.history.metrics["epoch"].to_numpy()
        return [self.finding(
            severity, f"Overfitting from epoch {int(epochs[onset])}: val loss up {rise:.0%}",
            f"Val loss bottoms out at {lowest:.3f} around epoch {int(epochs[onset])} and ends at "
            f"{end:.3f} (+{rise:.0%}) while train loss falls from {train[onset]:.3f} to "
            f"{np.mean(train[-tail:]):.3f}. Stop early with the best weights, or regularise.",
            {"onset_epoch": int(epochs[onset]), "min_val_loss": lowest, "final_val_loss": end,
             "rise": rise, "train_loss_at_onset": float(train[onset]),
             "final_train_loss": float(np.mean(train[-tail:])), "epochs_after_onset": n - 1 - onset},
        )]
