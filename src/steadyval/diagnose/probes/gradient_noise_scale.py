"""optim.batch_too_small: the gradient noise scale far above the batch size.

The simple noise scale of McCandlish et al. (2018), B_noise = tr(Σ) / |G|², where Σ is the
per-image gradient covariance and G the true gradient, is the batch size at which a step's
noise equals its signal. At a batch B far below it, each step is mostly noise: the curves
jump from step to step and the learning rate that a larger batch tolerates is too high.

Estimator (two batch sizes, as the paper's): gradients of ``MICRO`` images each, for ``K``
disjoint micro-batches at one point of the weights. With their mean ḡ over K x MICRO
images, tr(Σ) ≈ MICRO · Σ_k |g_k − ḡ|² / (K − 1) and |G|² ≈ |ḡ|² − tr(Σ) / (K · MICRO),
both unbiased. Their ratio is noisy at one point (a stand-alone estimate varied 25-6068
across seeds here), so, as the paper recommends, numerator and denominator are summed over
several points before dividing: fresh models of ``INIT_SEEDS`` seeds and, when the doctor
gives them, the best weights of its trained baseline seeds, where training spends its time.

Noise alone is not a fault: on synthetic chest images Adam at batch 2 (B_noise ≈ 250 there)
reaches a lower val loss than at batch 32. It is one when the optimiser is tuned for a
larger batch, and the probe tests that directly: from the same initial weights, it trains
``FIT_EPOCHS`` short epochs at the configured batch and at 4x it (the
``optim.larger_batch`` remedy) with the same learning rate, for ``FIT_SEEDS`` seeds. With
the same images, 4x the batch takes 4x fewer steps, so in the normal regime the smaller
batch ends lower (Adam 1e-3 at batch 2 and 8, SGD 0.01 at batch 8: every seed, measured
here). Severity: the noise ratio alone is low; the larger batch ending lower in most seeds
is medium (a resnet18 at batch 2 did, yet trained as well as at batch 8 over 10 epochs);
high only when 4x the batch ends lower in every seed and in some seed the configured batch
stalls (loss above ``STALLED`` of the start) while 4x it learns from the same weights (below
``LEARNS``): SGD 0.01 at batch 2 and SGD 0.05 at batch 8 here, which train well at batch 8
and 32. Per seed, not the median: at batch 2 whether training starts depends on the seed
(SGD 0.01: 0.95, 0.59 and 0.38 of the start loss in three seeds, 0.45, 0.42 and 0.31 at
batch 8), and a baseline that sometimes does not start is the fault. When both stall, the
learning rate is the problem, and the finding stays medium.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.findings import Finding, Severity

MICRO = 4  # images per micro-batch (BatchNorm needs more than one)
K = 64  # micro-batches per point: 256 images
INIT_SEEDS = 2
# B_noise / B from which the finding is reported. Measured on synthetic chest images at
# 32 px, cnn_dropout: B_noise ≈ 360-730 at init and 50-200 at the trained baselines' best weights.
LOW_RATIO = 16.0
LARGER = 4  # the optim.larger_batch remedy's factor
FIT_SEEDS = 3
FIT_EPOCHS = 2
FIT_IMAGES = 512  # images per short epoch (at most), so the fits cost seconds on any dataset
EVAL_IMAGES = 256
STALLED, LEARNS = 0.9, 0.75  # short-fit end loss / start loss


def noise_terms(ctx: ProbeContext, model: nn.Module, seed: int) -> tuple[float, float]:
    """(tr(Σ), |G|²) estimated at ``model``'s weights from K micro-batches of MICRO images."""
    model.train()  # dropout and batch statistics are part of the gradient noise training sees
    params = [p for p in model.parameters() if p.requires_grad]
    n = len(ctx.tensors.x_train)
    k = max(2, min(K, n // MICRO))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    total = torch.zeros(sum(p.numel() for p in params), dtype=torch.float64, device=ctx.device)
    squares = 0.0
    for j in range(k):
        x, y = ctx.batch(order[j * MICRO:(j + 1) * MICRO])
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1).float(), y)
        g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)]).double()  # (P,)
        total += g
        squares += float(g.dot(g))
    mean = total / k
    spread = squares - k * float(mean.dot(mean))  # Σ_k |g_k − ḡ|²
    trace = MICRO * spread / (k - 1)
    return trace, float(mean.dot(mean)) - trace / (k * MICRO)


def short_fit(ctx: ProbeContext, batch_size: int, seed: int) -> tuple[float, float]:
    """(start, end) loss on a fixed eval batch of ``FIT_EPOCHS`` short epochs at ``batch_size``.

    The config's optimiser and learning rate, from the fresh model of ``seed``; the images
    seen are the same at any batch size (only the number of steps differs). Inf when the
    loss stops being finite.
    """
    model = ctx.model(seed=seed)
    opt = ctx.optimizer(model)
    n = len(ctx.tensors.x_train)
    images = min(n, FIT_IMAGES)
    x_eval, y_eval = ctx.batch(torch.randperm(n, generator=torch.Generator().manual_seed(ctx.config.seed))
                               [:EVAL_IMAGES])

    def evaluate() -> float:
        # The weights' quality, not their running statistics: a copy without dropout whose
        # BatchNorm layers normalise with the eval batch's own statistics. Running statistics
        # at batch 2 lag and jitter (the BatchNorm probe's subject) and would favour the larger
        # batch for a reason that is not gradient noise.
        judge = copy.deepcopy(model).eval()
        for m in judge.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        with torch.no_grad():
            value = float(F.binary_cross_entropy_with_logits(judge(x_eval).squeeze(1).float(), y_eval))
        return value if math.isfinite(value) else math.inf

    start = evaluate()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(FIT_EPOCHS):
        order = torch.randperm(n, generator=gen)[:images]
        for s in range(0, images - batch_size + 1, batch_size):
            x, y = ctx.batch(order[s:s + batch_size])
            loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1).float(), y)
            if not torch.isfinite(loss):
                return start, math.inf
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return start, evaluate()


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


class GradientNoiseScale(Probe):
    """The simple gradient noise scale, pooled over fresh and trained weights, against the batch size."""

    id = "optim.batch_too_small"
    remedies = ("optim.larger_batch", "optim.lower_lr", "avg.ema")

    def run(self, ctx: ProbeContext) -> list[Finding]:
        cfg = ctx.config
        n = len(ctx.tensors.x_train)
        if n < 2 * MICRO * 8:
            return []
        points: list[tuple[str, tuple[float, float]]] = []
        for s in range(INIT_SEEDS):
            points.append((f"init seed {cfg.seed + s}", noise_terms(ctx, ctx.model(seed=cfg.seed + s), 7 + s)))
        for w in ctx.trained:
            best = Path(w).with_name("best.pt")
            path = best if best.exists() else Path(w)
            points.append((f"trained {path.parent.name}", noise_terms(ctx, ctx.trained_model(path), 7)))
        trace = sum(p[1][0] for p in points)
        signal = sum(p[1][1] for p in points)
        sample = min(K, n // MICRO) * MICRO
        # Noise-dominated in the whole sample: the scale is at least the sample, no more is known.
        b_noise = trace / signal if signal > 0 else math.inf
        bounded = min(b_noise, float(sample))
        ratio = bounded / cfg.batch_size
        per_point = {name: (t / g if g > 0 else None) for name, (t, g) in points}
        evidence = {"gradient_noise_scale": b_noise if math.isfinite(b_noise) else None,
                    "noise_scale_at_least": float(sample) if not math.isfinite(b_noise) or b_noise > sample else None,
                    "batch_size": cfg.batch_size, "ratio": ratio, "per_point": per_point,
                    "micro_batch": MICRO, "images_per_point": sample,
                    "rule": f"B_noise = sum tr(Σ) / sum |G|² over points; reported at B_noise/B >= {LOW_RATIO:g}: "
                            f"low; medium when {LARGER}x the batch ends a short fit lower in most seeds; "
                            f"high when it does in every seed and in some seed the batch stalls "
                            f"(>= {STALLED:.0%} of the start loss) while {LARGER}x learns (<= {LEARNS:.0%})"}
        if ratio < LOW_RATIO:
            return []
        larger = min(cfg.batch_size * LARGER, max(1, n // 4))
        fits = []
        if larger > cfg.batch_size:
            for k in range(FIT_SEEDS):
                seed = cfg.seed + 500 + k
                start, small = short_fit(ctx, cfg.batch_size, seed)
                fits.append((start, small, short_fit(ctx, larger, seed)[1]))
        wins = sum(big < small for _, small, big in fits)
        here = _median([small / start for start, small, _ in fits])
        there = _median([big / start for start, _, big in fits])
        # Seeds where training does not start at the batch but does at 4x it from the same
        # weights; proof needs 4x the batch ahead in every seed as well.
        stalled = sum(small / start >= STALLED and big / start <= LEARNS for start, small, big in fits)
        stalls = bool(fits) and stalled > 0 and wins == len(fits)
        evidence.update(larger_batch=larger, fit_seeds=len(fits), larger_batch_wins=wins,
                        progress_at_batch=here if math.isfinite(here) else None,
                        progress_at_larger_batch=there if math.isfinite(there) else None,
                        stalls_at_batch=stalls, seeds_stalled=stalled,
                        fits=[{"start": a, "at_batch": b, "at_larger_batch": c} for a, b, c in fits])
        if stalls:
            severity = Severity.HIGH
        elif fits and wins * 2 > len(fits):
            severity = Severity.MEDIUM
        else:
            severity = Severity.LOW
        learns = severity != Severity.LOW
        shown = f"{b_noise:,.0f}" if math.isfinite(b_noise) and b_noise <= sample else f"at least {sample:,}"
        return [self.finding(
            severity, f"Batch of {cfg.batch_size} is far below the gradient noise scale (~{shown})",
            f"The gradient noise scale (McCandlish et al. 2018) is {shown} images here, {ratio:.0f}x the "
            f"batch of {cfg.batch_size}: each step's gradient is mostly noise, so the weights, and with "
            "them the val curve, jump from step to step"
            + (f". Trained from the same weights on the same images with lr {cfg.lr:g}, batch {larger} "
               f"({larger / cfg.batch_size:.0f}x fewer steps) ends at a lower loss than batch {cfg.batch_size} "
               f"in {wins} of {len(fits)} seeds"
               + (f", and in {stalled} of them batch {cfg.batch_size} did not start training (loss "
                  f"{STALLED:.0%}+ of its start) while batch {larger} did: at this learning rate the small "
                  "batch's noise can stop training" if stalls else ": the small batch's noise may hold training back")
               if learns else ". A short test at a larger batch did not train better with the same learning "
               "rate, so this noise may be harmless here")
            + ". Use a larger batch (or a lower learning rate, or an average of the weights).",
            evidence,
        )]
