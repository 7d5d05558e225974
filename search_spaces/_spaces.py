"""Define-by-run search spaces: the building blocks that sample flat trial-config keys, and the
picklable :class:`SearchSpace` that Ray Tune's ``OptunaSearch(space=...)`` calls.

A space is called with an ``optuna.Trial`` (or Ray's wrapper of one), samples with
``trial.suggest_*`` and returns the trial's whole share of the config: every key it sampled plus
the constants and derived values. Ray builds the trial config as ``{**sampled, **returned}``, so
the returned mapping *is* that config. Parameter names are flat trial-config keys (no ``/``).

Step schedules: ``<axis>_stages`` is a list, which Optuna cannot sample. A step axis samples
``<axis>_max`` (the last stage's value) and ``<axis>_start_frac`` (the first stage's value as a
fraction of it), as ramps do, and returns ``<axis>_stages`` built from them together with
``<axis>_max: None`` and ``<axis>_start_frac: None``: a ``None`` key is absent to the curriculum,
which rejects those keys for a step schedule. The Optuna study keeps the sampled numbers; the
trial config has the stages.

Every branch depends only on the categorical choices (schedule kinds, order, method), never on a
sampled number, so :class:`SearchSpace` can walk all branches to check a preset against its
bounds up front and to describe it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from search_spaces._bounds import SearchBounds
from trainables.curriculum import RAMP_SHAPES, SCHEDULE_KINDS, paper_lr_milestones
from trainables.errors import UserError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "SPATIAL_AXES",
    "STEP_VALUE_SHAPES",
    "Preset",
    "PresetSampler",
    "SearchSpace",
    "sample_axis",
    "sample_method",
    "sample_order",
    "sample_training",
    "step_stage_starts",
    "suggest_choice",
    "suggest_float",
    "suggest_int",
]

SPATIAL_AXES: tuple[str, ...] = ("theta", "translate")
"""The spatial axes; ``eps`` is the adversarial one."""


# --------------------------------------------------------------------------------------------
# Suggest helpers: sample unless the range is a single value, and record the value in ``out``
# --------------------------------------------------------------------------------------------


def suggest_choice(
    trial: optuna.Trial, name: str, choices: Sequence[Any], out: dict[str, Any]
) -> Any:
    """``out[name]`` from ``choices``: sampled, or the constant if there is one choice.

    The choices of one name must not change between the trials of a study (Optuna rejects a
    categorical whose choices change), so they may depend on bounds and epochs only.
    """
    value = choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))
    out[name] = value
    return value


def suggest_float(
    trial: optuna.Trial,
    name: str,
    low: float,
    high: float,
    out: dict[str, Any],
    *,
    log: bool = False,
) -> float:
    """``out[name]`` uniform (log-uniform if ``log``) in ``[low, high]``; ``low`` if they are
    equal (nothing sampled)."""
    value = float(low) if low == high else trial.suggest_float(name, low, high, log=log)
    out[name] = value
    return value


def suggest_int(trial: optuna.Trial, name: str, low: int, high: int, out: dict[str, Any]) -> int:
    """``out[name]`` an int in ``[low, high]``; ``low`` if they are equal (nothing sampled)."""
    value = int(low) if low == high else trial.suggest_int(name, low, high)
    out[name] = value
    return value


# --------------------------------------------------------------------------------------------
# Building blocks of presets
# --------------------------------------------------------------------------------------------


def step_stage_starts(epochs: int, last: int) -> tuple[int, ...]:
    """Start epochs of a sampled step schedule: epoch 1 and the first two of the paper's LR
    milestones scaled to the run (:func:`~trainables.curriculum.paper_lr_milestones`), as CuSP
    ties its stages to the LR drops, keeping those ``<= last``.

    E.g. 120 epochs -> (1, 75, 90), 10 -> (1, 7, 8), 3 -> (1, 2, 3), 2 -> (1, 2), 1 -> (1,);
    with ``last = epochs - 1`` (a schedule that must reach its maximum before the last epoch)
    3 -> (1, 2) and 2 -> (1,).
    """
    starts = (1, *paper_lr_milestones(epochs)[:2])
    return tuple(start for start in starts if start <= last)


STEP_VALUE_SHAPES: dict[str, str] = {"theta": "linear", "translate": "linear", "eps": "exponential"}
"""How a sampled step schedule's stage values rise from the first to the last, per axis (a ramp
shape of ``trainables.curriculum.RAMP_SHAPES`` at progress ``i / (stages - 1)``): evenly for the
spatial axes and geometrically for eps, as in CuSP (120, 150, 180 degrees; 2, 4, 8 /255)."""


def _staircase(
    axis: str, starts: Sequence[int], first: float, maximum: float
) -> list[list[int | float]]:
    """``[[start, value], ...]`` rising from ``first`` to ``maximum`` along the axis's shape."""
    if len(starts) == 1:
        return [[starts[0], maximum]]
    shape = RAMP_SHAPES[STEP_VALUE_SHAPES[axis]]
    n = len(starts) - 1
    values = [min(max(shape(i / n, first, maximum), first), maximum) for i in range(n)]
    return [[start, value] for start, value in zip(starts, [*values, maximum], strict=True)]


def sample_axis(
    trial: optuna.Trial,
    axis: str,
    bounds: SearchBounds,
    epochs: int,
    out: dict[str, Any],
    *,
    kinds: Sequence[str] | None = None,
    leading: bool = False,
) -> None:
    """Sample the schedule of ``axis`` (``theta``, ``translate`` or ``eps``) into ``out``.

    An axis whose bound is ``[0, 0]`` is off: ``<axis>_max = 0``, nothing sampled. Otherwise
    ``<axis>_schedule`` from ``kinds`` (default ``bounds.schedules``), then exactly the keys of
    that kind (``SCHEDULE_KINDS[kind].keys``):

    - ``<axis>_max`` in the bound;
    - ``<axis>_start_frac`` in [0, 1];
    - ``<axis>_warmup`` in ``[0, epochs // 4]`` (and below ``last``);
    - ``<axis>_ramp_end`` in ``[warmup + 1, last]``;
    - ``<axis>_stages`` (step): stages starting at :func:`step_stage_starts`, rising from
      ``start_frac * max`` to ``max`` as :data:`STEP_VALUE_SHAPES` says (one stage at ``max``
      if only one fits, then ``start_frac`` is not sampled); the sampled ``max`` and
      ``start_frac`` are returned as ``None`` (see the module docstring).

    ``last`` is ``epochs``, or ``epochs - 1`` when ``leading``: the axis leads an ordered
    curriculum (``spatial_first`` / ``adversarial_first``) and must reach its maximum before the
    last epoch so the delayed budget gets at least one.
    """
    low, high = bounds.axis_range(axis)
    if high <= 0.0:
        out[f"{axis}_max"] = 0.0
        return
    kind = SCHEDULE_KINDS[suggest_choice(trial, f"{axis}_schedule", kinds or bounds.schedules, out)]
    last = epochs - 1 if leading else epochs
    if leading and last < 1:
        raise ValueError(f"a leading {axis} schedule needs at least 2 epochs, got {epochs}")
    maximum = 0.0
    if "max" in kind.keys or "stages" in kind.keys:
        maximum = suggest_float(trial, f"{axis}_max", low, high, out)
    if "stages" in kind.keys:
        starts = step_stage_starts(epochs, last)
        first = maximum
        if len(starts) > 1:
            first = suggest_float(trial, f"{axis}_start_frac", 0.0, 1.0, out) * maximum
        out[f"{axis}_stages"] = _staircase(axis, starts, first, maximum)
        for suffix in ("max", "start_frac"):
            if suffix not in kind.keys and f"{axis}_{suffix}" in out:
                out[f"{axis}_{suffix}"] = None
        return
    if "start_frac" in kind.keys:
        suggest_float(trial, f"{axis}_start_frac", 0.0, 1.0, out)
    warmup = 0
    if "warmup" in kind.keys:
        warmup = suggest_int(trial, f"{axis}_warmup", 0, max(0, min(epochs // 4, last - 1)), out)
    if "ramp_end" in kind.keys:
        suggest_int(trial, f"{axis}_ramp_end", warmup + 1, last, out)


def sample_method(
    trial: optuna.Trial,
    bounds: SearchBounds,
    out: dict[str, Any],
    *,
    methods: Sequence[str] | None = None,
) -> str:
    """``method`` from ``methods`` (default ``bounds.methods``), and ``trades_beta`` in its
    bound when the method is ``trades``."""
    method = suggest_choice(trial, "method", methods or bounds.methods, out)
    if method == "trades":
        suggest_float(trial, "trades_beta", *bounds.trades_beta, out)
    return method


def sample_order(
    trial: optuna.Trial,
    bounds: SearchBounds,
    epochs: int,
    out: dict[str, Any],
    *,
    spatial: bool,
    adversarial: bool,
) -> str:
    """``order`` from ``bounds.orders`` when both a spatial and the adversarial budget are
    trained (``spatial``, ``adversarial``) and the run has at least 2 epochs (a budget-first
    order needs one epoch for each); ``joint`` otherwise (there is nothing to order)."""
    if not (spatial and adversarial):
        out["order"] = "joint"
        return "joint"
    choices = bounds.orders if epochs >= 2 else tuple(o for o in bounds.orders if o == "joint")
    if not choices:
        raise UserError(
            f"search bound orders lists only {', '.join(bounds.orders)}, which needs at least "
            f"2 epochs; add 'joint'"
        )
    return suggest_choice(trial, "order", choices, out)


def sample_training(trial: optuna.Trial, bounds: SearchBounds, out: dict[str, Any]) -> None:
    """``lr`` and ``weight_decay`` (log scale) and ``model``, each only if its bound is set."""
    if bounds.lr is not None:
        suggest_float(trial, "lr", *bounds.lr, out, log=True)
    if bounds.weight_decay is not None:
        suggest_float(trial, "weight_decay", *bounds.weight_decay, out, log=True)
    if bounds.models is not None:
        suggest_choice(trial, "model", bounds.models, out)


# --------------------------------------------------------------------------------------------
# Presets and spaces
# --------------------------------------------------------------------------------------------

PresetSampler = Callable[["optuna.Trial", SearchBounds, int], dict[str, Any]]
"""``sample(trial, bounds, epochs)``: sample one trial's keys, return them with the constants."""


@dataclass(frozen=True)
class Preset:
    """A named family of search spaces.

    Attributes:
        name: the registry name.
        summary: one line for listings.
        sample: the define-by-run function; a module-level function (pickled by reference).
    """

    name: str
    summary: str
    sample: PresetSampler


@dataclass(frozen=True)
class SearchSpace:
    """A preset bound to a job's bounds and epochs: the ``space`` of ``OptunaSearch``.

    Calling it with an ``optuna.Trial`` samples one trial and returns its flat config keys
    (sampled values, constants and derived values; ``None`` means absent). It is a frozen
    dataclass of plain values and a module-level function, so it pickles (Ray pickles the
    searcher with the experiment for resume).
    """

    preset: Preset
    bounds: SearchBounds
    epochs: int

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return dict(self.preset.sample(trial, self.bounds, self.epochs))

    def config_keys(self) -> tuple[str, ...]:
        """Every config key the space may set (sampled or returned), in first-seen order.

        A job spec's fixed trial settings must not overlap them. Walks every branch, so a
        preset that cannot work with its bounds raises :class:`UserError` here.
        """
        names: dict[str, None] = {}
        for branch in _walk(self):
            names.update(dict.fromkeys(branch.params))
            names.update(dict.fromkeys(branch.low))
        return tuple(names)

    def branch_configs(self) -> list[dict[str, Any]]:
        """The configs the space returns on each branch with every number at its lowest and at
        its highest value: what a job checks against ``TrialConfig`` before any trial runs."""
        return [config for branch in _walk(self) for config in (branch.low, branch.high)]

    def describe(self) -> list[str]:
        """One line per sampled parameter with its range, then one per set value, each with the
        condition under which it appears, e.g. ``trades_beta: float in [1, 10] (when method =
        trades)``, ``curriculum = custom`` or ``theta_max = None (when theta_schedule = step)``.
        Values computed from sampled numbers show as ``derived``."""
        branches = _walk(self)
        table = _categorical_table(branches)
        sampled_lines: list[str] = []
        set_lines: list[str] = []
        for name in self.config_keys():
            sampled = [i for i, b in enumerate(branches) if name in b.params]
            if sampled:
                found = [branches[i].params[name] for i in sampled]
                found += [branches[i].params_high[name] for i in sampled]
                sampled_lines.append(f"{name}: {_range(found)}{_condition(sampled, table)}")
            groups: dict[str, list[int]] = {}
            for i, branch in enumerate(branches):
                if _is_set(branch, name):
                    groups.setdefault(_set_value(branch, name), []).append(i)
            for shown, indices in groups.items():
                set_lines.append(f"{name} = {shown}{_condition(indices, table)}")
        return sampled_lines + set_lines


# --------------------------------------------------------------------------------------------
# Walking the branches of a space (for keys and describe)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    kind: str  # categorical, float, int
    value: Any
    low: Any = None
    high: Any = None
    log: bool = False
    choices: tuple[Any, ...] = ()


class _BranchTrial:
    """Stands in for ``optuna.Trial`` to walk one branch: the i-th categorical takes choice
    ``path[i]`` (the first one past the path), numbers their lowest or highest value."""

    def __init__(self, path: tuple[int, ...], pick_high: bool) -> None:
        self._path = path
        self._pick_high = pick_high
        self.taken: list[int] = []
        self.widths: list[int] = []
        self.params: dict[str, _Param] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        depth = len(self.taken)
        index = self._path[depth] if depth < len(self._path) else 0
        self.taken.append(index)
        self.widths.append(len(choices))
        self.params[name] = _Param("categorical", choices[index], choices=tuple(choices))
        return choices[index]

    def _number(self, kind: str, name: str, low: Any, high: Any, log: bool) -> Any:
        value = high if self._pick_high else low
        self.params[name] = _Param(kind, value, low, high, log)
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self._number("float", name, float(low), float(high), log)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._number("int", name, int(low), int(high), log)


@dataclass(frozen=True)
class _Branch:
    params: dict[str, _Param]  # sampled with numbers at their low ends
    low: dict[str, Any]  # the returned config then
    params_high: dict[str, _Param]  # and with numbers at their high ends
    high: dict[str, Any]


@lru_cache(maxsize=16)
def _walk(space: SearchSpace) -> tuple[_Branch, ...]:
    """Every branch of ``space``: one per combination of categorical choices that it reaches
    (cached: ``make_space``, ``keys`` and ``describe`` share one walk; do not mutate)."""
    branches: list[_Branch] = []
    pending: list[tuple[int, ...]] = [()]
    while pending:
        path = pending.pop()
        low_trial, high_trial = _BranchTrial(path, False), _BranchTrial(path, True)
        low, high = space(low_trial), space(high_trial)  # type: ignore[arg-type]
        for depth in range(len(path), len(low_trial.taken)):
            prefix = tuple(low_trial.taken[:depth])
            pending.extend(prefix + (k,) for k in range(low_trial.widths[depth] - 1, 0, -1))
        branches.append(_Branch(low_trial.params, low, high_trial.params, high))
    return tuple(branches)


def _is_set(branch: _Branch, name: str) -> bool:
    """Whether the branch returns ``name`` as a constant or derived value (not just echoing
    the value it sampled)."""
    if name not in branch.low:
        return False
    param = branch.params.get(name)
    return param is None or branch.low[name] != param.value


def _set_value(branch: _Branch, name: str) -> str:
    """How ``describe`` shows the value ``branch`` sets for ``name``."""
    low, high = branch.low[name], branch.high.get(name)
    if low == high:
        return _plain(low)
    if name.endswith("_stages"):
        return "derived, stages start at epochs " + ", ".join(str(s) for s, _ in low)
    return "derived"


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range(found: list[_Param]) -> str:
    first = found[0]
    if first.kind == "categorical":
        return "one of " + ", ".join(_plain(c) for c in first.choices)
    low, high = min(p.low for p in found), max(p.high for p in found)
    scale = ", log scale" if first.log else ""
    return f"{first.kind} in [{_plain(low)}, {_plain(high)}]{scale}"


_UNSET = "unset"


@dataclass(frozen=True)
class _Table:
    """The categorical choices of every branch: ``rows[i][name]`` (``_UNSET`` if not sampled),
    and each categorical's choices in first-seen order."""

    rows: list[dict[str, Any]]
    choices: dict[str, tuple[Any, ...]]


def _categorical_table(branches: Sequence[_Branch]) -> _Table:
    choices: dict[str, tuple[Any, ...]] = {}
    for branch in branches:
        for name, param in branch.params.items():
            if param.kind == "categorical":
                choices.setdefault(name, param.choices)
    rows = [
        {name: b.params[name].value if name in b.params else _UNSET for name in choices}
        for b in branches
    ]
    return _Table(rows, choices)


def _condition(subset: list[int], table: _Table) -> str:
    """`` (when a = x and b in y, z)``: the categorical choices that pick exactly the branches
    in ``subset``; empty if it is all of them, `` (conditional)`` if no such rule is found."""
    rows = table.rows
    if len(subset) == len(rows):
        return ""
    inside = set(subset)

    def exact(rules: list[tuple[str, set[Any]]]) -> bool:
        return all(
            (i in inside) == all(row[name] in chosen for name, chosen in rules)
            for i, row in enumerate(rows)
        )

    rules: list[tuple[str, set[Any]]] = []
    for name in table.choices:
        chosen = {rows[i][name] for i in subset}
        if chosen != {row[name] for row in rows}:
            rules.append((name, chosen))
    if not rules or not exact(rules):
        return " (conditional)"
    for rule in list(reversed(rules)):  # drop the rules the others imply
        fewer = [r for r in rules if r is not rule]
        if fewer and exact(fewer):
            rules = fewer
    parts = []
    for name, chosen in rules:
        ordered = [_plain(c) for c in (*table.choices[name], _UNSET) if c in chosen]
        parts.append(
            f"{name} = {ordered[0]}" if len(ordered) == 1 else f"{name} in {', '.join(ordered)}"
        )
    return f" (when {' and '.join(parts)})"
