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
The fresh models' output bias is first set to the class prior's log-odds: otherwise, on
imbalanced data, every majority-class image pulls the bias the same way and that one
transient dominates the sums (PneumoniaMNIST, 90 % positive: 3.7 and 3.9 at two fresh
models, 1,014 at the trained weights, 4.8 pooled; synthetic data with 5-10 % positives:
0.4-2.3 pooled, 780 or more from the prior).

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
from collections.abc import Iterable
from dataclasses import dataclass
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


def short_fit(ctx: ProbeContext, batch_size: int, seed: int, images: int = FIT_IMAGES) -> tuple[float, float]:
    """(start, end) loss on a fixed eval batch of ``FIT_EPOCHS`` short epochs at ``batch_size``.

    The config's optimiser and learning rate, from the fresh model of ``seed``; each short
    epoch is ``images`` training images (at most all of them), the same ones at any batch
    size (only the number of steps differs). Inf when the loss stops being finite.
    """
    model = ctx.model(seed=seed)
    opt = ctx.optimizer(model)
    n = len(ctx.tensors.x_train)
    images = min(n, images)
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


def pooled(terms: Iterable[tuple[float, float]]) -> float:
    """B_noise of several points: summed tr(Σ) over summed |G|² (inf when the signal sum is not positive)."""
    terms = list(terms)
    signal = sum(g for _, g in terms)
    return sum(t for t, _ in terms) / signal if signal > 0 else math.inf


@dataclass
class NoiseScale:
    """The pooled simple noise scale: B_noise (inf when noise dominates the whole sample)."""

    sample: int  # images per point: the scale is known only up to this
    fresh: dict[str, tuple[float, float]]  # fresh model (output at the class prior) -> (tr(Σ), |G|²)
    trained: dict[str, tuple[float, float]]  # trained baseline weights -> (tr(Σ), |G|²)

    @property
    def terms(self) -> dict[str, tuple[float, float]]:
        """Every point's (tr(Σ), |G|²), fresh models first."""
        return {**self.fresh, **self.trained}

    @property
    def b_noise(self) -> float:
        """Σ tr(Σ) / Σ |G|² over every point."""
        return pooled(self.terms.values())

    @property
    def per_point(self) -> dict[str, float | None]:
        return {name: (t / g if g > 0 else None) for name, (t, g) in self.terms.items()}

    @property
    def bounded(self) -> float:
        """B_noise, at most the sample (noise-dominated: at least the sample, no more is known)."""
        return min(self.b_noise, float(self.sample))

    @property
    def known(self) -> bool:
        """Whether the estimate is a number rather than a lower bound."""
        return math.isfinite(self.b_noise) and self.b_noise <= self.sample

    def shown(self) -> str:
        return f"{self.b_noise:,.0f}" if self.known else f"at least {self.sample:,}"

    def evidence(self, batch_size: int) -> dict[str, object]:
        return {"gradient_noise_scale": self.b_noise if math.isfinite(self.b_noise) else None,
                "noise_scale_at_least": None if self.known else float(self.sample),
                "batch_size": batch_size, "per_point": self.per_point,
                "micro_batch": MICRO, "images_per_point": self.sample}


def at_prior(model: nn.Module, prior: float) -> nn.Module:
    """``model`` with its output bias at the class prior's log-odds (the first thing training learns)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1 and m.bias is not None]
    if last:
        p = min(max(prior, 1e-3), 1 - 1e-3)
        with torch.no_grad():
            last[-1].bias.fill_(math.log(p / (1 - p)))
    return model


def noise_scale(ctx: ProbeContext) -> NoiseScale | None:
    """B_noise pooled over fresh models and the trained baseline weights; None on tiny data.

    Computed once per context: the batch-too-small and batch-too-large probes share it.
    """
    if "noise_scale" in ctx.memo:
        return ctx.memo["noise_scale"]  # type: ignore[return-value]
    cfg = ctx.config
    n = len(ctx.tensors.x_train)
    result = None
    if n >= 2 * MICRO * 8:
        prior = float(ctx.tensors.y_train.float().mean())
        fresh = {f"init seed {cfg.seed + s}": noise_terms(ctx, at_prior(ctx.model(seed=cfg.seed + s), prior), 7 + s)
                 for s in range(INIT_SEEDS)}
        trained = {}
        for w in ctx.trained:
            best = Path(w).with_name("best.pt")
            path = best if best.exists() else Path(w)
            trained[f"trained {path.parent.name}"] = noise_terms(ctx, ctx.trained_model(path), 7)
        result = NoiseScale(min(K, n // MICRO) * MICRO, fresh, trained)
    ctx.memo["noise_scale"] = result
    return result


@dataclass
class PairedFits:
    """Short fits from the same weights at the configured batch and at another batch size.

    ``fits`` holds (start, end at the batch, end at the other batch) losses per seed. The
    other batch *wins* a seed when it ends lower; the batch *stalls* in a seed when it ends
    at ``STALLED`` of the start or above while the other batch learns (``LEARNS`` or below).
    """

    other: int
    fits: list[tuple[float, float, float]]

    @property
    def wins(self) -> int:
        return sum(there < here for _, here, there in self.fits)

    @property
    def stalled(self) -> int:
        return sum(here / start >= STALLED and there / start <= LEARNS for start, here, there in self.fits)

    @property
    def proven(self) -> bool:
        """The other batch ahead in every seed, and in some seed the batch did not start."""
        return bool(self.fits) and self.stalled > 0 and self.wins == len(self.fits)

    def severity(self) -> Severity:
        if self.proven:
            return Severity.HIGH
        return Severity.MEDIUM if self.fits and self.wins * 2 > len(self.fits) else Severity.LOW

    def evidence(self, name: str) -> dict[str, object]:
        here = _median([b / a for a, b, _ in self.fits])
        there = _median([c / a for a, _, c in self.fits])
        return {f"{name}_batch": self.other, "fit_seeds": len(self.fits), f"{name}_batch_wins": self.wins,
                "progress_at_batch": here if math.isfinite(here) else None,
                f"progress_at_{name}_batch": there if math.isfinite(there) else None,
                "stalls_at_batch": self.proven, "seeds_stalled": self.stalled,
                "fits": [{"start": a, "at_batch": b, f"at_{name}_batch": c} for a, b, c in self.fits]}


def paired_fits(ctx: ProbeContext, other: int, images: int = FIT_IMAGES) -> PairedFits:
    """``FIT_SEEDS`` pairs of short fits, at the config's batch and at ``other``, same weights and images."""
    fits = []
    for k in range(FIT_SEEDS):
        seed = ctx.config.seed + 500 + k
        start, here = short_fit(ctx, ctx.config.batch_size, seed, images)
        fits.append((start, here, short_fit(ctx, other, seed, images)[1]))
    return PairedFits(other, fits)


class GradientNoiseScale(Probe):
    """The simple gradient noise scale, pooled over fresh and trained weights, against the batch size."""

    id = "optim.batch_too_small"
    remedies = ("optim.larger_batch", "optim.lower_lr", "avg.ema")

    def run(self, ctx: ProbeContext) -> list[Finding]:
        cfg = ctx.config
        n = len(ctx.tensors.x_train)
        scale = noise_scale(ctx)
        if scale is None:
            return []
        ratio = scale.bounded / cfg.batch_size
        evidence = {**scale.evidence(cfg.batch_size), "ratio": ratio,
                    "rule": f"B_noise = sum tr(Σ) / sum |G|² over points; reported at B_noise/B >= {LOW_RATIO:g}: "
                            f"low; medium when {LARGER}x the batch ends a short fit lower in most seeds; "
                            f"high when it does in every seed and in some seed the batch stalls "
                            f"(>= {STALLED:.0%} of the start loss) while {LARGER}x learns (<= {LEARNS:.0%})"}
        if ratio < LOW_RATIO:
            return []
        larger = min(cfg.batch_size * LARGER, max(1, n // 4))
        pairs = paired_fits(ctx, larger) if larger > cfg.batch_size else PairedFits(larger, [])
        evidence.update(pairs.evidence("larger"))
        severity = pairs.severity()
        wins, stalled, stalls = pairs.wins, pairs.stalled, pairs.proven
        learns = severity != Severity.LOW
        shown = scale.shown()
        return [self.finding(
            severity, f"Batch of {cfg.batch_size} is far below the gradient noise scale (~{shown})",
            f"The gradient noise scale (McCandlish et al. 2018) is {shown} images here, {ratio:.0f}x the "
            f"batch of {cfg.batch_size}: each step's gradient is mostly noise, so the weights, and with "
            "them the val curve, jump from step to step"
            + (f". Trained from the same weights on the same images with lr {cfg.lr:g}, batch {larger} "
               f"({larger / cfg.batch_size:.0f}x fewer steps) ends at a lower loss than batch {cfg.batch_size} "
               f"in {wins} of {len(pairs.fits)} seeds"
               + (f", and in {stalled} of them batch {cfg.batch_size} did not start training (loss "
                  f"{STALLED:.0%}+ of its start) while batch {larger} did: at this learning rate the small "
                  "batch's noise can stop training" if stalls else ": the small batch's noise may hold training back")
               if learns else ". A short test at a larger batch did not train better with the same learning "
               "rate, so this noise may be harmless here")
            + ". Use a larger batch (or a lower learning rate, or an average of the weights).",
            evidence,
        )]
