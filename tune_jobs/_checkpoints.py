"""Pruning the checkpoints of ended trials: each keeps only its newest ``checkpoint_<n>/``.

A running trial needs ``checkpoint.keep`` (2) checkpoints: when Ray Tune registers checkpoint
N+1 it deletes N-1, and a driver killed before the next experiment snapshot is resumed from the
last snapshot's checkpoint N, which must still exist. Once the snapshot in storage records that
a trial has ended, a resume skips the trial, and the analysis and the export read only its
newest checkpoint: the others are dead weight (half of a cifar10 search's 21-28 GB).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from fnmatch import fnmatch
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)

_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")
_STATE_FILE = "experiment_state-*.json"  # Ray Tune's snapshot; a resume reads the greatest name


class PruneFinishedCheckpoints(Callback):
    """Delete all but the newest ``checkpoint_<n>/`` of each trial that has ended.

    A trial that completed or was stopped early by the scheduler (both reach
    ``on_trial_complete``) is pruned only once the newest experiment snapshot in storage says it
    ended (``TERMINATED``). Before that, a driver killed hard would resume it as running, from
    the checkpoint that the older snapshot names, which may be the one before the newest. Trials
    that failed are never pruned (``cusp-tune resume`` may retry them). On a resume, the trials
    that had ended are pruned too (a driver killed before its snapshot, a search run before
    this callback).

    Deletion goes through the trial's storage filesystem, so object stores work as well. Nothing
    here fails the search: an error is logged as a warning and the checkpoints stay.

    Args:
        poll_s: Least seconds between two reads of the snapshot while trials wait to be pruned.
    """

    def __init__(self, poll_s: float = 2.0) -> None:
        self.poll_s = poll_s
        self._pending: dict[str, Trial] = {}
        self._swept = False
        self._last_poll = -float("inf")
        self._snapshot: tuple[str, int | None, int | None] | None = None  # the last one read
        self._ended: frozenset[str] = frozenset()  # trial ids it records as TERMINATED

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if not self._swept:  # the trials a resumed search starts with: from its snapshot
            self._swept = True
            self._pending.update((t.trial_id, t) for t in trials if t.status == Trial.TERMINATED)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._pending[trial.trial_id] = trial

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if self._pending and time.monotonic() - self._last_poll >= self.poll_s:
            self._release()

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        # Ray Tune writes its last snapshot (and waits for it) before this, unless it crashed.
        if self._pending:
            self._release()
        if self._pending:
            logger.debug(
                "checkpoints of ended trials %s not pruned: no snapshot records them as ended",
                ", ".join(sorted(self._pending)),
            )

    def _release(self) -> None:
        """Prune the pending trials that the newest snapshot in storage records as ended."""
        self._last_poll = time.monotonic()
        try:
            ended = self._read_ended(next(iter(self._pending.values())).storage)
        except Exception as exc:  # unreachable storage, a snapshot being written: next time
            logger.debug("could not read Ray Tune's experiment snapshot (%r)", exc)
            return
        for trial_id in [t for t in self._pending if t in ended]:
            prune_checkpoints(self._pending.pop(trial_id))

    def _read_ended(self, storage: Any) -> frozenset[str]:
        fs, directory = storage.storage_filesystem, storage.experiment_fs_path
        names = [
            info.base_name
            for info in fs.get_file_info(pyarrow.fs.FileSelector(directory, allow_not_found=True))
            if fnmatch(info.base_name, _STATE_FILE)
        ]
        if not names:
            return frozenset()
        path = f"{directory}/{max(names)}"
        info = fs.get_file_info(path)
        snapshot = (path, info.mtime_ns, info.size)
        if info.mtime_ns is None or snapshot != self._snapshot:  # read each version once
            with fs.open_input_stream(path) as stream:
                data = json.loads(stream.readall())
            self._ended = frozenset(_ended_trials(data.get("trial_data", [])))
            self._snapshot = snapshot
        return self._ended


def _ended_trials(trial_data: Iterable[Any]) -> Iterable[str]:
    for entry in trial_data:
        state = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
        if state.get("status") == Trial.TERMINATED:
            yield str(state["trial_id"])


def prune_checkpoints(trial: Trial) -> None:
    """Delete every ``checkpoint_<n>/`` of ``trial`` but the highest-numbered; never raises."""
    try:
        fs, trial_path = trial.storage.storage_filesystem, trial.storage.trial_fs_path
        selector = pyarrow.fs.FileSelector(trial_path, allow_not_found=True)
        numbered = {}
        for info in fs.get_file_info(selector):
            match = _CHECKPOINT_DIR.match(info.base_name)
            if match and info.type == pyarrow.fs.FileType.Directory:
                numbered[int(match.group(1))] = info.path
    except Exception as exc:
        logger.warning("trial %s: could not list its checkpoints (%r)", trial.trial_id, exc)
        return
    if len(numbered) < 2:
        return
    newest = max(numbered)
    failed = []
    for number in sorted(numbered)[:-1]:
        # Not Ray's _delete_fs_path: it logs a failure as an error with a traceback, and
        # returns as if it had deleted the directory.
        try:
            fs.delete_dir(numbered[number])
        except Exception as exc:
            failed.append(f"{numbered[number]} ({exc!r})")
    logger.debug(
        "trial %s ended: deleted %d older checkpoint(s), kept %s",
        trial.trial_id,
        len(numbered) - 1 - len(failed),
        numbered[newest],
    )
    if failed:
        logger.warning(
            "trial %s: could not delete its older checkpoint(s) %s; they only take space",
            trial.trial_id,
            ", ".join(failed),
        )


__all__ = ["PruneFinishedCheckpoints", "prune_checkpoints"]
