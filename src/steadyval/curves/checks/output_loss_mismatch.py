"""model.output_loss_mismatch: loss stuck at a constant, accuracy at the majority rate."""

from __future__ import annotations

import math

import numpy as np

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


def prior_entropy(p: float) -> float:
    """BCE of predicting the class prior ``p`` for every image (nats)."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


class OutputLossMismatch(CurveCheck):
    """Train loss flat at the entropy of the class prior: the network predicts a constant.

    From curves alone the cause cannot be told apart (probabilities fed to a loss expecting
    logits, a learning rate so high the units died, a frozen or broken head); the message
    says so, and the model probes decide.
    """

    id = "model.output_loss_mismatch"
    needs = ("loss",)
    remedies = ("optim.lower_lr",)

    def run(self, ctx: CurveContext) -> list[Finding]:
        train = ctx.history.column("loss")
        assert train is not None
        train = train[np.isfinite(train)]
        n = len(train)
        if n < 3:
            return []
        half = train[n // 2:]
        # Accuracy stuck at a constant means a constant prediction; its value is the prior.
        acc = ctx.history.column("accuracy")
        acc_tail = acc[n // 2:][np.isfinite(acc[n // 2:])] if acc is not None else np.array([])
        majority = float(np.median(acc_tail)) if len(acc_tail) else 0.5
        constant = prior_entropy(majority)
        flat = float(np.ptp(half)) < 0.01 and abs(float(np.mean(half)) - constant) < 0.02
        acc_flat = len(acc_tail) == 0 or float(np.ptp(acc_tail)) < 0.005
        if not (flat and acc_flat):
            return []
        return [self.finding(
            Severity.MEDIUM, "The model predicts a constant: loss stuck at the class prior",
            f"Train loss stays at {np.mean(half):.4f}, the loss of predicting the class prior "
            f"({majority:.1%}) for every image, and accuracy does not move. Usual causes: the output "
            "and the loss disagree (sigmoid outputs fed to a loss expecting logits, or the reverse), "
            "a learning rate so high the units died, or a head that cannot train.",
            {"train_loss": float(np.mean(half)), "prior_entropy": constant,
             "majority_accuracy": majority},
        )]
