"""Report: results -> findings.json and a self-contained report.html (renders, computes nothing)."""

from steadyval.report.html import write_audit_report
from steadyval.report.json import findings_document, write_findings

__all__ = ["findings_document", "write_audit_report", "write_findings"]
