"""Early stopping read off a full run equals early stopping trained for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steadyval.config import TrainConfig, load_config, same_training
from steadyval.data import load_dataset
from steadyval.experiments.trials import measure
from steadyval.train import load_run, train
from steadyval.train.replay import can_replay, replay_early_stopping


@pytest.fixture(scope="module")
def small(make_synthetic):
    # Small, noisy labels and a high LR: val loss turns up and early stopping fires mid-run.
    data = make_synthetic(n_train=96, n_val=48, image_size=32, seed=5, label_noise=0.2)
    return load_dataset(data.path, image_size=32)


def _cfg(**kw: object) -> TrainConfig:
    # Bit-for-bit equality is the CPU's guarantee; on a GPU two trainings of one seed may differ
    # in the last float digits (seen on an H100 with 15 test processes sharing it).
    return load_config(sets=["preset=seed-ex1", "epochs=10", "image_size=32", "batch_size=16", "lr=0.003", "device=cpu",
                             *[f"{k}={v}" for k, v in kw.items()]])


@pytest.mark.parametrize("stop", [{"patience": 2}, {"patience": 2, "monitor": "val_auc", "smoothing": 0.5},
                                  {"patience": 10}])
def test_replayed_early_stopping_equals_training_with_it(small, tmp_path: Path, stop: dict) -> None:
    full = train(small, _cfg(), tmp_path / "full")
    es_cfg = _cfg(early_stopping="true", **stop)
    real = train(small, es_cfg, tmp_path / "real")
    assert can_replay(full, es_cfg)
    replayed = replay_early_stopping(load_run(tmp_path / "full"), es_cfg, tmp_path / "replayed")
    if stop["patience"] == 2 and "monitor" not in stop:
        assert real.status == "early_stopped" and len(real.metrics) < 10  # the case worth testing
    assert replayed.status == real.status
    for name in ("status", "stop_reason", "best_epoch", "best_value", "epochs_run"):
        assert replayed.info[name] == real.info[name], name
    pd.testing.assert_frame_equal(replayed.metrics, pd.read_csv(tmp_path / "real" / "metrics.csv"))
    assert (tmp_path / "replayed" / "metrics.csv").read_bytes() == (tmp_path / "real" / "metrics.csv").read_bytes()
    np.testing.assert_array_equal(np.load(tmp_path / "replayed" / "val_probs.npy"), real.val_probs)
    assert measure(replayed.metrics, replayed.val_probs, replayed.info, es_cfg) == \
        measure(real.metrics, real.val_probs, real.info, es_cfg)
    # The replayed directory reads back as a run, and says where it came from and that it has no weights.
    back = load_run(tmp_path / "replayed")
    assert back.config == es_cfg and back.info["replayed_from"] == str(tmp_path / "full")
    assert not (tmp_path / "replayed" / "last.pt").exists() and "not kept" in back.info["weights"]


def test_only_a_full_run_of_the_same_training_can_stand_in(small, tmp_path: Path) -> None:
    full = train(small, _cfg(epochs=4), tmp_path / "full")
    es = _cfg(epochs=4, early_stopping="true", patience=1)
    assert same_training(full.config, es) and can_replay(full, es)
    assert not can_replay(full, _cfg(epochs=4))  # nothing to replay without early stopping
    assert not can_replay(full, _cfg(epochs=4, early_stopping="true", lr=0.01))  # another training
    assert not can_replay(full, _cfg(epochs=5, early_stopping="true"))  # epochs set the schedule
    full.info["status"] = "nonfinite"
    assert not can_replay(full, es)
    with pytest.raises(ValueError, match="cannot stand in"):
        replay_early_stopping(full, es, tmp_path / "x")
