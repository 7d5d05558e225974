"""Trial schedulers: multi-objective ASHA (MO-ASHA), and the factory the runner builds them with.

MO-ASHA (Schmucker et al. 2021, "Multi-objective Asynchronous Successive Halving"; Syne Tune's
``MOASHA``) is asynchronous successive halving where a rung ranks trials by non-dominated sorting
over all the objectives instead of by one metric. :class:`MOASHAScheduler` is a Ray Tune
``TrialScheduler``; :func:`make_scheduler` builds the scheduler a job's ``scheduler`` section
asks for (``none``, ``asha`` on one metric, ``moasha``).

Three things tie a scheduler to the rest of a search:

* **Stopped trials reach Optuna as PRUNED.** A stopped trial's last result holds low-fidelity
  objective values; Ray's ``OptunaSearch`` would tell them to the study as a COMPLETE trial. Every
  result of a trial says whether it is the last epoch's (``final``), so the searcher tells a
  trial whose last result has ``final: False`` as PRUNED (:func:`stopped_early`). This needs no
  state shared between the scheduler and the searcher and holds after ``resume``.
* **Rung records survive ``resume``.** Ray Tune 2.x never saves the scheduler with the experiment
  checkpoint: ``tuner.pkl`` holds it as it was when the ``Tuner`` was built (empty), and
  ``TuneController.save_to_dir`` writes the trials, the searcher and the callbacks only.
  :class:`SchedulerStateCallback` is a callback holding the scheduler: Tune saves its state with
  every experiment checkpoint (``callback-states-*.pkl``, next to the searcher's) and, on resume,
  gives it back before any trial is re-added. ``tuner.pkl`` pickles the scheduler and the callback
  together, so the restored callback holds the very scheduler the restored ``Tuner`` runs.
* **The time attribute is the reported ``epoch``** (1 to ``epochs``), not Tune's
  ``training_iteration``, which restarts after a trial is restored from a checkpoint.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from tune_jobs._mo_ranking import MODES, as_maximisation, is_promoted

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from tune_jobs.spec import Objective, SchedulerSettings

TIME_ATTR = "epoch"
FINAL_KEY = "final"


def rung_levels(grace_period: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """The rung levels ``ceil(grace_period * reduction_factor**k)`` for ``k = 0, 1, ...`` that are
    below ``max_t`` (a trial that reached ``max_t`` has nothing left to be stopped for).

    ``rung_levels(1, 2, 8) == (1, 2, 4)``; ``rung_levels(1, 3, 9) == (1, 3)``; levels are
    rounded up to whole epochs and never repeat (``rung_levels(1, 1.5, 6) == (1, 2, 3, 4)``).
    """
    if grace_period < 1 or not reduction_factor > 1:
        raise ValueError(
            f"need grace_period >= 1 and reduction_factor > 1, got {grace_period}, "
            f"{reduction_factor}"
        )
    levels: list[int] = []
    k = 0
    while True:
        level = int(np.ceil(round(grace_period * reduction_factor**k, 9)))
        if level >= max_t:
            return tuple(levels)
        if not levels or level > levels[-1]:
            levels.append(level)
        k += 1


def stopped_early(result: Mapping[str, Any] | None) -> bool:
    """Whether a trial whose last result is ``result`` ended before its last epoch.

    True when the result says ``final: False`` (the trainable reports ``final: True`` only after
    its last epoch): the trial was stopped by the scheduler (or a Tune stopper), so its
    objective values are low-fidelity ones and the searcher must tell it as PRUNED. A result
    without ``final`` (another trainable) counts as a finished trial.
    """
    return bool(result) and FINAL_KEY in result and not result[FINAL_KEY]


class _Rung:
    """The objective values recorded at one rung level, and who continues from it.

    A trial reaching the rung is recorded, then continues when it ranks among the top
    ``ceil(n / reduction_factor)`` of the ``n`` records (itself included) in
    :func:`tune_jobs._mo_ranking.rank_order`: by non-dominated front, then crowding distance,
    with the newcomer first among ties. With fewer than ``reduction_factor`` records there is one
    slot: the first trial at a rung always continues, a later one continues when nothing recorded
    dominates it and its crowding distance in the first front is at least everyone else's.
    """

    def __init__(self, level: int, modes: Sequence[str], reduction_factor: float) -> None:
        self.level = level
        self.modes = tuple(modes)
        self.reduction_factor = reduction_factor
        self.records: dict[str, tuple[float, ...]] = {}

    def admit(self, trial_id: str, values: Sequence[float]) -> bool:
        """Record ``values`` for ``trial_id`` and return whether the trial continues."""
        self.records[trial_id] = tuple(float(v) for v in values)
        ids = list(self.records)
        points = as_maximisation(list(self.records.values()), self.modes)
        return is_promoted(points, ids.index(trial_id), self.reduction_factor)


class MOASHAScheduler(FIFOScheduler):
    """Multi-objective asynchronous successive halving (stopping variant, one bracket).

    Rungs sit at :func:`rung_levels` ``(grace_period, reduction_factor, max_t)`` epochs. A trial
    is judged once per rung, on the first result whose ``time_attr`` reaches the rung (the
    highest rung reached, if it skipped some): it continues when it ranks among the top
    ``ceil(n / reduction_factor)`` of the ``n`` results recorded at that rung so far, itself
    included, and is stopped otherwise (see :class:`_Rung`). Earlier decisions are never
    revisited and stopped trials are never resumed: ASHA's stopping variant, as Ray's
    ``ASHAScheduler``.

    Ranking is by non-dominated sorting over the objectives (each with its mode); ties within the
    front that straddles the cut are broken by **crowding distance** rather than hypervolume
    contribution because it needs no reference point (the hypervolume contribution of a front's
    extremes is decided by where the reference point is put, and at low rungs the range of the
    values is not known in advance), it is invariant to the scale of each objective, it works
    for any number of objectives in ``O(m n log n)``, and it keeps the extremes of the front
    (infinite distance), whose spread is what the final hypervolume rewards. The newcomer goes
    first among trials it ties with (as Ray's ASHA continues a result equal to its cutoff).

    Alternatives measured in ``benchmarks/bench_moasha.py`` (``--variants``, ``--validate``):
    ordering each front as an epsilon-net (Syne Tune's and AutoGluon's MO-ASHA) or by
    hypervolume contribution reached the same hypervolume as crowding distance within seed
    noise (36 fresh seeds: 56.1, 56.1 and 56.8 % of the true front at 40 % of the epochs), so
    the reasons above decide. Ranking the newcomer last among ties and Syne Tune's
    ``rank / n <= 1 / eta`` were no better (75 % and 66 % of the epochs to match no early
    stopping, against 59 %); ASHA's ``floor(n / eta)`` slots and a minimum of ``eta`` records
    before anyone continues were clearly worse (83 % and 75 %): in the stopping variant a trial
    that may not continue yet is lost, so stricter rules complete fewer trials early.

    A result that lacks ``time_attr`` or an objective is ignored (CONTINUE). A trial is never
    stopped at or after ``max_t``: the trainable ends itself after its last epoch. A trial
    already recorded at a rung that reports there again (a trial restored from a checkpoint older
    than its last result) keeps its record and decision: STOP if it was stopped, else CONTINUE.

    The state (rung records, stopped trials) pickles with the scheduler; :meth:`get_state` /
    :meth:`set_state` and :meth:`save` / :meth:`restore` give it as a plain dict and a file.
    """

    def __init__(
        self,
        objectives: Sequence[tuple[str, str]],
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 4.0,
        time_attr: str = TIME_ATTR,
    ) -> None:
        if not objectives:
            raise ValueError("MOASHAScheduler needs at least one (metric, mode) objective")
        modes = [mode for _, mode in objectives]
        if any(mode not in MODES for mode in modes):
            raise ValueError(f"modes must be 'max' or 'min', got {modes}")
        if max_t < 1:
            raise ValueError(f"max_t must be at least 1, got {max_t}")
        super().__init__()
        self._objectives = tuple((str(metric), str(mode)) for metric, mode in objectives)
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = float(reduction_factor)
        self._time_attr = time_attr
        self._rungs = [
            _Rung(level, modes, self._reduction_factor)
            for level in rung_levels(grace_period, self._reduction_factor, max_t)
        ]
        self._stopped: set[str] = set()

    # -- what the scheduler knows ------------------------------------------------------------

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """``(metric, mode)`` of every objective, in order."""
        return self._objectives

    @property
    def levels(self) -> tuple[int, ...]:
        """The rung levels, in epochs, lowest first."""
        return tuple(rung.level for rung in self._rungs)

    @property
    def records(self) -> dict[int, dict[str, tuple[float, ...]]]:
        """A copy of the rung records: level -> trial id -> objective values (as reported)."""
        return {rung.level: dict(rung.records) for rung in self._rungs}

    @property
    def stopped(self) -> frozenset[str]:
        """Ids of the trials this scheduler stopped."""
        return frozenset(self._stopped)

    # -- Ray Tune's scheduler interface -------------------------------------------------------

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def decide(self, trial_id: str, result: Mapping[str, Any]) -> str:
        """CONTINUE or STOP for ``trial_id`` after ``result`` (what :meth:`on_trial_result`
        returns; takes the trial id instead of a Tune ``Trial``)."""
        if trial_id in self._stopped:
            return TrialScheduler.STOP
        metrics = [metric for metric, _ in self._objectives]
        if self._time_attr not in result or any(m not in result for m in metrics):
            return TrialScheduler.CONTINUE
        time = result[self._time_attr]
        reached = [rung for rung in self._rungs if rung.level <= time]
        if time >= self._max_t or not reached or trial_id in reached[-1].records:
            return TrialScheduler.CONTINUE
        if reached[-1].admit(trial_id, [result[m] for m in metrics]):
            return TrialScheduler.CONTINUE
        self._stopped.add(trial_id)
        return TrialScheduler.STOP

    def debug_string(self) -> str:
        rungs = " | ".join(f"epoch {r.level}: {len(r.records)}" for r in self._rungs)
        return f"Using MO-ASHA: {len(self._stopped)} stopped; results per rung: {rungs or '-'}"

    # -- state ---------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """The rung records and the stopped trials, as plain Python data."""
        return {"records": self.records, "stopped": set(self._stopped)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Replace the rung records and stopped trials with those of :meth:`get_state`.

        Records of a level this scheduler does not have are dropped.
        """
        records = state.get("records", {})
        for rung in self._rungs:
            rung.records = dict(records.get(rung.level, {}))
        self._stopped = set(state.get("stopped", ()))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))


class SchedulerStateCallback(Callback):
    """Saves a scheduler's state with every experiment checkpoint and restores it on resume.

    Pass it in ``RunConfig(callbacks=[...])`` next to ``TuneConfig(scheduler=scheduler)`` (Ray
    Tune saves callbacks' states but not the scheduler's; see the module docstring). Schedulers
    with ``get_state``/``set_state`` (:class:`MOASHAScheduler`) are saved through them; any other
    (Ray's ``ASHAScheduler``) as a copy of its attributes, which is what its own ``save`` writes.
    """

    def __init__(self, scheduler: TrialScheduler) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict[str, Any] | None:
        if hasattr(self.scheduler, "get_state"):
            state = self.scheduler.get_state()
        else:
            state = dict(vars(self.scheduler))
        return {"scheduler": state} if state else None

    def set_state(self, state: dict[str, Any]) -> None:
        saved = state.get("scheduler")
        if not saved:
            return
        if hasattr(self.scheduler, "set_state"):
            self.scheduler.set_state(saved)
        else:
            vars(self.scheduler).update(saved)


def make_scheduler(
    settings: SchedulerSettings, objectives: Sequence[Objective], epochs: int
) -> TrialScheduler:
    """The scheduler of a job's ``scheduler`` section.

    * ``none``: Ray's ``FIFOScheduler`` (every trial runs ``epochs`` epochs);
    * ``asha``: Ray's ``ASHAScheduler`` on ``settings.metric`` (the first objective's when
      unset) with that objective's mode; metric and mode go to the scheduler, never to
      ``TuneConfig`` (that would make the Optuna study single-objective);
    * ``moasha``: :class:`MOASHAScheduler` on all ``objectives``.

    Both early-stopping schedulers use the reported ``epoch`` as time, ``grace_epochs`` as grace
    period, ``reduction_factor`` and ``max_t = epochs``.
    """
    pairs = [(objective.metric, objective.mode) for objective in objectives]
    if settings.kind == "none":
        return FIFOScheduler()
    if settings.kind == "moasha":
        return MOASHAScheduler(
            pairs,
            max_t=epochs,
            grace_period=settings.grace_epochs,
            reduction_factor=settings.reduction_factor,
        )
    if settings.kind == "asha":
        metric = settings.metric or pairs[0][0]
        modes = dict(pairs)
        if metric not in modes:
            raise ValueError(f"scheduler.metric {metric!r} is not an objective ({list(modes)})")
        return ASHAScheduler(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=modes[metric],
            max_t=epochs,
            grace_period=settings.grace_epochs,
            reduction_factor=settings.reduction_factor,
        )
    raise ValueError(f"unknown scheduler kind {settings.kind!r}")


__all__ = [
    "MOASHAScheduler",
    "SchedulerStateCallback",
    "make_scheduler",
    "rung_levels",
    "stopped_early",
]
