"""A 3x3 convolution whose weight gradient on the CPU is one blocked im2col GEMM, or for a first
layer (grey or RGB in) ``conv.c``'s.

oneDNN's fp32 weight-gradient kernel is the slowest part of the small CNNs' training step
on an AVX2-only CPU: for the seed's Ex. 2 model at 224 px its second convolution's weight
gradient took 390 ms of a 1,050 ms step, against 115 ms for the forward pass of the same
layer. The same gradient as an im2col matrix product, built in blocks that stay in cache,
took 210 ms (1.8x); at smaller outputs the gain shrinks (1.45x at 77x77, 1.3x at 61x61,
1.25x at 45x45) and vanishes at 29x29, hence ``MIN_OUTPUT_PIXELS``. Whole training steps,
A/B in one process: 1.22x at 224 px with geometric augmentation, 1.14x at 128 px, and
64 px (29x29 outputs) unchanged. For the one-channel first layer the GEMM measured 0.94x
at 128 px and 1.05x at 224 px in whole steps, hence ``MIN_IN_CHANNELS``. Forward pass and
input gradient stay with oneDNN.

A first layer needs no input gradient, and its weight gradient is a sum over every output
position of 9 (or 27) input values times the output gradient: little arithmetic that oneDNN
does slowly (the seed's Ex. 2 model at 224 px in bf16: 13-24 ms of a 175 ms step). ``conv.c``
keeps each image's sums in vector registers and adds the images in batch order, in fp32:
torch's bf16 gradient under autocast is rounded to bf16 (relative error ~2e-3), this one is
not (~3e-6, ``tests/train/test_conv.py``).
"""

from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F
from torch import nn

from steadyval.train import native

# Below this many output pixels per image oneDNN's weight gradient was as fast (29x29).
MIN_OUTPUT_PIXELS = 40 * 40
# The first layer's one (or three) input channels gain nothing from the GEMM; see above.
MIN_IN_CHANNELS = 8
# The first layers conv.c (weight gradient) and block.c (first block) have kernels for: 3x3,
# grey or RGB in, 16, 32 or 64 out.
FIRST_LAYER_IN, FIRST_LAYER_OUT = (1, 3), (16, 32, 64)
# Rows (output pixels) per im2col block: 16k rows x 9 x 32 channels is 18 MB, the fastest
# block measured at 45-109 px outputs (4k: up to 10 % slower at 61 px).
BLOCK_ROWS = 16384


def weight_gradient(x: torch.Tensor, grad: torch.Tensor, kernel: int) -> torch.Tensor:
    """d(loss)/d(weight) of an unpadded stride-1 ``kernel`` x ``kernel`` convolution.

    ``x`` is the (B, C, H, W) input, ``grad`` the (B, O, H-k+1, W-k+1) output gradient.
    Returns (O, C, k, k) in channels-last strides, as the weight itself is stored.
    """
    b, c = x.shape[:2]
    o, ho, wo = grad.shape[1:]
    xn = x.permute(0, 2, 3, 1)  # NHWC views: contiguous rows of C for channels-last input
    gn = grad.permute(0, 2, 3, 1)
    taps = [(ky, kx) for ky in range(kernel) for kx in range(kernel)]
    out = torch.zeros(kernel * kernel * c, o, dtype=grad.dtype, device=grad.device)
    if ho * wo >= BLOCK_ROWS:  # large images: a block is a band of rows of one image
        band = max(1, BLOCK_ROWS // wo)
        blocks = [(i, i + 1, r, min(ho, r + band)) for i in range(b) for r in range(0, ho, band)]
    else:  # small images: a block is several whole images
        per = max(1, BLOCK_ROWS // (ho * wo))
        blocks = [(i, min(b, i + per), 0, ho) for i in range(0, b, per)]
    for i0, i1, r0, r1 in blocks:
        cols = torch.stack([xn[i0:i1, r0 + ky:r1 + ky, kx:kx + wo, :] for ky, kx in taps], dim=-2)
        out.addmm_(cols.view(-1, kernel * kernel * c).t(), gn[i0:i1, r0:r1].reshape(-1, o))
    return out.t().view(o, kernel, kernel, c).permute(0, 3, 1, 2)


class _GemmWgradConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = weight_gradient(x, grad, weight.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


@functools.cache
def _first_layer_functions() -> dict[torch.dtype, ctypes._CFuncPtr] | None:
    symbols = {torch.float32: "wgrad_f32", torch.bfloat16: "wgrad_bf16"}
    functions = native.bind("conv", tuple(symbols.values()), [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 5, ctypes.c_int)
    return None if functions is None else {dtype: functions[symbol] for dtype, symbol in symbols.items()}


@functools.cache
def first_layer_fast_here() -> bool:
    """True where ``conv.c`` is built with AVX-512, where it was measured faster than oneDNN's
    weight gradient. With AVX2 only (emulated on the AVX-512 machine: -march=x86-64-v3,
    ONEDNN_MAX_CPU_ISA=AVX2) its per-image sums spill out of the 16 registers: a 224 px first
    layer's forward and backward (batch 32, fp32) took 293 ms against torch's 122, so there
    torch's runs."""
    probe = native.bind("conv", ("conv_wide_vectors",), [], ctypes.c_int)
    return probe is not None and _first_layer_functions() is not None and probe["conv_wide_vectors"]() == 1


class _FirstLayerConv(torch.autograd.Function):
    """A convolution whose input needs no gradient, with ``conv.c``'s weight and bias gradients.

    Runs in ``dtype`` (bf16 where autocast asks for it: the same casts autocast makes, forward
    by oneDNN); the gradients are summed in float32 and returned as float32.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x)
        ctx.shape, ctx.has_bias = weight.shape, bias is not None
        with torch.autocast("cpu", enabled=False):
            return F.conv2d(x, weight.to(dtype), None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,
                 grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        o, cin, k, _ = ctx.shape  # k == 3
        grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
        grad_w = torch.empty((o, k, k, cin)).permute(0, 3, 1, 2)  # the weight's channels-last layout
        grad_b = torch.empty(o) if ctx.has_bias else None
        fn = _first_layer_functions()[x.dtype]  # type: ignore[index]  # checked by the caller
        status = fn(x.data_ptr(), grad.data_ptr(), grad_w.data_ptr(), None if grad_b is None else grad_b.data_ptr(),
                    x.shape[0], cin, x.shape[2], x.shape[3], o)
        native.check(status, "conv.c", tuple(ctx.shape))
        return None, grad_w, grad_b, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (unpadded, stride 1) that trains with faster weight gradients on the CPU.

    Two fast paths, everything else is ``nn.Conv2d`` exactly:

    - at least ``MIN_IN_CHANNELS`` input channels and ``MIN_OUTPUT_PIXELS`` output pixels, in
      fp32 outside autocast: the blocked im2col GEMM above;
    - a first layer (``FIRST_LAYER_IN`` / ``FIRST_LAYER_OUT`` channels, 3x3, an input that needs
      no gradient), in fp32 or under bf16 autocast, on an AVX-512 CPU (``first_layer_fast_here``):
      ``conv.c``'s weight gradient, where oneDNN's is slowest, summed in fp32 (under autocast
      torch's is rounded to bf16). The small CNNs' first layer mostly runs as ``block.py``'s
      fused first block instead; this is for the others (batch norm after the first layer).

    Parameters, state-dict names and forward outputs are ``nn.Conv2d``'s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        plain = (x.device.type == "cpu" and torch.is_grad_enabled() and self.weight.requires_grad
                 and self.stride == (1, 1) and self.padding == (0, 0) and self.dilation == (1, 1)
                 and self.groups == 1 and self.kernel_size == (k, k) and x.dim() == 4)
        if not plain:
            return super().forward(x)
        autocast = torch.is_autocast_enabled("cpu")
        dtype = torch.get_autocast_dtype("cpu") if autocast else x.dtype
        if (self.in_channels in FIRST_LAYER_IN and self.out_channels in FIRST_LAYER_OUT and k == 3
                and not x.requires_grad and dtype in (torch.float32, torch.bfloat16)
                and first_layer_fast_here()):
            return _FirstLayerConv.apply(x, self.weight, self.bias, dtype)
        if (x.dtype == torch.float32 and not autocast and self.in_channels >= MIN_IN_CHANNELS
                and (x.shape[-2] - k + 1) * (x.shape[-1] - k + 1) >= MIN_OUTPUT_PIXELS):
            return _GemmWgradConv.apply(x, self.weight, self.bias)
        return super().forward(x)
