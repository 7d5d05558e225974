"""Curricula: which rotation range, translation range and PGD budget each training epoch uses.

Each training epoch trains on ``A_eps(T_theta(x))``: a random rotation in ``[-theta, +theta]``
degrees and a random translation in ``[-t, +t]`` (``t`` a fraction of the image size), then L-inf
PGD at budget ``eps``. A :class:`Curriculum` says, for every epoch, which ``theta``, ``t`` and
``eps`` to use (a :class:`Stage`), and when the learning rate drops.

Conventions:

- Epochs are 1-based: a run of ``epochs`` epochs has epochs ``1 .. epochs``, as in the paper's
  table ("epochs 1-74: +-120 deg, 2/255").
- Every schedule is monotone non-decreasing over epochs (a curriculum only gets harder; a
  :class:`Curriculum` refuses one that decreases) and takes values in ``[0, upper]``: ``theta``
  in degrees ``[0, 180]``, ``translate_frac`` in ``[0, 0.5]`` (a fraction of the image size;
  :meth:`Stage.translate_px` converts), ``eps`` in ``[0, 1]`` (absolute L-inf budget on images
  in [0, 1]).
- A "warm-up" is a number of initial epochs whose value is 0 (clean / untransformed training).

The module is plain Python (no torch) so search spaces can import it cheaply. Mistakes in a
config raise :class:`~trainables.errors.UserError` naming the key; misuse of the Python API
(a bad epoch, an inconsistent dataclass) raises ``ValueError``.

Flat config keys (as a search samples them), read by :func:`curriculum_from_config`; a key that
is absent or ``None`` takes its default:

==========================  ===============================================================
``curriculum``              ``custom`` (default), ``cusp`` (the paper's schedule) or ``none``
``order``                   ``joint`` (default), ``spatial_first`` or ``adversarial_first``
``lr_milestones``           epochs where the LR is multiplied by ``lr_gamma``; default the
                            paper's (75, 90, 100) scaled to the run (:func:`paper_lr_milestones`)
``lr_gamma``                0.1
``<axis>_schedule``         ``constant`` (default), ``step``, ``linear``, ``cosine``,
                            ``exponential``; ``<axis>`` is ``theta``, ``translate`` or ``eps``
``<axis>_max``              0 (the axis is off); constant value / ramp target
``<axis>_start_frac``       0; ramps start at ``start_frac * max``
``<axis>_warmup``           0; initial epochs at value 0
``<axis>_ramp_end``         ``epochs``; the epoch where a ramp reaches ``max`` (held after)
``<axis>_stages``           required for ``step``: ``[[epoch, value], ...]``, absolute values
==========================  ===============================================================

Each schedule kind reads only its own keys (``SCHEDULE_KINDS[kind].keys``); setting a key the
chosen kind does not read is an error, so are unknown ``theta_*`` / ``translate_*`` / ``eps_*``
keys. Keys ending in ``_eval`` (evaluation settings such as ``eps_eval``) and ``eps_scale``
belong to other modules and are ignored here, as is every key without those prefixes.
"""

from __future__ import annotations

import difflib
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from trainables._registration import check_function, check_name
from trainables.errors import UserError

__all__ = [
    "AXES",
    "CURRICULUM_PRESETS",
    "EXPONENTIAL_MAX_RATIO",
    "ORDERS",
    "PAPER_EPOCHS",
    "PAPER_LR_MILESTONES",
    "RAMP_SHAPES",
    "SCHEDULE_KINDS",
    "Axis",
    "AxisConfig",
    "ConstantSchedule",
    "Curriculum",
    "RampSchedule",
    "Schedule",
    "ScheduleKind",
    "Stage",
    "StepSchedule",
    "curriculum_from_config",
    "curriculum_keys",
    "curriculum_label",
    "cusp_curriculum",
    "none_curriculum",
    "paper_lr_milestones",
    "register_ramp_shape",
    "register_schedule",
]

ORDERS: tuple[str, ...] = ("joint", "spatial_first", "adversarial_first")
"""How the spatial (theta, translate) and adversarial (eps) schedules are combined in time."""

CURRICULUM_PRESETS: tuple[str, ...] = ("cusp", "none", "custom")
"""Values of the ``curriculum`` config key."""

PAPER_EPOCHS = 120
"""Length of the authors' CIFAR-10 run that the ``cusp`` preset scales from."""

PAPER_LR_MILESTONES: tuple[int, ...] = (75, 90, 100)
"""The authors' LR drops (x0.1 each) for 120 epochs; the first two start the CuSP stages."""

_PAPER_THETA_STAGES: tuple[float, ...] = (120.0, 150.0, 180.0)
_PAPER_EPS_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)  # of the final eps: 2, 4, 8 of 8/255

EXPONENTIAL_MAX_RATIO = 100.0
"""Largest growth ratio ``max / start`` of an ``exponential`` ramp (see :func:`_exponential`)."""


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """What one training epoch uses.

    Attributes:
        epoch: the 1-based epoch.
        theta_deg: rotations are drawn from ``U[-theta_deg, +theta_deg]`` degrees.
        translate_frac: shifts are drawn from ``U[-t, +t]`` with ``t = translate_frac * size``.
        eps: the L-inf PGD budget (0 means clean training).
    """

    epoch: int
    theta_deg: float
    translate_frac: float
    eps: float

    def translate_px(self, image_size: int) -> float:
        """The translation range in pixels for images ``image_size`` pixels wide."""
        return self.translate_frac * image_size


# --------------------------------------------------------------------------------------------
# Ramp shapes: pure functions of the ramp progress u in [0, 1]
# --------------------------------------------------------------------------------------------

RampShape = Callable[[float, float, float], float]
"""``shape(u, start, maximum)``: the value at progress ``u``; ``start`` at 0, ``maximum`` at 1."""

RAMP_SHAPES: dict[str, RampShape] = {}
"""Registered ramp shapes, name -> shape function; each name is also a schedule kind."""


def _linear(u: float, start: float, maximum: float) -> float:
    """Straight line from ``start`` to ``maximum``."""
    return start + (maximum - start) * u


def _cosine(u: float, start: float, maximum: float) -> float:
    """Half-cosine ease-in-out: slow near both ends, below the line for ``u < 1/2``, above it
    for ``u > 1/2`` and equal to it at ``u = 1/2``."""
    return start + (maximum - start) * (1.0 - math.cos(math.pi * u)) / 2.0


def _exponential(u: float, start: float, maximum: float) -> float:
    """Geometric growth from ``start`` to ``maximum``: below the line for ``0 < u < 1``.

    The value is ``start + (maximum - start) * (b**u - 1) / (b - 1)`` with growth ratio
    ``b = min(maximum / start, EXPONENTIAL_MAX_RATIO)`` (``b = EXPONENTIAL_MAX_RATIO`` when
    ``start`` is 0). For ``start >= maximum / 100`` this is exactly the geometric interpolation
    ``start * (maximum / start) ** u``; for smaller starts, including 0, the curve is the one of
    a 100-fold growth shifted to begin at ``start``, so it is exactly ``start`` at ``u = 0``,
    ``maximum`` at ``u = 1``, and continuous in ``start``.
    """
    if maximum <= start:
        return maximum
    ratio = EXPONENTIAL_MAX_RATIO if start <= 0 else min(maximum / start, EXPONENTIAL_MAX_RATIO)
    return start + (maximum - start) * (ratio**u - 1.0) / (ratio - 1.0)


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


class Schedule(ABC):
    """A monotone non-decreasing map from a 1-based epoch to a value in ``[0, maximum]``.

    Subclasses are frozen dataclasses. ``value`` is defined for every epoch >= 1 (values past a
    run's end are held), so a schedule does not know the run length; :meth:`validate` checks
    that it fits a given run.
    """

    @property
    @abstractmethod
    def kind(self) -> str:
        """The schedule kind, a key of :data:`SCHEDULE_KINDS`."""

    @property
    @abstractmethod
    def maximum(self) -> float:
        """The largest (final) value."""

    @property
    @abstractmethod
    def first(self) -> float:
        """The value at the first epoch after the warm-up."""

    @abstractmethod
    def value(self, epoch: int) -> float:
        """The value at ``epoch`` (1-based)."""

    @abstractmethod
    def min_epochs(self) -> int:
        """The shortest run the schedule fits: the start of its final stage, its ramp end, or
        ``warmup + 1`` for a constant."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description, ``{"kind": ..., <parameters>}``."""

    def validate(self, epochs: int, upper: float, name: str) -> None:
        """Raise ``ValueError`` unless the schedule fits a run of ``epochs`` epochs and its
        maximum is within ``[0, upper]``, and :class:`UserError` (a ``ValueError``) if its value
        decreases over epochs ``1 .. epochs``; ``name`` (e.g. ``"theta"``) prefixes the
        message."""
        if not 0.0 <= self.maximum <= upper:
            raise ValueError(
                f"{name} schedule maximum must be in [0, {upper:g}], got {self.maximum}"
            )
        if self.min_epochs() > epochs:
            raise ValueError(
                f"{name} schedule needs {self.min_epochs()} epochs, the run has {epochs}"
            )
        previous = 0.0
        for epoch in range(1, epochs + 1):
            value = self.value(epoch)
            if value < previous - 1e-9:
                raise UserError(
                    f"{name} schedule ({self.kind}) drops at epoch {epoch}, from {previous:g} to "
                    f"{value:g}; schedules must never decrease (a curriculum only gets harder)"
                )
            previous = value

    def reach_epoch(self, epochs: int) -> int:
        """The first epoch in ``1..epochs`` whose value is the maximum; 0 if the maximum is 0
        (nothing to wait for). Assumes :meth:`validate` passed."""
        if self.maximum <= 0.0:
            return 0
        for epoch in range(1, epochs + 1):
            if self.value(epoch) >= self.maximum:
                return epoch
        return epochs  # unreachable for a validated schedule


def _check_warmup(warmup: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``level`` at every epoch after ``warmup`` epochs at 0."""

    level: float
    warmup: int = 0

    def __post_init__(self) -> None:
        _check_warmup(self.warmup)
        if not self.level >= 0.0:
            raise ValueError(f"level must be >= 0, got {self.level}")

    @property
    def kind(self) -> str:
        return "constant"

    @property
    def maximum(self) -> float:
        return float(self.level)

    @property
    def first(self) -> float:
        return float(self.level)

    def value(self, epoch: int) -> float:
        return 0.0 if epoch <= self.warmup else float(self.level)

    def min_epochs(self) -> int:
        return self.warmup + 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.maximum, "warmup": self.warmup}


@dataclass(frozen=True)
class StepSchedule(Schedule):
    """Piecewise constant: ``stages = ((start_epoch, value), ...)``.

    Stage ``i`` holds from its start epoch until the epoch before the next stage's start (the last
    stage holds to the end). Start epochs are strictly increasing and >= 1; values are
    non-decreasing and >= 0. Epochs before the first start are a warm-up at 0.
    """

    stages: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        stages = tuple((int(start), float(value)) for start, value in self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages:
            raise ValueError("a step schedule needs at least one stage")
        if stages[0][0] < 1:
            raise ValueError(f"step stages start at epoch >= 1, got {stages[0][0]}")
        if stages[0][1] < 0.0:
            raise ValueError(f"step stage values must be >= 0, got {stages[0][1]}")
        for (s0, v0), (s1, v1) in zip(stages, stages[1:], strict=False):
            if s1 <= s0:
                raise ValueError(f"step stage epochs must strictly increase, got {s0} then {s1}")
            if v1 < v0:
                raise ValueError(f"step stage values must not decrease, got {v1} after {v0}")

    @property
    def kind(self) -> str:
        return "step"

    @property
    def warmup(self) -> int:
        """Epochs before the first stage (value 0)."""
        return self.stages[0][0] - 1

    @property
    def maximum(self) -> float:
        return self.stages[-1][1]

    @property
    def first(self) -> float:
        return self.stages[0][1]

    def value(self, epoch: int) -> float:
        current = 0.0
        for start, value in self.stages:
            if start > epoch:
                break
            current = value
        return current

    def min_epochs(self) -> int:
        return self.stages[-1][0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "stages": [[s, v] for s, v in self.stages]}


@dataclass(frozen=True)
class RampSchedule(Schedule):
    """A ramp of shape ``shape`` (a key of :data:`RAMP_SHAPES`) from ``start`` to ``maximum``.

    Epochs ``1..warmup`` are 0. Over epochs ``warmup + 1 .. ramp_end`` the value is
    ``shape(u, start, maximum)`` with progress ``u = (epoch - warmup - 1) / (ramp_end - warmup -
    1)``, so it is exactly ``start`` at ``warmup + 1`` and exactly ``maximum`` at ``ramp_end``;
    after ``ramp_end`` the maximum is held. If ``ramp_end == warmup + 1`` the ramp is a jump
    straight to ``maximum``.
    """

    shape: str
    start: float
    target: float
    ramp_end: int
    warmup: int = 0

    def __post_init__(self) -> None:
        _check_warmup(self.warmup)
        if self.shape not in RAMP_SHAPES:
            raise ValueError(f"unknown ramp shape {self.shape!r}; known: {', '.join(RAMP_SHAPES)}")
        if not 0.0 <= self.start <= self.target:
            raise ValueError(f"ramp needs 0 <= start <= maximum, got {self.start}, {self.maximum}")
        if self.ramp_end <= self.warmup:
            raise ValueError(f"ramp_end ({self.ramp_end}) must be after warmup ({self.warmup})")

    @property
    def kind(self) -> str:
        return self.shape

    @property
    def maximum(self) -> float:
        return float(self.target)

    @property
    def first(self) -> float:
        return self.value(self.warmup + 1)

    def value(self, epoch: int) -> float:
        if epoch <= self.warmup:
            return 0.0
        if epoch >= self.ramp_end:
            return self.maximum
        u = (epoch - self.warmup - 1) / (self.ramp_end - self.warmup - 1)
        raw = RAMP_SHAPES[self.shape](u, float(self.start), self.maximum)
        return min(max(raw, float(self.start)), self.maximum)

    def min_epochs(self) -> int:
        return self.ramp_end

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": float(self.start),
            "max": self.maximum,
            "warmup": self.warmup,
            "ramp_end": self.ramp_end,
        }


# --------------------------------------------------------------------------------------------
# Axes and the config reader used by schedule builders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One curriculum dimension: its config-key prefix, label symbol and value bound."""

    name: str
    symbol: str
    upper: float


AXES: dict[str, Axis] = {
    "theta": Axis("theta", "θ", 180.0),
    "translate": Axis("translate", "t", 0.5),
    "eps": Axis("eps", "ε", 1.0),
}
"""The three axes, by config prefix; their schedules are ``Curriculum.theta``,
``Curriculum.translate_frac`` and ``Curriculum.eps``."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _suggest(value: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choice(key: str, value: Any, options: Sequence[str]) -> str:
    """``value`` if it is one of ``options``, else a UserError naming ``key``."""
    if isinstance(value, str) and value in options:
        return value
    hint = _suggest(value, options) if isinstance(value, str) else ""
    raise UserError(f"unknown {key} {_show(value)}; choose one of {', '.join(options)}{hint}")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{key} must be a number, got {_show(value)}")
    return float(value)


def _whole(key: str, value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise UserError(f"{key} must be a whole number of epochs, got {_show(value)}")


@dataclass(frozen=True)
class AxisConfig:
    """Reads and validates the ``<axis>_*`` keys of a flat config for a run of ``epochs``.

    Every reader raises :class:`UserError` naming the offending key. Absent and ``None`` keys take
    the default.
    """

    axis: Axis
    config: Mapping[str, Any]
    epochs: int

    def key(self, suffix: str) -> str:
        """The full config key, e.g. ``theta_max`` for suffix ``max``."""
        return f"{self.axis.name}_{suffix}"

    def get(self, suffix: str) -> Any:
        """The raw value of ``<axis>_<suffix>``, or ``None`` if absent."""
        return self.config.get(self.key(suffix))

    def bounded(self, suffix: str, default: float, upper: float) -> float:
        """A number in ``[0, upper]``."""
        raw = self.get(suffix)
        if raw is None:
            return default
        value = _number(self.key(suffix), raw)
        if not 0.0 <= value <= upper:
            raise UserError(f"{self.key(suffix)} must be in [0, {upper:g}], got {_show(raw)}")
        return value

    def maximum(self) -> float:
        """``<axis>_max`` in ``[0, axis.upper]``; default 0 (the axis is off)."""
        return self.bounded("max", 0.0, self.axis.upper)

    def start_frac(self) -> float:
        """``<axis>_start_frac`` in ``[0, 1]``; default 0."""
        return self.bounded("start_frac", 0.0, 1.0)

    def warmup(self) -> int:
        """``<axis>_warmup`` in ``0 .. epochs - 1``; default 0."""
        raw = self.get("warmup")
        if raw is None:
            return 0
        key = self.key("warmup")
        warmup = _whole(key, raw)
        if warmup < 0:
            raise UserError(f"{key} must be >= 0, got {warmup}")
        if warmup >= self.epochs:
            raise UserError(f"{key} ({warmup}) must be less than the run's {self.epochs} epochs")
        return warmup

    def ramp_end(self, warmup: int) -> int:
        """``<axis>_ramp_end`` in ``warmup + 1 .. epochs``; default ``epochs``."""
        raw = self.get("ramp_end")
        if raw is None:
            return self.epochs
        key = self.key("ramp_end")
        ramp_end = _whole(key, raw)
        if ramp_end > self.epochs:
            raise UserError(f"{key} ({ramp_end}) must be within the run's {self.epochs} epochs")
        if ramp_end <= warmup:
            raise UserError(f"{key} ({ramp_end}) must be after {self.key('warmup')} ({warmup})")
        return ramp_end

    def stages(self, warmup: int) -> tuple[tuple[int, float], ...]:
        """``<axis>_stages``: ``[[epoch, value], ...]``, required; the first epoch is
        ``warmup + 1``, epochs strictly increase within the run, values are in
        ``[0, axis.upper]`` and never decrease."""
        key = self.key("stages")
        raw = self.get("stages")
        shape_error = UserError(
            f"{key} must be a non-empty list of [epoch, value] pairs, got {_show(raw)}"
        )
        if raw is None:
            raise UserError(f"{key} is required when {self.key('schedule')} is 'step'")
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
            raise shape_error
        stages: list[tuple[int, float]] = []
        for item in raw:
            if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
                raise shape_error
            epoch = _whole(f"{key} epoch", item[0])
            value = _number(f"{key} value", item[1])
            if not 0.0 <= value <= self.axis.upper:
                raise UserError(f"{key} values must be in [0, {self.axis.upper:g}], got {item[1]}")
            if epoch > self.epochs:
                raise UserError(
                    f"{key} epoch {epoch} must be within the run's {self.epochs} epochs"
                )
            if stages and epoch <= stages[-1][0]:
                raise UserError(
                    f"{key} must have strictly increasing epochs, got {stages[-1][0]} then {epoch}"
                )
            if stages and value < stages[-1][1]:
                raise UserError(
                    f"{key} must have non-decreasing values (a curriculum only gets harder), "
                    f"got {item[1]} after {stages[-1][1]:g}"
                )
            stages.append((epoch, value))
        if stages[0][0] != warmup + 1:
            after = f" (right after {self.key('warmup')} = {warmup})" if warmup else ""
            raise UserError(f"{key} must start at epoch {warmup + 1}{after}, got {stages[0][0]}")
        return tuple(stages)


# --------------------------------------------------------------------------------------------
# Registry of schedule kinds
# --------------------------------------------------------------------------------------------

ScheduleBuilder = Callable[[AxisConfig], Schedule]


@dataclass(frozen=True)
class ScheduleKind:
    """A registered schedule kind.

    Attributes:
        name: the value of ``<axis>_schedule``.
        keys: the key suffixes the kind reads (``max`` means ``<axis>_max``); a search space
            samples exactly these for the kind, and a config setting any other
            ``<axis>_*`` key is rejected.
        build: builds the schedule from the validated config.
    """

    name: str
    keys: tuple[str, ...]
    build: ScheduleBuilder


SCHEDULE_KINDS: dict[str, ScheduleKind] = {}
"""Schedule kinds by name: ``constant``, ``step``, then the ramp shapes (``linear``, ``cosine``,
``exponential``). ``list(SCHEDULE_KINDS)`` enumerates them for a search space."""

_RAMP_KEYS: tuple[str, ...] = ("max", "start_frac", "warmup", "ramp_end")


def register_schedule(
    name: str, keys: Sequence[str]
) -> Callable[[ScheduleBuilder], ScheduleBuilder]:
    """Decorator registering ``build`` as the schedule kind ``name`` (``<axis>_schedule: name``),
    which reads the config keys ``<axis>_<key>`` for each ``key`` in ``keys``.

    ``build`` has the signature ``(AxisConfig) -> Schedule``: it reads its values with the
    :class:`AxisConfig` readers (which raise :class:`UserError` naming the key) and returns a
    :class:`Schedule` within ``[0, axis.upper]`` and non-decreasing over the epochs ``1 ..
    epochs``. The curriculum checks both; a ``ValueError`` the builder raises, a result that is
    not a :class:`Schedule` and a schedule that decreases or does not fit the run all surface as
    :class:`UserError` naming ``<axis>_schedule``. The schedule's ``kind`` should be ``name``:
    nothing looks it up, but labels and ``to_dict`` show it (a builder that returns a built-in
    schedule, e.g. a :class:`StepSchedule`, shows as ``step``).

    A search space can sample the kind only if every key is one of
    ``search_spaces.SAMPLEABLE_SCHEDULE_KEYS`` (``max``, ``start_frac``, ``warmup``,
    ``ramp_end``, ``stages``); a kind reading other keys can still be set in a trial's config.
    Registering the same builder again (same module and qualified name: ``importlib.reload``, a
    notebook cell run twice) replaces the entry.

    Raises:
        ValueError: ``name`` is not a non-empty str or is taken by another builder; ``keys`` is
            a str or not a sequence of non-empty strs; ``build`` is not callable.
    """
    check_name("schedule kind", name)
    if (
        isinstance(keys, str | bytes)
        or not isinstance(keys, Sequence)
        or not all(isinstance(k, str) and k for k in keys)
    ):
        raise ValueError(
            f"schedule kind {name!r}: keys must be a sequence of key suffixes such as "
            f"('max', 'warmup'), got {keys!r}"
        )

    def decorate(build: ScheduleBuilder) -> ScheduleBuilder:
        registered = SCHEDULE_KINDS.get(name)
        check_function("schedule kind", name, build, registered and registered.build)
        SCHEDULE_KINDS[name] = ScheduleKind(name, tuple(keys), build)
        return build

    return decorate


def register_ramp_shape(name: str) -> Callable[[RampShape], RampShape]:
    """Decorator registering a ramp shape ``shape(u, start, maximum)`` as the schedule kind
    ``name`` (a :class:`RampSchedule`, keys ``max``, ``start_frac``, ``warmup``, ``ramp_end``).

    The shape must be non-decreasing in ``u``, equal ``start`` at 0 and ``maximum`` at 1; it is
    probed at registration on ``u = 0, 0.05, .., 1`` with ``(start, maximum)`` ``(0.25, 1)``
    and ``(0, 1)``. Registering the same shape again (same module and qualified name) replaces
    the entry.

    Raises:
        ValueError: ``name`` is not a non-empty str or is taken by another schedule kind; the
            shape is not callable or fails the probe.
    """
    check_name("schedule kind", name)

    def decorate(shape: RampShape) -> RampShape:
        check_function("schedule kind", name, shape, RAMP_SHAPES.get(name))
        if name in SCHEDULE_KINDS and name not in RAMP_SHAPES:
            raise ValueError(f"schedule kind {name!r} is already registered; choose another name")
        _probe_ramp_shape(name, shape)
        RAMP_SHAPES[name] = shape

        def build(cfg: AxisConfig) -> Schedule:
            maximum = cfg.maximum()
            warmup = cfg.warmup()
            return RampSchedule(
                shape=name,
                start=cfg.start_frac() * maximum,
                target=maximum,
                ramp_end=cfg.ramp_end(warmup),
                warmup=warmup,
            )

        register_schedule(name, _RAMP_KEYS)(build)
        return shape

    return decorate


def _probe_ramp_shape(name: str, shape: RampShape) -> None:
    grid = [i / 20 for i in range(21)]
    for start, maximum in ((0.25, 1.0), (0.0, 1.0)):
        call = f"shape(u, {start:g}, {maximum:g})"
        try:
            values = [float(shape(u, start, maximum)) for u in grid]
        except (TypeError, ValueError, ArithmeticError) as error:
            raise ValueError(f"ramp shape {name!r}: {call} fails: {error}") from error
        drop = next((i for i in range(1, len(grid)) if values[i] < values[i - 1] - 1e-9), None)
        if not math.isclose(values[0], start, abs_tol=1e-9):
            problem = f"is {values[0]:g} at u=0, not start"
        elif not math.isclose(values[-1], maximum, abs_tol=1e-9):
            problem = f"is {values[-1]:g} at u=1, not maximum"
        elif drop is not None:
            problem = f"drops from {values[drop - 1]:g} to {values[drop]:g} at u={grid[drop]:g}"
        else:
            continue
        raise ValueError(
            f"ramp shape {name!r}: {call} {problem}; a shape rises from start at u=0 to "
            "maximum at u=1 without decreasing"
        )


@register_schedule("constant", ("max", "warmup"))
def _build_constant(cfg: AxisConfig) -> Schedule:
    return ConstantSchedule(cfg.maximum(), warmup=cfg.warmup())


@register_schedule("step", ("stages", "warmup"))
def _build_step(cfg: AxisConfig) -> Schedule:
    return StepSchedule(cfg.stages(cfg.warmup()))


register_ramp_shape("linear")(_linear)
register_ramp_shape("cosine")(_cosine)
register_ramp_shape("exponential")(_exponential)


# --------------------------------------------------------------------------------------------
# Curriculum
# --------------------------------------------------------------------------------------------


def _delayed_epoch(epoch: int, delay: int, epochs: int) -> int | None:
    """Where a schedule delayed by ``delay`` epochs reads its value at ``epoch``.

    ``None`` (value 0) for ``epoch <= delay``. Otherwise the remaining ``L = epochs - delay``
    epochs are mapped onto the schedule's full ``1..epochs``: local epoch ``l = epoch - delay``
    reads epoch ``1 + round((l - 1) * (epochs - 1) / (L - 1))`` (``epochs`` when ``L == 1``), so
    the schedule keeps its shape, compressed in time, and still ends at its maximum.
    """
    if delay == 0:
        return epoch
    if epoch <= delay:
        return None
    remaining = epochs - delay
    if remaining == 1:
        return epochs
    return 1 + _round_half_up((epoch - delay - 1) * (epochs - 1) / (remaining - 1))


@dataclass(frozen=True)
class Curriculum:
    """Per-epoch spatial and adversarial budgets plus the learning-rate drops of one run.

    Attributes:
        epochs: run length; epochs are ``1..epochs``.
        theta: rotation range in degrees, within ``[0, 180]``.
        translate_frac: translation range as a fraction of the image size, within ``[0, 0.5]``.
        eps: L-inf PGD budget, within ``[0, 1]``.
        order: how the spatial schedules (``theta``, ``translate_frac``) and the adversarial
            one (``eps``) are combined in time:

            - ``joint``: every schedule as given.
            - ``spatial_first``: the spatial schedules as given; let ``R`` be the first epoch
              where both have reached their maxima (0 if both are 0). ``eps`` is 0 for epochs
              ``1..R`` and over epochs ``R+1..epochs`` follows its own schedule compressed in
              time onto those epochs (see :func:`_delayed_epoch`): same shape, same final value.
            - ``adversarial_first``: the reverse; ``eps`` as given, both spatial schedules 0
              until ``eps`` reaches its maximum, then compressed onto the remaining epochs.

            The leading schedules must reach their maxima before the last epoch (when the
            delayed one is not all zero), so the delayed one gets at least one epoch.
        lr_milestones: strictly increasing epochs in ``2..epochs``; from each of them on the
            learning rate is multiplied by another ``lr_gamma`` (see :meth:`lr_factor`). For
            ``torch.optim.lr_scheduler.MultiStepLR`` stepped once after each epoch, pass
            ``[m - 1 for m in lr_milestones]``.
        lr_gamma: the LR factor per milestone, in ``(0, 1]``.
        name: the preset it came from (``cusp``, ``none``) or ``custom``; used in labels.
    """

    epochs: int
    theta: Schedule
    translate_frac: Schedule
    eps: Schedule
    order: str = "joint"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    name: str = "custom"

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, got {self.epochs!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        for axis, schedule in self._schedules():
            schedule.validate(self.epochs, axis.upper, axis.name)
        milestones = tuple(self.lr_milestones)
        object.__setattr__(self, "lr_milestones", milestones)
        if not _valid_milestones(milestones, self.epochs):
            raise ValueError(
                f"lr_milestones must be strictly increasing epochs in 2..{self.epochs}, "
                f"got {milestones}"
            )
        if not 0.0 < self.lr_gamma <= 1.0:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        problem = self._order_problem()
        if problem:
            raise ValueError(problem)

    def _schedules(self) -> tuple[tuple[Axis, Schedule], ...]:
        return (
            (AXES["theta"], self.theta),
            (AXES["translate"], self.translate_frac),
            (AXES["eps"], self.eps),
        )

    def _spatial_reach(self) -> int:
        return max(
            self.theta.reach_epoch(self.epochs), self.translate_frac.reach_epoch(self.epochs)
        )

    def _order_problem(self) -> str | None:
        """Why ``order`` cannot work with these schedules, or ``None``."""
        spatial_max = max(self.theta.maximum, self.translate_frac.maximum)
        if self.order == "spatial_first":
            lead, lead_name, lead_key = self._spatial_reach(), "spatial", "theta_ramp_end"
            delayed_max, delayed_name = self.eps.maximum, "eps"
        elif self.order == "adversarial_first":
            lead, lead_name, lead_key = self.eps.reach_epoch(self.epochs), "eps", "eps_ramp_end"
            delayed_max, delayed_name = spatial_max, "spatial"
        else:
            return None
        if lead >= self.epochs and delayed_max > 0:
            return (
                f"order {self.order!r} leaves no epoch for the {delayed_name} schedule: the "
                f"{lead_name} schedule reaches its max only at the last epoch ({self.epochs}); "
                f"reach it earlier (e.g. {lead_key} < {self.epochs}) or use order 'joint'"
            )
        return None

    @cached_property
    def _delays(self) -> tuple[int, int]:
        """(delay of the spatial schedules, delay of eps) in epochs."""
        if self.order == "spatial_first":
            return 0, self._spatial_reach()
        if self.order == "adversarial_first":
            return self.eps.reach_epoch(self.epochs), 0
        return 0, 0

    def _value(self, schedule: Schedule, epoch: int, delay: int) -> float:
        source = _delayed_epoch(epoch, delay, self.epochs)
        return 0.0 if source is None else schedule.value(source)

    def at(self, epoch: int) -> Stage:
        """The :class:`Stage` of ``epoch`` (1-based); ``ValueError`` outside ``1..epochs``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= self.epochs:
            raise ValueError(f"epoch must be an int in 1..{self.epochs}, got {epoch!r}")
        spatial_delay, eps_delay = self._delays
        return Stage(
            epoch=epoch,
            theta_deg=self._value(self.theta, epoch, spatial_delay),
            translate_frac=self._value(self.translate_frac, epoch, spatial_delay),
            eps=self._value(self.eps, epoch, eps_delay),
        )

    def stages(self) -> tuple[Stage, ...]:
        """The stages of epochs ``1..epochs``."""
        return tuple(self.at(epoch) for epoch in range(1, self.epochs + 1))

    def lr_factor(self, epoch: int) -> float:
        """The factor on the base learning rate during ``epoch``: ``lr_gamma ** k`` with ``k``
        the number of milestones ``<= epoch``."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= self.epochs:
            raise ValueError(f"epoch must be an int in 1..{self.epochs}, got {epoch!r}")
        return self.lr_gamma ** sum(1 for m in self.lr_milestones if m <= epoch)

    def describe(self) -> str:
        """A compact label for plots and logs, e.g. ``cusp θ120→180 ε2/255→8/255`` or
        ``linear θ0→90 cosine ε0→0.3 spatial_first``.

        Presets lead with their name; custom curricula name each axis's schedule kind when it
        differs from the previous axis's. Axes that stay at 0 are left out; an all-zero
        curriculum is ``none``.
        """
        parts: list[str] = [] if self.name == "custom" else [self.name]
        last_kind = None
        for axis, schedule in self._schedules():
            if schedule.maximum <= 0.0:
                continue
            if self.name == "custom" and schedule.kind != last_kind:
                parts.append(schedule.kind)
                last_kind = schedule.kind
            low, high = _fmt(axis, schedule.first), _fmt(axis, schedule.maximum)
            parts.append(f"{axis.symbol}{low}" if low == high else f"{axis.symbol}{low}→{high}")
        if not parts:
            parts.append("none")
        if self.order != "joint":
            parts.append(self.order)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description for logs and result files."""
        return {
            "name": self.name,
            "label": self.describe(),
            "epochs": self.epochs,
            "order": self.order,
            "theta": self.theta.to_dict(),
            "translate_frac": self.translate_frac.to_dict(),
            "eps": self.eps.to_dict(),
            "lr_milestones": list(self.lr_milestones),
            "lr_gamma": self.lr_gamma,
        }


def _fmt(axis: Axis, value: float) -> str:
    if axis.name == "eps" and value > 0:
        k = value * 255.0
        if abs(k - round(k)) < 1e-6:
            return f"{round(k)}/255"
    return f"{value:.4g}"


def _axis_label(axis: Axis, kind: str | None, first: float, values: Sequence[float]) -> str | None:
    """The label of one curriculum axis from the values its epochs train at (see
    :func:`curriculum_label`); None for an axis that stays at 0."""
    if max(values, default=0.0) <= 0.0:
        return None
    start = next(i for i, v in enumerate(values) if v > 0.0)  # epochs at 0 before it is on
    low = values[start]
    if first <= 0.0:  # a schedule that starts at 0 (a ramp from 0): on from the first epoch
        start, low = 0, 0.0
    low_text, high_text = _fmt(axis, low), _fmt(axis, max(values))
    if low_text == high_text:
        text = f"{axis.symbol}{high_text}"
    else:
        text = f"{axis.symbol}{low_text}→{high_text}"
        text = f"{kind} {text}" if kind else text
    return f"{text} (from epoch {start + 1})" if start else text


def curriculum_label(curriculum: Curriculum) -> str:
    """A label of the values a curriculum trains at, from its stages: after ``order`` delayed a
    schedule and squeezed it into the epochs left (:meth:`Curriculum.describe` shows each
    schedule's own start and maximum instead):

    - per axis (θ degrees, t translation fraction, ε PGD budget) that is not 0 throughout:
      ``<kind> <symbol><low>→<high>``, ``low`` the value of its first epoch and ``high`` the
      largest one. An axis that trains at one value is ``<symbol><value>``, with no kind. A
      schedule that starts above 0 after epochs at 0 (a warm-up, or ``order`` delaying it)
      adds ``(from epoch <n>)``, the first epoch it is above 0; a schedule that starts at 0 (a
      ramp from 0) is ``<low>`` 0.
    - the kind (``linear``, ``cosine``, ``exponential``, ``step``, ...) is named for custom
      curricula only; presets (``cusp``) lead with their name instead.
    - ``order`` ends the label unless it is ``joint``; a curriculum at 0 throughout is ``none``.

    E.g. ``θ142.5 (from epoch 3) step ε0.008691→0.2218 adversarial_first``: θ is 0 for epochs
    1-2 and 142.5 from epoch 3; ε steps from 0.008691 to 0.2218.
    """
    custom = curriculum.name == "custom"
    parts: list[str] = [] if custom else [curriculum.name]
    stages = curriculum.stages()
    axes = (
        ("theta", curriculum.theta, [s.theta_deg for s in stages]),
        ("translate", curriculum.translate_frac, [s.translate_frac for s in stages]),
        ("eps", curriculum.eps, [s.eps for s in stages]),
    )
    for axis, schedule, values in axes:
        kind = schedule.kind if custom else None
        text = _axis_label(AXES[axis], kind, float(schedule.first), values)
        if text:
            parts.append(text)
    if not parts:
        parts.append("none")
    if curriculum.order != "joint":
        parts.append(curriculum.order)
    return " ".join(parts)


def _valid_milestones(milestones: Sequence[int], epochs: int) -> bool:
    previous = 1
    for m in milestones:
        if isinstance(m, bool) or not isinstance(m, int) or not previous < m <= epochs:
            return False
        previous = m
    return True


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


def _spread(raw: Sequence[int], epochs: int) -> tuple[int, ...]:
    """Make ``raw`` boundaries strictly increasing within ``2..epochs`` (needs
    ``len(raw) <= epochs - 1``): boundary ``i`` of ``k`` is clamped to ``[2 + i, epochs - (k - 1
    - i)]`` (room for the others), then pushed past its predecessor."""
    k = len(raw)
    out: list[int] = []
    for i, b in enumerate(raw):
        b = min(max(b, 2 + i), epochs - (k - 1 - i))
        out.append(max(b, out[-1] + 1) if out else b)
    return tuple(out)


def paper_lr_milestones(epochs: int = PAPER_EPOCHS) -> tuple[int, ...]:
    """The paper's LR milestones (75, 90, 100 for 120 epochs) scaled to ``epochs``.

    Milestone ``m`` maps to ``1 + round((m - 1) * epochs / 120)`` (half up: epoch ``m`` starts
    after ``m - 1`` of 120 epochs). Only the first ``min(3, epochs - 1)`` are kept (milestones
    live in ``2..epochs``), then spread to be strictly increasing (:func:`_spread`). E.g. 30
    epochs -> (20, 23, 26), 10 -> (7, 8, 9), 4 -> (2, 3, 4), 3 -> (2, 3), 2 -> (2,), 1 -> ().
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    raw = [1 + _round_half_up((m - 1) * epochs / PAPER_EPOCHS) for m in PAPER_LR_MILESTONES]
    return _spread(raw[: min(len(raw), epochs - 1)], epochs)


def _cusp_stage_starts(epochs: int) -> tuple[tuple[int, int], ...]:
    """``(start_epoch, paper stage index)`` of the CuSP stages for a run of ``epochs``."""
    milestones = paper_lr_milestones(epochs)
    if len(milestones) >= 2:
        return (1, 0), (milestones[0], 1), (milestones[1], 2)
    if len(milestones) == 1:  # 2 epochs: easiest then hardest, the middle stage is dropped
        return (1, 0), (milestones[0], 2)
    return ((1, 2),)  # 1 epoch: the final (full-budget) stage


def cusp_curriculum(
    epochs: int = PAPER_EPOCHS, eps_scale: float = 8 / 255, *, theta_max: float = 180.0
) -> Curriculum:
    """The authors' CuSP schedule (CIFAR-10 code), scaled to ``epochs`` and ``eps_scale``.

    For 120 epochs and ``eps_scale = 8/255`` it is exactly the paper's table: epochs 1-74 at
    +-120 deg and eps 2/255, 75-89 at +-150 deg and 4/255, 90-120 at +-180 deg and 8/255; no
    translation; LR x0.1 at 75, 90 and 100 (``lr_milestones = (75, 90, 100)``).

    Scaling: the stages keep the paper's values times ``theta_max / 180`` (rotation) and
    ``eps_scale / (8/255)`` (so eps is ``eps_scale / 4, / 2, / 1``; MNIST's 0.3 gives 0.075,
    0.15, 0.3). The LR milestones are :func:`paper_lr_milestones`; stages 2 and 3 start at the
    first two of them (CuSP ties its stages to LR drops). Runs of 2 epochs train one epoch at
    stage 1 and one at stage 3; a 1-epoch run trains at stage 3.

    Raises:
        UserError: if ``eps_scale`` is not in [0, 1] or ``theta_max`` not in [0, 180].
    """
    for key, value, upper in (("eps_scale", eps_scale, 1.0), ("theta_max", theta_max, 180.0)):
        if not 0.0 <= _number(key, value) <= upper:
            raise UserError(f"{key} must be in [0, {upper:g}], got {_show(value)}")
    stages = _cusp_stage_starts(epochs)
    theta = tuple((start, _PAPER_THETA_STAGES[i] * theta_max / 180.0) for start, i in stages)
    eps = tuple((start, _PAPER_EPS_FRACTIONS[i] * eps_scale) for start, i in stages)
    return Curriculum(
        epochs=epochs,
        theta=StepSchedule(theta),
        translate_frac=ConstantSchedule(0.0),
        eps=StepSchedule(eps),
        lr_milestones=paper_lr_milestones(epochs),
        lr_gamma=0.1,
        name="cusp",
    )


def none_curriculum(epochs: int = PAPER_EPOCHS) -> Curriculum:
    """Standard training: no rotation, translation or attack; the paper's LR milestones."""
    zero = ConstantSchedule(0.0)
    return Curriculum(
        epochs=epochs,
        theta=zero,
        translate_frac=zero,
        eps=zero,
        lr_milestones=paper_lr_milestones(epochs),
        name="none",
    )


# --------------------------------------------------------------------------------------------
# From a flat config
# --------------------------------------------------------------------------------------------

_TOP_KEYS: tuple[str, ...] = ("curriculum", "order", "lr_milestones", "lr_gamma")
_CUSP_AXIS_KEYS: tuple[str, ...] = ("theta_max", "eps_max")


def _axis_suffixes() -> tuple[str, ...]:
    suffixes = ["schedule", "max", "start_frac", "warmup", "ramp_end", "stages"]
    for kind in SCHEDULE_KINDS.values():
        suffixes.extend(s for s in kind.keys if s not in suffixes)
    return tuple(suffixes)


def curriculum_keys() -> tuple[str, ...]:
    """Every config key :func:`curriculum_from_config` reads."""
    axis_keys = [f"{axis}_{suffix}" for axis in AXES for suffix in _axis_suffixes()]
    return (*_TOP_KEYS, *axis_keys)


def _is_axis_key(key: str) -> bool:
    """Whether ``key`` is claimed by this module (a ``theta_``/``translate_``/``eps_`` key that
    is not an evaluation setting)."""
    if key.endswith("_eval") or key == "eps_scale":
        return False
    return any(key.startswith(f"{axis}_") for axis in AXES)


def _given(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's curriculum keys that are set (not ``None``); rejects unknown axis keys."""
    known = curriculum_keys()
    given: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or value is None:
            continue
        if key in known:
            given[key] = value
        elif _is_axis_key(key):
            prefix = next(axis for axis in AXES if key.startswith(f"{axis}_"))
            axis_keys = ", ".join(f"{prefix}_{suffix}" for suffix in _axis_suffixes())
            raise UserError(
                f"unknown curriculum key {key!r}{_suggest(key, known)}; "
                f"{prefix} keys are {axis_keys}"
            )
    return given


def _lr_settings(given: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if "lr_milestones" in given:
        raw = given["lr_milestones"]
        message = f"lr_milestones must be strictly increasing epochs in 2..{epochs}, got {raw!r}"
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise UserError(message)
        try:
            milestones = tuple(_whole("lr_milestones", m) for m in raw)
        except UserError:
            raise UserError(message) from None
        if not _valid_milestones(milestones, epochs):
            raise UserError(message)
        settings["lr_milestones"] = milestones
    if "lr_gamma" in given:
        gamma = _number("lr_gamma", given["lr_gamma"])
        if not 0.0 < gamma <= 1.0:
            raise UserError(f"lr_gamma must be in (0, 1], got {_show(given['lr_gamma'])}")
        settings["lr_gamma"] = gamma
    return settings


def _reject_axis_keys(given: Mapping[str, Any], preset: str, allowed: Sequence[str]) -> None:
    for key in given:
        if key not in _TOP_KEYS and key not in allowed:
            takes = f"it takes {', '.join(allowed)}" if allowed else "it takes no axis keys"
            raise UserError(
                f"{key} is not used by curriculum {preset!r} ({takes}); "
                f"set curriculum to 'custom' to choose schedules"
            )


def _custom_schedule(axis: Axis, given: Mapping[str, Any], epochs: int) -> Schedule:
    kind_key = f"{axis.name}_schedule"
    kind = SCHEDULE_KINDS[_choice(kind_key, given.get(kind_key, "constant"), list(SCHEDULE_KINDS))]
    for key in given:
        suffix = key[len(axis.name) + 1 :] if key.startswith(f"{axis.name}_") else None
        if suffix is not None and suffix != "schedule" and suffix not in kind.keys:
            takes = ", ".join(f"{axis.name}_{s}" for s in kind.keys)
            raise UserError(f"{key} is not used by {kind_key} {kind.name!r} (it takes {takes})")
    try:
        schedule = kind.build(AxisConfig(axis, given, epochs))
        if not isinstance(schedule, Schedule):
            raise UserError(
                f"{kind_key} {kind.name!r}: its builder returned a {type(schedule).__name__}, "
                "not a Schedule"
            )
        schedule.validate(epochs, axis.upper, axis.name)
    except UserError:
        raise
    except ValueError as error:  # a registered builder's own check, or a bad schedule
        raise UserError(f"{kind_key} {kind.name!r}: {error}") from error
    return schedule


def curriculum_from_config(
    config: Mapping[str, Any], *, epochs: int, eps_scale: float
) -> Curriculum:
    """Build the curriculum of a run of ``epochs`` from a flat (search-sampled) config.

    Keys and defaults are listed in the module docstring. ``curriculum`` selects:

    - ``custom`` (default): each axis from ``<axis>_schedule`` and that kind's keys
      (``SCHEDULE_KINDS[kind].keys``); eps values are absolute (0.0314, 0.3), within [0, 1].
    - ``cusp``: :func:`cusp_curriculum` with ``eps_scale`` (the dataset's budget; ``eps_max``
      overrides it) and ``theta_max`` (default 180, scales 120/150/180 proportionally); no other
      axis keys.
    - ``none``: all zero; no axis keys.

    ``order``, ``lr_milestones`` and ``lr_gamma`` apply to every preset; the default milestones
    are :func:`paper_lr_milestones` for all of them, so baselines share CuSP's LR schedule.
    Config mistakes raise :class:`UserError` naming the key; a bad ``epochs`` or ``eps_scale``
    (not config values) raises ``ValueError``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if (
        isinstance(eps_scale, bool)
        or not isinstance(eps_scale, numbers.Real)
        or not 0.0 < eps_scale <= 1.0
    ):
        raise ValueError(f"eps_scale must be in (0, 1], got {eps_scale!r}")
    if not isinstance(config, Mapping):
        raise UserError(
            "the curriculum config must be a mapping of keys to values, e.g. "
            f"{{'curriculum': 'cusp'}}, got {type(config).__name__}"
        )
    given = _given(config)
    preset = _choice("curriculum", given.get("curriculum", "custom"), CURRICULUM_PRESETS)
    order = _choice("order", given.get("order", "joint"), ORDERS)
    lr = _lr_settings(given, epochs)

    if preset == "cusp":
        _reject_axis_keys(given, preset, _CUSP_AXIS_KEYS)
        theta = AxisConfig(AXES["theta"], given, epochs).bounded("max", 180.0, 180.0)
        eps = AxisConfig(AXES["eps"], given, epochs).bounded("max", eps_scale, 1.0)
        base = cusp_curriculum(epochs, eps, theta_max=theta)
    elif preset == "none":
        _reject_axis_keys(given, preset, ())
        base = none_curriculum(epochs)
    else:
        base = Curriculum(
            epochs=epochs,
            theta=_custom_schedule(AXES["theta"], given, epochs),
            translate_frac=_custom_schedule(AXES["translate"], given, epochs),
            eps=_custom_schedule(AXES["eps"], given, epochs),
            lr_milestones=paper_lr_milestones(epochs),
        )
    curriculum = replace(base, **lr)
    if order == "joint":
        return curriculum
    try:
        return replace(curriculum, order=order)
    except ValueError as error:  # the order leaves the delayed schedule no epoch
        raise UserError(str(error)) from None
