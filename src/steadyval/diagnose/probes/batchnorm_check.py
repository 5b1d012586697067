"""model.batchnorm_small_batch: BatchNorm statistics unreliable at this batch size.

For every BatchNorm layer, the per-channel mean and variance of ``REPEATS`` training
batches at the configured size are compared with the same statistics of one large batch
(the population). The noise of the normalisation is the spread of the batch means in
units of the population standard deviation, and the spread of the batch variances
relative to the population variance. A conv layer pools B x H x W values per channel, but
neighbouring pixels and images of one patient are alike, so what matters is measured,
not counted.

Noisy statistics are a cause only when they move the val loss. With trained weights (the
doctor's baseline seeds), the probe measures that directly: it re-estimates the running
statistics ``JITTER_REPEATS`` times from fresh training batches at the configured batch
size and momentum, as the last steps of an epoch do, and compares the spread of the
resulting val loss with the val loss's own sampling error. Measured here: on synthetic
chest images a resnet18 at batch 2 (momentum 0.1, 0.9 and even 1.0) moves val loss by only
0.2-1.0x its sampling error, and trains to a lower val loss than at batch 32; the setup
alone would have called it a medium cause.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.findings import Finding, Severity

REPEATS = 24
POPULATION = 256
# Measured on a resnet18 at 32 px (worst layer, identical over seeds): batch 2 -> 0.26 / 55 %,
# 4 -> 0.18 / 37 %, 8 -> 0.13 / 25 %, 32 -> 0.06 / 13 %. The small CNNs stay below 0.08 even
# at batch 2: BatchNorm over large feature maps is fine, and the probe says so.
MEAN_NOISE, VAR_NOISE = 0.25, 0.35
JITTER_REPEATS = 8
# Val-loss spread from re-estimated running statistics, in units of the val loss's sampling
# error: at 1 BatchNorm alone moves val loss as much as the choice of val images does.
JITTER_MEDIUM, JITTER_HIGH = 1.0, 2.0


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def batch_stat_noise(ctx: ProbeContext, batch_size: int) -> dict[str, dict[str, float]]:
    """Per BN layer: relative noise of the batch mean and variance at ``batch_size``."""
    model = ctx.model()
    model.train()
    bn = set(_bn_layers(model))
    layers = [(name, m) for name, m in model.named_modules() if m in bn]
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


def running_stat_jitter(ctx: ProbeContext, weights: Path, batch_size: int,
                        repeats: int = JITTER_REPEATS) -> dict[str, float]:
    """How much the val loss of trained ``weights`` moves when BN's running statistics are re-estimated.

    Each repeat starts from the trained weights and feeds enough fresh training batches (in
    train mode, no gradient) for the running averages to forget their start, then takes the
    val loss in eval mode. Returns the spread of those val losses, the val loss's sampling
    error (per-image losses, SE of their mean) and their ratio.
    """
    t = ctx.tensors
    x_val = t.normalised(t.x_val)
    y_val = torch.from_numpy(t.y_val).float().to(x_val.device)
    n = len(t.x_train)
    momentum = min(max(ctx.config.bn_momentum, 1e-3), 1.0)
    steps = min(60, math.ceil(3 / momentum))  # (1 - m)^steps <= e^-3: the start is forgotten
    gen = torch.Generator().manual_seed(ctx.config.seed + 13)
    val_losses, per_image = [], None
    with torch.no_grad():
        for _ in range(repeats):
            model = ctx.trained_model(weights)
            model.train()
            for _ in range(steps):
                model(ctx.batch(torch.randint(0, n, (max(2, batch_size),), generator=gen))[0])
            model.eval()
            losses = F.binary_cross_entropy_with_logits(model(x_val).squeeze(1).float(), y_val, reduction="none")
            val_losses.append(float(losses.mean()))
            per_image = losses if per_image is None else per_image + losses
    assert per_image is not None
    sampling_se = float((per_image / repeats).std() / math.sqrt(len(y_val)))
    spread = float(torch.tensor(val_losses).std())
    return {"val_loss_spread": spread, "val_loss_sampling_se": sampling_se,
            "ratio": spread / max(sampling_se, 1e-12), "mean_val_loss": sum(val_losses) / repeats}


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
        noisy = worst["mean_noise"] >= MEAN_NOISE or worst["var_noise"] >= VAR_NOISE
        evidence: dict = {"batch_size": bs, "layers": noise, "worst_layer": worst_layer,
                          "thresholds": {"mean_noise": MEAN_NOISE, "var_noise": VAR_NOISE,
                                         "jitter_medium": JITTER_MEDIUM, "jitter_high": JITTER_HIGH}}
        setup = (f"In layer {worst_layer}, the mean of a batch of {bs} is off the population mean by "
                 f"{worst['mean_noise']:.2f} standard deviations and its variance by "
                 f"{worst['var_noise']:.0%} (typical).")
        fix = "Use larger batches, or drop BatchNorm (GroupNorm does not depend on the batch)."
        if ctx.trained:
            jitter = [running_stat_jitter(ctx, w, bs) for w in ctx.trained[:3]]
            ratio = sorted(j["ratio"] for j in jitter)[(len(jitter) - 1) // 2]  # median (lower)
            evidence.update(jitter=jitter, jitter_ratio=ratio)
            moved = (f"Re-estimating the running statistics from batches of {bs}, as the end of every "
                     f"epoch does, moves the trained models' val loss by {ratio:.1f}x its sampling error")
            if ratio >= JITTER_MEDIUM:
                return [self.finding(
                    Severity.HIGH if ratio >= JITTER_HIGH else Severity.MEDIUM,
                    f"BatchNorm's running statistics make val loss jump at batch size {bs}",
                    f"{moved} (median over {len(jitter)} seed(s)): validation uses averages of a few "
                    f"noisy batches, so val loss jumps between epochs. {setup} {fix}", evidence)]
            if not noisy:
                return []
            return [self.finding(
                Severity.LOW, f"BatchNorm statistics are noisy at batch size {bs}, but val loss barely moves",
                f"{setup} Yet {moved[0].lower()}{moved[1:]} (median over {len(jitter)} seed(s)), so "
                "BatchNorm is not what makes val loss jump here.", evidence)]
        if not noisy:
            return []
        severity = (Severity.HIGH if worst["mean_noise"] >= 2 * MEAN_NOISE or worst["var_noise"] >= 2 * VAR_NOISE
                    else Severity.MEDIUM)
        return [self.finding(
            severity, f"BatchNorm statistics are noisy at batch size {bs}",
            f"{setup} Every step normalises by these noisy estimates, and the running averages "
            f"used at validation disagree with them, so val loss jumps. {fix}",
            evidence,
        )]
