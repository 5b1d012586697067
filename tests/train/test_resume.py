"""A completed run continued for more epochs equals the longer run trained from the start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from steadyval.config import TrainConfig, load_config
from steadyval.data import load_dataset
from steadyval.train import load_run, train
from steadyval.train.trainer import STATE_FILE, can_resume


@pytest.fixture(scope="module")
def small(make_synthetic):
    data = make_synthetic(n_train=96, n_val=48, image_size=32, seed=5, label_noise=0.1)
    return load_dataset(data.path, image_size=32)


def _cfg(**kw: object) -> TrainConfig:
    # Bit for bit is the CPU's guarantee (see tests/train/test_replay.py).
    return load_config(sets=["preset=seed-ex2", "epochs=4", "image_size=32", "batch_size=16", "device=cpu",
                             *[f"{k}={v}" for k, v in kw.items()]])


@pytest.mark.parametrize("extra", [
    {"augment": "geometric"},  # dropout and augmentation draw from torch's generator every step
    {"ema": 0.9, "schedule": "plateau", "patience": 2, "sampler": "balanced"},
    # the smoothed monitor and the best so far carry over
    {"early_stopping": "true", "patience": 50, "restore_best": "true", "smoothing": 0.5, "monitor": "val_auc",
     "optimizer": "sgd", "lr": 0.05},
])
def test_a_resumed_run_equals_the_longer_run_bit_for_bit(small, tmp_path: Path, extra: dict) -> None:
    longer = train(small, _cfg(**extra), tmp_path / "longer")
    short = train(small, _cfg(**extra, epochs=2), tmp_path / "short", keep_state=True)
    assert (tmp_path / "short" / STATE_FILE).exists()
    assert can_resume(short, _cfg(**extra))
    # The run as train() returned it (with its timings) or as read back from its directory.
    source = short if "augment" in extra else load_run(tmp_path / "short")
    resumed = train(small, _cfg(**extra), tmp_path / "resumed", resume=source)
    assert len(resumed.metrics) == 4 and resumed.status == longer.status == "completed"
    assert list(resumed.metrics.columns) == list(longer.metrics.columns)
    assert (tmp_path / "resumed" / "metrics.csv").read_bytes() == (tmp_path / "longer" / "metrics.csv").read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "resumed" / "val_probs.npy"), longer.val_probs)
    for weights in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "resumed" / weights, weights_only=True)
        b = torch.load(tmp_path / "longer" / weights, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in b), weights
    for name in ("best_epoch", "best_value"):
        assert resumed.info[name] == longer.info[name], name
    assert resumed.info["resumed_from"] == str(tmp_path / "short")
    assert not (tmp_path / "resumed" / STATE_FILE).exists()  # kept only when asked


def test_only_a_completed_run_of_the_same_config_with_its_state_can_be_resumed(small, tmp_path: Path) -> None:
    short = train(small, _cfg(epochs=2), tmp_path / "short", keep_state=True)
    assert can_resume(short, _cfg(epochs=4))
    assert not can_resume(short, _cfg(epochs=2))  # nothing to add
    assert not can_resume(short, _cfg(epochs=4, lr=0.01))  # another training
    assert not can_resume(short, _cfg(epochs=4, schedule="warmup_cosine"))  # the schedule spans all epochs
    assert not can_resume(train(small, _cfg(epochs=2), tmp_path / "no-state"), _cfg(epochs=4))
    cosine = train(small, _cfg(epochs=2, schedule="onecycle"), tmp_path / "cos", keep_state=True)
    assert not can_resume(cosine, _cfg(epochs=4, schedule="onecycle"))
    short.info["status"] = "interrupted"
    assert not can_resume(short, _cfg(epochs=4))
    with pytest.raises(ValueError, match="cannot be continued"):
        train(small, _cfg(epochs=4), tmp_path / "x", resume=short)
