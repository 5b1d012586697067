"""The fused first block (conv 3x3, 2x2 max pool, ReLU): the layers' values and gradients, and when it applies."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from steadyval.config import TrainConfig
from steadyval.train import block, native
from steadyval.train.block import SmallCNN
from steadyval.train.conv import Conv2d
from steadyval.train.models import build_model
from steadyval.train.pool import MaxPool2d
from tests.conftest import at_thread_counts

needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    calls: list[tuple[int, ...]] = []
    original = block._FirstBlock.apply

    def spy(x: torch.Tensor, *rest: object) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return original(x, *rest)

    monkeypatch.setattr(block._FirstBlock, "apply", spy)
    return calls


def _block(cin: int, out: int) -> SmallCNN:
    torch.manual_seed(3)
    return SmallCNN(Conv2d(cin, out, 3), MaxPool2d(2, relu=True)).to(memory_format=torch.channels_last)


def _run(model: nn.Module, x: torch.Tensor, g: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, ...]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = model(x)
    y.backward(g.to(y.dtype))
    return y.detach(), model[0].weight.grad, model[0].bias.grad


@needs_compiler
@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize(("cin", "out", "h", "w"), [(1, 32, 40, 40), (3, 16, 33, 35), (1, 64, 20, 21), (3, 64, 9, 8)])
def test_values_and_gradients_are_the_layers_computed_exactly(bf16: bool, cin: int, out: int, h: int, w: int,
                                                               fused_calls: list) -> None:
    model = _block(cin, out)
    x = torch.randn(6, cin, h, w).contiguous(memory_format=torch.channels_last)
    x[0, :, :4, :4] = -5.0  # windows whose maximum is negative: ReLU stops their gradient
    g = torch.randn(6, out, (h - 2) // 2, (w - 2) // 2).contiguous(memory_format=torch.channels_last)
    y, grad_w, grad_b = _run(model, x, g, bf16)
    assert fused_calls == [tuple(x.shape)]
    # the exact (float64) layers on what autocast's casts give: the image, weight and bias rounded to bf16
    dtype = torch.bfloat16 if bf16 else torch.float32
    conv = model[0]
    xd = x.to(dtype).double()
    wd = conv.weight.detach().to(dtype).double().requires_grad_()
    bd = conv.bias.detach().to(dtype).double().requires_grad_()
    exact = F.relu(F.max_pool2d(F.conv2d(xd, wd, bd), 2))
    exact.backward(g.to(dtype).double())
    assert y.dtype == dtype and y.shape == exact.shape and y.is_contiguous(memory_format=torch.channels_last)
    assert (exact == 0).any() and (exact > 0).any()
    scale = exact.abs().max()
    if bf16:  # the float32 result rounded to bf16: within one unit in the last place (2^-7 relative)
        assert ((y.double() - exact).abs() <= exact.abs() * 2**-7 + 1e-6 * scale).all()
    else:
        assert (y.double() - exact).abs().max() <= 1e-6 * scale
    for ours, reference in ((grad_w, wd.grad), (grad_b, bd.grad)):
        assert ours.dtype == torch.float32  # summed in float32 and not rounded to bf16
        assert (ours.double() - reference).abs().max() <= 2e-6 * reference.abs().max()


@needs_compiler
def test_results_do_not_depend_on_the_thread_count() -> None:
    model = _block(1, 32)
    x = torch.randn(16, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    g = torch.randn(16, 32, 31, 31).contiguous(memory_format=torch.channels_last)
    results = at_thread_counts(lambda: _run(model, x, g, True))
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


@needs_compiler
@pytest.mark.parametrize("bf16", [False, True])
def test_a_training_step_of_the_ex2_model_matches_its_layers_run_one_by_one(bf16: bool, fused_calls: list) -> None:
    model = build_model(TrainConfig(model="cnn_dropout", image_size=48), 1).to(memory_format=torch.channels_last)
    assert isinstance(model, SmallCNN)
    layers = nn.Sequential(*copy.deepcopy(list(model)))  # the same layers, no fusion
    x = torch.randn(8, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    y = (torch.arange(8) % 2).float()
    losses = []
    for m in (model, layers):
        torch.manual_seed(1)  # the same dropout masks
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.binary_cross_entropy_with_logits(m(x).squeeze(1).float(), y)
        loss.backward()
        losses.append(loss.item())
    assert len(fused_calls) == 1
    assert losses[0] == pytest.approx(losses[1], rel=2e-2 if bf16 else 1e-5)
    for (name, a), (_, b) in zip(model.named_parameters(), layers.named_parameters(), strict=True):
        tolerance = 0.05 if bf16 else 1e-4  # bf16: the layers' activations are rounded at each step
        assert (a.grad - b.grad).norm() <= tolerance * b.grad.norm(), name
    assert list(model.state_dict()) == list(layers.state_dict())  # the same names as nn.Sequential's


@needs_compiler
def test_other_layers_inputs_and_observed_layers_run_one_by_one(fused_calls: list) -> None:
    x = torch.randn(2, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    cases = [
        (SmallCNN(Conv2d(1, 32, 3), nn.BatchNorm2d(32), MaxPool2d(2, relu=True)), x),  # batch norm between
        (SmallCNN(Conv2d(1, 32, 3), MaxPool2d(2)), x),  # no ReLU after the pooling
        (SmallCNN(Conv2d(2, 32, 3), MaxPool2d(2, relu=True)), torch.randn(2, 2, 16, 16)),  # 2 channels in
        (SmallCNN(Conv2d(1, 48, 3), MaxPool2d(2, relu=True)), x),  # 48 out
        (SmallCNN(Conv2d(1, 32, 3, padding=1), MaxPool2d(2, relu=True)), x),
        (SmallCNN(Conv2d(1, 32, 3), MaxPool2d(3, relu=True)), x),
        (SmallCNN(Conv2d(1, 32, 3), MaxPool2d(2, relu=True)), x.double()),
        (SmallCNN(Conv2d(1, 32, 3), MaxPool2d(2, relu=True)), x.clone().requires_grad_()),
    ]
    for model, inputs in cases:
        model = model.to(inputs.dtype)
        expected = nn.Sequential(*list(model))(inputs)
        assert torch.equal(model(inputs), expected)
    assert fused_calls == []
    # a probe's hook on the convolution sees its output: the layers run one by one
    model = _block(1, 32)
    seen: list[tuple[int, ...]] = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    model(x)
    assert seen == [(2, 32, 14, 14)] and fused_calls == []


def test_steadyval_native_0_runs_the_layers(monkeypatch: pytest.MonkeyPatch, fused_calls: list) -> None:
    monkeypatch.setenv("STEADYVAL_NATIVE", "0")
    native.load.cache_clear()
    block._functions.cache_clear()
    try:
        model = _block(1, 32)
        x = torch.randn(2, 1, 16, 16).contiguous(memory_format=torch.channels_last)
        assert torch.equal(model(x), F.relu(F.max_pool2d(model[0](x), 2)))
        assert fused_calls == []
    finally:
        native.load.cache_clear()
        block._functions.cache_clear()
