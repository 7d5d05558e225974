"""``moasha_quickstart``: MO-ASHA on the real ``quickstart`` job, hypervolume against epochs.

The job. ``tune_jobs/jobs/quickstart.yaml`` loaded with :func:`tune_jobs.spec.load_job` and run
with :func:`tune_jobs.runner.launch`, the path ``cusp-tune launch`` takes (the job's own Optuna
searcher behind its ``ConcurrencyLimiter``, 2 trials at a time, 1 CPU each, a checkpoint per
epoch, the scheduler of its ``scheduler`` section with the scheduler-state callback), on a
private local Ray with 2 CPUs. It is shrunk with ``--set``-style overrides so that a search
takes about a minute on 2 CPU cores and has rungs to stop at: 9 epochs instead of 3, 512
training and 200 test images, a width-0.25 ``stdcnn``, one PGD step in training, a 100-image
per-epoch evaluation subset, 3 PGD steps in evaluation, no final profiles, and ``adv_acc``
measured at ``eps_eval = 0.1`` instead of the dataset's 0.3: at this size hardly anything is
robust at 0.3, so the hypervolume would measure little (a one-off check outside this module, 6
random curricula of the preset trained 9 epochs with these settings: ``adv_acc`` 0-5 % at 0.3
and 47-81 % at 0.1, except one that collapsed to a constant prediction, 10 % at both).
Everything else (the ``joint`` preset and its bounds, the ``spatial_acc`` / ``adv_acc``
objectives, ``nsga2`` with a population of 4) is the job's.

Methods (one search each, per seed ``search.seed``): ``moasha`` (the job's ``nsga2`` and
``scheduler: {kind: moasha, grace_epochs: 1, reduction_factor: 3}``: rungs at epochs 1 and 3 of
9), ``none`` (``nsga2``, every trial runs all epochs) and ``random`` (``search.sampler:
random``, every trial runs all epochs).

Budget. ``none`` and ``random`` run ``trials`` trials of ``epochs`` epochs, ``B = trials *
epochs`` epochs. ``moasha`` may start up to ``moasha_trials`` trials (more, mostly shorter) and a
Tune ``Stopper`` ends its search once it has reported ``B`` epochs (the runner knows a number of
trials, not of epochs, so the benchmark passes the stopper as ``runner.launch(..., stop=...)``;
nothing else of the launch path changes). Every method therefore spends ``B`` epochs.

Measured. A Tune callback passed to ``launch`` records every result in the order the driver
receives it; the trainable reports once per epoch, so the ``k``-th result is the ``k``-th epoch
spent. The hypervolume after ``t`` epochs is that of the final (full test set)
``(spatial_acc, adv_acc)`` of the trials whose last epoch was among the first ``t`` results,
from the reference point (0, 0) (``analysis.hypervolume``), in % of the unit square (100 = both
accuracies 100 %). Stopped trials count for nothing. Unlike the synthetic benchmark
(``bench_moasha.py``) there are no noise-free values: a trial's final values are measured once,
on 200 test images. "To match", "per seed", HV columns: as in ``bench_moasha.py``.

``--quick`` runs one seed of a smaller search (3 epochs, a rung at epoch 1, 4 trials, 256
training and 100 test images) as a smoke test of the path; its figures mean little.

Figures (``python -m benchmarks.bench_moasha_quickstart``; 2 CPU cores, 6.8 min; 4 seeds;
budget 12 trials x 9 epochs = 108 epochs; HV in % of the unit square; columns as in
``bench_moasha.py``, "stopped": by MO-ASHA; every search's first trial is the paper's schedule,
``search.paper_first``)::

    method  HV @10%     HV @25%      HV @40%      HV @100%     to match  per seed  trials  stopped
    moasha  0.0 +- 0.0  31.9 +- 6.9  36.2 +- 5.3  43.4 +- 4.2  76%       84%       23      56%
    none    0.0 +- 0.0  25.3 +- 7.0  35.1 +- 3.9  40.3 +- 3.6  100%      95%       12      0%
    random  0.0 +- 0.0  25.3 +- 7.0  35.1 +- 3.9  43.1 +- 6.3  63%       71%       12      0%

Per seed, HV at the budget: moasha 45.8, 39.6, 40.2, 48.2 (9, 8, 8 and 8 trials completed
within the budget); none 43.2, 39.7, 35.5, 42.9; random 46.2, 46.2, 33.7, 46.2. ``none`` and
``random`` repeat exactly (same configs, seeded trials); ``moasha`` depends on the order in which
results arrive. The first ``nsga2`` generation is random sampling with the same seed, so all three
methods start with the same 4 configs (``none`` and ``random`` are equal up to 40 %); past them
the job's NSGA-II population of 4 does worse than random sampling.

**The target is not met on the job: MO-ASHA ends 3 points above no early stopping** (43.4
against 40.3) but reaches its final hypervolume only after 76 % of the epochs (per seed 84 %);
at 40 % it is level (36.2 against 35.1). Why, measured: the rungs hardly predict the end.
Spearman's correlation between a trial's value at a rung and its final value, over the 96 full
trials of ``none`` and ``random``: ``spatial_acc`` -0.36 at epoch 1 and 0.68 at epoch 3;
``adv_acc`` 0.38 and 0.81. At epoch 1 the ranking on ``spatial_acc`` is *reversed*, and a
200-image evaluation subset adds noise; with a budget of 12 full trials MO-ASHA completes only
8-9 of its 19-25 trials.

Before TRADES ran its clean and adversarial batches through batch norm separately and before
the paper's schedule came first (the job's trials differ since), the same run gave MO-ASHA 40.2
against 44.0 at the budget, never matching; a later first rung (``Settings(grace=3)``) came
level (43.9 against 44.0), and with twice the budget too (``Settings(grace=3, trials=24,
moasha_trials=120)``, 216 epochs) it finished ahead, 47.0 against 46.3, matching only after 91 %
of the epochs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.hypervolume import hypervolume
from benchmarks._harness import Result, format_table, local_ray
from benchmarks.bench_moasha import Trace, table
from benchmarks.bench_moasha import results as results_rows

OBJECTIVES = ("spatial_acc", "adv_acc")
REFERENCE = (0.0, 0.0)


@dataclass
class JobTrace(Trace):
    """:class:`~benchmarks.bench_moasha.Trace` plus the epochs the whole search spent (``moasha``
    may go past the budget; its curve is cut there)."""

    spent: int = 0
    # trial id -> objectives after each epoch (the evaluation subset; the full test set after
    # the last), for the trials that ran all their epochs within the budget
    curves: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A search of the job: its sampler and scheduler overrides."""

    name: str
    overrides: tuple[tuple[str, Any], ...]


def methods(grace: int, eta: float) -> tuple[Method, ...]:
    scheduler = (
        ("scheduler.kind", "moasha"),
        ("scheduler.grace_epochs", grace),
        ("scheduler.reduction_factor", eta),
    )
    return (
        Method("moasha", scheduler),
        Method("none", (("scheduler.kind", "none"),)),
        Method(
            "random",
            (
                ("scheduler.kind", "none"),
                ("search.sampler", "random"),
                ("search.sampler_options", {}),  # the job's population_size is nsga2's
            ),
        ),
    )


@dataclass(frozen=True)
class Settings:
    epochs: int = 9
    trials: int = 12  # of none and random; the budget is trials * epochs
    moasha_trials: int = 60  # at most: the search ends after the budget
    seeds: int = 4
    grace: int = 1
    eta: float = 3.0
    train_size: int = 512
    test_size: int = 200
    subset: int = 100
    eval_pgd_steps: int = 3
    eps_eval: float = 0.1

    @property
    def budget(self) -> int:
        return self.trials * self.epochs

    def overrides(self, method: Method, seed: int, storage: str) -> dict[str, Any]:
        """The ``--set`` overrides of one search (see the module docstring)."""
        trials = self.moasha_trials if method.name == "moasha" else self.trials
        return {
            "name": f"{method.name}-seed{seed}",
            "storage": storage,
            "training.epochs": self.epochs,
            "training.train_pgd_steps": 1,
            "dataset.train_size": self.train_size,
            "dataset.test_size": self.test_size,
            "evaluation.subset": self.subset,
            "evaluation.pgd_steps": self.eval_pgd_steps,
            "evaluation.eps_eval": self.eps_eval,
            "evaluation.profiles": False,
            "model_width": 0.25,
            "search.seed": seed,
            "search.trials": trials,
            **dict(method.overrides),
        }


def _recorder() -> Any:
    from ray.tune import Callback

    class Recorder(Callback):
        """Every result in the order the driver got it: (trial id, epoch, final, objectives)."""

        def __init__(self) -> None:
            self.results: list[tuple[str, int, bool, tuple[float, ...]]] = []

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            values = tuple(float(result[m]) for m in OBJECTIVES)
            final = bool(result.get("final"))
            self.results.append((trial.trial_id, int(result["epoch"]), final, values))

    return Recorder()


def _budget(recorder: Any, budget: int) -> Any:
    from ray import tune

    class Budget(tune.Stopper):
        """Ends the whole search once ``budget`` results (epochs) were received."""

        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return len(recorder.results) >= budget

    return Budget()


def search(method: Method, seed: int, settings: Settings, storage: str) -> JobTrace:
    """One search of the job through ``runner.launch``; its hypervolume by epochs spent."""
    from tune_jobs import runner
    from tune_jobs.spec import load_job

    spec = load_job("quickstart", settings.overrides(method, seed, storage))
    recorder = _recorder()
    budget = _budget(recorder, settings.budget) if method.name == "moasha" else None
    began = time.perf_counter()
    quiet = io.StringIO()  # Tune's progress tables
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        outcome = runner.launch(spec, callbacks=[recorder], stop=budget)
    trace = JobTrace(wall_s=time.perf_counter() - began, spent=len(recorder.results))
    completed: list[tuple[float, ...]] = []
    curves: dict[str, dict[int, tuple[float, ...]]] = {}
    for spent, result in enumerate(recorder.results[: settings.budget], start=1):
        trial_id, epoch, final, values = result
        curves.setdefault(trial_id, {})[epoch] = values
        if final:
            completed.append(values)
            trace.epochs.append(spent)
            trace.hypervolume.append(100.0 * hypervolume(np.array(completed), REFERENCE))
            trace.curves[trial_id] = [curves[trial_id][e] for e in sorted(curves[trial_id])]
    trace.trials = len(outcome.trials)
    trace.stopped = int(outcome.trials["stopped"].astype(bool).sum())
    return trace


def measure(settings: Settings) -> dict[str, list[JobTrace]]:
    """Every method on every seed, methods interleaved within a seed."""
    import optuna

    local_ray()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    traces: dict[str, list[JobTrace]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-moasha-quickstart-") as storage:
            for seed in range(settings.seeds):
                for method in methods(settings.grace, settings.eta):
                    trace = search(method, seed, settings, storage)
                    traces.setdefault(method.name, []).append(trace)
                    print(
                        f"  {method.name} seed {seed}: {trace.trials} trials "
                        f"({trace.stopped} stopped, {len(trace.curves)} completed within the "
                        f"budget), {trace.spent} epochs spent, "
                        f"HV {trace.at(settings.budget):.1f}, {trace.wall_s:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        optuna.logging.set_verbosity(verbosity)
    return traces


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's correlation; NaN (without numpy's warning) when either side is constant."""
    if a.nunique() < 2 or b.nunique() < 2:
        return math.nan
    return float(a.rank().corr(b.rank()))


def rung_correlations(runs: Sequence[JobTrace], levels: Sequence[int]) -> dict[str, list[float]]:
    """How well a rung predicts the end: Spearman's correlation, over the trials of ``runs`` that
    ran all their epochs, between each objective at each rung level and its final value; per
    objective, one value per level (NaN where a rung's values all tie)."""
    curves = [curve for run in runs for curve in run.curves.values()]
    out: dict[str, list[float]] = {}
    for j, metric in enumerate(OBJECTIVES):
        final = pd.Series([curve[-1][j] for curve in curves])
        out[metric] = [
            _spearman(pd.Series([curve[level - 1][j] for curve in curves]), final)
            for level in levels
        ]
    return out


def _correlation(value: float) -> str:
    return "undefined (all values tie)" if math.isnan(value) else f"{value:.2f}"


def _predictiveness(settings: Settings, traces: dict[str, list[JobTrace]]) -> str:
    """Spearman's correlation of each rung's values with the final ones, as text."""
    from tune_jobs.schedulers import rung_levels

    levels = rung_levels(settings.grace, settings.eta, settings.epochs)
    correlations = rung_correlations([*traces["none"], *traces["random"]], levels)
    text = "; ".join(
        f"{metric} "
        + ", ".join(f"epoch {lv} {_correlation(c)}" for lv, c in zip(levels, cs, strict=True))
        for metric, cs in correlations.items()
    )
    return f"Spearman rung vs final value over the none and random trials: {text}"


def results(settings: Settings, traces: dict[str, list[JobTrace]]) -> list[Result]:
    note = (
        f"real quickstart job via runner.launch, {settings.seeds} seeds, budget {settings.trials} "
        f"trials x {settings.epochs} epochs = {settings.budget} epochs (moasha: up to "
        f"{settings.moasha_trials} trials, stopped at the budget), grace {settings.grace}, "
        f"eta {settings.eta:g}, "
        f"{settings.train_size} train / {settings.test_size} test images, eps_eval "
        f"{settings.eps_eval:g}; HV in % of the unit square; {_predictiveness(settings, traces)}"
    )
    methods = {name: traces[name] for name in ("none", "moasha", "random")}
    hv_unit = "the unit square (final spatial_acc, adv_acc)"
    return results_rows("moasha_quickstart", settings.budget, methods, note, hv_unit)


def run(quick: bool, device: str) -> list[Result]:
    """The benchmark (trials run on the CPU: the comparison counts epochs, not seconds)."""
    del device
    settings = (
        Settings(epochs=3, trials=4, moasha_trials=14, seeds=1, train_size=256, test_size=100)
        if quick
        else Settings()
    )
    traces = measure(settings)
    print(table(settings, traces), file=sys.stderr, flush=True)
    print(_predictiveness(settings, traces), file=sys.stderr, flush=True)
    return results(settings, traces)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_moasha_quickstart",
        description="MO-ASHA against no early stopping on the quickstart job (7-11 min).",
    )
    parser.add_argument("--quick", action="store_true", help="one tiny seed (about 1 min)")
    print(format_table(run(parser.parse_args().quick, "cpu")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
