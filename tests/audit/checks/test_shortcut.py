"""data.shortcut on file size: an export difference is a shortcut, a content difference is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from steadyval.audit import audit
from steadyval.findings import Severity


def _dataset(root: Path, *, noise: tuple[float, float], compress: tuple[int, int], n: int = 60) -> Path:
    """``n`` 48 px images per class; class k gets pixel noise ``noise[k]`` and PNG level ``compress[k]``."""
    rng = np.random.default_rng(0)
    rows = []
    for label in (0, 1):
        for i in range(n):
            base = np.full((48, 48), 110.0) + 25 * np.sin(np.arange(48) / (3 + i % 5))[None, :]
            pixels = np.clip(base + rng.normal(0, noise[label], base.shape), 0, 255).astype(np.uint8)
            name = f"c{label}_{i}.png"
            Image.fromarray(pixels).save(root / name, compress_level=compress[label])
            rows.append({"path": name, "label": label, "patient_id": f"p{label}_{i}"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _file_size_findings(manifest: Path, cache: Path):
    result = audit(manifest, image_size=48, cache_dir=cache)
    return [f for f in result.findings if f.id == "data.shortcut" and f.evidence.get("property") == "file_bytes"]


def test_a_class_exported_with_other_compression_is_a_shortcut(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    found = _file_size_findings(_dataset(tmp_path / "d", noise=(8, 8), compress=(9, 0)), tmp_path / "cache")
    assert found and found[0].severity == Severity.MEDIUM
    assert found[0].evidence["auroc"] > 0.9 and found[0].evidence["auroc_beyond_content"] > 0.9


def test_file_size_that_follows_the_picture_is_not_a_shortcut(tmp_path: Path) -> None:
    # Same encoder settings; one class is noisier, so its files are larger because of what
    # they show. The raw size separates the classes, what content leaves over does not.
    (tmp_path / "d").mkdir()
    manifest = _dataset(tmp_path / "d", noise=(4, 30), compress=(6, 6))
    sizes = pd.read_csv(manifest).assign(b=lambda t: [(tmp_path / "d" / p).stat().st_size for p in t["path"]])
    assert sizes.groupby("label")["b"].median().diff().iloc[-1] > 0  # the raw signal is there
    assert _file_size_findings(manifest, tmp_path / "cache") == []
