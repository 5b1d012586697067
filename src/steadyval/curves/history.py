"""History: the one shape every reader produces and the analysis consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Canonical per-epoch columns (Keras CSVLogger names).
CANONICAL = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "val_auc", "lr")


@dataclass
class History:
    """Per-epoch metrics of one run, and, when known, every val image's probability."""

    source: str
    metrics: pd.DataFrame  # one row per epoch; columns from CANONICAL plus any others
    val_size: int | None = None
    val_probs: np.ndarray | None = None  # (E, n_val)
    val_index: pd.DataFrame | None = None  # n_val rows: label (0/1), path, subgroup columns
    notes: list[str] = field(default_factory=list)
    config: dict | None = None  # the TrainConfig of a steadyval run

    @property
    def n_epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.metrics)

    def column(self, name: str) -> np.ndarray | None:
        """A metric as a float array, or None when the log does not have it."""
        if name not in self.metrics:
            return None
        values = pd.to_numeric(self.metrics[name], errors="coerce").to_numpy(dtype=float)
        return None if np.isnan(values).all() else values

    @property
    def per_image(self) -> bool:
        """True when per-image validation predictions are available."""
        return self.val_probs is not None and self.val_index is not None and self.val_probs.size > 0
