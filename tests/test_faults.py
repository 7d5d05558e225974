"""Faults inside a search: trials that diverge or raise fail alone, with their reason."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ray import cloudpickle, tune

from trainables.trainable import train_trial
from trainables.training import TrainingDiverged
from tune_jobs import runner
from tune_jobs._optuna import JOURNAL_FILE, open_journal_study
from tune_jobs.spec import load_job

TINY = {
    "dataset.train_size": 128,
    "dataset.test_size": 60,
    "model_width": 0.25,
    "training.epochs": 2,
    "training.train_pgd_steps": 1,
    "evaluation.subset": 20,
    "evaluation.pgd_steps": 1,
    "evaluation.profiles": False,
    "search.trials": 4,
    "failure.max_retries": 0,
    "search.sampler": "random",
    "search.sampler_options": {},
    "search.seed": 3,
}


def faulty_trial(config, dataset):
    """The real trainable, except that TRADES trials diverge and cosine ones crash."""
    if config["method"] == "trades":
        tune.report({"epoch": 1, "spatial_acc": 0.5, "adv_acc": 0.5, "final": False})
        raise TrainingDiverged("training loss became non-finite (nan) at lr 0.05 (injected)")
    if config.get("theta_schedule") == "cosine":
        raise RuntimeError("injected crash")
    train_trial(config, dataset)


def test_failing_trials_fail_alone_and_the_study_stays_clean(local_ray, tmp_path, monkeypatch):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(
        runner,
        "_trainable",
        lambda spec, dataset: tune.with_parameters(faulty_trial, dataset=dataset),
    )
    spec = load_job("quickstart", {**TINY, "storage": str(tmp_path), "name": "faults"})
    outcome = runner.launch(spec)

    experiment = Path(outcome.experiment_path)
    errors = {p.parent.name: p.read_text() for p in experiment.glob("trial_*/error.txt")}
    assert errors, "the seeded search sampled no failing trial"
    completed = outcome.trials[outcome.trials["final"]]
    assert 0 < len(completed) < 4
    assert any("non-finite" in text for text in errors.values())
    study = open_journal_study(experiment / JOURNAL_FILE)
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and "RUNNING" not in states
    assert states.count("FAIL") == len(errors)
    for trial in study.trials:
        assert trial.values is None or all(math.isfinite(v) for v in trial.values)
    # every trial has ended (resume would not retry the failed ones), and the failures count
    assert outcome.finished and outcome.failed == len(errors)
