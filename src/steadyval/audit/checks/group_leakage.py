"""split.group_leakage: the same patient / group appears in more than one split."""

from __future__ import annotations

from steadyval.audit.base import AuditContext, Check
from steadyval.findings import Finding, Severity

PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


class GroupLeakage(Check):
    """Groups shared between splits, and the images of those groups."""

    id = "split.group_leakage"
    needs = frozenset({"groups"})
    remedies = ("split.rebalance",)

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        rec = ds.records
        col = ds.group_column
        known = rec[rec["group"].astype(str) != ""]
        by_split = {s: set(known.loc[known["split"] == s, "group"]) for s in ("train", "val", "test")}
        out = []
        for a, b in PAIRS:
            shared = by_split[a] & by_split[b]
            if not shared:
                continue
            in_b = rec[(rec["split"] == b) & rec["group"].isin(shared)]
            share = len(in_b) / max(1, (rec["split"] == b).sum())
            # Any shared patient inflates the estimate; a sizeable share makes it meaningless.
            severity = (Severity.HIGH if share >= 0.02 or len(in_b) >= 10 else Severity.MEDIUM)
            if b == "test" and a == "val":
                severity = Severity.MEDIUM if severity == Severity.HIGH else Severity.LOW
            examples = sorted(shared)[:20]
            out.append(self.finding(
                severity, f"{len(shared)} {col} value(s) appear in both {a} and {b}",
                f"{len(in_b)} {b} images ({share:.1%}) belong to a {col} that is also in {a}. "
                f"The model has seen these patients, so {b} scores look better than they are and "
                f"move with the {a} curve. Re-split grouped by {col}.",
                {"splits": [a, b], "group_column": col, "n_shared_groups": len(shared),
                 "n_images": int(len(in_b)), "share_of_split": share, "example_groups": examples},
                in_b["path"].head(50).tolist(),
            ))
        return out
