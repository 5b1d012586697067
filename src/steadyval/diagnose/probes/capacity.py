"""model.overcapacity: parameters far exceed what the data supports."""

from __future__ import annotations

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.findings import Finding, Severity
from steadyval.train.models import count_parameters


class Capacity(Probe):
    """Parameters per training image, weighed by whether anything regularises the model."""

    id = "model.overcapacity"
    remedies = ("model.smaller", "reg.weight_decay", "reg.dropout", "aug.geometric", "stop.early")

    def run(self, ctx: ProbeContext) -> list[Finding]:
        cfg = ctx.config
        params = count_parameters(ctx.model())
        n = len(ctx.tensors.x_train)
        per_image = params / max(n, 1)
        regularised = [name for name, on in (
            ("dropout", (cfg.dropout or 0) > 0 or (cfg.dropout is None and cfg.model == "cnn_dropout")),
            ("weight decay", cfg.weight_decay > 0), ("augmentation", cfg.augment != "none"),
            ("early stopping", cfg.early_stopping)) if on]
        if per_image < 1000:
            return []
        severity = (Severity.HIGH if per_image >= 10_000 and not regularised
                    else Severity.MEDIUM if per_image >= 10_000 or not regularised else Severity.LOW)
        return [self.finding(
            severity, f"{params:,} parameters for {n:,} training images ({per_image:,.0f} per image)",
            f"The {cfg.model} model has {per_image:,.0f} parameters per training image"
            + (f" and is regularised only by {', '.join(regularised)}" if regularised
               else " and nothing regularises it")
            + ": it can memorise the training set, so train accuracy saturates early and val loss "
            "turns up. Use a smaller model, weight decay, dropout, augmentation or early stopping.",
            {"parameters": params, "n_train": n, "parameters_per_image": per_image,
             "regularisation": regularised, "model": cfg.model},
        )]
