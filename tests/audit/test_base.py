"""The check contract and the isolating runner."""

from __future__ import annotations

import pytest

from steadyval.audit.base import AuditContext, Check, run_checks
from steadyval.audit.checks import ALL_CHECKS
from steadyval.data import load_dataset
from steadyval.findings import Finding, Severity


def test_a_check_must_declare_a_catalogued_id() -> None:
    with pytest.raises(TypeError, match="must set `id`"):
        class Nameless(Check):  # noqa: F841
            pass
    with pytest.raises(TypeError, match="'split.made_up'"):
        class Typo(Check):  # noqa: F841
            id = "split.made_up"


def test_every_check_has_its_own_file_and_test_name() -> None:
    ids = [c.id for c in ALL_CHECKS]
    assert len(ids) == len(set(ids)) == 11


def test_a_failing_check_becomes_an_info_finding_and_others_still_run(make_synthetic) -> None:
    class Broken(Check):
        id = "data.outliers"

        def run(self, ctx: AuditContext) -> list[Finding]:
            raise RuntimeError("boom")

    class Works(Check):
        id = "data.class_imbalance"

        def run(self, ctx: AuditContext) -> list[Finding]:
            return [self.finding(Severity.LOW, "t", "m", {"x": 1})]

    ds = load_dataset(make_synthetic().path)
    result = run_checks(ds, [Broken(), Works()])
    assert [f.id for f in result.findings] == ["data.class_imbalance", "check.failed"]
    assert "boom" in result.findings[1].message


def test_checks_that_lack_inputs_are_skipped_with_a_reason(make_synthetic) -> None:
    ds = load_dataset(make_synthetic(layout="folder").path)  # a folder has no metadata or groups
    result = run_checks(ds, [c() for c in ALL_CHECKS])
    assert "site/device" not in str(result.skipped)
    assert result.skipped["split.site_shift"].startswith("no categorical metadata")
    assert result.skipped["split.group_leakage"].startswith("no group")
