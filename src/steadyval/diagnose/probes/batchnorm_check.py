"""model.batchnorm_small_batch: BatchNorm statistics unreliable at this batch size.

For every BatchNorm layer, the per-channel mean and variance of ``REPEATS`` training
batches at the configured size are compared with the same statistics of one large batch
(the population). The noise of the normalisation is the spread of the batch means in
units of the population standard deviation, and the spread of the batch variances
relative to the population variance. A conv layer pools B x H x W values per channel, but
neighbouring pixels and images of one patient are alike, so what matters is measured,
not counted.
"""

from __future__ import annotations

import torch
from torch import nn

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.findings import Finding, Severity

REPEATS = 24
POPULATION = 256
# Measured on a resnet18 at 32 px (worst layer, identical over seeds): batch 2 -> 0.26 / 55 %,
# 4 -> 0.18 / 37 %, 8 -> 0.13 / 25 %, 32 -> 0.06 / 13 %. The small CNNs stay below 0.08 even
# at batch 2: BatchNorm over large feature maps is fine, and the probe says so.
MEAN_NOISE, VAR_NOISE = 0.25, 0.35


def batch_stat_noise(ctx: ProbeContext, batch_size: int) -> dict[str, dict[str, float]]:
    """Per BN layer: relative noise of the batch mean and variance at ``batch_size``."""
    model = ctx.model()
    model.train()
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    captured: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0].detach().float()
            dims = [0, 2, 3] if x.dim() == 4 else [0]
            captured.setdefault(name, []).append(torch.stack([x.mean(dims), x.var(dims)]))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in layers]
    gen = torch.Generator().manual_seed(ctx.config.seed + 11)
    n = len(ctx.tensors.x_train)
    with torch.no_grad():
        model(ctx.batch(torch.randperm(n, generator=gen)[:min(POPULATION, n)])[0])
        population = {name: stats[0] for name, stats in captured.items()}
        captured.clear()
        for _ in range(REPEATS):
            model(ctx.batch(torch.randint(0, n, (max(2, batch_size),), generator=gen))[0])
    for h in handles:
        h.remove()
    out = {}
    for name, pop in population.items():
        batches = torch.stack(captured[name])  # (R, 2, C)
        sd = pop[1].clamp_min(1e-8).sqrt()
        mean_noise = ((batches[:, 0] - pop[0]) / sd).pow(2).mean(0).sqrt()  # (C,)
        var_noise = ((batches[:, 1] - pop[1]) / pop[1].clamp_min(1e-8)).pow(2).mean(0).sqrt()
        out[name] = {"mean_noise": float(mean_noise.median()), "var_noise": float(var_noise.median())}
    return out


class BatchNormCheck(Probe):
    """How noisy BatchNorm's normalisation is at the configured batch size."""

    id = "model.batchnorm_small_batch"
    remedies = ("optim.larger_batch",)

    def missing(self, ctx: ProbeContext) -> str | None:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ctx.model().modules())
        return None if has_bn else "the model has no BatchNorm"

    def run(self, ctx: ProbeContext) -> list[Finding]:
        bs = ctx.config.batch_size
        noise = batch_stat_noise(ctx, bs)
        worst_layer = max(noise, key=lambda k: noise[k]["mean_noise"] + noise[k]["var_noise"])
        worst = noise[worst_layer]
        evidence = {"batch_size": bs, "layers": noise, "worst_layer": worst_layer,
                    "thresholds": {"mean_noise": MEAN_NOISE, "var_noise": VAR_NOISE}}
        if worst["mean_noise"] < MEAN_NOISE and worst["var_noise"] < VAR_NOISE:
            return []
        severity = (Severity.HIGH if worst["mean_noise"] >= 2 * MEAN_NOISE or worst["var_noise"] >= 2 * VAR_NOISE
                    else Severity.MEDIUM)
        return [self.finding(
            severity, f"BatchNorm statistics are noisy at batch size {bs}",
            f"In layer {worst_layer}, the mean of a batch of {bs} is off the population mean by "
            f"{worst['mean_noise']:.2f} standard deviations and its variance by {worst['var_noise']:.0%} "
            "(typical). Every step normalises by these noisy estimates, and the running averages "
            "used at validation disagree with them, so val loss jumps. Use larger batches, or drop "
            "BatchNorm (GroupNorm does not depend on the batch).",
            evidence,
        )]
