"""The networks: the dropout layer's mask statistics and determinism."""

from __future__ import annotations

import pytest
import torch

from steadyval.train.models import MaskDropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_dropout_drops_at_rate_p_and_keeps_the_expectation(p: float) -> None:
    layer = MaskDropout(p).train()
    torch.manual_seed(0)
    x = torch.ones(64, 4096)
    y = layer(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.005)
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    assert torch.allclose(y[y != 0], torch.tensor(1 / (1 - p)), rtol=1e-4)


def test_mask_dropout_masks_differ_between_calls_and_repeat_for_a_seed() -> None:
    layer = MaskDropout(0.5).train()
    x = torch.ones(8, 1001)  # an element count that is not a multiple of four
    torch.manual_seed(3)
    a, b = layer(x), layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), a)
    assert not torch.equal(a, b)
    # neighbouring elements come from different 16-bit parts of one draw: no correlation
    keep = (a != 0).float().flatten()
    assert abs(torch.corrcoef(torch.stack([keep[:-1], keep[1:]]))[0, 1].item()) < 0.05


def test_mask_dropout_is_the_identity_in_eval_mode_and_at_p_zero() -> None:
    x = torch.randn(4, 10)
    assert torch.equal(MaskDropout(0.5).eval()(x), x)
    assert torch.equal(MaskDropout(0.0).train()(x), x)


def test_mask_dropout_passes_gradients_only_through_kept_elements() -> None:
    torch.manual_seed(1)
    x = torch.randn(16, 100, requires_grad=True)
    y = MaskDropout(0.5).train()(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y.detach() == 0)
    assert torch.allclose(x.grad[x.grad != 0], torch.tensor(2.0))
