"""The GEMM weight-gradient convolution: the same gradients as nn.Conv2d, and when it applies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadyval.train import conv
from steadyval.train.conv import Conv2d, weight_gradient


def _grads(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    layer.zero_grad()
    x = x.detach().requires_grad_(True)
    layer(x).backward(g)
    return x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("shape", [(3, 8, 44, 44), (2, 16, 150, 140)])  # whole-image blocks; row bands
def test_gradients_match_nn_conv2d(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    b, c, h, w = shape
    ours = Conv2d(c, 12, 3)
    reference = nn.Conv2d(c, 12, 3)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    g = torch.randn(b, 12, h - 2, w - 2).contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours(x), reference(x))
    for a, r in zip(_grads(ours, x, g), _grads(reference, x, g), strict=True):
        assert torch.allclose(a, r, rtol=1e-4, atol=1e-4 * r.abs().max().item())


def test_weight_gradient_takes_the_fast_path_only_where_it_was_measured_faster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []

    def spy(x: torch.Tensor, grad: torch.Tensor, kernel: int) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return weight_gradient(x, grad, kernel)

    monkeypatch.setattr(conv, "weight_gradient", spy)
    for c, size in [(8, 44), (8, 40), (1, 100)]:
        layer = Conv2d(c, 4, 3)
        layer(torch.randn(2, c, size, size)).sum().backward()
        with torch.no_grad():
            layer(torch.randn(2, c, size, size))  # inference: plain nn.Conv2d
    # 42x42 outputs qualify; 38x38 is below MIN_OUTPUT_PIXELS; one input channel is below MIN_IN_CHANNELS
    assert calls == [(2, 8, 44, 44)]


def test_state_dict_and_repr_are_nn_conv2d_s() -> None:
    ours, reference = Conv2d(8, 4, 3), nn.Conv2d(8, 4, 3)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert repr(ours) == repr(reference)
