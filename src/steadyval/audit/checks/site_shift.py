"""split.site_shift: a metadata column (site, device, view) differs between train and val."""

from __future__ import annotations

import numpy as np

from steadyval.audit.base import AuditContext, Check
from steadyval.audit.stats import contingency, cramers_v, scale_rows
from steadyval.findings import Finding, Severity


class SiteShift(Check):
    """Per metadata column: level x split contingency test and Cramér's V."""

    id = "split.site_shift"
    needs = frozenset({"val", "metadata"})
    remedies = ("split.rebalance", "aug.intensity", "eval.kfold")

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        rec = ds.records[ds.records["split"].isin(["train", "val"])]
        out = []
        for col in ctx.categorical_metadata:
            table = contingency(rec[col].astype(str), rec["split"])
            if "val" not in table.columns or "train" not in table.columns:
                continue
            # Rows of the transposed table are splits: count patients, not images.
            deff = np.array([ctx.effective_n(ds.split_index(sp)) / max(1, len(ds.split_index(sp)))
                             for sp in table.columns])
            v, p = cramers_v(scale_rows(table.T, deff))
            if v >= 0.3 and p < 1e-3:
                severity = Severity.HIGH
            elif v >= 0.15 and p < 0.01:
                severity = Severity.MEDIUM
            elif v >= 0.1 and p < 0.05:
                severity = Severity.LOW
            else:
                continue
            shares = (table / table.sum()).round(4)
            gap = (shares["val"] - shares["train"]).abs().sort_values(ascending=False)
            level = str(gap.index[0])
            out.append(self.finding(
                severity, f"'{col}' is distributed differently in train and val",
                f"'{col}' = '{level}' is {shares.at[level, 'train']:.0%} of train but "
                f"{shares.at[level, 'val']:.0%} of val (Cramér's V = {v:.2f}, p = {p:.2g}). The val "
                "curve then measures transfer to another acquisition mix, not generalisation; "
                "re-split stratified by label and this column.",
                {"column": col, "cramers_v": v, "p_value": p,
                 "train_share": shares["train"].to_dict(), "val_share": shares["val"].to_dict(),
                 "counts": {str(k): {str(s): int(n) for s, n in r.items()}
                            for k, r in table.iterrows()}},
            ))
        return out
