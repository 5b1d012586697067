"""findings.json follows the contract; report.html is self-contained and escapes user strings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from steadyval.audit import audit
from steadyval.findings import FINDING_IDS, Severity
from steadyval.report import write_audit_report, write_findings


def test_findings_json_contract(audited, tmp_path: Path) -> None:
    result = audited(duplicates=10, corrupt=2)
    doc = json.loads(write_findings(result, tmp_path / "f.json").read_text())
    assert set(doc) >= {"steadyval_version", "dataset", "findings", "trials"}
    assert set(doc["dataset"]) >= {"n_images", "n_train", "n_val", "classes", "metadata", "positive"}
    ranks = [list(Severity).index(Severity(f["severity"])) for f in doc["findings"]]
    assert ranks == sorted(ranks), "findings must be sorted most severe first"
    for f in doc["findings"]:
        assert f["id"] in FINDING_IDS
        assert set(f) == {"id", "severity", "title", "message", "evidence", "samples", "remedies"}


def test_report_is_self_contained_and_escapes_user_strings(make_synthetic, tmp_path: Path) -> None:
    synthetic = make_synthetic(duplicates=6, label_noise=0.1, blank=2)
    evil = "<script>alert(1)</script>"
    manifest = pd.read_csv(synthetic.path)
    manifest["site"] = manifest["site"].replace({"site_a": evil})  # drawn in the SVG bars
    manifest["label"] = manifest["label"].replace({"pneumonia": evil})  # printed as text
    data = tmp_path / "data"
    data.mkdir()
    path = data / "manifest.csv"
    manifest["path"] = [str((synthetic.path.parent / p).resolve()) for p in manifest["path"]]
    manifest.to_csv(path, index=False)
    html = write_audit_report(audit(path), tmp_path / "out").read_text()
    assert evil not in html and "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "report must open offline"
    assert "<script" not in html
    assert html.count("data:image/png;base64,") >= 6  # duplicate pairs, label issues, outliers
