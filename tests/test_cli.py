"""The command line: exit codes, messages without tracebacks, outputs where asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from steadyval.cli import app

runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "steadyval.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_audit_writes_json_and_report_and_exits_zero_with_findings(make_synthetic, tmp_path: Path) -> None:
    synthetic = make_synthetic(duplicates=10)
    result = runner.invoke(app, ["audit", str(synthetic.path), "--json", str(tmp_path / "f.json"),
                                 "--report", str(tmp_path / "rep"), "-q"])
    assert result.exit_code == 0, result.output
    assert "split.duplicate_leakage" in result.output
    assert "positive class" in result.output
    doc = json.loads((tmp_path / "f.json").read_text())
    assert any(f["id"] == "split.duplicate_leakage" for f in doc["findings"])
    assert (tmp_path / "rep" / "report.html").exists()


def test_unusable_input_is_one_paragraph_and_exit_two(tmp_path: Path) -> None:
    for c in ("a", "b", "c"):
        (tmp_path / "three" / c).mkdir(parents=True)
    proc = _cli("audit", str(tmp_path / "three"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr


def test_outputs_inside_the_data_folder_are_refused(make_synthetic) -> None:
    synthetic = make_synthetic()
    proc = _cli("audit", str(synthetic.path), "--json", str(synthetic.path.parent / "f.json"))
    assert proc.returncode == 2 and "outside the data folder" in proc.stderr
    assert not (synthetic.path.parent / "f.json").exists()


def test_output_paths_that_cannot_be_written_are_refused_before_any_work(make_synthetic, tmp_path: Path) -> None:
    data = str(make_synthetic(n_train=150, n_val=50, image_size=32, seed=2).path)
    (tmp_path / "a_file").write_text("keep me")
    cases = [
        (("doctor", data, "--out", str(tmp_path / "a_file")), "--out: must be a folder"),
        (("train", data, "--out", str(tmp_path / "a_file" / "run")), "under"),
        (("cv", data, "--out", str(tmp_path / "cv"), "--json", str(tmp_path)), "--json: must be a file path"),
        (("split", data, "-o", str(tmp_path)), "manifest.csv"),
        (("demo", "--out", str(tmp_path / "a_file")), "--out: must be a folder"),
    ]
    for args, message in cases:
        proc = _cli(*args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing started, nothing written


def test_split_command(make_synthetic, tmp_path: Path) -> None:
    result = runner.invoke(app, ["split", str(make_synthetic().path), "-o", str(tmp_path / "s.csv"),
                                 "--by", "site", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "train" in (tmp_path / "s.csv").read_text()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"]["train"] + summary["counts"]["val"] == 500
    site = summary["shares_by_split"]["site"]
    assert abs(site["train"]["site_a"] - site["val"]["site_a"]) < 0.05


def test_help_explains_each_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("audit", "split", "train", "analyze", "doctor", "cv", "demo"):
        assert name in result.output
    # train's help lists every config key, so none can go missing from it.
    from steadyval.config import KEYS

    text = " ".join(runner.invoke(app, ["train", "--help"], terminal_width=200).output.split())
    assert all(key in text for key in KEYS)


def test_analyze_command_writes_json_and_report(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,accuracy,val_loss,val_accuracy\n" + "".join(
        f"{i},{0.7 - 0.05 * i},{0.6 + 0.03 * i},{0.7 - 0.02 * i},{[0.70, 0.80, 0.74, 0.82, 0.73][i % 5]}\n"
        for i in range(10)))
    result = runner.invoke(app, ["analyze", str(log), "--val-size", "600", "--json", str(tmp_path / "a.json"),
                                 "--report", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert "curves.volatile" in {f["id"] for f in doc["runs"][0]["findings"]}
    assert (tmp_path / "rep" / "report.html").exists()
    bad = runner.invoke(app, ["analyze", str(log), "--columns", "nonsense"])
    assert bad.exit_code != 0


def test_train_command_writes_a_run_and_refuses_bad_keys(make_synthetic, tmp_path: Path) -> None:
    data = make_synthetic(n_train=120, n_val=40, image_size=32).path
    (tmp_path / "cfg.toml").write_text('preset = "seed-ex2"\nepochs = 2\n')
    result = runner.invoke(app, ["train", str(data), "--out", str(tmp_path / "run"), "--config",
                                 str(tmp_path / "cfg.toml"), "--set", "image_size=32", "-q",
                                 "--json", str(tmp_path / "run.json")])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["epochs_run"] == 2 and summary["config"]["model"] == "cnn_dropout"
    proc = _cli("train", str(data), "--out", str(tmp_path / "r2"), "--set", "lrr=0.1")
    assert proc.returncode == 2 and "Did you mean 'lr'" in proc.stderr and "Traceback" not in proc.stderr


def test_cv_command_reports_mean_spread_and_fold_vs_seed(make_synthetic, tmp_path: Path) -> None:
    data = make_synthetic(n_train=150, n_val=50, image_size=32, images_per_patient=2, seed=2).path
    out = tmp_path / "cv"
    result = runner.invoke(app, ["cv", str(data), "--out", str(out), "--folds", "3", "--seeds", "2", "-q",
                                 "--set", "image_size=32", "--set", "epochs=4", "--workers", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "cv.json").read_text())
    assert doc["folds"] == 3 and len(doc["trials"]) == 6
    auc = doc["measures"]["final_auroc"]
    assert len(auc["per_fold"]) == 3 and 0.5 < auc["mean"] <= 1 and 0 <= auc["fold_share"] <= 1
    # Every image is validated exactly once per seed, and no patient straddles a fold's split.
    from steadyval.train.run import load_run

    seen = []
    for t in doc["trials"]:
        if t["seed"] == 0:
            run = load_run(t["run_dir"])
            seen += list(run.val_index["path"])
    assert len(seen) == len(set(seen)) == 200
    assert "folds" in result.output and "seeds" in result.output
    assert "not measurable" not in result.output


def test_cv_says_which_measures_too_few_epochs_cannot_give(make_synthetic, tmp_path: Path) -> None:
    data = make_synthetic(n_train=80, n_val=40, image_size=32, seed=3).path
    result = runner.invoke(app, ["cv", str(data), "--out", str(tmp_path / "cv"), "--folds", "2", "--seeds", "1",
                                 "-q", "--set", "image_size=32", "--set", "epochs=2", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "not measurable in 2 epoch(s): val_loss_volatility" in result.output
    assert "nan" not in result.output


def test_doctor_refuses_bad_options_in_one_paragraph(make_synthetic, tmp_path: Path) -> None:
    data = make_synthetic(n_train=150, n_val=50, image_size=32, seed=2).path
    proc = _cli("doctor", str(data), "--out", str(tmp_path / "o"), "--seeds", "1")
    assert proc.returncode == 2 and "--seeds" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("doctor", str(data), "--out", str(tmp_path / "o"), "--budget", "huge")
    assert proc.returncode == 2 and "--budget" in proc.stderr
