"""The trainer on a CUDA device: every model and option trains, saves and reloads; same seed twice.

CI and the build machine have no GPU, so this is run by hand where one is lent. For each
model (the seed's Ex. 1 and Ex. 2 CNNs, MONAI ResNet-18 and DenseNet-121) it trains a few
epochs on generated 64 px images with every option that has device-side code (kornia
augmentation on the GPU, class weights, balanced sampler, EMA of the weights, warm-up +
cosine schedule, gradient clipping, early stopping, bf16 autocast and fp32), then checks
that the run completed, that every metric and every val image's probability is finite,
and that the saved weights load into a CPU model. Then it trains the same seed twice and
reports whether the metrics agree exactly (CUDA kernels are not all deterministic; the
CPU guarantee is tested in CI), and continues a run with its kept state for as many epochs
again (added after the H100 session below, so not yet run on a GPU). Exits non-zero on any
failed check.

Measured 2026-11-27 on one NVIDIA H100 80GB (torch 2.11.0+cu130, kornia 0.9.0, MONAI 1.6.1),
800 images, 3 epochs: all six cases ok (bf16 autocast chosen by precision=auto; the SGD lr
0.5 case completed at val AUROC 0.50), ResNet-18 9.0 s and DenseNet-121 6.7 s including
cuDNN warm-up; the same seed twice gave identical metrics. The same session ran the test
suite with device=auto (so CUDA) and 15 pytest-xdist workers on the one GPU: 193 passed,
10 skipped (no ../shared there), 6 failed. Three were the bit-for-bit replay tests (two
trainings of one seed differed in the last float digits there; those tests now pin the
CPU, whose guarantee they test); three were doctor verdicts on the small test scenarios
(a different random stream, see tests/test_doctor.py). ``steadyval demo`` ran there in
1 min 34 s (3 min 46 s on the 2-core build machine), with a site-shift verdict first.

    python benchmarks/gpu_check.py [--device cuda] [--n 800] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from steadyval.config import TrainConfig
from steadyval.data import load_dataset
from steadyval.synthetic import SyntheticSpec, generate
from steadyval.train import train
from steadyval.train.models import build_model

CASES: dict[str, dict[str, object]] = {
    "small_cnn, geometric aug, class weights": dict(model="small_cnn", augment="geometric", class_weights=True),
    "cnn_dropout, both augs, EMA, warm-up+cosine, clip": dict(
        model="cnn_dropout", augment="geometric+intensity", ema=0.99, schedule="warmup_cosine", warmup_epochs=1,
        grad_clip=1.0),
    "cnn_dropout, balanced sampler, BN, early stopping, fp32": dict(
        model="cnn_dropout", sampler="balanced", batchnorm=True, early_stopping=True, patience=1,
        precision="fp32", schedule="plateau"),
    "cnn_dropout, SGD lr 0.5 (may stop as nonfinite)": dict(model="cnn_dropout", optimizer="sgd", lr=0.5),
    "resnet18, intensity aug, one-cycle": dict(model="resnet18", augment="intensity", schedule="onecycle"),
    "densenet121, adamw, weight decay": dict(model="densenet121", optimizer="adamw", weight_decay=0.01),
}


def check_run(run, config: TrainConfig, channels: int) -> list[str]:
    """Problems with one finished run (empty when it is sound)."""
    problems = []
    status = run.info.get("status")
    if status not in ("completed", "early_stopped", "nonfinite"):
        problems.append(f"status {status}")
    if status != "nonfinite":
        numeric = run.metrics.select_dtypes("number").to_numpy()
        if not np.isfinite(numeric).all():
            problems.append("non-finite metric")
        if not np.isfinite(run.val_probs).all():
            problems.append("non-finite val probability")
    if run.val_probs.shape != (len(run.metrics), len(run.val_index)):
        problems.append(f"val_probs shape {run.val_probs.shape}")
    for name in ("best.pt", "last.pt"):
        model = build_model(config, in_channels=channels)
        try:
            model.load_state_dict(torch.load(run.dir / name, map_location="cpu"))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"{name} does not load on the CPU: {exc}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=800, help="images (a fifth for val)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here: this check needs one (or pass --device cpu)")
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__} on {name}")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = SyntheticSpec(n_train=args.n - args.n // 5, n_val=args.n // 5, image_size=64, prevalence=0.3, seed=3)
        ds = load_dataset(generate(spec, tmp / "data").path, cache_dir=tmp / "cache")
        channels = ds.images.shape[1]
        for i, (label, fields) in enumerate(CASES.items()):
            config = TrainConfig(epochs=args.epochs, device=args.device, **fields)
            t = time.perf_counter()
            try:
                run = train(ds, config, tmp / f"run{i}")
            except Exception as exc:  # noqa: BLE001 - every case is tried and reported
                print(f"FAIL  {label}: {type(exc).__name__}: {exc}")
                failures += 1
                continue
            problems = check_run(run, config, channels)
            last = run.metrics.iloc[-1]
            print(f"{'FAIL' if problems else 'ok  '}  {label}: {run.info['status']}, {len(run.metrics)} epochs, "
                  f"precision {run.info['precision']}, val_auc {last['val_auc']:.3f}, "
                  f"{time.perf_counter() - t:.1f} s{'; ' + '; '.join(problems) if problems else ''}")
            failures += bool(problems)
        config = TrainConfig(epochs=args.epochs, device=args.device, augment="geometric", seed=5)
        a = train(ds, config, tmp / "twice-a").metrics.drop(columns=["train_seconds", "val_seconds"], errors="ignore")
        b = train(ds, config, tmp / "twice-b").metrics.drop(columns=["train_seconds", "val_seconds"], errors="ignore")
        diff = float(np.abs(a.select_dtypes("number").to_numpy() - b.select_dtypes("number").to_numpy()).max())
        same = "identical" if diff == 0 else f"differ by up to {diff:.2e}"
        print(f"same seed twice on {args.device}: metrics {same}")
        # A run continued for more epochs (what the thorough doctor's train.longer does): it must
        # load its CPU-saved state onto the device, run, and match the longer run (exactly on the CPU).
        config = TrainConfig(epochs=args.epochs, device=args.device, augment="geometric", ema=0.9,
                             schedule="plateau", seed=5)
        longer_config = config.model_copy(update={"epochs": 2 * args.epochs})
        try:
            short = train(ds, config, tmp / "short", keep_state=True)
            resumed = train(ds, longer_config, tmp / "resumed", resume=short)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            print(f"FAIL  resume: {type(exc).__name__}: {exc}")
            failures += 1
        else:
            problems = check_run(resumed, longer_config, channels)
            full = train(ds, longer_config, tmp / "full").metrics
            cols = [c for c in full.select_dtypes("number").columns if not c.endswith("_seconds")]
            diff = float(np.abs(resumed.metrics[cols].to_numpy() - full[cols].to_numpy()).max())
            print(f"{'FAIL' if problems else 'ok  '}  resume {args.epochs} -> {2 * args.epochs} epochs: "
                  f"{resumed.info['status']}, against the longer run trained whole: "
                  f"{'identical' if diff == 0 else f'differ by up to {diff:.2e}'}"
                  f"{'; ' + '; '.join(problems) if problems else ''}")
            failures += bool(problems)
    print(f"{failures} failed check(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
