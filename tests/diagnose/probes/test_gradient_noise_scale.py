import math

import pytest

from steadyval.config import load_config
from steadyval.diagnose.base import run_probes
from steadyval.diagnose.probes.gradient_noise_scale import GradientNoiseScale, noise_terms
from steadyval.findings import Severity


def _run(tiny, *sets):
    return run_probes(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", *sets]), [GradientNoiseScale()])


def test_sgd_at_batch_two_is_held_back_by_its_noise(tiny) -> None:
    result = _run(tiny, "optimizer=sgd", "lr=0.01", "batch_size=2")
    assert [(f.id, f.severity) for f in result.findings] == [("optim.batch_too_small", Severity.HIGH)]
    ev = result.findings[0].evidence
    assert ev["ratio"] >= 16 and ev["larger_batch"] == 8
    # Stalled at batch 2, learning at batch 8, with the same learning rate.
    assert ev["stalls_at_batch"] and ev["progress_at_batch"] >= 0.9 and ev["progress_at_larger_batch"] <= 0.75


def test_a_batch_near_the_noise_scale_is_left_alone(tiny) -> None:
    assert _run(tiny, "batch_size=32").findings == []


def test_noise_that_does_not_hold_training_back_is_low(tiny) -> None:
    # Adam normalises its steps: at batch 2 it trains better per image than at batch 8.
    result = _run(tiny, "batch_size=2")
    assert [(f.id, f.severity) for f in result.findings] == [("optim.batch_too_small", Severity.LOW)]
    assert result.findings[0].evidence["larger_batch_wins"] <= 1


def test_the_noise_terms_match_a_direct_computation(tiny) -> None:
    """tr(Σ) and |G|² from the micro-batch estimator agree with per-image gradients."""
    import torch
    import torch.nn.functional as F

    from steadyval.diagnose.base import ProbeContext

    ctx = ProbeContext(tiny, load_config(sets=["preset=seed-ex2", "image_size=32", "dropout=0"]))
    model = ctx.model()
    trace, signal = noise_terms(ctx, model, seed=3)
    assert trace > 0 and math.isfinite(signal)
    # Per-image gradients of the same 256 images: the unbiased per-image trace and |G|².
    order = torch.randperm(len(ctx.tensors.x_train), generator=torch.Generator().manual_seed(3))[:256]
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for i in order:
        x, y = ctx.batch(i.view(1))
        loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).double())
    g = torch.stack(grads)
    per_image_trace = float(((g - g.mean(0)) ** 2).sum() / (len(g) - 1))
    per_image_signal = float(g.mean(0).dot(g.mean(0))) - per_image_trace / len(g)
    # Two unbiased estimators of the same quantities on the same images: same scale.
    assert trace == pytest.approx(per_image_trace, rel=0.35)
    assert signal == pytest.approx(per_image_signal, rel=0.35, abs=0.05 * per_image_trace / 256 + 1e-12)
