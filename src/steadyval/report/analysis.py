"""The ``analyze`` outputs: JSON of the curve results and a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steadyval import __version__
from steadyval._io import atomic_write_json, atomic_write_text
from steadyval.curves import same_config
from steadyval.curves.base import CurveResult
from steadyval.curves.history import History
from steadyval.curves.measures import per_image_losses
from steadyval.report import plots
from steadyval.report.html import finding_view, template_env


def seed_summary(results: list[CurveResult]) -> dict[str, Any] | None:
    """Mean and spread over runs of one config (seeds) of each headline measure."""
    if not same_config([r.history for r in results]):
        return None
    out: dict[str, Any] = {"runs": len(results)}
    keys = {k for r in results for k, v in r.summary.items() if isinstance(v, float)}
    for key in sorted(keys):
        values = np.array([r.summary.get(key, np.nan) for r in results], dtype=float)
        if np.isnan(values).all():
            continue  # undefined for every run (e.g. volatility of a 3-epoch run)
        spread = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else 0.0
        out[key] = {"mean": float(np.nanmean(values)), "sd": spread,
                    "min": float(np.nanmin(values)), "max": float(np.nanmax(values))}
    return out


def analysis_document(results: list[CurveResult]) -> dict[str, Any]:
    """Machine-readable analysis: per run, its measures, findings and loss attribution."""
    return {
        "steadyval_version": __version__,
        "seeds": seed_summary(results),
        "runs": [{"source": r.history.source, "summary": r.summary,
                  "findings": [f.to_dict() for f in r.findings], "skipped_checks": r.skipped,
                  "loss_attribution": r.attribution} for r in results],
    }


def write_analysis_json(results: list[CurveResult], path: Path | str) -> Path:
    """Write the analysis JSON atomically."""
    atomic_write_json(Path(path), analysis_document(results))
    return Path(path)


def write_analysis_report(results: list[CurveResult], out_dir: Path | str) -> Path:
    """Render report.html for the analysed runs into ``out_dir``."""
    runs = []
    for r in results:
        h = r.history
        view: dict[str, Any] = {"source": h.source, "summary": r.summary, "notes": h.notes,
                                "findings": [finding_view(f) for f in r.findings],
                                "skipped": r.skipped, "plots": []}
        view["plots"].append(plots.curve_panel([curve_series(h)], r.summary.get("n_val")))
        view["plots"].extend(per_image_plots(r))
        view["top_images"] = (r.attribution or {}).get("top_images", [])[:15]
        runs.append(view)
    seeds = None
    if same_config([r.history for r in results]):
        seeds = plots.curve_panel([curve_series(r.history) for r in results], results[0].summary.get("n_val"))
    html = template_env().get_template("analysis.html.j2").render(version=__version__, runs=runs, seeds=seeds)
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, html)
    return path


def per_image_plots(r: CurveResult) -> list[str]:
    """The churn map and the val loss per subgroup of one run (none without per-image predictions)."""
    h = r.history
    if not h.per_image:
        return []
    labels = h.val_index["label"].to_numpy()  # type: ignore[index]
    correct = (h.val_probs >= 0.5) == labels.astype(bool)[None, :]  # type: ignore[operator]
    losses = per_image_losses(h.val_probs, labels)  # type: ignore[arg-type]
    return [plots.churn_heatmap(correct), *[plots.subgroup_loss(losses, h.val_index, col)  # type: ignore[arg-type]
                                           for col in (r.attribution or {}).get("by_column", {})]]


def curve_series(h: History) -> dict[str, np.ndarray | None]:
    """The columns ``plots.curve_panel`` draws, from one History."""
    return {"epoch": h.metrics["epoch"].to_numpy(), "loss": h.column("loss"),
            "val_loss": h.column("val_loss"), "val_accuracy": h.column("val_accuracy"),
            "accuracy": h.column("accuracy")}
