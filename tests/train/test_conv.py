"""The GEMM weight-gradient convolution: the same gradients as nn.Conv2d, and when it applies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from steadyval.train import conv, native
from steadyval.train.conv import Conv2d, weight_gradient
from tests.conftest import at_thread_counts


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


needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")


def _first_layer_grads(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, ...]:
    layer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = layer(x)
    y.backward(g.to(y.dtype))
    return y, layer.weight.grad, layer.bias.grad


@needs_compiler
@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize(("cin", "out", "size"), [(1, 32, 40), (3, 16, 23), (1, 64, 17), (3, 32, 31)])
def test_a_first_layer_has_conv_c_s_gradients_summed_in_float32(bf16: bool, cin: int, out: int, size: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = conv._FirstLayerConv.apply
    monkeypatch.setattr(conv._FirstLayerConv, "apply", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(conv, "first_layer_fast_here", lambda: True)  # its numbers on any CPU
    torch.manual_seed(2)
    ours = Conv2d(cin, out, 3).to(memory_format=torch.channels_last)
    reference = nn.Conv2d(cin, out, 3).to(memory_format=torch.channels_last)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(6, cin, size, size).contiguous(memory_format=torch.channels_last)
    g = torch.randn(6, out, size - 2, size - 2).contiguous(memory_format=torch.channels_last)
    y, grad_w, grad_b = _first_layer_grads(ours, x, g, bf16)
    y_ref, grad_w_ref, grad_b_ref = _first_layer_grads(reference, x, g, bf16)
    assert calls and torch.equal(y, y_ref)  # the forward pass is the same oneDNN call
    # against the exact sums (float64) of the same rounded inputs; torch's bf16 gradient is rounded to bf16
    xd, gd = x.to(y.dtype).double(), g.to(y.dtype).double()
    exact_w, exact_b = torch.nn.grad.conv2d_weight(xd, ours.weight.shape, gd), gd.sum((0, 2, 3))
    for ours_grad, torch_grad, exact in ((grad_w, grad_w_ref, exact_w), (grad_b, grad_b_ref, exact_b)):
        error = (ours_grad.double() - exact).abs().max() / exact.abs().max()
        assert error < 2e-6 and error <= (torch_grad.double() - exact).abs().max() / exact.abs().max()
        assert ours_grad.dtype == torch.float32 and ours_grad.shape == exact.shape


@needs_compiler
def test_the_first_layer_gradient_does_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv, "first_layer_fast_here", lambda: True)
    layer = Conv2d(1, 32, 3).to(memory_format=torch.channels_last)
    x = torch.randn(16, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    g = torch.randn(16, 32, 62, 62).contiguous(memory_format=torch.channels_last)
    grads = at_thread_counts(lambda: _first_layer_grads(layer, x, g, True)[1:])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_other_first_layers_are_nn_conv2d_s(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(conv._FirstLayerConv, "apply", lambda *a: calls.append(1))
    for cin, out, k, needs_grad in [(2, 32, 3, False), (1, 48, 3, False), (1, 32, 5, False), (1, 32, 3, True)]:
        layer = Conv2d(cin, out, k)
        x = torch.randn(2, cin, 12, 12, requires_grad=needs_grad)
        layer(x).sum().backward()
    assert calls == []


def test_without_avx512_a_first_layer_is_nn_conv2d_s(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(conv._FirstLayerConv, "apply", lambda *a: calls.append(1))
    monkeypatch.setattr(conv, "first_layer_fast_here", lambda: False)
    Conv2d(1, 32, 3)(torch.randn(2, 1, 12, 12)).sum().backward()
    assert calls == []


@needs_compiler
def test_conv_c_is_used_where_it_is_built_with_avx512() -> None:
    import os
    import platform

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if platform.machine() not in ("x86_64", "AMD64") or not flags:
        pytest.skip("reads the x86 CPU flags from /proc/cpuinfo")
    if os.environ.get("CC"):
        pytest.skip("a CC override may build for another CPU than this one")
    assert conv.first_layer_fast_here() == (" avx512f" in flags)
