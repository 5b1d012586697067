"""Max pooling: steadyval's C kernel (steadyval.train.pool) vs torch's, side by side in one process.

Two measurements, each alternating the two versions round by round so that drift in the
machine's speed cancels:

- the pooling layer alone, forward + backward, on the seed's Ex. 2 model's two pooling
  inputs (batch 32, channels-last) at each size, in float32 and bfloat16;
- whole training steps of the Ex. 2 model (geometric augmentation, Adam, batch 32, the
  precision ``auto`` picks), the same weights and batch, once with ``nn.MaxPool2d``.

Both versions give the same numbers bit for bit (tests/train/test_pool.py); only time differs.

    python benchmarks/pool_speed.py [--sizes 64 224] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from steadyval.config import TrainConfig
from steadyval.train import native
from steadyval.train.augment import augment_batch, build_augmentation
from steadyval.train.models import build_model
from steadyval.train.pool import MaxPool2d, fast_path
from steadyval.train.trainer import resolve_precision, tune_allocator


def layer_ms(layer: nn.Module, x: torch.Tensor, n: int) -> float:
    x = x.detach().requires_grad_(True)
    g = torch.ones(x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2, dtype=x.dtype)
    g = g.contiguous(memory_format=torch.channels_last)
    layer(x).backward(g)
    start = time.perf_counter()
    for _ in range(n):
        layer(x).backward(g)
    return (time.perf_counter() - start) / n * 1000


def stock_copy(model: nn.Sequential) -> nn.Sequential:
    """``model`` with its pooling layers swapped for ``nn.MaxPool2d`` (same weights)."""
    import copy

    stock = copy.deepcopy(model)
    for i, layer in enumerate(stock):
        if isinstance(layer, MaxPool2d):
            stock[i] = nn.MaxPool2d(2)
    return stock


def step_ms(model: nn.Module, optimizer: torch.optim.Optimizer, aug: nn.Module, x8: torch.Tensor,
            y: torch.Tensor, bf16: bool, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        xb = augment_batch(aug, x8.float().div_(255))
        xb = ((xb - 0.5) / 0.25).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb).squeeze(1).float()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tune_allocator()  # as in training
    torch.manual_seed(0)
    precision = resolve_precision("auto", torch.device("cpu"))
    probe = torch.zeros(1, 1, 2, 2).contiguous(memory_format=torch.channels_last)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision auto = {precision}, "
          f"C kernel {'built' if fast_path(probe) else 'NOT available (STEADYVAL_NATIVE=0 or no compiler)'}")
    if not native.enabled() or not fast_path(probe):
        return
    print("pooling layer alone, forward + backward, ms per batch of 32 (torch / ours, per round)")
    for size in args.sizes:
        first = size - 2
        shapes = [(32, 32, first, first), (32, 64, first // 2 - 2, first // 2 - 2)]
        for dtype in (torch.float32, torch.bfloat16):
            for shape in shapes:
                x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
                n = max(5, 2_000_000_000 // (x.numel() * 64))
                for layer in (nn.MaxPool2d(2), MaxPool2d(2)) * 2:  # until the heap has grown: no page faults
                    layer_ms(layer, x, 2)
                rows = [(layer_ms(nn.MaxPool2d(2), x, n), layer_ms(MaxPool2d(2), x, n)) for _ in range(args.rounds)]
                ratio = statistics.median(t / o for t, o in rows)
                print(f"  {str(dtype)[6:]:8s} {str(list(shape)):20s} torch " + " ".join(f"{t:6.2f}" for t, _ in rows)
                      + "  ours " + " ".join(f"{o:6.2f}" for _, o in rows) + f"  median {ratio:.2f}x")
    print(f"whole training steps, Ex. 2 model, geometric augmentation, {precision}, ms per step of 32")
    aug = build_augmentation("geometric")
    for size in args.sizes:
        ours = build_model(TrainConfig(model="cnn_dropout", image_size=size), 3).to(memory_format=torch.channels_last)
        stock = stock_copy(ours)
        optimizers = {id(m): torch.optim.Adam(m.parameters(), 1e-4) for m in (ours, stock)}
        x8 = torch.randint(0, 256, (32, 3, size, size), dtype=torch.uint8)
        y = (torch.arange(32) % 2).float()
        n = max(3, 60 * 64 * 64 // (size * size))
        for model in (ours, stock):
            step_ms(model, optimizers[id(model)], aug, x8, y, precision == "bf16", 2)
        rows = [(step_ms(stock, optimizers[id(stock)], aug, x8, y, precision == "bf16", n),
                 step_ms(ours, optimizers[id(ours)], aug, x8, y, precision == "bf16", n))
                for _ in range(args.rounds)]
        ratio = statistics.median(t / o for t, o in rows)
        print(f"  {size:4d} px  torch " + " ".join(f"{t:6.1f}" for t, _ in rows) + "  ours "
              + " ".join(f"{o:6.1f}" for _, o in rows) + f"  median {ratio:.3f}x")


if __name__ == "__main__":
    main()
