"""2x2 max pooling that trains faster on the CPU: a C kernel in place of torch's, same results.

torch's CPU max pooling keeps an 8-byte index per output and computes the gradient as a zero
fill of the whole input followed by a scatter. For the seed's Ex. 2 model at 224 px in bf16
(batch 32, on a 2-core AVX-512 EPYC) the first pooling layer's forward took 11 ms and its
backward 19-34 ms of a ~240 ms training step. ``pool.c`` keeps a 1-byte argmax and writes
the gradient in one pass; its outputs and gradients are torch's bit for bit
(``tests/train/test_pool.py``), so a run is the same with or without it. It applies to
channels-last float32/bfloat16 CPU tensors with a 2x2 window and stride 2, where the C
compiler is there (``steadyval.train.native``); everything else is ``nn.MaxPool2d``.

``MaxPool2d(2, relu=True)`` is the pooling followed by ReLU, fused: the kernel writes the
ReLU'd maximum and marks the windows whose gradient ReLU stops, so neither ReLU pass over
memory is left (its backward, torch's threshold_backward, took 10 ms of a 160 ms bf16 step
at 224 px). Values and gradients are again torch's max_pool2d then relu, bit for bit.
"""

from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F
from torch import nn

from steadyval.train import native

_DTYPES = {torch.float32: "pool_f32", torch.bfloat16: "pool_bf16"}


@functools.cache
def _functions() -> dict[tuple[torch.dtype, str], ctypes._CFuncPtr] | None:
    pointers = [ctypes.c_void_p] * 3
    forward = native.bind("pool", tuple(f"{p}_forward" for p in _DTYPES.values()), pointers + [ctypes.c_int64] * 7)
    backward = native.bind("pool", tuple(f"{p}_backward" for p in _DTYPES.values()), pointers + [ctypes.c_int64] * 6)
    if forward is None or backward is None:
        return None
    return {(dtype, step): functions[f"{prefix}_{step}"] for dtype, prefix in _DTYPES.items()
            for step, functions in (("forward", forward), ("backward", backward))}


def _run(fn: ctypes._CFuncPtr, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *dims: int) -> None:
    """``fn(a, b, c, *dims)``; ctypes releases the GIL while it runs on torch's OpenMP threads."""
    fn(a.data_ptr(), b.data_ptr(), c.data_ptr(), *dims)


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, relu: bool) -> torch.Tensor:
        b, c, h, w = x.shape
        ho, wo = h // 2, w // 2
        y = torch.empty((b, c, ho, wo), dtype=x.dtype, memory_format=torch.channels_last)
        arg = torch.empty((b, ho, wo, c), dtype=torch.uint8)  # which of the window's 4 values won (4: none)
        functions = _functions()
        assert functions is not None  # checked by the caller
        _run(functions[x.dtype, "forward"], x, y, arg, b, h, w, c, ho, wo, int(relu))
        ctx.save_for_backward(arg)
        ctx.dims = (b, c, h, w)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (arg,) = ctx.saved_tensors
        b, c, h, w = ctx.dims
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = torch.empty((b, c, h, w), dtype=grad.dtype, memory_format=torch.channels_last)
        functions = _functions()
        assert functions is not None
        _run(functions[grad.dtype, "backward"], grad, arg, grad_x, b, h, w, c, h // 2, w // 2)
        return grad_x, None


def fast_path(x: torch.Tensor) -> bool:
    """True when the C kernel pools ``x`` (2x2 window, stride 2): a channels-last float32 or
    bfloat16 CPU batch of at least 2x2 pixels, with the kernel built on this machine."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in _DTYPES and x.shape[-1] >= 2
            and x.shape[-2] >= 2 and x.is_contiguous(memory_format=torch.channels_last)
            and _functions() is not None)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose 2x2, stride-2 case runs the C kernel on the CPU (see the module);
    with ``relu=True``, followed by ReLU (fused in that case)."""

    def __init__(self, *args: object, relu: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.relu = relu

    def extra_repr(self) -> str:
        return super().extra_repr() + (", relu=True" if self.relu else "")

    def is_2x2(self) -> bool:
        """A 2x2 window with stride 2 and nothing else set: the case the C kernels take."""
        pair = (2, 2)
        return (_pair(self.kernel_size) == pair and _pair(self.stride or self.kernel_size) == pair
                and _pair(self.padding) == (0, 0) and _pair(self.dilation) == (1, 1)
                and not self.ceil_mode and not self.return_indices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_2x2() and fast_path(x):
            return _MaxPool2x2.apply(x, self.relu)
        y = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                         ceil_mode=self.ceil_mode, return_indices=self.return_indices)
        if self.relu:
            return (F.relu(y[0], inplace=True), y[1]) if self.return_indices else F.relu(y, inplace=True)
        return y


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value)
