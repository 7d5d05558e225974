"""One epoch of curriculum training on ``A_eps(T_theta(x))``, and its optimiser and LR schedule.

Everything stays on the training device: the uint8 dataset is shuffled and sliced there, losses
are accumulated there, and the host reads them once per epoch.
"""

from __future__ import annotations

import contextlib
import enum
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd_linf, trades_attack
from trainables.datasets import iterate_batches
from trainables.spatial import random_crop_flip, random_spatial


class Method(enum.StrEnum):
    """How a batch is turned into a loss (after the epoch's random spatial transform)."""

    STANDARD = "standard"  # augmentation only: cross-entropy on T_theta(x)
    PGD = "pgd"  # Madry PGD-AT: cross-entropy on A_eps(T_theta(x))
    TRADES = "trades"  # CE on T_theta(x) + beta * KL(f(T_theta x) || f(A_eps(T_theta x)))


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite; the trial stops instead of reporting NaN."""


@dataclass(frozen=True)
class AttackSettings:
    """PGD settings used inside training."""

    steps: int
    step_size: float
    trades_beta: float = 6.0


@dataclass(frozen=True)
class EpochResult:
    loss: float
    train_acc: float
    samples: int


def build_optimizer(
    model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """SGD with (optionally Nesterov-free) momentum and weight decay, as in the paper."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    epochs: int,
    milestones: tuple[int, ...] = (),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-epoch LR schedule, stepped once after each epoch.

    ``multistep`` multiplies the LR by ``gamma`` from each 1-based milestone epoch on (the
    paper's x0.1 from 75, x0.01 from 90, x0.001 from 100); without milestones it uses 50% and 75%
    of the run. ``cosine`` anneals to zero over the run; ``constant`` keeps the LR.
    """
    if kind == "multistep":
        if not milestones:
            milestones = tuple(sorted({max(2, round(epochs * 0.5)), max(2, round(epochs * 0.75))}))
        # Scheduler epochs count completed epochs: the LR of 1-based epoch m uses last_epoch m-1.
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[m - 1 for m in milestones], gamma=gamma
        )
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ValueError(f"unknown lr schedule {kind!r}")


def batch_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: Method,
    eps: float,
    attack: AttackSettings,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and logits of one (already spatially transformed) batch; the model is in train mode.

    The adversarial example is computed with the model in eval mode (``pgd_linf`` switches it),
    so batch-norm running statistics only see the examples the model is trained on. TRADES runs
    the clean and the adversarial batch through the model separately, as Zhang et al.'s code
    does: one concatenated batch would normalise both with shared batch-norm statistics.
    """
    if method is Method.PGD and eps > 0:
        x = pgd_linf(model, x, y, eps, attack.step_size, attack.steps, generator=generator)
    if method is Method.TRADES and eps > 0:
        x_adv = trades_attack(model, x, eps, attack.step_size, attack.steps, generator=generator)
        logits, logits_adv = model(x), model(x_adv)
        robust = F.kl_div(
            F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean"
        )
        return F.cross_entropy(logits, y) + attack.trades_beta * robust, logits
    logits = model(x)
    return F.cross_entropy(logits, y), logits


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    theta_deg: float,
    translate_px: float,
    eps: float,
    method: Method | str,
    attack: AttackSettings,
    batch_size: int,
    generator: torch.Generator,
    amp: bool = False,
    crop_padding: int = 0,
    hflip: bool = False,
) -> EpochResult:
    """Train one epoch on ``A_eps(T_theta(x))``: a per-sample random rotation in
    ``[-theta, theta]`` and shift in ``[-translate, translate]`` px, then the method's attack at
    ``eps`` (``eps == 0`` is plain augmentation).

    ``crop_padding`` and ``hflip`` are the dataset's standard augmentation
    (:func:`~trainables.spatial.random_crop_flip`), applied to ``x`` before ``T_theta``.

    Raises:
        TrainingDiverged: when the epoch's loss is not finite.
    """
    method = Method(method)
    model.train()
    device = images.device
    use_amp = amp and device.type == "cuda"
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in iterate_batches(
        images, labels, batch_size, shuffle=True, generator=generator, drop_last=False
    ):
        x = random_crop_flip(x, crop_padding, hflip, generator)
        x = random_spatial(x, theta_deg, translate_px, generator)
        autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16)
            if use_amp
            else contextlib.nullcontext()
        )
        with autocast:
            loss, logits = batch_loss(
                model, x, y, method=method, eps=eps, attack=attack, generator=generator
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().float() * y.shape[0]
        correct += (logits.detach().argmax(dim=1) == y).sum()
        seen += y.shape[0]
    mean_loss = loss_sum.item() / max(seen, 1)
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(
            f"training loss became non-finite ({mean_loss}) at lr "
            f"{optimizer.param_groups[0]['lr']:g}; lower the learning rate or eps"
        )
    return EpochResult(loss=mean_loss, train_acc=correct.item() / max(seen, 1), samples=seen)


__all__ = [
    "AttackSettings",
    "EpochResult",
    "Method",
    "TrainingDiverged",
    "batch_loss",
    "build_lr_scheduler",
    "build_optimizer",
    "train_epoch",
]
