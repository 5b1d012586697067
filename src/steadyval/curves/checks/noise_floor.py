"""curves.noise_floor: the epoch-to-epoch fluctuation is what the val-set size explains."""

from __future__ import annotations

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.findings import Finding, Severity

# Below this share of significant jumps (p < 0.05), the jumps are what chance gives.
MAX_SIGNIFICANT = 0.10
# Share of val predictions flipping per epoch above which the model is unstable even when
# net accuracy barely moves (McNemar tests the net change, not the flips).
CHURN_UNSTABLE = 0.2


def unstable(summary: dict) -> bool:
    """Significant changes for the worse, or wholesale prediction flips: more than noise."""
    return (summary.get("accuracy_drops_beyond_noise", 0.0) > MAX_SIGNIFICANT
            or summary.get("loss_rises_beyond_noise", 0.0) > MAX_SIGNIFICANT
            or summary.get("churn", 0.0) >= CHURN_UNSTABLE)


class NoiseFloor(CurveCheck):
    """Few changes for the worse are significant (McNemar / paired loss tests, else binomial)."""

    id = "curves.noise_floor"
    needs = ("n_val",)
    remedies = ("eval.kfold",)

    def run(self, ctx: CurveContext) -> list[Finding]:
        s = ctx.summary
        if "jumps_beyond_noise" not in s or unstable(s):
            return []
        rms = s.get("val_accuracy_jump_rms", 0.0)
        se = s.get("val_accuracy_se", 0.0)
        # Visible jumps that are only noise are the finding; a calm curve within noise is info.
        severity = Severity.MEDIUM if rms >= 0.02 or se >= 0.03 else Severity.INFO
        return [self.finding(
            severity, f"Val accuracy jumps are within the noise of {ctx.n_val} images",
            f"Only {s.get('accuracy_drops_beyond_noise', 0.0):.0%} of epoch-to-epoch accuracy drops and "
            f"{s.get('loss_rises_beyond_noise', 0.0):.0%} of val-loss rises are significant "
            f"({s['jump_test']}); the significant changes that remain are improvements. "
            f"With {ctx.n_val} val images the accuracy itself is uncertain by "
            f"±{196 * se:.1f} points (95 %), so the curve's jumps (RMS {100 * rms:.1f} points) say "
            "little about the model. Use a larger val set or k-fold cross-validation.",
            dict(s),
        )]
