"""steadyval's C kernels (max pooling, the training batch) vs torch's ops, side by side in one process.

Three measurements, each alternating the two versions round by round so that drift in the
machine's speed cancels:

- the pooling layer alone (``steadyval.train.pool``), forward + backward, on the seed's Ex. 2
  model's two pooling inputs (batch 32, channels-last) at each size, in float32 and bfloat16;
- making the training batch (``steadyval.train.augment.training_batch``: gather, geometric
  augmentation, normalisation, channels-last) against torch's six passes, 1 and 3 channels;
- whole training steps of the Ex. 2 model on one-channel images (geometric augmentation,
  Adam, batch 32, the precision ``auto`` picks or ``--precision``): the trainer's path against the same model with
  torch's layers (``nn.MaxPool2d``, ``nn.Conv2d`` first, ``nn.Dropout``) and the batch made
  by torch's passes, the same weights and images.

Pooling gives torch's numbers bit for bit (tests/train/test_pool.py); the batch without
resampling too, and with it grid_sample's to float rounding (tests/train/test_augment.py).

Measured 2026-12-07 on a 2-core AMD EPYC with AVX-512 and AVX512-BF16 (Zen 4), torch 2.13.0,
gcc 12, median of 5 interleaved rounds (ms; torch / ours):

    pooling alone, fwd + bwd   64 px: bf16 1.68x, 2.21x; fp32 1.74x, 1.93x (first, second pool)
                              224 px: bf16 1.93x, 2.03x; fp32 1.24x, 1.53x
    training batch, 1 channel  64 px: none 1.77x, geometric 1.67x
                              224 px: none 3.23x, geometric 3.45x (12.3 -> 3.7 ms)
    training batch, 3 channels 64 px: 3.23x, 1.86x; 224 px: 5.67x, 2.95x
    whole steps, bf16          64 px 26.8 -> 19.6 ms (1.39x), 224 px 306 -> 182 ms (1.64x)
    whole steps, fp32          64 px 36.3 -> 27.2 ms (1.30x), 224 px 492 -> 364 ms (1.37x)

The whole steps include dropout (torch's nn.Dropout against MaskDropout's C kernel) and the
first layer's weight gradient (oneDNN against conv.c). The fp32 rows are what an AVX2-only CPU
runs (precision auto picks fp32 there), measured here on AVX-512.

Later the same day (another session, same machine type), with the pooling's ReLU fused into
pool.c and the first block (convolution, pooling, ReLU) in one pass by block.c, the model run
layer by layer as the torch side:

    whole steps, bf16          64 px 21.3 -> 12.8 ms (1.64x), 224 px 262 -> 148 ms (1.79x)
    whole steps, fp32          64 px 33.3 -> 22.2 ms (1.50x), 224 px 493 -> 321 ms (1.53x)

Each of the two, A/B in whole steps against the code before it: the fused ReLU 1.06x (bf16,
224 px) and 1.04x (64 px); the fused block 1.07x at both sizes in bf16, 1.07x and 1.06x in fp32.

    python benchmarks/native_speed.py [--sizes 64 224] [--rounds 5] [--precision fp32] [--only steps]
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
from steadyval.train.augment import augment_batch, build_augmentation, training_batch
from steadyval.train.dropout import MaskDropout
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
    """``model`` with torch's own layers for those that have C kernels (same weights), run one by one
    (the first block not fused): nn.MaxPool2d then nn.ReLU, nn.Conv2d for the first layer, and
    nn.Dropout (torch's Bernoulli masks) for MaskDropout."""
    import copy

    stock = nn.Sequential(*copy.deepcopy(list(model)))  # layer by layer: no fused first block
    for i, layer in enumerate(stock):
        if isinstance(layer, MaxPool2d):
            stock[i] = nn.Sequential(nn.MaxPool2d(2), nn.ReLU(inplace=True)) if layer.relu else nn.MaxPool2d(2)
        elif i == 0:
            first = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size)
            first.load_state_dict(layer.state_dict())
            stock[i] = first.to(memory_format=torch.channels_last)
        elif isinstance(layer, MaskDropout):
            stock[i] = nn.Dropout(layer.p)
    return stock


def torch_batch(aug: nn.Module | None, images: torch.Tensor, idx: torch.Tensor, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """The training batch as the trainer made it with torch's ops."""
    x = augment_batch(aug, images[idx].float().div_(255))
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def batch_ms(make: object, aug: nn.Module, images: torch.Tensor, n: int) -> float:
    mean, std = torch.full((1, images.shape[1], 1, 1), 0.5), torch.full((1, images.shape[1], 1, 1), 0.25)
    start = time.perf_counter()
    for _ in range(n):
        make(aug, images, torch.randperm(len(images))[:32], mean, std)  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1000


def step_ms(model: nn.Module, optimizer: torch.optim.Optimizer, aug: nn.Module, images: torch.Tensor,
            y: torch.Tensor, bf16: bool, n: int, make: object) -> float:
    mean, std = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.25)
    start = time.perf_counter()
    for _ in range(n):
        xb = make(aug, images, torch.arange(32), mean, std)  # type: ignore[operator]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb).squeeze(1).float()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    return (time.perf_counter() - start) / n * 1000


def layer_and_batch_rows(sizes: list[int], rounds: int) -> None:
    print("pooling layer alone, forward + backward, ms per batch of 32 (torch / ours, per round)")
    for size in sizes:
        first = size - 2
        shapes = [(32, 32, first, first), (32, 64, first // 2 - 2, first // 2 - 2)]
        for dtype in (torch.float32, torch.bfloat16):
            for shape in shapes:
                x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
                n = max(5, 2_000_000_000 // (x.numel() * 64))
                for layer in (nn.MaxPool2d(2), MaxPool2d(2)) * 2:  # until the heap has grown: no page faults
                    layer_ms(layer, x, 2)
                rows = [(layer_ms(nn.MaxPool2d(2), x, n), layer_ms(MaxPool2d(2), x, n)) for _ in range(rounds)]
                ratio = statistics.median(t / o for t, o in rows)
                print(f"  {str(dtype)[6:]:8s} {str(list(shape)):20s} torch " + " ".join(f"{t:6.2f}" for t, _ in rows)
                      + "  ours " + " ".join(f"{o:6.2f}" for _, o in rows) + f"  median {ratio:.2f}x")
    print("making a training batch of 32 from 1,024 uint8 images, ms (torch / ours, per round)")
    for size in sizes:
        for channels in (1, 3):
            images = torch.randint(0, 256, (1024, channels, size, size), dtype=torch.uint8)
            for name in ("none", "geometric"):
                aug = build_augmentation(name)
                n = max(10, 400 * 64 * 64 // (size * size))
                for make in (torch_batch, training_batch) * 2:
                    batch_ms(make, aug, images, 3)
                rows = [(batch_ms(torch_batch, aug, images, n), batch_ms(training_batch, aug, images, n))
                        for _ in range(rounds)]
                ratio = statistics.median(t / o for t, o in rows)
                print(f"  {size:4d} px  {channels} ch  {name:9s}  torch " + " ".join(f"{t:6.2f}" for t, _ in rows)
                      + "  ours " + " ".join(f"{o:6.2f}" for _, o in rows) + f"  median {ratio:.2f}x")


def step_rows(sizes: list[int], rounds: int, precision: str) -> None:
    print(f"whole training steps, Ex. 2 model, 1 channel, geometric augmentation, {precision}, ms per step of 32")
    aug = build_augmentation("geometric")
    for size in sizes:
        ours = build_model(TrainConfig(model="cnn_dropout", image_size=size), 1).to(memory_format=torch.channels_last)
        stock = stock_copy(ours)
        optimizers = {id(m): torch.optim.Adam(m.parameters(), 1e-4) for m in (ours, stock)}
        images = torch.randint(0, 256, (32, 1, size, size), dtype=torch.uint8)
        y = (torch.arange(32) % 2).float()
        n = max(3, 60 * 64 * 64 // (size * size))
        bf16 = precision == "bf16"
        for model, make in ((ours, training_batch), (stock, torch_batch)):
            step_ms(model, optimizers[id(model)], aug, images, y, bf16, 2, make)
        rows = [(step_ms(stock, optimizers[id(stock)], aug, images, y, bf16, n, torch_batch),
                 step_ms(ours, optimizers[id(ours)], aug, images, y, bf16, n, training_batch))
                for _ in range(rounds)]
        ratio = statistics.median(t / o for t, o in rows)
        print(f"  {size:4d} px  torch " + " ".join(f"{t:6.1f}" for t, _ in rows) + "  ours "
              + " ".join(f"{o:6.1f}" for _, o in rows) + f"  median {ratio:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="of the whole steps (fp32: what an AVX2-only CPU runs)")
    parser.add_argument("--only", choices=["layers", "steps"], help="run one part")
    args = parser.parse_args()
    tune_allocator()  # as in training
    torch.manual_seed(0)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    probe = torch.zeros(1, 1, 2, 2).contiguous(memory_format=torch.channels_last)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {args.precision} = {precision}, "
          f"C kernel {'built' if fast_path(probe) else 'NOT available (STEADYVAL_NATIVE=0 or no compiler)'}")
    if not native.enabled() or not fast_path(probe):
        return
    if args.only in (None, "layers"):
        layer_and_batch_rows(args.sizes, args.rounds)
    if args.only in (None, "steps"):
        step_rows(args.sizes, args.rounds, precision)


if __name__ == "__main__":
    main()
