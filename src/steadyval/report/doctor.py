"""The doctor's outputs: findings.json (with the diagnosis and the trials) and report.html.

Renders a DoctorResult; computes nothing (the curves it draws are the runs' own numbers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steadyval import __version__
from steadyval._io import atomic_write_json, atomic_write_text
from steadyval.experiments.remedies import REMEDIES
from steadyval.report import plots
from steadyval.report.analysis import curve_series, per_image_plots
from steadyval.report.html import MAX_THUMBS, audit_gallery, finding_view, template_env, thumbnailer

if TYPE_CHECKING:
    from steadyval.doctor import DoctorResult


def write_doctor_outputs(result: DoctorResult, json_path: Path | None = None) -> tuple[Path, Path]:
    """Write ``findings.json`` (or ``json_path``) and ``report.html`` into the result's out dir."""
    out = Path(result.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = json_path or out / "findings.json"
    atomic_write_json(jpath, result.to_dict())
    rpath = out / "report.html"
    atomic_write_text(rpath, render_doctor_report(result))
    return jpath, rpath


def render_doctor_report(r: DoctorResult) -> str:
    """The doctor report as one self-contained HTML string (verdict first)."""
    from steadyval.doctor import best_arm

    ds = r.dataset
    thumb = thumbnailer(ds)
    arms = [r.baseline, *r.arms]
    arm_views = [_arm_view(a, r) for a in arms]
    curves_base = [curve_series(c.history) for c in r.baseline_curves]
    n_val = r.baseline_curves[0].summary.get("n_val") if r.baseline_curves else None
    plots_base = [plots.curve_panel(curves_base, n_val)] if curves_base else []
    first = r.baseline_curves[0] if r.baseline_curves else None
    swings: list[dict[str, Any]] = []
    if first is not None and first.history.per_image:
        plots_base.extend(per_image_plots(first))
        top = (first.attribution or {}).get("top_images", [])[:MAX_THUMBS]
        if top:
            swings.append({"title": "The val images that drive the loss swings (baseline, first seed)",
                           "kind": "swings", "entries": [(thumb(x["path"]), x) for x in top]})
    best = best_arm(r.arms)
    best_curves = None
    if best is not None:
        from steadyval.curves.readers import read_log

        series = [curve_series(read_log(Path(o.run_dir))) for o in best.outcomes]
        best_curves = {"name": best.arm, "plot": plots.curve_panel(series, best.outcomes[0].n_val)}
    return template_env().get_template("doctor.html.j2").render(
        version=__version__, headline=r.headline, unstable=r.unstable, summary=ds.summary(),
        causes=[c.to_dict() for c in r.causes], arms=arm_views,
        comparison=plots.trial_intervals([{"name": a["name"], "verdict": a["verdict"], "changes": a["changes"]}
                                          for a in arm_views[1:]]) if r.arms else None,
        not_trialled=r.not_trialled, plots_base=plots_base, best_curves=best_curves,
        findings=[finding_view(f) for f in r.findings],
        gallery=[*swings, *audit_gallery(r.audit.findings, thumb)],
        configs=_config_rows(r, arms), seconds=r.seconds, total=sum(r.seconds.values()),
        seeds=r.seeds, folds=r.folds, budget=r.budget, reused=r.reused_trials, replayed=r.replayed_trials,
        resumed=r.resumed_trials,
        skipped={**r.audit.skipped, **r.probes.skipped},
    )


def _arm_view(a: Any, r: DoctorResult) -> dict[str, Any]:
    return {"name": a.arm, "verdict": a.verdict, "reason": a.reason, "seeds": a.seeds,
            "values": {k: v.to_dict() for k, v in a.values.items()},
            "changes": {k: v.to_dict() for k, v in a.changes.items()},
            "split_note": "; ".join(filter(None, (REMEDIES[x].val_set for x in a.remedies if x in REMEDIES)))}


def _config_rows(r: DoctorResult, arms: list[Any]) -> list[dict[str, Any]]:
    """Baseline: every setting; each remedy arm: the settings that differ (from its runs' config.json)."""
    base = r.config.model_dump(mode="json")
    rows = []
    for a in arms:
        if not a.outcomes:
            continue
        if a.arm == "baseline":
            settings = {k: v for k, v in base.items() if k != "seed"}
        else:
            cfg = json.loads((Path(a.outcomes[0].run_dir) / "config.json").read_text())
            settings = {k: v for k, v in cfg.items() if k != "seed" and base.get(k) != v}
        rows.append({"name": "baseline (your config)" if a.arm == "baseline" else a.arm, "diff": settings,
                     "seeds": sorted({o.seed for o in a.outcomes}), "keys": [o.key for o in a.outcomes]})
    return rows
