"""Bad arguments to the public library functions raise one UserError that says what to change,
not a raw torch error or a silently wrong (NaN) result."""

from __future__ import annotations

import pytest
import torch

from trainables.attacks import combined_attack, fgsm, pgd_linf, spatial_attack, trades_attack
from trainables.curriculum import curriculum_from_config, cusp_curriculum
from trainables.errors import UserError
from trainables.evaluation import (
    EvalSettings,
    adversarial_accuracy,
    clean_accuracy,
    evaluate,
    invariance_profile,
    robustness_profile,
    spatial_accuracy,
    worst_case_spatial_accuracy,
)
from trainables.spatial import affine_batch, random_spatial, rotation_grid, sample_spatial_params

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 0])


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))


def _one_line(caught: pytest.ExceptionInfo[UserError]) -> None:
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------- spatial


@pytest.mark.parametrize(
    ("batch", "angles", "shifts", "message"),
    [
        (
            (1, 8, 8),
            (1,),
            None,
            r"images must be a tensor of shape \(N, C, H, W\), got \(1, 8, 8\)",
        ),
        ((2, 1, 1, 8, 8), (2,), None, r"images must be .*got \(2, 1, 1, 8, 8\)"),
        ((4, 1, 8, 8), (3,), None, r"angles_deg must be a tensor of shape \(4,\).*got \(3,\)"),
        ((4, 1, 8, 8), (2, 2), None, r"angles_deg must be .*got \(2, 2\)"),  # was reshaped
        ((4, 1, 8, 8), (4,), (4,), r"translations_px must be .*\(4, 2\).*got \(4,\)"),
        ((4, 1, 8, 8), (4,), (8,), r"translations_px must be .*got \(8,\)"),  # was reshaped
        ((4, 1, 8, 8), (4,), (2, 4), r"translations_px must be .*got \(2, 4\)"),  # was reshaped
        ((4, 1, 8, 8), (4,), (3, 2), r"translations_px must be .*got \(3, 2\)"),
    ],
)
def test_affine_batch_refuses_wrong_shapes(batch, angles, shifts, message):
    shift_tensor = None if shifts is None else torch.zeros(shifts)
    with pytest.raises(UserError, match=message) as caught:
        affine_batch(torch.rand(batch), torch.zeros(angles), shift_tensor)
    _one_line(caught)


def test_affine_batch_refuses_non_tensor_angles(images):
    with pytest.raises(UserError, match="angles_deg must be a tensor of shape .*got float"):
        affine_batch(images, 30.0)  # type: ignore[arg-type]


def test_affine_batch_still_takes_valid_shapes(images):
    out = affine_batch(images, torch.zeros(4), torch.zeros(4, 2))
    torch.testing.assert_close(out, images)
    assert affine_batch(images[:0], torch.zeros(0)).shape == (0, 1, 8, 8)


@pytest.mark.parametrize(
    ("angle", "shift", "name"),
    [
        (NAN, 0.0, "max_angle_deg"),
        (INF, 0.0, "max_angle_deg"),
        (30.0, NAN, "max_translate_px"),
        (30.0, -INF, "max_translate_px"),
        ("30", 0.0, "max_angle_deg"),
        (None, 0.0, "max_angle_deg"),
    ],
)
def test_random_spatial_refuses_non_finite_ranges(images, angle, shift, name):
    with pytest.raises(UserError, match=f"{name} must be a finite number, got") as caught:
        random_spatial(images, angle, shift, torch.Generator())
    _one_line(caught)


def test_sample_spatial_params_and_rotation_grid_refuse_bad_arguments():
    with pytest.raises(UserError, match="max_angle_deg must be a finite number, got nan"):
        sample_spatial_params(4, NAN, 0.0)
    with pytest.raises(UserError, match="max_angle_deg must be a finite number, got nan"):
        rotation_grid(NAN, 3)
    for count in (0, -1, 2.5):
        with pytest.raises(UserError, match=f"count must be an int of at least 1, got {count}"):
            rotation_grid(30.0, count)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- attacks


@pytest.mark.parametrize("steps", [7.0, 2.5, True])
def test_pgd_refuses_steps_that_are_not_ints(model, images, labels, steps):
    with pytest.raises(UserError, match=f"steps must be an int, got {steps}") as caught:
        pgd_linf(model, images, labels, 0.1, 0.01, steps)
    _one_line(caught)


@pytest.mark.parametrize("random_start", [True, False])
def test_attacks_refuse_uint8_images(model, images, labels, random_start):
    pixels = (images * 255).to(torch.uint8)
    message = r"attacks take float images in \[0, 1\], got torch.uint8; .*images.float\(\) / 255"
    with pytest.raises(UserError, match=message) as caught:
        pgd_linf(model, pixels, labels, 0.1, 0.01, 2, random_start=random_start)
    _one_line(caught)
    with pytest.raises(UserError, match=message):
        fgsm(model, pixels, labels, 0.1)
    with pytest.raises(UserError, match=message):
        trades_attack(model, pixels, 0.1, 0.01, 2)
    with pytest.raises(UserError, match=message):
        spatial_attack(model, pixels, labels, 10.0, 1.0, 2)
    with pytest.raises(UserError, match=message):
        combined_attack(
            model,
            pixels,
            labels,
            max_angle_deg=10.0,
            max_translate_px=0.0,
            eps=0.1,
            step_size=0.01,
            steps=2,
        )


@pytest.mark.parametrize(
    ("eps", "step_size", "name"), [(NAN, 0.01, "eps"), (INF, 0.01, "eps"), (0.1, NAN, "step_size")]
)
def test_attacks_refuse_non_finite_budgets(model, images, labels, eps, step_size, name):
    # NaN used to come back as NaN images, inf as NaN after the random start
    with pytest.raises(UserError, match=f"{name} must be a finite number"):
        pgd_linf(model, images, labels, eps, step_size, 2)
    with pytest.raises(UserError, match=f"{name} must be a finite number"):
        trades_attack(model, images, eps, step_size, 2)


@pytest.mark.parametrize(
    ("bad_labels", "got"),
    [
        (torch.zeros(4), r"torch.float32 of shape \(4,\)"),
        (torch.zeros(3, dtype=torch.long), r"torch.int64 of shape \(3,\)"),
        ([0, 1, 2, 0], "list"),
    ],
)
def test_attacks_refuse_labels_that_are_not_one_class_per_image(model, images, bad_labels, got):
    with pytest.raises(UserError, match=rf"labels must be an int64 tensor of shape \(4,\).*{got}"):
        pgd_linf(model, images, bad_labels, 0.1, 0.01, 2)
    with pytest.raises(UserError, match="labels must be an int64 tensor"):
        spatial_attack(model, images, bad_labels, 10.0, 1.0, 2)


@pytest.mark.parametrize(
    ("eps", "step_size", "steps"), [(-0.1, 0.01, 2), (0.1, -0.01, 2), (0.1, 0.01, -1)]
)
def test_trades_refuses_negative_budgets(model, images, eps, step_size, steps):
    # a negative eps used to return images outside the ball without complaint
    with pytest.raises(UserError, match="eps, step_size and steps must be non-negative, got"):
        trades_attack(model, images, eps, step_size, steps)


def test_trades_refuses_steps_that_are_not_ints(model, images):
    with pytest.raises(UserError, match="steps must be an int, got 2.5"):
        trades_attack(model, images, 0.1, 0.01, 2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_angle_deg": NAN}, "max_angle_deg must be a finite number, got nan"),
        ({"max_translate_px": INF}, "max_translate_px must be a finite number, got inf"),
        ({"tries": 2.0}, "tries must be an int, got 2.0"),
        ({"grid": (2.0, 1, 1)}, r"grid must be three ints \(angles, tx, ty\), got \(2.0, 1, 1\)"),
        ({"grid": (2, 1)}, r"grid must be three ints .*got \(2, 1\)"),
        ({"max_batch": 100.0}, "max_batch must be an int, got 100.0"),
    ],
)
def test_spatial_attack_refuses_bad_settings(model, images, labels, kwargs, message):
    args = {"max_angle_deg": 10.0, "max_translate_px": 1.0, "tries": 2, **kwargs}
    with pytest.raises(UserError, match=message):
        spatial_attack(model, images, labels, **args)


def test_attacks_still_take_valid_arguments(model, images, labels):
    adv = pgd_linf(model, images, labels, 0.1, 0.05, 2, generator=torch.Generator())
    assert (adv - images).abs().max() <= 0.1 + 1e-6
    assert torch.equal(pgd_linf(model, images, labels, 0.0, 0.01, 3), images)
    assert trades_attack(model, images, 0.1, 0.05, 1).shape == images.shape
    worst = spatial_attack(model, images, labels, 10.0, 1.0, grid=(3, 1, 1))
    assert worst.shape == images.shape


# ---------------------------------------------------------------------------------- evaluation


SMALL = EvalSettings(pgd_steps=1, batch_size=2)


@pytest.mark.parametrize("settings", [{"eps_eval": 0.1}, None, 0.1])
def test_evaluation_refuses_settings_that_are_not_eval_settings(model, images, labels, settings):
    message = "settings must be an EvalSettings, got .*; build one with EvalSettings"
    for call in (
        lambda: evaluate(model, images, labels, settings),
        lambda: spatial_accuracy(model, images, labels, 30.0, settings),
        lambda: adversarial_accuracy(model, images, labels, 0.1, settings),
        lambda: invariance_profile(model, images, labels, settings),
        lambda: robustness_profile(model, images, labels, settings),
    ):
        with pytest.raises(UserError, match=message) as caught:
            call()
        _one_line(caught)


@pytest.mark.parametrize(
    ("bad_images", "bad_labels", "message"),
    [
        (torch.rand(4, 8, 8), None, r"images must be a tensor of shape \(N, C, H, W\), got \(4, 8"),
        ([[0.0]], None, "images must be a tensor of shape .*got list"),
        (torch.zeros(4, 1, 8, 8, dtype=torch.long), None, "images must be uint8 pixels or floats"),
        (None, torch.zeros(4), r"labels must be a 1-D int64 tensor.*torch.float32 of shape \(4,\)"),
        (None, [0, 1, 2, 0], "labels must be a 1-D int64 tensor.*got list"),
    ],
)
def test_evaluation_refuses_bad_images_and_labels(
    model, images, labels, bad_images, bad_labels, message
):
    x = images if bad_images is None else bad_images
    y = labels if bad_labels is None else bad_labels
    with pytest.raises(UserError, match=message):
        evaluate(model, x, y, SMALL)
    with pytest.raises(UserError, match=message):
        clean_accuracy(model, x, y)


@pytest.mark.parametrize("batch_size", [0, 2.5, SMALL])
def test_evaluation_refuses_bad_batch_sizes(model, images, labels, batch_size):
    with pytest.raises(UserError, match="batch_size must be a positive integer, got"):
        clean_accuracy(model, images, labels, batch_size)
    with pytest.raises(UserError, match="batch_size must be a positive integer, got"):
        worst_case_spatial_accuracy(model, images, labels, tries=1, batch_size=batch_size)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pgd_steps": 2.5}, "EvalSettings.pgd_steps must be an int, got 2.5"),
        ({"batch_size": 2.5}, "EvalSettings.batch_size must be an int, got 2.5"),
        ({"seed": 1.5}, "EvalSettings.seed must be an int, got 1.5"),
        ({"eps_eval": "0.3"}, "EvalSettings.eps_eval must be a number, got '0.3'"),
    ],
)
def test_eval_settings_of_the_wrong_type_are_refused(change, message):
    with pytest.raises(UserError, match=message):
        EvalSettings(**change)


def test_evaluation_still_takes_uint8_and_float_images(model, images, labels):
    pixels = (images * 255).round().to(torch.uint8)
    result = evaluate(model, pixels, labels, SMALL)
    assert set(result) >= {"clean_acc", "adv_acc"}
    assert 0.0 <= clean_accuracy(model, images, labels, batch_size=3) <= 1.0


# ---------------------------------------------------------------------------------- curriculum


@pytest.mark.parametrize("config", [None, "cusp", [("curriculum", "cusp")]])
def test_curriculum_from_config_refuses_a_config_that_is_not_a_mapping(config):
    with pytest.raises(UserError, match="the curriculum config must be a mapping") as caught:
        curriculum_from_config(config, epochs=10, eps_scale=0.3)  # type: ignore[arg-type]
    _one_line(caught)


@pytest.mark.parametrize("eps_scale", ["0.3", None])
def test_curriculum_from_config_names_eps_scale_of_the_wrong_type(eps_scale):
    with pytest.raises(ValueError, match="eps_scale must be in"):
        curriculum_from_config({}, epochs=10, eps_scale=eps_scale)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps_scale": -0.1}, r"eps_scale must be in \[0, 1\], got -0.1"),
        ({"eps_scale": 2.0}, r"eps_scale must be in \[0, 1\], got 2.0"),
        ({"eps_scale": NAN}, r"eps_scale must be in \[0, 1\], got nan"),
        ({"eps_scale": "0.3"}, "eps_scale must be a number, got '0.3'"),
        ({"theta_max": -10.0}, r"theta_max must be in \[0, 180\], got -10.0"),
    ],
)
def test_cusp_curriculum_names_its_own_argument(kwargs, message):
    with pytest.raises(UserError, match=message) as caught:
        cusp_curriculum(10, **kwargs)
    _one_line(caught)


def test_cusp_curriculum_still_takes_a_zero_budget():
    assert cusp_curriculum(10, 0.0).stages()[-1].eps == 0.0
