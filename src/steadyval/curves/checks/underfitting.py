"""train.underfitting: not converged (loss still falling at the end) or barely learning."""

from __future__ import annotations

import numpy as np
from scipy import stats

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


class Underfitting(CurveCheck):
    """Significant downward trend of train and val loss over the last third of the run."""

    id = "train.underfitting"
    needs = ("loss",)
    remedies = ("train.longer",)

    def run(self, ctx: CurveContext) -> list[Finding]:
        train = ctx.history.column("loss")
        val = ctx.history.column("val_loss")
        assert train is not None
        n = len(train)
        if n < 4 or not np.isfinite(train).all():
            return []
        series = val if val is not None and np.isfinite(val).all() else train
        last = series[-max(3, n // 3):]
        fit = stats.linregress(np.arange(len(last)), last)
        projected_drop = -fit.slope * len(last) / max(float(np.mean(last)), 1e-9)
        still_falling = fit.slope < 0 and fit.pvalue < 0.05 and projected_drop > 0.05
        if not still_falling:
            return []
        return [self.finding(
            Severity.MEDIUM, "Not converged: loss is still falling at the last epoch",
            f"Over the last {len(last)} epochs the {'val' if series is val else 'train'} loss falls "
            f"by {projected_drop:.0%} (trend p = {fit.pvalue:.2g}). Train longer, or raise the "
            "learning rate.",
            {"slope_per_epoch": float(fit.slope), "trend_p_value": float(fit.pvalue),
             "relative_drop_last_third": projected_drop},
        )]
