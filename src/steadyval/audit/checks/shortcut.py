"""data.shortcut: a metadata column or an acquisition property predicts the label."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from steadyval.audit.base import AuditContext, Check
from steadyval.audit.stats import contingency, cramers_v
from steadyval.findings import Finding, Severity

# Properties of the file, not of the anatomy: a model should not be able to use them.
NUMERIC_ACQUISITION = ("width", "height", "aspect", "channels", "bit_depth", "file_bytes")


class Shortcut(Check):
    """Association of each metadata column (Cramér's V) and acquisition property (AUROC) with the label."""

    id = "data.shortcut"
    remedies = ("split.rebalance", "aug.intensity")

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        y = ds.labels
        out: list[Finding] = []
        derived: list[str] = []
        for col in ctx.categorical_metadata:
            table = contingency(ds.records[col].astype(str), y)
            if table.shape[1] < 2:
                continue
            v, p = cramers_v(table)
            purity = (table.max(axis=1) / table.sum(axis=1)).to_numpy()
            if (purity == 1.0).all():
                derived.append(col)  # every level is one class: the column restates the label
                continue
            severity = _by_effect(v, p, (0.5, 0.3, 0.15))
            if severity is None:
                continue
            rates = (table[1] / table.sum(axis=1)).round(3).to_dict() if 1 in table.columns else {}
            out.append(self.finding(
                severity, f"'{col}' predicts the label (Cramér's V = {v:.2f})",
                f"The share of '{ds.positive}' ranges from {min(rates.values()):.0%} to "
                f"{max(rates.values()):.0%} across '{col}' levels (p = {p:.2g}). A model can learn "
                f"the {col} (its intensity profile, markers) instead of the disease.",
                {"column": col, "cramers_v": v, "p_value": p,
                 "positive_rate_by_level": {str(k): float(r) for k, r in rates.items()}},
            ))
        for prop in NUMERIC_ACQUISITION:
            values = ds.properties[prop].to_numpy(dtype=float)
            ok = np.isfinite(values)
            if ok.sum() < 20 or np.nanstd(values[ok]) == 0 or len(set(y[ok])) < 2:
                continue
            auc = float(roc_auc_score(y[ok], values[ok]))
            strength = max(auc, 1 - auc)
            p = float(stats.mannwhitneyu(values[ok & (y == 1)], values[ok & (y == 0)]).pvalue)
            severity = _by_effect(strength, p, (0.9, 0.75, 0.65))
            if severity is None:
                continue
            if prop == "file_bytes" and severity == Severity.HIGH:
                # Compressed size also follows image content; it is a hint, not proof.
                severity = Severity.MEDIUM
            out.append(self.finding(
                severity, f"Image {prop} predicts the label (AUROC {strength:.2f})",
                f"The {prop} alone separates the classes with AUROC {strength:.2f} (p = {p:.2g}). "
                "Classes were probably acquired or exported differently; a model can use that.",
                {"property": prop, "auroc": strength, "p_value": p,
                 "median_positive": float(np.median(values[ok & (y == 1)])),
                 "median_negative": float(np.median(values[ok & (y == 0)]))},
            ))
        if derived and not out:
            out.append(self.finding(
                Severity.INFO, "Columns derived from the label were ignored",
                f"{', '.join(derived)} take a different value for each class (each level holds "
                "one class only), so they restate the label rather than confound it.",
                {"label_derived_columns": derived}))
        return out


def _by_effect(effect: float, p: float, cuts: tuple[float, float, float]) -> Severity | None:
    high, medium, low = cuts
    if effect >= high and p < 1e-3:
        return Severity.HIGH
    if effect >= medium and p < 1e-3:
        return Severity.MEDIUM
    if effect >= low and p < 0.01:
        return Severity.LOW
    return None
