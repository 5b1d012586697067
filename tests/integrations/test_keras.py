"""The Keras callback, on Keras 3's torch backend (no TensorFlow needed); skipped without keras."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from steadyval.curves import analyze_history, read_log
from steadyval.errors import DataError

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="keras is not installed (pip install keras)")
from steadyval.integrations.keras import SteadyvalCallback  # noqa: E402


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 8)).astype("float32") + y[:, None] * 0.8
    return x, y.astype("float32")


def _model(logits: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation=None if logits else "sigmoid")])
    loss = keras.losses.BinaryCrossentropy(from_logits=True) if logits else "binary_crossentropy"
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    return model


@pytest.mark.parametrize("logits", [False, True])
def test_every_val_probability_is_recorded_with_kerass_logs(tmp_path: Path, logits: bool) -> None:
    (x, y), (xv, yv) = _data(256, 0), _data(120, 1)
    sites = np.where(np.arange(120) % 3 == 0, "scanner_b", "scanner_a")
    model = _model(logits)
    callback = SteadyvalCallback(tmp_path / "run", (xv, yv), metadata={"site": sites})
    fit = model.fit(x, y, validation_data=(xv, yv), epochs=4, batch_size=32, verbose=0, callbacks=[callback])
    history = read_log(tmp_path / "run")
    assert history.per_image and history.n_epochs == 4 and history.val_probs.shape == (4, 120)
    out = np.asarray(model.predict(xv, verbose=0)).ravel()
    expected = 1 / (1 + np.exp(-out)) if logits else out
    np.testing.assert_allclose(history.val_probs[-1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history.column("val_loss"), fit.history["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(history.column("accuracy"), fit.history["accuracy"], rtol=1e-6)
    if not logits:  # (Keras's "accuracy" thresholds logits at 0.5 too, so it differs there)
        np.testing.assert_allclose(((history.val_probs >= 0.5) == yv[None, :]).mean(axis=1),
                                   fit.history["val_accuracy"], atol=1e-6)
    assert np.isfinite(history.column("val_auc")).all() and history.column("lr")[0] == pytest.approx(0.01)
    assert set(history.val_index.columns) >= {"path", "label", "site"}
    assert "status: completed" in history.notes[0]
    # Keras's "accuracy" thresholds a logit output at 0.5: the analysis says the logged curve is not the model's.
    mismatch = [f for f in analyze_history(history).findings if f.id == "model.output_loss_mismatch"]
    assert bool(mismatch) == logits


class _Batches(keras.utils.PyDataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, shuffle: bool) -> None:
        super().__init__()
        self.x, self.y, self.shuffle, self.calls = x, y, shuffle, 0

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self.shuffle and i == 0:
            self.calls += 1
        order = np.roll(np.arange(len(self.y)), 7 * self.calls)
        part = order[i * 30:(i + 1) * 30]
        return self.x[part], self.y[part]


def test_a_dataset_in_fixed_order_is_recorded_and_a_shuffled_one_refused(tmp_path: Path) -> None:
    (x, y), (xv, yv) = _data(256, 0), _data(120, 1)
    model = _model(False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[SteadyvalCallback(tmp_path / "run", _Batches(xv, yv, False))])
    history = read_log(tmp_path / "run")
    np.testing.assert_allclose(history.val_probs[-1], np.asarray(model.predict(xv, verbose=0)).ravel(), rtol=1e-5)
    with pytest.raises(DataError, match="same order every epoch"):
        model.fit(x, y, epochs=3, verbose=0,
                  callbacks=[SteadyvalCallback(tmp_path / "shuffled", _Batches(xv, yv, True))])


def test_a_description_that_does_not_fit_is_refused_before_training(tmp_path: Path) -> None:
    (x, y), (xv, yv) = _data(64, 0), _data(20, 1)
    model = _model(False)
    calls = []
    seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: calls.append(epoch))
    with pytest.raises(DataError, match="one value per val image"):
        model.fit(x, y, epochs=2, verbose=0,
                  callbacks=[SteadyvalCallback(tmp_path / "run", (xv, yv), paths=["a.png"]), seen])
    assert calls == []

