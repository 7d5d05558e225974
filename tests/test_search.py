"""End-to-end searches on a local Ray: launch, the study's directions, interrupt and resume."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray import tune

from trainables.errors import UserError
from trainables.trainable import train_trial
from tune_jobs import runner
from tune_jobs._optuna import JOURNAL_FILE, open_journal_study
from tune_jobs.progress import ProgressLines
from tune_jobs.spec import load_job

TINY = {
    "dataset.train_size": 256,
    "dataset.test_size": 100,
    "model_width": 0.25,
    "training.epochs": 2,
    "training.train_pgd_steps": 1,
    "evaluation.subset": 50,
    "evaluation.pgd_steps": 2,
    "evaluation.profiles": False,
    "search.trials": 4,
    "search.max_concurrent": 2,
}


def _epochs(trial_dir: Path) -> list[int]:
    result = trial_dir / "result.json"
    if not result.is_file():
        return []
    return [json.loads(line)["epoch"] for line in result.read_text().splitlines() if line]


def _trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.iterdir() if p.is_dir() and p.name.startswith("trial_"))


def _known_trial_dirs(experiment: Path) -> list[Path]:
    """The directories of the trials in Tune's experiment state. A hard kill can land after Tune
    created a new trial's directory and before its next experiment snapshot: that trial never
    existed for a resumed search, which starts another in its place."""
    trials = runner.status(str(experiment)).outcome.trials
    known = {f"trial_{trial_id}" for trial_id in trials["trial_id"]}
    return [d for d in _trial_dirs(experiment) if d.name in known]


def test_tiny_search_gives_a_two_objective_front(local_ray, tmp_path):
    spec = load_job("quickstart", {**TINY, "storage": str(tmp_path), "name": "tiny"})
    inspected = load_job("quickstart", {**TINY, "storage": str(tmp_path), "name": "inspected"})
    tuner = runner.build_tuner(inspected, runner.load_search_dataset(inspected))
    # The pitfall: metric/mode in TuneConfig would make the study single-objective.
    assert tuner._local_tuner._tune_config.metric is None
    assert tuner._local_tuner._tune_config.mode is None
    assert tuner._local_tuner._run_config.stop is None
    stop = {"epoch": 2}  # a search can also be ended by Tune's stop conditions
    stopped = runner.build_tuner(inspected, runner.load_search_dataset(inspected), stop=stop)
    assert stopped._local_tuner._run_config.stop == stop

    lines: list[str] = []
    outcome = runner.launch(spec, callbacks=[ProgressLines(lines.append, spec.metrics)])
    assert outcome.finished
    assert len(outcome.trials) == 4 and outcome.trials["final"].all()
    assert sum(" completed (" in line for line in lines) == 4, lines
    # The launch's callbacks are its own: not saved with the experiment for a resume to run
    saved = tune.Tuner.restore(outcome.experiment_path, trainable=train_trial)
    saved_callbacks = saved._local_tuner.get_run_config().callbacks
    assert [type(c).__name__ for c in saved_callbacks] == ["SchedulerStateCallback"]
    for metric in ("spatial_acc", "adv_acc"):
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in outcome.trials[metric])
    assert len(outcome.front) >= 1
    study = open_journal_study(Path(outcome.experiment_path) / JOURNAL_FILE)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    assert len(study.trials) == 4
    assert all(t.state.name == "COMPLETE" and len(t.values) == 2 for t in study.trials)
    assert (Path(outcome.experiment_path) / "job.yaml").is_file()

    status = runner.status(outcome.experiment_path)
    assert status.counts == {"completed": 4} and status.planned == 4
    assert status.best["adv_acc"] == outcome.trials["adv_acc"].max()
    assert set(status.outcome.front["trial_id"]) == set(outcome.front["trial_id"])
    with pytest.raises(UserError, match="has finished: all 4 planned trials ended"):
        runner.resume(outcome.experiment_path)  # it would run nothing


def _launch_subprocess(storage: Path, name: str, epochs: int) -> subprocess.Popen:
    sets = {**TINY, "training.epochs": epochs, "storage": str(storage), "name": name}
    args = [sys.executable, "-m", "tune_jobs", "launch", "quickstart"]
    for key, value in sets.items():
        args += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for_mid_search(experiment: Path, epochs: int, process, timeout: float = 300) -> None:
    """Wait until one trial has finished and another has a checkpoint but has not finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if experiment.is_dir():
            trials = [_epochs(d) for d in _trial_dirs(experiment)]
            finished = [e for e in trials if e and e[-1] == epochs]
            midway = [e for e in trials if e and e[-1] < epochs]
            if finished and midway:
                return
        time.sleep(0.1)
    pytest.fail("the search never reached a state with finished and running trials")


def _mtimes(paths) -> list[float]:
    """Modification times of the files that still exist (Ray deletes old checkpoints)."""
    times = []
    for path in paths:
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return times


def _wait_for_saved_checkpoint(experiment: Path, epochs: int, process, timeout=300.0) -> Path:
    """Wait until an unfinished trial has a checkpoint older than Ray Tune's newest state
    snapshot, which resume restores it from (a newer checkpoint the snapshot has not seen yet
    would be ignored: the trial would start again); return that trial's directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        snapshot = max(_mtimes(experiment.glob("experiment_state-*.json")), default=None)
        for directory in _trial_dirs(experiment) if snapshot is not None else []:
            checkpoints = _mtimes(directory.glob("checkpoint_*/trial.pt"))
            reported = _epochs(directory)
            if reported and reported[-1] < epochs and checkpoints and min(checkpoints) < snapshot:
                return directory
        time.sleep(0.05)
    pytest.fail("no unfinished trial had a checkpoint that Ray Tune's state had saved")


def _resume(experiment: Path, returncode: int = 0) -> subprocess.CompletedProcess:
    """``cusp-tune resume`` in a fresh process; it must end with ``returncode`` (1: a trial
    failed)."""
    resumed = subprocess.run(
        [sys.executable, "-m", "tune_jobs", "resume", str(experiment)],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    assert resumed.returncode == returncode, resumed.stdout + resumed.stderr
    return resumed


def _kill_session(process: subprocess.Popen, sig: int) -> None:
    """Signal every process of the driver's session (the driver and the Ray it started); a
    SIGTERM (``ray job stop``, a batch scheduler) goes to the driver alone."""
    sid = process.pid
    if sig == signal.SIGTERM:
        os.kill(sid, sig)
        return
    os.killpg(sid, sig)
    if sig == signal.SIGKILL:
        process.wait(timeout=60)
        listing = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True)
        for line in listing.stdout.splitlines():
            pid, session = (int(x) for x in line.split())
            if session == sid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["sigint", "sigterm", "sigkill"]
)
def test_interrupted_search_resumes_exactly(tmp_path, sig):
    epochs = 3
    experiment = tmp_path / "interrupted"
    process = _launch_subprocess(tmp_path, "interrupted", epochs)
    try:
        _wait_for_mid_search(experiment, epochs, process)
        before = {
            d.name: (d / "result.json").read_text()
            for d in _trial_dirs(experiment)
            if (d / "result.json").is_file()  # a trial just started may have no results yet
        }
        finished_before = {n for n, text in before.items() if f'"epoch": {epochs}' in text}
        _kill_session(process, sig)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            _kill_session(process, signal.SIGKILL)
    if sig != signal.SIGKILL:  # a stop Ray Tune handles: it saves everything, we say how to go on
        assert f"cusp-tune resume {experiment}" in output, output
        assert "Tuner.restore" not in output, output  # Ray's advice, for its Python API
        assert process.returncode == 1, output  # an interrupted search is not a success
        # a line per trial event, not Ray Tune's tables of every config and result
        assert " started: stdcnn " in output and "completed (1 of 4): spatial_acc" in output
        assert "Trial status" not in output and "with configuration" not in output, output
        assert "Configuration for experiment" not in output, output  # Ray Tune's header box

    if sig != signal.SIGKILL:  # (a killed driver may leave no snapshot for status to read)
        stopped = runner.status(str(experiment))
        # (here 2 completed and 2 interrupted, which said "in progress" before)
        assert stopped.driver_running is False and "in progress" not in stopped.counts

    resumed = _resume(experiment)
    assert "4 of 4 trials completed" in resumed.stdout
    assert "resuming search interrupted" in resumed.stdout
    assert "completed (4 of 4)" in resumed.stdout, resumed.stdout
    assert "Configuration for experiment" not in resumed.stdout, resumed.stdout
    if sig != signal.SIGKILL:  # the interrupted trials had reported before the snapshot
        assert "continues after epoch" in resumed.stdout, resumed.stdout
    trial_dirs = _known_trial_dirs(experiment)
    assert len(trial_dirs) == 4
    if sig != signal.SIGKILL:  # a graceful stop snapshots everything
        assert len(_trial_dirs(experiment)) == 4
    for directory in trial_dirs:
        reported = _epochs(directory)
        assert reported[-1] == epochs
        # No epoch is trained twice: a running trial continued from its checkpoint.
        assert reported.count(1) == 1, (directory.name, reported)
        # An ended trial keeps only its newest checkpoint (tune_jobs._checkpoints)
        assert [p.name for p in directory.glob("checkpoint_*")] == [f"checkpoint_{epochs - 1:06d}"]
        if directory.name in finished_before:  # finished trials are not run again
            assert (directory / "result.json").read_text() == before[directory.name]
    study = open_journal_study(experiment / JOURNAL_FILE)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)


class _FakeResult:
    """What ``summarize`` reads from one ``ray.tune.Result``."""

    def __init__(self, config: dict, metrics: dict) -> None:
        self.config, self.metrics, self.error = config, metrics, None


def _results(ends: list[tuple[int, bool, bool]], trials: int) -> list[_FakeResult]:
    """``trials`` results, the first ``len(ends)`` with a last result (epoch, final, done)."""
    config = {"method": "pgd", "curriculum": "cusp"}
    metrics = [
        {"trial_id": f"t{i}", "epoch": e, "final": f, "done": d, "spatial_acc": 0.5, "adv_acc": 0.4}
        for i, (e, f, d) in enumerate(ends)
    ]
    metrics += [{}] * (trials - len(ends))
    return [_FakeResult(config, m) for m in metrics]


def test_summarize_is_unfinished_when_a_trial_never_reported(tmp_path):
    # An interrupt can land after three trials ended and before the fourth reported anything:
    # that trial has no row, and the search is not finished.
    spec = load_job("quickstart", {**TINY, "storage": str(tmp_path)})
    assert not runner.summarize(_results([(2, True, True)] * 3, 4), spec, "x").finished
    running = [(2, True, True)] * 3 + [(1, False, False)]
    assert not runner.summarize(_results(running, 4), spec, "x").finished
    stopped = [(2, True, True)] * 3 + [(1, False, True)]
    assert runner.summarize(_results(stopped, 4), spec, "x").finished
    assert runner.summarize(_results([(2, True, True)] * 4, 4), spec, "x").finished


def test_summarize_counts_a_failed_trial_as_ended_and_failed(tmp_path):
    # After a resume in which a trial failed for good, the search has ended (resuming again
    # would not help), but it is not a success.
    spec = load_job("quickstart", {**TINY, "storage": str(tmp_path)})
    results = _results([(2, True, True)] * 3 + [(1, False, False)], 4)
    results[-1].error = RuntimeError("checkpoint cannot be loaded")
    outcome = runner.summarize(results, spec, "x")
    assert outcome.finished and outcome.failed == 1 and outcome.planned == 4


@pytest.mark.parametrize(
    ("tune_status", "result", "stage"),
    [
        ("TERMINATED", {"epoch": 3, "final": True}, "completed"),
        ("TERMINATED", {"epoch": 1, "final": False}, "stopped early"),
        ("ERROR", {"epoch": 1, "final": False}, "failed"),
        ("ERROR", None, "failed"),
        ("PENDING", {"epoch": 2, "final": False}, "in progress"),  # how snapshots keep RUNNING
        ("RUNNING", {"epoch": 2, "final": False}, "in progress"),
        ("PAUSED", {"epoch": 2, "final": False}, "in progress"),
        ("PENDING", {"epoch": 3, "final": True}, "completed"),  # snapshot older than the end
        ("PENDING", {}, "not started"),
        ("PENDING", {"trial_id": "a"}, "not started"),  # what Tune restores for a trial never run
    ],
)
def test_progress_of_a_trial(tune_status, result, stage):
    assert runner.progress(tune_status, result, scheduled=True) == stage


def test_without_a_scheduler_no_trial_is_stopped_early():
    unfinished = {"epoch": 1, "final": False}
    assert runner.progress("TERMINATED", unfinished, scheduled=False) == "ended unfinished"
    assert runner.progress("TERMINATED", {"epoch": 3, "final": True}, scheduled=False) == (
        "completed"
    )


def test_trial_table_labels_trials_whose_configs_have_different_keys(tmp_path):
    # A pgd trial has no trades_beta; in Tune's flattened dataframe it became NaN next to a
    # trades trial, and its curriculum showed as "?".
    spec = load_job("quickstart", {**TINY, "storage": str(tmp_path)})
    result = {"epoch": 2, "final": True, "done": True, "spatial_acc": 0.5, "adv_acc": 0.4}
    trials = [
        ({"method": "pgd", "curriculum": "cusp"}, {**result, "trial_id": "a"}),
        (
            {"method": "trades", "trades_beta": 6.0, "curriculum": "cusp"},
            {**result, "trial_id": "b"},
        ),
        ({"method": "pgd", "curriculum": "cusp"}, {}),  # not reported yet: no row
    ]
    table = runner.trial_table(trials, spec)
    assert list(table["trial_id"]) == ["a", "b"]
    assert list(table["curriculum"]) == ["cusp θ120→180 ε0.075→0.3"] * 2
    assert list(table["method"]) == ["pgd", "trades"]


def test_resume_on_a_directory_that_is_not_an_experiment(tmp_path, capsys):
    from tune_jobs.cli import main

    assert main(["resume", str(tmp_path)]) == 2
    assert "is not a cusp-tune experiment" in capsys.readouterr().err


def test_status_on_a_directory_that_is_not_an_experiment(tmp_path, capsys):
    from tune_jobs.cli import main

    assert main(["status", str(tmp_path)]) == 2
    assert "is not a cusp-tune experiment" in capsys.readouterr().err


def test_launch_refuses_to_overwrite_an_experiment(tmp_path, capsys):
    from tune_jobs.cli import main

    experiment = tmp_path / "quickstart"
    experiment.mkdir()  # what a launch killed before its search started leaves
    assert main(["launch", "quickstart", "--storage", str(tmp_path)]) == 2
    assert "exists but holds no search" in capsys.readouterr().err
    (experiment / "tuner.pkl").write_bytes(b"")  # Ray Tune's state: a search to resume
    assert main(["launch", "quickstart", "--storage", f"file://{tmp_path}"]) == 2
    assert f"continue it with `cusp-tune resume {experiment}`" in capsys.readouterr().err
    assert [p.name for p in experiment.iterdir()] == ["tuner.pkl"]


def _saved_experiment(storage: Path, name: str) -> Path:
    spec = load_job("quickstart", {**TINY, "storage": str(storage), "name": name})
    runner._write_job(spec, spec.experiment_path)
    return Path(spec.experiment_path)


def test_resume_refuses_a_moved_experiment(tmp_path, capsys):
    # Ray Tune would write the resumed search's new trials to the original path
    from tune_jobs.cli import main

    original = _saved_experiment(tmp_path / "runs", "moved")
    (original / "tuner.pkl").write_bytes(b"")
    moved = original.rename(tmp_path / "elsewhere")
    assert main(["resume", str(moved)]) == 2
    err = capsys.readouterr().err
    assert f"was launched as {original}" in err and "resume it at that path" in err


def test_resume_of_a_launch_stopped_before_its_search_started(tmp_path, capsys):
    from tune_jobs.cli import main

    experiment = _saved_experiment(tmp_path, "early")
    assert main(["resume", f"file://{experiment}"]) == 2
    assert "holds no search to resume" in capsys.readouterr().err


def test_a_second_driver_of_one_experiment_is_refused(tmp_path, capsys):
    from tune_jobs.cli import main

    experiment = _saved_experiment(tmp_path, "busy")
    (experiment / "tuner.pkl").write_bytes(b"")
    with runner._driver_lock(str(experiment)):
        assert main(["resume", str(experiment)]) == 2
        err = capsys.readouterr().err
        assert f"being run by another cusp-tune driver (pid {os.getpid()})" in err
    with runner._driver_lock(str(experiment)):  # free again once the first driver ends
        pass


def test_unreachable_object_store_is_one_line(monkeypatch, capsys):
    import pyarrow.fs

    from tune_jobs.cli import main

    class Unreachable:
        @staticmethod
        def from_uri(uri):
            raise OSError("When resolving region for bucket 'b': AWS Error NETWORK_CONNECTION")

    monkeypatch.setattr(pyarrow.fs, "FileSystem", Unreachable)
    assert main(["status", "s3://b/runs/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cusp-tune: error: cannot open storage s3://b/runs/x") and "\n" not in err


def test_truncated_checkpoint_fails_only_its_trial_on_resume(tmp_path):
    epochs = 3
    experiment = tmp_path / "truncated"
    process = _launch_subprocess(tmp_path, "truncated", epochs)
    try:
        victim = _wait_for_saved_checkpoint(experiment, epochs, process)
        _kill_session(process, signal.SIGKILL)
    finally:
        if process.poll() is None:
            _kill_session(process, signal.SIGKILL)
    for checkpoint in victim.glob("checkpoint_*/trial.pt"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])

    resumed = _resume(experiment, returncode=1)
    assert "3 of 4 trials completed" in resumed.stdout
    assert "1 trial(s) failed" in resumed.stdout
    assert "cusp-tune resume" not in resumed.stdout  # resuming again would not help
    assert "cannot be loaded" in (victim / "error.txt").read_text()
    for directory in _known_trial_dirs(experiment):
        if directory != victim:
            assert _epochs(directory)[-1] == epochs
    study = open_journal_study(experiment / JOURNAL_FILE)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]


def test_tradeoff_grid_job_runs_every_point_and_analyze_draws_it(local_ray, tmp_path):
    from analysis import load_experiment, write_report

    overrides = {
        "storage": str(tmp_path),
        "name": "grid",
        "dataset.train_size": 128,
        "dataset.test_size": 60,
        "model_width": 0.25,
        "training.epochs": 1,
        "evaluation.subset": 20,
        "evaluation.pgd_steps": 1,
        "search.grid.model": ["stdcnn"],
        "search.grid.theta_max": [0, 90, 180],
    }
    spec = load_job("digits-tradeoff-rotation", overrides)
    assert spec.search.trials == 3
    outcome = runner.launch(spec)
    assert outcome.finished and len(outcome.trials) == 3
    experiment = load_experiment(outcome.experiment_path)
    trained = sorted(experiment.configs[t]["theta_max"] for t in experiment.trials["trial_id"])
    assert trained == [0, 90, 180]
    files = write_report([experiment], tmp_path / "report")
    assert files.plots["tradeoffs"].stat().st_size > 0
    report = files.report.read_text()
    assert "- search: grid over model (1), theta_max (3), 3 trials planned" in report
    assert "preset" not in report.split("- search:")[1].splitlines()[0]


def test_a_grid_job_is_described_by_its_grid(tmp_path, capsys, monkeypatch):
    from analysis import report
    from tune_jobs.cli import main

    spec = load_job("digits-tradeoff-rotation")
    assert spec.models == ("stdcnn",) and report._models(spec) == ["stdcnn", "gcnn-c4"]

    def stop(spec, **kwargs):
        kwargs["on_start"]()
        raise UserError("stopped here")

    monkeypatch.setattr(runner, "launch", stop)
    assert main(["launch", "digits-tradeoff-rotation", "--storage", str(tmp_path)]) == 2
    announced = capsys.readouterr().out
    assert "search digits-tradeoff-rotation: grid of 14 points over model, theta_max," in announced


def test_grid_with_a_bad_point_is_rejected_before_anything_starts(tmp_path):
    with pytest.raises(UserError, match=r"search.grid point \(model=stdcnn, theta_max=270\)"):
        load_job(
            "digits-tradeoff-rotation",
            {"storage": str(tmp_path), "search.grid.theta_max": [0, 270]},
        )


def test_a_grid_asking_for_more_images_than_the_dataset_has_fails_before_launch(tmp_path, capsys):
    from tune_jobs.cli import main

    job = tmp_path / "sizes.yaml"
    job.write_text("search:\n  grid:\n    train_size: [100, 100000]\n")
    assert main(["launch", str(job), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cusp-tune: error: search.grid.train_size asks for 100000 images")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["status", "resume"])
def test_a_damaged_job_yaml_is_one_line(tmp_path, command, capsys):
    from tune_jobs.cli import main

    experiment = _saved_experiment(tmp_path, "damaged")
    (experiment / "job.yaml").write_text("name: [\n")
    assert main([command, str(experiment)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"cusp-tune: error: {experiment}/job.yaml is unreadable (ParserError); restore it"
    assert main([command, str(experiment / "job.yaml")]) == 2
    assert "job.yaml is a file, not an experiment directory; pass its directory" in (
        capsys.readouterr().err
    )


def test_status_without_rays_state_points_to_analyze(tmp_path, capsys):
    from tune_jobs.cli import main

    experiment = _saved_experiment(tmp_path, "stateless")
    assert main(["status", str(experiment)]) == 2
    assert "has no trials yet" in capsys.readouterr().err
    (experiment / "trial_0001").mkdir()  # trials, but the state file is gone or damaged
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text("{")
    assert main(["status", str(experiment)]) == 2
    assert f"`cusp-tune analyze {experiment}` reads the trials" in capsys.readouterr().err


def test_storage_that_is_a_file_is_one_line(tmp_path, capsys):
    from tune_jobs.cli import main

    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["launch", "quickstart", "--storage", str(afile)]) == 2
    assert f"storage {afile} is a file; choose a directory" in capsys.readouterr().err
    assert main(["train", "--set", "epochs=1", "--out", str(afile)]) == 2
    assert f"--out {afile} is a file" in capsys.readouterr().err
    assert afile.read_text() == "x"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("s3://bucket/runs/x/", "s3://bucket/runs/x"),
        ("gs://bucket/x", "gs://bucket/x"),
        ("file:///tmp/../tmp/x/", "/tmp/x"),
    ],
)
def test_experiment_locations_compare_equal_however_written(given, canonical):
    # resume compares the location given with the one job.yaml records
    assert runner.experiment_location(given) == canonical


def test_a_process_connected_to_one_ray_refuses_another_address(local_ray):
    current = local_ray.get_runtime_context().gcs_address
    runner.connect(current)  # the same cluster: nothing to do
    runner.connect("auto")
    with pytest.raises(UserError, match="already connected to the Ray at .*ray.shutdown"):
        runner.connect("127.0.0.1:1")


def test_driver_running_follows_the_drivers_lock(tmp_path):
    assert runner.driver_running(str(tmp_path)) is False  # no driver has run it
    with runner._driver_lock(str(tmp_path)):
        assert runner.driver_running(str(tmp_path)) is True
    assert runner.driver_running(str(tmp_path)) is False
    assert runner.driver_running("s3://bucket/exp") is None
