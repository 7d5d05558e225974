"""Audit of the search itself: the searcher does not train a configuration it has already tried,
and the Optuna journal keeps the sampler's state (real Optuna samplers on the project's own
spaces, no Ray)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import optuna
import pytest

from search_spaces import SearchBounds, make_space
from trainables.config import TrialConfig
from trainables.curriculum import cusp_curriculum
from trainables.errors import UserError
from tune_jobs import runner
from tune_jobs._optuna import (
    JOURNAL_FILE,
    MAX_REDRAWS,
    REPEAT_OF_ATTR,
    JournaledOptunaSearch,
    open_journal_study,
)
from tune_jobs.spec import find_job, load_job

METRICS = ["spatial_acc", "adv_acc"]


def _searcher(
    sampler: optuna.samplers.BaseSampler, journal: str | None = None, space: Any = None
) -> JournaledOptunaSearch:
    if space is None:
        bounds = SearchBounds.for_dataset(0.3, theta_max=(0, 180))
        space = make_space("cusp", bounds, epochs=5)
    return JournaledOptunaSearch(
        space=space, metric=METRICS, mode=["max", "max"], sampler=sampler, journal_path=journal
    )


def _result(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A cheap trade-off of the final stages: rotation helps one objective, eps the other."""
    theta = config["theta_stages"][-1][1] / 180 if config.get("theta_stages") else 0.0
    eps = config["eps_stages"][-1][1] / 0.3 if config.get("eps_stages") else 0.0
    return {
        "spatial_acc": 0.2 + 0.7 * theta - 0.3 * eps,
        "adv_acc": 0.6 * eps - 0.2 * theta,
        **extra,
    }


def _study_trial(searcher: JournaledOptunaSearch, trial_id: str) -> optuna.trial.FrozenTrial:
    return searcher._ot_study.trials[searcher._ot_trials[trial_id].number]


def _repeats(searcher: JournaledOptunaSearch) -> list[optuna.trial.FrozenTrial]:
    return [t for t in searcher._ot_study.trials if REPEAT_OF_ATTR in t.user_attrs]


def _enqueue_repeat_of(searcher: JournaledOptunaSearch, trial_id: str) -> None:
    """Make the sampler's next proposal the parameters of ``trial_id`` (as NSGA-II's copy of a
    parent or GP's return to a corner would)."""
    searcher._ot_study.enqueue_trial(_study_trial(searcher, trial_id).params)


@pytest.mark.parametrize(
    ("finish", "state", "values"),
    [
        (lambda s, c: s.on_trial_complete("a", _result(c)), "COMPLETE", True),
        (lambda s, c: s.on_trial_complete("a", _result(c, epoch=1, final=False)), "PRUNED", False),
        (lambda s, c: None, "FAIL", False),  # still running: no outcome to copy
    ],
    ids=["complete", "stopped-early", "running"],
)
def test_a_repeated_configuration_is_answered_from_the_study_and_another_runs(
    finish, state, values
):
    searcher = _searcher(optuna.samplers.RandomSampler(seed=0))
    first = searcher.suggest("a")
    finish(searcher, first)
    _enqueue_repeat_of(searcher, "a")

    second = searcher.suggest("b")

    assert second != first
    (repeat,) = _repeats(searcher)
    assert repeat.user_attrs[REPEAT_OF_ATTR] == _study_trial(searcher, "a").number
    assert repeat.params == _study_trial(searcher, "a").params
    assert repeat.state.name == state
    if values:
        assert repeat.values == _study_trial(searcher, "a").values
    assert _study_trial(searcher, "b").state.name == "RUNNING"


def test_a_failed_configuration_may_run_again():
    searcher = _searcher(optuna.samplers.RandomSampler(seed=0))
    first = searcher.suggest("a")
    searcher.on_trial_complete("a", error=True)
    _enqueue_repeat_of(searcher, "a")
    assert searcher.suggest("b") == first
    assert not _repeats(searcher)


def test_parameters_equal_up_to_rounding_are_a_repeat():
    searcher = _searcher(optuna.samplers.RandomSampler(seed=0))
    first = searcher.suggest("a")
    searcher.on_trial_complete("a", _result(first))
    params = dict(_study_trial(searcher, "a").params)
    params["theta_max"] = params["theta_max"] * (1 + 1e-15)  # GP: 179.99999999999997 for 180
    searcher._ot_study.enqueue_trial(params)
    assert searcher.suggest("b") != first
    assert len(_repeats(searcher)) == 1


def test_a_sampler_that_only_repeats_still_gets_a_trial_after_max_redraws():
    space = {"x": optuna.distributions.CategoricalDistribution(["a", "b"])}
    searcher = _searcher(optuna.samplers.RandomSampler(seed=0), space=space)
    seen = []
    for trial_id in ("t0", "t1", "t2", "t3", "t4"):
        seen.append(searcher.suggest(trial_id)["x"])
        searcher.on_trial_complete(trial_id, {"spatial_acc": 0.5, "adv_acc": 0.5})
        if len(set(seen)) == 2:
            break
    config = searcher.suggest("last")  # both values taken: every redraw repeats
    assert config["x"] in ("a", "b")
    assert len(_repeats(searcher)) == MAX_REDRAWS


def _run(searcher: JournaledOptunaSearch, n: int, concurrent: int) -> list[dict[str, Any]]:
    """Suggest ``n`` trials with ``concurrent`` running at once, completing the oldest first."""
    configs: dict[str, dict[str, Any]] = {}
    running: list[str] = []
    for i in range(n):
        trial_id = f"t{i:03d}"
        configs[trial_id] = searcher.suggest(trial_id)
        running.append(trial_id)
        while running and (len(running) >= concurrent or i == n - 1):
            done = running.pop(0)
            searcher.on_trial_complete(done, _result(configs[done]))
    return list(configs.values())


def test_the_quickstart_nsga2_search_runs_no_configuration_twice():
    # NSGA-II with the quickstart's population of 4 copies parents: without the redraw this seed
    # runs 7 of 64 configurations twice (0-7 over seeds 0-9)
    job = load_job(find_job("quickstart"))
    space = job.make_space()

    def search() -> list[dict[str, Any]]:
        sampler = optuna.samplers.NSGAIISampler(seed=2, **job.search.sampler_options)
        return _run(_searcher(sampler, space=space), 64, job.search.max_concurrent)

    configs = search()
    counts = Counter(json.dumps(c, sort_keys=True) for c in configs)
    assert len(configs) == 64 and max(counts.values()) == 1
    assert configs == search()  # still reproducible from the seed


def test_a_study_continued_from_the_journal_keeps_nsga2s_generations(tmp_path):
    journal = str(tmp_path / JOURNAL_FILE)
    searcher = _searcher(optuna.samplers.NSGAIISampler(seed=0, population_size=4), journal)
    _run(searcher, 12, 1)
    key = searcher._ot_study.sampler._get_generation_key()
    ran = sorted(searcher._ot_trials.values(), key=lambda t: t.number)
    generations = [searcher._ot_study.trials[t.number].system_attrs[key] for t in ran]
    assert generations[0] == 0 and generations[-1] >= 2

    study = open_journal_study(journal)  # the mirror of the 12 trials Tune ran
    assert [t.system_attrs.get(key) for t in study.trials] == generations
    study.sampler = optuna.samplers.NSGAIISampler(seed=0, population_size=4)
    trial = study.ask()
    searcher._space(trial)
    # it continues where the search was, rather than starting a random generation 0 again
    assert study._storage.get_trial(trial._trial_id).system_attrs[key] >= generations[-1]


def test_cusp_and_joint_searches_start_from_the_papers_schedule():
    spec = load_job(find_job("cifar10-cusp"))
    first = runner._searcher(spec, None).searcher.suggest("first")
    curriculum = TrialConfig.from_dict({**spec.trial_config(), **first}).build_curriculum()
    assert curriculum.stages() == cusp_curriculum(120, 8 / 255).stages()
    assert first["method"] == "pgd" and first["model"] in ("vgg16", "resnet18")
    quickstart = load_job(find_job("quickstart"))  # joint: the step schedule is one of its kinds
    assert quickstart.paper_point() is not None
    assert quickstart.paper_point() == load_job(find_job("mnist-cusp")).paper_point()


@pytest.mark.parametrize(
    "overrides",
    [
        {"search.paper_first": False},
        {"search.bounds.theta_max": [0, 90]},  # the space does not reach 180 degrees
        {"search.bounds.methods": ["trades"]},
        {"search.preset": "adversarial-only"},
    ],
)
def test_no_paper_point_when_asked_not_to_or_outside_the_space(overrides):
    spec = load_job("quickstart", overrides)
    assert spec.paper_point() is None
    assert runner._searcher(spec, None).searcher._points_to_evaluate in (None, [])


def test_paper_first_must_be_a_bool():
    with pytest.raises(UserError, match="search.paper_first must be true or false, got 'yes'"):
        load_job("quickstart", {"search.paper_first": "yes"})
