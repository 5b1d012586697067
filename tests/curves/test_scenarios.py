"""Train on synthetic data with one planted cause, then analyse: the cause shows in the curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from steadyval.config import load_config
from steadyval.curves import analyze_history, read_log
from steadyval.data import load_dataset
from steadyval.findings import Severity
from steadyval.synthetic import DISTINCT_SITES
from steadyval.train import train

BASE = ["preset=seed-ex2", "epochs=10", "image_size=32"]


def _run(make_synthetic, tmp_path: Path, spec: dict, sets: list[str]):
    synthetic = make_synthetic(image_size=32, **spec)
    ds = load_dataset(synthetic.path, image_size=32)
    train(ds, load_config(sets=BASE + sets), tmp_path / "run")
    return analyze_history(read_log(tmp_path / "run"))


def _at_least_medium(result, finding_id):
    return [f for f in result.findings if f.id == finding_id and f.severity.at_least(Severity.MEDIUM)]


def test_site_shifted_val_set_is_blamed_in_loss_attribution(make_synthetic, tmp_path: Path) -> None:
    spec = {"n_train": 400, "n_val": 160, "sites": DISTINCT_SITES,
            "site_mix": {"train": [1.0, 0.0], "val": [0.5, 0.5]}}
    result = _run(make_synthetic, tmp_path, spec, [])
    site = result.attribution["by_column"]["site"]
    assert site["scanner_b"]["ratio"] > 2 * site["scanner_a"]["ratio"]
    volatile = _at_least_medium(result, "curves.volatile")
    assert volatile and "scanner_b" in volatile[0].message


def test_sixteen_val_images_are_noise(make_synthetic, tmp_path: Path) -> None:
    result = _run(make_synthetic, tmp_path, {"n_train": 400, "n_val": 16}, [])
    assert _at_least_medium(result, "curves.noise_floor")
    assert not _at_least_medium(result, "curves.volatile")


@pytest.mark.parametrize("lr", ["0.5"])
def test_sgd_with_a_huge_learning_rate(make_synthetic, tmp_path: Path, lr: str) -> None:
    result = _run(make_synthetic, tmp_path, {"n_train": 400, "n_val": 100}, ["optimizer=sgd", f"lr={lr}"])
    assert _at_least_medium(result, "optim.lr_too_high")
