"""What a search explores: Optuna define-by-run spaces over curricula, and their named presets.

A space samples flat trial-config keys (the keys ``trainables.config.TrialConfig.from_dict``
takes) with ``trial.suggest_*`` and returns them, so it plugs into Ray Tune as
``OptunaSearch(space=make_space(preset, bounds, epochs), metric=[...], mode=[...])``::

    from search_spaces import SearchBounds, describe_space, make_space

    bounds = SearchBounds.for_dataset(0.3, theta_max=(0, 180))  # eps_max defaults to (0, 0.3)
    space = make_space("joint", bounds, epochs=10)
    config = space(optuna.create_study().ask())  # {"curriculum": "custom", "method": ...}

Presets (:func:`list_presets`): ``cusp``, ``augment-only``, ``adversarial-only``, ``joint``;
:func:`describe_space` lists what each samples; :func:`paper_cusp_params` is the paper's CuSP
point, to enqueue as a first trial. Every config a space returns is valid for the
curriculum module and within the bounds. Depends on optuna (for the trial it is given) and the
torch-free ``trainables.curriculum`` / ``trainables.errors`` only; importing it does not import
torch or optuna.
"""

from __future__ import annotations

from search_spaces._bounds import METHODS, SAMPLEABLE_SCHEDULE_KEYS, SearchBounds
from search_spaces._presets import (
    describe_space,
    get_preset,
    list_presets,
    make_space,
    paper_cusp_params,
    register_preset,
)
from search_spaces._spaces import (
    STEP_VALUE_SHAPES,
    Preset,
    PresetSampler,
    SearchSpace,
    sample_axis,
    sample_method,
    sample_order,
    sample_training,
    step_stage_starts,
    suggest_choice,
    suggest_float,
    suggest_int,
)

__all__ = [
    "METHODS",
    "Preset",
    "PresetSampler",
    "SAMPLEABLE_SCHEDULE_KEYS",
    "SearchBounds",
    "STEP_VALUE_SHAPES",
    "SearchSpace",
    "describe_space",
    "get_preset",
    "list_presets",
    "make_space",
    "paper_cusp_params",
    "register_preset",
    "sample_axis",
    "sample_method",
    "sample_order",
    "sample_training",
    "step_stage_starts",
    "suggest_choice",
    "suggest_float",
    "suggest_int",
]
