"""A Ray Tune Optuna searcher that also journals its study for optuna-dashboard.

Ray Tune's ``OptunaSearch`` keeps its study in memory and pickles it with the experiment, which
keeps the searcher consistent with Tune's own trial states across ``resume``. To let
``optuna-dashboard`` open a search, ``JournaledOptunaSearch`` also copies every finished trial
into an Optuna journal file in the experiment directory (``optuna-journal.log``). The copy is
idempotent (keyed by Tune's trial id) and only ever holds finished trials, so it never shows a
trial RUNNING forever, even after the driver was killed.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from tune_jobs.schedulers import stopped_early

logger = logging.getLogger(__name__)

JOURNAL_FILE = "optuna-journal.log"
STUDY_NAME = "cusp-tune"
TUNE_TRIAL_ID_ATTR = "tune_trial_id"


class JournaledOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that mirrors finished trials into a journal file for optuna-dashboard."""

    def __init__(self, *args: Any, journal_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._journal_path = journal_path

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if not error and stopped_early(result):
            result = None  # stopped before its last epoch: PRUNED, not COMPLETE at low fidelity
        already_done = trial_id in self._completed_trials
        super().on_trial_complete(trial_id, result=result, error=error)
        if not already_done and self._journal_path and trial_id in self._ot_trials:
            try:
                self._mirror(trial_id)
            except Exception:  # the journal is a convenience; never fail a search over it
                logger.warning("could not write the Optuna journal %s", self._journal_path)

    def _mirror(self, trial_id: str) -> None:
        if Path(self._journal_path).parent.is_dir():  # not when the experiment has moved
            mirror_trials(self._journal_path, self._ot_study, {trial_id: self._ot_trials[trial_id]})


def mirror_trials(journal_path: str | Path, study: optuna.Study, trials: dict[str, Any]) -> int:
    """Copy the finished ``trials`` (Tune trial id -> Optuna trial) of ``study`` into the journal.

    Trials already in the journal are skipped; returns how many were added.
    """
    frozen_by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    journal = open_journal_study(journal_path, study.directions)
    known = {t.user_attrs.get(TUNE_TRIAL_ID_ATTR) for t in journal.get_trials(deepcopy=False)}
    added = 0
    for trial_id, ot_trial in trials.items():
        frozen = frozen_by_number.get(ot_trial.number)
        if trial_id in known or frozen is None or not frozen.state.is_finished():
            continue
        journal.add_trial(
            optuna.trial.create_trial(
                state=frozen.state,
                values=frozen.values,
                params=frozen.params,
                distributions=frozen.distributions,
                user_attrs={**frozen.user_attrs, TUNE_TRIAL_ID_ATTR: trial_id},
            )
        )
        added += 1
    return added


def sync_journal(experiment_dir: str | Path) -> int:
    """Bring the journal of a local experiment up to date with the searcher's saved state.

    Reads the newest ``searcher-state-*.pkl`` that Ray Tune wrote (a pickle this tool's own
    searcher produced) and mirrors its finished trials; returns how many were added.
    """
    experiment_dir = Path(experiment_dir)
    # The newest by name (a timestamp), as Ray picks it: Ray's syncing rewrites mtimes.
    states = sorted(experiment_dir.glob("searcher-state-*.pkl"))
    if not states:
        return 0
    with states[-1].open("rb") as handle:
        state = pickle.load(handle)
    if not isinstance(state, dict) or "_ot_study" not in state:
        return 0
    return mirror_trials(experiment_dir / JOURNAL_FILE, state["_ot_study"], state["_ot_trials"])


def open_journal_study(path: str | Path, directions: Any = None) -> optuna.Study:
    """Open (or create) the journalled study of an experiment."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    if directions is None:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage)
    return optuna.create_study(
        study_name=STUDY_NAME, storage=storage, directions=directions, load_if_exists=True
    )


__all__ = [
    "JOURNAL_FILE",
    "JournaledOptunaSearch",
    "mirror_trials",
    "open_journal_study",
    "sync_journal",
]
