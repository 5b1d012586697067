"""Batch augmentation: steadyval's (kornia's transforms in fewer passes) vs kornia's modules, side by side.

The reference is the pipeline the trainer used before: ``kornia.augmentation`` modules with
the same parameters (geometric: RandomAffine(20 deg, translate 0.1, scale 0.9-1.1, shear
0.1 rad) + RandomHorizontalFlip; intensity: RandomBrightness, RandomContrast, RandomGamma
(p=0.8 each), RandomGaussianNoise(std 0.03, p=0.5)), then the trainer's clamp. Both run on
the same (32, 3, S, S) batch in one process, alternating, several rounds; prints ms per
batch and the ratio. ``tests/train/test_augment.py`` checks the results are kornia's.

Measured 2026-11-27 on the 2-core AMD EPYC (AVX2), torch 2.13.0, kornia 0.9.0 (ms per batch
of 32, three rounds):

    64 px   geometric  kornia 6.3-8.2   steadyval 3.3-4.3   ~2x
    64 px   intensity  kornia 8.5-11.8  steadyval 2.6-3.8   ~3x
    224 px  geometric  kornia 44-55     steadyval 27-30     ~1.6x
    224 px  intensity  kornia 99-127    steadyval 38-43     ~2.7x

    python benchmarks/augment_speed.py [--sizes 64 224] [--rounds 3] [--batch 32]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from steadyval.train.augment import augment_batch, build_augmentation
from steadyval.train.trainer import tune_allocator


def kornia_pipeline(name: str) -> nn.Module:
    """The kornia modules with the recipe's parameters (the trainer's augmentation before)."""
    import kornia.augmentation as K

    if name == "geometric":
        return nn.Sequential(K.RandomAffine(degrees=20.0, translate=(0.1, 0.1), scale=(0.9, 1.1),
                                            shear=math.degrees(0.1), p=1.0), K.RandomHorizontalFlip(p=0.5))
    return nn.Sequential(K.RandomBrightness(brightness=(0.85, 1.15), p=0.8),
                         K.RandomContrast(contrast=(0.8, 1.2), p=0.8),
                         K.RandomGamma(gamma=(0.7, 1.4), p=0.8),
                         K.RandomGaussianNoise(mean=0.0, std=0.03, p=0.5))


def ms_per_batch(aug: nn.Module, x: torch.Tensor, n: int) -> float:
    for _ in range(3):
        augment_batch(aug, x)
    start = time.perf_counter()
    for _ in range(n):
        augment_batch(aug, x)
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    tune_allocator()  # as in training
    torch.manual_seed(0)
    print(f"ms per batch of {args.batch} RGB images ({torch.get_num_threads()} threads)")
    for size in args.sizes:
        x = torch.rand(args.batch, 3, size, size)
        n = max(5, 40 * 64 * 64 // (size * size))
        for name in ("geometric", "intensity"):
            ref, ours = kornia_pipeline(name), build_augmentation(name)
            rows = [(ms_per_batch(ref, x, n), ms_per_batch(ours, x, n)) for _ in range(args.rounds)]
            ratio = sorted(r / o for r, o in rows)[len(rows) // 2]
            print(f"  {size:4d} px  {name:9s}  kornia " + " ".join(f"{r:6.2f}" for r, _ in rows)
                  + "  steadyval " + " ".join(f"{o:6.2f}" for _, o in rows) + f"  median ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
