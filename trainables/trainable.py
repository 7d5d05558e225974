"""The Ray Tune function trainable: one ``Trial`` driven by Tune's reports and checkpoints.

This is the only module of ``trainables`` that imports Ray. The driver puts the dataset into the
object store once, with ``tune.with_parameters(train_trial, dataset=dataset.to_shared())``;
every trial maps it from there (numpy arrays: no copy per trial) instead of re-reading files.

Each epoch reports the metrics of ``Trial.run_epoch`` (all finite) and, every
``checkpoint_every`` epochs and after the last one, a checkpoint. A restored trial continues from
the epoch after its checkpoint and ends as an unbroken run with the same seed would.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune

from trainables.config import TrialConfig
from trainables.datasets import ImageDataset, SharedDataset
from trainables.plugins import import_plugins
from trainables.trial import Trial


class NonFiniteMetric(RuntimeError):
    """A metric that would be reported is NaN or infinite; the trial fails instead."""


def finite_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Return ``metrics`` unchanged, or raise if a number in it is not finite.

    Optuna keeps a trial RUNNING forever when it gets NaN, so nothing non-finite may reach it.
    """
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise NonFiniteMetric(f"metric {key} is {value} at epoch {metrics.get('epoch')}")
    return metrics


STAGING_PREFIX = "cusp-tune-ckpt-"
"""Checkpoints are staged in ``<tmp>/cusp-tune-ckpt-<pid>-*`` before Ray Tune copies them to
storage. Not in the trial's working directory: on the driver's node, Ray syncs that folder with
the experiment state and trips over a staging folder deleted mid-copy."""


def remove_orphaned_staging(root: str | Path | None = None) -> int:
    """Remove staging folders whose process has died; returns how many.

    Ray may kill a stopped trial's actor while ``tune.report`` blocks, before the staging
    folder's ``with`` block has cleaned up: the next trial on the node sweeps it away.
    """
    removed = 0
    for path in Path(root or tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*"):
        pid = path.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def train_trial(
    config: dict[str, Any],
    dataset: ImageDataset | SharedDataset,
    plugins: Sequence[str] = (),
) -> None:
    """Run one trial under Ray Tune; ``config`` is a flat ``TrialConfig`` mapping.

    Pass the dataset as a ``SharedDataset`` (``ImageDataset.to_shared()``): its arrays are
    mapped from the object store without a copy per trial. ``plugins`` are the job's modules
    (:mod:`trainables.plugins`), imported before the config is read.
    """
    import_plugins(plugins)
    remove_orphaned_staging()
    if isinstance(dataset, SharedDataset):
        dataset = dataset.to_dataset()
    trial = Trial(TrialConfig.from_dict(config), dataset)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.restore(directory)
    every = trial.config.checkpoint_every
    node_id = ray.get_runtime_context().get_node_id()
    while not trial.done:
        metrics = finite_metrics(trial.run_epoch())
        metrics["node_id"] = node_id  # where the epoch ran: useful on a cluster
        if trial.epoch % every == 0 or trial.done:
            staging = tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-")
            with staging as directory:
                trial.save(directory)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        else:
            tune.report(metrics)


__all__ = ["NonFiniteMetric", "finite_metrics", "remove_orphaned_staging", "train_trial"]
