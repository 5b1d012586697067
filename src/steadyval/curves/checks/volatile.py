"""curves.volatile: fluctuation beyond the noise floor (a symptom; causes are ranked elsewhere)."""

from __future__ import annotations

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.curves.checks.noise_floor import CHURN_UNSTABLE, unstable
from steadyval.findings import Finding, Severity


class Volatile(CurveCheck):
    """Many significant accuracy jumps and/or a high val-loss volatility; says who drives them."""

    id = "curves.volatile"
    needs = ("n_val",)
    remedies = ("optim.lower_lr", "optim.schedule", "avg.ema", "stop.early")

    def run(self, ctx: CurveContext) -> list[Finding]:
        s = ctx.summary
        if "jumps_beyond_noise" not in s or not unstable(s):
            return []
        share = s.get("accuracy_drops_beyond_noise", 0.0)
        churn = s.get("churn", 0.0)
        loss_share = s.get("loss_rises_beyond_noise", 0.0)
        vol = s.get("val_loss_volatility", 0.0)
        worst = max(share, loss_share)
        if (worst >= 0.3 and vol >= 0.1) or churn >= 2 * CHURN_UNSTABLE:
            severity = Severity.HIGH
        elif worst >= 0.2 or vol >= 0.1 or churn >= CHURN_UNSTABLE:
            severity = Severity.MEDIUM
        else:
            severity = Severity.LOW
        evidence = dict(s)
        driver = ""
        samples: list[str] = []
        if ctx.attribution is not None:
            evidence["loss_attribution"] = ctx.attribution
            driver = _driver_sentence(ctx.attribution)
            samples = [x["path"] for x in ctx.attribution["top_images"][:10]]
        return [self.finding(
            severity, "Validation is volatile beyond noise (" + _headline(share, loss_share, churn) + ")",
            f"{share:.0%} of epoch-to-epoch accuracy drops and {loss_share:.0%} of val-loss rises are "
            f"larger than {ctx.n_val} val images explain ({s['jump_test']}); val-loss volatility "
            f"is {vol:.2f}"
            + (f"; {churn:.0%} of val predictions flip between consecutive epochs" if churn else "")
            + f". {driver}".rstrip(),
            evidence, samples,
        )]


def _headline(share: float, loss_share: float, churn: float) -> str:
    if churn >= CHURN_UNSTABLE:
        return f"{churn:.0%} of val predictions flip per epoch"
    if loss_share >= share:
        return f"{loss_share:.0%} of val-loss rises significant"
    return f"{share:.0%} of accuracy drops significant"


def _driver_sentence(attribution: dict) -> str:
    best = None
    for col, levels in attribution["by_column"].items():
        for level, v in levels.items():
            if v["n_images"] >= 10 and (best is None or v["ratio"] > best[2]["ratio"]):
                best = (col, level, v)
    parts = [f"The top 5 % of val images carry {attribution['top5pct_swing_share']:.0%} of the val-loss swings."]
    if best is not None and best[2]["ratio"] >= 1.5:
        col, level, v = best
        parts.insert(0, f"{col} = '{level}' drives the swings: each of its images moves val loss "
                        f"{v['ratio']:.1f}x as much as the others ({v['swing_share']:.0%} of the swings "
                        f"from {v['image_share']:.0%} of the images).")
    return " ".join(parts)
