"""The DESIGN.md measures, computed the same way everywhere (pure functions on arrays)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

EPS = 1e-7


def val_loss_volatility(val_loss: np.ndarray) -> float:
    """RMS of epoch-to-epoch differences of val loss / median val loss, epochs 2..end."""
    return _relative_rms_change(val_loss, rises_only=False)


def val_loss_rise_volatility(val_loss: np.ndarray) -> float:
    """The rising part of val-loss volatility: RMS of the epoch-to-epoch increases (falls count
    as 0) / median val loss, epochs 2..end.

    Not a DESIGN.md measure: the verdicts use it to tell a faster descent from more jumping.
    Volatility counts every change, so a run whose val loss falls fast to a low median scores
    higher than one that falls slowly; this one is zero for any steady descent.
    """
    return _relative_rms_change(val_loss, rises_only=True)


def _relative_rms_change(val_loss: np.ndarray, rises_only: bool) -> float:
    v = np.asarray(val_loss, dtype=float)[1:]
    v = v[np.isfinite(v)]
    if len(v) < 3:
        return float("nan")
    change = np.diff(v)
    if rises_only:
        change = np.clip(change, 0, None)
    return float(np.sqrt(np.mean(change**2)) / max(np.median(v), EPS))


def accuracy_se(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` images."""
    p = min(max(accuracy, 1.0 / n), 1 - 1.0 / n)
    return math.sqrt(p * (1 - p) / n)


def binomial_jump_pvalues(accuracy: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-values of consecutive accuracy changes, as two independent binomials of size n.

    The approximation for imported logs without per-image predictions.
    """
    a = np.asarray(accuracy, dtype=float)
    p = np.clip((a[1:] + a[:-1]) / 2, 1.0 / n, 1 - 1.0 / n)
    z = np.abs(np.diff(a)) / np.sqrt(2 * p * (1 - p) / n)
    return 2 * stats.norm.sf(z)


def mcnemar_pvalues(correct: np.ndarray) -> np.ndarray:
    """Exact McNemar p-value for each pair of consecutive epochs; ``correct`` is (E, n) bool."""
    out = np.ones(max(0, len(correct) - 1))
    for t in range(1, len(correct)):
        lost = int((correct[t - 1] & ~correct[t]).sum())
        gained = int((~correct[t - 1] & correct[t]).sum())
        if lost + gained:
            out[t - 1] = stats.binomtest(min(lost, gained), lost + gained, 0.5).pvalue
    return out


def paired_loss_pvalues(losses: np.ndarray) -> np.ndarray:
    """Paired t-test p-value of the per-image loss change between consecutive epochs; (E, n)."""
    out = np.ones(max(0, len(losses) - 1))
    for t in range(1, len(losses)):
        d = losses[t] - losses[t - 1]
        if np.std(d) > 0:
            out[t - 1] = stats.ttest_1samp(d, 0.0).pvalue
    return out


def loss_jump_pvalues(val_loss: np.ndarray, n: int) -> np.ndarray:
    """Approximate p-values of consecutive val-loss changes from aggregates (independent SEs).

    Conservative for a fixed val set (consecutive epochs are positively correlated).
    """
    v = np.asarray(val_loss, dtype=float)
    se = np.sqrt(2) * ((v[1:] + v[:-1]) / 2) / math.sqrt(n)
    return 2 * stats.norm.sf(np.abs(np.diff(v)) / np.maximum(se, EPS))


def churn(predicted: np.ndarray) -> float:
    """Mean share of val images whose predicted class flips between consecutive epochs."""
    if len(predicted) < 2:
        return float("nan")
    return float((predicted[1:] != predicted[:-1]).mean())


def per_image_losses(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(E, n) binary cross-entropy of every val image at every epoch."""
    p = np.clip(probs, EPS, 1 - EPS)
    y = np.asarray(labels, dtype=float)[None, :]
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def loss_se(val_loss: float, n: int, losses: np.ndarray | None = None) -> float:
    """Standard error of a mean val loss over ``n`` images.

    From the per-image losses when known; otherwise the per-image BCE is taken to spread
    about as much as its mean (it is roughly exponential), so SE ~ val_loss / sqrt(n).
    """
    if losses is not None and len(losses) > 1:
        return float(np.std(losses, ddof=1) / math.sqrt(len(losses)))
    return float(val_loss / math.sqrt(n))


def _ratio(a: float, b: float, cap: float = 1000.0) -> float:
    if b > 0:
        return float(min(a / b, cap))
    return cap if a > 0 else 1.0


def loss_attribution(probs: np.ndarray, index: pd.DataFrame, columns: list[str],
                     top: int = 20) -> dict[str, object]:
    """Which images and subgroups account for the epoch-to-epoch changes in val loss.

    For each subgroup g and epoch t, its contribution to the change of the mean val loss is
    sum_{i in g} (l_i(t) - l_i(t-1)) / n. Its swing share is the sum over t of |contribution|
    over the same sum for all subgroups of that column; ``ratio``
    is the mean swing of one of its images over that of an image of the other levels.
    """
    labels = index["label"].to_numpy()
    losses = per_image_losses(probs, labels)
    delta = np.diff(losses, axis=0)  # (E-1, n)
    n = losses.shape[1]
    out: dict[str, object] = {"by_column": {}}
    for col in columns:
        values = index[col].astype(str).to_numpy()
        levels = pd.unique(values)
        if not 2 <= len(levels) <= 30:
            continue
        contrib = np.stack([delta[:, values == lv].sum(axis=1) / n for lv in levels], axis=1)
        swing = np.abs(contrib).sum(axis=0)
        total = swing.sum()
        sizes = np.array([(values == lv).sum() for lv in levels], dtype=float)
        per_image_swing = swing / sizes
        table = {}
        for k, lv in enumerate(levels):
            rest = np.delete(np.arange(len(levels)), k)
            others = swing[rest].sum() / max(sizes[rest].sum(), 1.0)
            table[str(lv)] = {
                "n_images": int(sizes[k]),
                "image_share": float(sizes[k] / n),
                "swing_share": float(swing[k] / total) if total > 0 else 0.0,
                # How much more an image of this level moves val loss than one of the others:
                # unlike swing_share / image_share, it is not capped when the level dominates val.
                "ratio": _ratio(per_image_swing[k], others),
            }
        out["by_column"][col] = table  # type: ignore[index]
    per_image = np.abs(delta).sum(axis=0)
    order = np.argsort(-per_image)[:top]
    share = per_image / max(per_image.sum(), EPS)
    out["top_images"] = [{"path": str(index["path"].iat[i]) if "path" in index else str(i),
                          "label": int(labels[i]), "swing_share": float(share[i]),
                          "mean_loss": float(losses[:, i].mean())} for i in order]
    k = max(1, round(0.05 * n))
    out["top5pct_swing_share"] = float(np.sort(share)[::-1][:k].sum())
    return out
