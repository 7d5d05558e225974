"""The registries refuse broken registrations when they are made, accept the same function again
(a reload), and the model and schedule registries check what a registered builder returns.

Every test runs with the five registries snapshotted and restored (other tests check their exact
contents); names are unique to this file."""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import search_spaces
from search_spaces import _presets, register_preset
from trainables import curriculum, datasets
from trainables.config import TrialConfig
from trainables.curriculum import (
    ConstantSchedule,
    Curriculum,
    Schedule,
    curriculum_from_config,
    register_ramp_shape,
    register_schedule,
)
from trainables.datasets import DatasetInfo, ImageDataset, register_dataset
from trainables.errors import UserError
from trainables.models import _registry, build_model, get_model_spec, list_models, register_model

INFO = DatasetInfo("reg-tiny", 1, 2, 2, 0.1, 1, 0.1, (0.5,), (0.5,), ("a", "b"))


@pytest.fixture(autouse=True)
def registries():
    """Snapshot the registry dicts and restore them in place (other modules hold references)."""
    dicts = (
        _registry._REGISTRY,
        datasets._REGISTRY,
        curriculum.SCHEDULE_KINDS,
        curriculum.RAMP_SHAPES,
        _presets._PRESETS,
    )
    saved = [dict(d) for d in dicts]
    yield
    for d, snapshot in zip(dicts, saved, strict=True):
        d.clear()
        d.update(snapshot)


def _reloaded(function: Any) -> Any:
    """A new function object with the same module and qualified name, as importlib.reload or a
    re-run notebook cell makes."""
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = "Reloaded."
    return copy


# Module-level functions to register (presets must be module-level).


def _mlp(*, in_channels, num_classes, image_size, normalize, hidden=8):
    """A small MLP."""
    layers = [nn.Flatten(), nn.Linear(in_channels * image_size**2, hidden), nn.ReLU()]
    return nn.Sequential(normalize, *layers, nn.Linear(hidden, num_classes))


def _wrong_logits(*, in_channels, num_classes, image_size, normalize):
    """Returns one logit too many."""
    return nn.Sequential(normalize, nn.Flatten(), nn.Linear(in_channels * image_size**2, 11))


def _no_module(*, in_channels, num_classes, image_size, normalize):
    """Returns no module."""
    return 3


def _load(data_dir: Path, download: bool, *, n: int = 3) -> ImageDataset:
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    labels = torch.zeros(n, dtype=torch.int64)
    return ImageDataset(INFO, images, labels, images, labels)


def _constant(cfg: curriculum.AxisConfig) -> Schedule:
    return ConstantSchedule(cfg.maximum())


def _smoothstep(u: float, start: float, maximum: float) -> float:
    return start + (maximum - start) * u * u * (3.0 - 2.0 * u)


def _sample(trial, bounds, epochs) -> dict[str, Any]:
    return {"curriculum": "none"}


@dataclass(frozen=True)
class _Zigzag(Schedule):
    """``level`` on odd epochs, 0 on even ones: not monotone."""

    level: float

    @property
    def kind(self) -> str:
        return "reg-zigzag"

    @property
    def maximum(self) -> float:
        return self.level

    @property
    def first(self) -> float:
        return self.level

    def value(self, epoch: int) -> float:
        return self.level if epoch % 2 else 0.0

    def min_epochs(self) -> int:
        return 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "level": self.level}


# --------------------------------------------------------------------------------------------
# 1. Registration-time checks
# --------------------------------------------------------------------------------------------

REGISTRARS = {
    "model": lambda name: register_model(name),
    "dataset": lambda name: register_dataset(name, replace(INFO, name=name)),
    "schedule": lambda name: register_schedule(name, ("max",)),
    "ramp shape": lambda name: register_ramp_shape(name),
    "preset": lambda name: register_preset(name, "a preset"),
}


@pytest.mark.parametrize("registrar", REGISTRARS.values(), ids=REGISTRARS.keys())
@pytest.mark.parametrize("name", [3, "", None, " padded "])
def test_names_must_be_non_empty_strs(registrar, name):
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        registrar(name)
    assert list_models() == sorted(list_models())  # a non-str name used to break the sorting


@pytest.mark.parametrize("registrar", REGISTRARS.values(), ids=REGISTRARS.keys())
def test_registered_functions_must_be_callable(registrar):
    with pytest.raises(ValueError, match="needs a callable, got int"):
        registrar("reg-name")(42)


def test_dataset_names_are_lower_case_with_dashes():
    info = DatasetInfo("Reg_Tiny", 1, 2, 2, 0.1, 1, 0.1, (0.5,), (0.5,), ("a", "b"))
    with pytest.raises(ValueError, match="must be lower-case with '-' for '_'.*'reg-tiny'"):
        register_dataset("Reg_Tiny", info)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"image_sizes": "28"}, "image_sizes must be a non-empty sequence of positive ints"),
        ({"image_sizes": 28}, "image_sizes must be"),
        ({"image_sizes": ()}, "image_sizes must be"),
        ({"in_channels": (0,)}, "in_channels must be"),
        ({"in_channels": (1.0,)}, "in_channels must be"),
        ({"in_channels": (True,)}, "in_channels must be"),
        ({"group": "C6"}, "group must be one of C4, C8, D4 or None, got 'C6'"),
    ],
)
def test_register_model_checks_its_arguments(options, match):
    with pytest.raises(ValueError, match=match):
        register_model("reg-model", **options)


def test_register_model_stores_sizes_and_group():
    register_model("reg-model", image_sizes=[28], in_channels=[1], group="D4")(_mlp)
    spec = get_model_spec("reg-model")
    assert (spec.image_sizes, spec.in_channels, spec.group) == ((28,), (1,), "D4")


def test_register_model_checks_the_builder_signature():
    def no_normalize(*, in_channels, num_classes, image_size):
        return nn.Identity()

    def required_option(*, in_channels, num_classes, image_size, normalize, hidden):
        return nn.Identity()

    def required_positional(depth, *, in_channels, num_classes, image_size, normalize):
        return nn.Identity()

    with pytest.raises(ValueError, match="must take the keywords .*; it lacks normalize"):
        register_model("reg-model")(no_normalize)
    with pytest.raises(ValueError, match=r"parameter\(s\) hidden need a default"):
        register_model("reg-model")(required_option)
    with pytest.raises(ValueError, match=r"parameter\(s\) depth need a default"):
        register_model("reg-model")(required_positional)
    assert "reg-model" not in list_models()

    register_model("reg-kwargs")(lambda **kwargs: nn.Identity())
    register_model("reg-plain")(lambda in_channels, num_classes, image_size, normalize: None)
    register_model("reg-mlp")(_mlp)
    assert get_model_spec("reg-mlp").options == ("hidden",)


@pytest.mark.parametrize("keys", ["max", ("max", 3), ("max", ""), None])
def test_register_schedule_keys_are_a_sequence_of_strs(keys):
    with pytest.raises(ValueError, match="keys must be a sequence of key suffixes"):
        register_schedule("reg-kind", keys)


def test_register_preset_refuses_lambdas_and_nested_functions():
    def nested(trial, bounds, epochs):
        return {}

    with pytest.raises(ValueError, match="module-level function.*<lambda>"):
        register_preset("reg-preset", "a preset")(lambda trial, bounds, epochs: {})
    with pytest.raises(ValueError, match="module-level function.*<locals>"):
        register_preset("reg-preset", "a preset")(nested)
    assert "reg-preset" not in search_spaces.list_presets()
    register_preset("reg-preset", "a preset")(_sample)
    assert search_spaces.get_preset("reg-preset").sample is _sample


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        (lambda u, start, maximum: maximum * u, r"shape\(u, 0.25, 1\) is 0 at u=0, not start"),
        (lambda u, start, maximum: start + (maximum - start) * u / 2, "at u=1, not maximum"),
        (
            lambda u, start, maximum: start + (maximum - start) * (3 * u * u - 2 * u),
            "drops from 0.25 to 0.180625 at u=0.05",
        ),
        (lambda u, start, maximum: start * (maximum / start) ** u, r"\(u, 0, 1\) fails: float"),
        (lambda u, start, maximum: None, "fails"),
        (lambda u, start, maximum: math.nan, "is nan at u=0"),
    ],
)
def test_register_ramp_shape_probes_the_shape(shape, match):
    with pytest.raises(ValueError, match=match):
        register_ramp_shape("reg-ramp")(shape)
    assert "reg-ramp" not in curriculum.SCHEDULE_KINDS and "reg-ramp" not in curriculum.RAMP_SHAPES


def test_a_probed_ramp_shape_builds_curricula():
    register_ramp_shape("reg-ramp")(_smoothstep)
    built = curriculum_from_config(
        {"theta_schedule": "reg-ramp", "theta_max": 90.0}, epochs=5, eps_scale=0.3
    )
    assert [s.theta_deg for s in built.stages()] == [0.0, 14.0625, 45.0, 75.9375, 90.0]


# --------------------------------------------------------------------------------------------
# 2. The same function again replaces the entry; another one under a taken name is refused
# --------------------------------------------------------------------------------------------

REGISTRATIONS = {
    "model": (lambda: register_model("reg-model"), _mlp, lambda: get_model_spec("reg-model")),
    "dataset": (
        lambda: register_dataset("reg-tiny", INFO),
        _load,
        lambda: datasets._REGISTRY["reg-tiny"].loader,
    ),
    "schedule": (
        lambda: register_schedule("reg-kind", ("max",)),
        _constant,
        lambda: curriculum.SCHEDULE_KINDS["reg-kind"].build,
    ),
    "ramp shape": (
        lambda: register_ramp_shape("reg-ramp"),
        _smoothstep,
        lambda: curriculum.RAMP_SHAPES["reg-ramp"],
    ),
    "preset": (
        lambda: register_preset("reg-preset", "a preset"),
        _sample,
        lambda: search_spaces.get_preset("reg-preset").sample,
    ),
}


@pytest.mark.parametrize("registration", REGISTRATIONS.values(), ids=REGISTRATIONS.keys())
def test_registering_the_same_function_again_replaces_the_entry(registration):
    register, function, registered = registration
    register()(function)
    register()(function)  # a plugin imported twice
    reloaded = _reloaded(function)
    register()(reloaded)  # importlib.reload, a notebook cell run again
    entry = registered()
    assert (entry.builder if isinstance(entry, _registry.ModelSpec) else entry) is reloaded


@pytest.mark.parametrize("registration", REGISTRATIONS.values(), ids=REGISTRATIONS.keys())
def test_another_function_under_a_taken_name_is_refused(registration):
    register, function, registered = registration
    register()(function)

    def other(*args, **kwargs):
        return function(*args, **kwargs)

    with pytest.raises(ValueError, match=r"already registered \(by .*_registries\._"):
        register()(other)


def test_a_ramp_shape_cannot_take_a_schedule_kind_name():
    with pytest.raises(ValueError, match="'step' is already registered"):
        register_ramp_shape("step")(_smoothstep)


def test_a_reregistered_model_keeps_working():
    register_model("reg-mlp", image_sizes=(28,), in_channels=(1,))(_mlp)
    register_model("reg-mlp", image_sizes=(28,), in_channels=(1,))(_reloaded(_mlp))
    assert get_model_spec("reg-mlp").description == "Reloaded."
    assert build_model("reg-mlp", 1, 10, 28)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


# --------------------------------------------------------------------------------------------
# 3. build_model checks what a builder returns
# --------------------------------------------------------------------------------------------


def test_build_model_refuses_a_builder_that_returns_no_module():
    register_model("reg-model")(_no_module)
    with pytest.raises(UserError, match="'reg-model': its builder returned a int, not a torch"):
        build_model("reg-model", 1, 10, 28)


def test_build_model_checks_the_logits_of_plugin_models():
    register_model("reg-model")(_wrong_logits)
    with pytest.raises(
        UserError,
        match=r"'reg-model' returned shape \(2, 11\) for input \(2, 1, 28, 28\); "
        r"expected logits of shape \(2, 10\)",
    ):
        build_model("reg-model", 1, 10, 28)


class _TupleOut(nn.Module):
    def forward(self, x):
        return x, x


def test_build_model_checks_the_logits_of_a_model_returning_no_tensor():
    register_model("reg-tuple")(lambda **kwargs: _TupleOut())
    with pytest.raises(UserError, match="'reg-tuple' returned a tuple for input"):
        build_model("reg-tuple", 1, 10, 28)


def test_the_logits_check_restores_every_training_mode():
    def build(**kwargs):
        model = _mlp(**kwargs)
        model[2].eval()  # a submodule the builder leaves in eval mode
        return model

    register_model("reg-model")(build)
    model = build_model("reg-model", 1, 10, 28)
    assert model.training
    assert [m.training for m in model] == [True, True, False, True, True]


def test_shipped_models_skip_the_forward_check():
    builder = _reloaded(_wrong_logits)
    builder.__module__ = "trainables.models._fake"
    register_model("reg-model")(builder)
    assert isinstance(build_model("reg-model", 1, 10, 28), nn.Module)


# --------------------------------------------------------------------------------------------
# 4. Schedules: monotone, a Schedule, user errors
# --------------------------------------------------------------------------------------------


def test_a_decreasing_schedule_is_refused():
    register_schedule("reg-zigzag", ("max",))(lambda cfg: _Zigzag(cfg.maximum()))
    with pytest.raises(
        UserError, match=r"theta schedule \(reg-zigzag\) drops at epoch 2, from 90 to 0"
    ):
        TrialConfig.from_dict({"epochs": 3, "theta_schedule": "reg-zigzag", "theta_max": 90})
    zero = ConstantSchedule(0.0)
    with pytest.raises(UserError, match=r"eps schedule \(reg-zigzag\) drops at epoch 2"):
        Curriculum(epochs=3, theta=zero, translate_frac=zero, eps=_Zigzag(0.1))


def test_a_builder_that_returns_no_schedule_names_the_kind():
    register_schedule("reg-kind", ("max",))(lambda cfg: 3)
    with pytest.raises(
        UserError, match="eps_schedule 'reg-kind': its builder returned a int, not a Schedule"
    ):
        TrialConfig.from_dict({"eps_schedule": "reg-kind", "eps_max": 0.1})


def test_a_builder_value_error_is_a_user_error_naming_the_key():
    def refuse(cfg):
        raise ValueError("level must be below 10")

    register_schedule("reg-kind", ("max",))(refuse)
    with pytest.raises(UserError, match="theta_schedule 'reg-kind': level must be below 10"):
        TrialConfig.from_dict({"theta_schedule": "reg-kind", "theta_max": 30})
    register_schedule("reg-big", ("max",))(lambda cfg: ConstantSchedule(500.0))
    with pytest.raises(UserError, match=r"theta_schedule 'reg-big': theta schedule maximum .*180"):
        curriculum_from_config({"theta_schedule": "reg-big"}, epochs=3, eps_scale=0.3)


# --------------------------------------------------------------------------------------------
# 5. Public names and the register_schedule contract
# --------------------------------------------------------------------------------------------


def test_search_spaces_exports_what_plugins_need():
    assert {"PresetSampler", "SAMPLEABLE_SCHEDULE_KEYS"} <= set(search_spaces.__all__)
    assert {"max", "warmup", "stages"} <= search_spaces.SAMPLEABLE_SCHEDULE_KEYS


def test_register_schedule_documents_its_contract():
    doc = " ".join(register_schedule.__doc__.split())
    for text in ("(AxisConfig) -> Schedule", "kind", "non-decreasing", "SAMPLEABLE_SCHEDULE_KEYS"):
        assert text in doc
    assert "Raises: ValueError:" in doc


# --------------------------------------------------------------------------------------------
# What a plugin's builders return, caught where a user runs them
# --------------------------------------------------------------------------------------------


def _float_images(data_dir: Path, download: bool) -> ImageDataset:
    images = torch.zeros(3, 1, 2, 2)  # float: ImageDataset wants uint8
    labels = torch.zeros(3, dtype=torch.int64)
    return ImageDataset(replace(INFO, name="reg-float"), images, labels, images, labels)


def _a_tuple(data_dir: Path, download: bool):
    return (torch.zeros(3, 1, 2, 2), torch.zeros(3))


def test_a_loader_whose_data_is_refused_is_one_user_error():
    from trainables.datasets import load_dataset

    register_dataset("reg-float", replace(INFO, name="reg-float"))(_float_images)
    register_dataset("reg-tuple", replace(INFO, name="reg-tuple"))(_a_tuple)
    register_dataset("reg-other-info", replace(INFO, name="reg-other-info"))(_load)
    with pytest.raises(UserError, match="dataset 'reg-float': what its loader returned is refused"):
        load_dataset("reg-float")
    with pytest.raises(UserError, match="must return an ImageDataset .*got tuple"):
        load_dataset("reg-tuple")
    with pytest.raises(UserError, match="with the registered DatasetInfo, got reg-tiny"):
        load_dataset("reg-other-info")


def test_a_job_with_a_plugin_model_of_wrong_logits_is_refused_before_launch():
    from tune_jobs.spec import load_job

    register_model("reg-wrong-logits", image_sizes=(28,), in_channels=(1,))(_wrong_logits)
    with pytest.raises(UserError, match=r"model: model 'reg-wrong-logits' returned .*\(2, 10\)"):
        load_job("quickstart", {"model": "reg-wrong-logits", "model_width": None})
