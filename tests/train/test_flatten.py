"""The channels-last Flatten: nn.Flatten's output and gradient bit for bit, the gradient channels-last."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from steadyval.train import flatten, native
from steadyval.train.flatten import Flatten

needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
# tiles with and without ragged edges
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (32, 64, 14, 14), (3, 37, 33, 35)])
def test_output_and_gradient_are_nn_flatten_s(dtype: torch.dtype, shape: tuple[int, int, int, int]) -> None:
    assert flatten._functions() is not None
    torch.manual_seed(0)
    x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = Flatten()(ours), nn.Flatten()(theirs)
    assert torch.equal(y_ours, y_theirs) and y_ours.is_contiguous()
    g = torch.randn(y_theirs.shape).to(dtype)
    y_ours.backward(g)
    y_theirs.backward(g)
    assert torch.equal(ours.grad, theirs.grad)
    assert ours.grad.is_contiguous(memory_format=torch.channels_last)  # as its input: no layout change before it


def test_other_inputs_are_nn_flatten_s(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = flatten._FlattenChannelsLast.apply
    monkeypatch.setattr(flatten._FlattenChannelsLast, "apply", lambda x: calls.append(tuple(x.shape)) or original(x))
    x = torch.randn(2, 3, 4, 5)
    for layer, value in [(Flatten(), x), (Flatten(), x.double().contiguous(memory_format=torch.channels_last)),
                         (Flatten(start_dim=2), x.contiguous(memory_format=torch.channels_last)),
                         (Flatten(), torch.randn(2, 3, 4))]:
        reference = nn.Flatten(layer.start_dim, layer.end_dim)
        assert torch.equal(layer(value), reference(value))
    assert calls == []
    assert repr(Flatten()) == repr(nn.Flatten()) and not list(Flatten().state_dict())
