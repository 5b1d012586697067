"""Audit: Dataset -> findings, before any training."""

from __future__ import annotations

from pathlib import Path

from steadyval.audit.base import AuditContext, AuditResult, Check, run_checks
from steadyval.audit.checks import ALL_CHECKS
from steadyval.data import Dataset, load_dataset


def audit_dataset(dataset: Dataset, seed: int = 0, progress: bool = False) -> AuditResult:
    """Run every audit check on an ingested dataset."""
    return run_checks(dataset, [c() for c in ALL_CHECKS], seed=seed, progress=progress)


def audit(data: Path | str, *, image_size: int = 64, positive: str | None = None,
          group: str | None = None, seed: int = 0, cache_dir: Path | None = None,
          progress: bool = False) -> AuditResult:
    """Ingest DATA and audit it: the library form of ``steadyval audit``."""
    ds = load_dataset(data, image_size=image_size, positive=positive, group=group, seed=seed,
                      cache_dir=cache_dir, progress=progress)
    return audit_dataset(ds, seed=seed, progress=progress)


__all__ = ["AuditContext", "AuditResult", "Check", "audit", "audit_dataset", "run_checks"]
