"""data.class_imbalance: the minority class is small enough to matter."""

from __future__ import annotations

from steadyval.audit.base import AuditContext, Check
from steadyval.findings import Finding, Severity


class ClassImbalance(Check):
    """Minority-class share over all images; accuracy then swings with the threshold."""

    id = "data.class_imbalance"
    remedies = ("loss.class_weights", "sampler.balanced")

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        counts = ds.records["label_name"].value_counts()
        minority, n_min = str(counts.index[-1]), int(counts.iloc[-1])
        share = n_min / ds.n
        if share >= 0.40:
            return []
        severity = Severity.HIGH if share < 0.10 else Severity.MEDIUM if share < 0.25 else Severity.LOW
        majority_acc = 1 - share
        return [self.finding(
            severity, f"Class imbalance: '{minority}' is {share:.0%} of the images",
            f"'{minority}' has {n_min} of {ds.n} images ({share:.1%}). A model that always answers "
            f"'{counts.index[0]}' scores {majority_acc:.0%} accuracy, so accuracy moves with the "
            "decision threshold more than with learning; watch AUROC, and weight the classes.",
            {"counts": {str(k): int(v) for k, v in counts.items()}, "minority": minority,
             "minority_share": share, "majority_accuracy": majority_acc},
        )]
