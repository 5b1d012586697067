"""The Dataset: the one typed result of ingest that every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class UnreadableFile:
    """A file that was left out, and why."""

    path: str
    reason: str


@dataclass
class Dataset:
    """Records, decoded images, properties and hashes of one binary-classification dataset.

    ``records`` has one row per usable image, in the same order as ``images``: ``path``
    (as shown to users), ``file`` (absolute path or ""), ``label`` (1 = positive class),
    ``label_name``, ``split`` (train/val/test), ``group`` ("" when unknown) and one
    column per metadata field listed in ``metadata``.
    """

    source: str
    kind: str
    records: pd.DataFrame
    images: np.ndarray  # (N, C, S, S) uint8
    properties: pd.DataFrame  # N rows
    hashes: np.ndarray  # (N, 8) uint8 packed 64-bit pHash
    classes: tuple[str, str]
    positive: str
    metadata: list[str]
    group_column: str | None
    image_size: int
    split_generated: bool = False
    cache_dir: Path | None = None  # where derived arrays (features) may be cached
    unreadable: list[UnreadableFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of usable images."""
        return len(self.records)

    def split_index(self, split: str) -> np.ndarray:
        """Row indices of one split ("train", "val" or "test")."""
        return np.flatnonzero(self.records["split"].to_numpy() == split)

    @property
    def categorical_metadata(self) -> list[str]:
        """Metadata columns that look like site / device / view (see ``split.categorical_columns``)."""
        from steadyval.data.split import categorical_columns

        return categorical_columns(self.records, self.metadata)

    @property
    def labels(self) -> np.ndarray:
        """(N,) int labels, 1 = positive class."""
        return self.records["label"].to_numpy(dtype=np.int64)

    def summary(self) -> dict[str, object]:
        """The ``dataset`` block of findings.json."""
        counts = self.records["split"].value_counts()
        return {
            "source": self.source,
            "kind": self.kind,
            "n_images": self.n,
            "n_train": int(counts.get("train", 0)),
            "n_val": int(counts.get("val", 0)),
            "n_test": int(counts.get("test", 0)),
            "n_unreadable": len(self.unreadable),
            "classes": list(self.classes),
            "positive": self.positive,
            "metadata": list(self.metadata),
            "group_column": self.group_column,
            "image_size": self.image_size,
            "channels": int(self.images.shape[1]) if self.n else 0,
            "split_generated": self.split_generated,
            "notes": list(self.notes),
        }
