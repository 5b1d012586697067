"""The small CNNs' first block (3x3 convolution, 2x2 max pooling, ReLU) in one pass on the CPU.

The convolution of a grey or RGB image has little arithmetic per output (9 or 27 products
per channel) and four times as many outputs as the pooling keeps, so torch spends its time
on memory: for the seed's Ex. 2 model at 224 px in bf16 (batch 32, 2-core AVX-512 EPYC) the
convolution's forward took 20 ms, writing a 100 MB output that the pooling then reads (8 ms),
and the backward passes rebuilt a 100 MB gradient to read it again (pooling 4-20 ms, weight
gradient 8 ms), of a ~160 ms step. ``block.c`` computes each pooling window's four outputs
in registers and keeps only the ReLU'd maximum and a one-byte argmax; the weight gradient
comes from the pooled gradient. Forward and backward of that layer at 224 px (batch 32,
fp32): 13-18 ms against torch's 50-70 with AVX-512; with AVX2 only (emulated on that
machine: -march=x86-64-v3, ONEDNN_MAX_CPU_ISA=AVX2) 37 ms against 126. The arithmetic is
float32 (under bf16 autocast: on the bf16-rounded image, weights and bias, as autocast's
casts make them), so outputs differ from oneDNN's by float rounding (bf16: at most one unit
in the last place, ``tests/train/test_block.py``) and the weight gradient is not rounded to
bf16 (as ``conv.c``'s, see ``conv.py``).

``SmallCNN`` is the ``nn.Sequential`` of the small models; it takes this path when its first
two layers are a plain first-layer ``Conv2d`` and ``MaxPool2d(2, relu=True)`` on a
channels-last CPU batch and nothing observes the convolution's output (no hooks: the probes
read it), and runs its layers one by one otherwise.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import nn

from steadyval.train import native
from steadyval.train.conv import FIRST_LAYER_IN, FIRST_LAYER_OUT
from steadyval.train.pool import MaxPool2d

_SUFFIX = {torch.float32: "f32", torch.bfloat16: "bf16"}


@functools.cache
def _functions() -> dict[tuple[torch.dtype, str], ctypes._CFuncPtr] | None:
    pointers, sizes = [ctypes.c_void_p] * 5, [ctypes.c_int64] * 5
    found = {step: native.bind("block", tuple(f"{step}_{s}" for s in _SUFFIX.values()), pointers + sizes, ctypes.c_int)
             for step in ("forward", "backward")}
    if any(functions is None for functions in found.values()):
        return None
    return {(dtype, step): found[step][f"{step}_{suffix}"]  # type: ignore[index]
            for dtype, suffix in _SUFFIX.items() for step in found}


class _FirstBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        n, cin, h, w = x.shape
        o = weight.shape[0]
        # what autocast's casts give (bf16-rounded), then float32: (9 * cin, o), tap-major
        taps = weight.detach().to(dtype).float().permute(2, 3, 1, 0).reshape(9 * cin, o).contiguous()
        b = bias.detach().to(dtype).float().contiguous()
        hp, wp = (h - 2) // 2, (w - 2) // 2
        y = torch.empty((n, o, hp, wp), dtype=dtype, memory_format=torch.channels_last)
        arg = torch.empty((n, hp, wp, o), dtype=torch.uint8)
        fn = _functions()[dtype, "forward"]  # type: ignore[index]  # checked by the caller
        native.check(fn(x.data_ptr(), taps.data_ptr(), b.data_ptr(), y.data_ptr(), arg.data_ptr(), n, cin, h, w, o),
                     "block.c", tuple(weight.shape))
        ctx.save_for_backward(x, arg)
        ctx.shape = tuple(weight.shape)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, arg = ctx.saved_tensors
        o, cin, k, _ = ctx.shape
        n, _, h, w = x.shape
        grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
        grad_w = torch.empty((o, k, k, cin)).permute(0, 3, 1, 2)  # the weight's channels-last layout
        grad_b = torch.empty(o)
        fn = _functions()[x.dtype, "backward"]  # type: ignore[index]
        native.check(fn(x.data_ptr(), grad.data_ptr(), arg.data_ptr(), grad_w.data_ptr(), grad_b.data_ptr(),
                        n, cin, h, w, o), "block.c", ctx.shape)
        return None, grad_w, grad_b, None


def fused(conv: nn.Module, pool: nn.Module, x: torch.Tensor) -> torch.dtype | None:
    """The dtype ``block.c`` runs ``pool(conv(x))`` in, or None where that layer pair is not its case."""
    if not (isinstance(conv, nn.Conv2d) and isinstance(pool, MaxPool2d) and pool.relu):
        return None
    if (conv._forward_hooks or conv._forward_pre_hooks or pool._forward_hooks or pool._forward_pre_hooks
            or conv._backward_hooks or pool._backward_hooks):
        return None  # somebody reads a layer's output or gradient: run the layers
    if not (conv.in_channels in FIRST_LAYER_IN and conv.out_channels in FIRST_LAYER_OUT and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (0, 0) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.bias is not None and conv.padding_mode == "zeros"):
        return None
    if not pool.is_2x2() or x.device.type != "cpu" or x.dim() != 4 or x.shape[1] != conv.in_channels:
        return None
    if x.shape[-2] < 4 or x.shape[-1] < 4 or x.requires_grad or conv.weight.device.type != "cpu":
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype not in _SUFFIX or conv.weight.dtype != torch.float32 or _functions() is None:
        return None
    return dtype


class SmallCNN(nn.Sequential):
    """The small CNNs' layers in order; the first block in one pass where ``fused`` says so."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        start = 0
        if len(layers) >= 2 and (dtype := fused(layers[0], layers[1], x)) is not None:
            x = _FirstBlock.apply(x, layers[0].weight, layers[0].bias, dtype)
            start = 2
        for layer in layers[start:]:
            x = layer(x)
        return x
