"""optim.lr_too_high: the train loss itself is noisy, rises again, or never beats a constant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from steadyval.curves import measures as m
from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.curves.checks.output_loss_mismatch import prior_entropy
from steadyval.findings import Finding, Severity


class LrTooHigh(CurveCheck):
    """Signature in the train loss: no better than a constant yet moving, a rise, or roughness."""

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
        acc = ctx.history.column("accuracy")
        majority = 0.5
        learned = False
        if acc is not None and np.isfinite(acc).any():
            majority = max(0.5, float(np.nanmin(acc[n // 2:])))  # at best the constant predictor
            # A constant predictor's accuracy is the majority share from the first epoch on; a
            # model whose accuracy climbed learned something, and comparing its loss with the
            # entropy of its own accuracy (0.03 against H(1.0) = 0 for a memorising model)
            # would call a smooth fit "stuck" (it did, on a 120-image run).
            first = acc[np.isfinite(acc)][0]
            learned = float(np.nanmedian(acc[n // 2:])) - float(first) >= 0.1
        constant = prior_entropy(majority)
        late = train[n // 2:]
        low = float(np.min(train[1:]))
        tail = float(np.mean(train[-max(2, n // 4):]))
        rising = (tail - low) / max(low, m.EPS)
        roughness = _roughness(train)
        reasons, severity = [], Severity.MEDIUM
        # Never better than predicting a constant, yet not flat: the optimiser keeps jumping.
        if not learned and float(np.median(late)) >= constant - 0.01 and float(np.ptp(late)) >= 0.01:
            reasons.append(f"train loss stays at or above {constant:.3f}, the loss of a constant "
                           "prediction, while it keeps moving")
            severity = Severity.HIGH
        # A relative rise from a tiny minimum (0.03 -> 0.07) is not a diverging run.
        if rising >= 0.5 and tail - low >= 0.05:
            reasons.append(f"train loss ends {rising:.0%} above its minimum ({low:.3f} -> {tail:.3f})")
            if rising >= 1.0 and tail >= 0.3:
                severity = Severity.HIGH
        if roughness >= 0.35:
            reasons.append(f"train loss is rough around its trend (detrended volatility {roughness:.2f})")
        if not reasons:
            return []
        return [self.finding(
            severity, "Train loss shows the signature of a learning rate that is too high",
            "; ".join(reasons).capitalize() + ". The optimiser overshoots: lower the learning rate "
            "(an LR range test suggests how far) or use warm-up and a decaying schedule.",
            {"detrended_volatility": roughness, "rise_above_min": rising, "final_train_loss": tail,
             "min_train_loss": low, "constant_prediction_loss": constant},
        )]


def _roughness(train: np.ndarray) -> float:
    """RMS of the train loss around its 5-epoch running median, over the median.

    Detrended, and measured from the epoch where the loss has covered 90 % of its overall
    fall (epoch 3 at the earliest), so the normal fast fall of the first epochs does not
    count as noise: relative to the tiny median of a run that fits its training set, the
    residuals of that fall alone read as roughness 1.15 on a smooth 30-epoch curve.
    """
    floor = float(np.min(train))
    covered = np.flatnonzero(train - floor <= 0.1 * (float(train[0]) - floor)) if train[0] > floor else []
    begin = max(2, int(covered[0])) if len(covered) else 2
    x = train[begin:]
    if len(x) < 6:
        return 0.0
    trend = pd.Series(x).rolling(5, center=True, min_periods=1).median().to_numpy()
    return float(np.sqrt(np.mean((x - trend) ** 2)) / max(float(np.median(x)), m.EPS))
