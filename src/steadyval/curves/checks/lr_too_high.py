"""optim.lr_too_high: the train loss itself is noisy, or rises again after its minimum."""

from __future__ import annotations

import numpy as np

from steadyval.curves import measures as m
from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity

class LrTooHigh(CurveCheck):
    """Signature in the train loss: volatility, or a rise after its minimum."""

    id = "optim.lr_too_high"
    needs = ("loss",)
    remedies = ("optim.lower_lr", "optim.schedule", "optim.grad_clip")

    def run(self, ctx: CurveContext) -> list[Finding]:
        train = ctx.history.column("loss")
        assert train is not None
        train = train[np.isfinite(train)]
        n = len(train)
        if n < 4:
            return []
        volatility = m.val_loss_volatility(train)  # same measure, on the train curve
        low = float(np.min(train[1:]))
        tail = float(np.mean(train[-max(2, n // 4):]))
        rising = (tail - low) / max(low, m.EPS)
        reasons = []
        if volatility >= 0.25:
            reasons.append(f"train-loss volatility {volatility:.2f}")
        if rising >= 0.5:
            reasons.append(f"train loss ends {rising:.0%} above its minimum")
        if not reasons:
            return []
        # A relative rise from a tiny minimum (0.03 -> 0.07) is not a diverging run: high only
        # when the loss also ends where a model is poor in absolute terms.
        severity = Severity.HIGH if rising >= 1.0 and tail >= 0.3 else Severity.MEDIUM
        return [self.finding(
            severity, "Train loss shows the signature of a learning rate that is too high",
            "; ".join(reasons).capitalize() + ". The optimiser overshoots: lower the learning rate "
            "(an LR range test suggests how far) or use warm-up and a decaying schedule.",
            {"train_loss_volatility": volatility, "rise_above_min": rising,
             "final_train_loss": tail, "min_train_loss": low},
        )]
