"""Tests of search_spaces: every sampled config is a valid trial config within its bounds, the
spaces pickle, bounds are validated, and real multi-objective Optuna studies run on them."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

import optuna
import pytest
from ray.tune.utils.util import unflatten_dict

from search_spaces import (
    METHODS,
    SearchBounds,
    SearchSpace,
    describe_space,
    get_preset,
    list_presets,
    make_space,
    paper_cusp_params,
    register_preset,
    step_stage_starts,
)
from trainables.config import METHODS as TRIAL_METHODS
from trainables.config import TrialConfig
from trainables.curriculum import (
    SCHEDULE_KINDS,
    curriculum_keys,
    cusp_curriculum,
    paper_lr_milestones,
)
from trainables.errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPS_SCALE = 0.3  # synthetic-digits, the TrialConfig default dataset
PRESETS = ("cusp", "augment-only", "adversarial-only", "joint")
EPOCHS = (1, 3, 10, 120)
N_TRIALS = 200

DEFAULT_BOUNDS = SearchBounds.for_dataset(EPS_SCALE)
WIDE_BOUNDS = SearchBounds.for_dataset(
    EPS_SCALE,
    theta_max=(30, 150),
    translate_max=(0.05, 0.2),
    eps_max=(0.1, 0.25),
    schedules=tuple(SCHEDULE_KINDS),
    methods=("standard", "pgd", "trades"),
    trades_beta=(2.0, 8.0),
    lr=(1e-3, 0.2),
    weight_decay=(1e-5, 1e-3),
    models=("stdcnn", "lenet"),
)


def ray_config(trial: optuna.Trial, returned: dict[str, Any] | None) -> dict[str, Any]:
    """The config Ray's OptunaSearch builds from a define-by-run function: the sampled values
    merged with the returned dict, then unflattened."""
    return unflatten_dict({**trial.params, **(returned or {})})


def sample_configs(
    space: SearchSpace, n: int, seed: int = 0
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``n`` (trial params, Ray config) pairs from a random-sampler study."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    pairs = []
    for _ in range(n):
        trial = study.ask()
        config = ray_config(trial, space(trial))
        pairs.append((dict(trial.params), config))
    return pairs


def within(value: float, bound: tuple[float, float]) -> bool:
    return bound[0] - 1e-12 <= value <= bound[1] + 1e-12


# --------------------------------------------------------------------------------------------
# Every sampled config is valid and within the bounds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [DEFAULT_BOUNDS, WIDE_BOUNDS], ids=["default", "wide"])
@pytest.mark.parametrize("epochs", EPOCHS)
@pytest.mark.parametrize("preset", PRESETS)
def test_sampled_configs_are_valid_and_within_bounds(preset, epochs, bounds):
    space = make_space(preset, bounds, epochs)
    keys = set(space.config_keys())
    seen: dict[str, set[Any]] = {}
    for params, config in sample_configs(space, N_TRIALS, seed=epochs):
        assert set(config) <= keys
        assert all("/" not in key for key in config)
        # the returned dict is the whole config: Ray's merge adds nothing to it
        assert all(key in config for key in params)
        trial_config = TrialConfig.from_dict({**config, "epochs": epochs})
        curriculum = trial_config.build_curriculum()
        for key in ("method", "order", "theta_schedule", "eps_schedule", "model"):
            if key in params:
                seen.setdefault(key, set()).add(params[key])

        assert config["curriculum"] == "custom"
        assert curriculum.epochs == epochs
        spatial_on = preset != "adversarial-only"
        eps_on = preset != "augment-only" and trial_config.method != "standard"
        for schedule, bound, on in (
            (curriculum.theta, bounds.theta_max, spatial_on),
            (curriculum.translate_frac, bounds.translate_max, spatial_on),
            (curriculum.eps, bounds.eps_max, eps_on),
        ):
            assert within(schedule.maximum, bound) if on else schedule.maximum == 0
        assert curriculum.eps.maximum <= bounds.eps_limit
        if trial_config.method == "trades":
            assert within(trial_config.trades_beta, bounds.trades_beta)
        else:
            assert "trades_beta" not in config
        if bounds.lr is not None:
            assert within(trial_config.lr, bounds.lr)
            assert within(trial_config.weight_decay, bounds.weight_decay)
            assert trial_config.model in bounds.models
        else:
            assert not {"lr", "weight_decay", "model"} & set(config)
        for axis in ("theta", "translate", "eps"):
            if config.get(f"{axis}_schedule") == "step":
                starts = [start for start, _ in config[f"{axis}_stages"]]
                assert starts[0] == 1
                assert set(starts[1:]) <= set(paper_lr_milestones(epochs))
                assert config[f"{axis}_max"] is None

        stages = curriculum.stages()
        if preset == "augment-only":
            assert trial_config.method == "standard"
            assert all(stage.eps == 0 for stage in stages)
        if preset == "adversarial-only":
            assert trial_config.method != "standard"
            assert all(stage.theta_deg == 0 and stage.translate_frac == 0 for stage in stages)
        if preset == "cusp":
            assert curriculum.order == "joint"
            assert curriculum.theta.kind == "step"
            assert curriculum.eps.kind == "step" or trial_config.method == "standard"
        if trial_config.method == "standard":
            assert curriculum.eps.maximum == 0

    # the sampler reaches every offered choice
    if preset in ("joint", "adversarial-only"):
        assert seen["method"] == set(bounds.methods) - ({"standard"} if "only" in preset else set())
    if preset == "joint":
        assert seen["theta_schedule"] == set(bounds.schedules)
        assert seen.get("order", set()) == (set(bounds.orders) if epochs >= 2 else set())


def test_config_keys_are_trial_config_keys():
    """Every key a space sets is a TrialConfig field or a curriculum key (never a helper)."""
    known = set(TrialConfig.__dataclass_fields__) | set(curriculum_keys())
    for preset in PRESETS:
        keys = make_space(preset, WIDE_BOUNDS, 10).config_keys()
        assert set(keys) <= known, preset


def test_step_stage_starts_follow_the_lr_drops():
    assert step_stage_starts(120, 120) == (1, 75, 90)
    assert step_stage_starts(10, 10) == (1, 7, 8)
    assert step_stage_starts(3, 3) == (1, 2, 3)
    assert step_stage_starts(3, 2) == (1, 2)
    assert step_stage_starts(2, 1) == (1,)
    assert step_stage_starts(1, 1) == (1,)


@pytest.mark.parametrize("epochs", (1, 2, 3, 10, 120))
@pytest.mark.parametrize("preset", ("cusp", "joint"))
def test_paper_cusp_is_a_point_of_the_space(preset, epochs):
    """Enqueuing paper_cusp_params gives exactly the authors' CuSP schedule."""
    space = make_space(preset, DEFAULT_BOUNDS, epochs)
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.enqueue_trial(paper_cusp_params(EPS_SCALE))
    trial = study.ask()
    config = ray_config(trial, space(trial))
    curriculum = TrialConfig.from_dict({**config, "epochs": epochs}).build_curriculum()
    paper = cusp_curriculum(epochs, EPS_SCALE)
    assert config["method"] == "pgd"
    for ours, theirs in zip(curriculum.stages(), paper.stages(), strict=True):
        assert ours.theta_deg == pytest.approx(theirs.theta_deg)
        assert ours.eps == pytest.approx(theirs.eps)
        assert ours.translate_frac == 0
    assert curriculum.lr_milestones == paper.lr_milestones


# --------------------------------------------------------------------------------------------
# Pickling, Ray's searcher
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_space_pickles_and_samples_the_same(preset):
    space = make_space(preset, WIDE_BOUNDS, 10)
    copy = pickle.loads(pickle.dumps(space))
    assert copy == space
    assert sample_configs(copy, 20, seed=3) == sample_configs(space, 20, seed=3)


def test_ray_optuna_search_suggests_valid_configs(tmp_path):
    search = pytest.importorskip("ray.tune.search.optuna")
    space = make_space("joint", DEFAULT_BOUNDS, 10)
    searcher = search.OptunaSearch(
        space=space,
        metric=["spatial_acc", "adv_acc"],
        mode=["max", "max"],
        sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=4),
    )
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        trial_config = TrialConfig.from_dict({**config, "epochs": 10})
        metrics = {"spatial_acc": trial_config.build_curriculum().theta.maximum / 180}
        metrics["adv_acc"] = 1 - metrics["spatial_acc"]
        searcher.on_trial_complete(f"t{i}", metrics)
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = search.OptunaSearch()
    restored.restore(str(tmp_path / "searcher.pkl"))
    TrialConfig.from_dict({**restored.suggest("t12"), "epochs": 10})


# --------------------------------------------------------------------------------------------
# Multi-objective studies
# --------------------------------------------------------------------------------------------

SAMPLERS = {
    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=6),
    "tpe": lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
    "tpe-group": lambda: optuna.samplers.TPESampler(
        seed=0, n_startup_trials=5, multivariate=True, group=True
    ),
}


def synthetic_objectives(config: dict[str, Any], epochs: int) -> tuple[float, float]:
    """A cheap stand-in for (spatial_acc, adv_acc): rotation helps the first, eps the second,
    each hurts the other."""
    curriculum = TrialConfig.from_dict({**config, "epochs": epochs}).build_curriculum()
    stages = curriculum.stages()
    theta = sum(s.theta_deg for s in stages) / (180 * epochs)
    eps = sum(s.eps for s in stages) / (EPS_SCALE * epochs)
    return 0.5 + 0.4 * theta - 0.3 * eps, 0.2 + 0.6 * eps - 0.2 * theta


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("preset", PRESETS)
def test_multi_objective_study_runs(preset, sampler):
    epochs = 10
    space = make_space(preset, WIDE_BOUNDS, epochs)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=SAMPLERS[sampler]())

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        return synthetic_objectives(ray_config(trial, space(trial)), epochs)

    study.optimize(objective, n_trials=20)
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE}
    assert len(study.trials) == 20
    assert study.best_trials


def test_ask_tell_loop():
    epochs = 3
    space = make_space("joint", DEFAULT_BOUNDS, epochs)
    study = optuna.create_study(
        directions=["maximize", "maximize"], sampler=optuna.samplers.NSGAIISampler(seed=1)
    )
    for _ in range(20):
        trial = study.ask()
        study.tell(trial, synthetic_objectives(ray_config(trial, space(trial)), epochs))
    assert len(study.best_trials) >= 1


# --------------------------------------------------------------------------------------------
# Describe, registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_describe_lists_every_sampled_parameter(preset):
    space = make_space(preset, WIDE_BOUNDS, 10)
    lines = describe_space(preset, WIDE_BOUNDS, 10)
    described = {line.split(":")[0] for line in lines if ": " in line.split(" = ")[0]}
    sampled = {name for params, _ in sample_configs(space, 100) for name in params}
    assert sampled <= described
    assert "curriculum = custom" in lines


def test_describe_joint():
    lines = describe_space("joint", DEFAULT_BOUNDS, 120)
    assert "method: one of pgd, trades" in lines
    assert "trades_beta: float in [1, 10] (when method = trades)" in lines
    assert "theta_max: float in [0, 180]" in lines
    assert "eps_max: float in [0, 0.3]" in lines
    assert "order: one of joint, spatial_first, adversarial_first" in lines
    assert (
        "theta_ramp_end: int in [1, 120] (when theta_schedule in linear, cosine, exponential)"
        in (lines)
    )
    assert (
        "theta_stages = derived, stages start at epochs 1, 75, 90 (when theta_schedule = step)"
        in lines
    )
    assert "translate_max = 0" in lines


def test_presets_registry():
    assert set(PRESETS) <= set(list_presets())
    assert get_preset("cusp").name == "cusp"
    with pytest.raises(UserError, match=r"unknown search space preset 'jiont'.*'joint'"):
        make_space("jiont", DEFAULT_BOUNDS, 10)
    with pytest.raises(ValueError, match="already registered"):
        register_preset("cusp", "again")(lambda trial, bounds, epochs: {})


def test_make_space_rejects_bad_epochs():
    with pytest.raises(UserError, match="epochs"):
        make_space("joint", DEFAULT_BOUNDS, 0)


@pytest.mark.parametrize(
    ("preset", "bounds", "epochs", "field"),
    [
        ("augment-only", SearchBounds.for_dataset(0.3, theta_max=(0, 0)), 10, "theta_max"),
        ("adversarial-only", SearchBounds.for_dataset(0.3, methods=["standard"]), 10, "methods"),
        ("adversarial-only", SearchBounds.for_dataset(0.3, eps_max=(0, 0)), 10, "eps_max"),
        ("joint", SearchBounds.for_dataset(0.3, orders=["spatial_first"]), 1, "orders"),
    ],
)
def test_presets_reject_bounds_they_cannot_use(preset, bounds, epochs, field):
    with pytest.raises(UserError, match=field):
        make_space(preset, bounds, epochs)


def test_ordered_only_orders_work_from_two_epochs():
    bounds = SearchBounds.for_dataset(0.3, orders=["spatial_first", "adversarial_first"])
    for epochs in (2, 3):
        for _, config in sample_configs(make_space("joint", bounds, epochs), 100):
            assert config["order"] in ("spatial_first", "adversarial_first")
            TrialConfig.from_dict({**config, "epochs": epochs})


# --------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------


def test_bounds_defaults_and_yaml_lists():
    bounds = SearchBounds.for_dataset(8 / 255, theta_max=[0, 90], schedules=["linear"])
    assert bounds.eps_max == (0.0, 8 / 255)
    assert bounds.eps_limit == 8 / 255
    assert bounds.theta_max == (0.0, 90.0)
    assert bounds.schedules == ("linear",)
    assert bounds.translate_max == (0.0, 0.0)
    assert SearchBounds(**bounds.to_dict()) == bounds
    assert set(DEFAULT_BOUNDS.schedules) <= set(SCHEDULE_KINDS)
    assert METHODS == TRIAL_METHODS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"eps_max": (0, 0.5)},
            "search bound eps_max upper 0.5 is above the dataset's eps limit 0.3",
        ),
        ({"theta_max": (90, 30)}, "search bound theta_max has low 90 above high 30"),
        ({"theta_max": (0, 270)}, r"search bound theta_max must lie within \[0, 180\]"),
        ({"translate_max": (0, 0.6)}, r"search bound translate_max must lie within \[0, 0.5\]"),
        ({"eps_max": (-0.1, 0.2)}, r"search bound eps_max must lie within \[0, 1\]"),
        ({"theta_max": 180}, "search bound theta_max must be a \\[low, high\\] pair"),
        ({"theta_max": (0, True)}, "search bound theta_max must be a \\[low, high\\] pair"),
        ({"eps_max": (0, float("nan"))}, "search bound eps_max must be finite"),
        ({"schedules": ["lienar"]}, r"search bound schedules: .*'lienar' \(did you mean 'linear'"),
        ({"schedules": []}, "search bound schedules must list at least one"),
        ({"schedules": ["step", "step"]}, "search bound schedules lists 'step' twice"),
        ({"orders": ["spatial-first"]}, "search bound orders: unknown order 'spatial-first'"),
        ({"methods": ["fgsm"]}, "search bound methods: unknown method 'fgsm'"),
        ({"methods": "pgd"}, "search bound methods must be a list"),
        ({"trades_beta": (-1, 5)}, "search bound trades_beta must lie within"),
        ({"lr": (0, 0.1)}, "search bound lr must lie within"),
        ({"lr": (0.01, 20)}, "search bound lr must lie within"),
        ({"weight_decay": (0, 1e-3)}, "search bound weight_decay must be above 0"),
        ({"models": []}, "search bound models must list at least one"),
        ({"models": ["stdcnn", 3]}, "search bound models must be a list of model names"),
        ({"theta_range": (0, 90)}, r"unknown search bound 'theta_range' \(did you mean"),
    ],
)
def test_bounds_errors_name_the_field(overrides, message):
    with pytest.raises(UserError, match=message) as info:
        SearchBounds.for_dataset(0.3, **overrides)
    assert "\n" not in str(info.value)


def test_bounds_eps_limit_is_checked():
    with pytest.raises(UserError, match="eps_limit"):
        SearchBounds(eps_max=(0, 0.1), eps_limit=0)


# --------------------------------------------------------------------------------------------
# Import cost
# --------------------------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = (
        "import sys, search_spaces\n"
        "assert 'torch' not in sys.modules, 'torch'\n"
        "assert 'optuna' not in sys.modules, 'optuna'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
