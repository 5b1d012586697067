"""report.html for an audit: one self-contained page (inline SVG and PNG, no scripts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from steadyval import __version__
from steadyval._io import atomic_write_text
from steadyval.audit.base import AuditResult
from steadyval.data.properties import CONTENT_PROPERTIES
from steadyval.findings import Severity
from steadyval.report import plots

MAX_THUMBS = 24


def template_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("steadyval", "report/templates"),
        autoescape=True,  # every user-controlled string (paths, labels, sites) is escaped
        undefined=jinja2.StrictUndefined,
    )


def write_audit_report(result: AuditResult, out_dir: Path | str) -> Path:
    """Render the audit report into ``out_dir/report.html``; return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_audit_report(result))
    return path


def render_audit_report(result: AuditResult) -> str:
    """The audit report as an HTML string."""
    ds = result.dataset
    rec = ds.records
    thumb = thumbnailer(ds)

    bars = [plots.share_bars(rec, "label_name", "class by split")]
    for col in ds.metadata:
        if 2 <= rec[col].astype(str).nunique() <= 20:
            bars.append(plots.share_bars(rec, col, f"{col} by split"))
    gallery = audit_gallery(result.findings, thumb)
    counts = {s.value: sum(f.severity == s for f in result.findings) for s in Severity}
    return template_env().get_template("audit.html.j2").render(
        version=__version__,
        summary=ds.summary(),
        counts=counts,
        findings=[finding_view(f) for f in result.findings],
        skipped=result.skipped,
        unreadable=ds.unreadable[:50],
        bars=bars,
        histograms=plots.property_histograms(rec, ds.properties,
                                             [*CONTENT_PROPERTIES, "file_bytes"]),
        gallery=gallery,
    )


def audit_gallery(findings: list[Any], thumb: Any) -> list[dict[str, Any]]:
    """Thumbnails behind the findings: duplicate pairs, suspected label errors, outliers."""
    gallery: list[dict[str, Any]] = []
    for f in findings:
        if f.id == "split.duplicate_leakage":
            pairs = [(thumb(p["a"]), thumb(p["b"]), p) for p in f.evidence["pairs"][:MAX_THUMBS]]
            gallery.append({"title": f.title, "kind": "pairs", "entries": pairs})
        elif f.id == "data.label_noise" and f.severity != Severity.INFO:
            items = [(thumb(x["path"]), x) for x in f.evidence["issues"][:MAX_THUMBS]]
            gallery.append({"title": f.title, "kind": "issues", "entries": items})
        elif f.id == "data.outliers":
            items = [(thumb(x["path"]), x) for x in f.evidence["images"][:MAX_THUMBS]]
            gallery.append({"title": f.title, "kind": "outliers", "entries": items})
    return gallery


def thumbnailer(ds: Any) -> Any:
    """path -> PNG data URI of that image (None for a path not in the dataset)."""
    index_of = {p: i for i, p in enumerate(ds.records["path"])}

    def thumb(path: str) -> str | None:
        i = index_of.get(path)
        return plots.thumbnail_uri(ds.images[i]) if i is not None else None

    return thumb


def finding_view(f: Any) -> dict[str, Any]:
    # Scalars go in a table; long lists (pairs, issues) are shown as thumbnails instead.
    scalars = {k: v for k, v in f.evidence.items()
               if isinstance(v, (int, float, str, bool)) or v is None}
    nested = {k: v for k, v in f.evidence.items()
              if isinstance(v, dict) and len(json.dumps(v, default=str)) < 600}
    return {"id": f.id, "severity": f.severity.value, "title": f.title, "message": f.message,
            "scalars": scalars, "nested": {k: json.dumps(v, default=str) for k, v in nested.items()},
            "remedies": f.remedies, "samples": f.samples[:10]}
