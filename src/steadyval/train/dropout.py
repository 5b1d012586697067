"""Inverted dropout whose keep mask is a counter-based hash of two keys drawn from torch's generator.

Dropout was the largest cost after the convolutions in a training step of the seed's Ex. 2
model at 224 px (bf16, 2-core AVX-512 EPYC): about 21 ms of 197, measured by leaving it out.
Drawing 16 random bits per element from torch's Mersenne Twister took 5.4 ms of that, and
building and applying the mask in torch ops (compare, two multiplies forward, two backward)
most of the rest. Here each call draws two 32-bit keys from torch's (CPU) generator, so a run
still replays from its seed and a resumed run continues the stream; element i is kept when
16 bits of a hash of (i, keys) clear a threshold. ``dropout.c`` computes mask and output in one
pass and recomputes the mask in the backward pass; where it is not built (no C compiler, a
GPU) the same mask comes from torch's integer ops, so a seed gives the same run either way.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import nn

from steadyval.train import native

LEVELS = 2**16
M1, M2 = 0x7FEB352D, 0x846CA68B  # Wellons' lowbias32 multipliers (dropout.c's mix)
_DTYPES = {torch.float32: "dropout_f32", torch.bfloat16: "dropout_bf16"}


def _int32(value: int) -> int:
    """A 32-bit pattern as the int32 that holds it."""
    return value - 2**32 if value >= 2**31 else value


def _mix_(x: torch.Tensor) -> torch.Tensor:
    """dropout.c's 32-bit mix, in place on an int32 tensor (logical shifts masked out of arithmetic
    ones; products wrap to their low 32 bits, as uint32_t arithmetic does)."""
    x ^= (x >> 16) & 0xFFFF
    x.mul_(M1)
    x ^= (x >> 15) & 0x1FFFF
    x.mul_(_int32(M2))
    x ^= (x >> 16) & 0xFFFF
    return x


def keep_mask(n: int, key0: int, key1: int, dropped: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(n,) bool: element i is kept when the low 16 bits of mix(mix(i ^ key0) ^ key1) are >= ``dropped``.

    dropout.c's mask in torch's integer ops, for a GPU and for a CPU without the compiled kernel
    (there it takes about 3x the old Mersenne-Twister mask: 30 against 11 ms for the 6 M values of
    a 224 px batch).
    """
    x = torch.arange(n, device=device, dtype=torch.int32)
    x ^= _int32(key0)
    x = _mix_(x)
    x ^= _int32(key1)
    return (_mix_(x) & (LEVELS - 1)) >= dropped


@functools.cache
def _functions() -> dict[torch.dtype, ctypes._CFuncPtr] | None:
    functions = native.bind("dropout", tuple(_DTYPES.values()),
                            [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint32,
                             ctypes.c_uint32, ctypes.c_float, ctypes.c_int])
    return None if functions is None else {dtype: functions[symbol] for dtype, symbol in _DTYPES.items()}


def _apply(x: torch.Tensor, keys: tuple[int, int], dropped: int, scale: float, backward: bool) -> torch.Tensor:
    out = torch.empty_like(x)
    fn = _functions()[x.dtype]  # type: ignore[index]  # the caller checked
    fn(x.data_ptr(), out.data_ptr(), x.numel(), keys[0], keys[1], dropped, scale, int(backward))
    return out


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, key0: int, key1: int, dropped: int,
                scale: float) -> torch.Tensor:
        ctx.args = ((key0, key1), dropped, scale)
        return _apply(x, (key0, key1), dropped, scale, backward=False)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        keys, dropped, scale = ctx.args
        return _apply(grad.contiguous(), keys, dropped, scale, backward=True), None, None, None, None


class MaskDropout(nn.Module):
    """Inverted dropout, as nn.Dropout: each element dropped with probability ``p`` (rounded to
    1/65536), kept ones scaled by the exact inverse of the keep rate (unbiased).

    The mask is a hash of the element's index and two 32-bit keys from torch's CPU generator
    (see the module): deterministic for a seed, on any device, with or without the C kernel.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.dropped = round(p * LEVELS)  # of LEVELS equally likely values, how many drop
        self.scale = LEVELS / (LEVELS - self.dropped) if self.dropped < LEVELS else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.dropped == 0:
            return x
        key0, key1 = torch.randint(0, 2**32, (2,), dtype=torch.int64).tolist()
        if (x.device.type == "cpu" and x.dtype in _DTYPES and x.is_contiguous() and self.dropped < LEVELS
                and _functions() is not None):
            return _Dropout.apply(x, key0, key1, self.dropped, self.scale)
        keep = keep_mask(x.numel(), key0, key1, self.dropped, x.device).view(x.shape)
        return x * keep * self.scale

    def extra_repr(self) -> str:
        return f"p={self.p}"
