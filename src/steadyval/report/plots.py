"""Matplotlib figures as inline SVG data URIs (no files, no network)."""

from __future__ import annotations

import base64
import io
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

SPLIT_COLORS = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}


def svg_uri(fig: plt.Figure) -> str:
    """Render ``fig`` to a base64 SVG data URI and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail_uri(image: np.ndarray, size: int = 96) -> str:
    """(C, S, S) uint8 -> a PNG data URI."""
    arr = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    im = Image.fromarray(np.ascontiguousarray(arr)).resize((size, size), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def share_bars(records: pd.DataFrame, column: str, title: str) -> str:
    """Stacked bars: the share of each ``column`` level within each split."""
    table = pd.crosstab(records["split"], records[column].astype(str), normalize="index")
    fig, ax = plt.subplots(figsize=(5.2, 0.5 + 0.45 * len(table)))
    left = np.zeros(len(table))
    cmap = plt.get_cmap("tab20")
    for i, level in enumerate(table.columns[:20]):
        ax.barh(table.index, table[level], left=left, color=cmap(i % 20), label=str(level)[:24])
        left += table[level].to_numpy()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of split")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    return svg_uri(fig)


def property_histograms(records: pd.DataFrame, properties: pd.DataFrame, names: list[str]) -> str:
    """One small histogram per property, split by split."""
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.1))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        values = properties[name].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        bins = np.histogram_bin_edges(finite, bins=30) if len(finite) else 10
        for split, color in SPLIT_COLORS.items():
            sel = (records["split"].to_numpy() == split) & np.isfinite(values)
            if sel.any():
                ax.hist(values[sel], bins=bins, density=True, alpha=0.5, color=color, label=split)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return svg_uri(fig)


def curve_panel(runs: list[dict], n_val: int | None) -> str:
    """Loss and accuracy curves of one or more runs (seeds): mean ± spread, with the noise band.

    ``runs`` are dicts with ``epoch``, ``loss``, ``val_loss``, ``val_accuracy`` arrays (any may
    be None). The band around val accuracy is ±1.96 binomial SE of a model of constant
    quality on ``n_val`` images (the noise floor).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
    for key, ax, color in (("loss", ax_loss, "#4c72b0"), ("val_loss", ax_loss, "#dd8452"),
                           ("val_accuracy", ax_acc, "#dd8452"), ("accuracy", ax_acc, "#4c72b0")):
        series = [r[key] for r in runs if r.get(key) is not None]
        if not series:
            continue
        n = min(len(s) for s in series)
        stack = np.stack([s[:n] for s in series])
        epochs = runs[0]["epoch"][:n]
        with warnings.catch_warnings():  # an epoch that is NaN in every run (a diverged one) stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0)
            sd = np.nanstd(stack, axis=0)
        ax.plot(epochs, mean, color=color, lw=1.4, label=key + (f" (mean of {len(series)})" if len(series) > 1 else ""))
        if len(series) > 1:
            ax.fill_between(epochs, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
        if key == "val_accuracy" and n_val:
            p = np.clip(mean, 1 / n_val, 1 - 1 / n_val)
            se = 1.96 * np.sqrt(p * (1 - p) / n_val)
            trend = pd.Series(mean).rolling(5, center=True, min_periods=1).mean().to_numpy()
            ax.fill_between(epochs, trend - se, trend + se, color="#999999", alpha=0.25, lw=0,
                            label=f"noise floor (n={n_val})")
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7, frameon=False)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return svg_uri(fig)


def churn_heatmap(correct: np.ndarray, max_images: int = 300) -> str:
    """Images (rows, most changeable first) x epochs: right (light) or wrong (dark)."""
    flips = (correct[1:] != correct[:-1]).sum(axis=0) if len(correct) > 1 else np.zeros(correct.shape[1])
    order = np.argsort(-flips, kind="stable")[:max_images]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.imshow(correct[:, order].T, aspect="auto", cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val image (most flips first)")
    ax.set_title("right (light) / wrong (dark) per val image and epoch", fontsize=9)
    ax.tick_params(labelsize=7)
    return svg_uri(fig)


def subgroup_loss(losses: np.ndarray, index: pd.DataFrame, column: str) -> str:
    """Mean val loss per level of ``column`` at each epoch."""
    fig, ax = plt.subplots(figsize=(5, 2.8))
    values = index[column].astype(str).to_numpy()
    for level in pd.unique(values)[:10]:
        ax.plot(losses[:, values == level].mean(axis=1), lw=1.2, label=f"{level} ({(values == level).sum()})")
    ax.set_xlabel("epoch")
    ax.set_title(f"val loss by {column}", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.tick_params(labelsize=7)
    return svg_uri(fig)


def trial_intervals(arms: list[dict]) -> str:
    """The remedy comparison: per arm, the change vs baseline with its 95 % interval.

    ``arms`` are dicts with ``name``, ``verdict`` and ``changes`` (measure -> {mean, ci95}); panels
    show val-loss volatility and churn (% change, lower is better) and final val AUROC (difference).
    """
    colors = {"helps": "#2e8b57", "no_effect": "#7f8c8d", "hurts": "#c0392b"}
    panels = (("val_loss_volatility", "val-loss volatility, % change", 100),
              ("churn", "churn, % change", 100), ("final_auroc", "final val AUROC, difference", 1))
    fig, axes = plt.subplots(1, 3, figsize=(11, 0.55 * len(arms) + 1.3), sharey=True)
    y = np.arange(len(arms))[::-1]
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        for yi, arm in zip(y, arms, strict=True):
            c = arm["changes"].get(key) or {}
            mean, ci = c.get("mean"), c.get("ci95") or [None, None]
            if mean is None:
                continue
            lo = ci[0] if ci[0] is not None else mean
            hi = ci[1] if ci[1] is not None else mean
            color = colors.get(arm["verdict"], "#333333")
            ax.plot([lo * scale, hi * scale], [yi, yi], color=color, lw=2.2)
            ax.plot([mean * scale], [yi], "o", color=color, ms=5)
        ax.axvline(0, color="#444444", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([f"{a['name']} ({a['verdict']})" for a in arms], fontsize=8)
    fig.tight_layout()
    return svg_uri(fig)
