"""The line-per-event progress a search prints instead of Ray Tune's tables."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pytest

from tune_jobs.progress import ProgressLines, describe_config

CONFIG = {
    "model": "stdcnn",
    "method": "pgd",
    "curriculum": "custom",
    "epochs": 4,
    "theta_max": 90.0,
    "theta_schedule": "linear",
    "eps_max": 0.1,
    "eps_schedule": "constant",
}


@dataclass
class FakeTrial:
    """The attributes of a ``ray.tune.experiment.Trial`` that the callback reads."""

    trial_id: str
    status: str = "RUNNING"
    config: dict[str, Any] = field(default_factory=lambda: dict(CONFIG))
    last_result: dict[str, Any] = field(default_factory=dict)
    error_file: str | None = None


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _progress(lines: list[str], clock: Clock | None = None, planned: int | None = 4):
    progress = ProgressLines(
        lines.append,
        objectives=["spatial_acc", "adv_acc"],
        every_s=60.0,
        clock=clock or Clock(),
        now=lambda: datetime.datetime(2026, 1, 2, 3, 4, 5),
    )
    progress.setup(stop=None, num_samples=planned, total_num_samples=planned)
    return progress


def test_a_new_trial_is_described_and_a_restored_one_continues_after_its_epoch():
    lines: list[str] = []
    progress = _progress(lines)
    fresh, restored = FakeTrial("aaa"), FakeTrial("bbb", last_result={"epoch": 3})
    progress.on_trial_start(iteration=1, trials=[fresh, restored], trial=fresh)
    progress.on_trial_start(iteration=1, trials=[fresh, restored], trial=restored)
    assert lines == [
        "03:04:05  trial aaa started: stdcnn pgd linear θ0→90 ε0.1",
        "03:04:05  trial bbb continues after epoch 3",
    ]


def test_completed_trials_show_their_objectives_and_how_many_of_the_planned_have_ended():
    lines: list[str] = []
    progress = _progress(lines)
    done = FakeTrial("aaa", status="TERMINATED")
    failed = FakeTrial("ccc", status="ERROR")
    ending = FakeTrial(
        "bbb",
        last_result={"epoch": 4, "final": True, "done": True, "spatial_acc": 0.5, "adv_acc": 0.25},
    )
    # Ray Tune calls the hook while the ending trial is still RUNNING: it counts all the same
    progress.on_trial_complete(iteration=1, trials=[done, failed, ending], trial=ending)
    assert lines == ["03:04:05  trial bbb completed (3 of 4): spatial_acc 0.5000  adv_acc 0.2500"]


def test_a_trial_the_scheduler_stopped_says_after_which_epoch():
    lines: list[str] = []
    progress = _progress(lines, planned=None)
    stopped = FakeTrial("aaa", last_result={"epoch": 1, "final": False, "done": True})
    progress.on_trial_complete(iteration=1, trials=[stopped], trial=stopped)
    assert lines == ["03:04:05  trial aaa stopped early after epoch 1 (1)"]


def test_an_interrupted_trial_says_nothing():
    # Ctrl-C ends running trials without a final or done result: not an event of the trial's own
    lines: list[str] = []
    progress = _progress(lines)
    running = FakeTrial("aaa", last_result={"epoch": 2, "final": False, "done": False})
    progress.on_trial_complete(iteration=1, trials=[running], trial=running)
    assert lines == []


def test_failures_and_retries_give_the_exception_line_of_error_txt(tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text(
        "Failure # 1 (occurred at 2026-01-02_03-04-05)\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: the learning rate diverged\n"
    )
    lines: list[str] = []
    progress = _progress(lines)
    trial = FakeTrial("aaa", status="ERROR", error_file=str(error_file))
    progress.on_trial_recover(iteration=1, trials=[trial], trial=trial)
    progress.on_trial_error(iteration=1, trials=[trial], trial=trial)
    no_file = FakeTrial("bbb", status="ERROR")
    progress.on_trial_error(iteration=1, trials=[trial, no_file], trial=no_file)
    assert lines == [
        "03:04:05  trial aaa failed, retrying: ValueError: the learning rate diverged",
        "03:04:05  trial aaa failed (1 of 4): ValueError: the learning rate diverged",
        "03:04:05  trial bbb failed (2 of 4): see the log above",
    ]


def test_running_trials_are_summed_up_at_most_once_a_period_and_only_after_new_results():
    lines: list[str] = []
    clock = Clock()
    progress = _progress(lines, clock)
    done = FakeTrial("aaa", status="TERMINATED")
    running = [FakeTrial("bbb", last_result={"epoch": 2}), FakeTrial("ccc")]
    trials = [done, *running]

    clock.t = 30.0
    progress.on_trial_result(iteration=1, trials=trials, trial=running[0], result={})
    progress.on_step_end(iteration=1, trials=trials)
    assert lines == []  # too soon
    clock.t = 61.0
    progress.on_step_end(iteration=2, trials=trials)
    assert lines == ["03:04:05  1 of 4 ended; running: bbb epoch 2/4, ccc epoch 0/4"]
    clock.t = 200.0
    progress.on_step_end(iteration=3, trials=trials)
    assert len(lines) == 1  # no result since: the same line again would say nothing new
    progress.on_trial_result(iteration=4, trials=trials, trial=running[0], result={})
    progress.on_step_end(iteration=4, trials=trials)
    assert len(lines) == 2


def test_any_line_restarts_the_period():
    lines: list[str] = []
    clock = Clock()
    progress = _progress(lines, clock)
    trial = FakeTrial("aaa", last_result={"epoch": 1})
    clock.t = 59.0
    progress.on_trial_start(iteration=1, trials=[trial], trial=trial)
    progress.on_trial_result(iteration=1, trials=[trial], trial=trial, result={})
    clock.t = 100.0
    progress.on_step_end(iteration=2, trials=[trial])
    assert len(lines) == 1
    clock.t = 120.0
    progress.on_step_end(iteration=3, trials=[trial])
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("config", "text"),
    [
        (
            {"model": "gcnn-c4", "method": "trades", "curriculum": "cusp", "epochs": 120},
            "gcnn-c4 trades cusp θ120→180 ε0.075→0.3",
        ),
        ({"model": "lenet"}, "lenet none"),
    ],
)
def test_describe_config_names_model_method_and_curriculum_as_the_front_tables_do(config, text):
    assert describe_config(config) == text
