"""Job specs: one YAML file describes one search, validated before anything starts.

A job file has top-level sections; the trial settings are grouped by topic and flattened into the
flat :class:`~trainables.config.TrialConfig` mapping that every trial receives::

    name: quickstart                       # experiment directory name
    plugins: [my_models]                   # modules that register the job's own models, ...
    dataset: {name: synthetic-digits, data_dir: null, download: false,
              train_size: 3000, test_size: 500}       # or just `dataset: mnist`
    model: stdcnn                          # or a list: the models are searched over
    model_width: 0.5
    training: {epochs: 3, batch_size: 64, lr: 0.05, ...}  # any other TrialConfig / curriculum key
    evaluation: {theta_eval: 180, translate_eval: 0, eps_eval: null, pgd_steps: 10,
                 pgd_step_size: null, subset: 300, batch_size: 500, profiles: true}
    objectives: [{metric: spatial_acc, mode: max}, {metric: adv_acc, mode: max}]
    search: {preset: joint, bounds: {...}, sampler: nsga2, sampler_options: {},
             seed: 0, trials: 8, max_concurrent: 2}
    resources: {cpu: 1, gpu: 0}            # per trial; fractional GPUs allowed
    storage: ~/cusp-tune-results           # local directory, or s3:// gs:// file:// URI
    checkpoint: {every: 1, keep: 2}
    failure: {max_retries: 1}
    scheduler: {kind: moasha, grace_epochs: 1, reduction_factor: 4}  # asha also takes metric

Every section and key is optional (``name`` defaults to the file's stem); the defaults of
:class:`JobSpec` and its sections fill the rest, and ``TrialConfig``'s defaults the trial keys
left out. A trial key set to ``null`` counts as left out. Keys the search preset samples (the
curriculum, ``method``, ...) cannot be fixed in ``training``: narrow ``search.bounds`` instead.
A grid job (``search.grid``) varies trial keys other than the dataset's, none of them also fixed,
and lists its models in ``search.grid.model``. Keys a scheduler kind ignores (all but ``kind`` for
``none``, ``metric`` for ``moasha``) are refused. Profile-point objectives (``spatial_acc@90``)
are reported only after the last epoch, so only a grid job without a scheduler (or a one-epoch
search) can rank on them.
Numbers written ``5e-4`` (a string to YAML 1.1) are read as numbers.

``--set`` overrides use dotted keys (``search.trials=4``, ``training.epochs=2``,
``dataset.name=mnist``, ``search.bounds.theta_max=[0, 90]``) and are applied to the raw mapping
before validation (:func:`apply_overrides`).

Every mistake raises :class:`~trainables.errors.UserError` with one line that names the key as a
dotted path (``search.trials``, ``objectives[1].mode``) and says what to change. Unknown keys get
a did-you-mean suggestion, including keys written in the wrong section (``epochs`` at the top
level suggests ``training.epochs``).

The search presets and bounds come from :mod:`search_spaces`, imported lazily inside functions so
that this module imports even when that package is incomplete.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import importlib
import inspect
import itertools
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.config import TrialConfig
from trainables.curriculum import curriculum_keys
from trainables.datasets import dataset_info
from trainables.errors import UserError
from trainables.evaluation import (
    DEFAULT_PROFILE_THETAS,
    METRICS,
    adversarial_profile_key,
    spatial_profile_key,
)
from trainables.models import get_model_spec
from trainables.plugins import check_plugins, import_plugins
from tune_jobs._overrides import load_yaml_mapping

__all__ = [
    "DEFAULT_OBJECTIVES",
    "DEFAULT_STORAGE",
    "JOBS_DIR",
    "KNOWN_METRICS",
    "MODES",
    "SAMPLERS",
    "SCHEDULERS",
    "CheckpointSettings",
    "FailureSettings",
    "JobSpec",
    "Objective",
    "Resources",
    "SchedulerSettings",
    "SearchSettings",
    "apply_overrides",
    "find_job",
    "list_jobs",
    "load_job",
]

JOBS_DIR = Path(__file__).parent / "jobs"
"""Where the shipped job files live; :func:`find_job` resolves bare names here."""

KNOWN_METRICS: tuple[str, ...] = (*METRICS, "loss")
"""Metrics every epoch reports; ``spatial_acc@<deg>`` / ``adv_acc@<eps>`` come at the end."""

MODES = ("max", "min")
SAMPLERS = ("tpe", "nsga2", "nsga3", "gp", "random")
SCHEDULERS = ("none", "asha", "moasha")
URI_SCHEMES = ("s3", "gs", "file")
DEFAULT_STORAGE = "~/cusp-tune-results"

_SAMPLER_CLASSES = {
    "tpe": "TPESampler",
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "gp": "GPSampler",
    "random": "RandomSampler",
}
# Sampler arguments a YAML file cannot express (callables, objects) or that live elsewhere.
_SAMPLER_ARGS_EXCLUDED = frozenset(
    {
        "seed",
        "constraints_func",
        "mutation",
        "crossover",
        "gamma",
        "weights",
        "elite_population_selection_strategy",
        "child_generation_strategy",
        "after_trial_strategy",
        "independent_sampler",
        "reference_points",
    }
)

# --------------------------------------------------------------------------------------------------
# The YAML schema

TOP_LEVEL_KEYS = (
    "name",
    "plugins",
    "dataset",
    "model",
    "model_width",
    "training",
    "evaluation",
    "objectives",
    "search",
    "resources",
    "storage",
    "checkpoint",
    "failure",
    "scheduler",
)
# section key -> flat TrialConfig key
_DATASET_KEYS = {
    "name": "dataset",
    "data_dir": "data_dir",
    "download": "download",
    "train_size": "train_size",
    "test_size": "test_size",
}
_EVALUATION_KEYS = {
    "theta_eval": "theta_eval",
    "translate_eval": "translate_eval",
    "eps_eval": "eps_eval",
    "pgd_steps": "eval_pgd_steps",
    "pgd_step_size": "eval_pgd_step_size",
    "subset": "eval_subset",
    "batch_size": "eval_batch_size",
    "profiles": "final_profiles",
}
_SEARCH_KEYS = (
    "preset",
    "grid",
    "bounds",
    "sampler",
    "sampler_options",
    "seed",
    "trials",
    "max_concurrent",
    "paper_first",
)
_RESOURCES_KEYS = ("cpu", "gpu")
_CHECKPOINT_KEYS = ("every", "keep")
_FAILURE_KEYS = ("max_retries",)
_SCHEDULER_KEYS = ("kind", "grace_epochs", "reduction_factor", "metric")
_OBJECTIVE_KEYS = ("metric", "mode")
_SECTIONS = (
    "dataset",
    "training",
    "evaluation",
    "search",
    "resources",
    "checkpoint",
    "failure",
    "scheduler",
)

# Trial keys a job always sets itself, even when a space also returns them.
_ALWAYS_FIXED = frozenset({"dataset", "checkpoint_every"})
# Trial keys always present in JobSpec.trial (resolved from TrialConfig's defaults if not given).
_ALWAYS_SET = frozenset({"dataset", "model", "epochs", "checkpoint_every"})
# Where to fix a value that a preset samples: trial key (or its axis suffix) -> bound.
_SEARCHED_BY = {
    "method": "search.bounds.methods",
    "trades_beta": "search.bounds.trades_beta",
    "lr": "search.bounds.lr",
    "weight_decay": "search.bounds.weight_decay",
    "order": "search.bounds.orders",
    "schedule": "search.bounds.schedules",
    "theta_max": "search.bounds.theta_max",
    "translate_max": "search.bounds.translate_max",
    "eps_max": "search.bounds.eps_max",
}

# Trial keys a grid cannot vary: the driver loads one dataset for the whole search.
_GRID_DATASET_KEYS = ("dataset", "data_dir", "download")
# Scheduler keys each kind ignores (moasha ranks on every objective, not on one metric).
_SCHEDULER_UNUSED = {
    "none": ("grace_epochs", "reduction_factor", "metric"),
    "moasha": ("metric",),
    "asha": (),
}

_BOUNDS_MODELS_MESSAGE = (
    "search.bounds.models: list the models to search over as model: [a, b] instead"
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# YAML 1.1 (PyYAML) reads 5e-4 as a string; YAML 1.2 and every user read it as a number.
_SCI_FLOAT_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)[eE][-+]?\d+$")


def _trial_homes() -> dict[str, str]:
    """Flat TrialConfig key -> its dotted path in a job file (everything else is ``training.*``)."""
    homes = {flat: f"dataset.{key}" for key, flat in _DATASET_KEYS.items()}
    homes.update({flat: f"evaluation.{key}" for key, flat in _EVALUATION_KEYS.items()})
    homes.update({"model": "model", "model_width": "model_width"})
    homes["checkpoint_every"] = "checkpoint.every"
    return homes


def _training_keys() -> tuple[str, ...]:
    """Keys the ``training`` section takes: TrialConfig fields without a section of their own,
    and the curriculum keys."""
    homes = _trial_homes()
    fields = [f.name for f in dataclasses.fields(TrialConfig)]
    own = [f for f in fields if f not in homes and f != "curriculum"]
    return (*own, *(k for k in curriculum_keys() if k not in own))


def _bounds_keys() -> tuple[str, ...]:
    """Field names of ``search_spaces.SearchBounds`` (imported here, not at module import)."""
    bounds_cls = _search_spaces().SearchBounds
    return tuple(f.name for f in dataclasses.fields(bounds_cls) if f.name != "eps_limit")


def _section_keys(section: str) -> tuple[str, ...]:
    return {
        "dataset": tuple(_DATASET_KEYS),
        "training": _training_keys(),
        "evaluation": tuple(_EVALUATION_KEYS),
        "search": _SEARCH_KEYS,
        "resources": _RESOURCES_KEYS,
        "checkpoint": _CHECKPOINT_KEYS,
        "failure": _FAILURE_KEYS,
        "scheduler": _SCHEDULER_KEYS,
    }[section]


def _known_paths(with_bounds: bool = True) -> list[str]:
    """Every dotted path a job file can set (``search.bounds.*`` when search_spaces imports)."""
    paths = list(TOP_LEVEL_KEYS)
    for section in _SECTIONS:
        paths.extend(f"{section}.{key}" for key in _section_keys(section))
    if with_bounds:
        with contextlib.suppress(ImportError, AttributeError, UserError):
            paths.extend(f"search.bounds.{key}" for key in _bounds_keys())
    return paths


# --------------------------------------------------------------------------------------------------
# Errors


class _UnknownKey(UserError):
    """An unknown key; formatted with its source as "unknown key 'x' in <source>; did you mean"."""

    def __init__(self, path: str, hint: str) -> None:
        super().__init__(f"unknown key {path!r}{hint}")
        self.path = path
        self.hint = hint

    def format(self, source: str | None) -> str:
        where = f" in {source}" if source else ""
        return f"unknown key {self.path!r}{where}{self.hint}"


class _Formatted(UserError):
    """A message that already names its source; passed on unchanged."""


def _unknown_key(path: str, siblings: Iterable[str]) -> _UnknownKey:
    """The error for an unknown ``path`` whose valid siblings (full dotted paths) are given.

    The suggestion is, in order: the home of a trial key written in the wrong section
    (``epochs`` -> ``training.epochs``); for a top-level key, a unique key of that name in a
    section (``trials`` -> ``search.trials``); a close sibling (``serch`` -> ``search``); a
    unique key of that name anywhere; a close key anywhere. Failing all, the siblings are listed.
    """
    siblings = list(siblings)
    leaf = path.rsplit(".", 1)[-1]
    homes = _trial_homes()
    everywhere: dict[str, list[str]] = {}
    for known in _known_paths():
        everywhere.setdefault(known.rsplit(".", 1)[-1], []).append(known)

    def home() -> str | None:
        if path == "models":  # JobSpec.models is written `model` in a job file
            return "model"
        if leaf in homes and homes[leaf] != path:
            return homes[leaf]
        if leaf in _training_keys() and f"training.{leaf}" != path:
            return f"training.{leaf}"
        return None

    def unique_elsewhere() -> str | None:
        found = [p for p in everywhere.get(leaf, []) if p != path]
        return found[0] if len(found) == 1 else None

    def close_sibling() -> str | None:
        by_leaf = {s.rsplit(".", 1)[-1]: s for s in siblings}
        close = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        return by_leaf[close[0]] if close else None

    def close_anywhere() -> str | None:
        close = difflib.get_close_matches(leaf, list(everywhere), n=1, cutoff=0.75)
        return everywhere[close[0]][0] if close and len(everywhere[close[0]]) == 1 else None

    if "." in path:
        order = (home, close_sibling, unique_elsewhere, close_anywhere)
    else:
        order = (home, unique_elsewhere, close_sibling, close_anywhere)
    for rule in order:
        suggestion = rule()
        if suggestion is not None:
            return _UnknownKey(path, f"; did you mean {suggestion!r}?")
    names = ", ".join(s.rsplit(".", 1)[-1] for s in siblings)
    return _UnknownKey(path, f"; known keys here: {names}")


def _check_keys(mapping: Mapping[Any, Any], known: Iterable[str], prefix: str) -> None:
    """Raise for the first key of ``mapping`` not in ``known`` (``prefix`` is the section path)."""
    known = tuple(known)
    for key in mapping:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            raise _unknown_key(path, [f"{prefix}.{k}" if prefix else k for k in known])


def _locate(message: str, homes: Mapping[str, str]) -> str | None:
    """``message`` with the first mention of one of ``homes``' keys replaced by its dotted path.

    Quoted mentions (``'theta_mx'``) win over bare words; ``None`` when no key is mentioned.
    """
    best: tuple[int, int, int, str] | None = None  # (priority, start, end, path)
    for key, path in homes.items():
        quoted = re.search(rf"'{re.escape(key)}'", message)
        if quoted:
            candidate = (0, quoted.start() + 1, quoted.end() - 1, path)
        else:
            bare = re.search(rf"(?<![\w.@'\-]){re.escape(key)}(?![\w'@\-])", message)
            if not bare:
                continue
            candidate = (1, bare.start(), bare.end(), path)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    if best is None:
        return None
    _, start, end, path = best
    return message[:start] + path + message[end:]


def _with_path(exc: UserError, homes: Mapping[str, str], fallback: str) -> UserError:
    """Re-raise a message from another module with the key it names written as a dotted path."""
    message = str(exc)
    located = _locate(message, homes)
    return UserError(located if located is not None else f"{fallback}: {message}")


# --------------------------------------------------------------------------------------------------
# Typed readers (raise UserError naming the dotted path)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _yaml12_float(value: Any) -> Any:
    if isinstance(value, str) and _SCI_FLOAT_RE.match(value.strip()):
        return float(value)
    return value


def _numbers_from_yaml12(value: Any, sequence: type = list) -> Any:
    """``value`` with ``5e-4``-style strings read as floats and lists as ``sequence``
    (recursively)."""
    if isinstance(value, list | tuple):
        return sequence(_numbers_from_yaml12(v, sequence) for v in value)
    return _yaml12_float(value)


def _as_int(value: Any, path: str, *, minimum: int | None = None) -> int:
    value = _yaml12_float(value)  # 1e1 is a number too (the module docstring promises it)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{path} must be an integer, got {value!r} ({_type_name(value)})")
    if minimum is not None and value < minimum:
        raise UserError(f"{path} must be at least {minimum}, got {value}")
    return value


def _as_float(value: Any, path: str) -> float:
    value = _yaml12_float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{path} must be a number, got {value!r} ({_type_name(value)})")
    if not math.isfinite(value):
        raise UserError(f"{path} must be a finite number, got {value}")
    return float(value)


def _as_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{path} must be a non-empty string, got {value!r} ({_type_name(value)})")
    return value.strip()


def _as_mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(
            f"{path} must be a mapping of key: value, got {value!r} ({_type_name(value)})"
        )
    return dict(value)


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{path} must be one of {', '.join(choices)}; got {value!r}{hint}")
    return value


# --------------------------------------------------------------------------------------------------
# The spec


def _check_metric(metric: Any) -> str:
    """A metric's name if it is reported by a trial; profile points are checked by JobSpec."""
    if not isinstance(metric, str) or not metric:
        raise UserError(f"metric must be a string, got {metric!r} ({_type_name(metric)})")
    if metric in KNOWN_METRICS:
        return metric
    base, at, point = metric.partition("@")
    if at and base in ("spatial_acc", "adv_acc"):
        try:
            float(point)
        except ValueError:
            unit = "degrees" if base == "spatial_acc" else "an L-inf budget"
            raise UserError(
                f"metric {metric!r}: the part after @ must be a number ({unit})"
            ) from None
        return metric
    close = difflib.get_close_matches(metric, KNOWN_METRICS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(
        f"metric {metric!r} is not reported by a trial; {hint}choose one of "
        f"{', '.join(KNOWN_METRICS)}, spatial_acc@<deg> or adv_acc@<eps>"
    )


@dataclass(frozen=True)
class Objective:
    """One objective of the search: a reported metric and whether to maximise or minimise it."""

    metric: str
    mode: str = "max"

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        _choice(self.mode, "mode", MODES)

    @property
    def is_profile(self) -> bool:
        """Whether the metric is a profile point, reported only after the last epoch."""
        return "@" in self.metric


DEFAULT_OBJECTIVES = (Objective("spatial_acc", "max"), Objective("adv_acc", "max"))


@dataclass(frozen=True)
class SearchSettings:
    """What is searched and how: the preset space, its bounds, the Optuna sampler and budget.

    Attributes:
        preset: a name from ``search_spaces.list_presets()``.
        bounds: overrides of ``SearchBounds.for_dataset(eps_scale)`` as given (lists as tuples);
            :meth:`JobSpec.search_bounds` builds the object.
        sampler: ``tpe``, ``nsga2``, ``nsga3``, ``gp`` or ``random`` (Optuna samplers).
        sampler_options: keyword arguments of that sampler (plain values only; no ``seed``).
        seed: the sampler's seed.
        trials: number of trials (Optuna ``n_trials`` / Tune ``num_samples``); for a grid, the
            number of grid points.
        max_concurrent: trials running at once.
        paper_first: train the authors' CuSP schedule as the first trial when the space holds
            it (:meth:`JobSpec.paper_point`), so the front can be read against the paper's model.
        grid: flat trial key -> list of values. A non-empty grid replaces the Optuna search by
            Ray Tune's grid search over every combination (trade-off studies); ``preset``,
            ``bounds`` and the sampler are then unused.
    """

    preset: str = "cusp"
    grid: dict[str, list[Any]] = field(default_factory=dict, hash=False)
    bounds: dict[str, Any] = field(default_factory=dict, hash=False)
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    trials: int = 16
    max_concurrent: int = 2
    paper_first: bool = True

    def __post_init__(self) -> None:
        _as_str(self.preset, "search.preset")
        if not isinstance(self.paper_first, bool):
            raise UserError(f"search.paper_first must be true or false, got {self.paper_first!r}")
        _choice(self.sampler, "search.sampler", SAMPLERS)
        _as_int(self.seed, "search.seed", minimum=0)
        _as_int(self.trials, "search.trials", minimum=1)
        _as_int(self.max_concurrent, "search.max_concurrent", minimum=1)
        allowed = _sampler_defaults(self.sampler)
        for key, value in self.sampler_options.items():
            if key == "seed":
                raise UserError("search.sampler_options.seed: set search.seed instead")
            if key not in allowed:
                raise _unknown_key(
                    f"search.sampler_options.{key}",
                    [f"search.sampler_options.{a}" for a in allowed],
                )
            if value is not None and not isinstance(value, bool | int | float | str):
                raise UserError(
                    f"search.sampler_options.{key} must be a plain value (number, string, "
                    f"true/false), got {value!r}"
                )
            _check_option_type(f"search.sampler_options.{key}", value, allowed[key])
        for key in self.grid:
            if key in _GRID_DATASET_KEYS:
                raise UserError(
                    f"search.grid.{key}: a search trains every trial on one dataset, loaded "
                    f"once; remove it from the grid and run one job per dataset "
                    f"(set {_trial_homes()[key]} in each)"
                )

    def make_sampler(self) -> Any:
        """The Optuna sampler these settings describe (imports optuna)."""
        import optuna

        sampler_cls = getattr(optuna.samplers, _SAMPLER_CLASSES[self.sampler])
        try:
            return sampler_cls(seed=self.seed, **self.sampler_options)
        except (TypeError, ValueError) as exc:
            given = ", ".join(f"{key}={value!r}" for key, value in self.sampler_options.items())
            raise UserError(
                f"search.sampler_options ({given}): {self.sampler} rejects them: {exc}"
            ) from None


def _sampler_defaults(sampler: str) -> dict[str, Any]:
    """The keyword arguments of the Optuna sampler that a YAML file can set, with their
    defaults (``None`` where there is none)."""
    import optuna

    sampler_cls = getattr(optuna.samplers, _SAMPLER_CLASSES[sampler])
    params = inspect.signature(sampler_cls).parameters.values()
    return {
        p.name: None if p.default is inspect.Parameter.empty else p.default
        for p in params
        if p.name not in _SAMPLER_ARGS_EXCLUDED
    }


def _check_option_type(path: str, value: Any, default: Any) -> None:
    """Raise when a sampler option's value is not of its default's type (an int passes for a
    float); the sampler itself fails on such values with a message that names no option."""
    if value is None or not isinstance(default, bool | int | float | str):
        return
    if isinstance(default, bool):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(default, int):
        expected, ok = "an integer", isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        expected, ok = "a number", isinstance(value, int | float) and not isinstance(value, bool)
    else:
        expected, ok = "a string", isinstance(value, str)
    if not ok:
        raise UserError(
            f"{path} must be {expected} (the default is {default!r}), got {value!r} "
            f"({_type_name(value)})"
        )


@dataclass(frozen=True)
class Resources:
    """Resources of one trial, as Ray reserves them: CPUs > 0, GPUs >= 0 (fractions share one)."""

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        if not self.cpu > 0:
            raise UserError(f"resources.cpu must be greater than 0, got {self.cpu}")
        if self.gpu < 0:
            raise UserError(f"resources.gpu must be 0 or more, got {self.gpu}")
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise UserError(
                f"resources.gpu above 1 must be a whole number (Ray shares only single GPUs), "
                f"got {self.gpu}"
            )

    def as_ray(self) -> dict[str, float]:
        """``{"cpu": ..., "gpu": ...}`` as ``tune.with_resources`` takes it."""
        return {"cpu": self.cpu, "gpu": self.gpu}


@dataclass(frozen=True)
class CheckpointSettings:
    """A checkpoint every ``every`` epochs (and after the last); the newest ``keep`` are kept."""

    every: int = 1
    keep: int = 2

    def __post_init__(self) -> None:
        _as_int(self.every, "checkpoint.every", minimum=1)
        _as_int(self.keep, "checkpoint.keep", minimum=1)


@dataclass(frozen=True)
class FailureSettings:
    """How often a failed trial is retried from its last checkpoint."""

    max_retries: int = 1

    def __post_init__(self) -> None:
        _as_int(self.max_retries, "failure.max_retries", minimum=0)


@dataclass(frozen=True)
class SchedulerSettings:
    """The trial scheduler: ``none`` (every trial runs all epochs), ``asha`` or ``moasha``.

    Attributes:
        kind: ``none``, ``asha`` (early stopping on ``metric``) or ``moasha`` (multi-objective
            ASHA on all objectives).
        grace_epochs: epochs a trial runs before it can be stopped.
        reduction_factor: ASHA's rung reduction factor (> 1).
        metric: the objective metric ``asha`` ranks on (a per-epoch one); :func:`load_job`
            defaults it to the first objective's for ``asha`` and leaves it ``None`` otherwise.
    """

    kind: str = "none"
    grace_epochs: int = 1
    reduction_factor: float = 4.0
    metric: str | None = None

    def __post_init__(self) -> None:
        _choice(self.kind, "scheduler.kind", SCHEDULERS)
        _as_int(self.grace_epochs, "scheduler.grace_epochs", minimum=1)
        if not self.reduction_factor > 1:
            raise UserError(
                f"scheduler.reduction_factor must be greater than 1, got {self.reduction_factor}"
            )


@dataclass(frozen=True)
class JobSpec:
    """One search, fully validated. Build it with :func:`load_job` or :meth:`from_dict`.

    Attributes:
        name: experiment name (letters, digits, ``-``, ``_``, ``.``); the experiment directory
            is ``<storage>/<name>`` (:attr:`experiment_path`).
        trial: the fixed flat trial settings passed to every trial: the keys the job sets,
            plus always ``dataset`` (registry name), ``model`` (the first of :attr:`models`),
            ``epochs`` (unless the grid sets it) and ``checkpoint_every``; ``TrialConfig``
            defaults fill the rest. None of its keys is one the search space or the grid sets
            (checked), except ``model``; a trial's config is ``{**trial, **sampled}``.
        models: the models; more than one means the model is searched over.
        objectives: what the search optimises, in order.
        search: preset, bounds, sampler and budget.
        resources: per-trial resources.
        storage: absolute local path (a ``file://`` URI becomes one) or ``s3://``, ``gs://`` URI.
        checkpoint: checkpoint frequency and retention.
        failure: retries of failed trials.
        scheduler: the trial scheduler.
        plugins: modules imported before anything else, in every process that runs or reads
            the job (:mod:`trainables.plugins`): they register the job's own models, datasets,
            schedule kinds or presets.
        source: where the spec came from (a file name), for messages only.
    """

    name: str
    trial: dict[str, Any] = field(hash=False)
    models: tuple[str, ...]
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    storage: str = DEFAULT_STORAGE
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    failure: FailureSettings = field(default_factory=FailureSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    plugins: tuple[str, ...] = ()
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except _Formatted:
            raise
        except _UnknownKey as exc:
            raise _Formatted(exc.format(self.source)) from None
        except UserError as exc:
            raise _Formatted(f"{self.source}: {exc}" if self.source else str(exc)) from None

    # -- validation ------------------------------------------------------------------------------

    def _validate(self) -> None:
        object.__setattr__(self, "plugins", check_plugins(self.plugins))
        import_plugins(self.plugins)
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise UserError(
                f"name must be 1-100 letters, digits, '-', '_' or '.' (starting with a letter "
                f"or digit), got {self.name!r}"
            )
        object.__setattr__(self, "storage", _normalize_storage(self.storage))
        if isinstance(self.models, str):
            object.__setattr__(self, "models", (self.models,))
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "objectives", tuple(self.objectives))
        if not self.models or len(set(self.models)) != len(self.models):
            raise UserError(f"model must list distinct model names, got {list(self.models)}")
        for index, model in enumerate(self.models):
            where = "model" if len(self.models) == 1 else f"model[{index}]"
            try:
                get_model_spec(model)
            except UserError as exc:
                raise UserError(f"{where}: {exc}") from None
        _check_grid_conflicts(self.trial, self.search.grid)
        trial = dict(self.trial)
        trial["model"] = self.models[0]
        trial["checkpoint_every"] = self.checkpoint.every
        configs = [self._trial_for({**trial, "model": m}, i) for i, m in enumerate(self.models)]
        config = configs[0]
        # canonical values: the dataset's registry name, numbers coerced to their field types,
        # keys in TrialConfig's field order (then the curriculum keys as given); a key the grid
        # sets is not filled in, or to_dict would write it as fixed too
        fields = [f.name for f in dataclasses.fields(TrialConfig) if f.name != "curriculum"]
        always = _ALWAYS_SET - set(self.search.grid)
        canonical = {key: getattr(config, key) for key in fields if key in trial or key in always}
        canonical.update({key: value for key, value in trial.items() if key not in canonical})
        canonical["dataset"] = dataset_info(config.dataset).name
        object.__setattr__(self, "trial", canonical)
        self._check_plugin_models(configs)
        self._validate_objectives(config)
        self._validate_scheduler(config)
        self._validate_profile_objectives(config)
        self._validate_search()

    def _trial_for(self, trial: dict[str, Any], model_index: int) -> TrialConfig:
        homes = {key: _trial_homes().get(key, f"training.{key}") for key in trial}
        if len(self.models) > 1:
            homes["model"] = f"model[{model_index}]"
        name = trial.get("dataset", TrialConfig.dataset)
        try:
            dataset_info(name)
        except UserError as exc:
            raise UserError(f"{homes.get('dataset', 'dataset.name')}: {exc}") from None
        try:
            return TrialConfig.from_dict(trial)
        except UserError as exc:
            raise _with_path(exc, homes, "training") from None

    def _check_plugin_models(self, configs: list[TrialConfig]) -> None:
        """Build each plugin model once (``build_model`` checks its logits' shape), so a broken
        one fails here rather than in every trial; shipped models are tested."""
        for index, config in enumerate(configs):
            if get_model_spec(config.model).shipped:
                continue
            try:
                config.build_model()
            except UserError as exc:
                where = "model" if len(configs) == 1 else f"model[{index}]"
                raise UserError(f"{where}: {exc}") from None

    def _validate_objectives(self, config: TrialConfig) -> None:
        if not self.objectives:
            raise UserError("objectives must list at least one {metric, mode}")
        seen: set[str] = set()
        eps_eval = config.eps_eval
        if eps_eval is None:
            eps_eval = dataset_info(config.dataset).eps_scale
        profile_keys = [spatial_profile_key(t) for t in DEFAULT_PROFILE_THETAS]
        profile_keys += [adversarial_profile_key(eps_eval * k / 4) for k in range(5)]
        for index, objective in enumerate(self.objectives):
            where = f"objectives[{index}].metric"
            if objective.metric in seen:
                raise UserError(f"{where}: {objective.metric!r} is listed twice; remove one")
            seen.add(objective.metric)
            if objective.is_profile:
                if not config.final_profiles:
                    raise UserError(
                        f"{where}: profile metric {objective.metric!r} needs "
                        f"evaluation.profiles: true"
                    )
                if objective.metric not in profile_keys:
                    raise UserError(
                        f"{where}: {objective.metric!r} is not a reported profile point; "
                        f"choose one of {', '.join(profile_keys)}"
                    )

    def _validate_scheduler(self, config: TrialConfig) -> None:
        scheduler = self.scheduler
        metrics = self.metrics
        if scheduler.kind == "none":
            return
        if scheduler.grace_epochs >= config.epochs:
            # the first rung is at grace_epochs; one at the last epoch can stop nothing
            raise UserError(
                f"scheduler.grace_epochs ({scheduler.grace_epochs}) must be below "
                f"training.epochs ({config.epochs}): {scheduler.kind}'s first rung, where it can "
                f"stop a trial, is at grace_epochs"
            )
        if scheduler.metric is not None:
            if scheduler.metric not in metrics:
                raise UserError(
                    f"scheduler.metric must be one of the objectives' metrics "
                    f"({', '.join(metrics)}), got {scheduler.metric!r}"
                )
            if "@" in scheduler.metric:
                raise UserError(
                    f"scheduler.metric {scheduler.metric!r} is reported only after the last "
                    f"epoch; choose a per-epoch metric"
                )
        elif scheduler.kind == "asha":
            raise UserError("scheduler.metric must be set for asha (one of the objectives)")
        if scheduler.kind == "moasha" and any("@" in m for m in metrics):
            raise UserError(
                "scheduler.kind: moasha ranks trials every epoch, but an objective is a profile "
                "metric reported only after the last epoch; use kind: none"
            )

    def _validate_profile_objectives(self, config: TrialConfig) -> None:
        """Profile points come only with the last epoch's result, but Optuna (through Ray Tune)
        and the schedulers need every objective in every epoch's result."""
        if config.epochs == 1 or (self.search.grid and self.scheduler.kind == "none"):
            return
        ranker = f"scheduler.kind {self.scheduler.kind}" if self.search.grid else "an Optuna search"
        for index, objective in enumerate(self.objectives):
            if objective.is_profile:
                base, _, point = objective.metric.partition("@")
                key = "theta_eval" if base == "spatial_acc" else "eps_eval"
                raise UserError(
                    f"objectives[{index}].metric: {objective.metric} is measured only after the "
                    f"last epoch, but {ranker} ranks trials every epoch; use {base} with "
                    f"evaluation.{key}: {point} (or a grid job with scheduler.kind: none)"
                )

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of a grid job's values (empty for an Optuna search)."""
        keys = list(self.search.grid)
        return [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*(self.search.grid[k] for k in keys))
        ]

    def _validate_grid(self) -> None:
        if len(self.models) > 1:
            models = ", ".join(self.models)
            raise UserError(
                f"model lists {len(self.models)} models, but a grid job trains each point with "
                f"the first only; put them in search.grid.model: [{models}]"
            )
        for point in self.grid_points():
            try:
                TrialConfig.from_dict({**self.trial, **point})
            except UserError as exc:
                where = ", ".join(f"{k}={v}" for k, v in point.items())
                raise UserError(f"search.grid point ({where}): {exc}") from None
        for value in self.search.grid.get("eps_max", ()):
            if isinstance(value, int | float) and value > self.eps_scale:
                raise UserError(
                    f"search.grid.eps_max value {value:g} is above the dataset's eps limit "
                    f"{self.eps_scale:g}"
                )

    def _validate_search(self) -> None:
        if self.search.grid:
            self._validate_grid()
            return
        presets = tuple(_search_spaces().list_presets())
        _choice(self.search.preset, "search.preset", presets)
        space = self.make_space()
        for sampled in space.branch_configs():
            try:
                TrialConfig.from_dict({**self.trial, **sampled})
            except UserError as exc:
                raise UserError(
                    f"search.preset {self.search.preset!r} samples trials that would fail: "
                    f"{exc} (fix the preset, or narrow search.bounds)"
                ) from None
        searched = set(space.config_keys())
        if len(self.models) > 1:
            searched.discard("model")  # the fixed model is the first of the searched ones
        homes = _trial_homes()
        for key in self.trial:
            if key in searched and key not in _ALWAYS_FIXED:
                path = homes.get(key, f"training.{key}")
                hint = _SEARCHED_BY.get(key) or _SEARCHED_BY.get(key.split("_", 1)[-1])
                narrow = f" (to fix it, narrow {hint} to one value)" if hint else ""
                raise UserError(
                    f"{path} is searched by preset {self.search.preset!r}; remove it from the "
                    f"job{narrow}"
                )
        with warnings.catch_warnings():  # optuna marks some samplers experimental
            warnings.simplefilter("ignore")
            self.search.make_sampler()
        if self.resources.gpu == 0 and self.trial.get("device") == "cuda":
            raise UserError(
                "training.device is cuda but resources.gpu is 0; set resources.gpu (e.g. 1) "
                "or training.device: auto"
            )

    # -- what the orchestration needs ------------------------------------------------------------

    @property
    def metrics(self) -> list[str]:
        """Objective metric names, in order (OptunaSearch ``metric``)."""
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        """Objective modes, in order (OptunaSearch ``mode``)."""
        return [o.mode for o in self.objectives]

    @property
    def dataset(self) -> str:
        """The dataset's registry name."""
        return str(self.trial["dataset"])

    @property
    def eps_scale(self) -> float:
        """The dataset's standard L-inf budget."""
        return dataset_info(self.dataset).eps_scale

    @property
    def epochs(self) -> int:
        """Epochs per trial (the ``max_t`` of a scheduler)."""
        return TrialConfig.from_dict(self.trial).epochs

    @property
    def experiment_path(self) -> str:
        """``<storage>/<name>``: the experiment directory (a local path or a URI)."""
        if "://" in self.storage:
            return f"{self.storage.rstrip('/')}/{self.name}"
        return os.path.join(self.storage, self.name)

    def trial_config(self) -> dict[str, Any]:
        """The fixed flat trial settings (a copy); ``TrialConfig.from_dict`` accepts it.

        A trial's config is ``{**spec.trial_config(), **sampled}``: the search space's sampled
        values take precedence.
        """
        return copy.deepcopy(self.trial)

    def search_bounds(self) -> Any:
        """``search_spaces.SearchBounds`` for this dataset with the job's bounds; the models
        when more than one is listed."""
        bounds = dict(self.search.bounds)
        if len(self.models) > 1:
            bounds["models"] = self.models
        try:
            return _search_spaces().SearchBounds.for_dataset(self.eps_scale, **bounds)
        except UserError as exc:
            raise _bounds_error(exc) from None

    def paper_point(self) -> dict[str, Any] | None:
        """The Optuna parameters of the authors' CuSP schedule (PGD; theta 120 -> 150 -> 180 and
        eps 1/4 -> 1/2 -> 1 of the dataset's at the LR drops:
        ``search_spaces.paper_cusp_params``) when ``search.paper_first`` is on and the job's
        space holds it (a ``cusp`` or ``joint`` search whose bounds reach theta 180 and the
        dataset's eps, with PGD, the joint order, no translation and, for ``joint``, the step
        schedule); else None. The sampler picks what the point leaves open (the model)."""
        if self.search.grid or not self.search.paper_first:
            return None
        if self.search.preset not in ("cusp", "joint"):
            return None
        bounds = self.search_bounds()
        inside = (
            bounds.theta_max[0] <= 180.0 <= bounds.theta_max[1]
            and bounds.eps_max[0] <= self.eps_scale <= bounds.eps_max[1]
            and bounds.translate_max[1] == 0.0
            and "pgd" in bounds.methods
            and "joint" in bounds.orders
            and (self.search.preset == "cusp" or "step" in bounds.schedules)
        )
        return _search_spaces().paper_cusp_params(self.eps_scale) if inside else None

    def make_space(self) -> Any:
        """``search_spaces.make_space(preset, bounds, epochs)`` for this job: the callable
        ``OptunaSearch(space=...)`` takes. Its keys never overlap :attr:`trial` (checked at
        load), except ``model`` when several models are searched."""
        bounds = self.search_bounds()
        try:
            return _search_spaces().make_space(self.search.preset, bounds, self.epochs)
        except UserError as exc:
            raise _bounds_error(exc) from None

    # -- (de)serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The job as a plain YAML-safe mapping (``from_dict`` rebuilds an equal spec).

        This is what the experiment directory keeps as ``job.yaml``.
        """
        trial = dict(self.trial)
        dataset = {key: trial.pop(flat) for key, flat in _DATASET_KEYS.items() if flat in trial}
        evaluation = {
            key: trial.pop(flat) for key, flat in _EVALUATION_KEYS.items() if flat in trial
        }
        trial.pop("model", None)
        trial.pop("checkpoint_every", None)
        out: dict[str, Any] = {"name": self.name}
        if self.plugins:
            out["plugins"] = list(self.plugins)
        out["dataset"] = dataset
        out["model"] = self.models[0] if len(self.models) == 1 else list(self.models)
        if "model_width" in trial:
            out["model_width"] = trial.pop("model_width")
        out["training"] = trial
        out["evaluation"] = evaluation
        out["objectives"] = [dataclasses.asdict(o) for o in self.objectives]
        out["search"] = dataclasses.asdict(self.search)
        if self.search.grid:  # a grid job refuses the Optuna search's settings
            for key in GRID_UNUSED:
                out["search"].pop(key)
        else:  # and an Optuna job an empty grid
            out["search"].pop("grid")
        out["resources"] = dataclasses.asdict(self.resources)
        out["storage"] = self.storage
        out["checkpoint"] = dataclasses.asdict(self.checkpoint)
        out["failure"] = dataclasses.asdict(self.failure)
        out["scheduler"] = {
            key: value
            for key, value in dataclasses.asdict(self.scheduler).items()
            if key not in _SCHEDULER_UNUSED[self.scheduler.kind]
        }
        return _plain(out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> JobSpec:
        """Validate a raw job mapping (as YAML gives it) and build the spec.

        ``source`` names where ``data`` came from in messages. ``name`` is required here
        (:func:`load_job` defaults it to the file's stem).
        """
        try:
            return _build(data, source)
        except _Formatted:
            raise
        except _UnknownKey as exc:
            raise _Formatted(exc.format(source)) from None
        except UserError as exc:
            raise _Formatted(f"{source}: {exc}" if source else str(exc)) from None

    @classmethod
    def from_saved(cls, data: Any, source: str | None = None) -> JobSpec:
        """:meth:`from_dict` for an experiment's saved ``job.yaml``, which earlier versions
        wrote with the settings a job does not use: the Optuna settings of a grid job, an empty
        ``search.grid`` and every scheduler key."""
        if not isinstance(data, Mapping):
            return cls.from_dict(data, source)
        search = data.get("search")
        if isinstance(search, Mapping):
            unused = GRID_UNUSED if search.get("grid") else ("grid",) if "grid" in search else ()
            data = {**data, "search": {k: v for k, v in search.items() if k not in unused}}
        scheduler = data.get("scheduler")
        if isinstance(scheduler, Mapping):
            kind = scheduler.get("kind", SchedulerSettings.kind)
            unused = _SCHEDULER_UNUSED.get(kind, ()) if isinstance(kind, str) else ()
            data = {**data, "scheduler": {k: v for k, v in scheduler.items() if k not in unused}}
        return cls.from_dict(data, source)

    def with_overrides(self, overrides: Mapping[str, Any]) -> JobSpec:
        """A new spec with dotted-key overrides applied to :meth:`to_dict` and re-validated."""
        return JobSpec.from_dict(apply_overrides(self.to_dict(), overrides), source=self.source)


# --------------------------------------------------------------------------------------------------
# Building from raw mappings


def _build(raw: Mapping[str, Any], source: str | None) -> JobSpec:
    if not isinstance(raw, Mapping):
        raise UserError(f"a job must be a mapping of key: value, got {_type_name(raw)}")
    _check_keys(raw, TOP_LEVEL_KEYS, "")
    if "name" not in raw:
        raise UserError("name is missing; add name: <experiment name>")
    name = _as_str(raw["name"], "name")
    plugins = check_plugins(raw.get("plugins"))
    import_plugins(plugins)  # before the keys are checked: a plugin may add curriculum keys

    trial: dict[str, Any] = {}
    dataset_raw = raw.get("dataset")
    if isinstance(dataset_raw, str):
        dataset_raw = {"name": dataset_raw}
    dataset = _as_mapping(dataset_raw, "dataset")
    _check_keys(dataset, _DATASET_KEYS, "dataset")
    if "name" in dataset:
        dataset["name"] = _as_str(dataset["name"], "dataset.name")
    trial.update({_DATASET_KEYS[key]: value for key, value in dataset.items()})

    models = _models(raw.get("model", TrialConfig.model))
    if "model_width" in raw:
        trial["model_width"] = raw["model_width"]

    training = _as_mapping(raw.get("training"), "training")
    _check_keys(training, _training_keys(), "training")
    trial.update(training)

    evaluation = _as_mapping(raw.get("evaluation"), "evaluation")
    _check_keys(evaluation, _EVALUATION_KEYS, "evaluation")
    trial.update({_EVALUATION_KEYS[key]: value for key, value in evaluation.items()})
    # null means "not fixed": TrialConfig's default applies (None for the optional settings)
    trial = {key: _numbers_from_yaml12(value) for key, value in trial.items() if value is not None}

    objectives = _objectives(raw.get("objectives", None))
    search = _search(_as_mapping(raw.get("search"), "search"))
    resources_raw = _as_mapping(raw.get("resources"), "resources")
    _check_keys(resources_raw, _RESOURCES_KEYS, "resources")
    resources = Resources(
        **{key: _as_float(value, f"resources.{key}") for key, value in resources_raw.items()}
    )
    storage_raw = raw.get("storage", DEFAULT_STORAGE)
    storage = _as_str(storage_raw, "storage")

    checkpoint_raw = _as_mapping(raw.get("checkpoint"), "checkpoint")
    _check_keys(checkpoint_raw, _CHECKPOINT_KEYS, "checkpoint")
    checkpoint = CheckpointSettings(
        **{key: _as_int(value, f"checkpoint.{key}") for key, value in checkpoint_raw.items()}
    )
    failure_raw = _as_mapping(raw.get("failure"), "failure")
    _check_keys(failure_raw, _FAILURE_KEYS, "failure")
    failure = FailureSettings(
        **{key: _as_int(value, f"failure.{key}") for key, value in failure_raw.items()}
    )
    scheduler = _scheduler(_as_mapping(raw.get("scheduler"), "scheduler"), objectives)

    return JobSpec(
        name=name,
        trial=trial,
        models=models,
        objectives=objectives,
        search=search,
        resources=resources,
        storage=storage,
        checkpoint=checkpoint,
        failure=failure,
        scheduler=scheduler,
        plugins=plugins,
        source=source,
    )


def _models(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_as_str(value, "model"),)
    if not isinstance(value, list | tuple) or not value:
        raise UserError(
            f"model must be a model name or a non-empty list of names, got {value!r} "
            f"({_type_name(value)})"
        )
    models = tuple(_as_str(item, f"model[{i}]") for i, item in enumerate(value))
    for index, model in enumerate(models):
        if model in models[:index]:
            raise UserError(f"model[{index}]: {model!r} is listed twice; remove one")
    return models


def _check_grid_conflicts(trial: Mapping[str, Any], grid: Mapping[str, Any]) -> None:
    """Raise for a trial key the job fixes that the grid also sets (the grid would win).

    ``model`` is exempt: the top-level model is always set, and a grid over models replaces it.
    """
    for key in grid:
        if key in trial and key != "model":
            path = _trial_homes().get(key, f"training.{key}")
            raise UserError(
                f"{path} is searched by search.grid.{key}; remove it from the job (or remove "
                f"{key} from search.grid to fix it)"
            )


def _objectives(value: Any) -> tuple[Objective, ...]:
    if value is None:
        return DEFAULT_OBJECTIVES
    if not isinstance(value, list | tuple):
        raise UserError(
            f"objectives must be a list of {{metric, mode}} mappings, got {value!r} "
            f"({_type_name(value)})"
        )
    if not value:
        raise UserError("objectives must list at least one {metric: ..., mode: max|min}")
    objectives = []
    for index, item in enumerate(value):
        where = f"objectives[{index}]"
        if not isinstance(item, Mapping):
            raise UserError(
                f"{where} must be a mapping {{metric: ..., mode: max|min}}, got {item!r} "
                f"({_type_name(item)})"
            )
        _check_keys(item, _OBJECTIVE_KEYS, where)
        if "metric" not in item:
            raise UserError(f"{where}.metric is missing; add metric: spatial_acc (for example)")
        try:
            objectives.append(Objective(item["metric"], item.get("mode", "max")))
        except UserError as exc:
            homes = {"metric": f"{where}.metric", "mode": f"{where}.mode"}
            raise _with_path(exc, homes, where) from None
    return tuple(objectives)


GRID_UNUSED = ("preset", "bounds", "sampler", "sampler_options", "seed", "paper_first")


def _search(raw: dict[str, Any]) -> SearchSettings:
    _check_keys(raw, _SEARCH_KEYS, "search")
    kwargs: dict[str, Any] = {}
    if "preset" in raw:
        kwargs["preset"] = _as_str(raw["preset"], "search.preset")
    if "sampler" in raw:
        kwargs["sampler"] = _as_str(raw["sampler"], "search.sampler")
    for key in ("seed", "trials", "max_concurrent"):
        if key in raw:
            kwargs[key] = _as_int(raw[key], f"search.{key}")
    if "paper_first" in raw:
        kwargs["paper_first"] = raw["paper_first"]
    bounds = _as_mapping(raw.get("bounds"), "search.bounds")
    if bounds:
        if "models" in bounds:
            raise UserError(_BOUNDS_MODELS_MESSAGE)
        _check_keys(bounds, [k for k in _bounds_keys() if k != "models"], "search.bounds")
    kwargs["bounds"] = {key: _numbers_from_yaml12(value, tuple) for key, value in bounds.items()}
    options = _as_mapping(raw.get("sampler_options"), "search.sampler_options")
    kwargs["sampler_options"] = {key: _yaml12_float(value) for key, value in options.items()}
    grid = _as_mapping(raw.get("grid"), "search.grid")
    if raw.get("grid") is not None and not grid:
        raise UserError(
            "search.grid must list at least one key with its values (e.g. theta_max: [0, 90]); "
            "remove search.grid to search with Optuna"
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"search.grid.{key} must be a non-empty list of values")
    if grid:
        unused = [key for key in GRID_UNUSED if key in raw]
        if unused:
            raise UserError(
                f"search.{unused[0]} is not used by a grid job (search.grid replaces the Optuna "
                f"search); remove it, or remove search.grid to search with Optuna"
            )
        kwargs["grid"] = {key: [_yaml12_float(v) for v in values] for key, values in grid.items()}
        points = math.prod(len(values) for values in grid.values())
        if "trials" in kwargs and kwargs["trials"] != points:
            raise UserError(
                f"search.trials is {kwargs['trials']} but search.grid has {points} points; "
                "leave search.trials out of a grid job"
            )
        kwargs["trials"] = points
    return SearchSettings(**kwargs)


def _scheduler(raw: dict[str, Any], objectives: tuple[Objective, ...]) -> SchedulerSettings:
    _check_keys(raw, _SCHEDULER_KEYS, "scheduler")
    kwargs: dict[str, Any] = {}
    if "kind" in raw:
        kwargs["kind"] = _as_str(raw["kind"], "scheduler.kind")
    kind = kwargs.get("kind", SchedulerSettings.kind)
    for key in _SCHEDULER_UNUSED.get(kind, ()):
        if raw.get(key) is not None:
            other = "asha" if key == "metric" else "asha or moasha"
            raise UserError(
                f"scheduler.{key} is not used by scheduler.kind {kind}; remove it, or set "
                f"scheduler.kind: {other}"
            )
    if "grace_epochs" in raw:
        kwargs["grace_epochs"] = _as_int(raw["grace_epochs"], "scheduler.grace_epochs")
    if "reduction_factor" in raw:
        kwargs["reduction_factor"] = _as_float(
            raw["reduction_factor"], "scheduler.reduction_factor"
        )
    metric = raw.get("metric")
    if metric is not None:
        kwargs["metric"] = _as_str(metric, "scheduler.metric")
    elif kwargs.get("kind") == "asha":
        kwargs["metric"] = objectives[0].metric
    return SchedulerSettings(**kwargs)


def _normalize_storage(value: str) -> str:
    """Local paths (and ``file://`` URIs, which name one): ``~`` expanded, made absolute.
    ``s3://`` and ``gs://`` URIs unchanged."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"storage must be a directory or a URI, got {value!r}")
    value = value.strip()
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in URI_SCHEMES:
            raise UserError(
                f"storage {value!r}: unsupported scheme {scheme}://; use a local directory or "
                f"an {', '.join(s + '://' for s in URI_SCHEMES)} URI"
            )
        if scheme != "file":
            return value
        value = value[len("file://") :]
    return os.path.abspath(os.path.expanduser(value))


def _bounds_error(exc: UserError) -> UserError:
    """A message from search_spaces with ``search bound x`` written as ``search.bounds.x``."""
    message = re.sub(r"\bsearch bounds? (\w+)", r"search.bounds.\1", str(exc))
    message = message.replace("search.bounds.models", "model")
    if "search.bounds." in message or message.startswith("model"):
        return UserError(message)
    return UserError(f"search.bounds: {message}")


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts, recursively (``yaml.safe_dump`` takes the result)."""
    if isinstance(value, Mapping):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _search_spaces() -> Any:
    """The search_spaces package, imported on first use."""
    try:
        return importlib.import_module("search_spaces")
    except ImportError as exc:  # pragma: no cover - only while the package is incomplete
        raise UserError(f"search_spaces cannot be imported ({exc}); reinstall cusp-tune") from None


# --------------------------------------------------------------------------------------------------
# Overrides and files


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``raw`` with dotted-key overrides set (``{"search.trials": 4}``).

    Paths must exist in the schema (unknown paths raise with a suggestion). A section given as a
    bare value (``dataset: mnist``) is expanded to a mapping first, so ``dataset.train_size=100``
    works on it. Setting a whole section (``resources={cpu: 2}``) replaces it.
    """
    data = copy.deepcopy(dict(raw))
    for key, value in (overrides or {}).items():
        try:
            parts = _override_path(str(key))
        except _UnknownKey as exc:
            raise UserError(exc.format(f"--set {key}")) from None
        node: dict[str, Any] = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif depth == 0 and part == "dataset" and isinstance(child, str):
                child = {"name": child}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise UserError(
                    f"--set {key}: {where} is not a mapping in the job ({child!r}); "
                    f"set {where} as a whole"
                )
            node[part] = child
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return data


def _override_path(key: str) -> list[str]:
    """The parts of a dotted override key, checked against the schema."""
    parts = key.split(".")
    if any(not part for part in parts):
        raise UserError(f"--set {key}: empty part in the dotted key")
    top = parts[0]
    if top not in TOP_LEVEL_KEYS:
        raise _unknown_key(top, TOP_LEVEL_KEYS)
    if len(parts) == 1:
        return parts
    if top not in _SECTIONS:
        raise UserError(f"--set {key}: {top} is not a section; set it whole (--set {top}=...)")
    section = f"{top}.{parts[1]}"
    known = _section_keys(top)
    if parts[1] not in known:
        raise _unknown_key(section, [f"{top}.{k}" for k in known])
    if len(parts) == 2:
        return parts
    if section in ("search.sampler_options", "search.grid") and len(parts) == 3:
        return parts
    if section == "search.bounds" and len(parts) == 3:
        if parts[2] == "models":
            raise UserError(_BOUNDS_MODELS_MESSAGE)
        bounds = [k for k in _bounds_keys() if k != "models"]
        if parts[2] not in bounds:
            raise _unknown_key(key, [f"search.bounds.{k}" for k in bounds])
        return parts
    with_subkeys = ("search.bounds", "search.sampler_options", "search.grid")
    whole = ".".join(parts[: 3 if section in with_subkeys else 2])
    raise UserError(f"--set {key}: {whole} takes a whole value; set it as --set {whole}=...")


def list_jobs() -> list[str]:
    """Names of the shipped job files (``tune_jobs/jobs/<name>.yaml``), sorted."""
    return sorted(path.stem for path in JOBS_DIR.glob("*.yaml"))


def find_job(name_or_path: str | os.PathLike[str]) -> Path:
    """The job file for a path, or for the bare name of a shipped job (``quickstart``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    text = str(name_or_path)
    if "/" not in text and os.sep not in text:
        shipped = JOBS_DIR / (text if text.endswith((".yaml", ".yml")) else f"{text}.yaml")
        if shipped.is_file():
            return shipped
        if path.suffix not in (".yaml", ".yml"):
            close = difflib.get_close_matches(text, list_jobs(), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"no job file {text!r} and no shipped job of that name; {hint}give a path to a "
                f"YAML file or one of: {', '.join(list_jobs())}"
            )
    raise UserError(f"{text}: no such job file; give a path to a YAML file")


def load_job(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> JobSpec:
    """Read, override and validate a job file (a path or a shipped job's name).

    ``overrides`` are ``--set`` values with dotted keys (as ``parse_overrides`` returns them).
    ``name`` defaults to the file's stem.
    """
    file = find_job(path)
    raw = load_yaml_mapping(file)
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", file.stem)
    return JobSpec.from_dict(raw, source=file.name)
