"""train.nonfinite: NaN or inf in a loss."""

from __future__ import annotations

import numpy as np

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity


class Nonfinite(CurveCheck):
    """The first epoch at which train or val loss is NaN or infinite."""

    id = "train.nonfinite"
    remedies = ("optim.lower_lr", "optim.grad_clip")

    def run(self, ctx: CurveContext) -> list[Finding]:
        h = ctx.history
        status = " ".join(h.notes)
        for col in ("loss", "val_loss"):
            if col not in h.metrics:
                continue
            values = h.metrics[col].to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                epoch = int(h.metrics["epoch"].iat[bad[0]])
                return [self.finding(Severity.HIGH, f"{col} became non-finite at epoch {epoch}",
                                     f"{col} is {values[bad[0]]} from epoch {epoch}. Lower the learning "
                                     "rate or clip gradients.", {"column": col, "epoch": epoch})]
        if "nonfinite" in status:
            return [self.finding(Severity.HIGH, "Training stopped on a non-finite loss",
                                 f"The run stopped because a loss became NaN/inf ({status}).",
                                 {"status": status})]
        return []
