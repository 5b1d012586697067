"""curves.volatile: fluctuation beyond the noise floor (a symptom; causes are ranked elsewhere)."""

from __future__ import annotations

from steadyval.curves.base import CurveCheck, CurveContext
from steadyval.curves.checks.noise_floor import MAX_SIGNIFICANT
from steadyval.findings import Finding, Severity


class Volatile(CurveCheck):
    """Many significant accuracy jumps and/or a high val-loss volatility; says who drives them."""

    id = "curves.volatile"
    needs = ("n_val",)
    remedies = ("optim.lower_lr", "optim.schedule", "avg.ema", "stop.early")

    def run(self, ctx: CurveContext) -> list[Finding]:
        s = ctx.summary
        share = s.get("jumps_beyond_noise")
        if share is None or share <= MAX_SIGNIFICANT:
            return []
        vol = s.get("val_loss_volatility", 0.0)
        if share >= 0.3 and vol >= 0.1:
            severity = Severity.HIGH
        elif share >= 0.2 or vol >= 0.1:
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
            severity, f"Validation is volatile beyond noise ({share:.0%} of jumps significant)",
            f"{share:.0%} of epoch-to-epoch accuracy changes are larger than {ctx.n_val} val images "
            f"explain ({s['jump_test']}); val-loss volatility is {vol:.2f}. {driver}".strip(),
            evidence, samples,
        )]


def _driver_sentence(attribution: dict) -> str:
    best = None
    for col, levels in attribution["by_column"].items():
        for level, v in levels.items():
            if v["image_share"] >= 0.05 and (best is None or v["ratio"] > best[2]["ratio"]):
                best = (col, level, v)
    parts = [f"The top 5 % of val images carry {attribution['top5pct_swing_share']:.0%} of the val-loss swings."]
    if best is not None and best[2]["ratio"] >= 1.3:
        col, level, v = best
        parts.insert(0, f"{col} = '{level}' drives the swings: {v['swing_share']:.0%} of them from "
                        f"{v['image_share']:.0%} of the images.")
    return " ".join(parts)
