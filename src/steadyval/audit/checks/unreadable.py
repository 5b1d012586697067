"""data.unreadable: files that could not be decoded were left out; list them."""

from __future__ import annotations

from collections import Counter

from steadyval.audit.base import AuditContext, Check
from steadyval.findings import Finding, Severity


class Unreadable(Check):
    """Files in DATA that are empty, truncated, missing or not images."""

    id = "data.unreadable"

    def run(self, ctx: AuditContext) -> list[Finding]:
        bad = ctx.dataset.unreadable
        if not bad:
            return []
        total = ctx.dataset.n + len(bad)
        share = len(bad) / total
        # Missing data changes what the model sees; a large share means a broken pipeline.
        severity = Severity.HIGH if share > 0.10 else Severity.MEDIUM
        reasons = Counter(u.reason.split(":")[0] for u in bad)
        return [self.finding(
            severity, f"{len(bad)} file(s) could not be used",
            f"{len(bad)} of {total} files ({share:.1%}) were left out: "
            + "; ".join(f"{n} × {r}" for r, n in reasons.most_common(4))
            + ". Fix or remove them so that the split you think you have is the one you train on.",
            {"n_unreadable": len(bad), "share": share, "reasons": dict(reasons),
             "files": [{"path": u.path, "reason": u.reason} for u in bad[:200]]},
            [u.path for u in bad[:50]],
        )]
