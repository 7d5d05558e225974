"""Ended trials keep only their newest checkpoint (tune_jobs._checkpoints), in a real search too.

The resume of an interrupted search with finished trials is checked in
``tests/test_search.py::test_interrupted_search_resumes_exactly``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from ray import tune
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from analysis import export_front, load_experiment, load_model
from trainables.trainable import train_trial
from tune_jobs import runner
from tune_jobs._checkpoints import PruneFinishedCheckpoints, prune_checkpoints
from tune_jobs.spec import load_job

OTHER_FILES = {"result.json", "params.json", "error.txt", "checkpoint_notes.txt"}


def _trial(root: Path, trial_id: str, checkpoints=(0, 1, 2)) -> Trial:
    """A Ray Tune trial whose local storage holds ``checkpoint_<n>/trial.pt`` for each n, a
    ``checkpoint_000009.tmp/`` (not a checkpoint's name) and :data:`OTHER_FILES`."""
    storage = StorageContext(
        storage_path=str(root), experiment_dir_name="exp", trial_dir_name=f"trial_{trial_id}"
    )
    trial = Trial("fake", config={}, storage=storage, trial_id=trial_id, stub=True)
    directory = Path(storage.trial_fs_path)
    for name in [f"checkpoint_{n:06d}" for n in checkpoints] + ["checkpoint_000009.tmp"]:
        (directory / name).mkdir(parents=True)
        (directory / name / "trial.pt").write_bytes(name.encode())
    for name in OTHER_FILES:
        (directory / name).write_text(name)
    return trial


def _names(trial: Trial) -> set[str]:
    return {p.name for p in Path(trial.storage.trial_fs_path).iterdir()}


def _snapshot(trials: list[Trial], name: str = "2026-01-01_00-00-00") -> None:
    """Ray Tune's experiment state file, as Ray writes it, with the trials' statuses now."""
    data = {"trial_data": [list(t.get_json_state()) for t in trials]}
    Path(trials[0].storage.experiment_fs_path, f"experiment_state-{name}.json").write_text(
        json.dumps(data)
    )


def test_an_ended_trial_is_pruned_once_the_snapshot_records_it(tmp_path):
    done, running = _trial(tmp_path, "done"), _trial(tmp_path, "running")
    callback = PruneFinishedCheckpoints(poll_s=3600)
    done.set_status(Trial.RUNNING)
    running.set_status(Trial.RUNNING)
    _snapshot([done, running])  # taken while both ran

    callback.on_step_begin(iteration=0, trials=[done, running])
    callback.on_trial_complete(iteration=0, trials=[done, running], trial=done)
    callback.on_step_end(iteration=1, trials=[done, running])
    # A driver killed now resumes `done` as running, from the checkpoint this snapshot names.
    assert {"checkpoint_000000", "checkpoint_000001", "checkpoint_000002"} <= _names(done)

    done.set_status(Trial.TERMINATED)
    _snapshot([done, running], name="2026-01-01_00-00-10")  # the newer file is the one read
    callback.on_step_end(iteration=2, trials=[done, running])  # within poll_s: not read again
    assert "checkpoint_000000" in _names(done)
    callback.on_experiment_end(trials=[done, running])
    assert _names(done) == {"checkpoint_000002", "checkpoint_000009.tmp", *OTHER_FILES}
    kept = Path(done.storage.trial_fs_path, "checkpoint_000002", "trial.pt")
    assert kept.read_bytes() == b"checkpoint_000002"
    assert len([n for n in _names(running) if n.endswith(("0", "1", "2"))]) == 3  # not ended


def test_the_highest_number_is_kept_not_the_last_name(tmp_path):
    trial = _trial(tmp_path, "a", checkpoints=())
    for name in ("checkpoint_9", "checkpoint_10"):
        Path(trial.storage.trial_fs_path, name).mkdir()
    Path(trial.storage.trial_fs_path, "checkpoint_11").write_text("a file, not a checkpoint")
    prune_checkpoints(trial)
    left = {"checkpoint_10", "checkpoint_11", "checkpoint_000009.tmp"}  # the 11 is a file
    assert _names(trial) == {*left, *OTHER_FILES}


def test_failed_trials_are_never_pruned(tmp_path):
    failed, earlier = _trial(tmp_path, "failed"), _trial(tmp_path, "earlier")
    before = _names(failed)
    failed.set_status(Trial.ERROR)
    earlier.set_status(Trial.ERROR)  # failed in an earlier run: a resume may retry it
    _snapshot([failed, earlier])
    callback = PruneFinishedCheckpoints(poll_s=0)
    callback.on_step_begin(iteration=0, trials=[failed, earlier])
    callback.on_trial_error(iteration=0, trials=[failed, earlier], trial=failed)
    callback.on_step_end(iteration=1, trials=[failed, earlier])
    callback.on_experiment_end(trials=[failed, earlier])
    assert _names(failed) == before and _names(earlier) == before


def test_a_resumed_search_prunes_the_trials_that_had_ended(tmp_path):
    # The driver was killed after `trial` completed and before a snapshot recorded it
    trial = _trial(tmp_path, "a")
    trial.set_status(Trial.RUNNING)
    _snapshot([trial])
    first = PruneFinishedCheckpoints(poll_s=0)
    first.on_step_begin(iteration=0, trials=[])
    first.on_trial_complete(iteration=0, trials=[trial], trial=trial)
    first.on_experiment_end(trials=[trial])  # (a crash: Ray Tune wrote no last snapshot)
    assert "checkpoint_000001" in _names(trial)

    # Resumed from that snapshot, it ran again and ended; the resume after that starts with it
    trial.set_status(Trial.TERMINATED)
    _snapshot([trial], name="2026-01-02_00-00-00")
    resumed = PruneFinishedCheckpoints(poll_s=0)
    resumed.on_step_begin(iteration=0, trials=[trial])
    resumed.on_step_end(iteration=1, trials=[trial])
    assert _names(trial) == {"checkpoint_000002", "checkpoint_000009.tmp", *OTHER_FILES}


class _ReadOnly:
    """A storage filesystem that lists and reads but cannot delete."""

    def __init__(self, fs) -> None:
        self._fs = fs

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def delete_dir(self, path):
        raise PermissionError(f"read-only: {path}")


class _Unreachable(_ReadOnly):
    def get_file_info(self, selector):
        raise OSError("connection reset")


def test_errors_are_logged_and_never_fail_the_search(tmp_path, caplog):
    trial = _trial(tmp_path, "a")
    before = _names(trial)
    trial.set_status(Trial.TERMINATED)
    _snapshot([trial])
    storage = trial.storage.storage_filesystem
    callback = PruneFinishedCheckpoints(poll_s=0)
    callback.on_trial_complete(iteration=0, trials=[trial], trial=trial)

    trial.storage.storage_filesystem = _Unreachable(storage)  # the snapshot cannot be read
    callback.on_step_end(iteration=1, trials=[trial])
    assert _names(trial) == before

    trial.storage.storage_filesystem = _ReadOnly(storage)  # read, but nothing can be deleted
    with caplog.at_level(logging.WARNING, logger="tune_jobs._checkpoints"):
        callback.on_step_end(iteration=2, trials=[trial])
    assert _names(trial) == before
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "trial a: could not delete its older checkpoint(s)" in record.getMessage()
    assert "checkpoint_000000" in record.getMessage()
    assert "checkpoint_000002" not in record.getMessage()


def _checkpoints(trial_dir: Path) -> list[str]:
    return sorted(p.name for p in trial_dir.iterdir() if p.name.startswith("checkpoint_"))


def test_a_real_search_keeps_one_checkpoint_per_ended_trial(local_ray, tmp_path, tiny_moasha):
    overrides = {
        **tiny_moasha,
        "storage": str(tmp_path),
        "name": "pruned",
        "scheduler.grace_epochs": 2,  # some trials are stopped early, at epoch 2
        "checkpoint.every": 1,
        "checkpoint.keep": 2,
    }
    outcome = runner.launch(load_job("quickstart", overrides))
    assert outcome.finished and len(outcome.trials) == 6
    epochs = dict(zip(outcome.trials["trial_id"], outcome.trials["epochs_done"], strict=True))
    assert sorted(set(epochs.values())) == [2, 4], epochs  # stopped early, and completed
    experiment = Path(outcome.experiment_path)
    for trial_id, done in epochs.items():
        # a checkpoint after each epoch (numbered from 0); only the last one is left
        assert _checkpoints(experiment / f"trial_{trial_id}") == [f"checkpoint_{done - 1:06d}"]

    analysed = load_experiment(experiment)
    front = analysed.front()
    assert len(front) >= 1 and front["checkpoint_path"].notna().all()
    exported = export_front(experiment, tmp_path / "models")
    assert not exported.warnings and len(exported.paths) == len(front)
    model = load_model(exported.paths[0])
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

    # Ray Tune's own results point at the checkpoints that are left
    for result in tune.Tuner.restore(str(experiment), trainable=train_trial).get_results():
        assert (Path(result.checkpoint.path) / "trial.pt").is_file()
