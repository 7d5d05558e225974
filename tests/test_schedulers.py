"""MO-ASHA: ranking math, rung decisions on scripted results, state across pickling and resume,
PRUNED for stopped trials, and a real search that stops trials early."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from tune_jobs import _optuna, runner
from tune_jobs._mo_ranking import (
    as_maximisation,
    crowding_distance,
    is_promoted,
    non_dominated_fronts,
    promotion_slots,
    rank_order,
)
from tune_jobs._optuna import JOURNAL_FILE, JournaledOptunaSearch, open_journal_study
from tune_jobs.schedulers import (
    MOASHAScheduler,
    SchedulerStateCallback,
    make_scheduler,
    rung_levels,
    stopped_early,
)
from tune_jobs.spec import Objective, SchedulerSettings, load_job

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def _trial(trial_id: str) -> SimpleNamespace:
    """What a scheduler reads from Tune's ``Trial``: its id (Ray's ASHA reads no more)."""
    return SimpleNamespace(trial_id=trial_id)


def _report(scheduler, trial_id: str, epoch: int, **metrics: float) -> str:
    return scheduler.on_trial_result(None, _trial(trial_id), {"epoch": epoch, **metrics})


# -- ranking math ------------------------------------------------------------------------------


def test_as_maximisation_negates_min_objectives_and_checks_modes():
    points = as_maximisation([[0.5, 2.0], [0.7, 1.0]], ["max", "min"])
    np.testing.assert_array_equal(points, [[0.5, -2.0], [0.7, -1.0]])
    with pytest.raises(ValueError, match="modes"):
        as_maximisation([[1.0, 2.0]], ["max", "lower"])
    with pytest.raises(ValueError, match="2 modes for 3 objectives"):
        as_maximisation([[1.0, 2.0, 3.0]], ["max", "max"])


def test_non_dominated_fronts_by_hand():
    points = np.array([[1, 5], [2, 4], [3, 3], [4, 1], [1, 1], [2, 2], [2, 4]], dtype=float)
    # front 0: the staircase (and the duplicate of [2, 4]: equal points do not dominate);
    # [2, 2] is dominated by [2, 4] and [3, 3] only; [1, 1] by [2, 2] too
    np.testing.assert_array_equal(non_dominated_fronts(points), [0, 0, 0, 0, 2, 1, 0])
    assert non_dominated_fronts(np.zeros((0, 2))).shape == (0,)


def test_crowding_distance_by_hand():
    front = np.array([[1, 5], [2, 4], [3, 3], [4, 1]], dtype=float)
    # objective 0: range 3; objective 1: range 4; extremes are infinite
    # [2, 4]: (3 - 1) / 3 + (5 - 3) / 4 = 7/6;  [3, 3]: (4 - 2) / 3 + (4 - 1) / 4 = 17/12
    np.testing.assert_allclose(crowding_distance(front), [np.inf, 7 / 6, 17 / 12, np.inf])
    assert crowding_distance(front[:2]).tolist() == [np.inf, np.inf]
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)


def test_crowding_distance_ignores_constant_objectives_and_order_of_ties():
    front = np.array([[0.0, 0.0, 3.0], [1.0, 0.0, 2.0], [1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # the second objective is constant: no contribution and no infinite extremes from it;
    # the duplicated middle point gets the gap between the distinct neighbours: 3/3 + 3/3
    np.testing.assert_allclose(crowding_distance(front), [np.inf, 2.0, 2.0, np.inf])
    permutation = [2, 0, 3, 1]
    np.testing.assert_allclose(
        crowding_distance(front[permutation]), crowding_distance(front)[permutation]
    )


def test_rank_order_front_then_crowding_then_favoured_then_index():
    points = np.array([[1, 5], [2, 4], [3, 3], [4, 1], [1, 1], [2, 2]], dtype=float)
    # front 0 by crowding: the extremes 0 and 3 (inf, index order), then 2 (17/12), 1 (7/6)
    assert rank_order(points).tolist() == [0, 3, 2, 1, 5, 4]
    assert rank_order(points, favoured=3).tolist() == [3, 0, 2, 1, 5, 4]
    # favouring breaks ties only: point 1 stays behind the less crowded point 2
    assert rank_order(points, favoured=1).tolist() == [0, 3, 2, 1, 5, 4]


@pytest.mark.parametrize(
    ("eta", "slots"),
    [(2, [1, 1, 2, 2, 3, 3, 4, 4]), (3, [1, 1, 1, 2, 2, 2, 3, 3]), (2.5, [1, 1, 2, 2, 2, 3, 3, 4])],
)
def test_promotion_slots_is_ceil_of_n_over_eta(eta, slots):
    assert [promotion_slots(n, eta) for n in range(1, 9)] == slots
    assert all(promotion_slots(n, eta) == math.ceil(n / eta) for n in range(1, 200))
    assert promotion_slots(0, eta) == 0


def test_is_promoted_uses_the_slots_and_favours_the_newcomer():
    two = np.array([[1.0, 2.0], [2.0, 1.0]])  # mutually non-dominated, both extremes
    assert is_promoted(two, 0, 2) and is_promoted(two, 1, 2)  # one slot, the favoured takes it
    dominated = np.array([[2.0, 2.0], [1.0, 1.0]])
    assert is_promoted(dominated, 0, 2) and not is_promoted(dominated, 1, 2)


# -- rung levels and the factory ---------------------------------------------------------------


def test_rung_levels():
    assert rung_levels(1, 2, 8) == (1, 2, 4)
    assert rung_levels(1, 3, 9) == (1, 3)
    assert rung_levels(2, 2, 9) == (2, 4, 8)
    assert rung_levels(1, 1.5, 6) == (1, 2, 3, 4)  # rounded up, never repeated
    assert rung_levels(3, 4, 3) == ()  # grace == epochs: nothing to stop
    with pytest.raises(ValueError):
        rung_levels(0, 2, 8)


def test_make_scheduler_kinds():
    objectives = (Objective("spatial_acc", "max"), Objective("adv_acc", "max"))
    assert type(make_scheduler(SchedulerSettings(), objectives, 4)) is FIFOScheduler

    moasha = make_scheduler(SchedulerSettings("moasha", 1, 2.0), objectives, 8)
    assert isinstance(moasha, MOASHAScheduler)
    assert moasha.levels == (1, 2, 4)
    assert moasha.objectives == (("spatial_acc", "max"), ("adv_acc", "max"))

    asha = make_scheduler(SchedulerSettings("asha", 2, 3.0, "adv_acc"), objectives, 9)
    assert isinstance(asha, ASHAScheduler)
    assert (asha._metric, asha._mode, asha._time_attr) == ("adv_acc", "max", "epoch")
    assert (asha._max_t, asha._reduction_factor) == (9, 3.0)
    assert [level for level, _ in asha._brackets[0]._rungs] == [6, 2]
    defaulted = make_scheduler(SchedulerSettings("asha"), objectives, 4)
    assert defaulted._metric == "spatial_acc"


def test_moasha_validates_its_arguments():
    with pytest.raises(ValueError, match="objective"):
        MOASHAScheduler([], max_t=4)
    with pytest.raises(ValueError, match="modes"):
        MOASHAScheduler([("a", "up")], max_t=4)


# -- scripted rung decisions -------------------------------------------------------------------


def test_two_objectives_mixed_modes_scripted():
    """acc is maximised, loss minimised; eta 2, rungs at epochs 1, 2, 4 of 8."""
    s = MOASHAScheduler([("acc", "max"), ("loss", "min")], max_t=8, reduction_factor=2)
    assert s.levels == (1, 2, 4)
    # rung 1, n = 1: one slot, the first trial takes it
    assert _report(s, "A", 1, acc=0.5, loss=0.5) == CONTINUE
    # n = 2, one slot: B is dominated by A (lower acc, higher loss)
    assert _report(s, "B", 1, acc=0.4, loss=0.6) == STOP
    # n = 3, two slots: C trades acc for loss against A, so front 0 = {A, C}: C is in the top 2
    assert _report(s, "C", 1, acc=0.6, loss=0.7) == CONTINUE
    # n = 4, two slots: front 0 = {A, C, D}; A and C are its extremes (infinite crowding
    # distance), D lies between them: third, stopped although nothing dominates it
    assert _report(s, "D", 1, acc=0.55, loss=0.55) == STOP
    # n = 5, three slots: E dominates everyone
    assert _report(s, "E", 1, acc=0.7, loss=0.4) == CONTINUE
    # between rungs nothing is recorded or decided
    assert _report(s, "A", 1, acc=0.9, loss=0.1) == CONTINUE  # A re-reports rung 1
    assert s.records[1]["A"] == (0.5, 0.5)  # the first record stays
    # rung 2: A first; C trades off against A -> both extremes, C (the newcomer) first
    assert _report(s, "A", 2, acc=0.6, loss=0.45) == CONTINUE
    assert _report(s, "C", 2, acc=0.65, loss=0.6) == CONTINUE
    assert _report(s, "C", 3, acc=0.66, loss=0.6) == CONTINUE
    # n = 3 at rung 2, two slots: E is dominated by A
    assert _report(s, "E", 2, acc=0.55, loss=0.5) == STOP
    # a trial that skipped rungs is judged at the highest rung it reached (rung 2, n = 4, two
    # slots): F dominates A and C there
    assert _report(s, "F", 3, acc=0.8, loss=0.3) == CONTINUE
    assert "F" in s.records[2] and "F" not in s.records[1]
    # stopped trials stay stopped (e.g. a result after a restore from an older checkpoint)
    assert _report(s, "B", 1, acc=0.9, loss=0.1) == STOP
    # never stopped at or after max_t; results without the objectives are ignored
    assert _report(s, "D", 8, acc=0.0, loss=9.0) == STOP  # D was stopped before
    assert _report(s, "G", 8, acc=0.0, loss=9.0) == CONTINUE
    assert _report(s, "H", 1, acc=0.1) == CONTINUE
    assert "H" not in s.records[1]
    assert s.stopped == {"B", "D", "E"}
    assert {level: sorted(r) for level, r in s.records.items()} == {
        1: ["A", "B", "C", "D", "E"],
        2: ["A", "C", "E", "F"],
        4: [],
    }
    assert "3 stopped" in s.debug_string()


def test_three_objectives_mixed_modes_scripted():
    """a and b are maximised, c minimised; eta 3, rungs at epochs 2 and 6 of 10."""
    s = MOASHAScheduler(
        [("a", "max"), ("b", "max"), ("c", "min")], max_t=10, grace_period=2, reduction_factor=3
    )
    assert s.levels == (2, 6)
    # epoch 1 is before the first rung: never stopped
    assert _report(s, "P2", 1, a=0.0, b=0.0, c=1.0) == CONTINUE
    assert _report(s, "P1", 2, a=0.5, b=0.5, c=0.5) == CONTINUE  # n = 1, one slot
    assert _report(s, "P2", 2, a=0.4, b=0.4, c=0.6) == STOP  # n = 2, dominated by P1
    # n = 3, one slot: P3 trades a for b against P1: front 0 = {P1, P3}, both extremes; P3 is
    # the newcomer and takes the slot
    assert _report(s, "P3", 2, a=0.6, b=0.3, c=0.5) == CONTINUE
    # n = 4, two slots: front 0 = {P1, P3, P4}; P4 lies between P1 and P3 on a and b but has
    # the best c, so it is an extreme of the front too (infinite distance) and, favoured, first
    assert _report(s, "P4", 2, a=0.55, b=0.45, c=0.4) == CONTINUE
    # n = 5, two slots: P5 is dominated by P4 (front 1)
    assert _report(s, "P5", 2, a=0.52, b=0.42, c=0.5) == STOP
    # n = 6, two slots: P6 is on front 0 with P1, P3, P4, but those three are extremes of the
    # front (a: P1, P3; b: P3, P1; c: P1, P3, P4) and P6 has a finite distance:
    # (0.6 - 0.55)/0.1 + (0.45 - 0.3)/0.2 + (0.5 - 0.4)/0.1 = 2.25 -> fourth, stopped
    assert _report(s, "P6", 2, a=0.58, b=0.4, c=0.45) == STOP
    # n = 7, three slots: P7 dominates everyone
    assert _report(s, "P7", 2, a=0.7, b=0.6, c=0.3) == CONTINUE
    assert _report(s, "P1", 6, a=0.6, b=0.6, c=0.4) == CONTINUE  # first at rung 6
    assert _report(s, "P4", 6, a=0.5, b=0.5, c=0.5) == STOP  # n = 2, dominated by P1
    assert s.stopped == {"P2", "P5", "P6", "P4"}


def test_single_objective_is_plain_asha_with_ceil_slots():
    s = MOASHAScheduler([("loss", "min")], max_t=4, reduction_factor=2)
    decisions = [
        _report(s, t, 1, loss=v) for t, v in zip("abcdef", [3, 2, 4, 1, 5, 2], strict=True)
    ]
    # a: alone; b better than a; c worst of 3 (2 slots); d best; e worst; f ties b, newcomer first
    assert decisions == [CONTINUE, CONTINUE, STOP, CONTINUE, STOP, CONTINUE]


# -- state: pickling, save/restore, the experiment-checkpoint callback -------------------------


def _scripted() -> MOASHAScheduler:
    s = MOASHAScheduler([("acc", "max"), ("loss", "min")], max_t=8, reduction_factor=2)
    for trial_id, acc, loss in [("A", 0.5, 0.5), ("B", 0.4, 0.6), ("C", 0.6, 0.7)]:
        _report(s, trial_id, 1, acc=acc, loss=loss)
    return s


def _same_future(a: MOASHAScheduler, b: MOASHAScheduler) -> None:
    """Both schedulers make the same decisions from here on."""
    script = [("B", 1, 0.9, 0.1), ("D", 1, 0.55, 0.55), ("A", 2, 0.5, 0.5), ("C", 2, 0.4, 0.6)]
    for trial_id, epoch, acc, loss in script:
        assert _report(a, trial_id, epoch, acc=acc, loss=loss) == _report(
            b, trial_id, epoch, acc=acc, loss=loss
        )
    assert a.records == b.records and a.stopped == b.stopped


def test_pickle_round_trip_keeps_rung_records():
    original = _scripted()
    copy = pickle.loads(pickle.dumps(original))
    assert copy.records == original.records
    assert copy.records[1] == {"A": (0.5, 0.5), "B": (0.4, 0.6), "C": (0.6, 0.7)}
    assert copy.stopped == {"B"}
    _same_future(original, copy)


def test_save_restore_and_state_dict(tmp_path):
    original = _scripted()
    path = tmp_path / "moasha.pkl"
    original.save(str(path))
    restored = MOASHAScheduler([("acc", "max"), ("loss", "min")], max_t=8, reduction_factor=2)
    restored.restore(str(path))
    assert restored.records == original.records and restored.stopped == original.stopped
    _same_future(original, restored)


def test_state_callback_carries_moasha_and_asha_state():
    original = _scripted()
    saved = pickle.loads(pickle.dumps(SchedulerStateCallback(original).get_state()))
    fresh = MOASHAScheduler([("acc", "max"), ("loss", "min")], max_t=8, reduction_factor=2)
    SchedulerStateCallback(fresh).set_state(saved)
    _same_future(original, fresh)

    settings = SchedulerSettings("asha", 1, 2.0, "clean_acc")
    objectives = (Objective("clean_acc", "max"), Objective("loss", "min"))
    asha = make_scheduler(settings, objectives, 8)
    for trial_id, acc in [("a", 0.5), ("b", 0.3), ("c", 0.7)]:
        asha.on_trial_add(None, _trial(trial_id))
        result = {"epoch": 1, "clean_acc": acc, "loss": 0.0}
        assert asha.on_trial_result(None, _trial(trial_id), result) == (
            STOP if trial_id == "b" else CONTINUE
        )
    saved = pickle.loads(pickle.dumps(SchedulerStateCallback(asha).get_state()))
    restored = make_scheduler(settings, objectives, 8)
    SchedulerStateCallback(restored).set_state(saved)
    recorded = {level: dict(r) for level, r in restored._brackets[0]._rungs}
    assert recorded[1] == {"a": 0.5, "b": 0.3, "c": 0.7}
    assert SchedulerStateCallback(FIFOScheduler()).get_state() is None


def test_rung_records_survive_a_real_tune_restore(local_ray, tmp_path):
    """Ray Tune keeps no scheduler state itself; the callback's state file brings it back."""
    from ray import tune

    def trainable(config):
        for epoch in range(1, 5):
            x = config["x"]
            tune.report({"epoch": epoch, "a": x * epoch, "b": (1 - x) * epoch, "final": epoch == 4})

    def build() -> tuple[MOASHAScheduler, tune.Tuner]:
        scheduler = MOASHAScheduler([("a", "max"), ("b", "min")], max_t=4, reduction_factor=2)
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([0.1, 0.5, 0.9, 0.3])},
            tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True),
            run_config=tune.RunConfig(
                name="restore",
                storage_path=str(tmp_path),
                callbacks=[SchedulerStateCallback(scheduler)],
                verbose=0,
            ),
        )
        return scheduler, tuner

    scheduler, tuner = build()
    results = tuner.fit()
    assert len(results) == 4 and scheduler.records[1]
    assert list(Path(tmp_path, "restore").glob("callback-states-*.pkl"))

    restored = tune.Tuner.restore(str(tmp_path / "restore"), trainable=trainable)
    restored_scheduler = restored._local_tuner._tune_config.scheduler
    assert restored_scheduler.records == {level: {} for level in scheduler.levels}  # tuner.pkl
    restored.fit()  # nothing left to run; Tune restores the experiment state, callbacks included
    assert restored_scheduler.records == scheduler.records
    assert restored_scheduler.stopped == scheduler.stopped


# -- stopped trials reach Optuna as PRUNED -----------------------------------------------------


def test_stopped_early():
    assert stopped_early({"epoch": 1, "final": False, "a": 0.5})
    assert not stopped_early({"epoch": 4, "final": True, "a": 0.5})
    assert not stopped_early({"epoch": 4, "a": 0.5})  # a trainable that does not say
    assert not stopped_early(None) and not stopped_early({})
    assert stopped_early({"final": np.bool_(False)})


class ProposedOptunaSearch(JournaledOptunaSearch):
    """``JournaledOptunaSearch`` with the change proposed for ``tune_jobs/_optuna.py``."""

    def on_trial_complete(self, trial_id, result=None, error=False):
        if not error and stopped_early(result):
            result = None  # low-fidelity values: PRUNED, not COMPLETE
        super().on_trial_complete(trial_id, result=result, error=error)


_OPTUNA_WIRED = getattr(_optuna, "stopped_early", None) is stopped_early


@pytest.mark.parametrize(
    "searcher_class",
    [
        ProposedOptunaSearch,
        pytest.param(
            JournaledOptunaSearch,
            marks=pytest.mark.skipif(
                not _OPTUNA_WIRED, reason="tune_jobs._optuna does not use stopped_early yet"
            ),
        ),
    ],
)
def test_stopped_trials_reach_optuna_as_pruned(searcher_class, tmp_path):
    journal = tmp_path / JOURNAL_FILE
    searcher = searcher_class(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric=["a", "b"],
        mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        journal_path=str(journal),
    )
    for trial_id in ("stopped", "complete", "failed"):
        assert "x" in searcher.suggest(trial_id)
    searcher.on_trial_complete("stopped", {"epoch": 1, "final": False, "a": 0.3, "b": 0.2})
    searcher.on_trial_complete("complete", {"epoch": 4, "final": True, "a": 0.9, "b": 0.1})
    searcher.on_trial_complete("failed", error=True)

    states = {
        trial_id: searcher._ot_study.trials[ot_trial.number]
        for trial_id, ot_trial in searcher._ot_trials.items()
    }
    assert states["stopped"].state == optuna.trial.TrialState.PRUNED
    assert states["stopped"].values is None
    assert states["complete"].state == optuna.trial.TrialState.COMPLETE
    assert states["complete"].values == [0.9, 0.1]
    assert states["failed"].state == optuna.trial.TrialState.FAIL
    mirrored = open_journal_study(journal).trials
    assert sorted(t.state.name for t in mirrored) == ["COMPLETE", "FAIL", "PRUNED"]


# -- a real search with moasha -----------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(runner, "make_scheduler") or not _OPTUNA_WIRED,
    reason="the runner does not build schedulers yet (tune_jobs.schedulers.make_scheduler)",
)
def test_moasha_search_stops_trials_and_leaves_no_optuna_trial_running(
    local_ray, tmp_path, tiny_moasha
):
    spec = load_job("quickstart", {**tiny_moasha, "storage": str(tmp_path), "name": "moasha"})
    outcome = runner.launch(spec)
    table = outcome.trials
    assert len(table) == 6
    assert outcome.finished  # stopped trials have ended too: nothing is left to resume
    stopped = table[~table["final"].astype(bool)]
    assert len(stopped) >= 1, table
    assert (stopped["epochs_done"] < 4).all() and set(stopped["epochs_done"]) <= {1, 2}
    assert (table[table["final"].astype(bool)]["epochs_done"] == 4).all()
    assert (table["stopped"] == ~table["final"].astype(bool)).all()

    experiment = Path(outcome.experiment_path)
    [state_file] = sorted(experiment.glob("searcher-state-*.pkl"))[-1:]
    with state_file.open("rb") as handle:
        study = pickle.load(handle)["_ot_study"]
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    assert counts == {"COMPLETE": len(table) - len(stopped), "PRUNED": len(stopped)}
    journal = open_journal_study(experiment / JOURNAL_FILE).trials
    assert sorted(t.state.name for t in journal) == sorted(t.state.name for t in study.trials)
    assert list(experiment.glob("callback-states-*.pkl"))  # the rung records, for resume

    status = runner.status(outcome.experiment_path)
    completed = len(table) - len(stopped)
    assert status.counts == {"completed": completed, "stopped early": len(stopped)}
    assert status.outcome.finished


@pytest.mark.skipif(
    not hasattr(runner, "make_scheduler") or not _OPTUNA_WIRED,
    reason="the runner does not build schedulers yet (tune_jobs.schedulers.make_scheduler)",
)
def test_asha_search_takes_metric_and_mode_from_the_scheduler_only(
    local_ray, tmp_path, tiny_moasha
):
    overrides = {**tiny_moasha, "scheduler.kind": "asha", "scheduler.metric": "adv_acc"}
    spec = load_job("quickstart", {**overrides, "storage": str(tmp_path), "name": "asha"})
    inspected = spec.with_overrides({"name": "inspected"})  # building a Tuner writes its dir
    tuner = runner.build_tuner(inspected, runner.load_search_dataset(inspected))
    config = tuner._local_tuner._tune_config
    assert config.metric is None and config.mode is None  # the study stays multi-objective
    assert (config.scheduler._metric, config.scheduler._mode) == ("adv_acc", "max")

    outcome = runner.launch(spec)
    table = outcome.trials
    assert len(table) == 6 and outcome.finished
    experiment = Path(outcome.experiment_path)
    with sorted(experiment.glob("searcher-state-*.pkl"))[-1].open("rb") as handle:
        study = pickle.load(handle)["_ot_study"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    states = sorted(t.state.name for t in study.trials)
    stopped = int((~table["final"].astype(bool)).sum())
    assert states == ["COMPLETE"] * (6 - stopped) + ["PRUNED"] * stopped
