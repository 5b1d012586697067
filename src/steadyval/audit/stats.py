"""Small statistics shared by the checks (effect sizes with their tests)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


def contingency(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray) -> pd.DataFrame:
    """Counts of each (a, b) pair."""
    return pd.crosstab(np.asarray(a), np.asarray(b))


def cramers_v(table: pd.DataFrame | np.ndarray) -> tuple[float, float]:
    """Cramér's V (0 = independent, 1 = determined) and the chi-square (or Fisher) p-value."""
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        return 0.0, 1.0
    n = t.sum()
    chi2, p, _, _ = stats.chi2_contingency(t, correction=False)
    if t.shape == (2, 2) and (t < 5).any():
        p = float(stats.fisher_exact(t)[1])
    v = math.sqrt(chi2 / (n * (min(t.shape) - 1)))
    return float(v), float(p)


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUROC."""
    if n_pos == 0 or n_neg == 0:
        return float("inf")
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 1e-12))


def proportion_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def scale_rows(table: pd.DataFrame | np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Multiply each row of a contingency table by a factor (design-effect correction)."""
    return np.asarray(table, dtype=float) * np.asarray(factors, dtype=float)[:, None]


def ks_test(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> tuple[float, float]:
    """Two-sample KS statistic of ``a`` vs ``b``, p-value for effective sizes ``n_a``, ``n_b``."""
    d = float(stats.ks_2samp(a, b).statistic)
    en = n_a * n_b / max(1, n_a + n_b)
    p = float(stats.kstwo.sf(d, max(1, round(en))))
    return d, p
