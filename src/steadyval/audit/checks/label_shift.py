"""split.label_shift: the class ratio differs between train and val."""

from __future__ import annotations

import numpy as np

from steadyval.audit.base import AuditContext, Check
from steadyval.audit.stats import cramers_v, proportion_ci, scale_rows
from steadyval.findings import Finding, Severity


class LabelShift(Check):
    """Positive share in train vs val, with a chi-square / Fisher test."""

    id = "split.label_shift"
    needs = frozenset({"val"})
    remedies = ("split.rebalance",)

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        y = ds.labels
        tr, va = ds.split_index("train"), ds.split_index("val")
        k_tr, k_va = int(y[tr].sum()), int(y[va].sum())
        p_tr, p_va = k_tr / len(tr), k_va / len(va)
        table = [[k_tr, len(tr) - k_tr], [k_va, len(va) - k_va]]
        deff = np.array([ctx.effective_n(tr) / len(tr), ctx.effective_n(va) / len(va)])
        _, p = cramers_v(scale_rows(table, deff))
        diff = abs(p_tr - p_va)
        if diff >= 0.15 and p < 1e-3:
            severity = Severity.HIGH
        elif diff >= 0.07 and p < 0.01:
            severity = Severity.MEDIUM
        elif p < 0.05:
            severity = Severity.LOW
        else:
            return []
        return [self.finding(
            severity, f"'{ds.positive}' is {p_tr:.0%} of train but {p_va:.0%} of val",
            f"The positive share differs by {100 * diff:.1f} points (p = {p:.2g}). Val loss and "
            "accuracy then measure a different mix than the model is trained on; re-split "
            "stratified by label.",
            {"positive": ds.positive, "train_positive_share": p_tr, "val_positive_share": p_va,
             "val_share_ci95": proportion_ci(k_va, len(va)), "difference": diff, "p_value": p},
        )]
