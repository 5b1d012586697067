"""data.outliers: blank, tiny, odd-shaped or odd-intensity images."""

from __future__ import annotations

import numpy as np

from steadyval.audit.base import AuditContext, Check
from steadyval.findings import Finding, Severity

# An intensity is "odd" when it lies beyond the central 99 % of images by more than half
# that range. A median/MAD z-score flags a whole second scanner (a legitimate
# sub-population of several per cent) as outliers; this rule does not.
BULK = (0.5, 99.5)
GAP = 0.5


class Outliers(Check):
    """Blank images (no contrast), tiny originals, odd aspect ratios, extreme intensity."""

    id = "data.outliers"

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        props = ds.properties
        side = np.minimum(props["width"], props["height"]).to_numpy(dtype=float)
        log_aspect = np.log(props["aspect"].to_numpy(dtype=float).clip(1e-3))
        reasons: dict[str, np.ndarray] = {
            "blank": props["contrast"].to_numpy() < 2.0,
            "tiny": (side < 16) | (side < 0.25 * np.median(side)),
            "odd aspect": np.abs(log_aspect - np.median(log_aspect)) > np.log(1.5),
            "odd brightness": _beyond_bulk(props["brightness"].to_numpy()),
            "odd contrast": _beyond_bulk(props["contrast"].to_numpy()),
        }
        flagged = np.zeros(ds.n, dtype=bool)
        for mask in reasons.values():
            flagged |= mask
        if not flagged.any():
            return []
        serious = reasons["blank"] | reasons["tiny"]
        share = flagged.mean()
        if serious.mean() > 0.05:
            severity = Severity.HIGH
        elif serious.any() or share > 0.02:
            severity = Severity.MEDIUM
        else:
            severity = Severity.LOW
        counts = {k: int(v.sum()) for k, v in reasons.items() if v.any()}
        idx = np.flatnonzero(flagged)
        order = idx[np.argsort(~serious[idx])]  # blank and tiny first
        paths = ds.records["path"].to_numpy()
        listed = [{"path": paths[i], "split": ds.records["split"].iat[i],
                   "why": [k for k, m in reasons.items() if m[i]]} for i in order[:100]]
        return [self.finding(
            severity, f"{int(flagged.sum())} outlier image(s)",
            f"{int(flagged.sum())} images ({share:.1%}) look unlike the rest: "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + ". Blank or tiny images carry no diagnosis; one in val is a fixed loss term.",
            {"counts": counts, "share": float(share), "images": listed},
            [x["path"] for x in listed[:50]],
        )]


def _beyond_bulk(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, BULK)
    margin = GAP * max(hi - lo, 1e-6)
    return (x < lo - margin) | (x > hi + margin)
