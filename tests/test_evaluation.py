from __future__ import annotations

import pytest

from trainables.evaluation import (
    METRICS,
    EvalSettings,
    adversarial_accuracy,
    clean_accuracy,
    evaluate,
    invariance_profile,
    robustness_profile,
    spatial_accuracy,
    worst_case_spatial_accuracy,
)

SETTINGS = EvalSettings(
    theta_eval=90.0, eps_eval=0.2, pgd_steps=5, pgd_step_size=0.05, batch_size=128
)


@pytest.fixture
def test_set(digits):
    return digits.test_images[:300], digits.test_labels[:300]


def test_evaluate_reports_every_metric_in_unit_interval(trained_model, test_set):
    metrics = evaluate(trained_model, *test_set, SETTINGS)
    assert set(metrics) == set(METRICS)
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["clean_acc"] > 0.8
    assert metrics["adv_acc"] < metrics["clean_acc"]
    assert metrics["spatial_acc"] < metrics["clean_acc"]
    assert metrics["combined_acc"] <= min(metrics["adv_acc"], metrics["spatial_acc"]) + 0.05


def test_evaluate_agrees_with_single_metric_functions(trained_model, test_set):
    metrics = evaluate(trained_model, *test_set, SETTINGS)
    assert metrics["clean_acc"] == clean_accuracy(trained_model, *test_set)
    spatial, invariance = spatial_accuracy(trained_model, *test_set, 90.0, SETTINGS)
    assert metrics["spatial_acc"] == spatial
    assert metrics["invariance_rate"] == invariance
    assert metrics["adv_acc"] == adversarial_accuracy(trained_model, *test_set, 0.2, SETTINGS)


def test_evaluate_is_reproducible_and_seed_dependent(trained_model, test_set):
    assert evaluate(trained_model, *test_set, SETTINGS) == evaluate(
        trained_model, *test_set, SETTINGS
    )
    other = spatial_accuracy(trained_model, *test_set, 90.0, SETTINGS.replace(seed=7))
    assert other != spatial_accuracy(trained_model, *test_set, 90.0, SETTINGS)


def test_zero_ranges_reduce_to_clean_accuracy(trained_model, test_set):
    metrics = evaluate(trained_model, *test_set, SETTINGS.replace(theta_eval=0.0, eps_eval=0.0))
    clean = metrics["clean_acc"]
    assert metrics["spatial_acc"] == metrics["adv_acc"] == metrics["combined_acc"] == clean
    assert metrics["invariance_rate"] == 1.0


def test_invariance_profile_starts_at_clean_and_falls(trained_model, test_set):
    profile = invariance_profile(trained_model, *test_set, SETTINGS, thetas=(0, 90, 180))
    assert list(profile) == ["spatial_acc@0", "spatial_acc@90", "spatial_acc@180"]
    assert profile["spatial_acc@0"] == clean_accuracy(trained_model, *test_set)
    assert profile["spatial_acc@180"] < profile["spatial_acc@0"] - 0.2


def test_robustness_profile_starts_at_clean_and_falls(trained_model, test_set):
    profile = robustness_profile(trained_model, *test_set, SETTINGS)
    assert len(profile) == 5 and "adv_acc@0" in profile and "adv_acc@0.2" in profile
    assert profile["adv_acc@0"] == clean_accuracy(trained_model, *test_set)
    assert profile["adv_acc@0.2"] < profile["adv_acc@0"]


def test_worst_case_spatial_is_below_random_spatial(trained_model, test_set):
    random_acc, _ = spatial_accuracy(
        trained_model, *test_set, 30.0, SETTINGS.replace(translate_eval=3 / 28)
    )
    worst = worst_case_spatial_accuracy(trained_model, *test_set, tries=10)
    assert worst < random_acc
