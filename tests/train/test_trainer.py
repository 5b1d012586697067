"""The trainer: records every val image, is deterministic, stops for stated reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from steadyval.config import TrainConfig, load_config
from steadyval.data import load_dataset
from steadyval.train import load_run, train
from steadyval.train.augment import augment_batch, build_augmentation
from steadyval.train.models import build_model
from steadyval.train.trainer import EarlyStopping


@pytest.fixture(scope="module")
def small(make_synthetic):
    return load_dataset(make_synthetic(n_train=160, n_val=48, image_size=32).path, image_size=32)


def _cfg(**kw) -> TrainConfig:
    return load_config(sets=["preset=seed-ex2", "epochs=3", "image_size=32", "batch_size=32",
                             *[f"{k}={v}" for k, v in kw.items()]])


def test_run_directory_records_every_val_image_each_epoch(small, tmp_path: Path) -> None:
    run = train(small, _cfg(), tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert files >= {"config.json", "metrics.csv", "timings.csv", "val_probs.npy", "val_index.csv",
                     "best.pt", "last.pt", "run.json", "env.json"}
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics.columns[:5]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert {"val_auc", "val_sensitivity", "val_specificity", "lr"} <= set(metrics.columns)
    assert run.val_probs.shape == (3, 48) and ((run.val_probs >= 0) & (run.val_probs <= 1)).all()
    # The recorded probabilities reproduce the logged val loss.
    p = np.clip(run.val_probs[-1], 1e-7, 1 - 1e-7)
    y = run.val_index["label"].to_numpy()
    assert np.isclose(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(), metrics["val_loss"].iat[-1],
                      rtol=1e-3)
    loaded = load_run(tmp_path / "run")
    assert loaded.status == "completed" and loaded.val_probs.shape == (3, 48)


def test_same_seed_gives_identical_metrics_csv(small, tmp_path: Path) -> None:
    # Bit-for-bit equality is the CPU's guarantee (DESIGN.md), so the test holds on a GPU machine too.
    cfg = _cfg(augment="geometric+intensity", class_weights="true", device="cpu")
    train(small, cfg, tmp_path / "a")
    train(small, cfg, tmp_path / "b")
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
    train(small, _cfg(augment="geometric+intensity", class_weights="true", device="cpu", seed=1), tmp_path / "c")
    assert (tmp_path / "a" / "metrics.csv").read_bytes() != (tmp_path / "c" / "metrics.csv").read_bytes()


def test_same_seed_is_identical_where_the_gemm_weight_gradient_applies(make_synthetic, tmp_path: Path) -> None:
    # At 96 px the second convolution's outputs are 45x45, over conv.MIN_OUTPUT_PIXELS.
    ds = load_dataset(make_synthetic(n_train=48, n_val=16, image_size=96).path, image_size=96)
    cfg = load_config(sets=["preset=seed-ex2", "epochs=2", "image_size=96", "batch_size=16", "device=cpu"])
    train(ds, cfg, tmp_path / "a")
    train(ds, cfg, tmp_path / "b")
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a" / "last.pt")["3.weight"],
                       torch.load(tmp_path / "b" / "last.pt")["3.weight"])


def test_nonfinite_loss_stops_the_run(small, tmp_path: Path) -> None:
    run = train(small, _cfg(optimizer="sgd", lr=10, init="normal_large", epochs=5), tmp_path / "r")
    assert run.status == "nonfinite"
    assert "became" in run.info["stop_reason"]


def test_ctrl_c_leaves_a_usable_run_directory(small, tmp_path: Path, monkeypatch) -> None:
    import steadyval.train.trainer as trainer

    real = trainer.val_metrics
    calls = {"n": 0}

    def interrupt_on_third(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(trainer, "val_metrics", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        train(small, _cfg(epochs=5), tmp_path / "r")
    run = load_run(tmp_path / "r")
    assert run.status == "interrupted" and len(run.metrics) == 2 and run.val_probs.shape[0] == 2


# Lightning-style table: (monitored values per epoch, patience, epoch at which it stops or None)
STOPPING = [
    ([0.9, 0.8, 0.7, 0.6, 0.5], 2, None),
    ([0.9, 0.8, 0.85, 0.86, 0.87], 3, 4),
    ([0.5, 0.6, 0.4, 0.45, 0.46], 2, 4),
    ([0.5, float("nan"), 0.6, 0.7], 2, 3),
]


@pytest.mark.parametrize(("values", "patience", "stop_at"), STOPPING)
def test_early_stopping_table(values: list[float], patience: int, stop_at: int | None) -> None:
    stopper = EarlyStopping(TrainConfig(early_stopping=True, patience=patience))
    stopped = None
    for epoch, v in enumerate(values):
        stopper.update({"val_loss": v}, epoch)
        if stopper.should_stop:
            stopped = epoch
            break
    assert stopped == stop_at
    if stop_at is not None:
        assert f"did not improve in the last {patience} epochs" in stopper.reason


def test_smoothing_rides_through_a_one_epoch_blip() -> None:
    values = [0.6, 0.5, 0.49, 0.52, 0.45]  # epoch 3 is a blip, epoch 4 improves again
    plain = EarlyStopping(TrainConfig(patience=1))
    smooth = EarlyStopping(TrainConfig(patience=1, smoothing=0.8))
    stops = {"plain": None, "smooth": None}
    for e, v in enumerate(values):
        for name, stopper in (("plain", plain), ("smooth", smooth)):
            stopper.update({"val_loss": v}, e)
            if stopper.should_stop and stops[name] is None:
                stops[name] = e
    assert stops == {"plain": 3, "smooth": None}
    assert smooth.best == pytest.approx(0.8 * 0.5536 + 0.2 * 0.45)


@pytest.mark.parametrize("model", ["small_cnn", "cnn_dropout", "resnet18", "densenet121"])
def test_every_model_gives_one_logit(model: str) -> None:
    net = build_model(TrainConfig(model=model, image_size=32, width=0.25), in_channels=3)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 1)


def test_augmentation_changes_images_and_replays_with_the_seed() -> None:
    aug = build_augmentation("geometric+intensity")
    x = torch.rand(4, 1, 32, 32)
    torch.manual_seed(3)
    a = augment_batch(aug, x.clone())
    torch.manual_seed(3)
    b = augment_batch(aug, x.clone())
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert build_augmentation("none") is None


@pytest.mark.parametrize("sets", [
    ["schedule=warmup_cosine", "warmup_epochs=1"],
    ["schedule=onecycle"],
    ["schedule=plateau", "patience=2"],
    ["ema=0.9"],
    ["sampler=balanced"],
    ["grad_clip=0.5", "optimizer=sgd", "lr=0.05"],
    ["optimizer=adamw", "weight_decay=0.01", "batchnorm=true", "init=kaiming"],
    ["precision=fp32"],
    ["model=small_cnn", "width=0.5", "augment=intensity"],
])
def test_every_option_trains(small, tmp_path: Path, sets: list[str]) -> None:
    run = train(small, _cfg(**dict(s.split("=") for s in sets)), tmp_path / "r")
    assert run.status == "completed" and len(run.metrics) == 3
    assert np.isfinite(run.metrics["val_loss"]).all()
    if "schedule=warmup_cosine" in sets or "schedule=onecycle" in sets:
        assert run.metrics["lr"].nunique() == 3  # the schedule moved the learning rate
    if "ema=0.9" in sets:
        plain = train(small, _cfg(), tmp_path / "plain")
        assert not np.allclose(plain.val_probs, run.val_probs)


def test_early_stopping_restores_and_says_why(small, tmp_path: Path) -> None:
    run = train(small, _cfg(epochs=30, early_stopping="true", patience=1, lr=0.05), tmp_path / "r")
    assert run.status in ("early_stopped", "completed")
    if run.status == "early_stopped":
        assert "did not improve in the last 1 epochs" in run.info["stop_reason"]
        assert run.info["best_epoch"] < len(run.metrics) - 1


def test_seeds_of_one_config_are_summarised_together(small, tmp_path: Path) -> None:
    from steadyval.curves import analyze, same_config
    from steadyval.report.analysis import analysis_document, write_analysis_report

    for seed in (0, 1):
        train(small, _cfg(seed=seed, epochs=5), tmp_path / f"s{seed}")
    train(small, _cfg(lr=0.01, epochs=5), tmp_path / "other")
    results = analyze([tmp_path / "s0", tmp_path / "s1"])
    assert same_config([r.history for r in results])
    doc = analysis_document(results)
    assert doc["seeds"]["runs"] == 2 and doc["seeds"]["val_loss_volatility"]["sd"] >= 0
    assert "mean ± spread across runs" in write_analysis_report(results, tmp_path / "rep").read_text()
    mixed = analyze([tmp_path / "s0", tmp_path / "other"])
    assert analysis_document(mixed)["seeds"] is None  # different configs are not seeds
