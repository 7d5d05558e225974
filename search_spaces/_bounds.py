"""The ranges a search space samples from, as a job spec gives them."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainables.curriculum import AXES, ORDERS, SCHEDULE_KINDS
from trainables.errors import UserError

__all__ = ["METHODS", "SAMPLEABLE_SCHEDULE_KEYS", "SearchBounds"]

METHODS: tuple[str, ...] = ("standard", "pgd", "trades")
"""Training methods a trial accepts (``trainables.config.METHODS``, repeated here so this package
does not import torch; a test keeps the two equal)."""

SAMPLEABLE_SCHEDULE_KEYS: frozenset[str] = frozenset(
    {"max", "start_frac", "warmup", "ramp_end", "stages"}
)
"""Schedule key suffixes a search space knows how to sample; a schedule kind reading any other key
cannot be searched."""

_LR_LIMIT = 10.0  # TrialConfig accepts lr in (0, 10)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _suggest(value: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _pair(name: str, raw: Any) -> tuple[float, float]:
    """``raw`` as a ``(low, high)`` tuple of finite floats with ``low <= high``."""
    message = f"search bound {name} must be a [low, high] pair of numbers, got {raw!r}"
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or len(raw) != 2:
        raise UserError(message)
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UserError(message)
        if not math.isfinite(value):
            raise UserError(f"search bound {name} must be finite, got {_show(tuple(raw))}")
    low, high = float(raw[0]), float(raw[1])
    if low > high:
        raise UserError(f"search bound {name} has low {low:g} above high {high:g}")
    return low, high


def _within(name: str, pair: tuple[float, float], low: float, high: float, unit: str) -> None:
    if pair[0] < low or pair[1] > high:
        raise UserError(
            f"search bound {name} must lie within [{low:g}, {high:g}]{unit}, got {_show(pair)}"
        )


def _names(name: str, raw: Any, known: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """``raw`` as a non-empty tuple of distinct strings, each in ``known`` (if given)."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise UserError(f"search bound {name} must be a list of {what}s, got {raw!r}")
    values = tuple(raw)
    if not values:
        raise UserError(f"search bound {name} must list at least one {what}")
    seen: set[str] = set()
    for value in values:
        if not isinstance(value, str) or not value:
            raise UserError(f"search bound {name} must be a list of {what}s, got {value!r}")
        if known is not None and value not in known:
            raise UserError(
                f"search bound {name}: unknown {what} {value!r}{_suggest(value, known)}; "
                f"choose from {', '.join(known)}"
            )
        if value in seen:
            raise UserError(f"search bound {name} lists {value!r} twice")
        seen.add(value)
    return values


@dataclass(frozen=True, kw_only=True)
class SearchBounds:
    """The ranges a search space samples from (the job spec's ``bounds``).

    Every range is a ``(low, high)`` pair sampled uniformly unless noted; a pair with
    ``low == high`` is a constant (nothing sampled). An axis whose ``high`` is 0 is off: the
    spaces neither sample nor train it. Lists given as YAML lists are accepted and stored as
    tuples; mistakes raise :class:`~trainables.errors.UserError` naming the field.

    Attributes:
        eps_max: the final L-inf PGD budget (absolute, images in [0, 1]); ``high`` must not
            exceed ``eps_limit``. :meth:`for_dataset` defaults it to ``(0, eps_scale)``.
        theta_max: the final rotation range in degrees, within [0, 180].
        translate_max: the final translation range as a fraction of the image size, within
            [0, 0.5]; ``(0, 0)`` (the default) turns translation off.
        schedules: schedule kinds (keys of ``trainables.curriculum.SCHEDULE_KINDS``) offered
            for each axis, except where a preset fixes the kind.
        orders: curriculum orders offered (``joint``, ``spatial_first``, ``adversarial_first``);
            the one-budget-first orders are offered only where they can work (at least 2 epochs,
            a spatial and an eps range above 0).
        methods: training methods offered (``standard``, ``pgd``, ``trades``).
        trades_beta: the TRADES weight, sampled only for ``method: trades``; >= 0.
        lr: base learning rate, sampled on a log scale within (0, 10); ``None`` = not searched.
        weight_decay: sampled on a log scale, > 0; ``None`` = not searched.
        models: model names offered; ``None`` = not searched. The names are checked by the
            trial config, not here (the model registry imports torch).
        eps_limit: the largest ``eps_max`` allowed, the dataset's eps scale (0.3 for MNIST-like
            data, 8/255 for CIFAR-10); in (0, 1].
    """

    eps_max: tuple[float, float]
    theta_max: tuple[float, float] = (0.0, 180.0)
    translate_max: tuple[float, float] = (0.0, 0.0)
    schedules: tuple[str, ...] = ("step", "linear", "cosine", "exponential")
    orders: tuple[str, ...] = ORDERS
    methods: tuple[str, ...] = ("pgd", "trades")
    trades_beta: tuple[float, float] = (1.0, 10.0)
    lr: tuple[float, float] | None = None
    weight_decay: tuple[float, float] | None = None
    models: tuple[str, ...] | None = None
    eps_limit: float = 1.0

    def __post_init__(self) -> None:
        limit = self.eps_limit
        if isinstance(limit, bool) or not isinstance(limit, numbers.Real) or not 0 < limit <= 1:
            raise UserError(f"search bound eps_limit must be in (0, 1], got {limit!r}")
        object.__setattr__(self, "eps_limit", float(limit))
        for axis in AXES.values():
            name = f"{axis.name}_max"
            pair = _pair(name, getattr(self, name))
            unit = {"theta": " degrees", "translate": " (a fraction of the image size)"}
            _within(name, pair, 0.0, axis.upper, unit.get(axis.name, ""))
            object.__setattr__(self, name, pair)
        if self.eps_max[1] > self.eps_limit:
            raise UserError(
                f"search bound eps_max upper {self.eps_max[1]:g} is above the dataset's eps "
                f"limit {self.eps_limit:g}"
            )
        schedules = _names("schedules", self.schedules, list(SCHEDULE_KINDS), "schedule kind")
        for kind in schedules:
            unknown = sorted(set(SCHEDULE_KINDS[kind].keys) - SAMPLEABLE_SCHEDULE_KEYS)
            if unknown:
                raise UserError(
                    f"search bound schedules: schedule kind {kind!r} reads {', '.join(unknown)}, "
                    f"which a search space cannot sample; remove it"
                )
        object.__setattr__(self, "schedules", schedules)
        object.__setattr__(self, "orders", _names("orders", self.orders, ORDERS, "order"))
        object.__setattr__(self, "methods", _names("methods", self.methods, METHODS, "method"))
        beta = _pair("trades_beta", self.trades_beta)
        _within("trades_beta", beta, 0.0, math.inf, "")
        object.__setattr__(self, "trades_beta", beta)
        if self.lr is not None:
            lr = _pair("lr", self.lr)
            if not 0 < lr[0] <= lr[1] < _LR_LIMIT:
                raise UserError(
                    f"search bound lr must lie within (0, {_LR_LIMIT:g}) (it is sampled on a "
                    f"log scale), got {_show(lr)}"
                )
            object.__setattr__(self, "lr", lr)
        if self.weight_decay is not None:
            decay = _pair("weight_decay", self.weight_decay)
            if decay[0] <= 0:
                raise UserError(
                    f"search bound weight_decay must be above 0 (it is sampled on a log scale), "
                    f"got {_show(decay)}"
                )
            object.__setattr__(self, "weight_decay", decay)
        if self.models is not None:
            object.__setattr__(self, "models", _names("models", self.models, None, "model name"))

    @classmethod
    def for_dataset(cls, eps_scale: float, **overrides: Any) -> SearchBounds:
        """Bounds for a dataset whose eps scale is ``eps_scale``: ``eps_limit = eps_scale`` and
        ``eps_max`` defaults to ``(0, eps_scale)``; ``overrides`` set the other fields (the job
        spec's ``bounds`` mapping). An unknown field is a :class:`UserError` naming it."""
        fields = [f.name for f in dataclasses.fields(cls) if f.name != "eps_limit"]
        for key in overrides:
            if key not in fields:
                raise UserError(
                    f"unknown search bound {key!r}{_suggest(key, fields)}; "
                    f"bounds are {', '.join(fields)}"
                )
        values: dict[str, Any] = {"eps_max": (0.0, eps_scale), **overrides}
        return cls(**values, eps_limit=eps_scale)

    def axis_range(self, axis: str) -> tuple[float, float]:
        """The ``(low, high)`` range of ``<axis>_max`` (``axis`` is theta, translate or eps)."""
        return getattr(self, f"{axis}_max")

    def axis_on(self, axis: str) -> bool:
        """Whether the axis can be above 0 (its range's ``high`` is above 0)."""
        return self.axis_range(axis)[1] > 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly mapping that ``SearchBounds(**mapping)`` accepts."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }
