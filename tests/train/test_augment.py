"""The batch augmentation is kornia's transforms with kornia's parameters, in fewer passes."""

from __future__ import annotations

import math

import pytest
import torch

from steadyval.train import augment as A


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
