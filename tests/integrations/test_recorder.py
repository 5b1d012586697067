"""RunRecorder: any loop's val predictions become a run that analyses like one steadyval trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from steadyval.cli import app
from steadyval.config import load_config
from steadyval.curves import analyze_history, read_log
from steadyval.data import load_dataset
from steadyval.errors import ConfigError, DataError
from steadyval.integrations import RunRecorder
from steadyval.synthetic import DISTINCT_SITES
from steadyval.train import train


def test_a_recorded_run_analyses_as_the_trained_run(make_synthetic, tmp_path: Path) -> None:
    # The site-shift scenario of tests/curves: train with steadyval, then feed the same
    # predictions through the recorder, as a foreign loop would; the analysis must agree.
    spec = {"n_train": 400, "n_val": 160, "sites": DISTINCT_SITES,
            "site_mix": {"train": [1.0, 0.0], "val": [0.5, 0.5]}}
    ds = load_dataset(make_synthetic(image_size=32, **spec).path, image_size=32)
    run = train(ds, load_config(sets=["preset=seed-ex2", "epochs=10", "image_size=32"]), tmp_path / "trained")
    index = run.val_index
    with RunRecorder(tmp_path / "recorded", index["label"].to_numpy(), paths=list(index["path"]),
                     metadata={"site": index["site"]}) as recorder:
        for epoch, probs in enumerate(run.val_probs):
            row = run.metrics.iloc[epoch]
            recorder.log_epoch(probs, metrics={"loss": row["loss"], "acc": row["accuracy"], "lr": row["lr"]})
    trained = analyze_history(read_log(tmp_path / "trained"))
    recorded = analyze_history(read_log(tmp_path / "recorded"))
    history = read_log(tmp_path / "recorded")
    assert history.per_image and history.n_epochs == 10
    assert list(history.metrics.columns[:4]) == ["epoch", "val_loss", "val_accuracy", "val_auc"]
    np.testing.assert_allclose(history.column("accuracy"), run.metrics["accuracy"])
    # Per-image measures are the same numbers; val loss differs only by probability clipping.
    for key in ("churn", "jumps_beyond_noise", "accuracy_drops_beyond_noise", "loss_jumps_beyond_noise"):
        assert recorded.summary[key] == pytest.approx(trained.summary[key]), key
    assert recorded.summary["val_loss_volatility"] == pytest.approx(trained.summary["val_loss_volatility"], rel=1e-3)
    site = recorded.attribution["by_column"]["site"]
    assert site["scanner_b"]["ratio"] > 2 * site["scanner_a"]["ratio"]
    for level, table in trained.attribution["by_column"]["site"].items():
        assert site[level] == pytest.approx(table), level
    assert {f.id for f in recorded.findings} == {f.id for f in trained.findings}
    assert json.loads((tmp_path / "recorded" / "run.json").read_text())["status"] == "completed"


def test_logits_and_probabilities_record_the_same_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    z = rng.normal(0, 3, 50)
    a = RunRecorder(tmp_path / "a", y).log_epoch(logits=z)
    b = RunRecorder(tmp_path / "b", y.astype(bool)).log_epoch(probs=1 / (1 + np.exp(-z)))
    two = RunRecorder(tmp_path / "c", np.eye(2)[y]).log_epoch(logits=np.stack([np.zeros(50), z], axis=1))
    for row in (b, two):
        for key in ("val_loss", "val_accuracy", "val_auc", "val_sensitivity", "val_specificity"):
            assert row[key] == pytest.approx(a[key], rel=1e-6), key
    expected = np.mean(np.logaddexp(0, z) - z * y)  # binary cross-entropy of the logits
    assert a["val_loss"] == pytest.approx(expected)


def test_framework_metrics_are_kept_under_keras_names(tmp_path: Path) -> None:
    y = np.array([0, 1, 1, 0])
    recorder = RunRecorder(tmp_path / "r", y)
    row = recorder.log_epoch(probs=[0.2, 0.9, 0.4, 0.1], metrics={"acc": 0.75, "val_binary_accuracy": 0.5,
                                                                    "learning_rate": 0.01, "val_loss": 1.5})
    assert row["accuracy"] == 0.75 and row["lr"] == 0.01
    assert row["val_accuracy"] == 0.5 and row["val_loss"] == 1.5  # the framework's own values win
    assert row["val_auc"] == 1.0  # computed: the framework did not give it


def test_a_killed_loop_leaves_a_readable_run_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    y = np.array([0, 1] * 10)
    recorder = RunRecorder(tmp_path / "r", y)
    for p in (0.3, 0.6, 0.4):
        recorder.log_epoch(probs=np.where(y == 1, p, 1 - p))
    history = read_log(tmp_path / "r")  # never closed: as after a crash
    assert history.n_epochs == 3 and history.val_probs.shape == (3, 20)
    assert "status: running" in history.notes[0]
    RunRecorder(tmp_path / "r", y).log_epoch(probs=np.full(20, 0.5))
    assert read_log(tmp_path / "r").n_epochs == 1


def test_bad_input_is_refused_with_the_rule_and_no_file_is_touched(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "scan.png").write_bytes(b"user data")
    with pytest.raises(ConfigError, match="holding scan.png"):
        RunRecorder(folder, [0, 1])
    assert sorted(p.name for p in folder.iterdir()) == ["scan.png"]
    with pytest.raises(DataError, match="must be 0/1"):
        RunRecorder(tmp_path / "r", ["normal", "pneumonia"])
    with pytest.raises(DataError, match="one value per val image"):
        RunRecorder(tmp_path / "r", [0, 1, 1], metadata={"site": ["a", "b"]})
    recorder = RunRecorder(tmp_path / "r", [0, 1, 1])
    with pytest.raises(DataError, match=r"one value per val image \(3\)"):
        recorder.log_epoch(probs=[0.1, 0.9])
    with pytest.raises(DataError, match="look like logits"):
        recorder.log_epoch(probs=[-2.0, 3.0, 1.0])
    with pytest.raises(ConfigError, match="either probs or logits"):
        recorder.log_epoch()
    with pytest.raises(DataError, match="one number per epoch"):
        recorder.log_epoch(probs=[0.1, 0.9, 0.8], metrics={"loss": [0.1, 0.2]})
    assert recorder.rows == [] and not (tmp_path / "r" / "metrics.csv").exists()
    recorder.log_epoch(probs=[0.1, 0.9, 0.8])
    (tmp_path / "r" / "val_probs.npy").write_bytes(b"cut short")
    with pytest.raises(DataError, match="must be readable"):
        read_log(tmp_path / "r")


def test_analyze_command_reads_a_recorded_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    with RunRecorder(tmp_path / "run", y, metadata={"site": np.where(np.arange(200) < 100, "a", "b")}) as rec:
        for epoch in range(8):
            rec.log_epoch(logits=(2 * y - 1) * (1 + 0.2 * epoch) + rng.normal(0, 1.5, 200),
                          metrics={"loss": 0.6 - 0.05 * epoch})
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "run"), "--json", str(tmp_path / "a.json"),
                                      "--report", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "a.json").read_text())
    summary = doc["runs"][0]["summary"]
    assert summary["jump_test"] == "mcnemar" and summary["n_val"] == 200 and "churn" in summary
    assert set(doc["runs"][0]["loss_attribution"]["by_column"]) >= {"site", "label_name"}
    assert (tmp_path / "rep" / "report.html").exists()
