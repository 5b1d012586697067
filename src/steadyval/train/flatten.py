"""nn.Flatten for channels-last CPU batches: the same output, both copies done by a C transpose.

Flattening a channels-last (B, C, H, W) batch in torch's (C, H, W) order is a transpose. torch's
copy did it in 3.4 ms for the seed's Ex. 2 model at 224 px (bf16, batch 32, 6 M values), and
handed back a channels-first gradient, so the ReLU before it ran its backward on mixed layouts
(4.9 ms) and the pooling before that copied the gradient again (2.4 ms). ``flatten.c``
transposes both ways in cache-sized tiles and the gradient comes back channels-last, as its
input was: whole steps 1.04x at 224 px and 1.03x at 64 px (interleaved A/B in one process). Values are copied, so the
results are nn.Flatten's bit for bit; anything else (other dims, layouts, devices, or no C
compiler) is nn.Flatten itself.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import nn

from steadyval.train import native

_WIDTHS = {torch.float32: 32, torch.bfloat16: 16, torch.float16: 16}


@functools.cache
def _functions() -> dict[int, ctypes._CFuncPtr] | None:
    library = native.load("flatten")
    if library is None:
        return None
    functions = {}
    for bits in (16, 32):
        fn = getattr(library, f"transpose_{bits}")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
        fn.restype = None
        functions[bits] = fn
    return functions


def _transpose(src: torch.Tensor, dst: torch.Tensor, n: int, rows: int, cols: int) -> None:
    """dst[b][j][i] = src[b][i][j] over memory, src being (n, rows, cols)."""
    _functions()[_WIDTHS[src.dtype]](src.data_ptr(), dst.data_ptr(), n, rows, cols)  # type: ignore[index]


class _FlattenChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ctx.shape = (b, c, h, w)
        out = torch.empty((b, c * h * w), dtype=x.dtype)
        _transpose(x, out, b, h * w, c)  # (b, hw, c) -> (b, c, hw)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        b, c, h, w = ctx.shape
        grad = grad.contiguous()
        grad_x = torch.empty((b, c, h, w), dtype=grad.dtype, memory_format=torch.channels_last)
        _transpose(grad, grad_x, b, c, h * w)  # (b, c, hw) -> (b, hw, c)
        return grad_x


class Flatten(nn.Flatten):
    """``nn.Flatten`` (here always dims 1..-1) that flattens channels-last CPU batches with ``flatten.c``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.start_dim == 1 and self.end_dim == -1 and x.dim() == 4 and x.device.type == "cpu"
                and x.dtype in _WIDTHS and x.is_contiguous(memory_format=torch.channels_last)
                and not x.is_contiguous() and _functions() is not None):
            return _FlattenChannelsLast.apply(x)
        return super().forward(x)
