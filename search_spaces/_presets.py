"""Named presets of search spaces, their registry, and :func:`make_space`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from search_spaces._bounds import SearchBounds
from search_spaces._spaces import (
    SPATIAL_AXES,
    Preset,
    PresetSampler,
    SearchSpace,
    sample_axis,
    sample_method,
    sample_order,
    sample_training,
)
from trainables._registration import check_function, check_name
from trainables.errors import UserError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "describe_space",
    "get_preset",
    "list_presets",
    "make_space",
    "paper_cusp_params",
    "register_preset",
]

_PRESETS: dict[str, Preset] = {}


def register_preset(name: str, summary: str) -> Callable[[PresetSampler], PresetSampler]:
    """Decorator registering ``sample(trial, bounds, epochs) -> dict`` as the preset ``name``.

    ``sample`` must be a module-level function (spaces pickle it by reference, and Ray pickles the
    searcher for resume), sample with ``trial.suggest_*`` (the helpers of this package record the
    values in the returned dict), use categorical choices that depend on ``bounds`` and
    ``epochs`` only, and return every key it decides. It may raise :class:`UserError` for bounds
    it cannot work with; :func:`make_space` walks every branch so that happens before a search
    starts. Registering the same function again (same module and qualified name:
    ``importlib.reload``, a notebook cell run twice) replaces the entry.

    Raises:
        ValueError: ``name`` is not a non-empty str or is taken by another function; ``sample``
            is not callable, or is a lambda or a function defined inside another function.
    """
    check_name("search space preset", name)

    def decorate(sample: PresetSampler) -> PresetSampler:
        registered = _PRESETS.get(name)
        check_function("search space preset", name, sample, registered and registered.sample)
        qualname = getattr(sample, "__qualname__", "")
        if "<lambda>" in qualname or "<locals>" in qualname:
            raise ValueError(
                f"search space preset {name!r}: sample must be a module-level function (spaces "
                f"pickle it by reference), got {qualname}"
            )
        _PRESETS[name] = Preset(name, summary, sample)
        return sample

    return decorate


def list_presets() -> tuple[str, ...]:
    """The registered preset names, in registration order."""
    return tuple(_PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name is a :class:`UserError` with a suggestion."""
    if isinstance(name, str) and name in _PRESETS:
        return _PRESETS[name]
    close = difflib.get_close_matches(str(name), list(_PRESETS), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UserError(
        f"unknown search space preset {name!r}{hint}; choose one of {', '.join(_PRESETS)}"
    )


def make_space(preset: str, bounds: SearchBounds, epochs: int) -> SearchSpace:
    """The define-by-run space of ``preset`` for runs of ``epochs`` epochs within ``bounds``.

    The result is what ``OptunaSearch(space=...)`` takes: called with a trial it samples, and
    returns the trial's flat config keys. It is checked against the bounds here (every branch is
    walked): a preset that cannot work with them raises :class:`UserError`, as do an unknown
    preset and a bad ``epochs``.
    """
    spec = get_preset(preset)
    if not isinstance(bounds, SearchBounds):
        raise TypeError(f"bounds must be a SearchBounds, got {type(bounds).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UserError(f"epochs must be a positive whole number, got {epochs!r}")
    space = SearchSpace(spec, bounds, epochs)
    space.config_keys()
    return space


def describe_space(preset: str, bounds: SearchBounds, epochs: int) -> list[str]:
    """The parameters ``make_space(preset, bounds, epochs)`` samples and the keys it sets, one
    line each (see :meth:`SearchSpace.describe`)."""
    return make_space(preset, bounds, epochs).describe()


def paper_cusp_params(eps_scale: float, *, theta_max: float = 180.0) -> dict[str, Any]:
    """The Optuna parameters of the authors' CuSP schedule (PGD; theta 120 -> 150 -> 180 and
    eps ``eps_scale`` / 4 -> / 2 -> / 1 at the LR drops), for the ``cusp`` and ``joint``
    presets.

    Enqueue it so a search starts from the paper's point: ``study.enqueue_trial(params)`` or
    ``OptunaSearch(points_to_evaluate=[params])``; the space then returns the same stages as
    ``trainables.curriculum.cusp_curriculum(epochs, eps_scale, theta_max=theta_max)``.
    Parameters a space does not sample are ignored.
    """
    return {
        "method": "pgd",
        "order": "joint",
        "theta_schedule": "step",
        "theta_max": float(theta_max),
        "theta_start_frac": 2 / 3,
        "eps_schedule": "step",
        "eps_max": float(eps_scale),
        "eps_start_frac": 0.25,
    }


# --------------------------------------------------------------------------------------------
# The presets
# --------------------------------------------------------------------------------------------


@register_preset(
    "cusp",
    "CuSP's family: step schedules on theta and eps (and translate, if bounded) rising at the "
    "LR drops; stage values, maxima and the method sampled; order joint",
)
def _cusp(trial: optuna.Trial, bounds: SearchBounds, epochs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"curriculum": "custom"}
    method = sample_method(trial, bounds, out)
    out["order"] = "joint"
    for axis in SPATIAL_AXES:
        sample_axis(trial, axis, bounds, epochs, out, kinds=("step",))
    if method == "standard":
        out["eps_max"] = 0.0
    else:
        sample_axis(trial, "eps", bounds, epochs, out, kinds=("step",))
    sample_training(trial, bounds, out)
    return out


@register_preset(
    "augment-only",
    "spatial augmentation only: the theta (and translate) schedule sampled, eps 0, method standard",
)
def _augment_only(trial: optuna.Trial, bounds: SearchBounds, epochs: int) -> dict[str, Any]:
    if not any(bounds.axis_on(axis) for axis in SPATIAL_AXES):
        raise UserError(
            "search space preset 'augment-only' varies the rotation range, but search bound "
            "theta_max is [0, 0] (and translate_max too); raise its upper end"
        )
    out: dict[str, Any] = {"curriculum": "custom", "method": "standard", "order": "joint"}
    for axis in SPATIAL_AXES:
        sample_axis(trial, axis, bounds, epochs, out)
    out["eps_max"] = 0.0
    sample_training(trial, bounds, out)
    return out


@register_preset(
    "adversarial-only",
    "adversarial training only: the eps schedule and the method sampled, no rotation or "
    "translation",
)
def _adversarial_only(trial: optuna.Trial, bounds: SearchBounds, epochs: int) -> dict[str, Any]:
    methods = tuple(m for m in bounds.methods if m != "standard")
    if not methods:
        raise UserError(
            "search space preset 'adversarial-only' needs an adversarial method, but search "
            "bound methods lists only 'standard'; add pgd or trades"
        )
    if not bounds.axis_on("eps"):
        raise UserError(
            "search space preset 'adversarial-only' varies eps, but search bound eps_max is "
            "[0, 0]; raise its upper end"
        )
    out: dict[str, Any] = {"curriculum": "custom", "order": "joint"}
    sample_method(trial, bounds, out, methods=methods)
    out["theta_max"] = 0.0
    out["translate_max"] = 0.0
    sample_axis(trial, "eps", bounds, epochs, out)
    sample_training(trial, bounds, out)
    return out


@register_preset(
    "joint",
    "everything in the bounds: method, order, and a schedule of any offered kind per axis",
)
def _joint(trial: optuna.Trial, bounds: SearchBounds, epochs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"curriculum": "custom"}
    method = sample_method(trial, bounds, out)
    spatial = any(bounds.axis_on(axis) for axis in SPATIAL_AXES)
    adversarial = method != "standard" and bounds.axis_on("eps")
    order = sample_order(trial, bounds, epochs, out, spatial=spatial, adversarial=adversarial)
    for axis in SPATIAL_AXES:
        sample_axis(trial, axis, bounds, epochs, out, leading=order == "spatial_first")
    if adversarial:
        sample_axis(trial, "eps", bounds, epochs, out, leading=order == "adversarial_first")
    else:
        out["eps_max"] = 0.0
    sample_training(trial, bounds, out)
    return out
