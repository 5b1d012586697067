"""The check contract and the runner that isolates checks from each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from steadyval.data import Dataset
from steadyval.data.split import group_ids
from steadyval.findings import Finding, FindingSource, Severity, run_isolated

# Metadata columns with more levels than this are identifiers, not sites or devices.


class AuditContext:
    """The dataset plus what several checks share, computed once on first use."""

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed

    @cached_property
    def features(self) -> np.ndarray:
        """(N, F) float32 image features (random conv filters, thumbnails, properties)."""
        from steadyval.audit.features import image_features

        return image_features(self.dataset, seed=self.seed)

    @cached_property
    def categorical_metadata(self) -> list[str]:
        """Metadata columns that look like site / device / view."""
        return self.dataset.categorical_metadata

    @cached_property
    def groups(self) -> np.ndarray:
        """(N,) group ids; images without a group are their own group."""
        return group_ids(self.dataset.records)


    def effective_n(self, idx: np.ndarray) -> int:
        """Independent units among rows ``idx``: patients when known, else images.

        A patient's images share anatomy, scanner and label, so tests that count images as
        independent are overconfident on grouped data; they use this count instead.
        """
        return len(set(self.groups[idx])) if len(idx) else 0


class Check(FindingSource, abstract=True):
    """One diagnostic: declares its finding id and what it needs, returns findings.

    Subclasses set ``id`` (a finding id from the catalogue), ``needs`` (a subset of
    ``{"val", "metadata", "groups"}``) and implement :meth:`run`.
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def missing(self, ctx: AuditContext) -> str | None:
        """Why this check cannot run on ``ctx``, or None when it can."""
        ds = ctx.dataset
        if "val" in self.needs and len(ds.split_index("val")) == 0:
            return "no validation images"
        if "metadata" in self.needs and not ctx.categorical_metadata:
            return "no categorical metadata column (site, device, view, …)"
        if "groups" in self.needs and ds.group_column is None:
            return "no group / patient column (name one with --group)"
        return None



@dataclass
class AuditResult:
    """Everything the audit found, plus which checks were skipped and why."""

    dataset: Dataset
    findings: list[Finding]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def worst(self) -> Severity | None:
        """The most severe finding's severity, or None when there is none."""
        return self.findings[0].severity if self.findings else None

    def by_id(self, finding_id: str) -> list[Finding]:
        """The findings with one id."""
        return [f for f in self.findings if f.id == finding_id]


def run_checks(dataset: Dataset, checks: list[Check], seed: int = 0,
               progress: bool = False) -> AuditResult:
    """Run ``checks``; a check that raises becomes a ``check.failed`` info finding."""
    findings, skipped, seconds = run_isolated(checks, AuditContext(dataset, seed), label="auditing",
                                              progress=progress)
    return AuditResult(dataset, findings, skipped, seconds)
