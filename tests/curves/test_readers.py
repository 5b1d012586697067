"""Every log format we read, and the real logs in ../shared/data/training_logs."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from steadyval.curves import analyze, read_log
from steadyval.errors import DataError
from tests.conftest import shared_data


def test_keras_csvlogger_and_history_json_both_spellings(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("epoch,acc,loss,val_acc,val_loss\n0,0.6,0.7,0.5,0.8\n1,0.7,0.6,0.6,0.7\n")
    h = read_log(tmp_path / "log.csv")
    assert list(h.metrics.columns[:5]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    (tmp_path / "h.json").write_text(json.dumps({"accuracy": [0.6, 0.7], "val_loss": [0.8, 0.7], "loss": [1, 0.9]}))
    assert read_log(tmp_path / "h.json").column("val_loss").tolist() == [0.8, 0.7]


def test_lightning_rows_split_per_epoch_and_phase_csv(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,train_loss,val_loss,val_acc\n0,9,0.7,,\n0,9,,0.8,0.5\n1,19,0.6,,\n1,19,,0.7,0.6\n")
    h = read_log(tmp_path)  # a Lightning log folder
    assert h.metrics[["loss", "val_loss", "val_accuracy"]].to_numpy().tolist() == [[0.7, 0.8, 0.5], [0.6, 0.7, 0.6]]
    (tmp_path / "p.csv").write_text(
        "epoch,phase,loss,acc\n1,train,0.7,0.5\n1,val,0.8,0.4\n2,train,0.6,0.6\n2,val,0.7,0.5\n")
    assert read_log(tmp_path / "p.csv").column("val_accuracy").tolist() == [0.4, 0.5]


def test_column_mapping_and_errors(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text("it,tl,vl\n0,0.7,0.8\n1,0.6,0.7\n")
    with pytest.raises(DataError, match="--columns val_loss=NAME") as caught:
        read_log(tmp_path / "g.csv")
    assert "g.csv" in str(caught.value)  # the error names the file it could not read
    h = read_log(tmp_path / "g.csv", columns={"loss": "tl", "val_loss": "vl", "epoch": "it"})
    assert h.column("val_loss").tolist() == [0.8, 0.7]
    with pytest.raises(DataError, match="unknown column"):
        read_log(tmp_path / "g.csv", columns={"val_loss": "nope"})
    (tmp_path / "x.txt").write_text("Epoch 1/10")
    with pytest.raises(DataError, match="must be a CSV, JSON"):
        read_log(tmp_path / "x.txt")


def test_pickles_only_on_request(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "h.pkl.gz", "wb") as fh:
        pickle.dump({"loss": [0.7, 0.6], "val_loss": [0.8, 0.7]}, fh)
    with pytest.raises(DataError, match="--trust-pickle"):
        read_log(tmp_path / "h.pkl.gz")
    assert read_log(tmp_path / "h.pkl.gz", trust_pickle=True).n_epochs == 2


def test_every_real_log_parses_and_says_what_it_should() -> None:
    root = shared_data("training_logs")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", ".json", ".gz")]
    assert len(files) >= 15
    for path in files:
        assert read_log(path, trust_pickle=True).n_epochs >= 5, path
    effnet = root / "aydinhamedi_pneumonia_efficientnet/history/model_history_CSV.csv"
    result = analyze([effnet], val_size=624)[0]
    ids = {f.id for f in result.findings}
    assert {"model.overfitting", "curves.volatile"} <= ids
    for pcam in (root / "siddarth_pcam_histopathology").rglob("*.csv"):
        assert not [f for f in analyze([pcam])[0].findings if f.severity.value == "high"], pcam
    tiny = root / "aniketghosh_pneumonia_tb/backend/logs/pneumonia/training_log_20251107_134851.csv"
    assert "curves.noise_floor" in {f.id for f in analyze([tiny], val_size=16)[0].findings}


def test_tensorboard_events_when_the_extra_is_installed() -> None:
    pytest.importorskip("tensorboard", reason="the TensorBoard reader is an optional extra")
    root = shared_data("training_logs") / "aniketghosh_pneumonia_tb/backend/logs/tuberculosis"
    h = read_log(root)
    # Two files: 50 epochs, then a second phase of 20 that restarts at epoch 0.
    assert h.n_epochs == 70 and h.column("val_loss") is not None
    assert h.metrics["epoch"].tolist() == list(range(70))
    assert any("restarts at epoch 0" in n for n in h.notes)


def test_our_run_directory_round_trip(tmp_path: Path) -> None:
    pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.6]}).to_csv(tmp_path / "metrics.csv", index=False)
    with pytest.raises(DataError, match="does not exist"):
        read_log(tmp_path / "missing")
