"""The batch augmentation is kornia's transforms with kornia's parameters, in fewer passes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from steadyval.train import augment as A
from steadyval.train import native


def _params(b: int, **fixed: object) -> dict[str, torch.Tensor]:
    p = {"angle": torch.zeros(b), "translate": torch.zeros(b, 2), "scale": torch.ones(b),
         "shear_x": torch.zeros(b), "flip": torch.zeros(b, dtype=torch.bool)}
    p.update({k: torch.as_tensor(v).expand_as(p[k]).clone() for k, v in fixed.items()})
    return p


@pytest.mark.parametrize(("h", "w"), [(64, 64), (48, 80)])
def test_the_matrix_is_korniass_affine_then_the_flip(h: int, w: int) -> None:
    from kornia.geometry.transform import get_affine_matrix2d

    torch.manual_seed(0)
    b = 64
    p = A.sample_geometric(b)
    kornia = get_affine_matrix2d(p["translate"] * torch.tensor([w, h]),
                                 torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand(b, 2),
                                 p["scale"][:, None].expand(b, 2), p["angle"], p["shear_x"] * math.pi / 180,
                                 torch.zeros(b))
    flip = torch.eye(3).repeat(b, 1, 1)
    flip[p["flip"], 0, 0], flip[p["flip"], 0, 2] = -1.0, w - 1.0
    torch.testing.assert_close(A.affine_matrices(p, h, w), flip @ kornia, atol=2e-5, rtol=1e-6)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (48, 80)])
def test_the_warp_is_exact_where_the_answer_is_known(h: int, w: int) -> None:
    x = torch.rand(4, 3, h, w)
    same = A.warp(x, A.affine_matrices(_params(4), h, w))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    flipped = A.warp(x, A.affine_matrices(_params(4, flip=True), h, w))
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    shifted = A.warp(x, A.affine_matrices(_params(4, translate=[3 / w, 0.0]), h, w))
    torch.testing.assert_close(shifted[..., 3:], x[..., :-3], atol=1e-5, rtol=0)
    assert shifted[..., :3].abs().max() == 0  # zeros come in from outside
    if h == w:  # a quarter turn is a rotation of the pixel grid
        turned = A.warp(x, A.affine_matrices(_params(4, angle=90.0), h, w))
        assert min((turned - torch.rot90(x, k, (-2, -1))).abs().max() for k in (1, 3)) < 1e-4


def test_the_warp_matches_korniass_warp_affine() -> None:
    from kornia.geometry.transform import warp_affine

    torch.manual_seed(1)
    x = torch.rand(8, 3, 48, 80)
    m = A.affine_matrices(A.sample_geometric(8), 48, 80)
    ours = A.warp(x, m)
    theirs = warp_affine(x, m[:, :2], (48, 80), mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ours, theirs, atol=5e-5, rtol=0)


def test_intensity_matches_korniass_functions_with_the_same_factors() -> None:
    from kornia.enhance import adjust_brightness, adjust_contrast, adjust_gamma

    torch.manual_seed(2)
    x = torch.rand(16, 3, 32, 32)
    p = A.sample_intensity(16)
    quiet = {**p, "noise": torch.zeros(16, dtype=torch.bool)}
    theirs = adjust_gamma(adjust_contrast(adjust_brightness(x, p["brightness"] - 1), p["contrast"]), p["gamma"])
    torch.testing.assert_close(A.adjust_intensity(x, quiet), theirs, atol=1e-5, rtol=0)
    noisy = A.adjust_intensity(x, {**quiet, "noise": torch.arange(16) % 2 == 0}) - theirs
    assert noisy[1::2].abs().max() < 1e-5  # only the drawn images get noise
    assert noisy[0::2].std().item() == pytest.approx(A.NOISE_STD, rel=0.05)


def test_parameters_cover_the_recipes_ranges() -> None:
    torch.manual_seed(3)
    g, i = A.sample_geometric(20000), A.sample_intensity(20000)
    for values, low, high in [(g["angle"], -20, 20), (g["translate"], -0.1, 0.1), (g["scale"], 0.9, 1.1),
                              (g["shear_x"], -math.degrees(0.1), math.degrees(0.1))]:
        assert low <= values.min() < low + 0.01 * (high - low) and high - 0.01 * (high - low) < values.max() <= high
    assert g["flip"].float().mean().item() == pytest.approx(0.5, abs=0.02)
    changed = i["brightness"] != 1
    assert changed.float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert i["brightness"].min() >= 0.85 and i["brightness"].max() <= 1.15
    assert i["gamma"].min() >= 0.7 and i["gamma"].max() <= 1.4
    assert i["noise"].float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_a_batch_stays_in_range_and_replays_with_the_seed() -> None:
    aug = A.build_augmentation("geometric+intensity")
    x = torch.rand(8, 1, 40, 40)
    torch.manual_seed(4)
    a = A.augment_batch(aug, x.clone())
    torch.manual_seed(4)
    b = A.augment_batch(aug, x.clone())
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1 and not torch.allclose(a, x)


needs_compiler = pytest.mark.skipif(native._compiler() is None, reason="no C compiler on this machine (cc, gcc, clang)")


def _torch_batch(aug: A.BatchAugment | None, images: torch.Tensor, idx: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor) -> torch.Tensor:
    """What the trainer did before batch.c: six torch passes."""
    x = A.augment_batch(aug, images[idx].float().div_(255))
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _inputs(c: int, size: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(5)
    images = torch.randint(0, 256, (20, c, size, size), dtype=torch.uint8)
    idx = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 19, 0])
    return images, idx, torch.rand(1, c, 1, 1), torch.rand(1, c, 1, 1) + 0.1


@needs_compiler
@pytest.mark.parametrize(("c", "size"), [(1, 64), (3, 41), (2, 130)])
@pytest.mark.parametrize("name", ["none", "intensity"])
def test_the_batch_without_resampling_is_torch_s_bit_for_bit(name: str, c: int, size: int) -> None:
    assert A._batch_kernel() is not None
    images, idx, mean, std = _inputs(c, size)
    aug = A.build_augmentation(name)
    torch.manual_seed(6)
    ours = A.training_batch(aug, images, idx, mean, std)
    torch.manual_seed(6)
    theirs = _torch_batch(aug, images, idx, mean, std)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours, theirs)


def _exact_warp(images: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """grid_sample in float64 at the source-pixel coordinates of the (B, 3, 3) pixel matrices ``m``."""
    size = images.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    source = torch.einsum("bij,hwj->bhwi", torch.linalg.inv(m.double()), torch.stack([xs, ys, torch.ones_like(xs)], -1))
    grid = (2 * source[..., :2] + 1) / size - 1
    return F.grid_sample(images.double() / 255, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@needs_compiler
@pytest.mark.parametrize(("c", "size"), [(1, 224), (3, 41), (2, 64)])
@pytest.mark.parametrize("name", ["geometric", "geometric+intensity"])
def test_the_resampled_batch_is_grid_sample_s_to_float_rounding(name: str, c: int, size: int) -> None:
    images, idx, mean, std = _inputs(c, size)
    aug = A.build_augmentation(name)
    torch.manual_seed(7)
    ours = A.training_batch(aug, images, idx, mean, std) * std + mean  # back to [0, 1]
    torch.manual_seed(7)
    theirs = _torch_batch(aug, images, idx, mean, std) * std + mean
    # the same random draws: within 1/20 of a grey level of torch's six passes everywhere
    torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)
    if name == "geometric":  # and closer to the exact (float64) resampling than they are
        torch.manual_seed(7)
        exact = _exact_warp(images[idx], A.affine_matrices(A.sample_geometric(len(idx)), size, size)).clamp(0, 1)
        error, torch_error = (ours - exact).abs().max().item(), (theirs - exact).abs().max().item()
        assert error < 3e-5 and error <= torch_error + 1e-6, (error, torch_error)


@needs_compiler
def test_the_batch_is_exact_where_the_answer_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    images, idx, mean, std = _inputs(1, 48)
    plain = A.training_batch(None, images, idx, mean, std)
    for fixed, expected in [({}, plain), ({"flip": True}, plain.flip(-1))]:
        monkeypatch.setattr(A, "sample_geometric", lambda b, device="cpu", f=fixed: _params(b, **f))
        warped = A.training_batch(A.build_augmentation("geometric"), images, idx, mean, std)
        torch.testing.assert_close(warped, expected, atol=1e-5, rtol=0)
    monkeypatch.setattr(A, "sample_geometric", lambda b, device="cpu": _params(b, translate=[5 / 48, 0.0]))
    shifted = A.training_batch(A.build_augmentation("geometric"), images, idx, mean, std) * std + mean
    torch.testing.assert_close(shifted[..., 5:], plain[..., :-5] * std + mean, atol=1e-5, rtol=0)
    assert shifted[..., :5].abs().max() == 0  # zeros come in from outside


def test_the_batch_falls_back_to_torch_s_passes() -> None:
    images, idx, mean, std = _inputs(3, 33)
    aug = A.build_augmentation("geometric")
    for odd in (images.float(), images.transpose(-1, -2)):  # not uint8; not contiguous
        torch.manual_seed(8)
        ours = A.training_batch(aug, odd, idx, mean, std)
        torch.manual_seed(8)
        x = A.augment_batch(aug, odd[idx].float().div_(255))
        assert torch.equal(ours, ((x - mean) / std).contiguous(memory_format=torch.channels_last))
