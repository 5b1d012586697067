"""The dropout layer: mask statistics, determinism, and the C kernel equal to torch's ops."""

from __future__ import annotations

import pytest
import torch

from steadyval.train import dropout, native
from steadyval.train.dropout import MaskDropout, keep_mask

needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")


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
    # neighbouring elements come from unrelated hashes: no correlation
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


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16 if t.dtype == torch.bfloat16 else torch.int32)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.5, 0.3])  # 0.3: a scale that bf16 does not hold exactly
def test_the_kernel_is_torch_s_ops_bit_for_bit(dtype: torch.dtype, p: float) -> None:
    assert dropout._functions() is not None
    torch.manual_seed(4)
    x = (torch.randn(16, 40001) * 3).to(dtype)  # enough values that some products round from a tie
    x[0, :4] = torch.tensor([0.0, -0.0, float("inf"), -2.5])
    g = torch.randn(16, 40001).to(dtype)
    g[1, :3] = torch.tensor([-0.0, float("-inf"), 7.0])
    layer = MaskDropout(p).train()
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(5)
    y_ours = layer(ours)  # the C kernel
    torch.manual_seed(5)
    key0, key1 = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
    y_theirs = theirs * keep_mask(x.numel(), key0, key1, layer.dropped).view(x.shape) * layer.scale
    nan = torch.isnan(y_theirs)
    assert torch.equal(torch.isnan(y_ours), nan) and torch.equal(_bits(y_ours)[~nan], _bits(y_theirs)[~nan])
    y_ours.backward(g)
    y_theirs.backward(g)
    nan = torch.isnan(theirs.grad)
    assert torch.equal(torch.isnan(ours.grad), nan)
    assert torch.equal(_bits(ours.grad)[~nan], _bits(theirs.grad)[~nan])


@needs_compiler
def test_a_seed_gives_the_same_masks_with_and_without_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(4, 50000)  # above the kernel's threshold for sharing the work among threads
    torch.manual_seed(6)
    with_kernel = MaskDropout(0.5).train()(x)
    monkeypatch.setattr(dropout, "_functions", lambda: None)
    torch.manual_seed(6)
    assert torch.equal(MaskDropout(0.5).train()(x), with_kernel)


def test_the_mask_is_the_documented_hash() -> None:
    # mix(x): x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16 (32-bit)
    def mix(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    key0, key1 = 0xDEADBEEF, 0x01234567
    expected = [(mix(mix(i ^ key0) ^ key1) & 0xFFFF) >= 30000 for i in range(2000)]
    assert keep_mask(2000, key0, key1, 30000).tolist() == expected


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_kernel_rounds_as_torch_s_multiply(dtype: torch.dtype) -> None:
    # with every element kept, the kernel is x * scale; 1.5 makes products that round from a tie in bf16
    torch.manual_seed(7)
    x = torch.randn(100000).to(dtype)
    for scale in (1.5, 1.25, 1 / 0.7):
        for backward in (False, True):
            ours = dropout._apply(x, (0, 0), 0, scale, backward=backward)
            assert torch.equal(_bits(ours), _bits(x * scale)), (scale, backward)
