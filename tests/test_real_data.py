"""Real third-party data from ../shared/data (skipped with a reason when it is not beside us)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steadyval.audit import audit
from steadyval.findings import Severity
from tests.conftest import findings_of, shared_data


def test_chestxray_resized_copies_and_patients_leak(tmp_path: Path) -> None:
    """train_originals_sample/ as train, val/ + test/ as val: the source repo's real leak."""
    root = shared_data("chestxray_pneumonia_224")
    m = pd.read_csv(root / "manifest.csv")
    manifest = pd.DataFrame({
        "path": [str(root / p) for p in m["path"]],
        "label": m["label"],
        "split": np.where(m["split_in_source"] == "train", "train", "val"),
        "patient_id": m["patient_id"],
    })
    manifest.to_csv(tmp_path / "leak.csv", index=False)
    result = audit(tmp_path / "leak.csv")
    dup = findings_of(result, "split.duplicate_leakage", Severity.MEDIUM)
    assert dup, [f.id for f in result.findings]
    train = m[m["split_in_source"] == "train"].set_index("original_in_source_repo")["path"]
    copies = m[(m["split_in_source"] != "train") & m["original_in_source_repo"].isin(train.index)]
    expected = {(str(root / train[o]), str(root / p))
                for o, p in zip(copies["original_in_source_repo"], copies["path"], strict=True)}
    assert len(expected) >= 40
    reported = {(p["a"], p["b"]) for p in dup[0].evidence["pairs"]}
    found = len(expected & reported) / len(expected)
    assert found >= 0.95, f"found {found:.0%} of the {len(expected)} resized copies"
    assert findings_of(result, "split.group_leakage", Severity.MEDIUM)


def test_malaria_image_level_split_leaks_slides(tmp_path: Path) -> None:
    root = shared_data("malaria_nih_subset")
    m = pd.read_csv(root / "manifest.csv")
    rng = np.random.default_rng(0)
    m["split"] = np.where(rng.random(len(m)) < 0.2, "val", "train")
    m["path"] = [str(root / p) for p in m["path"]]
    m[["path", "label", "split", "slide_patient_id"]].to_csv(tmp_path / "m.csv", index=False)
    result = audit(tmp_path / "m.csv", group="slide_patient_id")
    leak = findings_of(result, "split.group_leakage", Severity.HIGH)
    assert leak and leak[0].evidence["group_column"] == "slide_patient_id"
    # Distinct cells on black backgrounds must not pass as near-duplicates.
    assert findings_of(result, "split.duplicate_leakage") == []


@cache
def _audit_npz(name: str):  # each .npz is audited once per session
    return audit(shared_data("medmnist") / name)


@pytest.mark.parametrize("name", ["pneumoniamnist_balanced_aksufatih.npz",
                                  "pneumoniamnist_kaggle-rijulshr_varun19424.npz",
                                  "breastmnist_KamalJain777.npz"])
def test_medmnist_npz_load_and_audit(name: str) -> None:
    result = _audit_npz(name)
    assert result.dataset.n > 500 and not result.dataset.unreadable
    assert not findings_of(result, "check.failed")


def test_medmnist_known_train_val_duplicates() -> None:
    # SOURCE.md: the Kaggle copy shares 8 exact images between train and val.
    result = _audit_npz("pneumoniamnist_kaggle-rijulshr_varun19424.npz")
    dup = findings_of(result, "split.duplicate_leakage", Severity.MEDIUM)
    assert dup and dup[0].evidence["n_exact_pairs"] >= 8
    assert findings_of(result, "split.label_shift", Severity.HIGH)  # 90 % vs 74 % pneumonia


def test_idc_patches_with_odd_sizes_audit_cleanly() -> None:
    root = shared_data("idc_breast_histopathology_subset")
    result = audit(root / "manifest.csv")
    assert result.dataset.n == 4139
    assert not findings_of(result, "check.failed")
    outliers = findings_of(result, "data.outliers")
    assert outliers and outliers[0].evidence["counts"].get("tiny", 0) + \
        outliers[0].evidence["counts"].get("odd aspect", 0) >= 20


def test_breastmnist_near_duplicate_scans_are_reported() -> None:
    # SOURCE.md counts exact md5 duplicates only (1 train/test). The BUSI scans behind
    # BreastMNIST also repeat with small intensity changes: train_images[488] and
    # val_images[76] differ by 0.7 grey levels on average at native 28 px (checked by eye).
    result = _audit_npz("breastmnist_KamalJain777.npz")
    pairs = {(p["a"], p["b"]) for f in findings_of(result, "split.duplicate_leakage")
             for p in f.evidence["pairs"]}
    assert ("train_images[488]", "val_images[76]") in pairs
