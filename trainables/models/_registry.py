"""The model registry: names -> builders with the input shapes each one supports.

A builder is registered with :func:`register_model` and called by :func:`build_model`, which checks
the request against the :class:`ModelSpec` first so that a user mistake (unknown name, unsupported
input size or channel count, unknown option) raises :class:`~trainables.errors.UserError` with a
message saying what to change, before any module is constructed.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from trainables._registration import check_function, check_name
from trainables.errors import UserError
from trainables.models._common import Normalize

__all__ = [
    "ModelBuilder",
    "ModelSpec",
    "build_model",
    "export_model",
    "get_model_spec",
    "list_models",
    "register_model",
]


class ModelBuilder(Protocol):
    """Builds the network; called only with a request its :class:`ModelSpec` supports.

    The returned module must apply ``normalize`` to its input first and return logits of shape
    ``(N, num_classes)`` for inputs of shape ``(N, in_channels, image_size, image_size)``.
    """

    def __call__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        normalize: Normalize,
        **options: Any,
    ) -> nn.Module: ...


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model accepts.

    Attributes:
        name: the registry name, e.g. ``"gcnn-c4"``.
        builder: the function that builds the module (see :class:`ModelBuilder`).
        image_sizes: the square input sizes (height == width, in pixels) it supports.
        in_channels: the input channel counts it supports.
        options: names of the extra keyword options the builder takes (e.g. ``"width"``).
        group: the symmetry group the logits are exactly invariant to (``"C4"``, ``"C8"``,
            ``"D4"``), or ``None`` for a plain CNN. For C8 only the 90-degree rotations act exactly
            on the pixel grid; the 45-degree ones are approximate.
        channels_last: whether it trains faster with NHWC weights (``benchmarks/bench_layout.py``:
            1.2-1.3x for the plain CNNs on the CPU; within noise, either way, for e2cnn's).
        description: one line for listings.
    """

    name: str
    builder: ModelBuilder
    image_sizes: tuple[int, ...]
    in_channels: tuple[int, ...]
    options: tuple[str, ...] = ()
    group: str | None = None
    channels_last: bool = True
    description: str = ""

    @property
    def shipped(self) -> bool:
        """Whether the model comes with cusp-tune (not from a user's plugin)."""
        return (getattr(self.builder, "__module__", None) or "").startswith("trainables.")

    def supports(self, in_channels: int, image_size: int) -> bool:
        """Whether ``(in_channels, image_size x image_size)`` inputs are supported."""
        return in_channels in self.in_channels and image_size in self.image_sizes


_REGISTRY: dict[str, ModelSpec] = {}


_GROUPS: tuple[str, ...] = ("C4", "C8", "D4")
_STANDARD: tuple[str, ...] = ("in_channels", "num_classes", "image_size", "normalize")


def register_model(
    name: str,
    *,
    image_sizes: Sequence[int] = (28, 32),
    in_channels: Sequence[int] = (1, 3),
    group: str | None = None,
    channels_last: bool = True,
    description: str | None = None,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder`` under ``name``.

    The builder must take the keywords ``in_channels``, ``num_classes``, ``image_size`` and
    ``normalize`` (or ``**kwargs``); its other keyword-only parameters become the model's
    ``options`` and, like any other parameter, need a default. ``description`` defaults to the
    first line of the builder's docstring. Registering the same builder again (same module and
    qualified name: ``importlib.reload``, a notebook cell run twice) replaces the entry.

    Raises:
        ValueError: ``name`` is not a non-empty str or is taken by another builder;
            ``image_sizes`` or ``in_channels`` is not a non-empty sequence of positive ints;
            ``group`` is not ``"C4"``, ``"C8"``, ``"D4"`` or ``None``; the builder is not
            callable, lacks a standard keyword or has a parameter without a default (a
            programming error, not a user one).
    """
    check_name("model", name)
    sizes = _positive_ints(name, "image_sizes", image_sizes)
    channels = _positive_ints(name, "in_channels", in_channels)
    if group is not None and group not in _GROUPS:
        raise ValueError(
            f"model {name!r}: group must be one of {', '.join(_GROUPS)} or None, got {group!r}"
        )

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        registered = _REGISTRY.get(name)
        check_function("model", name, builder, registered and registered.builder)
        doc = description if description is not None else (builder.__doc__ or "").strip()
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            image_sizes=sizes,
            in_channels=channels,
            options=_builder_options(name, builder),
            group=group,
            channels_last=channels_last,
            description=doc.splitlines()[0] if doc else "",
        )
        return builder

    return decorator


def _positive_ints(name: str, label: str, values: Sequence[int]) -> tuple[int, ...]:
    if (
        isinstance(values, str | bytes)
        or not isinstance(values, Sequence)
        or not values
        or not all(_is_int(v) and v > 0 for v in values)
    ):
        raise ValueError(
            f"model {name!r}: {label} must be a non-empty sequence of positive ints, got {values!r}"
        )
    return tuple(values)


def _builder_options(name: str, builder: ModelBuilder) -> tuple[str, ...]:
    """The builder's keyword-only options; ``ValueError`` if it cannot be called as
    :func:`build_model` calls it."""
    params = inspect.signature(builder).parameters.values()
    by_keyword = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        missing = [k for k in _STANDARD if k not in by_keyword]
        if missing:
            raise ValueError(
                f"model {name!r}: the builder must take the keywords {', '.join(_STANDARD)} "
                f"(or **kwargs); it lacks {', '.join(missing)}"
            )
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [
        p.name
        for p in params
        if p.name not in _STANDARD and p.kind not in variadic and p.default is p.empty
    ]
    if required:
        raise ValueError(
            f"model {name!r}: builder parameter(s) {', '.join(required)} need a default "
            "(build_model passes the four standard keywords and the options a user sets)"
        )
    return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _STANDARD)


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises:
        UserError: no model has that name (the message suggests the closest names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(_unknown_name_message(name)) from None


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **options: Any,
) -> nn.Module:
    """Build the registered model ``name`` for the given input shape, in training mode.

    The module takes float images in ``[0, 1]`` of shape ``(N, in_channels, H, W)`` with
    ``H == W == image_size`` and returns logits of shape ``(N, num_classes)``. Its first operation
    is a :class:`Normalize` (attribute ``.normalize``) computing ``(x - mean) / std`` per channel.

    Args:
        name: a name from :func:`list_models`.
        in_channels: input channels (1 for MNIST-like data, 3 for CIFAR-like data).
        num_classes: number of output logits (>= 1).
        image_size: the side of the square input, or ``(height, width)`` with equal sides.
        mean: per-channel means (``in_channels`` values); ``None`` means 0 for every channel.
        std: per-channel standard deviations (``in_channels`` values, each > 0); ``None`` means 1.
        **options: model-specific options listed in ``get_model_spec(name).options`` (e.g.
            ``width`` for ``stdcnn`` and the ``gcnn-*`` models).

    Raises:
        UserError: unknown name or option, an input size or channel count the model does not
            support, or mean/std of the wrong length or with a non-positive std; a builder that
            returns no ``nn.Module``, or (for models not shipped in ``trainables``, checked with
            one no-grad forward of two blank images in eval mode) whose logits are not of shape
            ``(N, num_classes)``.
    """
    spec = get_model_spec(name)
    size = _square_size(name, image_size)
    if not _is_int(in_channels) or in_channels < 1:
        raise UserError(f"in_channels must be a positive integer; got {in_channels!r}")
    if not _is_int(num_classes) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer; got {num_classes!r}")
    if size not in spec.image_sizes:
        raise UserError(_size_message(spec, size))
    if in_channels not in spec.in_channels:
        allowed = " or ".join(str(c) for c in spec.in_channels)
        raise UserError(
            f"{name} takes {allowed} input channels; got {in_channels} "
            "(convert the images, e.g. to grayscale or RGB, or choose another model)"
        )
    for option in options:
        if option not in spec.options:
            raise UserError(_unknown_option_message(spec, option))
    normalize = _make_normalize(in_channels, mean, std)
    model = spec.builder(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=size,
        normalize=normalize,
        **options,
    )
    if not isinstance(model, nn.Module):
        raise UserError(
            f"model {name!r}: its builder returned a {type(model).__name__}, not a torch.nn.Module"
        )
    if not spec.shipped:
        _check_logits(name, model, in_channels, num_classes, size)
    return model


def export_model(model: nn.Module) -> nn.Module:
    """A plain-torch copy of ``model`` for fast evaluation, in eval mode.

    Models with an ``export()`` method (the ``gcnn-*`` models) are converted to ordinary torch
    modules (no e2cnn types inside) computing the same logits as ``model.eval()``; any other model
    is deep-copied. ``model`` itself is left untouched (parameters, buffers and train/eval mode),
    and the result shares no storage with it. The result lives on ``model``'s device and dtype.
    It is meant for evaluation only: training an exported equivariant model would break its
    weight sharing.
    """
    clone = copy.deepcopy(model)
    export = getattr(clone, "export", None)
    exported = export() if callable(export) else clone
    if not isinstance(exported, nn.Module):
        raise TypeError(f"{type(model).__name__}.export() returned {type(exported).__name__}")
    reference = next(model.parameters(), None)
    if reference is None:
        reference = next(model.buffers(), None)
    if reference is not None:
        exported = exported.to(device=reference.device, dtype=reference.dtype)
    return exported.eval()


def _check_logits(
    name: str, model: nn.Module, in_channels: int, num_classes: int, size: int
) -> None:
    """One no-grad forward of two blank images in eval mode (every submodule's mode is restored
    after): ``UserError`` unless the logits have shape ``(2, num_classes)``."""
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else None
    x = torch.zeros(2, in_channels, size, size, device=device)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for module, training in modes:  # parents first: train() also sets the children
            if module.training != training:
                module.train(training)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
        got = (
            f"shape {tuple(logits.shape)}"
            if isinstance(logits, torch.Tensor)
            else f"a {type(logits).__name__}"
        )
        raise UserError(
            f"model {name!r} returned {got} for input {tuple(x.shape)}; expected logits of "
            f"shape (2, {num_classes}) (N images, num_classes logits)"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _square_size(name: str, image_size: int | tuple[int, int]) -> int:
    if _is_int(image_size):
        return int(image_size)  # type: ignore[arg-type]
    if (
        isinstance(image_size, tuple | list)
        and len(image_size) == 2
        and all(_is_int(s) for s in image_size)
    ):
        height, width = image_size
        if height != width:
            raise UserError(
                f"{name} takes square inputs; got {height}x{width} (crop or resize the images)"
            )
        return int(height)
    raise UserError(f"image_size must be an integer or (height, width); got {image_size!r}")


def _make_normalize(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> Normalize:
    mean_values = (0.0,) * in_channels if mean is None else _floats("mean", mean)
    std_values = (1.0,) * in_channels if std is None else _floats("std", std)
    for label, values in (("mean", mean_values), ("std", std_values)):
        if len(values) != in_channels:
            raise UserError(
                f"{label} has {len(values)} value(s) but the model takes {in_channels} channel(s); "
                f"give one {label} per channel"
            )
    if any(not s > 0 for s in std_values):
        raise UserError(f"std values must all be > 0; got {std_values}")
    return Normalize(mean_values, std_values)


def _floats(label: str, values: Sequence[float]) -> tuple[float, ...]:
    if isinstance(values, int | float) and not isinstance(values, bool):
        return (float(values),)
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{label} must be a list of numbers; got {values!r}") from None


def _unknown_name_message(name: str) -> str:
    known = list_models()
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    quoted = [repr(c) for c in close]
    hint = ""
    if quoted:
        choices = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        hint = f"did you mean {choices}? "
    return f"unknown model {name!r}; {hint}known models: {', '.join(known)}"


def _unknown_option_message(spec: ModelSpec, option: str) -> str:
    if not spec.options:
        return f"{spec.name} takes no options; remove {option!r}"
    close = difflib.get_close_matches(option, spec.options, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown option {option!r} for {spec.name}; {hint}it takes: {', '.join(spec.options)}"


def _size_message(spec: ModelSpec, size: int) -> str:
    sizes = " or ".join(f"{s}x{s}" for s in spec.image_sizes)
    others = [m for m in list_models() if size in _REGISTRY[m].image_sizes]
    alternative = (
        f"choose a model that takes {size}x{size} inputs ({', '.join(others)})"
        if others
        else "choose another model"
    )
    return (
        f"{spec.name} takes {sizes} inputs; got {size}x{size} "
        f"(resize or pad the images to a supported size, or {alternative})"
    )
