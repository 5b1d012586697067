"""split.small_validation: the val set is too small to resolve epoch-to-epoch changes."""

from __future__ import annotations

import math

from steadyval.audit.base import AuditContext, Check
from steadyval.findings import Finding, Severity


class SmallValidation(Check):
    """What one val image is worth, and the smallest accuracy change the val set can resolve."""

    id = "split.small_validation"
    needs = frozenset({"val"})
    remedies = ("eval.kfold",)

    def run(self, ctx: AuditContext) -> list[Finding]:
        ds = ctx.dataset
        val = ds.split_index("val")
        n = len(val)
        n_pos = int(ds.labels[val].sum())
        n_min = min(n_pos, n - n_pos)
        # Accuracy of a model at 85 % (a typical working point): its sampling SE, and the
        # smallest change between two epochs that a two-sided test at 5 % would call real
        # (difference of two binomial estimates: 1.96 * sqrt(2) * SE).
        p = 0.85
        se = math.sqrt(p * (1 - p) / n)
        resolvable = 1.96 * math.sqrt(2) * se
        per_image = 1 / n
        evidence = {"n_val": n, "n_val_positive": n_pos, "n_val_negative": n - n_pos,
                    "points_per_image": 100 * per_image, "accuracy_se_at_85pct": 100 * se,
                    "smallest_resolvable_change_points": 100 * resolvable}
        by_size = _severity(n < 50, n < 200, n < 500)
        severity = _severity(n < 50 or n_min < 10, n < 200 or n_min < 30, n < 500)
        if severity is None:
            return []
        # The smaller class, not the val set's size, is what makes it too small (class imbalance).
        evidence["limited_by_minority"] = by_size is None or severity.rank < by_size.rank
        return [self.finding(
            severity, f"Validation set of {n} images is too small to trust epoch-to-epoch changes",
            f"Each val image is worth {100 * per_image:.2f} accuracy points; at 85 % accuracy the "
            f"sampling error is ±{100 * se:.1f} points, so changes below {100 * resolvable:.1f} "
            f"points between epochs are indistinguishable from noise. The smaller class has "
            f"{n_min} val images. Use k-fold cross-validation or a larger val set.",
            evidence,
        )]


def _severity(high: bool, medium: bool, low: bool) -> Severity | None:
    return Severity.HIGH if high else Severity.MEDIUM if medium else Severity.LOW if low else None
