"""``ray_overhead``: what Ray Tune adds to a search, per trial, beyond the trials' own work.

A real search through :func:`tune_jobs.runner.build_tuner` (multi-objective ``OptunaSearch``
behind a ``ConcurrencyLimiter``, the dataset through ``tune.with_parameters``, a checkpoint per
epoch written to local storage) of the shipped ``quickstart`` job made tiny: N trials of one
epoch of a width-0.25 ``stdcnn`` on 128 synthetic digits (one PGD step, no profiles), two at a
time on a private local Ray with 2 CPUs and 1 CPU per trial.

The work of a trial is its ``epoch_time_s`` (training and evaluation, as ``Trial.run_epoch``
measures it); everything else is overhead: starting actors, imports and first calls in a new
worker process, the searcher, scheduling, reporting, checkpoints. Three figures:

- overhead per trial over the whole search: ``(wall - work / 2) / N``, the wall time a trial costs
  beyond its share of the work when two run at a time (Ray's own start is not counted);
- steady-state overhead per trial: for each trial after the first two, the time from the moment
  its slot was freed (the previous completion) to its own completion, minus its work; the median;
- the fixed start of a search: from ``Tuner.fit()`` to the first trial's start.

Ours is the Tuner as ``build_tuner`` makes it (``reuse_actors=True``); the baseline is the very
same Tuner with ``reuse_actors=False`` (every trial starts a new actor process).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

from ray.tune import Callback

from benchmarks._harness import Result, local_ray

CONCURRENCY = 2
TARGET_S = 1.0


def _spec(trials: int, storage: str, name: str) -> Any:
    from tune_jobs.spec import load_job

    return load_job(
        "quickstart",
        {
            "name": name,
            "storage": storage,
            "dataset.train_size": 128,
            "dataset.test_size": 64,
            "model_width": 0.25,
            "training.epochs": 1,
            "training.batch_size": 64,
            "training.train_pgd_steps": 1,
            "evaluation.pgd_steps": 1,
            "evaluation.subset": 32,
            "evaluation.profiles": False,
            "search.trials": trials,
            "search.max_concurrent": CONCURRENCY,
        },
    )


@contextlib.contextmanager
def _reuse_actors(reuse: bool) -> Iterator[None]:
    """Make ``build_tuner`` construct its ``TuneConfig`` with ``reuse_actors=reuse``."""
    from ray import tune

    original = tune.TuneConfig

    def config(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "reuse_actors": reuse})

    with mock.patch.object(tune, "TuneConfig", config):
        yield


class _Timeline(Callback):
    """Records when each trial starts and completes (driver clock)."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.completed: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started.setdefault(trial.trial_id, time.perf_counter())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.completed[trial.trial_id] = time.perf_counter()


def _search(trials: int, reuse: bool, storage: str, name: str, dataset: Any) -> dict[str, float]:
    """Run one tiny search and measure it (see the module docstring)."""
    from tune_jobs import runner

    spec = _spec(trials, storage, name)
    timeline = _Timeline()
    with _reuse_actors(reuse):
        tuner = runner.build_tuner(spec, dataset, callbacks=[timeline])
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        start = time.perf_counter()
        results = tuner.fit()
        wall = time.perf_counter() - start
    frame = results.get_dataframe()
    errors = [r.error for r in results if r.error is not None]
    if errors or len(frame) != trials:
        raise RuntimeError(f"the search did not finish its {trials} trials: {errors[:1]}")
    work = dict(zip(frame["trial_id"], frame["epoch_time_s"].astype(float), strict=True))
    order = sorted(timeline.started, key=timeline.started.get)
    steady = []
    for trial_id in order[CONCURRENCY:]:
        freed = max(
            (t for t in timeline.completed.values() if t <= timeline.started[trial_id]),
            default=timeline.started[trial_id],
        )
        steady.append(timeline.completed[trial_id] - freed - work[trial_id])
    total_work = sum(work.values())
    return {
        "wall": wall,
        "work": total_work,
        "time_total": float(frame["time_total_s"].sum()),
        "trials": trials,
        "overhead": (wall - total_work / CONCURRENCY) / trials,
        "steady": statistics.median(steady) if steady else float("nan"),
        "start": min(timeline.started.values()) - start,
    }


def run(quick: bool, device: str) -> list[Result]:
    import optuna

    from trainables.datasets import load_dataset

    del device  # trials run on the CPU here: the overhead is Ray's, not the model's
    trials = 3 if quick else 8
    repeats = 1 if quick else 3
    ray_start = local_ray()
    dataset = load_dataset("synthetic-digits", n_train=128, n_test=64, cache=False)
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with tempfile.TemporaryDirectory(prefix="cusp-bench-ray-") as storage:
            if not quick:  # driver-side imports and first calls
                _search(2, True, storage, "warmup", dataset)
            for index in range(repeats):
                for reuse in (False, True):  # alternating; a cold driver costs the baseline
                    name = f"reuse-{reuse}-{index}"
                    runs[reuse].append(_search(trials, reuse, storage, name, dataset))
    finally:
        optuna.logging.set_verbosity(verbosity)

    def med(reuse: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[reuse])

    setting = (
        f"{trials} trials of 1 tiny epoch (work {med(True, 'work') / trials:.2f} s each), "
        f"{CONCURRENCY} at a time on 2 CPUs, through build_tuner; ours reuse_actors=True, "
        "baseline reuse_actors=False"
    )
    extra = {"runs_reuse": runs[True], "runs_no_reuse": runs[False], "ray_start_s": ray_start}
    target = f"ours < {TARGET_S:g} s"
    return [
        Result(
            f"ray_overhead per trial, whole search (N={trials})",
            med(True, "overhead"),
            med(False, "overhead"),
            target=target,
            ok=med(True, "overhead") < TARGET_S,
            note=(
                f"(wall - work/{CONCURRENCY}) / N: {setting}; wall {med(True, 'wall'):.1f} vs "
                f"{med(False, 'wall'):.1f} s for {med(True, 'work'):.1f} vs "
                f"{med(False, 'work'):.1f} s of work; includes the fixed start below and the "
                "first trial of each actor (a new process: imports, torch's first calls)"
            ),
            extra=extra,
        ),
        Result(
            "ray_overhead per trial, steady state",
            med(True, "steady"),
            med(False, "steady"),
            target=target,
            ok=med(True, "steady") < TARGET_S,
            note=(
                f"median over the trials after the first {CONCURRENCY} of (completion - the "
                f"completion that freed its slot - its work): {setting}"
            ),
        ),
        Result(
            "ray_overhead fixed start of a search",
            med(True, "start"),
            med(False, "start"),
            note=(
                "from Tuner.fit() to the first trial's start (setup, searcher, actors); "
                f"Ray's own start ({ray_start:.1f} s) comes before and is not counted"
            ),
        ),
    ]
