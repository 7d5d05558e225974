"""Attacks in pixel space: L-inf PGD / FGSM, the Engstrom et al. spatial attack, and both combined.

All attacks take float images in [0, 1] and a model whose normalisation lives inside it. They run
the model in eval mode (batch-norm statistics are not touched) and put it back in the mode it
was in. Gradients are taken with respect to the input only: the model's ``.grad`` fields are
left alone, so an attack can run in the middle of a training step.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainables.errors import UserError
from trainables.spatial import (
    affine_batch,
    finite_number,
    random_spatial,
    rotation_grid,
    sample_spatial_params,
)


def _check_args(
    images: object,
    labels: object = None,
    *,
    finite: Sequence[tuple[str, object]] = (),
    ints: Sequence[tuple[str, object]] = (),
) -> None:
    """Raise UserError unless ``images`` is a float tensor, ``labels`` (when given) one int64
    class index per image, and each ``(name, value)`` in ``finite`` a finite number and in
    ``ints`` an int. Checks types and shapes only: no tensor contents, so no device sync."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(
            f"attacks take float images in [0, 1], got {got}; "
            "convert uint8 pixels with images.float() / 255"
        )
    if labels is not None and (
        not isinstance(labels, torch.Tensor)
        or labels.shape != images.shape[:1]
        or labels.dtype not in (torch.int64, torch.uint8)
    ):
        got = (
            f"{labels.dtype} of shape {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise UserError(
            f"labels must be an int64 tensor of shape ({images.shape[0]},), one class per image, "
            f"got {got}"
        )
    for name, value in finite:
        finite_number(name, value)
    for name, value in ints:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise UserError(f"{name} must be an int, got {value!r}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def pgd_linf(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L-inf projected gradient ascent on the cross-entropy (Madry et al.).

    Each step moves by ``step_size * sign(grad)``, then projects onto the eps-ball around
    ``images`` and clips to [0, 1]. With ``random_start`` the search starts from a uniform point
    in the ball (drawn with ``generator`` when given). ``eps == 0`` or ``steps == 0`` returns
    ``images`` unchanged.

    Returns:
        Detached adversarial images, inside the eps-ball and [0, 1].

    Raises:
        UserError: for non-float images, labels that are not one int64 class per image, a
            non-finite ``eps`` or ``step_size``, or a ``steps`` that is not an int.
    """
    _check_args(
        images, labels, finite=(("eps", eps), ("step_size", step_size)), ints=(("steps", steps),)
    )
    if eps < 0 or step_size < 0 or steps < 0:
        raise UserError("eps, step_size and steps must be non-negative")
    if eps == 0 or steps == 0:
        return images.detach()
    originals = images.detach()
    lower = (originals - eps).clamp_(min=0.0)
    upper = (originals + eps).clamp_(max=1.0)
    adv = originals.clone()
    if random_start:
        draw_device = generator.device if generator is not None else adv.device
        noise = torch.rand(adv.shape, generator=generator, device=draw_device, dtype=adv.dtype)
        adv = adv + (noise.to(adv.device) * 2.0 - 1.0) * eps
        adv = torch.min(torch.max(adv, lower), upper)
    with eval_mode(model):
        for _ in range(steps):
            adv.requires_grad_(True)
            # Summed loss: each sample's gradient is independent of the batch size.
            loss = F.cross_entropy(model(adv), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv + step_size * grad.sign()
                adv = torch.min(torch.max(adv, lower), upper)
    return adv.detach()


def trades_attack(
    model: nn.Module,
    images: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The TRADES inner maximisation (Zhang et al. 2019): L-inf PGD on
    ``KL(f(x) || f(x_adv))``, started at ``x + 0.001 * N(0, 1)``. Needs no labels.

    Raises the same ``UserError`` as :func:`pgd_linf` for bad images, budgets or steps."""
    _check_args(images, finite=(("eps", eps), ("step_size", step_size)), ints=(("steps", steps),))
    if eps < 0 or step_size < 0 or steps < 0:
        raise UserError(
            f"eps, step_size and steps must be non-negative, got {eps}, {step_size} and {steps}"
        )
    if eps == 0 or steps == 0:
        return images.detach()
    originals = images.detach()
    lower = (originals - eps).clamp_(min=0.0)
    upper = (originals + eps).clamp_(max=1.0)
    draw_device = generator.device if generator is not None else originals.device
    noise = torch.randn(originals.shape, generator=generator, device=draw_device)
    adv = torch.min(torch.max(originals + 0.001 * noise.to(originals.device), lower), upper)
    with eval_mode(model):
        with torch.no_grad():
            clean_probs = F.softmax(model(originals), dim=1)
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = F.kl_div(F.log_softmax(model(adv), dim=1), clean_probs, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv + step_size * grad.sign()
                adv = torch.min(torch.max(adv, lower), upper)
    return adv.detach()


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """The fast gradient sign method: one PGD step of size ``eps`` from the clean image."""
    return pgd_linf(model, images, labels, eps, step_size=eps, steps=1, random_start=False)


def _worst_candidate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    candidates: Sequence[tuple[torch.Tensor, torch.Tensor]],
    max_batch: int,
) -> torch.Tensor:
    """Pick, per image, the candidate transform that fools the model, else the one of highest loss.

    ``candidates`` is a sequence of ``(angles (N,), shifts (N, 2))``. Candidates are evaluated
    together, stacked into batches of at most ``max_batch`` images.
    """
    n = images.shape[0]
    best_key = torch.full((n,), -float("inf"), device=images.device)
    best = images.clone()
    per_chunk = max(1, max_batch // max(n, 1))
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(candidates), per_chunk):
            chunk = candidates[start : start + per_chunk]
            angles = torch.cat([a for a, _ in chunk])
            shifts = torch.cat([s for _, s in chunk])
            transformed = affine_batch(images.repeat(len(chunk), 1, 1, 1), angles, shifts)
            logits = model(transformed)
            repeated_labels = labels.repeat(len(chunk))
            loss = F.cross_entropy(logits, repeated_labels, reduction="none")
            fooled = logits.argmax(dim=1) != repeated_labels
            # A misclassifying transform always wins; among equals, the highest loss.
            key = torch.where(fooled, torch.full_like(loss, float("inf")), loss).view(len(chunk), n)
            chunk_best_key, chunk_best_idx = key.max(dim=0)
            improved = chunk_best_key > best_key
            if improved.any():
                flat_index = chunk_best_idx * n + torch.arange(n, device=images.device)
                best = torch.where(improved.view(n, 1, 1, 1), transformed[flat_index], best)
                best_key = torch.where(improved, chunk_best_key, best_key)
    return best


def spatial_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    max_angle_deg: float,
    max_translate_px: float,
    tries: int | None = 10,
    grid: tuple[int, int, int] | None = None,
    generator: torch.Generator | None = None,
    max_batch: int = 4096,
) -> torch.Tensor:
    """Worst-case rotation + translation (Engstrom et al., "Exploring the landscape of spatial
    robustness").

    Either ``tries`` random transforms per image (worst-of-k) or, when ``grid=(angles, tx, ty)``
    is given, every point of an evenly spaced grid over ``[-max_angle, max_angle] x
    [-max_translate, max_translate]^2`` (the paper's grid is ``(31, 5, 5)``). A transform that
    misclassifies wins; otherwise the one with the highest loss. The identity is not added as a
    candidate: every returned image is transformed.

    Returns:
        The worst transformed images, detached.
    """
    ranges = (("max_angle_deg", max_angle_deg), ("max_translate_px", max_translate_px))
    counts = [("max_batch", max_batch)] + ([("tries", tries)] if tries is not None else [])
    _check_args(images, labels, finite=ranges, ints=counts)
    n, device = images.shape[0], images.device
    if max_angle_deg < 0 or max_translate_px < 0:
        raise UserError(
            f"spatial ranges must be non-negative, got {max_angle_deg} degrees and "
            f"{max_translate_px} px"
        )
    if grid is not None:
        if (
            not isinstance(grid, Sequence)
            or len(grid) != 3
            or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in grid)
        ):
            raise UserError(f"grid must be three ints (angles, tx, ty), got {grid!r}")
        n_angles, n_tx, n_ty = grid
        if min(grid) < 1:
            raise UserError(f"spatial_attack grid needs at least 1 point per axis, got {grid}")
        candidates = []
        for angle in rotation_grid(max_angle_deg, n_angles):
            for tx in rotation_grid(max_translate_px, n_tx):
                for ty in rotation_grid(max_translate_px, n_ty):
                    candidates.append(
                        (
                            torch.full((n,), angle, device=device),
                            torch.tensor([[tx, ty]], device=device).expand(n, 2),
                        )
                    )
    else:
        if tries is None or tries < 1:
            raise UserError("spatial_attack needs tries >= 1 or a grid")
        candidates = [
            sample_spatial_params(
                n, max_angle_deg, max_translate_px, generator=generator, device=device
            )
            for _ in range(tries)
        ]
    return _worst_candidate(model, images, labels, candidates, max_batch)


def combined_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    max_angle_deg: float,
    max_translate_px: float,
    eps: float,
    step_size: float,
    steps: int,
    worst_case_spatial: bool = False,
    spatial_tries: int = 10,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``A_eps(T_theta(x))``: PGD on top of a random (or worst-of-k) spatial transform."""
    if worst_case_spatial:
        transformed = spatial_attack(
            model,
            images,
            labels,
            max_angle_deg,
            max_translate_px,
            spatial_tries,
            generator=generator,
        )
    else:
        transformed = random_spatial(images, max_angle_deg, max_translate_px, generator)
    return pgd_linf(
        model,
        transformed,
        labels,
        eps,
        step_size,
        steps,
        random_start=random_start,
        generator=generator,
    )


__all__ = [
    "combined_attack",
    "eval_mode",
    "fgsm",
    "pgd_linf",
    "spatial_attack",
    "trades_attack",
]
