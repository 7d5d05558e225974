"""Batched spatial transforms: per-image rotation and translation in one ``grid_sample`` call.

Conventions: images are float tensors ``(N, C, H, W)`` in [0, 1]; a positive angle rotates the
content counter-clockwise as displayed (like ``torch.rot90(x, 1, (2, 3))``, PIL and
torchvision); a translation ``(dx, dy)`` in pixels moves the content right and down. Pixels that
come from outside the image are zero (black), as in the paper's rotations.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from trainables.errors import UserError


def finite_number(name: str, value: object) -> float:
    """``value`` as a float; a :class:`UserError` naming ``name`` unless it is a finite real
    number (a bool is not one). For checking arguments, here and in ``attacks``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def affine_matrices(
    angles_deg: torch.Tensor, translations_px: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """The ``(N, 2, 3)`` sampling matrices of ``F.affine_grid`` (``align_corners=False``).

    The matrix maps each *output* location to the *input* location it samples, so it is the
    inverse transform, written in normalised coordinates (``[-1, 1]`` across each axis).
    """
    radians = torch.deg2rad(angles_deg)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # Pixel scale of the normalised axes; keeps rotations rigid on non-square images.
    sx, sy = width / 2.0, height / 2.0
    matrices = torch.empty(
        angles_deg.shape[0], 2, 3, dtype=angles_deg.dtype, device=angles_deg.device
    )
    # Inverse rotation in pixel space (y points down, so counter-clockwise on screen is R(-a)).
    matrices[:, 0, 0] = cos
    matrices[:, 0, 1] = -sin * (sy / sx)
    matrices[:, 1, 0] = sin * (sx / sy)
    matrices[:, 1, 1] = cos
    dx = translations_px[:, 0]
    dy = translations_px[:, 1]
    matrices[:, 0, 2] = -(cos * dx - sin * dy) / sx
    matrices[:, 1, 2] = -(sin * dx + cos * dy) / sy
    return matrices


def affine_batch(
    images: torch.Tensor, angles_deg: torch.Tensor, translations_px: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate and translate each image of a batch by its own angle and shift.

    Args:
        images: ``(N, C, H, W)`` float images.
        angles_deg: ``(N,)`` rotation angles in degrees (counter-clockwise).
        translations_px: ``(N, 2)`` shifts ``(dx, dy)`` in pixels, or ``None`` for no shift.

    Returns:
        The transformed batch, same shape, dtype and device; bilinear sampling, zero fill.

    Raises:
        UserError: if a tensor is missing or has the wrong shape.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a tensor of shape (N, C, H, W), got {got}")
    n, _, height, width = images.shape
    for name, value, shape, meaning in (
        ("angles_deg", angles_deg, (n,), "one angle per image"),
        ("translations_px", translations_px, (n, 2), "one (dx, dy) per image"),
    ):
        if value is None and name == "translations_px":
            continue
        if not isinstance(value, torch.Tensor) or value.shape != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise UserError(f"{name} must be a tensor of shape {shape} ({meaning}), got {got}")
    compute_dtype = (
        images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    )
    angles = angles_deg.to(device=images.device, dtype=compute_dtype)
    if translations_px is None:
        shifts = torch.zeros(n, 2, device=images.device, dtype=compute_dtype)
    else:
        shifts = translations_px.to(device=images.device, dtype=compute_dtype)
    grid = sampling_grid(affine_matrices(angles, shifts, height, width), height, width)
    out = F.grid_sample(
        images.to(compute_dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out.to(images.dtype)


def sampling_grid(matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The ``(N, H, W, 2)`` grid ``F.affine_grid(matrices, (N, C, H, W), align_corners=False)``
    returns, built by broadcasting.

    ``affine_grid`` multiplies a ``(H*W, 3)`` matrix of pixel centres by each ``(3, 2)`` matrix
    (a batched matmul that is half the CPU cost of a rotation); an affine map of a regular grid
    is a sum of an outer product per axis, which costs one fused multiply-add per grid value.
    """
    n = matrices.shape[0]
    options = {"dtype": matrices.dtype, "device": matrices.device}
    # Pixel centres in normalised coordinates (align_corners=False).
    xs = (torch.arange(width, **options) * 2 + 1) / width - 1
    ys = (torch.arange(height, **options) * 2 + 1) / height - 1
    column_x, column_y, offset = (matrices[:, :, k].view(n, 1, 1, 2) for k in range(3))
    return column_x * xs.view(1, 1, width, 1) + (column_y * ys.view(1, height, 1, 1) + offset)


def sample_spatial_params(
    n: int,
    max_angle_deg: float,
    max_translate_px: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample angles ``U[-max_angle, max_angle]`` and shifts ``U[-max_shift, max_shift]``.

    Draws happen on the generator's device (CPU when no generator is given and ``device`` is
    None) so a seeded generator gives the same values wherever the images live; the results are
    moved to ``device``.
    """
    max_angle_deg = finite_number("max_angle_deg", max_angle_deg)
    max_translate_px = finite_number("max_translate_px", max_translate_px)
    draw_device = generator.device if generator is not None else torch.device(device or "cpu")
    uniform = torch.rand(n, 3, generator=generator, device=draw_device) * 2.0 - 1.0
    angles = uniform[:, 0] * max_angle_deg
    shifts = uniform[:, 1:] * max_translate_px
    if device is not None:
        angles, shifts = angles.to(device), shifts.to(device)
    return angles, shifts


def random_spatial(
    images: torch.Tensor,
    max_angle_deg: float,
    max_translate_px: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a random rotation in ``[-max, max]`` degrees and shift in ``[-max, max]`` px per image.

    With both ranges zero the input is returned as is (no resampling blur).
    """
    finite_number("max_angle_deg", max_angle_deg)
    finite_number("max_translate_px", max_translate_px)
    if max_angle_deg < 0 or max_translate_px < 0:
        raise UserError("spatial ranges must be non-negative")
    if max_angle_deg == 0 and max_translate_px == 0:
        return images
    angles, shifts = sample_spatial_params(
        images.shape[0], max_angle_deg, max_translate_px, generator=generator, device=images.device
    )
    return affine_batch(images, angles, shifts)


def random_crop_flip(
    images: torch.Tensor,
    padding: int,
    flip: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The standard CIFAR training augmentation, batched and on the images' device.

    Each image is padded with ``padding`` zero pixels per side and a window of its own size is
    cropped at a uniformly random integer offset (torchvision's ``RandomCrop(size, padding)``);
    with ``flip`` it is then mirrored left-right with probability 1/2
    (``RandomHorizontalFlip()``). Draws happen on the generator's device, like
    :func:`sample_spatial_params`. With ``padding == 0`` and no ``flip`` the input is returned.

    Raises:
        UserError: if ``padding`` is not a non-negative int.
    """
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise UserError(f"padding must be a non-negative int, got {padding!r}")
    if padding == 0 and not flip:
        return images
    n, channels, height, width = images.shape
    device = images.device
    draw_device = generator.device if generator is not None else device
    out = images
    if padding > 0:
        offsets = torch.randint(
            0, 2 * padding + 1, (n, 2), generator=generator, device=draw_device
        ).to(device)
        padded = F.pad(images, (padding, padding, padding, padding))
        rows = offsets[:, 0:1] + torch.arange(height, device=device)  # (N, H)
        cols = offsets[:, 1:2] + torch.arange(width, device=device)  # (N, W)
        out = padded[
            torch.arange(n, device=device).view(n, 1, 1, 1),
            torch.arange(channels, device=device).view(1, channels, 1, 1),
            rows.view(n, 1, height, 1),
            cols.view(n, 1, 1, width),
        ]
    if flip:
        mirrored = torch.rand(n, generator=generator, device=draw_device) < 0.5
        out = torch.where(mirrored.to(device).view(n, 1, 1, 1), out.flip(3), out)
    return out


def translate_px(translate_frac: float, image_size: int) -> float:
    """Convert a translation range given as a fraction of the image size into pixels."""
    return float(translate_frac) * image_size


def rotation_grid(max_angle_deg: float, count: int) -> list[float]:
    """``count`` evenly spaced angles covering ``[-max, max]`` (just ``[0.0]`` when count is 1)."""
    max_angle_deg = finite_number("max_angle_deg", max_angle_deg)
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise UserError(f"count must be an int of at least 1, got {count!r}")
    if count == 1:
        return [0.0]
    step = 2.0 * max_angle_deg / (count - 1)
    return [-max_angle_deg + i * step for i in range(count)]


__all__ = [
    "affine_batch",
    "affine_matrices",
    "finite_number",
    "random_crop_flip",
    "random_spatial",
    "rotation_grid",
    "sample_spatial_params",
    "sampling_grid",
    "translate_px",
]
