"""``bench_moasha --same-trials`` compares like with like: with the random sampler no early
stopping and MO-ASHA draw the same configs, and MO-ASHA spends fewer epochs on the same number
of trials; the trial cap leaves the other studies' runs as they were."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna")
pytest.importorskip("ray")

from benchmarks.bench_moasha import (  # noqa: E402
    METHODS,
    Settings,
    SyntheticCurricula,
    same_trials_seed,
    simulate,
)

SETTINGS = Settings(epochs=9, trials=12, workers=4)  # rungs at 1 and 3 of 9 epochs
FRONT_HV = 1.0  # HV in units of the reference box: the comparisons need no true front


@pytest.mark.parametrize("seed", [0, 1])
def test_random_sampler_pairs_the_same_configs(seed):
    found = same_trials_seed(("random", "random + moasha"), SETTINGS, seed, FRONT_HV)
    assert found.same_prefix == SETTINGS.trials  # the same N configs, in the same order
    assert found.front_stopped is not None and 0 <= found.front_stopped <= found.front
    assert found.spent_share < 1.0  # fewer epochs than N * epochs
    # MO-ASHA completes a subset of the same configs, so it can at best tie
    assert found.hv_moasha <= found.hv_none + 1e-9
    assert (found.front_stopped == 0) == (found.hv_moasha >= found.hv_none - 1e-9)


def test_tpe_pairs_share_the_random_startup_trials():
    found = same_trials_seed(("none", "moasha"), SETTINGS, 0, FRONT_HV)
    assert found.same_prefix >= min(10, SETTINGS.trials)  # TPE's 10 random startup trials
    assert found.spent_share < 1.0


def test_max_trials_caps_trials_and_leaves_the_default_alone():
    problem = SyntheticCurricula(epochs=SETTINGS.epochs)
    moasha, none = METHODS[0], METHODS[1]
    args = (problem, 0, SETTINGS.budget, SETTINGS.workers, SETTINGS.grace, SETTINGS.eta, FRONT_HV)
    capped = simulate(moasha, *args, max_trials=SETTINGS.trials)
    assert len(capped.configs) == capped.trials == SETTINGS.trials
    assert capped.stopped > 0 and capped.spent < SETTINGS.budget
    assert sum(capped.full) == capped.trials - capped.stopped
    # without the cap, no early stopping has budget // epochs trials, MO-ASHA spends the budget
    plain = simulate(none, *args)
    assert plain.trials == SETTINGS.trials and all(plain.full)
    assert plain.spent == SETTINGS.budget
    uncapped = simulate(moasha, *args)
    assert uncapped.spent == SETTINGS.budget and len(uncapped.configs) > SETTINGS.trials
