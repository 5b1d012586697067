"""Curve checks on tables of short hand-written series (Lightning style)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steadyval.curves import analyze_history
from steadyval.curves import measures as m
from steadyval.curves.history import History


def _history(val_size: int | None = None, **cols: list[float]) -> History:
    n = len(next(iter(cols.values())))
    return History("hand-written", pd.DataFrame({"epoch": range(n), **cols}), val_size)


def _ids(history: History, at_least: str = "low") -> set[str]:
    order = ["high", "medium", "low", "info"]
    return {f.id for f in analyze_history(history).findings
            if order.index(f.severity.value) <= order.index(at_least)}


JUMPY_ACC = [0.70, 0.80, 0.76, 0.81, 0.75, 0.82, 0.76, 0.80, 0.75, 0.81, 0.77, 0.80]
STEADY_LOSS = [0.60, 0.45, 0.40, 0.37, 0.35, 0.34, 0.33, 0.32, 0.31, 0.31, 0.30, 0.30]


@pytest.mark.parametrize(("val_size", "expected", "absent"), [
    (16, "curves.noise_floor", "curves.volatile"),
    (600, "curves.volatile", "curves.noise_floor"),
])
def test_noise_floor_depends_on_val_size(val_size: int, expected: str, absent: str) -> None:
    h = _history(val_size, loss=STEADY_LOSS, val_accuracy=JUMPY_ACC)
    ids = _ids(h)
    assert expected in ids and absent not in ids


def test_without_val_size_the_noise_floor_is_not_guessed() -> None:
    result = analyze_history(_history(None, loss=STEADY_LOSS, val_accuracy=JUMPY_ACC))
    assert "curves.noise_floor" in result.skipped and "curves.volatile" in result.skipped


# (train loss, val loss, expected onset epoch or None)
FALLING = [0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08, 0.05]
OVERFITTING = [
    (FALLING, [0.7, 0.55, 0.45, 0.42, 0.44, 0.5, 0.58, 0.66, 0.75, 0.85], 3),
    (FALLING, [0.7, 0.55, 0.45, 0.40, 0.38, 0.37, 0.36, 0.35, 0.35, 0.34], None),
    (FALLING, [0.7, 0.55, 0.45, 0.40, 0.38, 0.9, 0.36, 0.35, 0.35, 0.34], None),  # a spike is not an onset
]


@pytest.mark.parametrize(("train", "val", "onset"), OVERFITTING)
def test_overfitting_onset(train: list[float], val: list[float], onset: int | None) -> None:
    found = [f for f in analyze_history(_history(500, loss=train, val_loss=val)).findings
             if f.id == "model.overfitting"]
    if onset is None:
        assert not found
    else:
        assert found and found[0].evidence["onset_epoch"] == onset


def test_flat_line_gives_no_findings() -> None:
    flat = [0.2] * 10
    assert _ids(_history(500, loss=flat, val_loss=flat, accuracy=[0.93] * 10, val_accuracy=[0.92] * 10)) == {
        "curves.noise_floor"} or not _ids(_history(500, loss=flat, val_loss=flat))


def test_flat_line_measures() -> None:
    assert m.val_loss_volatility(np.array([0.3] * 8)) == 0.0
    assert m.val_loss_volatility(np.array([0.5, 0.3, 0.4, 0.3, 0.4])) == pytest.approx(0.1 / 0.35)


@pytest.mark.parametrize(("loss", "flagged"), [
    ([1.1, 0.71, 0.69, 0.70, 0.72, 0.71, 0.70, 0.72, 0.70, 0.71], True),  # never beats a constant
    ([0.7, 0.4, 0.3, 0.2, 0.15, 0.3, 0.45, 0.6, 0.7, 0.8], True),  # rises again
    ([0.7, 0.5, 0.4, 0.33, 0.3, 0.27, 0.25, 0.24, 0.23, 0.22], False),  # healthy
])
def test_lr_too_high_signature(loss: list[float], flagged: bool) -> None:
    assert ("optim.lr_too_high" in _ids(_history(None, loss=loss))) is flagged


def test_nonfinite_underfitting_and_val_better_than_train() -> None:
    assert "train.nonfinite" in _ids(_history(None, loss=[0.7, 0.5, float("nan")]))
    falling = [1.0 - 0.05 * i for i in range(12)]
    assert "train.underfitting" in _ids(_history(None, loss=falling, val_loss=falling))
    underfit = next(f for f in analyze_history(_history(None, loss=falling, val_loss=falling)).findings
                    if f.id == "train.underfitting")
    assert underfit.remedies == ["train.longer"]  # too few epochs: train longer (a schedule is no fix)
    train = [0.7, 0.6, 0.55, 0.5, 0.48, 0.46]
    val = [0.5, 0.4, 0.35, 0.33, 0.32, 0.31]
    assert "curves.val_better_than_train" in _ids(_history(None, loss=train, val_loss=val))


def test_constant_predictor_is_named() -> None:
    p = 0.6
    prior = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    h = _history(None, loss=[prior + 0.002, prior, prior + 0.001, prior, prior], accuracy=[p] * 5)
    assert "model.output_loss_mismatch" in _ids(h)


def test_mcnemar_churn_and_per_image_paths() -> None:
    correct = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=bool)
    assert m.mcnemar_pvalues(correct).tolist() == [1.0, 1.0]
    many = np.zeros((2, 100), dtype=bool)
    many[1, :40] = True  # 40 images become right, none wrong
    assert m.mcnemar_pvalues(many)[0] < 1e-6
    assert m.churn(correct) == pytest.approx((2 / 4 + 0) / 2)


def test_attribution_blames_the_subgroup_that_swings() -> None:
    rng = np.random.default_rng(0)
    epochs, n = 10, 200
    site = np.array(["a"] * 150 + ["b"] * 50)
    labels = rng.integers(0, 2, n)
    base = np.where(labels == 1, 0.8, 0.2)
    probs = np.tile(base, (epochs, 1))
    probs[:, site == "b"] = rng.uniform(0.05, 0.95, (epochs, 50))  # site b wobbles
    index = pd.DataFrame({"path": [f"im{i}" for i in range(n)], "label": labels, "site": site})
    attribution = m.loss_attribution(probs, index, ["site"])
    assert attribution["by_column"]["site"]["b"]["ratio"] > 10
    assert all(x["path"] in {f"im{i}" for i in range(150, 200)} for x in attribution["top_images"])


@pytest.mark.parametrize("threshold_on_logits", [True, False])
def test_a_logged_accuracy_that_is_not_the_outputs_is_named(threshold_on_logits: bool) -> None:
    rng = np.random.default_rng(1)
    epochs, n = 8, 300
    labels = rng.integers(0, 2, n)
    logits = (2 * labels - 1)[None, :] * np.linspace(0.2, 1.5, epochs)[:, None] + rng.normal(0, 1, (epochs, n))
    probs = 1 / (1 + np.exp(-logits))
    # Keras's "accuracy" on a logit output: the 0.5 threshold applied to the logits themselves.
    cut = logits if threshold_on_logits else probs
    logged = ((cut > 0.5) == labels[None, :]).mean(axis=1)
    h = History("recorded", pd.DataFrame({"epoch": range(epochs), "val_accuracy": logged}), n, probs,
                pd.DataFrame({"path": [f"im{i}" for i in range(n)], "label": labels}))
    named = [f for f in analyze_history(h).findings if f.id == "model.output_loss_mismatch"]
    assert bool(named) == threshold_on_logits
    if named:
        assert named[0].severity.value == "medium" and "BinaryAccuracy(threshold=0.0)" in named[0].message
