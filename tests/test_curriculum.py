"""Tests for trainables.curriculum: pure Python, no torch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.curriculum import (
    ORDERS,
    SCHEDULE_KINDS,
    ConstantSchedule,
    Curriculum,
    RampSchedule,
    StepSchedule,
    curriculum_from_config,
    curriculum_keys,
    cusp_curriculum,
    none_curriculum,
    paper_lr_milestones,
)
from trainables.errors import UserError

EPS8 = 8 / 255


def _starts(schedule: StepSchedule) -> list[int]:
    return [start for start, _ in schedule.stages]


def _assert_monotone(values: list[float]) -> None:
    assert all(b >= a for a, b in zip(values, values[1:], strict=False)), values


# --- the paper's schedule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "theta", "eps_k"),
    [(1, 120, 2), (74, 120, 2), (75, 150, 4), (89, 150, 4), (90, 180, 8), (120, 180, 8)],
)
def test_cusp_matches_the_paper_table(epoch: int, theta: float, eps_k: int) -> None:
    stage = cusp_curriculum().at(epoch)
    assert stage.epoch == epoch
    assert stage.theta_deg == theta
    assert abs(stage.eps - eps_k / 255) < 1e-12
    assert stage.translate_frac == 0.0


def test_cusp_lr_schedule_matches_the_paper() -> None:
    cusp = cusp_curriculum()
    assert cusp.lr_milestones == (75, 90, 100)
    assert cusp.lr_gamma == 0.1
    expected = {1: 1.0, 74: 1.0, 75: 0.1, 89: 0.1, 90: 0.01, 99: 0.01, 100: 0.001, 120: 0.001}
    for epoch, factor in expected.items():
        assert math.isclose(cusp.lr_factor(epoch), factor, rel_tol=1e-12), epoch


def test_cusp_preset_from_config_equals_the_function() -> None:
    built = curriculum_from_config({"curriculum": "cusp"}, epochs=120, eps_scale=EPS8)
    assert built == cusp_curriculum(120, EPS8)
    assert built.describe() == "cusp θ120→180 ε2/255→8/255"


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 5, 10, 30, 57, 120, 200])
@pytest.mark.parametrize("eps_scale", [EPS8, 0.3])
def test_scaled_cusp_is_valid_and_ends_at_full_budget(epochs: int, eps_scale: float) -> None:
    cusp = cusp_curriculum(epochs, eps_scale)
    for schedule in (cusp.theta, cusp.eps):
        assert isinstance(schedule, StepSchedule)
        starts = _starts(schedule)
        assert starts[0] == 1
        assert all(b > a for a, b in zip(starts, starts[1:], strict=False))
        assert starts[-1] <= epochs
    last = cusp.at(epochs)
    assert last.theta_deg == 180.0
    assert last.eps == eps_scale
    _assert_monotone([s.theta_deg for s in cusp.stages()])
    _assert_monotone([s.eps for s in cusp.stages()])
    milestones = cusp.lr_milestones
    assert all(2 <= m <= epochs for m in milestones)
    assert all(b > a for a, b in zip(milestones, milestones[1:], strict=False))


@pytest.mark.parametrize(
    ("epochs", "starts", "milestones"),
    [
        (120, [1, 75, 90], (75, 90, 100)),
        (30, [1, 20, 23], (20, 23, 26)),
        (10, [1, 7, 8], (7, 8, 9)),
        (4, [1, 2, 3], (2, 3, 4)),
        (3, [1, 2, 3], (2, 3)),
        (2, [1, 2], (2,)),
        (1, [1], ()),
    ],
)
def test_scaled_cusp_stage_starts(epochs: int, starts: list[int], milestones: tuple) -> None:
    cusp = cusp_curriculum(epochs)
    assert _starts(cusp.theta) == starts
    assert cusp.lr_milestones == milestones == paper_lr_milestones(epochs)


def test_scaled_cusp_eps_for_mnist() -> None:
    cusp = cusp_curriculum(10, 0.3)
    assert [v for _, v in cusp.eps.stages] == pytest.approx([0.075, 0.15, 0.3], abs=1e-12)
    assert [v for _, v in cusp.theta.stages] == [120.0, 150.0, 180.0]


def test_tiny_cusp_runs_collapse_to_the_final_stage() -> None:
    assert cusp_curriculum(1, 0.3).stages()[0].theta_deg == 180.0
    two = cusp_curriculum(2, 0.3).stages()
    assert [s.theta_deg for s in two] == [120.0, 180.0]
    assert [s.eps for s in two] == pytest.approx([0.075, 0.3])


def test_cusp_overrides_scale_the_stages() -> None:
    cusp = curriculum_from_config(
        {"curriculum": "cusp", "theta_max": 90, "eps_max": 0.1}, epochs=120, eps_scale=EPS8
    )
    assert [v for _, v in cusp.theta.stages] == [60.0, 75.0, 90.0]
    assert [v for _, v in cusp.eps.stages] == pytest.approx([0.025, 0.05, 0.1])
    assert cusp.lr_milestones == (75, 90, 100)


def test_none_preset_is_all_zero() -> None:
    for curriculum in (
        none_curriculum(20),
        curriculum_from_config({"curriculum": "none"}, epochs=20, eps_scale=0.3),
        curriculum_from_config({}, epochs=20, eps_scale=0.3),
    ):
        assert all(
            s.theta_deg == 0 and s.translate_frac == 0 and s.eps == 0 for s in curriculum.stages()
        )
        assert curriculum.describe() == "none"
        assert curriculum.lr_milestones == paper_lr_milestones(20)


# --- ramps and other schedule kinds ----------------------------------------------------------


def test_schedule_kinds_are_registered() -> None:
    assert list(SCHEDULE_KINDS) == ["constant", "step", "linear", "cosine", "exponential"]
    assert SCHEDULE_KINDS["linear"].keys == ("max", "start_frac", "warmup", "ramp_end")
    assert SCHEDULE_KINDS["step"].keys == ("stages", "warmup")
    assert "theta_ramp_end" in curriculum_keys()


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
@pytest.mark.parametrize(("warmup", "ramp_end"), [(0, 40), (5, 40), (5, 60), (9, 10)])
@pytest.mark.parametrize("start_frac", [0.0, 0.25])
def test_ramp_properties(shape: str, warmup: int, ramp_end: int, start_frac: float) -> None:
    epochs, maximum = 60, 0.3
    curriculum = curriculum_from_config(
        {
            "eps_schedule": shape,
            "eps_max": maximum,
            "eps_start_frac": start_frac,
            "eps_warmup": warmup,
            "eps_ramp_end": ramp_end,
        },
        epochs=epochs,
        eps_scale=0.3,
    )
    values = [s.eps for s in curriculum.stages()]
    _assert_monotone(values)
    assert all(v == 0.0 for v in values[:warmup])
    if ramp_end > warmup + 1:
        assert values[warmup] == pytest.approx(start_frac * maximum, abs=1e-15)
    assert all(v == maximum for v in values[ramp_end - 1 :])
    assert all(0.0 <= v <= maximum for v in values)


def _ramp(shape: str, start: float = 0.0) -> RampSchedule:
    return RampSchedule(shape=shape, start=start, target=1.0, ramp_end=41, warmup=0)


def test_ramp_shapes_differ_in_the_expected_direction() -> None:
    linear, cosine, exponential = _ramp("linear"), _ramp("cosine"), _ramp("exponential")
    quarter, middle, three_quarters = 11, 21, 31  # u = 0.25, 0.5, 0.75
    assert linear.value(middle) == pytest.approx(0.5)
    assert exponential.value(middle) < linear.value(middle) - 0.3  # 100-fold growth: ~0.09
    # The half-cosine ease-in-out is symmetric: below the line early, above it late.
    assert cosine.value(middle) == pytest.approx(linear.value(middle))
    assert cosine.value(quarter) < linear.value(quarter)
    assert cosine.value(three_quarters) > linear.value(three_quarters)


def test_exponential_is_geometric_when_start_is_positive() -> None:
    ramp = _ramp("exponential", start=0.1)
    for epoch in range(1, 42):
        u = (epoch - 1) / 40
        assert ramp.value(epoch) == pytest.approx(0.1 * 10**u, rel=1e-12)


def test_constant_and_step_from_config() -> None:
    curriculum = curriculum_from_config(
        {
            "theta_schedule": "constant",
            "theta_max": 30,
            "theta_warmup": 2,
            "translate_max": 0.1,
            "eps_schedule": "step",
            "eps_warmup": 3,
            "eps_stages": [[4, 0.1], [8, 0.2], [10, 0.3]],
        },
        epochs=12,
        eps_scale=0.3,
    )
    assert [s.theta_deg for s in curriculum.stages()] == [0, 0] + [30.0] * 10
    assert all(s.translate_frac == 0.1 for s in curriculum.stages())
    assert curriculum.at(1).translate_px(32) == pytest.approx(3.2)
    eps = [s.eps for s in curriculum.stages()]
    assert eps == [0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3]
    assert curriculum.describe() == "constant θ30 t0.1 step ε0.1→0.3"


# --- orders --------------------------------------------------------------------------------

_ORDER_CONFIG = {
    "theta_schedule": "linear",
    "theta_max": 90,
    "theta_start_frac": 0.2,
    "theta_ramp_end": 20,
    "eps_schedule": "linear",
    "eps_max": 0.3,
    "eps_start_frac": 0.1,
    "eps_ramp_end": 25,
}


def _ordered(order: str) -> Curriculum:
    return curriculum_from_config({**_ORDER_CONFIG, "order": order}, epochs=40, eps_scale=0.3)


def test_joint_order_uses_the_schedules_as_given() -> None:
    curriculum = _ordered("joint")
    for stage in curriculum.stages():
        assert stage.theta_deg == curriculum.theta.value(stage.epoch)
        assert stage.eps == curriculum.eps.value(stage.epoch)


def test_spatial_first_delays_eps_until_theta_is_at_max() -> None:
    curriculum = _ordered("spatial_first")
    stages = curriculum.stages()
    reach = next(s.epoch for s in stages if s.theta_deg == 90.0)
    assert reach == 20
    assert [s.theta_deg for s in stages] == [curriculum.theta.value(e) for e in range(1, 41)]
    assert all(s.eps == 0.0 for s in stages[:reach])
    assert stages[reach].eps == pytest.approx(0.03)  # the eps schedule's first value
    assert stages[-1].eps == 0.3
    _assert_monotone([s.eps for s in stages])


def test_adversarial_first_delays_the_spatial_schedules() -> None:
    curriculum = _ordered("adversarial_first")
    stages = curriculum.stages()
    reach = next(s.epoch for s in stages if s.eps == 0.3)
    assert reach == 25
    assert [s.eps for s in stages] == [curriculum.eps.value(e) for e in range(1, 41)]
    assert all(s.theta_deg == 0.0 for s in stages[:reach])
    assert stages[reach].theta_deg == pytest.approx(18.0)
    assert stages[-1].theta_deg == 90.0
    _assert_monotone([s.theta_deg for s in stages])
    assert curriculum.describe() == "linear θ18→90 ε0.03→0.3 adversarial_first"


def test_cusp_spatial_first_compresses_the_eps_stages() -> None:
    curriculum = curriculum_from_config(
        {"curriculum": "cusp", "order": "spatial_first"}, epochs=120, eps_scale=EPS8
    )
    stages = curriculum.stages()
    assert all(s.eps == 0.0 for s in stages[:90])
    assert stages[90].eps == pytest.approx(2 / 255)
    assert stages[-1].eps == pytest.approx(EPS8)


@pytest.mark.parametrize("order", ORDERS)
def test_orders_keep_values_monotone_and_final(order: str) -> None:
    curriculum = _ordered(order)
    final = curriculum.at(40)
    assert (final.theta_deg, final.eps) == (90.0, 0.3)


def test_epoch_outside_the_run_is_a_programming_error() -> None:
    curriculum = cusp_curriculum(10)
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match="epoch"):
            curriculum.at(bad)
    with pytest.raises(ValueError):
        curriculum.at(True)  # type: ignore[arg-type]


def test_dataclass_misuse_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        StepSchedule(((1, 0.2), (5, 0.1)))
    with pytest.raises(ValueError):
        Curriculum(10, ConstantSchedule(200.0), ConstantSchedule(0.0), ConstantSchedule(0.0))
    with pytest.raises(ValueError):
        Curriculum(
            10,
            ConstantSchedule(0.0),
            ConstantSchedule(0.0),
            RampSchedule("linear", 0.0, 0.3, ramp_end=12),
        )


# --- config validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"theta_max": 200}, "theta_max must be in [0, 180], got 200"),
        ({"eps_max": -0.1}, "eps_max must be in [0, 1], got -0.1"),
        ({"translate_max": 0.6}, "translate_max must be in [0, 0.5], got 0.6"),
        (
            {"eps_schedule": "linear", "eps_max": 0.3, "eps_ramp_end": 130},
            "eps_ramp_end (130) must be within the run's 120 epochs",
        ),
        ({"theta_warmup": 120}, "theta_warmup (120) must be less than the run's 120 epochs"),
        (
            {"theta_schedule": "step", "theta_stages": [[1, 120], [50, 90]]},
            "theta_stages must have non-decreasing values",
        ),
        (
            {"theta_schedule": "step", "theta_stages": [[1, 90], [1, 120]]},
            "theta_stages must have strictly increasing epochs",
        ),
        ({"theta_schedule": "step"}, "theta_stages is required"),
        (
            {"theta_schedule": "lineer"},
            "unknown theta_schedule 'lineer'; choose one of constant, step, linear, cosine, "
            "exponential (did you mean 'linear'?)",
        ),
        ({"theta_maxx": 90}, "unknown curriculum key 'theta_maxx' (did you mean 'theta_max'?)"),
        ({"order": "spatial"}, "unknown order 'spatial'; choose one of joint, spatial_first"),
        ({"curriculum": "cuspp"}, "unknown curriculum 'cuspp'; choose one of cusp"),
        (
            {"theta_schedule": "linear", "theta_max": 90, "theta_stages": [[1, 90]]},
            "theta_stages is not used by theta_schedule 'linear'",
        ),
        ({"curriculum": "cusp", "eps_schedule": "linear"}, "eps_schedule is not used by"),
        ({"lr_milestones": [90, 75]}, "lr_milestones must be strictly increasing"),
        ({"theta_warmup": 2.5}, "theta_warmup must be a whole number of epochs"),
        (
            {"theta_schedule": "linear", "theta_max": 90, "eps_max": 0.1, "order": "spatial_first"},
            "order 'spatial_first' leaves no epoch for the eps schedule",
        ),
    ],
)
def test_invalid_configs_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(UserError) as caught:
        curriculum_from_config(config, epochs=120, eps_scale=EPS8)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keys_of_other_modules_are_ignored() -> None:
    config = {"eps_eval": 0.3, "theta_eval": 180, "eps_scale": 0.3, "lr": 0.1, "theta_max": None}
    curriculum = curriculum_from_config(config, epochs=5, eps_scale=0.3)
    assert curriculum.describe() == "none"
    assert all(s.theta_deg == 0 and s.eps == 0 for s in curriculum.stages())


# --- logging and import cost ---------------------------------------------------------------


def test_to_dict_is_json_friendly() -> None:
    data = cusp_curriculum(30, 0.3).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["label"] == "cusp θ120→180 ε0.075→0.3"
    assert data["theta"] == {"kind": "step", "stages": [[1, 120.0], [20, 150.0], [23, 180.0]]}


def test_module_does_not_import_torch() -> None:
    root = Path(__file__).resolve().parents[1]
    code = "import sys, trainables.curriculum; sys.exit('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=root).returncode == 0
