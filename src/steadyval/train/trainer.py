"""Dataset + TrainConfig -> Run: a fast, deterministic trainer that records every val image.

Speed comes from the data path, not the model: the uint8 images stay in one tensor on the
training device, a batch is an index slice, and conversion, augmentation (kornia's transforms)
and normalisation run on the whole batch, on the CPU in one C pass (``augment.training_batch``);
the small CNNs' first block (convolution, pooling, ReLU), pooling, dropout and first-layer
weight gradient also run C kernels there (``native``). Validation probabilities of every
image are recorded each epoch in large inference batches.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from steadyval._io import atomic_write_json
from steadyval._progress import progress_bar
from steadyval.config import TrainConfig, lineage_fields
from steadyval.data import Dataset
from steadyval.data.cache import refuse_inside
from steadyval.errors import ConfigError, DataError
from steadyval.train import native
from steadyval.train.augment import build_augmentation, training_batch
from steadyval.train.models import build_model, count_parameters
from steadyval.train.run import TIMING_COLUMNS, Run, save_epoch, save_static, val_metrics

# The C kernels the trainer's modules use on the CPU (steadyval.train.native).
KERNELS = ("batch", "block", "conv", "dropout", "pool")
# A completed run's training state, written with keep_state=True so that it can be resumed.
STATE_FILE = "state.pt"
# Inference batches hold about this many bytes of first-layer activations (512 images at
# 64 px; 41 at 224 px): large enough to amortise overheads, small enough not to page.
EVAL_ACTIVATION_BYTES = 2**28


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS (glibc only).

    Training allocates and frees the same large activation buffers every step. glibc
    serves blocks above its mmap threshold with fresh mmap'd pages, so each step page-faults
    them in again: measured here at 224 px, system time equalled user time and 7.9 M minor
    faults cost 2.4x throughput (22 -> 52 img/s); at 64 px 452 -> 588 img/s. The effect is
    process-wide and only keeps memory the process already used. Set STEADYVAL_MALLOPT=0
    to leave the allocator alone.
    """
    if os.environ.get("STEADYVAL_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from <malloc.h>
        return bool(libc.mallopt(m_trim_threshold, 2**30) and libc.mallopt(m_mmap_max, 0))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; refuse a device that is not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("The 'device' parameter of TrainConfig", "must be available on this machine",
                          f"'{name}' (no CUDA device)", "Use --set device=cpu or device=auto.")
    return torch.device(name)


@dataclass
class Tensors:
    """The training data as the trainer and the probes use it: uint8 on the device."""

    images: np.ndarray  # (N, C, S, S) uint8 at the training size
    x_train: torch.Tensor  # (n_train, C, S, S) uint8
    y_train: torch.Tensor  # (n_train,) float
    x_val: torch.Tensor  # (n_val, C, S, S) uint8
    y_val: np.ndarray  # (n_val,) int
    mean: torch.Tensor  # (1, C, 1, 1) per-channel mean of train in [0, 1]
    std: torch.Tensor  # (1, C, 1, 1)

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalised float batch in channels-last layout."""
        return ((x.float().div_(255) - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def prepare_tensors(dataset: Dataset, config: TrainConfig, device: torch.device) -> Tensors:
    """Resize once, move the uint8 images to the device, and measure the normalisation."""
    train_idx, val_idx = dataset.split_index("train"), dataset.split_index("val")
    images = _at_size(dataset.images, config.image_size)
    x_train = torch.from_numpy(images[train_idx]).to(device)
    flat = x_train.float().div_(255).transpose(0, 1).reshape(x_train.shape[1], -1)
    mean = flat.mean(1).view(1, -1, 1, 1)
    std = flat.std(1).clamp_min(1e-3).view(1, -1, 1, 1)
    return Tensors(images, x_train, torch.from_numpy(dataset.labels[train_idx]).float().to(device),
                   torch.from_numpy(images[val_idx]).to(device), dataset.labels[val_idx], mean, std)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> bf16 where the device computes it natively, else fp32.

    bf16 autocast trains the seed's Ex. 2 model 1.6x faster on a CPU with AVX512-BF16
    (788 -> 1276 img/s at 64 px, 60 -> 101 at 224 px, measured here); without native
    support it is emulated and slower, so 'auto' checks the hardware.
    """
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "fp32"
        return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"
    return "fp32"


def can_resume(source: Run, config: TrainConfig) -> bool:
    """True when ``config``'s training is ``source``'s continued: the same config but for more
    epochs, no LR schedule that depends on the total (warm-up + cosine, one-cycle), and
    ``source`` ran all its epochs and kept its training state (``train(..., keep_state=True)``).
    """
    return (lineage_fields(source.config) == lineage_fields(config) and config.epochs > source.config.epochs
            and config.schedule in ("none", "plateau") and source.status == "completed"
            and len(source.metrics) == len(source.val_probs) == source.config.epochs
            and (source.dir / STATE_FILE).exists())


def train(dataset: Dataset, config: TrainConfig, out: Path | str, progress: bool = False,
          keep_state: bool = False, resume: Run | None = None) -> Run:
    """Train one model on ``dataset``'s train split, validating every epoch; write ``out``.

    Stops early (``early_stopping``), on a non-finite loss (status ``nonfinite``), or on
    Ctrl-C (status ``interrupted``, files complete up to the last finished epoch, then
    KeyboardInterrupt is re-raised).

    ``keep_state`` also writes ``state.pt`` (weights, optimizer, scheduler, EMA, random
    generators, early-stopping state) when the run completes, so that ``resume`` can continue
    it: given a ``source`` run for which :func:`can_resume` holds, training starts after its
    last epoch, with its epochs as the first rows. On the CPU that continuation is the run
    trained for ``config.epochs`` from the start, bit for bit (``tests/train/test_resume.py``).
    """
    out = Path(out)
    if resume is not None and not can_resume(resume, config):
        raise ValueError(f"{resume.dir} cannot be continued into this config's training (see can_resume)")
    if dataset.kind != "npz":
        data_root = Path(dataset.source)
        refuse_inside(out, data_root if data_root.is_dir() else data_root.parent, "the run directory")
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    train_idx, val_idx = dataset.split_index("train"), dataset.split_index("val")
    if len(val_idx) == 0 or len(set(dataset.labels[train_idx])) < 2:
        raise DataError(f"DATA '{dataset.source}'", "training needs both classes in train and a val split",
                        f"{len(train_idx)} train / {len(val_idx)} val images",
                        "Give a split with both classes, or let steadyval make one.")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    tune_allocator()
    precision = resolve_precision(config.precision, device)
    bf16 = precision == "bf16"
    # NHWC is what oneDNN (CPU) and tensor cores (GPU) want: +20 % at 64 px measured here.
    fmt = torch.channels_last

    tensors = prepare_tensors(dataset, config, device)
    x_train, x_val, y_train, mean, std = tensors.x_train, tensors.x_val, tensors.y_train, tensors.mean, tensors.std
    y_val = tensors.y_val
    images = tensors.images

    counts = torch.bincount(y_train.long(), minlength=2).float()
    class_w = (len(y_train) / (2 * counts)) if config.class_weights else torch.ones(2, device=device)
    sample_w = class_w.to(device)[y_train.long()]
    model = build_model(config, in_channels=images.shape[1]).to(device, memory_format=fmt)
    aug = build_augmentation(config.augment)
    if aug is not None:
        aug = aug.to(device)
    optimizer = _optimizer(model, config)
    steps = math.ceil(len(train_idx) / config.batch_size)
    scheduler = _scheduler(optimizer, config, steps)
    ema = None
    if config.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)

    val_index = _val_index(dataset, val_idx)
    save_static(out, config, val_index, str(device))
    rows: list[dict[str, float]] = []
    probs: list[np.ndarray] = []
    info: dict[str, object] = {"status": "running", "n_train": len(train_idx), "n_val": len(val_idx),
                               "parameters": count_parameters(model), "positive": dataset.positive,
                               "classes": list(dataset.classes), "steps_per_epoch": steps,
                               "precision": precision,
                               # the C kernels built here, which the layers use where they apply
                               # (results differ from torch's in rounding: the resampled batch, the first block)
                               "native_kernels": native.built(KERNELS) if device.type == "cpu" else []}
    stopper = EarlyStopping(config)
    best_state = copy.deepcopy(model.state_dict())
    first = 0
    if resume is not None:
        first = len(resume.metrics)
        best_state = _restore(resume, model, optimizer, scheduler, ema, gen, stopper, device)
        rows = _source_rows(resume)
        probs = list(resume.val_probs.astype(np.float32))
        info["resumed_from"] = str(resume.dir)
    start = time.perf_counter()
    try:
        with progress_bar((config.epochs - first) * steps, "training", progress) as advance:
            for epoch in range(first, config.epochs):
                t0 = time.perf_counter()
                model.train()
                order = (torch.multinomial(sample_w.cpu(), len(train_idx), True, generator=gen)
                         if config.sampler == "balanced" else torch.randperm(len(train_idx), generator=gen))
                loss_sum = correct = seen = 0.0
                nonfinite = None
                for s in range(steps):
                    idx = order[s * config.batch_size:(s + 1) * config.batch_size].to(device)
                    xb = training_batch(aug, x_train, idx, mean, std)  # (B, C, S, S) channels-last
                    yb = y_train[idx]
                    # Mixed precision: weights, loss and validation stay fp32.
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = model(xb).squeeze(1).float()
                    per_image = F.binary_cross_entropy_with_logits(logits, yb, reduction="none")
                    weights = class_w[yb.long()] if config.sampler == "shuffle" else 1.0
                    loss = (per_image * weights).mean()
                    if not torch.isfinite(loss):
                        nonfinite = f"training loss became {loss.item()} at epoch {epoch}, step {s}"
                        break
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    if scheduler is not None and config.schedule in ("warmup_cosine", "onecycle"):
                        scheduler.step()
                    loss_sum += per_image.detach().sum().item()
                    correct += ((logits.detach() > 0) == (yb > 0.5)).sum().item()
                    seen += len(idx)
                    advance(1)
                if nonfinite:
                    info.update(status="nonfinite", stop_reason=nonfinite)
                    break
                t1 = time.perf_counter()
                eval_model = ema.module if ema is not None else model
                p_val, val_losses = _predict(eval_model, x_val, y_val, mean, std)
                row = {"epoch": epoch, "loss": loss_sum / seen, "accuracy": correct / seen,
                       **val_metrics(p_val, val_losses, y_val),
                       "lr": optimizer.param_groups[0]["lr"],
                       "train_seconds": t1 - t0, "val_seconds": time.perf_counter() - t1}
                rows.append(row)
                probs.append(p_val)
                save_epoch(out, pd.DataFrame(rows), np.stack(probs))
                advance(0, f"epoch {epoch + 1}/{config.epochs} loss {row['loss']:.3f} "
                           f"val_loss {row['val_loss']:.3f} val_auc {row['val_auc']:.3f}")
                if not math.isfinite(row["val_loss"]):
                    info.update(status="nonfinite", stop_reason=f"val loss became {row['val_loss']} at epoch {epoch}")
                    break
                if scheduler is not None and config.schedule == "plateau":
                    scheduler.step(row["val_loss"])
                if stopper.update(row, epoch):
                    best_state = copy.deepcopy(eval_model.state_dict())
                if config.early_stopping and stopper.should_stop:
                    info.update(status="early_stopped", stop_reason=stopper.reason)
                    break
            else:
                info.update(status="completed", stop_reason=f"ran all {config.epochs} epochs")
    except KeyboardInterrupt:
        info.update(status="interrupted", stop_reason="interrupted by the user (Ctrl-C)")
        _finish(out, model, ema, best_state, config, stopper, info, start, rows)
        raise
    if keep_state and info["status"] == "completed":
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "ema": ema.state_dict() if ema is not None else None,
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                    "stopper": vars(stopper)}, out / STATE_FILE)
    _finish(out, model, ema, best_state, config, stopper, info, start, rows)
    return Run(out, config, pd.DataFrame(rows), np.stack(probs) if probs else np.zeros((0, len(val_idx))),
               val_index, info)


def _restore(source: Run, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: object | None,
             ema: nn.Module | None, gen: torch.Generator, stopper: EarlyStopping, device: torch.device) -> dict:
    """Load ``source``'s training state into the fresh objects; return its best weights."""
    # On the CPU: the generator states must stay CPU byte tensors; load_state_dict moves the rest.
    state = torch.load(source.dir / STATE_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])  # type: ignore[attr-defined]
    if ema is not None:
        ema.load_state_dict(state["ema"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    vars(stopper).update(state["stopper"])
    return torch.load(source.dir / "best.pt", map_location=device, weights_only=True)


def _source_rows(source: Run) -> list[dict[str, float]]:
    """``source``'s epochs as the trainer's rows (metrics, with the timings where they were kept)."""
    # The Run train() returns holds the timings already; one read back by load_run does not.
    metrics = source.metrics.drop(columns=list(TIMING_COLUMNS), errors="ignore")
    timings = source.dir / "timings.csv"
    if timings.exists():
        metrics = metrics.merge(pd.read_csv(timings), on="epoch", how="left")
    for column in TIMING_COLUMNS:
        metrics[column] = metrics[column].fillna(0.0) if column in metrics else 0.0
    return metrics.to_dict("records")


def _finish(out: Path, model: nn.Module, ema: nn.Module | None, best_state: dict, config: TrainConfig,
            stopper: EarlyStopping, info: dict, start: float, rows: list[dict[str, float]]) -> None:
    final = ema.module if ema is not None else model
    torch.save(final.state_dict(), out / "last.pt")
    torch.save(best_state, out / "best.pt")
    if config.early_stopping and config.restore_best:
        final.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    train_s = sum(r["train_seconds"] for r in rows)
    val_s = sum(r["val_seconds"] for r in rows)
    info.update(best_epoch=stopper.best_epoch, best_value=stopper.best, monitor=config.monitor,
                epochs_run=len(rows), seconds=seconds,
                monitoring_share=val_s / max(train_s, 1e-9))
    atomic_write_json(out / "run.json", info)


class EarlyStopping:
    """Tracks the (optionally smoothed) monitored metric; records why it stopped."""

    def __init__(self, config: TrainConfig) -> None:
        self.monitor, self.patience, self.smoothing = config.monitor, config.patience, config.smoothing
        self.sign = 1.0 if config.monitor == "val_loss" else -1.0  # lower is better after sign
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.smoothed: float | None = None
        self.wait = 0
        self.reason = ""

    def update(self, row: dict[str, float], epoch: int) -> bool:
        """Feed one epoch; True when it is the new best."""
        value = row[self.monitor]
        if not math.isfinite(value):
            return False
        self.smoothed = value if self.smoothed is None else (
            self.smoothing * self.smoothed + (1 - self.smoothing) * value)
        if self.best is None or self.sign * self.smoothed < self.sign * self.best:
            self.best, self.best_epoch, self.wait = self.smoothed, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        if self.wait >= self.patience:
            self.reason = (f"{self.monitor} did not improve in the last {self.patience} epochs. "
                           f"Best: {self.best:.4f} at epoch {self.best_epoch}")
            return True
        return False


@torch.inference_mode()
def _predict(model: nn.Module, x: torch.Tensor, y: np.ndarray, mean: torch.Tensor,
             std: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and per-image BCE losses of every image, in large batches."""
    model.eval()
    batch = max(16, min(512, EVAL_ACTIVATION_BYTES // (32 * 4 * x.shape[-1] * x.shape[-2])))
    logits = torch.cat([
        model(((x[s:s + batch].float().div_(255) - mean) / std).contiguous(memory_format=torch.channels_last))
        .squeeze(1) for s in range(0, len(x), batch)]).float()
    target = torch.from_numpy(y).float().to(logits.device)
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return torch.sigmoid(logits).cpu().numpy(), losses.cpu().numpy()


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps: int) -> object | None:
    total = config.epochs * steps
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    if config.schedule == "warmup_cosine":
        warm = config.warmup_epochs * steps

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5,
                                                          patience=max(1, config.patience // 2))
    return None


def _at_size(images: np.ndarray, size: int) -> np.ndarray:
    """The cached images at the training resolution (resized once, kept uint8)."""
    if images.shape[-1] == size:
        return images
    x = torch.from_numpy(images).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def _val_index(dataset: Dataset, val_idx: np.ndarray) -> pd.DataFrame:
    cols = ["path", "label", "label_name", "group", *dataset.metadata]
    return dataset.records.iloc[val_idx][cols].reset_index(drop=True)
