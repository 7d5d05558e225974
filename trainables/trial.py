"""One trial, epoch by epoch: build, train on the curriculum, evaluate, checkpoint, restore.

``Trial`` holds everything that changes during training (model, optimiser, LR schedule, epoch,
random generator) and nothing about Ray, so the same code runs under Ray Tune
(``trainables.trainable``) and on its own (``cusp-tune train``). Restoring a checkpoint and
training on gives the same result as an unbroken run with the same seed.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from trainables.acceleration import accelerate, autotune_convolutions
from trainables.config import TrialConfig
from trainables.curriculum import Curriculum
from trainables.datasets import DatasetInfo, ImageDataset
from trainables.evaluation import (
    EvalSettings,
    evaluate,
    invariance_profile,
    robustness_profile,
)
from trainables.models import export_model
from trainables.training import (
    AttackSettings,
    build_lr_scheduler,
    build_optimizer,
    train_epoch,
)

CHECKPOINT_FILE = "trial.pt"


class CorruptCheckpoint(RuntimeError):
    """A trial checkpoint on disk cannot be loaded."""


EVAL_SUBSET_SEED = 12345


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from trainables.errors import UserError

        raise UserError("device is 'cuda' but no CUDA GPU is visible; use device=auto or cpu")
    return torch.device(name)


def pgd_schedule(
    info: DatasetInfo, steps: int | None, step_size: float | None
) -> tuple[int, float]:
    """PGD steps and step size: the given ones, else the dataset's convention. With fewer steps
    than the convention and no step size, the step grows so the total travel stays the same."""
    steps = info.pgd_steps if steps is None else steps
    if step_size is None:
        step_size = info.pgd_step_size * info.pgd_steps / max(steps, 1)
    return steps, step_size


def attack_settings(config: TrialConfig, dataset: ImageDataset) -> AttackSettings:
    """Training PGD settings."""
    steps, step_size = pgd_schedule(
        dataset.info, config.train_pgd_steps, config.train_pgd_step_size
    )
    return AttackSettings(steps=steps, step_size=step_size, trades_beta=config.trades_beta)


def eval_settings(config: TrialConfig, dataset: ImageDataset) -> EvalSettings:
    """Evaluation settings: the config's, else the dataset's conventions."""
    info = dataset.info
    steps, step_size = pgd_schedule(info, config.eval_pgd_steps, config.eval_pgd_step_size)
    return EvalSettings(
        theta_eval=config.theta_eval,
        translate_eval=config.translate_eval,
        eps_eval=config.eps_eval if config.eps_eval is not None else info.eps_scale,
        pgd_steps=steps,
        pgd_step_size=step_size,
        batch_size=config.eval_batch_size,
        seed=config.seed,
    )


class Trial:
    """The mutable state of one training run and the operations on it."""

    def __init__(
        self, config: TrialConfig, dataset: ImageDataset, device: torch.device | None = None
    ) -> None:
        self.config = config
        self.device = device or resolve_device(config.device)
        self.info = dataset.info
        data = dataset.subset(config.train_size, config.test_size).to(self.device)
        self.train_images, self.train_labels = data.train_images, data.train_labels
        self.test_images, self.test_labels = data.test_images, data.test_labels
        subset = _fixed_subset(self.test_images.shape[0], config.eval_subset, self.device)
        self.eval_images, self.eval_labels = self.test_images[subset], self.test_labels[subset]
        self.curriculum: Curriculum = config.build_curriculum()
        self.attack = attack_settings(config, dataset)
        self.eval = eval_settings(config, dataset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = config.build_model(self.info)
        autotune_convolutions(self.device)
        accelerate(
            self.model, self.device, channels_last=config.uses_channels_last, compile=config.compile
        )
        self.optimizer = build_optimizer(
            self.model, config.lr, config.momentum, config.weight_decay
        )
        self.scheduler = build_lr_scheduler(
            self.optimizer,
            config.lr_schedule,
            config.epochs,
            milestones=self.curriculum.lr_milestones,
            gamma=self.curriculum.lr_gamma,
        )
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.epoch = 0  # epochs completed

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def run_epoch(self) -> dict[str, Any]:
        """Train the next epoch and return its metrics.

        The metrics come from the fixed evaluation subset, except after the last epoch, where they
        come from the full test set, with the invariance and robustness profiles added.
        """
        epoch = self.epoch + 1
        stage = self.curriculum.at(epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        result = train_epoch(
            self.model,
            self.optimizer,
            self.train_images,
            self.train_labels,
            theta_deg=stage.theta_deg,
            translate_px=stage.translate_frac * self.info.image_size,
            eps=stage.eps,
            method=self.config.method,
            attack=self.attack,
            batch_size=self.config.batch_size,
            generator=self.generator,
            amp=self.config.amp,
            crop_padding=self.info.crop_padding if self.config.augment else 0,
            hflip=self.info.hflip and self.config.augment,
        )
        self.scheduler.step()
        self.epoch = epoch
        train_time = time.perf_counter() - start
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "loss": result.loss,
            "train_acc": result.train_acc,
            "theta": stage.theta_deg,
            "translate": stage.translate_frac,
            "eps": stage.eps,
            "lr": lr,
        }
        if self.done:
            metrics.update(self.final_metrics())
        else:
            metrics.update(evaluate(self.model, self.eval_images, self.eval_labels, self.eval))
            metrics["final"] = False
        metrics["epoch_time_s"] = time.perf_counter() - start
        metrics["train_time_s"] = train_time
        return metrics

    def final_metrics(self) -> dict[str, Any]:
        """Full test-set evaluation of the exported (plain torch) model, with profiles."""
        model = accelerate(
            export_model(self.model), self.device, channels_last=self.config.uses_channels_last
        )
        metrics: dict[str, Any] = dict(
            evaluate(model, self.test_images, self.test_labels, self.eval)
        )
        if self.config.final_profiles:
            metrics.update(invariance_profile(model, self.test_images, self.test_labels, self.eval))
            metrics.update(robustness_profile(model, self.test_images, self.test_labels, self.eval))
        metrics["final"] = True
        return metrics

    def epochs(self) -> Iterator[dict[str, Any]]:
        """Run the remaining epochs, yielding each epoch's metrics."""
        while not self.done:
            yield self.run_epoch()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trial is (tensors and plain values)."""
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.epoch = int(state["epoch"])

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint into ``directory`` (atomically) and return the file's path."""
        path = Path(directory) / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def restore(self, directory: str | Path) -> None:
        """Load the checkpoint written by ``save`` (``weights_only=True``: no code is unpickled).

        Raises:
            CorruptCheckpoint: the file is missing, truncated or not a checkpoint of this trial.
        """
        path = Path(directory) / CHECKPOINT_FILE
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            self.load_state_dict(state)
        except (
            OSError,
            RuntimeError,
            EOFError,
            KeyError,
            ValueError,
            pickle.UnpicklingError,
        ) as exc:
            raise CorruptCheckpoint(
                f"checkpoint {path} cannot be loaded ({type(exc).__name__}: {exc}); it is "
                "truncated or not from this trial: delete its checkpoint directory to resume "
                "from the one before"
            ) from exc


def _fixed_subset(total: int, size: int, device: torch.device) -> torch.Tensor:
    """Indices of a fixed random evaluation subset (the same for every trial and epoch)."""
    generator = torch.Generator().manual_seed(EVAL_SUBSET_SEED)
    return torch.randperm(total, generator=generator)[: min(size, total)].sort().values.to(device)


def run_trial(
    config: TrialConfig,
    dataset: ImageDataset,
    on_epoch: Callable[[dict[str, Any], Trial], None] | None = None,
) -> dict[str, Any]:
    """Train a whole trial without Ray; ``on_epoch`` sees each epoch's metrics. Returns the last."""
    trial = Trial(config, dataset)
    metrics: dict[str, Any] = {}
    for metrics in trial.epochs():
        if on_epoch is not None:
            on_epoch(metrics, trial)
    return metrics


__all__ = [
    "CHECKPOINT_FILE",
    "CorruptCheckpoint",
    "Trial",
    "attack_settings",
    "eval_settings",
    "resolve_device",
    "run_trial",
]
