"""Batch augmentation on the training device, drawn from torch's seeded RNG.

The transforms are kornia's: ``RandomAffine`` + ``RandomHorizontalFlip`` for ``geometric``;
``RandomBrightness``, ``RandomContrast``, ``RandomGamma`` and ``RandomGaussianNoise`` for
``intensity``, with kornia's parameter ranges, matrix (``get_affine_matrix2d``), sampling
convention (bilinear, zeros outside, align_corners=False) and clipping. They are applied in
fewer passes over the batch than kornia's modules take: the flip is folded into the affine
matrix, so each image is resampled once; the sampling grid is written with one broadcast per
coordinate; the intensity changes run on the whole batch with per-image factors (1 where an
image was not drawn) instead of kornia's per-transform selection, clamps and copies. Equal
to kornia's functions to 2e-5 (``tests/train/test_augment.py``); side by side with the
kornia pipeline on the build machine (benchmarks/augment_speed.py, 32 RGB images):

    64 px   geometric  kornia 6.3-8.2 ms  these 3.3-4.3 ms     intensity 8.5-11.8 ms  2.6-3.8 ms
    224 px  geometric  kornia  44-55 ms   these  27-30 ms      intensity  99-127 ms    38-43 ms

A 64 px training step of the seed's Ex. 2 model takes about 50-70 ms there, so kornia's
intensity pipeline was 15-20 % of an augmented step.
"""

from __future__ import annotations

import ctypes
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from steadyval.train import native

# geometric (seed Ex. 1): rotation 20 deg, shift 0.1, zoom 0.1, shear 0.1 rad, horizontal flip.
DEGREES, TRANSLATE, SCALE, SHEAR_DEG, FLIP_P = 20.0, 0.1, (0.9, 1.1), math.degrees(0.1), 0.5
# intensity: (range, probability) of each change; Gaussian noise std and probability.
BRIGHTNESS, CONTRAST, GAMMA, CHANGE_P = (0.85, 1.15), (0.8, 1.2), (0.7, 1.4), 0.8
NOISE_STD, NOISE_P = 0.03, 0.5


def build_augmentation(name: str) -> nn.Module | None:
    """The augmentation for an ``augment`` value; None for "none".

    geometric (seed Ex. 1): rotation 20 deg, shift 0.1, shear 0.1, zoom 0.1, horizontal flip.
    Keras's ImageDataGenerator reads shear_range=0.1 as 0.1 degrees, a no-op; it is taken
    here as 0.1 rad (5.7 deg), the shear the recipe evidently meant.
    intensity: brightness, contrast, gamma and Gaussian noise, for scanner differences.
    """
    if name == "none":
        return None
    return BatchAugment(geometric="geometric" in name, intensity="intensity" in name)


class BatchAugment(nn.Module):
    """Random affine + flip and/or intensity changes of a (B, C, H, W) batch in [0, 1]."""

    def __init__(self, geometric: bool, intensity: bool) -> None:
        super().__init__()
        self.geometric, self.intensity = geometric, intensity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.geometric:
            x = warp(x, affine_matrices(sample_geometric(x.shape[0], x.device), x.shape[-2], x.shape[-1]))
        if self.intensity:
            x = adjust_intensity(x, sample_intensity(x.shape[0], x.device))
        return x

    def extra_repr(self) -> str:
        return f"geometric={self.geometric}, intensity={self.intensity}"


def sample_geometric(b: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-image parameters, as kornia's RandomAffine and RandomHorizontalFlip draw them."""
    u = torch.rand(b, 6, device=device)
    return {"angle": (2 * u[:, 0] - 1) * DEGREES,  # degrees
            "translate": (2 * u[:, 1:3] - 1) * TRANSLATE,  # fraction of width, height
            "scale": SCALE[0] + (SCALE[1] - SCALE[0]) * u[:, 3],
            "shear_x": (2 * u[:, 4] - 1) * SHEAR_DEG,  # degrees
            "flip": u[:, 5] < FLIP_P}


def affine_matrices(p: dict[str, torch.Tensor], h: int, w: int) -> torch.Tensor:
    """(B, 3, 3) pixel-coordinate matrices: kornia's ``get_affine_matrix2d``, then the flip where drawn.

    kornia's matrix is R(-angle, scale) about the centre, plus the shift, times the x-shear about
    the centre. Written out here in closed form (a dozen batched ops instead of kornia's ~150
    small ones, 2 of the 5 ms a 64 px batch took); ``tests/train/test_augment.py`` checks it
    equals kornia's.
    """
    a = p["angle"] * (math.pi / 180)
    alpha, beta = p["scale"] * torch.cos(a), -p["scale"] * torch.sin(a)
    k = torch.tan(p["shear_x"] * (math.pi / 180))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    tx, ty = p["translate"][:, 0] * w, p["translate"][:, 1] * h
    # The horizontal flip after it, x -> (w - 1) - x on the affine's output, negates the first row
    # and adds w - 1 to its shift.
    sign = torch.where(p["flip"], -1.0, 1.0)
    shift0 = (alpha * k * cy + (1 - alpha) * cx - beta * cy + tx) * sign + torch.where(p["flip"], w - 1.0, 0.0)
    row0 = torch.stack([alpha * sign, (beta - alpha * k) * sign, shift0], 1)
    row1 = torch.stack([-beta, alpha + beta * k, beta * cx + (1 - alpha) * cy - beta * k * cy + ty], 1)
    row2 = torch.zeros_like(row0)
    row2[:, 2] = 1.0
    return torch.stack([row0, row1, row2], 1)


def warp(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` by pixel matrices ``m`` (output pixel = m @ input pixel), zeros outside.

    Pixel centres x = 0 .. w-1 sit at normalised (2x + 1) / w - 1, grid_sample's half-pixel
    convention (align_corners=False, as kornia's RandomAffine samples).
    """
    b, _, h, w = x.shape
    norm, to_pixels, xs, ys = _grid_constants(h, w, x.device)
    # For each output position (normalised), where to sample the input (normalised).
    src = norm @ torch.linalg.inv(m) @ to_pixels
    # grid[..., k] = src[k, 0] * x + src[k, 1] * y + src[k, 2]: one broadcast each, written in place
    # (F.affine_grid's batched product took 2.0 ms at 64 px, this 0.25).
    grid = torch.empty(b, h, w, 2, device=x.device)
    for k in range(2):
        torch.add((src[:, k, 0, None] * xs)[:, None, :], (src[:, k, 1, None] * ys + src[:, k, 2, None])[:, :, None],
                  out=grid[..., k])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=8)
def _grid_constants(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Pixel -> normalised matrix, its inverse, and the normalised pixel centres; made once per
    size and device (building them from Python lists every batch would sync a GPU)."""
    norm = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]],
                        dtype=torch.float64)
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w)
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h)
    return tuple(t.float().to(device) for t in (norm, torch.linalg.inv(norm), xs, ys))


def sample_intensity(b: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Per-image factors (identity where an image was not drawn for a change)."""
    u = torch.rand(b, 7, device=device)

    def factor(draw: torch.Tensor, value: torch.Tensor, low: float, high: float, identity: float) -> torch.Tensor:
        return torch.where(draw < CHANGE_P, low + (high - low) * value, torch.full_like(value, identity))

    return {"brightness": factor(u[:, 0], u[:, 1], *BRIGHTNESS, 1.0),
            "contrast": factor(u[:, 2], u[:, 3], *CONTRAST, 1.0),
            "gamma": factor(u[:, 4], u[:, 5], *GAMMA, 1.0),
            "noise": u[:, 6] < NOISE_P}


def adjust_intensity(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """kornia's adjust_brightness (additive), adjust_contrast (multiplicative), adjust_gamma, each
    clipped to [0, 1], then Gaussian noise on the drawn images."""
    shape = (-1, 1, 1, 1)
    # x is in [0, 1] already (uint8 / 255, or bilinear samples of it), so kornia's clamp of the
    # input is left out.
    y = (x + (p["brightness"] - 1).view(shape)).clamp_(0.0, 1.0)
    y = y.mul_(p["contrast"].view(shape)).clamp_(0.0, 1.0)
    # y ** gamma as exp(gamma * log y): 2x faster than pow with a per-image exponent here
    # (0.8 vs 1.7 ms at 64 px), equal to 6e-8; log 0 = -inf gives exp(-inf) = 0, as 0 ** gamma.
    y = y.log_().mul_(p["gamma"].view(shape)).exp_()
    if x.device.type == "cpu":  # noise drawn for the drawn images only: half the cost of randn here
        noisy = p["noise"].nonzero().squeeze(1)
        if len(noisy):
            y.index_add_(0, noisy, torch.randn((len(noisy), *x.shape[1:]), device=x.device), alpha=NOISE_STD)
    else:  # on a GPU the index would wait for the device; noise everywhere, zeroed where not drawn
        y.add_(torch.randn_like(y) * (p["noise"].to(y.dtype) * NOISE_STD).view(shape))
    return y


@torch.no_grad()
def augment_batch(aug: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """Apply ``aug`` to a (B, C, H, W) float batch in [0, 1]."""
    if aug is None:
        return x
    return aug(x).clamp_(0.0, 1.0)


@functools.cache
def _batch_kernel() -> ctypes._CFuncPtr | None:
    functions = native.bind("batch", ("batch_f32",), [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 4, ctypes.c_int)
    return None if functions is None else functions["batch_f32"]


def training_batch(aug: BatchAugment | None, images: torch.Tensor, idx: torch.Tensor, mean: torch.Tensor,
                   std: torch.Tensor) -> torch.Tensor:
    """The model's input for the (N, C, H, W) uint8 ``images`` at ``idx``: in [0, 1], augmented by ``aug``,
    clamped, normalised by the (1, C, 1, 1) ``mean`` and ``std``, channels-last float32.

    Equal to ``augment_batch(aug, images[idx].float() / 255)``, normalised, with the same random
    draws. On the CPU ``batch.c`` makes it in one pass where torch takes six (gather, convert,
    sampling grid, grid_sample, clamp, normalise, layout): at 224 px the input path was 10 % of
    a training step of the seed's Ex. 2 model. Without geometric augmentation the result is
    torch's bit for bit; with it, grid_sample's to float rounding (``tests/train/test_augment.py``).
    """
    kernel = _batch_kernel() if images.device.type == "cpu" else None
    if kernel is None or images.dtype != torch.uint8 or not images.is_contiguous() or images.dim() != 4:
        x = augment_batch(aug, images[idx].float().div_(255))
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)
    n, (c, h, w) = len(idx), images.shape[1:]
    idx = idx.to(torch.int64).contiguous()
    mats = None
    if aug is not None and aug.geometric:  # drawn first, as BatchAugment.forward draws them
        pixel = affine_matrices(sample_geometric(n, images.device), h, w)
        mats = torch.linalg.inv(pixel.double())[:, :2].reshape(n, 6).contiguous()  # output -> source pixel
    intensity = aug is not None and aug.intensity
    mean_c, std_c = mean.reshape(-1).float().contiguous(), std.reshape(-1).float().contiguous()
    out = torch.empty((n, c, h, w), memory_format=torch.channels_last)  # written as (n, h, w, c)
    if kernel(images.data_ptr(), idx.data_ptr(), None if mats is None else mats.data_ptr(),
              None if intensity else mean_c.data_ptr(), None if intensity else std_c.data_ptr(), out.data_ptr(),
              n, c, h, w):
        raise MemoryError(f"no memory for one {c}x{h}x{w} image while making a training batch")
    if intensity:  # the intensity changes on the resampled [0, 1] batch, then clamp and normalise
        out = adjust_intensity(out, sample_intensity(n, images.device)).clamp_(0.0, 1.0)
        out = ((out - mean) / std).contiguous(memory_format=torch.channels_last)
    return out
