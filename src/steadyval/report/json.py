"""findings.json: the machine-readable contract of DESIGN.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steadyval import __version__
from steadyval._io import atomic_write_json
from steadyval.audit.base import AuditResult


def findings_document(result: AuditResult) -> dict[str, Any]:
    """The findings.json document of an audit (``trials`` stays empty until remedies run)."""
    return {
        "steadyval_version": __version__,
        "dataset": result.dataset.summary(),
        "findings": [f.to_dict() for f in result.findings],
        "skipped_checks": result.skipped,
        "trials": [],
    }


def write_findings(result: AuditResult, path: Path | str) -> Path:
    """Write findings.json atomically; return its path."""
    path = Path(path)
    atomic_write_json(path, findings_document(result))
    return path
