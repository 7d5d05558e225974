from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ray import tune

from trainables.trainable import (
    STAGING_PREFIX,
    NonFiniteMetric,
    finite_metrics,
    remove_orphaned_staging,
    train_trial,
)

CONFIG = {
    "model": "stdcnn",
    "model_width": 0.5,
    "epochs": 2,
    "train_size": 768,
    "test_size": 200,
    "batch_size": 64,
    "method": "pgd",
    "train_pgd_steps": 2,
    "eval_pgd_steps": 3,
    "eval_subset": 100,
    "final_profiles": False,
    "theta_schedule": "linear",
    "theta_max": 90,
    "eps_schedule": "linear",
    "eps_max": 0.2,
    "seed": 3,
}
COMPARED = ("loss", "clean_acc", "spatial_acc", "adv_acc", "combined_acc", "invariance_rate")


class KillWorkerAfterFirstCheckpoint(tune.Callback):
    """Kill the process running the trial once its epoch-1 checkpoint is registered."""

    def __init__(self) -> None:
        self.killed = False

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if not self.killed and trial.last_result["epoch"] == 1:
            self.killed = True
            os.kill(trial.last_result["pid"], signal.SIGKILL)


def _run(dataset, storage: Path, name: str, callbacks=(), max_failures: int = 0):
    tuner = tune.Tuner(
        tune.with_parameters(train_trial, dataset=dataset),
        param_space=CONFIG,
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=max_failures),
            callbacks=list(callbacks),
            verbose=0,
        ),
    )
    return tuner.fit()


def _reported_epochs(result) -> list[int]:
    lines = (Path(result.path) / "result.json").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def test_trial_killed_after_epoch_one_resumes_and_matches_unbroken_run(local_ray, digits, tmp_path):
    unbroken = _run(digits, tmp_path, "unbroken")[0]
    assert unbroken.error is None
    killer = KillWorkerAfterFirstCheckpoint()
    resumed = _run(digits, tmp_path, "killed", callbacks=[killer], max_failures=1)[0]
    assert killer.killed and resumed.error is None
    # Restored from the epoch-1 checkpoint: epoch 1 is not trained (nor reported) again.
    assert _reported_epochs(resumed) == [1, 2]
    assert resumed.metrics["epoch"] == 2 and resumed.metrics["final"] is True
    for key in COMPARED:
        assert resumed.metrics[key] == unbroken.metrics[key], key
        assert math.isfinite(resumed.metrics[key])
    assert resumed.checkpoint is not None
    assert (Path(resumed.checkpoint.path) / "trial.pt").is_file()


def test_finite_metrics_rejects_nan_and_inf():
    assert finite_metrics({"a": 1.0, "b": "x"}) == {"a": 1.0, "b": "x"}
    with pytest.raises(NonFiniteMetric, match="adv_acc"):
        finite_metrics({"adv_acc": float("nan"), "epoch": 3})
    with pytest.raises(NonFiniteMetric):
        finite_metrics({"loss": float("inf")})


class _FakeTune:
    """Stands in for ``ray.tune`` inside ``train_trial``: records where checkpoints are staged."""

    Checkpoint = tune.Checkpoint

    def __init__(self) -> None:
        self.staged: list[Path] = []

    def get_checkpoint(self):
        return None

    def report(self, metrics, checkpoint=None):
        if checkpoint is not None:
            staged = Path(checkpoint.path)
            assert (staged / "trial.pt").is_file()
            self.staged.append(staged)


class _FakeRay:
    @staticmethod
    def get_runtime_context():
        return type("Context", (), {"get_node_id": lambda self: "node"})()


def test_checkpoints_are_staged_under_the_process_id_and_removed(digits, monkeypatch):
    import trainables.trainable as trainable

    fake = _FakeTune()
    monkeypatch.setattr(trainable, "tune", fake)
    monkeypatch.setattr(trainable, "ray", _FakeRay)
    train_trial({**CONFIG, "train_size": 128, "test_size": 60, "eval_subset": 20}, digits)
    assert len(fake.staged) == 2
    for path in fake.staged:
        assert path.name.startswith(f"{STAGING_PREFIX}{os.getpid()}-") and not path.exists()


def test_staging_left_by_a_killed_process_is_swept_away(tmp_path):
    # Ray may kill a stopped trial's actor while report() blocks, before its with-block ends.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"{STAGING_PREFIX}{dead.pid}-abc"
    mine = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-def"
    for path in (orphan, mine):
        path.mkdir()
        (path / "trial.pt").write_bytes(b"x")
    (tmp_path / "unrelated").mkdir()
    assert remove_orphaned_staging(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "unrelated"])
