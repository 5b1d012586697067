"""Image features for the model-based checks (label noise, domain classifier).

Raw pixels are too weak: a logistic regression on them reaches only 0.53-0.69
cross-validated accuracy on real cell and histology images (DESIGN.md). Two layers of
fixed random convolution filters with global mean and max pooling are translation
invariant (a lesion anywhere in the lung counts), need no training and no download,
and cost a few seconds for 10k images on two cores; thumbnails and the properties add
layout and intensity.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
import torch.nn.functional as F

from steadyval._io import atomic_write_bytes
from steadyval.data import Dataset
from steadyval.data.properties import CONTENT_PROPERTIES

CHUNK = 1024


FEATURES_VERSION = 1


def image_features(dataset: Dataset, seed: int = 0) -> np.ndarray:
    """(N, F) standardised float32 features, cached beside the decoded images.

    The cache key is a digest of the pixels, the properties and the seed, so any change
    to the images recomputes them; a cached re-run of a 10k-image audit skips ~6 s here.
    """
    digest = hashlib.blake2b(np.ascontiguousarray(dataset.images).tobytes(), digest_size=16)
    digest.update(f"{FEATURES_VERSION}|{seed}|{dataset.images.shape}".encode())
    path = (dataset.cache_dir / "features" / f"{digest.hexdigest()}.npy"
            if dataset.cache_dir else None)
    if path is not None and path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed and replaced
    feats = _compute(dataset, seed)
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write_bytes(path, buf.getvalue())
    return feats


def _compute(dataset: Dataset, seed: int) -> np.ndarray:
    images = dataset.images
    n, c = images.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    w1 = _zero_mean(torch.randn(32, c, 5, 5, generator=gen))
    w2 = _zero_mean(torch.randn(64, 32, 3, 3, generator=gen)) / 3.0
    flat = images.reshape(n, c, -1)
    mean = float(flat.mean()) if n else 0.0
    std = float(flat.std()) + 1e-6 if n else 1.0
    parts = []
    with torch.inference_mode():
        for start in range(0, n, CHUNK):
            x = (torch.from_numpy(np.ascontiguousarray(images[start:start + CHUNK])).float() - mean) / std
            x = F.adaptive_avg_pool2d(x, 64) if x.shape[-1] > 64 else x  # (B, C, <=64, <=64)
            h1 = F.relu(F.conv2d(x, w1, stride=2, padding=2))  # (B, 32, 32, 32)
            h2 = F.relu(F.conv2d(F.avg_pool2d(h1, 2), w2, padding=1))  # (B, 64, 16, 16)
            thumb = F.adaptive_avg_pool2d(x.mean(dim=1, keepdim=True), 8).flatten(1)  # (B, 64)
            parts.append(torch.cat([
                h1.mean((2, 3)), h1.amax((2, 3)), h2.mean((2, 3)), h2.amax((2, 3)), thumb,
            ], dim=1).numpy())
    conv = np.concatenate(parts) if parts else np.zeros((0, 256), dtype=np.float32)
    props = dataset.properties[list(CONTENT_PROPERTIES)].to_numpy(dtype=np.float32)
    feats = np.concatenate([conv, props], axis=1)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    return feats.astype(np.float32)


def _zero_mean(w: torch.Tensor) -> torch.Tensor:
    # Zero-mean filters respond to structure, not to overall brightness.
    return w - w.mean(dim=(1, 2, 3), keepdim=True)


def out_of_fold_probabilities(features: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int,
                              n_splits: int) -> np.ndarray:
    """(N, 2) class probabilities, each from a model that never saw that row's group.

    The cheap model behind the label-noise check and the train-vs-val domain classifier:
    a strongly regularised logistic regression on :func:`image_features`.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    model = LogisticRegression(C=0.05, max_iter=2000, solver="newton-cholesky")
    return cross_val_predict(model, features, y, cv=cv, groups=groups, method="predict_proba")
