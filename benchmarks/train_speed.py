"""Training throughput: steadyval's trainer vs a plain PyTorch loop vs TF-Keras, side by side.

Same in-memory images, same model (the seed's Ex. 2: Conv32-Pool-Conv64-Pool-Flatten-
Dropout(0.5)-Dense), batch 32, Adam, at 64 px and 224 px, without and with the seed's
geometric augmentation (rotation 20 deg, shift 0.1, shear 0.1, zoom 0.1, horizontal flip).

- steadyval: ``steadyval.train.train`` (uint8 tensor in memory, index-sliced batches,
  augmentation of the whole batch (kornia's transforms, fused), every val image's probability
  recorded).
- plain torch: a ``Dataset`` returning one float image at a time with a per-image affine
  transform, batched by ``DataLoader`` (the usual tutorial loop).
- TF-Keras: ``model.fit`` on a tf.data pipeline with Keras augmentation layers, when
  ``tensorflow`` imports (an optional benchmark extra: pip install tensorflow-cpu).

Throughput is the median images/s over epochs 2-4 (the first warms up); Keras runs one
``fit`` call for all epochs, timed per epoch by a callback, so no per-call set-up counts. The monitoring cost is
what recording every val image adds to a plain aggregate validation pass, as a share of
the epoch. Targets: >= 1.0x TF-Keras without augmentation; >= 1.5x (64 px) and >= 2.5x
(224 px) with it; monitoring <= 5 % of an epoch.

Measured 2026-11-27 on a 2-core AMD EPYC with AVX2 only (no AVX-512, so fp32), torch
2.13.0, tensorflow-cpu 2.21, 1,024 images, at 4052dfa (img/s, one value per round; ratio
to TF-Keras; the plain-torch loop uses stock layers):

    64 px   none       ours 468, 683  plain torch 272, 230  TF-Keras 191, 197  2.46x, 3.47x
    64 px   geometric  ours 583, 603  plain torch 368, 221  TF-Keras 204, 224  2.86x, 2.69x
    224 px  none       ours  41,  39  plain torch  19,  17  TF-Keras  12,  13  3.27x, 3.08x
    224 px  geometric  ours  43,  44,  42 (--skip torch)    TF-Keras  22,  21,  21
                                                             1.97x, 2.09x, 1.99x (target 2.5x: not met)

Stop 15 (augmentation in fewer passes, 1.8x faster at 224 px: ~20 ms of a ~850 ms step),
one process, --skip torch, the machine in a slow phase: ours 36, 37, 38 img/s, TF-Keras 19,
19, 12 (its third fit in the process, as noted below): 1.95x, 1.91x, 3.06x, median 1.95x.
Not met; the saving is within this machine's noise at 224 px.

Stop 16 (2026-12-07), a 2-core AMD EPYC with AVX-512 and AVX512-BF16 (Zen 4), so precision
auto = bf16; tensorflow-cpu 2.21 (Keras 3.15), 1,024 images, 3 rounds, --skip torch at 224 px.
Before this stop's C kernels (eead51a): 224 px geometric ours 142, 122, 145 against TF-Keras
57, 53, 68: 2.48x, 2.29x, 2.12x, median 2.29x (not met). With them (pooling, dropout,
first-layer weight gradient, the training batch in one pass; at e930fff's code):

    64 px   none       ours 2166, 1642, 1845  plain torch 689, 669, 418  TF-Keras  912, 1020, 1100  median 1.68x
    64 px   geometric  ours 1959, 1653, 1588  plain torch 316, 254, 385  TF-Keras  587,  414,  679  median 3.34x
    224 px  none       ours  192,  190,  174                             TF-Keras   86,   51,   52  median 3.35x
    224 px  geometric  ours  196,  200,  196                             TF-Keras   51,   50,   51  median 3.83x

TF-Keras's rate here is bimodal from fit to fit (50-57 or 68-86 img/s at 224 px); against the
fastest geometric fit it made in any round this stop (77 img/s) ours at 196 is 2.55x. The runs
of that row this stop, as the kernels came in: pooling and batch 2.38x (rounds 2.38, 3.61,
2.36; ours 180-183); + dropout 3.51x (3.75, 2.35, 3.51; ours 178-185); + first-layer gradient
2.93x (2.70, 2.93, 3.13; ours 177-191, Keras 71, 62, 57); the table above 3.83x. Monitoring
stayed at 0.0 % of an epoch. fp32 here (the "fp32" column, what an AVX2 CPU runs): 76-88 img/s
at 224 px geometric, 1.0-1.8x TF-Keras.

Later that day (a new session on the same machine type), with the pooling's ReLU fused into
pool.c and the first block (convolution, pooling, ReLU) in one pass (block.c), at 5381df4,
3 rounds; 64 px with the plain torch loop, 224 px --skip torch:

    64 px   none       ours 2285, 2347, 2625  plain torch 424, 580, 563  TF-Keras 848, 815, 852  median 2.88x
    64 px   geometric  ours 2378, 2525, 2404  plain torch 509, 407, 549  TF-Keras 873, 895, 751  median 2.82x
    224 px  none       ours  223,  218,  227                             TF-Keras  87,  90,  51  median 2.57x
    224 px  geometric  ours  221,  201,  210                             TF-Keras  79,  75,  72  median 2.78x

TF-Keras was in its fast mode for most fits this time; every 224 px geometric round is above
2.5x against it (2.78, 2.68, 2.91), where the run before had one round at 2.40x (ours 187
against 78) with the median at 3.05x (rounds 3.53, 2.40, 3.05; ours 193, 187, 200). The fp32
column (what an AVX2 CPU runs) rose from 76-94 to 96-102 img/s at 224 px geometric. Monitoring
0.0 % at 224 px, 0.4-1.6 % at 64 px. The 224 px rows with the plain torch loop too, one
round each at d054e9b: none ours 208, plain torch 35, TF-Keras 75 (5.93x, 2.77x); geometric
ours 222, plain torch 34, TF-Keras 62 (6.56x, 3.55x).

An AVX2-only CPU, emulated on that machine (kernels built by a CC wrapper with
-march=x86-64-v3; ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2
for torch and TensorFlow; --precision fp32), 224 px geometric, 2 rounds: at 714efb6 ours 70, 65
against TF-Keras 50, 52 (1.32x); at c91339a (block.c in 8-wide groups without AVX-512) ours 80,
91 against 55, 54: 1.47x, 1.68x, median 1.57x. Not the 2.5x target: in fp32 the convolutions
(oneDNN, MKL) are the bound. The real AVX2-only machine has not been measured with the kernels.

An earlier run of both 224 px rows, two rounds each in one process, gave TF-Keras 22 and
then 13 img/s for the geometric row (2.09x, 3.28x; the 13 was that process's fourth fit);
the three rounds above (one process, --skip torch) agree at 21-22, so 1.99x is the figure.
Before 4052dfa (oneDNN's weight gradient for every convolution) the same row was ours 38
vs TF-Keras 21, 1.77x. Monitoring cost 0-0.9 % of an epoch. This machine's speed drifts by
up to 1.5x within an hour, hence rounds run back to back. TF-Keras runs 2.4-8.7x slower
here than the figures the targets were set with; our fp32 trainer about 1.4-2x slower than
on the AVX-512 machine of earlier sessions.

Where a 224 px step goes (stop 14, torch profiler and backward hooks, batch 32, ~785 ms):
the second convolution's backward 373 ms (dgrad ~140, GEMM weight gradient ~150 at ~92
GFLOP/s, im2col ~58), forward convolutions 122, the first layer's weight gradient 109, the
rest pooling, ReLU, dropout, head and augmentation. MKL's sgemm tops out at 100-110 GFLOP/s
here (2048^2 included); oneDNN's forward convolution reaches ~150. Measured and dropped that
stop (interleaved whole-step A/B): micro-batches of 1-16 images with gradient accumulation
(no gain), the first layer's weight gradient as a GEMM (1.04x, noise), channels-last flatten
with a permuted head weight (0.97-1.06x over repeats), im2col by one unfold copy (0.97-1.05x),
oneDNN's inner product for the GEMM (faster GEMM, but the operand transposes cost the gain).

On a GPU (``--device cuda --skip keras``, 2026-11-27, one NVIDIA H100 80GB, torch 2.11.0+cu130,
tensorflow not installed there; img/s, ours with bf16 autocast as precision=auto picks, then fp32):

    64 px   none       ours 9348 (fp32 10044)  plain torch 5714  1.64x
    64 px   geometric  ours 4479 (fp32  3830)  plain torch 2662  1.68x
    224 px  none       ours 7497 (fp32  6932)  plain torch 2685  2.79x
    224 px  geometric  ours 4076 (fp32  3711)  plain torch  962  4.24x

There the Ex. 2 model is too small to fill the GPU: 224 px trains nearly as fast as 64 px, so
a step's cost is launch and synchronisation overhead (the trainer reads the loss back every
step), and recording every val image cost 0-7.1 % of an epoch. Not tuned for the GPU yet.

    python benchmarks/train_speed.py [--n 1024] [--sizes 64 224] [--augment none geometric] [--rounds 3]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from steadyval.config import load_config
from steadyval.data import load_dataset
from steadyval.synthetic import SyntheticSpec, generate
from steadyval.train import train
from steadyval.train.models import build_model

EPOCHS = 4  # the first warms up; the median of the others is reported


def steadyval_rate(ds, size: int, aug: str, work: Path, precision: str,
                   device: str = "cpu") -> tuple[float, float, str]:
    cfg = load_config(sets=["preset=seed-ex2", f"epochs={EPOCHS}", "batch_size=32", f"image_size={size}",
                            f"augment={aug}", f"precision={precision}", f"device={device}"])
    out = work / f"run-{size}-{aug}-{precision}"
    run = train(ds, cfg, out)
    timings = np.genfromtxt(out / "timings.csv", delimiter=",", names=True)
    n_train = len(ds.split_index("train"))
    rate = n_train / float(np.median(timings["train_seconds"][1:]))
    return rate, monitoring_share(run, ds, size, timings, device), str(run.info["precision"])


def glibc_defaults() -> None:
    """Undo the trainer's allocator tuning so that the baselines run as they would alone."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD default
        libc.mallopt(-4, 65536)  # M_MMAP_MAX default
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD default
    except OSError:
        pass


def monitoring_share(run, ds, size: int, timings, device: str = "cpu") -> float:
    """Extra time of recording every val image, over an aggregate-only validation pass."""
    from steadyval.train.run import save_epoch
    from steadyval.train.trainer import _at_size, _predict, val_metrics

    model = build_model(run.config, ds.images.shape[1]).to(device)
    images = _at_size(ds.images, size)
    x_val = torch.from_numpy(images[ds.split_index("val")]).to(device)
    y_val = ds.labels[ds.split_index("val")]
    target = torch.from_numpy(y_val).float().to(device)
    mean = torch.tensor(0.5, device=device).view(1, 1, 1, 1)
    std = torch.tensor(0.25, device=device).view(1, 1, 1, 1)
    model.eval()
    reps = 3
    t = time.perf_counter()
    for _ in range(reps):  # what any trainer does: one forward pass, the mean loss
        with torch.inference_mode():
            logits = torch.cat([model((x_val[s:s + 512].float() / 255 - mean) / std).squeeze(1)
                                for s in range(0, len(x_val), 512)])
            F.binary_cross_entropy_with_logits(logits, target).item()
    bare = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):  # ours: per-image probabilities, metrics, files rewritten
        p, losses = _predict(model, x_val, y_val, mean, std)
        val_metrics(p, losses, y_val)
        save_epoch(run.dir, run.metrics, np.vstack([run.val_probs, p[None]]))
    full = (time.perf_counter() - t) / reps
    epoch = float(np.median(timings["train_seconds"][1:])) + bare
    return max(0.0, full - bare) / epoch


class PerImage(torch.utils.data.Dataset):
    """The tutorial loop: one image at a time, converted and transformed in Python."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool) -> None:
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.images[i]).float() / 255  # (C, S, S)
        if self.augment:
            angle = math.radians(np.random.uniform(-20, 20))
            shear = np.random.uniform(-0.1, 0.1)
            zoom = np.random.uniform(0.9, 1.1)
            tx, ty = np.random.uniform(-0.2, 0.2, 2)  # shift 0.1 of the size = 0.2 in [-1, 1]
            flip = -1.0 if np.random.rand() < 0.5 else 1.0
            c, s = math.cos(angle) / zoom, math.sin(angle) / zoom
            theta = torch.tensor([[c * flip, -s + shear, tx], [s * flip, c, ty]], dtype=torch.float32)
            grid = F.affine_grid(theta[None], [1, *x.shape], align_corners=False)
            x = F.grid_sample(x[None], grid, align_corners=False)[0]
        return (x - 0.5) / 0.25, torch.tensor(float(self.labels[i]))


def plain_model(channels: int, size: int) -> torch.nn.Module:
    """The seed's Ex. 2 network as the tutorials write it: stock layers, ReLU before the pool."""
    nn = torch.nn
    flat = 64 * (((size - 2) // 2 - 2) // 2) ** 2
    return nn.Sequential(nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(flat, 1))


def plain_torch_rate(ds, size: int, aug: str, device: str = "cpu") -> float:
    from steadyval.train.trainer import _at_size

    torch.manual_seed(0)
    images = _at_size(ds.images, size)[ds.split_index("train")]
    labels = ds.labels[ds.split_index("train")]
    model = plain_model(images.shape[1], size).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(PerImage(images, labels, aug != "none"), batch_size=32, shuffle=True,
                                         pin_memory=device != "cpu")
    rates = []
    for _ in range(EPOCHS):
        t = time.perf_counter()
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        rates.append(len(images) / (time.perf_counter() - t))
    return float(np.median(rates[1:]))


def keras_rate(ds, size: int, aug: str) -> float | None:
    try:
        import tensorflow as tf
        from tensorflow import keras
    except ImportError:
        return None
    from steadyval.train.trainer import _at_size

    tf.random.set_seed(0)
    images = _at_size(ds.images, size)[ds.split_index("train")].transpose(0, 2, 3, 1).astype(np.float32) / 255
    labels = ds.labels[ds.split_index("train")].astype(np.float32)
    layers = [keras.Input(shape=images.shape[1:])]
    if aug != "none":
        layers += [keras.layers.RandomRotation(20 / 360), keras.layers.RandomTranslation(0.1, 0.1),
                   keras.layers.RandomZoom(0.1), keras.layers.RandomFlip("horizontal")]
        if hasattr(keras.layers, "RandomShear"):  # Keras >= 3.8: the same work as ours
            layers.append(keras.layers.RandomShear(x_factor=0.1, y_factor=0.1))
    layers += [keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
               keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
               keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images)).batch(32)

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    model.fit(data, epochs=EPOCHS, verbose=0, callbacks=[timer])
    return len(images) / float(np.median(timer.seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="training images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--skip", nargs="*", default=[], choices=["torch", "keras"])
    parser.add_argument("--augment", nargs="+", default=["none", "geometric"], choices=["none", "geometric"])
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat each configuration, the three trainers back to back each time")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (TF-Keras always runs where it finds)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="ours's precision (auto: bf16 where the CPU has AVX512-BF16 or AMX); the fp32 "
                             "column runs too unless this is fp32")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="steadyval-train-bench-"))
    synthetic = generate(SyntheticSpec(n_train=args.n, n_val=args.n // 4, seed=0), work / "data")
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; {args.n} train images")
    print("median img/s of epochs 2-4; baselines run with glibc's default allocator settings")
    print(f"{'size':>4s} {'augment':>9s} {'ours':>6s} {'prec':>5s} {'ours fp32':>9s} {'torch':>6s} "
          f"{'keras':>6s} {'vs torch':>8s} {'vs keras':>8s} {'fp32 vs keras':>13s} {'monitoring':>10s}")
    nan = float("nan")
    ratios: dict[tuple[int, str], list[float]] = {}
    for size in args.sizes:
        ds = load_dataset(synthetic.path, image_size=size, cache_dir=work / "cache")
        for aug in args.augment:
            for _ in range(args.rounds):
                ours, monitor, prec = steadyval_rate(ds, size, aug, work, args.precision, args.device)
                fp32 = steadyval_rate(ds, size, aug, work, "fp32", args.device)[0] if prec != "fp32" else ours
                glibc_defaults()
                plain = plain_torch_rate(ds, size, aug, args.device) if "torch" not in args.skip else None
                tfk = keras_rate(ds, size, aug) if "keras" not in args.skip else None
                if tfk:
                    ratios.setdefault((size, aug), []).append(ours / tfk)
                print(f"{size:4d} {aug:>9s} {ours:6.0f} {prec:>5s} {fp32:9.0f} {plain or nan:6.0f} {tfk or nan:6.0f} "
                      f"{ours / plain if plain else nan:7.2f}x {ours / tfk if tfk else nan:7.2f}x "
                      f"{fp32 / tfk if tfk else nan:12.2f}x {monitor:10.1%}", flush=True)
    if args.rounds > 1 and ratios:
        print("median ratio to TF-Keras over rounds (each round's runs back to back, so drift in the "
              "machine's speed cancels):")
        for (size, aug), values in ratios.items():
            print(f"{size:4d} {aug:>9s} {float(np.median(values)):.2f}x  "
                  f"(rounds: {', '.join(f'{v:.2f}' for v in values)})")

if __name__ == "__main__":
    main()
