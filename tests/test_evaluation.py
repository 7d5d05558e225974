from __future__ import annotations

import pytest

from trainables.errors import UserError
from trainables.evaluation import (
    METRICS,
    EvalSettings,
    adversarial_accuracy,
    clean_accuracy,
    evaluate,
    invariance_profile,
    robustness_profile,
    spatial_accuracy,
    worst_case_combined_accuracy,
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


def test_worst_case_combined_takes_the_worst_of_pgd_on_each_transform(trained_model, test_set):
    images, labels = test_set[0][:100], test_set[1][:100]
    # with eps 0 and one try it is the accuracy under one random +-30 deg, +-3 px transform
    one_transform = worst_case_combined_accuracy(
        trained_model, images, labels, SETTINGS.replace(eps_eval=0.0), tries=1
    )
    random_acc, _ = spatial_accuracy(
        trained_model, images, labels, 30.0, SETTINGS.replace(translate_eval=3 / 28)
    )
    assert one_transform == random_acc
    # the first try of ten is that one try: an image robust to all ten is robust to it
    one = worst_case_combined_accuracy(trained_model, images, labels, SETTINGS, tries=1)
    ten = worst_case_combined_accuracy(trained_model, images, labels, SETTINGS, tries=10)
    assert ten < one < random_acc
    assert ten <= worst_case_spatial_accuracy(trained_model, images, labels, tries=10)
    with pytest.raises(UserError, match="tries must be a positive int, got 0"):
        worst_case_combined_accuracy(trained_model, images, labels, SETTINGS, tries=0)


def test_float_images_in_unit_range_give_the_same_metrics_as_uint8(trained_model, digits):
    # iterate_batches and the attacks hand out floats in [0, 1]; they used to be scaled twice
    images, labels = digits.test_images[:64], digits.test_labels[:64]
    settings = EvalSettings(pgd_steps=2, batch_size=32)
    from_uint8 = evaluate(trained_model, images, labels, settings)
    from_float = evaluate(trained_model, images.float() / 255, labels, settings)
    assert from_float == pytest.approx(from_uint8)
    assert from_uint8["clean_acc"] > 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "EvalSettings.batch_size must be at least 1, got 0"),
        ({"eps_eval": -1.0}, "EvalSettings.eps_eval must be in"),
        ({"theta_eval": 400.0}, "EvalSettings.theta_eval must be in"),
        ({"pgd_steps": -1}, "EvalSettings.pgd_steps must be at least 0"),
    ],
)
def test_eval_settings_out_of_range_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        EvalSettings(**change)


def test_images_and_labels_of_different_lengths_are_refused(trained_model, digits):
    with pytest.raises(ValueError, match="64 images but 3 labels"):
        evaluate(trained_model, digits.test_images[:64], digits.test_labels[:3], EvalSettings())
