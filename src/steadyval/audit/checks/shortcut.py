"""data.shortcut: a metadata column or an acquisition property predicts the label."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import LinearRegression
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
            strength, p = _separation(values[ok], y[ok])
            severity = _by_effect(strength, p, (0.9, 0.75, 0.65))
            if severity is None:
                continue
            evidence = {"property": prop, "auroc": strength, "p_value": p,
                        "median_positive": float(np.median(values[ok & (y == 1)])),
                        "median_negative": float(np.median(values[ok & (y == 0)]))}
            detail = ""
            if prop == "file_bytes":
                # Compressed size follows the picture too: denser tissue, more texture, larger
                # file. Judge what the content does not explain (IDC patches: AUROC 0.76 raw,
                # 0.58 beyond content; a class saved with another compression stays near 1).
                residual, r2 = _beyond_content(ds.properties, values, ok)
                beyond, p_beyond = _separation(residual, y[ok])
                severity = _by_effect(beyond, p_beyond, (0.9, 0.75, 0.65))
                if severity is None:
                    continue
                if severity == Severity.HIGH:  # still a hint about export, not proof
                    severity = Severity.MEDIUM
                evidence.update(auroc_beyond_content=beyond, p_value_beyond_content=p_beyond, content_r2=r2)
                detail = (f" The part of it that image content (pixel count, brightness, contrast, "
                          f"sharpness, entropy: R² {r2:.2f}) does not explain still does: AUROC "
                          f"{beyond:.2f} (p = {p_beyond:.2g}).")
            out.append(self.finding(
                severity, f"Image {prop} predicts the label (AUROC {strength:.2f})",
                f"The {prop} alone separates the classes with AUROC {strength:.2f} "
                f"(p = {p:.2g}).{detail} Classes were probably acquired or exported differently; "
                "a model can use that.",
                evidence,
            ))
        if derived and not out:
            out.append(self.finding(
                Severity.INFO, "Columns derived from the label were ignored",
                f"{', '.join(derived)} take a different value for each class (each level holds "
                "one class only), so they restate the label rather than confound it.",
                {"label_derived_columns": derived}))
        return out


def _separation(values: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """AUROC of ``values`` for the label, either direction, and the Mann-Whitney p-value."""
    auc = float(roc_auc_score(y, values))
    return max(auc, 1 - auc), float(stats.mannwhitneyu(values[y == 1], values[y == 0]).pvalue)


def _beyond_content(properties: pd.DataFrame, file_bytes: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, float]:
    """Residual of log file size after a linear fit on image content (no label used), and the fit's R^2.

    Besides its encoding, a compressed file's size follows its pixel count, channels, bit depth
    and the picture (brightness, contrast, sharpness, entropy of the decoded image). On the
    real sets in ../shared/data these explain 90-98 % of the variance of log file size.
    """
    def num(name: str) -> np.ndarray:
        return properties[name].to_numpy(dtype=float)

    features = np.column_stack([np.log(num("width") * num("height")), num("channels"), num("bit_depth"),
                                num("brightness"), num("contrast"), np.log1p(num("sharpness")),
                                num("entropy")])[ok]
    target = np.log(np.maximum(file_bytes[ok], 1.0))
    finite = np.isfinite(features).all(axis=1)
    fit = LinearRegression().fit(features[finite], target[finite]) if finite.sum() > features.shape[1] else None
    if fit is None:
        return target, 0.0
    # Images without content measures (undecodable files) get the mean residual, 0: neutral
    # for the AUROC, where their raw log size would sit far from every residual.
    residual = np.zeros_like(target)
    residual[finite] = target[finite] - fit.predict(features[finite])
    total = float(np.var(target[finite]))
    return residual, (1 - float(np.var(residual[finite])) / total) if total > 0 else 0.0


def _by_effect(effect: float, p: float, cuts: tuple[float, float, float]) -> Severity | None:
    high, medium, low = cuts
    if effect >= high and p < 1e-3:
        return Severity.HIGH
    if effect >= medium and p < 1e-3:
        return Severity.MEDIUM
    if effect >= low and p < 0.01:
        return Severity.LOW
    return None
