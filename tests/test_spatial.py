from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainables.spatial import (
    affine_batch,
    affine_matrices,
    random_spatial,
    rotation_grid,
    sample_spatial_params,
    sampling_grid,
)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))


def test_zero_angle_and_shift_is_identity(images):
    out = affine_batch(images, torch.zeros(4), torch.zeros(4, 2))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("angle", "k"), [(90.0, 1), (-90.0, -1), (180.0, 2), (270.0, 3)])
def test_right_angle_rotation_matches_rot90(images, angle, k):
    out = affine_batch(images, torch.full((4,), angle))
    torch.testing.assert_close(out, torch.rot90(images, k, (2, 3)), atol=1e-5, rtol=0)


def test_rot90_on_non_square_images_matches_away_from_border():
    x = torch.rand(1, 1, 20, 30)
    out = affine_batch(x, torch.tensor([180.0]))
    torch.testing.assert_close(out, torch.rot90(x, 2, (2, 3)), atol=1e-5, rtol=0)


def test_each_image_gets_its_own_angle(images):
    out = affine_batch(images, torch.tensor([0.0, 90.0, 180.0, -90.0]))
    for i, k in enumerate([0, 1, 2, -1]):
        torch.testing.assert_close(out[i], torch.rot90(images[i], k, (1, 2)), atol=1e-5, rtol=0)


def test_translation_moves_content_right_and_down(images):
    out = affine_batch(images[:1], torch.zeros(1), torch.tensor([[3.0, 2.0]]))
    torch.testing.assert_close(out[0, :, 2:, 3:], images[0, :, :-2, :-3], atol=1e-5, rtol=0)
    assert out[0, :, :2, :].abs().max() < 1e-5  # zero fill where content left the frame
    assert out[0, :, :, :3].abs().max() < 1e-5


def test_zero_fill_in_corners_after_45_degrees():
    x = torch.ones(1, 1, 28, 28)
    out = affine_batch(x, torch.tensor([45.0]))
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 14, 14] == pytest.approx(1.0)


def test_random_spatial_reproducible_and_in_range(images):
    a = random_spatial(images, 30.0, 2.0, torch.Generator().manual_seed(1))
    b = random_spatial(images, 30.0, 2.0, torch.Generator().manual_seed(1))
    c = random_spatial(images, 30.0, 2.0, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    angles, shifts = sample_spatial_params(10_000, 30.0, 2.0, generator=torch.Generator())
    assert angles.abs().max() <= 30.0 and angles.min() < -25 and angles.max() > 25
    assert shifts.abs().max() <= 2.0 and shifts.shape == (10_000, 2)


def test_random_spatial_with_zero_ranges_returns_input(images):
    assert random_spatial(images, 0.0, 0.0) is images


def test_random_spatial_rejects_negative_range(images):
    with pytest.raises(ValueError):
        random_spatial(images, -1.0)


def test_rotation_grid_covers_range():
    assert rotation_grid(30.0, 31)[0] == -30.0 and rotation_grid(30.0, 31)[-1] == pytest.approx(
        30.0
    )
    assert rotation_grid(30.0, 1) == [0.0]
    assert len(rotation_grid(3.0, 5)) == 5


@pytest.mark.parametrize(("height", "width"), [(28, 28), (32, 32), (20, 36)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampling_grid_equals_affine_grid(height, width, dtype):
    generator = torch.Generator().manual_seed(0)
    angles = torch.rand(6, generator=generator, dtype=dtype) * 360 - 180
    shifts = torch.rand(6, 2, generator=generator, dtype=dtype) * 10 - 5
    matrices = affine_matrices(angles, shifts, height, width)
    expected = F.affine_grid(matrices, [6, 1, height, width], align_corners=False)
    grid = sampling_grid(matrices, height, width)
    assert grid.shape == expected.shape and grid.dtype == dtype
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(grid, expected, atol=tolerance, rtol=0)
