"""Matplotlib figures as inline SVG data URIs (no files, no network)."""

from __future__ import annotations

import base64
import io

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
