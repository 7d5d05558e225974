"""The analysis and ``status`` at the scale of a real search (100+ trials).

What grows with the number of trials is checked by counting work (file reads, calls of the
expensive step), never by timing: the 3-objective hypervolume sweep against a brute force on
random points, the running hypervolume against the hypervolume of each prefix, ``analyze``
reading each trial's files once, ``status`` reading no ``result.json``; and what a user reads
at that scale: the printed front, the front plot's labels and legend, the profile plot's
choice of models, ``trials.csv``.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import analysis.plots as plots
from analysis import (
    format_front_table,
    hypervolume,
    hypervolume_over_trials,
    load_experiment,
    write_report,
)
from analysis.plots import MAX_LABELS, plot_front, plot_profiles, spread
from analysis.report import MAX_TABLE_ROWS
from tune_jobs.spec import load_job

HV = sys.modules["analysis.hypervolume"]  # ``analysis.hypervolume`` is also the function
CURRICULUM = {
    "curriculum": "custom",
    "method": "pgd",
    "theta_schedule": "constant",
    "theta_max": 90.0,
    "eps_schedule": "constant",
    "eps_max": 0.1,
}


# ---------------------------------------------------------------------------------------------
# Hypervolume


def _brute_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Maximisation hypervolume by the grid of distinct coordinates: a cell counts when one
    point dominates its upper corner."""
    points = points[(points > reference).all(axis=1)]
    if not len(points):
        return 0.0
    grids = [
        np.unique(np.concatenate([[reference[j]], points[:, j]])) for j in range(len(reference))
    ]
    total = 0.0
    for cell in itertools.product(*(range(len(g) - 1) for g in grids)):
        low = np.array([g[c] for g, c in zip(grids, cell, strict=True)])
        high = np.array([g[c + 1] for g, c in zip(grids, cell, strict=True)])
        if (points >= high).all(axis=1).any():
            total += float(np.prod(high - low))
    return total


def _random_points(rng: np.random.Generator, n: int, dims: int, grid: bool) -> np.ndarray:
    """Random points; on a small integer grid (ties, duplicates) when ``grid``."""
    if grid:
        return rng.integers(0, 5, size=(n, dims)).astype(float)
    return rng.random((n, dims))


@pytest.mark.parametrize("dims", [3, 4, 5])
def test_hypervolume_matches_brute_force_on_random_points(dims):
    rng = np.random.default_rng(dims)
    for case in range(60 if dims == 3 else 25):
        n = int(rng.integers(1, 16 if dims < 5 else 9))
        points = _random_points(rng, n, dims, grid=case % 2 == 0)
        reference = np.zeros(dims) if case % 3 else -0.3 * rng.random(dims)
        expected = _brute_hypervolume(points, reference)
        assert hypervolume(points, reference) == pytest.approx(expected, abs=1e-12)


def test_hypervolume_with_min_objectives_matches_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(30):
        points = _random_points(rng, 12, 3, grid=True)
        modes = ["max", "min", "max"]
        reference = np.array([0.0, 5.0, -1.0])
        flipped = points * np.array([1.0, -1.0, 1.0])
        expected = _brute_hypervolume(flipped, reference * np.array([1.0, -1.0, 1.0]))
        assert hypervolume(points, reference, modes) == pytest.approx(expected, abs=1e-12)


def test_three_objective_hypervolume_is_a_sweep_not_slices(monkeypatch):
    """The 3-objective case sweeps once (O(n log n)); slicing it into one 2-objective problem
    per point, each with its own non-dominated filter, cost O(n^2) to O(n^3) and made
    `analyze` of a 480-trial 3-objective search take 69 s instead of 7."""
    calls = []

    def counting(points, modes):
        calls.append(len(points))
        return original(points, modes)

    original = HV.non_dominated_mask
    monkeypatch.setattr(HV, "non_dominated_mask", counting)
    rng = np.random.default_rng(0)
    points = np.abs(rng.normal(size=(300, 3)))
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # a front: nothing dominated
    hypervolume(points, np.zeros(3))
    assert calls == []


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_running_hypervolume_equals_each_prefix(dims):
    rng = np.random.default_rng(10 + dims)
    for case in range(12):
        n = int(rng.integers(1, 40))
        points = _random_points(rng, n, dims, grid=case % 2 == 0)
        if case % 4 == 1:
            points[rng.random(n) < 0.3, 0] = -1.0  # outside the reference box: add nothing
        columns = [f"m{j}" for j in range(dims)]
        modes = ["max"] * dims if case % 3 else ["max", "min", *["max"] * (dims - 2)]
        frame = pd.DataFrame(points, columns=columns).assign(final=True, status="TERMINATED")
        reference = np.where(np.array(modes) == "min", 9.0, 0.0)
        series = hypervolume_over_trials(
            frame, list(zip(columns, modes, strict=True)), order_by="index", reference=reference
        )
        expected = [hypervolume(points[: i + 1], reference, modes) for i in range(n)]
        np.testing.assert_allclose(series.to_numpy(), expected, rtol=1e-12, atol=1e-12)
        assert (np.diff(series.to_numpy()) >= 0).all()


def test_running_hypervolume_skips_trials_the_front_already_covers(monkeypatch):
    """A trial the front dominates adds nothing and costs no hypervolume computation (it used
    to measure the whole front again after every trial)."""
    calls = []
    original = HV._hv_min

    def counting(points, ref):
        calls.append(len(points))
        return original(points, ref)

    monkeypatch.setattr(HV, "_hv_min", counting)
    rng = np.random.default_rng(3)
    points = np.vstack([[1.0, 1.0, 1.0], 0.9 * rng.random((149, 3))])
    frame = pd.DataFrame(points, columns=["a", "b", "c"]).assign(final=True, status="TERMINATED")
    series = hypervolume_over_trials(frame, [("a", "max"), ("b", "max"), ("c", "max")], "index")
    assert series.tolist() == [1.0] * 150
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------------
# A fake experiment of many trials, in the files Ray Tune writes


def _write_job(directory: Path, overrides: dict | None = None) -> dict:
    spec = load_job(
        "quickstart",
        {"name": directory.name, "storage": str(directory.parent), **(overrides or {})},
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "job.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    return {**spec.trial_config(), **CURRICULUM}


def _final_result(trial_id: str, epochs: int, t: float, spatial: float, adv: float) -> dict:
    return {
        "epoch": epochs,
        "final": True,
        "clean_acc": 0.9,
        "spatial_acc": spatial,
        "adv_acc": adv,
        "combined_acc": 0.1,
        "spatial_acc@0": 0.9,
        "spatial_acc@90": spatial,
        "spatial_acc@180": spatial / 2,
        "adv_acc@0": 0.9,
        "adv_acc@0.3": adv,
        "timestamp": int(t),
        "time_total_s": 10.0,
        "training_iteration": epochs,
        "trial_id": trial_id,
    }


def _values(count: int, duplicates: int) -> list[tuple[float, float]]:
    """``count`` (spatial, adv) pairs: a front of ``count - duplicates`` distinct points on a
    trade-off line (spatial falling as adv rises) followed by ``duplicates`` repeats of its
    first point (a curriculum the sampler proposed again: the same values)."""
    distinct = count - duplicates
    points = [(1.0 - 0.9 * i / distinct, 0.05 + 0.9 * i / distinct) for i in range(distinct)]
    return points + [points[0]] * duplicates


def _fake_experiment(
    root: Path, values: list[tuple[float, float]], epochs: int = 3, leftover: bool = False
) -> Path:
    """An experiment directory whose trials completed with ``values``; with ``leftover``, one
    more trial directory that no state knows of and that never reported."""
    path = root / "many"
    config = _write_job(path, {"training.epochs": epochs})
    for i, (spatial, adv) in enumerate(values):
        trial_id = f"{i:08x}"
        trial_dir = path / f"trial_{trial_id}"
        trial_dir.mkdir()
        (trial_dir / "params.json").write_text(json.dumps({**config, "theta_max": 1.0 + i}))
        lines = [
            {"epoch": e, "final": False, "spatial_acc": 0.1, "adv_acc": 0.1, "trial_id": trial_id}
            for e in range(1, epochs)
        ]
        lines.append(_final_result(trial_id, epochs, 1000.0 + i, spatial, adv))
        (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if leftover:
        (path / "trial_ffffffff").mkdir()
        (path / "trial_ffffffff" / "params.json").write_text(json.dumps(config))
    return path


def test_analyze_reads_each_trial_file_once(tmp_path, monkeypatch):
    """``write_report`` of a path (load, compare, fronts, hypervolumes, five plots, CSVs)
    reads every ``result.json`` and ``params.json`` exactly once."""
    path = _fake_experiment(tmp_path, _values(150, duplicates=20))
    reads: dict[str, int] = {}
    original = Path.read_text

    def counting(self, *args, **kwargs):
        if self.name in ("result.json", "params.json"):
            reads[str(self)] = reads.get(str(self), 0) + 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    write_report(path, tmp_path / "report")
    assert len(reads) == 300
    assert set(reads.values()) == {1}


def test_trials_csv_holds_every_trial_once(tmp_path):
    path = _fake_experiment(tmp_path, _values(150, duplicates=20), leftover=True)
    files = write_report(path, tmp_path / "report")
    trials = pd.read_csv(files.trials_csv, dtype={"trial_id": str})
    on_disk = sorted(p.name.removeprefix("trial_") for p in path.glob("trial_*"))
    assert sorted(trials["trial_id"]) == on_disk
    assert trials["trial_id"].is_unique
    front = pd.read_csv(files.front_csv, dtype={"trial_id": str})
    assert front["trial_id"].is_unique and len(front) == 150  # every trial is on this front


# ---------------------------------------------------------------------------------------------
# What a user reads


def test_printed_front_of_a_long_front_is_capped_with_both_ends_and_a_count(tmp_path):
    experiment = load_experiment(_fake_experiment(tmp_path, _values(150, duplicates=0)))
    front = experiment.front()
    assert len(front) == 150
    text = format_front_table(front, experiment.objectives)
    lines = text.splitlines()
    assert len(lines) == 1 + MAX_TABLE_ROWS + 1  # header, rows, the line saying what is left out
    hidden = [line for line in lines if "not shown" in line]
    assert len(hidden) == 1 and f"{150 - MAX_TABLE_ROWS} more rows" in hidden[0]
    assert "front.csv" in hidden[0]
    best_spatial, best_adv = "00000000", f"{149:08x}"  # the two ends of the front
    assert lines[1].startswith(best_spatial) and lines[-1].startswith(best_adv)
    shown = [line.split()[0] for line in lines[1:] if "not shown" not in line]
    assert len(set(shown)) == MAX_TABLE_ROWS
    untouched = format_front_table(front.head(12), experiment.objectives)
    assert len(untouched.splitlines()) == 13 and "not shown" not in untouched
    whole = format_front_table(front, experiment.objectives, max_rows=None)
    assert len(whole.splitlines()) == 151


def test_spread_keeps_both_ends_and_spaces_the_rest_evenly():
    assert spread(5, 16) == [0, 1, 2, 3, 4]
    picked = spread(100, 12)
    assert picked[0] == 0 and picked[-1] == 99 and len(picked) == 12
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 1
    assert spread(0, 4) == [] and spread(9, 1) == [0]


def _capture_figure(monkeypatch) -> list:
    """Keep each figure a plot function draws (drawn, before it is saved and closed)."""
    figures = []
    original = plots._save

    def keeping(fig, path):
        fig.canvas.draw()
        figures.append(
            {
                "annotations": [
                    (child.get_text(), tuple(child.xy))
                    for ax in fig.axes
                    for child in ax.texts
                    if hasattr(child, "xy")
                ],
                "texts": [t.get_text() for ax in fig.axes for t in ax.texts],
                "legend": [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
                if fig.axes[0].get_legend()
                else [t.get_text() for legend in fig.legends for t in legend.get_texts()],
                "legend_box": fig.axes[0].get_legend().get_window_extent()
                if fig.axes[0].get_legend()
                else None,
                "axes_box": fig.axes[0].get_window_extent(),
                "title": fig._suptitle.get_text() if fig._suptitle else "",
            }
        )
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", keeping)
    return figures


def test_front_plot_labels_a_long_front_at_most_max_labels_points(tmp_path, monkeypatch):
    """A front of 60 distinct points plus 30 repeats: at most MAX_LABELS points labelled, one
    label per point, both ends of the front among them, the legend saying how many, and the
    legend outside the axes (inside, it covered points). It used to label nothing at all
    beyond 16 front members, without saying so."""
    figures = _capture_figure(monkeypatch)
    experiment = load_experiment(_fake_experiment(tmp_path, _values(90, duplicates=30)))
    plot_front(experiment, tmp_path / "front.png")
    drawn = figures[0]
    anchors = [xy for _, xy in drawn["annotations"]]
    assert 2 <= len(anchors) <= MAX_LABELS
    assert len(set(anchors)) == len(anchors)  # never two labels on one point
    tags = [text for text, _ in drawn["annotations"]]
    assert tags[0].startswith("00000000") and any(t.startswith(f"{59:08x}") for t in tags)
    front_entry = next(t for t in drawn["legend"] if t.startswith("Pareto front"))
    assert "90 of 90 completed, at 60 points" in front_entry
    assert f"{len(anchors)} labelled, all in front.csv" in front_entry
    assert drawn["legend_box"].y1 <= drawn["axes_box"].y0  # below the axes


def test_front_plot_gives_trials_at_one_point_one_label(tmp_path, monkeypatch):
    figures = _capture_figure(monkeypatch)
    experiment = load_experiment(_fake_experiment(tmp_path, _values(8, duplicates=4)))
    plot_front(experiment, tmp_path / "front.png")
    annotations = figures[0]["annotations"]
    assert len(annotations) == 4  # 4 points, 8 trials
    assert len({xy for _, xy in annotations}) == 4
    repeated = [text for text, _ in annotations if "(+4 more here)" in text]
    assert len(repeated) == 1 and repeated[0].startswith("00000000")


def test_profiles_plot_shows_distinct_points_spread_along_the_front(tmp_path, monkeypatch):
    """A front of 40 distinct points plus 20 repeats of one: 12 lines, one per distinct point,
    from both ends of the front (the first 12 rows best first showed only one end, most of
    them repeats of one model)."""
    figures = _capture_figure(monkeypatch)
    experiment = load_experiment(_fake_experiment(tmp_path, _values(60, duplicates=20)))
    plot_profiles(experiment, tmp_path / "profiles.png", max_models=12)
    drawn = figures[0]
    ids = [text.split(":")[0] for text in drawn["legend"]]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert "00000000" in ids and f"{39:08x}" in ids  # both ends of the front
    assert "12 of 60 shown, spread along the front" in drawn["title"]
    repeated = [text for text in drawn["legend"] if "(+20 more with the same values)" in text]
    assert len(repeated) == 1 and repeated[0].startswith("00000000")


# ---------------------------------------------------------------------------------------------
# status


def _ray_state(path: Path, values: list[tuple[float, float]], epochs: int) -> None:
    """A Ray Tune ``experiment_state-*.json`` of the trials of :func:`_fake_experiment`, written
    with Ray's own ``Trial`` serialisation (no Ray started)."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment.trial import Trial

    config = json.loads((path / "trial_00000000" / "params.json").read_text())
    entries = []
    for i, (spatial, adv) in enumerate(values):
        trial_id = f"{i:08x}"
        storage = StorageContext(
            storage_path=str(path.parent),
            experiment_dir_name=path.name,
            trial_dir_name=f"trial_{trial_id}",
        )
        trial = Trial("train_trial", config=config, trial_id=trial_id, storage=storage, stub=True)
        trial.create_placement_group_factory()
        trial.set_status(Trial.TERMINATED)
        trial.run_metadata.last_result = _final_result(trial_id, epochs, 1000.0 + i, spatial, adv)
        trial.invalidate_json_state()
        entries.append(list(trial.get_json_state()))
    state = {"trial_data": entries, "runner_data": {}, "stats": {}}
    (path / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))


def test_status_reads_the_state_snapshot_not_every_result_file(tmp_path, monkeypatch):
    """``status`` needs each trial's status and last result, which the state snapshot holds;
    Ray's ExperimentAnalysis also parsed every trial's whole result.json into a table that
    was never used (1.2 s of 3.8 s for 120 trials of 100 epochs, at every call)."""
    from ray.tune.analysis import experiment_analysis

    from tune_jobs import runner

    values = _values(150, duplicates=10)
    path = _fake_experiment(tmp_path, values, epochs=3)
    _ray_state(path, values, epochs=3)
    fetched = []
    original = experiment_analysis.ExperimentAnalysis._fetch_trial_dataframe

    def counting(self, trial):
        fetched.append(trial.trial_id)
        return original(self, trial)

    monkeypatch.setattr(experiment_analysis.ExperimentAnalysis, "_fetch_trial_dataframe", counting)
    status = runner.status(str(path))
    assert fetched == []
    assert status.total == 150 and status.counts == {"completed": 150}
    assert len(status.outcome.trials) == 150 and status.outcome.trials["trial_id"].is_unique
    assert len(status.outcome.front) == 150
    assert status.best == {"spatial_acc": 1.0, "adv_acc": pytest.approx(0.05 + 0.9 * 139 / 140)}


def test_failures_of_many_trials_read_as_one_line_per_error():
    from analysis.report import format_failures

    diverged = "trainables.training.TrainingDiverged: training loss became non-finite (nan)"
    trials = pd.DataFrame(
        {
            "trial_id": [f"{i:08x}" for i in range(103)],
            "error": [diverged] * 100 + ["OSError: disk full", None, "OSError: disk full"],
        }
    )
    lines = format_failures(trials)
    assert lines == [
        f"100 trials: {diverged} (00000000, 00000001, 00000002 and 97 more)",
        "2 trials: OSError: disk full (00000064, 00000066)",
    ]
    one = format_failures(trials.iloc[100:102])
    assert one == ["00000064: OSError: disk full"]
    assert format_failures(trials.iloc[101:102]) == []
