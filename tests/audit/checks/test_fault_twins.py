"""Every fault synthetic can plant: its finding at >= medium, and the clean twin without it."""

from __future__ import annotations

import pytest

from steadyval.findings import Severity
from steadyval.synthetic import DISTINCT_SITES
from tests.conftest import findings_of, no_high

CLEAN = {}
# (fault fields, expected finding id)
FAULTS = [
    ({"sites": DISTINCT_SITES, "site_mix": {"train": [0.9, 0.1], "val": [0.1, 0.9]}}, "split.site_shift"),
    ({"sites": DISTINCT_SITES, "site_mix": {"train": [0.9, 0.1], "val": [0.1, 0.9]}}, "split.image_shift"),
    ({"split_prevalence": {"train": 0.5, "val": 0.2}}, "split.label_shift"),
    ({"n_val": 30}, "split.small_validation"),
    ({"prevalence": 0.12}, "data.class_imbalance"),
    ({"label_noise": 0.10}, "data.label_noise"),
    ({"images_per_patient": 3, "leak_patients": 0.3}, "split.group_leakage"),
    ({"duplicates": 10}, "split.duplicate_leakage"),
    ({"corrupt": 4}, "data.unreadable"),
    ({"blank": 3}, "data.outliers"),
    ({"sites": DISTINCT_SITES, "site_prevalence": {"scanner_a": 0.8, "scanner_b": 0.2}}, "data.shortcut"),
]


@pytest.mark.parametrize(("fault", "finding_id"), FAULTS, ids=[f[1] for f in FAULTS])
def test_planted_fault_is_found(audited, fault: dict, finding_id: str) -> None:
    result = audited(**fault)
    found = findings_of(result, finding_id, Severity.MEDIUM)
    assert found, f"{finding_id} not reported at >= medium; got {[(f.id, f.severity.value) for f in result.findings]}"
    assert found[0].evidence, "a finding must carry numeric evidence"


@pytest.mark.parametrize("clean", [CLEAN, {"images_per_patient": 3}, {"sites": DISTINCT_SITES}],
                         ids=["clean", "clean-patients", "clean-distinct-sites"])
def test_clean_twin_has_no_high_finding(audited, clean: dict) -> None:
    assert no_high(audited(**clean)) == []


@pytest.mark.parametrize("finding_id", sorted({f[1] for f in FAULTS} - {"split.small_validation"}))
def test_clean_twin_lacks_each_fault(audited, finding_id: str) -> None:
    # The default val set (100 images) is honestly "small": that one is exempt here.
    assert findings_of(audited(**CLEAN), finding_id, Severity.MEDIUM) == []


def test_planted_samples_are_the_ones_reported(audited, make_synthetic) -> None:
    truth = make_synthetic(duplicates=10).truth
    finding = findings_of(audited(duplicates=10), "split.duplicate_leakage")[0]
    reported = {(p["a"], p["b"]) for p in finding.evidence["pairs"]}
    assert set(truth.duplicates) <= reported

    truth = make_synthetic(label_noise=0.10).truth
    finding = findings_of(audited(label_noise=0.10), "data.label_noise")[0]
    confident = [x["path"] for x in finding.evidence["issues"]][: finding.evidence["n_confident"]]
    precision = sum(p in set(truth.flipped) for p in confident) / len(confident)
    assert precision >= 0.8, f"only {precision:.0%} of confident label issues were planted flips"

    truth = make_synthetic(images_per_patient=3, leak_patients=0.3).truth
    finding = findings_of(audited(images_per_patient=3, leak_patients=0.3), "split.group_leakage")[0]
    assert set(finding.evidence["example_groups"]) <= set(truth.leaked_groups)
