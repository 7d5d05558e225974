"""Robustness evaluation: clean, spatial, adversarial and combined accuracy, and their profiles.

Every function takes a model (normalisation inside it), test images ``(N, C, H, W)`` (the
dataset's uint8 ones, or floats in [0, 1]) and int64 labels on the evaluation device, and works
batch by batch on that device. Counts are accumulated on the device and read once at the end.
Random draws (rotation angles, PGD start points) come from generators seeded by
``EvalSettings.seed``, so a metric is reproducible and does not depend on which other metrics were
computed alongside it.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from trainables.attacks import eval_mode, pgd_linf, spatial_attack
from trainables.errors import UserError
from trainables.spatial import random_spatial

METRICS = ("clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate")
DEFAULT_PROFILE_THETAS = (0, 30, 60, 90, 120, 150, 180)


@dataclass(frozen=True)
class EvalSettings:
    """How robustness is measured.

    Attributes:
        theta_eval: rotation range in degrees; ``spatial_acc`` draws one angle per image from
            ``U[-theta_eval, theta_eval]``.
        translate_eval: translation range as a fraction of the image size (0 = none).
        eps_eval: L-inf budget of the PGD attack behind ``adv_acc`` and ``combined_acc``.
        pgd_steps: PGD iterations for evaluation.
        pgd_step_size: PGD step size.
        batch_size: images per evaluation batch.
        seed: seed of the random rotations and PGD random starts.
    """

    theta_eval: float = 180.0
    translate_eval: float = 0.0
    eps_eval: float = 0.3
    pgd_steps: int = 40
    pgd_step_size: float = 0.01
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kind, what in (
            ("theta_eval", numbers.Real, "a number"),
            ("translate_eval", numbers.Real, "a number"),
            ("eps_eval", numbers.Real, "a number"),
            ("pgd_steps", numbers.Integral, "an int"),
            ("pgd_step_size", numbers.Real, "a number"),
            ("batch_size", numbers.Integral, "an int"),
            ("seed", numbers.Integral, "an int"),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise UserError(f"EvalSettings.{name} must be {what}, got {value!r}")
        limits = {
            "theta_eval": (0 <= self.theta_eval <= 180, "in [0, 180]"),
            "translate_eval": (0 <= self.translate_eval <= 1, "in [0, 1]"),
            "eps_eval": (0 <= self.eps_eval <= 1, "in [0, 1]"),
            "pgd_steps": (self.pgd_steps >= 0, "at least 0"),
            "pgd_step_size": (self.pgd_step_size >= 0, "at least 0"),
            "batch_size": (self.batch_size >= 1, "at least 1"),
        }
        for name, (ok, allowed) in limits.items():
            if not ok:
                raise UserError(f"EvalSettings.{name} must be {allowed}, got {getattr(self, name)}")

    def replace(self, **changes: object) -> EvalSettings:
        return dataclasses.replace(self, **changes)


def spatial_profile_key(theta_deg: float) -> str:
    """Metric name of one point of the invariance profile, e.g. ``spatial_acc@30``."""
    return f"spatial_acc@{theta_deg:g}"


def adversarial_profile_key(eps: float) -> str:
    """Metric name of one point of the robustness profile, e.g. ``adv_acc@0.1``."""
    return f"adv_acc@{eps:.4g}"


def _check_inputs(
    images: object, labels: object, settings: object = None, batch_size: object = None
) -> None:
    """Raise UserError unless ``images`` is a ``(N, C, H, W)`` uint8 or float tensor, ``labels`` a
    1-D integer tensor and ``settings`` an :class:`EvalSettings` (or, for functions that take
    one instead, ``batch_size`` a positive int). Types and shapes only: no device sync."""
    if batch_size is None and not isinstance(settings, EvalSettings):
        raise UserError(
            f"settings must be an EvalSettings, got {type(settings).__name__}; "
            "build one with EvalSettings(**values)"
        )
    if settings is None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        number = isinstance(batch_size, numbers.Number)
        got = repr(batch_size) if number else type(batch_size).__name__
        raise UserError(f"batch_size must be a positive integer, got {got}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a tensor of shape (N, C, H, W), got {got}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise UserError(
            f"images must be uint8 pixels or floats in [0, 1], got {images.dtype}; "
            "convert with images.float() / 255"
        )
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dim() != 1
        or labels.dtype not in (torch.int64, torch.uint8)
    ):
        got = (
            f"{labels.dtype} of shape {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise UserError(f"labels must be a 1-D int64 tensor, one class per image, got {got}")


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    # uint8 pixels are scaled to [0, 1]; float images are taken to be in [0, 1] already
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        yield (
            (x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()),
            labels[start : start + batch_size],
        )


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, settings: EvalSettings
) -> dict[str, float]:
    """All of ``METRICS`` in one pass over the data.

    ``spatial_acc`` and ``invariance_rate`` use the same random transform of each image;
    ``combined_acc`` attacks that transformed image with PGD (``A_eps(T_theta(x))``).
    """
    _check_inputs(images, labels, settings)
    device = images.device
    translate_px = settings.translate_eval * images.shape[-1]
    spatial_gen = _generator(device, settings.seed)
    adv_gen = _generator(device, settings.seed + 1)
    combined_gen = _generator(device, settings.seed + 2)
    counts = torch.zeros(len(METRICS), dtype=torch.long, device=device)
    with eval_mode(model):
        for x, y in _batches(images, labels, settings.batch_size):
            clean_pred = _predict(model, x)
            x_spatial = random_spatial(x, settings.theta_eval, translate_px, spatial_gen)
            spatial_pred = _predict(model, x_spatial)
            x_adv = pgd_linf(
                model,
                x,
                y,
                settings.eps_eval,
                settings.pgd_step_size,
                settings.pgd_steps,
                generator=adv_gen,
            )
            x_combined = pgd_linf(
                model,
                x_spatial,
                y,
                settings.eps_eval,
                settings.pgd_step_size,
                settings.pgd_steps,
                generator=combined_gen,
            )
            counts += torch.stack(
                [
                    (clean_pred == y).sum(),
                    (spatial_pred == y).sum(),
                    (_predict(model, x_adv) == y).sum(),
                    (_predict(model, x_combined) == y).sum(),
                    (spatial_pred == clean_pred).sum(),
                ]
            )
    total = max(int(images.shape[0]), 1)
    return {name: count / total for name, count in zip(METRICS, counts.tolist(), strict=True)}


def clean_accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Accuracy on the unmodified images."""
    _check_inputs(images, labels, batch_size=batch_size)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    with eval_mode(model):
        for x, y in _batches(images, labels, batch_size):
            correct += (_predict(model, x) == y).sum()
    return correct.item() / max(int(images.shape[0]), 1)


def spatial_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    theta_deg: float,
    settings: EvalSettings,
) -> tuple[float, float]:
    """Accuracy and rate of invariance ``Pr[f(Tx) = f(x)]`` under a random rotation in
    ``[-theta, theta]`` (plus the settings' translation range)."""
    _check_inputs(images, labels, settings)
    device = images.device
    translate_px = settings.translate_eval * images.shape[-1]
    generator = _generator(device, settings.seed)
    correct = torch.zeros((), dtype=torch.long, device=device)
    invariant = torch.zeros((), dtype=torch.long, device=device)
    with eval_mode(model):
        for x, y in _batches(images, labels, settings.batch_size):
            pred = _predict(model, random_spatial(x, theta_deg, translate_px, generator))
            correct += (pred == y).sum()
            invariant += (pred == _predict(model, x)).sum()
    total = max(int(images.shape[0]), 1)
    return correct.item() / total, invariant.item() / total


def adversarial_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    settings: EvalSettings,
) -> float:
    """Accuracy under L-inf PGD with random start at budget ``eps``."""
    _check_inputs(images, labels, settings)
    generator = _generator(images.device, settings.seed + 1)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    with eval_mode(model):
        for x, y in _batches(images, labels, settings.batch_size):
            x_adv = pgd_linf(
                model, x, y, eps, settings.pgd_step_size, settings.pgd_steps, generator=generator
            )
            correct += (_predict(model, x_adv) == y).sum()
    return correct.item() / max(int(images.shape[0]), 1)


def invariance_profile(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: EvalSettings,
    thetas: Iterable[float] = DEFAULT_PROFILE_THETAS,
) -> dict[str, float]:
    """Spatial accuracy for each rotation range, keyed ``spatial_acc@<deg>`` (the paper's
    invariance profile)."""
    _check_inputs(images, labels, settings)
    return {
        spatial_profile_key(theta): spatial_accuracy(model, images, labels, theta, settings)[0]
        for theta in thetas
    }


def robustness_profile(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: EvalSettings,
    eps_values: Iterable[float] | None = None,
) -> dict[str, float]:
    """PGD accuracy for each budget, keyed ``adv_acc@<eps>``; by default 0, 1/4, 1/2, 3/4 and 1
    times ``settings.eps_eval``."""
    _check_inputs(images, labels, settings)
    if eps_values is None:
        eps_values = [settings.eps_eval * k / 4 for k in range(5)]
    return {
        adversarial_profile_key(eps): adversarial_accuracy(model, images, labels, eps, settings)
        for eps in eps_values
    }


def worst_case_spatial_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    max_angle_deg: float = 30.0,
    max_translate_px: float = 3.0,
    tries: int | None = 10,
    grid: tuple[int, int, int] | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> float:
    """Accuracy under the Engstrom et al. worst-of-``tries`` (or grid) rotation + translation
    attack; defaults are their +-30 degrees and +-3 pixels."""
    _check_inputs(images, labels, batch_size=batch_size)
    generator = _generator(images.device, seed)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    with eval_mode(model):
        for x, y in _batches(images, labels, batch_size):
            worst = spatial_attack(
                model, x, y, max_angle_deg, max_translate_px, tries, grid, generator
            )
            correct += (_predict(model, worst) == y).sum()
    return correct.item() / max(int(images.shape[0]), 1)


def worst_case_combined_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: EvalSettings,
    *,
    max_angle_deg: float = 30.0,
    max_translate_px: float = 3.0,
    tries: int = 10,
) -> float:
    """Accuracy under Engstrom et al.'s combined adversary: PGD (``settings``' budget, steps
    and step size) on top of each of ``tries`` random rotations in ``+-max_angle_deg`` and
    translations in ``+-max_translate_px``; an image counts only when every one of the
    ``tries`` attacked images is classified right. It costs ``tries`` PGD runs per image (a
    grid of transforms, 775 runs, is out of reach)."""
    _check_inputs(images, labels, settings)
    if isinstance(tries, bool) or not isinstance(tries, numbers.Integral) or tries < 1:
        raise UserError(f"tries must be a positive int, got {tries!r}")
    spatial_gen = _generator(images.device, settings.seed)
    pgd_gen = _generator(images.device, settings.seed + 2)
    correct = torch.zeros((), dtype=torch.long, device=images.device)
    with eval_mode(model):
        for x, y in _batches(images, labels, settings.batch_size):
            robust = torch.ones_like(y, dtype=torch.bool)
            for _ in range(tries):
                x_spatial = random_spatial(x, max_angle_deg, max_translate_px, spatial_gen)
                x_adv = pgd_linf(
                    model,
                    x_spatial,
                    y,
                    settings.eps_eval,
                    settings.pgd_step_size,
                    settings.pgd_steps,
                    generator=pgd_gen,
                )
                robust &= _predict(model, x_adv) == y
            correct += robust.sum()
    return correct.item() / max(int(images.shape[0]), 1)


__all__ = [
    "DEFAULT_PROFILE_THETAS",
    "METRICS",
    "EvalSettings",
    "adversarial_accuracy",
    "adversarial_profile_key",
    "clean_accuracy",
    "evaluate",
    "invariance_profile",
    "robustness_profile",
    "spatial_accuracy",
    "spatial_profile_key",
    "worst_case_combined_accuracy",
    "worst_case_spatial_accuracy",
]
