"""The analysis package: fronts, hypervolume, loading experiment directories, reports, export.

Most tests build small fake experiment directories in the files Ray Tune writes (``job.yaml``,
``params.json``, ``result.json`` lines, ``error.txt``, ``experiment_state-*.json``); the report
and export tests also use one real tiny search, launched once per session.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from analysis import (
    compare,
    export_front,
    format_front_table,
    hypervolume,
    hypervolume_over_time,
    hypervolume_over_trials,
    load_experiment,
    load_model,
    non_dominated,
    non_dominated_mask,
    require_results,
    write_report,
)
from analysis.experiment import curriculum_summary, error_line, short_label
from analysis.export import evaluate_exported
from analysis.hypervolume import default_reference
from analysis.pareto import front_steps
from analysis.plots import plot_front, plot_hypervolume, plot_profiles, plot_tradeoffs
from analysis.report import default_report_dir
from trainables.config import TrialConfig
from trainables.errors import UserError
from trainables.models import export_model
from trainables.trial import Trial
from tune_jobs.spec import load_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = {
    "search.trials": 3,
    "search.max_concurrent": 2,
    "training.epochs": 1,
    "training.train_pgd_steps": 1,
    "dataset.train_size": 128,
    "dataset.test_size": 60,
    "evaluation.subset": 20,
    "evaluation.pgd_steps": 1,
    "model_width": 0.25,
}
CURRICULUM = {
    "curriculum": "custom",
    "method": "pgd",
    "theta_schedule": "constant",
    "theta_max": 90.0,
    "eps_schedule": "constant",
    "eps_max": 0.1,
}


# ---------------------------------------------------------------------------------------------
# Fake experiment directories, as Ray Tune writes them


def _write_job(directory: Path, name: str, overrides: dict | None = None) -> None:
    spec = load_job(
        "quickstart", {"name": name, "storage": str(directory.parent), **(overrides or {})}
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "job.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))


def _config(name: str = "fake", **changes) -> dict:
    spec = load_job("quickstart", {"name": name, "storage": "/tmp"})
    return {**spec.trial_config(), **CURRICULUM, **changes}


def _result(trial_id: str, epoch: int, final: bool, t: float, **metrics) -> dict:
    return {
        "epoch": epoch,
        "final": final,
        "loss": 1.0,
        **metrics,
        "timestamp": int(t),
        "time_total_s": 10.0 * epoch,
        "time_this_iter_s": 10.0,
        "training_iteration": epoch,
        "trial_id": trial_id,
        "date": time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(t)),
        "done": False,
    }


def _write_trial(
    experiment: Path,
    trial_id: str,
    config: dict | None = None,
    results: list[dict] | None = None,
    error: str | None = None,
    partial_line: str | None = None,
) -> Path:
    trial_dir = experiment / f"trial_{trial_id}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "params.json").write_text(json.dumps(config or _config()))
    if results is not None:
        lines = [json.dumps({**r, "config": config or {}}) for r in results]
        text = "\n".join(lines) + ("\n" if lines else "")
        (trial_dir / "result.json").write_text(text + (partial_line or ""))
    if error is not None:
        (trial_dir / "error.txt").write_text(error)
    return trial_dir


def _completed(experiment: Path, trial_id: str, spatial: float, adv: float, t: float, **cfg):
    config = _config(**cfg)
    results = [
        _result(trial_id, 1, False, t - 10, spatial_acc=spatial / 2, adv_acc=adv / 2),
        _result(
            trial_id,
            2,
            True,
            t,
            clean_acc=0.9,
            spatial_acc=spatial,
            adv_acc=adv,
            combined_acc=0.1,
            **{"spatial_acc@0": 0.9, "spatial_acc@90": spatial, "spatial_acc@180": spatial / 2},
            **{"adv_acc@0": 0.9, "adv_acc@0.15": adv, "adv_acc@0.3": adv / 2},
        ),
    ]
    return _write_trial(experiment, trial_id, config, results)


TRACEBACK = (
    "Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
    "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=127.0.0.1)\n"
    '  File "/x/trainables/training.py", line 164, in train_epoch\n'
    "    raise TrainingDiverged(\n"
    "           ^^^^^^^^^^^^^^^^\n"
    "trainables.training.TrainingDiverged: training loss became non-finite (nan) at lr 9.9\n"
)


def _write_state(experiment: Path, statuses: dict[str, str]) -> None:
    """A Ray Tune ``experiment_state-*.json`` snapshot giving each trial id its status."""

    def entry(trial_id: str, status: str) -> list[str]:
        meta = {"trial_id": trial_id, "status": status, "relative_logdir": f"trial_{trial_id}"}
        meta["config"] = _config()
        return [json.dumps(meta), json.dumps({"start_time": 900.0, "last_result": {}})]

    state = {"trial_data": [entry(trial_id, status) for trial_id, status in statuses.items()]}
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))


@pytest.fixture
def mixed_experiment(tmp_path) -> Path:
    """Three completed trials, one failed, one unfinished (with a half-written last line) whose
    subset metrics would dominate everything, and one started without results."""
    path = tmp_path / "mixed"
    _write_job(path, "mixed")
    _completed(path, "aaa", spatial=0.6, adv=0.2, t=1000.0)
    _completed(path, "bbb", spatial=0.3, adv=0.5, t=1100.0, theta_max=30.0, eps_max=0.3)
    _completed(path, "ccc", spatial=0.2, adv=0.1, t=1050.0, method="trades")
    _write_trial(path, "ddd", results=[], error=TRACEBACK)
    _write_trial(
        path,
        "eee",
        results=[_result("eee", 1, False, 990.0, spatial_acc=0.99, adv_acc=0.99)],
        partial_line='{"epoch": 2, "final": tr',
    )
    _write_trial(path, "fff")
    return path


# ---------------------------------------------------------------------------------------------
# Pareto fronts


def test_non_dominated_keeps_ties_and_drops_dominated():
    points = np.array([[1, 3], [2, 2], [3, 1], [2, 2], [1, 1], [3, 0.5], [1, 3]])
    mask = non_dominated_mask(points, ["max", "max"])
    # duplicates (1,3) x2 and (2,2) x2 are all kept; (1,1) and (3,0.5) are dominated
    assert mask.tolist() == [True, True, True, True, False, False, True]
    equal_in_one = np.array([[1.0, 2.0], [1.0, 3.0]])  # same x, the second is better in y
    assert non_dominated_mask(equal_in_one, ["max", "max"]).tolist() == [False, True]


def test_non_dominated_with_mixed_modes_and_missing_values():
    frame = pd.DataFrame({"acc": [0.9, 0.8, 0.9, np.nan], "loss": [0.5, 0.1, 0.7, 0.0]})
    front = non_dominated(frame, [("acc", "max"), ("loss", "min")])
    assert front.index.tolist() == [0, 1]  # row 2 is beaten by row 0; row 3 misses acc


def test_front_steps_draw_the_attainment_staircase():
    steps = front_steps(np.array([[3, 1], [1, 3], [2, 2], [1, 1]]), ["max", "max"])
    assert steps.tolist() == [[1, 3], [1, 2], [2, 2], [2, 1], [3, 1]]


# ---------------------------------------------------------------------------------------------
# Hypervolume


def test_hypervolume_two_objectives_hand_checked():
    points = [(1, 3), (2, 2), (3, 1)]
    assert hypervolume(points, (0, 0)) == pytest.approx(6.0)
    assert hypervolume(points) == pytest.approx(6.0)  # default reference: 0 for max objectives
    assert hypervolume(points + [(1, 1), (2, 2)], (0, 0)) == pytest.approx(6.0)  # no new area
    assert hypervolume([], (0, 0), ["max", "max"]) == 0.0


def test_hypervolume_three_objectives_hand_checked():
    # three 2x1x1 boxes: 3 * 2 - 3 pairwise unit cubes + 1 triple cube = 4
    assert hypervolume([(2, 1, 1), (1, 2, 1), (1, 1, 2)], (0, 0, 0)) == pytest.approx(4.0)
    # a 1x2x3 box plus a 3x1x1 box overlapping in a 1x1x1 cube: 6 + 3 - 1 = 8
    assert hypervolume([(1, 2, 3), (3, 1, 1)], (0, 0, 0)) == pytest.approx(8.0)


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_counts_the_dominated_grid_cells(dims):
    rng = np.random.default_rng(dims)
    for _ in range(4):
        points = rng.integers(1, 5, size=(6, dims))
        cells = sum(
            bool((points >= np.array(cell) + 1).all(axis=1).any())
            for cell in itertools.product(range(5), repeat=dims)
        )
        assert hypervolume(points, np.zeros(dims)) == pytest.approx(cells)


def test_hypervolume_mixed_modes():
    # maximise x, minimise y, reference (0, 4): boxes [0,1]x[3,4] (inside) and [0,2]x[2,4]
    assert hypervolume([(1, 3), (2, 2)], (0, 4), ["max", "min"]) == pytest.approx(4.0)
    flipped = hypervolume([(1, -3), (2, -2)], (0, -4), ["max", "max"])
    assert hypervolume([(1, 3), (2, 2)], (0, 4), ["max", "min"]) == pytest.approx(flipped)
    # default reference of a min objective: its largest observed value
    assert default_reference(np.array([[1, 3], [2, 2]]), ["max", "min"]).tolist() == [0, 3]


def test_points_beyond_the_reference_are_ignored():
    ref = (1.0, 1.0)
    assert hypervolume([(3, 3), (0.5, 5), (4, 1)], ref) == pytest.approx(4.0)
    assert hypervolume([(0.5, 5)], ref) == 0.0


def test_hypervolume_rejects_bad_input():
    with pytest.raises(ValueError):
        hypervolume([(1, np.nan)], (0, 0))
    with pytest.raises(ValueError):
        hypervolume([(1, 2)], (0, 0, 0))
    with pytest.raises(ValueError):
        hypervolume([(1, 2)], (0, 0), ["max", "up"])


def test_hypervolume_over_trials_is_non_decreasing_in_completion_order():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(12)],
            "a": rng.random(12),
            "b": rng.random(12),
            "final": [True] * 10 + [False, True],
            "status": ["TERMINATED"] * 11 + ["ERROR"],
            "completed_at": rng.permutation(12).astype(float) + 100.0,
            "started_at": 50.0,
        }
    )
    objectives = [("a", "max"), ("b", "max")]
    series = hypervolume_over_trials(frame, objectives)
    assert len(series) == 10 and series.index.tolist() == list(range(1, 11))
    assert (np.diff(series.to_numpy()) >= -1e-12).all()
    done = frame.iloc[:10]
    assert series.iloc[-1] == pytest.approx(hypervolume(done[["a", "b"]].to_numpy()))
    first = done.sort_values("completed_at").iloc[0]
    assert series.iloc[0] == pytest.approx(first["a"] * first["b"])
    assert series.attrs["trial_ids"][0] == first["trial_id"]
    over_time = hypervolume_over_time(frame, objectives)
    assert list(over_time.columns) == ["time_s", "hypervolume", "trial_id"]
    assert (np.diff(over_time["time_s"]) >= 0).all() and over_time["time_s"].min() >= 50.0
    np.testing.assert_allclose(over_time["hypervolume"], series.to_numpy())


# ---------------------------------------------------------------------------------------------
# Loading experiment directories


def test_loading_gives_statuses_and_keeps_failed_and_unfinished_off_the_front(mixed_experiment):
    experiment = load_experiment(mixed_experiment)
    trials = experiment.trials.set_index("trial_id")
    assert trials["status"].to_dict() == {
        "aaa": "TERMINATED",
        "bbb": "TERMINATED",
        "ccc": "TERMINATED",
        "ddd": "ERROR",
        "eee": "UNFINISHED",
        "fff": "UNFINISHED",
    }
    assert trials.loc["ddd", "error"] == (
        "trainables.training.TrainingDiverged: training loss became non-finite (nan) at lr 9.9"
    )
    assert trials.loc["eee", "epochs_done"] == 1 and not trials.loc["eee", "final"]
    assert trials.loc["fff", "epochs_done"] == 0
    assert trials.loc["aaa", "curriculum"] == "θ90 ε0.1"
    assert trials.loc["bbb", "train_theta"] == 30.0 and trials.loc["bbb", "train_eps"] == 0.3
    assert trials.loc["aaa", "config/theta_max"] == 90.0
    assert set(experiment.completed["trial_id"]) == {"aaa", "bbb", "ccc"}
    assert set(experiment.front()["trial_id"]) == {"aaa", "bbb"}
    assert len(experiment.history) == 2 * 3 + 1  # the half-written line is skipped
    assert experiment.trials["checkpoint_path"].isna().all()
    assert experiment.trials["stopped"].dtype == bool
    assert not experiment.trials["stopped"].any()  # no state snapshot: nothing counts as stopped


def test_the_ray_state_file_gives_statuses_and_pending_trials(mixed_experiment):
    _write_state(mixed_experiment, {"aaa": "TERMINATED", "eee": "RUNNING", "ggg": "PENDING"})
    trials = load_experiment(mixed_experiment).trials.set_index("trial_id")
    assert trials.loc["eee", "status"] == "RUNNING"
    assert trials.loc["ggg", "status"] == "PENDING" and trials.loc["ggg", "epochs_done"] == 0
    assert trials.loc["aaa", "started_at"] == 900.0
    assert trials.loc["ddd", "status"] == "ERROR"  # not in the snapshot: derived from files


@pytest.fixture
def stopped_experiment(tmp_path) -> Path:
    """A search with an early-stopping scheduler, killed while it ran: two completed trials, two
    the scheduler stopped (TERMINATED, last result not final), two interrupted (RUNNING and
    PENDING with non-final results), one failed."""
    path = tmp_path / "moasha"
    _write_job(path, "moasha", {"scheduler.kind": "moasha"})
    _completed(path, "aaa", spatial=0.6, adv=0.2, t=1000.0)
    _completed(path, "bbb", spatial=0.3, adv=0.5, t=1100.0, theta_max=30.0, eps_max=0.3)
    _write_trial(
        path, "sss", results=[_result("sss", 1, False, 990.0, spatial_acc=0.2, adv_acc=0.1)]
    )
    _write_trial(
        path,
        "ttt",
        results=[
            _result("ttt", 1, False, 980.0, spatial_acc=0.2, adv_acc=0.2),
            _result("ttt", 2, False, 995.0, spatial_acc=0.25, adv_acc=0.15),
        ],
    )
    _write_trial(
        path, "rrr", results=[_result("rrr", 1, False, 1200.0, spatial_acc=0.4, adv_acc=0.3)]
    )
    _write_trial(
        path, "ppp", results=[_result("ppp", 1, False, 1210.0, spatial_acc=0.1, adv_acc=0.4)]
    )
    _write_trial(
        path,
        "eee",
        results=[_result("eee", 1, False, 1000.0, spatial_acc=0.1, adv_acc=0.1)],
        error=TRACEBACK,
    )
    _write_state(
        path,
        {
            "aaa": "TERMINATED",
            "bbb": "TERMINATED",
            "sss": "TERMINATED",
            "ttt": "TERMINATED",
            "rrr": "RUNNING",
            "ppp": "PENDING",
            "eee": "ERROR",
        },
    )
    return path


# the stopped_experiment fixture's trials: stopped early by the scheduler or not
STOPPED_IN_FIXTURE = {
    "aaa": False,
    "bbb": False,
    "sss": True,
    "ttt": True,
    "rrr": False,
    "ppp": False,
    "eee": False,
}


def test_trials_stopped_by_the_scheduler_are_told_from_interrupted_ones(stopped_experiment):
    trials = load_experiment(stopped_experiment).trials.set_index("trial_id")
    assert trials["stopped"].dtype == bool
    assert trials["stopped"].to_dict() == STOPPED_IN_FIXTURE
    assert trials.loc["ttt", "status"] == "TERMINATED" and trials.loc["ttt", "epochs_done"] == 2
    assert trials.loc["ttt", "spatial_acc"] == 0.25  # the values at the stopping epoch
    without_state = stopped_experiment / "experiment_state-2026-01-01_00-00-00.json"
    without_state.unlink()
    assert not load_experiment(stopped_experiment).trials["stopped"].any()


def test_a_trial_cut_short_in_a_search_without_a_scheduler_is_unfinished(tmp_path):
    """Ray's snapshot says TERMINATED and the last line of result.json (the final one) is
    damaged: without a scheduler nothing stops a trial early, so it is unfinished."""
    path = tmp_path / "plain"
    _write_job(path, "plain")  # quickstart: scheduler.kind none
    _completed(path, "aaa", spatial=0.6, adv=0.2, t=1000.0)
    _write_trial(
        path,
        "bbb",
        results=[_result("bbb", 1, False, 990.0, spatial_acc=0.2, adv_acc=0.1)],
        partial_line='{"epoch": 2, "final": tr',
    )
    _write_state(path, {"aaa": "TERMINATED", "bbb": "TERMINATED"})
    experiment = load_experiment(path)
    assert experiment.trials["stopped"].tolist() == [False, False]
    table = compare(experiment)
    assert table.loc[0, "trials_stopped"] == 0 and table.loc[0, "trials_unfinished"] == 1
    # an older job.yaml without a scheduler section: no scheduler either
    saved = yaml.safe_load((path / "job.yaml").read_text())
    del saved["scheduler"]
    (path / "job.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert not load_experiment(path).trials["stopped"].any()


def test_a_terminated_trial_with_an_error_file_is_not_stopped(tmp_path):
    path = tmp_path / "retried"
    _write_job(path, "retried", {"scheduler.kind": "moasha"})
    _write_trial(
        path,
        "aaa",
        results=[_result("aaa", 1, False, 990.0, spatial_acc=0.2, adv_acc=0.1)],
        error=TRACEBACK,
    )
    _write_trial(path, "bbb", results=[])
    _write_state(path, {"aaa": "TERMINATED", "bbb": "TERMINATED"})
    assert load_experiment(path).trials["stopped"].tolist() == [False, False]


def test_the_report_of_an_interrupted_search_says_unfinished_not_ray_tunes_running(
    mixed_experiment, tmp_path
):
    # Ray Tune's last snapshot of an interrupted search still says RUNNING
    _write_state(mixed_experiment, {"aaa": "TERMINATED", "eee": "RUNNING", "fff": "PENDING"})
    text = write_report([mixed_experiment], tmp_path / "report").report.read_text()
    assert "- trials: 3 completed, 1 failed, 2 unfinished, of 6 started\n" in text
    assert "RUNNING" not in text and "PENDING" not in text


def test_the_report_counts_stopped_trials_apart(stopped_experiment, tmp_path, monkeypatch):
    table = compare(stopped_experiment)
    counts = table.loc[0, ["trials_completed", "trials_stopped", "trials_failed"]].tolist()
    assert counts == [2, 2, 1] and table.loc[0, "trials_unfinished"] == 2
    import analysis.plots

    legends = {}
    save = analysis.plots._save

    def recording_save(fig, path):
        legend = fig.axes[0].get_legend()
        legends[Path(path).name] = [t.get_text() for t in legend.get_texts()] if legend else []
        return save(fig, path)

    monkeypatch.setattr(analysis.plots, "_save", recording_save)
    files = write_report([stopped_experiment], tmp_path / "report")
    text = files.report.read_text()
    assert (
        "- trials: 2 completed, 2 stopped early by the scheduler, 1 failed, 2 unfinished, "
        "of 7 started" in text
    )
    trials = pd.read_csv(files.trials_csv).set_index("trial_id")
    assert trials["stopped"].to_dict() == STOPPED_IN_FIXTURE
    front_legend = legends["front.png"]
    assert "stopped early (2; values at the stopping epoch, evaluation subset)" in front_legend
    assert "unfinished (2; latest epoch, evaluation subset)" in front_legend


def test_a_directory_without_job_yaml_is_not_an_experiment(tmp_path):
    with pytest.raises(UserError, match="is not a cusp-tune experiment"):
        load_experiment(tmp_path)
    with pytest.raises(UserError, match="is not a cusp-tune experiment"):
        load_experiment(tmp_path / "missing")


def test_a_file_is_not_an_experiment_and_the_message_says_so(tmp_path):
    path = tmp_path / "exp"
    _write_job(path, "exp")
    with pytest.raises(UserError, match=r"job.yaml is a file.*; pass its directory .*exp$"):
        load_experiment(path / "job.yaml")
    (path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="notes.txt is a file, not an experiment directory"):
        load_experiment(path / "notes.txt")


def test_analyze_without_results_raises_the_user_error(tmp_path):
    path = tmp_path / "empty"
    _write_job(path, "empty")
    _write_trial(path, "aaa")  # started, nothing reported yet
    experiment = load_experiment(path)
    assert experiment.trials["status"].tolist() == ["UNFINISHED"]
    with pytest.raises(UserError, match="no trial of .*empty has finished an epoch yet") as info:
        require_results(experiment)
    message = str(info.value)
    assert "still starting" in message and "interrupted before its first epoch" in message
    assert f"cusp-tune resume {experiment.path}" in message and "wait" not in message
    with pytest.raises(UserError, match="has finished an epoch yet"):
        write_report([path], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_analyze_of_trials_that_all_failed_before_an_epoch_says_why(tmp_path):
    path = tmp_path / "broken"
    _write_job(path, "broken")
    _write_trial(path, "aaa", results=[], error=TRACEBACK)
    _write_trial(path, "bbb", results=[], error=TRACEBACK)
    with pytest.raises(UserError) as info:
        write_report([path], tmp_path / "report")
    message = str(info.value)
    assert "2 failed first; trial aaa: " in message and "TrainingDiverged" in message
    assert "(and 1 more)" in message and "resume" not in message


def test_the_default_report_dir_of_a_file_uri_is_the_local_experiment(tmp_path):
    assert default_report_dir(f"file://{tmp_path}/exp") == tmp_path / "exp" / "report"


def test_analyze_of_several_experiments_needs_out(tmp_path, capsys):
    from tune_jobs.cli import main

    assert main(["analyze", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "comparing several experiments needs --out DIR" in capsys.readouterr().err


UNKNOWN_OBJECTIVES = (
    ([("spatial_accc", "max")], r"'spatial_accc'.*did you mean 'spatial_acc'\?.*adv_acc"),
    ([("foo", "max"), ("adv_acc", "max")], r"objective metric 'foo' is not in the trials'"),
    ([("adv_acc", "up")], r"mode must be 'max' or 'min', got 'up'"),
)


@pytest.mark.parametrize(("objectives", "message"), UNKNOWN_OBJECTIVES)
def test_an_unknown_objective_is_a_user_error_everywhere(
    mixed_experiment, tmp_path, objectives, message
):
    experiment = load_experiment(mixed_experiment)
    out = tmp_path / "out"
    out.mkdir()
    calls = {
        "front": lambda: experiment.front(objectives),
        "compare": lambda: compare([experiment], objectives=objectives),
        "write_report": lambda: write_report([experiment], out / "r", objectives),
        "plot_front": lambda: plot_front(experiment, out / "f.png", objectives),
        "plot_hypervolume": lambda: plot_hypervolume(
            experiment, out / "h.png", objectives=objectives
        ),
        "plot_profiles": lambda: plot_profiles(experiment, out / "p.png", objectives),
        "hypervolume_over_trials": lambda: hypervolume_over_trials(experiment.trials, objectives),
        "hypervolume_over_time": lambda: hypervolume_over_time(experiment.trials, objectives),
        "export_front": lambda: export_front(experiment, out / "m", objectives),
    }
    for name, call in calls.items():
        with pytest.raises(UserError, match=message):
            call()
        assert not list(out.iterdir()), name  # nothing written
    with pytest.raises(UserError, match="choose one of clean_acc, spatial_acc, adv_acc"):
        experiment.front([("foo", "max")])


def test_the_front_is_best_first_on_the_first_objective(mixed_experiment):
    experiment = load_experiment(mixed_experiment)
    assert experiment.front()["trial_id"].tolist() == ["aaa", "bbb"]  # spatial_acc 0.6, 0.3
    by_adv = experiment.front([("adv_acc", "max"), ("spatial_acc", "max")])
    assert by_adv["trial_id"].tolist() == ["bbb", "aaa"]


CURRICULUM_LABELS = (
    # adversarial_first holds θ at 0 until ε reaches its maximum (epoch 2), then squeezes the
    # exponential θ ramp (119.4 -> 142.5 over 3 epochs) into epoch 3: θ trains at 0, 0, 142.5
    (
        {
            "order": "adversarial_first",
            "theta_schedule": "exponential",
            "theta_max": 142.51050685487962,
            "theta_start_frac": 0.8379449074988039,
            "theta_ramp_end": 3,
            "eps_schedule": "step",
            "eps_max": None,
            "eps_stages": [[1, 0.008691032271193843], [2, 0.2217790738194905]],
        },
        "θ142.5 (from epoch 3) step ε0.008691→0.2218 adversarial_first",
    ),
    # a ramp with one value (start_frac 1) has no kind, a changing axis always names its kind
    (
        {"theta_schedule": "linear", "theta_start_frac": 1.0, "eps_schedule": "linear"},
        "θ90 linear ε0→0.1",
    ),
    ({"theta_warmup": 1, "eps_schedule": "cosine"}, "θ90 (from epoch 2) cosine ε0→0.1"),
    ({"eps_max": 8 / 255}, "θ90 ε8/255"),
    ({"theta_max": 0.0, "eps_max": 0.0}, "none"),
)


@pytest.mark.parametrize(("changes", "label"), CURRICULUM_LABELS)
def test_curriculum_labels_describe_the_values_trained_at(changes, label):
    config = {k: v for k, v in _config(**changes).items() if v is not None}
    assert curriculum_summary(config)["curriculum"] == label


def test_the_cusp_preset_label_leads_with_its_name():
    config = {k: v for k, v in _config().items() if k not in CURRICULUM or k == "method"}
    summary = curriculum_summary({**config, "curriculum": "cusp"})
    assert summary["curriculum"] == "cusp θ120→180 ε0.075→0.3" and summary["train_theta"] == 180


def test_labels():
    label = "cosine θ75.37→142.5 step ε0.2498 adversarial_first"
    assert short_label(label, "trades") == "cosine θ75.4→142 step ε0.25 ε first [trades]"
    assert error_line("") is None


def test_front_table_text(mixed_experiment):
    experiment = load_experiment(mixed_experiment)
    text = format_front_table(experiment.front(), experiment.objectives)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["trial_id", "method", "curriculum", "spatial_acc", "adv_acc"]
    assert lines[1].startswith("aaa") and "0.6000" in lines[1] and len(lines) == 3
    assert format_front_table(experiment.front().iloc[0:0], experiment.objectives) == (
        "(no completed trial yet)"
    )


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 1000


def test_plots_of_grid_studies_and_other_objectives(tmp_path):
    path = tmp_path / "grid"
    _write_job(path, "grid")
    for index, theta in enumerate((0.0, 60.0, 120.0, 180.0)):
        for model in ("stdcnn", "gcnn-c4"):
            adv = 0.5 - theta / 600 + (0.1 if model == "gcnn-c4" else 0.0)
            spatial = 0.2 + theta / 400
            _completed(
                path,
                f"{model[:4]}{index}",
                spatial,
                adv,
                1000.0 + index,
                theta_max=theta,
                model=model,
                model_width=0.25,
            )
    experiment = load_experiment(path)
    assert plot_tradeoffs(experiment, tmp_path / "tradeoffs.png").stat().st_size > 0
    three = [("spatial_acc", "max"), ("adv_acc", "max"), ("loss", "min")]
    for file, written in {
        "front3.png": plot_front(experiment, tmp_path / "front3.png", three),
        "front1.png": plot_front(experiment, tmp_path / "front1.png", [("adv_acc", "max")]),
        "hv.png": plot_hypervolume(experiment, tmp_path / "hv.png", x="time"),
        "profiles.png": plot_profiles(experiment, tmp_path / "profiles.png"),
    }.items():
        assert written == tmp_path / file and _is_png(written)


def _recorded_figures(monkeypatch) -> dict:
    """Plot file name -> its figure, recorded as the plots save them."""
    import analysis.plots

    figures = {}
    save = analysis.plots._save

    def recording_save(fig, path):
        figures[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(analysis.plots, "_save", recording_save)
    return figures


def test_plots_without_a_completed_trial_say_so(tmp_path, monkeypatch):
    path = tmp_path / "running"
    _write_job(path, "running")
    _write_trial(
        path, "aaa", results=[_result("aaa", 1, False, 990.0, spatial_acc=0.2, adv_acc=0.1)]
    )
    experiment = load_experiment(path)
    figures = _recorded_figures(monkeypatch)
    plot_hypervolume(experiment, tmp_path / "trials.png", "trials")
    plot_hypervolume(experiment, tmp_path / "time.png", "time")
    plot_front(experiment, tmp_path / "front.png")
    plot_front(experiment, tmp_path / "front1.png", [("adv_acc", "max")])
    for name, fig in figures.items():
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert "no completed trial yet" in texts, name
    for name in ("trials.png", "time.png", "front1.png"):  # nothing drawn: no scale either
        assert not len(figures[name].axes[0].get_xticks()), name


def _checkpointed_experiment(root: Path, ids: tuple[str, ...]) -> Path:
    """An experiment whose completed trials each have a checkpoint of an untrained stdcnn
    (no training: export only copies weights); trial i has spatial_acc 0.5 + i/10 and
    adv_acc 0.5 - i/10, so every trial is on the front."""
    from analysis.export import _rebuild

    path = root / "checkpointed"
    _write_job(path, "checkpointed")
    for index, trial_id in enumerate(ids):
        config = _config(model_width=0.25, epochs=1)
        metrics = {"spatial_acc": 0.5 + index / 10, "adv_acc": 0.5 - index / 10}
        trial_dir = _write_trial(
            path, trial_id, config, [_result(trial_id, 1, True, 1000.0 + index, **metrics)]
        )
        (trial_dir / "checkpoint_000000").mkdir()
        state = {"model": _rebuild(config).state_dict(), "config": config, "epoch": 1}
        torch.save(state, trial_dir / "checkpoint_000000" / "trial.pt")
    return path


def test_export_lists_the_front_best_first_like_the_front_table(tmp_path):
    path = _checkpointed_experiment(tmp_path, ("s1", "s2", "s3"))
    exported = export_front(path, tmp_path / "models")
    assert [p.name for p in exported] == ["s3", "s2", "s1"]  # spatial_acc 0.7, 0.6, 0.5
    index = pd.read_csv(exported.index, dtype={"trial_id": str})
    assert index["trial_id"].tolist() == ["s3", "s2", "s1"]
    table = format_front_table(load_experiment(path).front(), [("spatial_acc", "max")])
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["s3", "s2", "s1"]


def test_export_skips_a_damaged_checkpoint_and_says_so(tmp_path):
    path = _checkpointed_experiment(tmp_path, ("s1", "s2"))
    checkpoint = path / "trial_s2" / "checkpoint_000000" / "trial.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # cut short
    exported = export_front(path, tmp_path / "models")
    assert [p.name for p in exported] == ["s1"]
    (warning,) = exported.warnings
    assert warning.startswith("trial s2: its checkpoint ") and "is damaged" in warning
    assert warning.endswith("; skipped") and "re-export" not in warning


def test_loading_a_file_that_is_not_a_model_says_what_to_pass(tmp_path, capsys):
    from tune_jobs.cli import main

    path = _checkpointed_experiment(tmp_path, ("s1",))
    (directory,) = export_front(path, tmp_path / "models")
    expected = "is not a cusp-tune model; pass the exported model's directory or its model.pt"
    with pytest.raises(UserError, match=expected):
        load_model(directory / "config.json")
    assert main(["evaluate", str(directory / "config.json")]) == 2
    assert expected in capsys.readouterr().err
    model_file = directory / "model.pt"
    model_file.write_bytes(model_file.read_bytes()[:200])
    with pytest.raises(UserError, match="model.pt is damaged .*; export it again"):
        load_model(directory)


def test_cuda_without_a_gpu_names_the_cli_option_and_the_argument(tmp_path, monkeypatch):
    path = _checkpointed_experiment(tmp_path, ("s1",))
    (directory,) = export_front(path, tmp_path / "models")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    expected = r"use --device auto or cpu \(device='auto' or 'cpu' in Python\)"
    with pytest.raises(UserError, match=expected):
        load_model(directory, device="cuda")
    with pytest.raises(UserError, match=expected):
        evaluate_exported(directory, device="cuda")


def test_cli_analyze_of_a_file_is_exit_2(tmp_path, capsys):
    from tune_jobs.cli import main

    _write_job(tmp_path / "exp", "exp")
    assert main(["analyze", str(tmp_path / "exp" / "job.yaml")]) == 2
    err = capsys.readouterr().err
    assert "job.yaml is a file, not an experiment directory; pass its directory" in err


# ---------------------------------------------------------------------------------------------
# One real tiny search, then the report and the export


@pytest.fixture(scope="session")
def real_experiment(local_ray, tmp_path_factory) -> Path:
    from tune_jobs.runner import launch

    storage = tmp_path_factory.mktemp("analysis-search")
    outcome = launch(load_job("quickstart", {**TINY, "storage": str(storage), "name": "tiny"}))
    assert outcome.trials["final"].all()
    return Path(outcome.experiment_path)


def test_report_writes_every_file(real_experiment, tmp_path):
    out = tmp_path / "report"
    files = write_report([real_experiment], out)
    expected = {
        "report.md",
        "front.csv",
        "trials.csv",
        "front.png",
        "hypervolume_trials.png",
        "hypervolume_time.png",
        "profiles.png",
        "tradeoffs.png",
    }
    assert {p.name for p in out.iterdir()} == expected
    assert {p.name for p in files.files} == expected
    text = files.report.read_text()
    for name in expected - {"report.md", "front.csv", "trials.csv"}:
        assert f"]({name})" in text
        assert _is_png(out / name)
    trials = pd.read_csv(files.trials_csv)
    assert len(trials) == 3 and set(trials["experiment"]) == {"tiny"}
    front = pd.read_csv(files.front_csv)
    assert 1 <= len(front) <= 3
    for trial_id in front["trial_id"]:
        assert str(trial_id) in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no staging left


def test_comparing_two_experiments_uses_one_reference(real_experiment, mixed_experiment, tmp_path):
    table = compare([real_experiment, mixed_experiment])
    assert table["experiment"].tolist() == ["tiny", "mixed"]
    assert table["reference"].nunique() == 1 and table.attrs["reference"] == (0.0, 0.0)
    assert table["trials_failed"].tolist() == [0, 1]
    assert table.loc[1, "best_spatial_acc"] == 0.6
    assert table.loc[1, "hypervolume"] == pytest.approx(0.6 * 0.2 + 0.3 * (0.5 - 0.2))
    files = write_report([real_experiment, mixed_experiment], tmp_path / "both")
    text = files.report.read_text()
    assert "## Comparison" in text and text.count("| tiny |") == 1
    assert "| mixed |" in text and "TrainingDiverged" in text
    assert _is_png(files.plots["profiles"]) and _is_png(files.plots["profiles:mixed"])


def _restored_logits(checkpoint: Path, digits, x: torch.Tensor) -> torch.Tensor:
    state = torch.load(checkpoint / "trial.pt", map_location="cpu", weights_only=True)
    trial = Trial(TrialConfig.from_dict(state["config"]), digits, torch.device("cpu"))
    trial.restore(checkpoint)
    with torch.no_grad():
        return trial.model.eval()(x)


def test_export_then_load_predicts_like_the_trained_model(real_experiment, digits, tmp_path):
    experiment = load_experiment(real_experiment)
    exported = export_front(real_experiment, tmp_path / "models")
    assert not exported.warnings
    assert [p.name for p in exported] == experiment.front()["trial_id"].tolist()
    index = pd.read_csv(exported.index, dtype={"trial_id": str})
    assert index["trial_id"].tolist() == [p.name for p in exported]
    x = digits.test_images[:32].float() / 255
    for directory in exported:
        assert {p.name for p in directory.iterdir()} == {"model.pt", "config.json", "metrics.json"}
        model = load_model(directory)
        assert not model.training
        row = experiment.trials.set_index("trial_id").loc[directory.name]
        with torch.no_grad():
            logits = model(x)
        expected = _restored_logits(Path(row["checkpoint_path"]), digits, x)
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
        metrics = json.loads((directory / "metrics.json").read_text())
        assert metrics["spatial_acc"] == row["spatial_acc"]
        assert json.loads((directory / "config.json").read_text())["model"] == "stdcnn"
    again = evaluate_exported(exported.paths[0], profile="eps", device="cpu")
    saved = json.loads((exported.paths[0] / "metrics.json").read_text())
    for key in ("clean_acc", "spatial_acc", "adv_acc", "adv_acc@0.3"):
        assert again[key] == pytest.approx(saved[key], abs=2 / 60)  # the same 60 test images
    assert 0 <= again["worst_case_spatial_acc"] <= again["clean_acc"]
    assert not any(k.startswith("spatial_acc@") for k in again)


def _trained_trial_experiment(root: Path, digits, model: str, ids: tuple[str, ...]) -> Path:
    """An experiment directory with one 1-epoch trial trained without Ray per id; the last id
    gets no checkpoint."""
    path = root / model
    _write_job(path, model, {"model": model})
    for index, trial_id in enumerate(ids):
        config = TrialConfig.from_dict(
            {
                **CURRICULUM,
                "model": model,
                "model_width": 0.25,
                "epochs": 1,
                "batch_size": 32,
                "train_size": 64,
                "test_size": 16,
                "eval_subset": 8,
                "train_pgd_steps": 1,
                "eval_pgd_steps": 1,
                "final_profiles": False,
                "seed": index,
                "device": "cpu",
            }
        )
        trial = Trial(config, digits)
        metrics = {k: v for k, v in trial.run_epoch().items() if k not in ("epoch", "final")}
        metrics.update(spatial_acc=0.5 + index * 0.1, adv_acc=0.5 - index * 0.1)
        trial_dir = _write_trial(
            path,
            trial_id,
            config.to_dict(),
            [_result(trial_id, 1, True, 1000.0 + index, **metrics)],
        )
        if trial_id != ids[-1]:
            (trial_dir / "checkpoint_000000").mkdir()
            trial.save(trial_dir / "checkpoint_000000")
    return path


def test_export_of_an_equivariant_model_loads_as_plain_torch(digits, tmp_path):
    path = _trained_trial_experiment(tmp_path, digits, "gcnn-c4", ("g1", "g2"))
    exported = export_front(path, tmp_path / "models")
    assert [p.name for p in exported] == ["g1"]
    assert len(exported.warnings) == 1 and "g2" in exported.warnings[0]
    model = load_model(exported.paths[0])
    assert not any(type(m).__module__.startswith("e2cnn") for m in model.modules())
    x = digits.test_images[:16].float() / 255
    checkpoint = path / "trial_g1" / "checkpoint_000000"
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), _restored_logits(checkpoint, digits, x), atol=1e-5, rtol=0
        )
        state = torch.load(checkpoint / "trial.pt", weights_only=True)
        trial = Trial(TrialConfig.from_dict(state["config"]), digits, torch.device("cpu"))
        trial.restore(checkpoint)
        torch.testing.assert_close(model(x), export_model(trial.model)(x), atol=1e-5, rtol=0)


def test_export_into_a_non_empty_directory_is_a_user_error(digits, tmp_path):
    path = _trained_trial_experiment(tmp_path, digits, "stdcnn", ("s1", "s2"))
    out = tmp_path / "models"
    (out / "other").mkdir(parents=True)
    (out / "other" / "model.pt").write_bytes(b"another experiment's model")
    with pytest.raises(UserError, match="exists and is not empty; export into a new directory"):
        export_front(path, out)
    assert [p.name for p in out.iterdir()] == ["other"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".models")]
    (out / "other" / "model.pt").unlink()
    (out / "other").rmdir()
    assert [p.name for p in export_front(path, out)] == ["s1"]  # an empty directory is fine
    with pytest.raises(UserError, match="exists and is not empty"):
        export_front(path, out)  # nor twice into the same one


def test_export_without_any_checkpoint_is_a_user_error(mixed_experiment, tmp_path):
    with pytest.raises(UserError, match="could be exported"):
        export_front(mixed_experiment, tmp_path / "models")
    assert not (tmp_path / "models").exists()
    with pytest.raises(UserError, match="has no model.pt"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nothing")


def test_cli_analyze_export_evaluate_on_a_real_experiment(real_experiment, tmp_path, capsys):
    from tune_jobs.cli import main

    report = tmp_path / "report"
    assert main(["analyze", str(real_experiment), "--out", str(report)]) == 0
    for name in ("front.csv", "trials.csv", "report.md", "front.png", "tradeoffs.png"):
        assert (report / name).stat().st_size > 0, name
    assert "Pareto front" in capsys.readouterr().out

    exported = tmp_path / "models"
    assert main(["export", str(real_experiment), "--out", str(exported)]) == 0
    model_dirs = [p for p in exported.iterdir() if p.is_dir()]
    assert model_dirs and (exported / "index.csv").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(model_dirs[0]), "--profile", "rotation", "--test-size", "30"]) == 0
    out = capsys.readouterr().out
    assert "clean_acc" in out and "spatial_acc@180" in out and "worst_case_spatial_acc" in out


def test_cli_evaluate_takes_this_machines_data_dir_and_names_its_own_options(
    real_experiment, tmp_path, capsys, monkeypatch
):
    import trainables.datasets
    from tune_jobs.cli import main

    exported = tmp_path / "models"
    assert main(["export", str(real_experiment), "--out", str(exported)]) == 0
    model_dir = next(p for p in exported.iterdir() if p.is_dir())
    roots = []
    real_load = trainables.datasets.load_dataset

    def load_dataset(name, data_dir=None, **kwargs):
        roots.append(data_dir)
        return real_load(name, data_dir, **kwargs)

    monkeypatch.setattr(trainables.datasets, "load_dataset", load_dataset)
    args = ["evaluate", str(model_dir), "--profile", "none", "--test-size", "20"]
    assert main([*args, "--data-dir", str(tmp_path / "here")]) == 0
    assert roots == [str(tmp_path / "here")]
    capsys.readouterr()
    assert main(["evaluate", str(model_dir), "--test-size", "100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test_size 100000 (--test-size) is more than the" in err and "\n" not in err

    def missing(name, data_dir=None, **kwargs):
        raise UserError(f"{name} not found in {data_dir}/MNIST/raw")

    monkeypatch.setattr(trainables.datasets, "load_dataset", missing)
    assert main(["evaluate", str(model_dir)]) == 2
    assert "give where the data is on this machine with --data-dir" in capsys.readouterr().err


def test_cli_analyze_on_an_empty_experiment_is_exit_2(tmp_path, capsys):
    from tune_jobs.cli import main

    _write_job(tmp_path / "empty", "empty")
    assert main(["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no trial" in err and "\n" not in err.strip()
    assert not (tmp_path / "r").exists()


def test_cli_analyze_lists_failed_trials_with_their_reason(mixed_experiment, tmp_path, capsys):
    # launch's summary says "cusp-tune analyze lists them"
    from tune_jobs.cli import main

    assert main(["analyze", str(mixed_experiment), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "1 trial(s) failed:\n  ddd: trainables.training.TrainingDiverged: training loss" in out
