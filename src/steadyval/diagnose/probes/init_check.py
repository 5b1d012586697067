"""model.bad_init: activations or gradients explode or vanish at step 0; dead ReLUs."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from steadyval.diagnose.base import Probe, ProbeContext
from steadyval.findings import Finding, Severity

BATCH = 64


class InitCheck(Probe):
    """Per-layer activation scale, dead-unit share and gradient norms of the fresh model."""

    id = "model.bad_init"
    remedies = ("model.batchnorm",)

    def run(self, ctx: ProbeContext) -> list[Finding]:
        model = ctx.model()
        model.train()
        gen = torch.Generator().manual_seed(ctx.config.seed)
        idx = torch.randperm(len(ctx.tensors.x_train), generator=gen)[:BATCH]
        x, y = ctx.batch(idx)
        layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        stats: dict[str, dict[str, float]] = {}

        def hook(name: str):
            def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                out = output.detach().float()
                per_unit = out.transpose(0, 1).reshape(out.shape[1], -1) if out.dim() == 4 else out.T
                stats[name] = {"std": float(out.std()),
                               "dead_share": float((per_unit.clamp_min(0).amax(dim=1) == 0).float().mean())}
            return record

        handles = [m.register_forward_hook(hook(name)) for name, m in layers]
        logits = model(x).squeeze(1).float()
        for h in handles:
            h.remove()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        initial_loss = loss.item()
        for name, m in layers:
            stats[name]["grad_norm"] = float(m.weight.grad.norm()) if m.weight.grad is not None else 0.0
        names = [n for n, _ in layers]
        logit_std = float(logits.detach().std())
        grads = np.array([stats[n]["grad_norm"] for n in names])
        grad_ratio = float(grads[0] / max(grads[-1], 1e-12))
        dead = max(stats[n]["dead_share"] for n in names[:-1]) if len(names) > 1 else 0.0
        reasons = []
        if not math.isfinite(initial_loss) or logit_std > 10:
            reasons.append(f"initial logits spread {logit_std:.3g} (sigmoid saturates: confident guesses at step 0)")
        if logit_std < 1e-4:
            reasons.append(f"initial logits spread {logit_std:.2g}: the signal vanishes through the layers")
        if dead >= 0.5:
            reasons.append(f"{dead:.0%} of the units of one layer never activate on a batch")
        if grad_ratio > 1e3 or grad_ratio < 1e-3:
            reasons.append(f"first/last layer gradient norm ratio {grad_ratio:.2g}")
        if not reasons:
            return []
        broken = logit_std > 10 or dead >= 0.5 or not math.isfinite(initial_loss)
        severity = Severity.HIGH if broken else Severity.MEDIUM
        return [self.finding(
            severity, "Bad initialisation: " + reasons[0].split(" (")[0],
            "; ".join(reasons).capitalize() + f". Initial loss {initial_loss:.3g} (a fresh model should "
            f"be near {math.log(2):.3f}). Use the default (Kaiming-uniform) or Kaiming init, or add BatchNorm.",
            {"initial_loss": initial_loss, "logit_std": logit_std, "grad_norm_ratio_first_last": grad_ratio,
             "max_dead_share": dead, "layers": stats, "init": ctx.config.init},
        )]
