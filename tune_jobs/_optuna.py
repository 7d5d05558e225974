"""A Ray Tune Optuna searcher that also journals its study for optuna-dashboard.

Ray Tune's ``OptunaSearch`` keeps its study in memory and pickles it with the experiment, which
keeps the searcher consistent with Tune's own trial states across ``resume``. To let
``optuna-dashboard`` open a search, ``JournaledOptunaSearch`` also copies every finished trial
into an Optuna journal file in the experiment directory (``optuna-journal.log``). The copy is
idempotent (keyed by Tune's trial id) and only ever holds finished trials, so it never shows a
trial RUNNING forever, even after the driver was killed. It copies each trial's system
attributes too (NSGA-II's generation, TPE's constant-liar parameters), so a study continued from
the journal keeps the sampler's state.

A proposal that repeats an earlier trial's parameters is answered from the study instead of
being trained again (see :meth:`JournaledOptunaSearch.suggest`).
"""

from __future__ import annotations

import logging
import math
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
REPEAT_OF_ATTR = "repeat_of_trial"
"""User attribute of a repeat answered from the study: the number of the trial it repeats."""
MAX_REDRAWS = 16
"""How many repeats in a row one suggestion answers from the study before it runs one."""


class JournaledOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that mirrors finished trials into a journal file for optuna-dashboard."""

    def __init__(self, *args: Any, journal_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._journal_path = journal_path

    def suggest(self, trial_id: str) -> dict | None:
        """Ray's suggestion, drawn again while it repeats the parameters of another trial.

        Samplers propose configurations they already have (NSGA-II copies a parent that neither
        crossover nor mutation changed; GP returns to a corner of the space), and training one
        again gives the same result (the trial seed is fixed). As Optuna's FAQ advises, such a
        repeat is told the earlier trial's outcome (``PRUNED`` if that was stopped early;
        ``FAIL`` while it still runs, so samplers ignore it) and the sampler is asked again, up
        to :data:`MAX_REDRAWS` times. Those Optuna trials are the sampler's only: Tune never
        runs them and the journal does not list them.
        """
        config = super().suggest(trial_id)
        for _ in range(MAX_REDRAWS):
            repeat = self._ot_trials[trial_id]
            twin = _earlier_twin(self._ot_study, repeat.number, repeat.params)
            if twin is None:
                return config
            del self._ot_trials[trial_id]
            repeat.set_user_attr(REPEAT_OF_ATTR, twin.number)
            if twin.state == optuna.trial.TrialState.COMPLETE:
                self._ot_study.tell(repeat, twin.values)
            elif twin.state == optuna.trial.TrialState.PRUNED:
                self._ot_study.tell(repeat, state=optuna.trial.TrialState.PRUNED)
            else:  # still running: no outcome to copy
                self._ot_study.tell(repeat, state=optuna.trial.TrialState.FAIL)
            config = super().suggest(trial_id)
        logger.warning(
            "the sampler proposed earlier trials' parameters %d times in a row; trial %s runs "
            "one of them again",
            MAX_REDRAWS + 1,
            trial_id,
        )
        return config

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


_TWIN_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


def _same_value(a: Any, b: Any) -> bool:
    """Equal, or floats equal up to rounding (GP proposes both 180.0 and 179.99999999999997)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return type(a) is type(b) and a == b


def _earlier_twin(
    study: optuna.Study, number: int, params: dict[str, Any]
) -> optuna.trial.FrozenTrial | None:
    """A trial of ``study`` other than ``number`` with the same ``params`` that completed, was
    stopped early or is running (a failed one may be tried again); ``None`` if there is none."""
    for other in study.get_trials(deepcopy=False, states=_TWIN_STATES):
        if (
            other.number != number
            and other.params.keys() == params.keys()
            and all(_same_value(other.params[k], v) for k, v in params.items())
        ):
            return other
    return None


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
                system_attrs=frozen.system_attrs,
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
    "MAX_REDRAWS",
    "REPEAT_OF_ATTR",
    "mirror_trials",
    "open_journal_study",
    "sync_journal",
]
