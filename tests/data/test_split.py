"""Grouped, stratified splits, and `steadyval split` removing the split findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steadyval.audit import audit
from steadyval.data import stratified_group_split
from steadyval.data.split import write_split
from steadyval.errors import DataError
from steadyval.findings import Severity
from steadyval.synthetic import DISTINCT_SITES
from tests.conftest import findings_of


def test_groups_never_straddle_and_strata_are_balanced() -> None:
    rng = np.random.default_rng(0)
    n = 600
    records = pd.DataFrame({"label": rng.integers(0, 2, n), "site": rng.choice(["a", "b", "c"], n),
                            "group": [f"p{i // 3}" for i in range(n)]})
    val = stratified_group_split(records, 0.2, by=["site"], seed=1)
    assert not set(records.group[val]) & set(records.group[~val])
    assert 0.15 < val.mean() < 0.25
    for col in ("label", "site"):
        shares = pd.crosstab(records[col], val, normalize="columns")
        assert (shares[True] - shares[False]).abs().max() < 0.06


BAD_SPLIT = {"sites": DISTINCT_SITES, "images_per_patient": 3, "leak_patients": 0.3,
             "site_mix": {"train": [0.9, 0.1], "val": [0.1, 0.9]},
             "split_prevalence": {"train": 0.5, "val": 0.2}}


def test_resplit_removes_site_label_and_group_findings(make_synthetic, tmp_path: Path) -> None:
    synthetic = make_synthetic(**BAD_SPLIT)
    before = audit(synthetic.path)
    for fid in ("split.site_shift", "split.label_shift", "split.group_leakage"):
        assert findings_of(before, fid, Severity.MEDIUM), fid
    out = tmp_path / "resplit.csv"
    table = write_split(synthetic.path, out, seed=0)
    assert set(table.columns) >= {"path", "label", "split", "patient_id", "site"}
    after = audit(out)
    for fid in ("split.site_shift", "split.label_shift", "split.group_leakage"):
        assert findings_of(after, fid) == [], fid
    assert after.dataset.n == before.dataset.n


def test_split_refuses_to_write_into_data_and_names_bad_columns(make_synthetic) -> None:
    synthetic = make_synthetic()
    with pytest.raises(DataError, match="outside the data folder"):
        write_split(synthetic.path, synthetic.path.parent / "new.csv")
    with pytest.raises(DataError, match="Did you mean 'site'"):
        write_split(synthetic.path, synthetic.path.parent.parent / "x.csv", by=["sitee"])
