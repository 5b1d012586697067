"""Batch augmentation on the training device (kornia), drawn from torch's seeded RNG."""

from __future__ import annotations

import math

import torch
from torch import nn


def build_augmentation(name: str) -> nn.Module | None:
    """The kornia pipeline for an ``augment`` value; None for "none".

    geometric (seed Ex. 1): rotation 20 deg, shift 0.1, shear 0.1, zoom 0.1, horizontal flip.
    Keras's ImageDataGenerator reads shear_range=0.1 as 0.1 degrees, a no-op; it is taken
    here as 0.1 rad (5.7 deg), the shear the recipe evidently meant.
    intensity: brightness, contrast, gamma and Gaussian noise, for scanner differences.
    """
    if name == "none":
        return None
    import kornia.augmentation as K

    parts: list[nn.Module] = []
    if "geometric" in name:
        parts += [
            K.RandomAffine(degrees=20.0, translate=(0.1, 0.1), scale=(0.9, 1.1),
                           shear=math.degrees(0.1), p=1.0),
            K.RandomHorizontalFlip(p=0.5),
        ]
    if "intensity" in name:
        parts += [
            K.RandomBrightness(brightness=(0.85, 1.15), p=0.8),
            K.RandomContrast(contrast=(0.8, 1.2), p=0.8),
            K.RandomGamma(gamma=(0.7, 1.4), p=0.8),
            K.RandomGaussianNoise(mean=0.0, std=0.03, p=0.5),
        ]
    return nn.Sequential(*parts)


@torch.no_grad()
def augment_batch(aug: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Apply ``aug`` to a (B, C, H, W) float batch in [0, 1]."""
    if aug is None:
        return x
    return aug(x).clamp_(0.0, 1.0)
