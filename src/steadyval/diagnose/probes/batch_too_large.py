"""optim.batch_too_large: a batch far above the gradient noise scale.

The other side of ``optim.batch_too_small``: the simple noise scale B_noise (McCandlish et
al. 2018), from the same points (computed once and shared), judged by the larger of the
fresh models' and the trained weights' pooled estimates (``large_batch_scale``). Their model of
training: reaching a given loss takes S = S_min (1 + B_noise / B) steps and E = E_min
(1 + B / B_noise) epochs. Far above B_noise a step's gradient is nearly the full gradient,
so a larger batch buys almost no progress per step and costs its size in images: at
B = 4 B_noise an epoch does about 2.5x less than at B / 4. With the epochs fixed, that
means fewer steps, a less trained model, and (Keskar et al. 2017) sharper minima that
generalise worse.

Rule: reported when B / B_noise >= ``HIGH_RATIO`` (B counted at most as the training set).
Measured on synthetic chest images at 32 px, 1,200 training images, fresh models: B_noise
128 for the seed's Ex. 2 model and 30 for Ex. 1, so batch 512 is 4-17x it, while the
usual batch of 32 is 0.25-1x. Being a ratio of noisy sums, the estimate is then tested:
from the same weights, ``FIT_EPOCHS`` short epochs over the same images (the whole training
set up to ``4 x`` the batch per epoch, so the configured batch takes more than one step),
at the batch and at a quarter of it (the ``optim.smaller_batch`` remedy), same learning
rate, ``FIT_SEEDS`` seeds. Severity as for the small batch: low on the ratio alone; medium
when the quarter batch ends lower in most seeds; high when it does in every seed and in
some seed the configured batch does not start (end loss at least ``STALLED`` of the start)
while the quarter batch learns (``LEARNS`` or below). Measured on the data above: batch 512
ended at 0.91-0.96 of the start loss (Ex. 2) and 1.07-1.38 (Ex. 1) in three seeds, batch
128 at 0.70-0.79 and 0.66-0.71.
"""

from __future__ import annotations

import math

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.diagnose.probes.gradient_noise_scale import (
    FIT_IMAGES,
    LEARNS,
    STALLED,
    NoiseScale,
    PairedFits,
    noise_scale,
    paired_fits,
    pooled,
)
from steadyval.findings import Finding, Severity

HIGH_RATIO = 4.0  # B / B_noise from which the batch is "far above" (2.5x the epochs of B / 4)
SMALLER = 4  # the optim.smaller_batch remedy's divisor
MIN_SMALLER = 2  # a quarter batch below this is not tried (BatchNorm needs two images)


def large_batch_scale(scale: NoiseScale) -> tuple[float, dict[str, float]]:
    """The noise scale a batch must be far above: the larger of two pooled estimates.

    The shared estimate's points in two groups, each pooled: fresh models (output bias at
    the class prior) and the trained baseline weights, when the doctor gives them. The
    larger is the conservative choice for "far above": the batch must be far above the
    scale both where training starts and where it spends its time.
    """
    groups = {"fresh, output at the class prior": pooled(scale.fresh.values())}
    if scale.trained:
        groups["trained"] = pooled(scale.trained.values())
    return max(groups.values()), groups


class BatchTooLarge(Probe):
    """The batch size against the pooled gradient noise scale, from above."""

    id = "optim.batch_too_large"
    remedies = ("optim.smaller_batch",)

    def run(self, ctx: ProbeContext) -> list[Finding]:
        cfg = ctx.config
        n = len(ctx.tensors.x_train)
        scale = noise_scale(ctx)
        if scale is None:
            return []
        b_noise, groups = large_batch_scale(scale)
        if not math.isfinite(b_noise) or b_noise > scale.sample:
            return []  # noise dominates the whole sample somewhere: no batch is far above the scale
        batch = min(cfg.batch_size, n)
        ratio = batch / b_noise
        if ratio < HIGH_RATIO:
            return []
        smaller = batch // SMALLER
        pairs = (paired_fits(ctx, smaller, images=max(FIT_IMAGES, SMALLER * batch))
                 if smaller >= MIN_SMALLER else PairedFits(smaller, []))
        severity = pairs.severity()
        # The shared estimate's fields, with this probe's scale in place of the shared one.
        evidence = {**scale.evidence(cfg.batch_size), "gradient_noise_scale": b_noise, "noise_scale_at_least": None,
                    "noise_scale_by_group": groups, "ratio": ratio, **pairs.evidence("smaller"),
                    "rule": "B_noise = the larger of sum tr(Σ) / sum |G|² over fresh models (output bias at the "
                            f"class prior) and over trained weights; reported at B/B_noise >= {HIGH_RATIO:g}: "
                            f"low; medium when a {SMALLER}th of the batch ends a short fit lower in most seeds; "
                            f"high when it does in every seed and in some seed the batch stalls "
                            f"(>= {STALLED:.0%} of the start loss) while the smaller batch learns (<= {LEARNS:.0%})"}
        shown = f"{b_noise:,.0f}"
        if severity == Severity.LOW:
            tested = (f". A short test at batch {smaller} did not train better per epoch with the same learning "
                      "rate, so the large batch may cost little here" if pairs.fits else "")
        else:
            tested = (f". Trained from the same weights on the same images with lr {cfg.lr:g}, batch {smaller} "
                      f"({SMALLER}x the steps) ends at a lower loss than batch {batch} in {pairs.wins} of "
                      f"{len(pairs.fits)} seeds"
                      + (f", and in {pairs.stalled} of them batch {batch} did not start training (loss "
                         f"{STALLED:.0%}+ of its start) while batch {smaller} did" if pairs.proven else ""))
        return [self.finding(
            severity, f"Batch of {batch} is far above the gradient noise scale (~{shown})",
            f"The gradient noise scale (McCandlish et al. 2018) is {shown} images here; the batch of {batch} "
            f"is {ratio:.1f}x it, so each step's gradient is already nearly exact and the extra images buy "
            "almost no progress: an epoch takes few steps and does little, and large-batch training tends "
            "to generalise worse" + tested
            + f". Use a smaller batch (a {SMALLER}th: {max(MIN_SMALLER, smaller)}), or train for more epochs.",
            evidence,
        )]
