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

from torch import nn

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

    def supports(self, in_channels: int, image_size: int) -> bool:
        """Whether ``(in_channels, image_size x image_size)`` inputs are supported."""
        return in_channels in self.in_channels and image_size in self.image_sizes


_REGISTRY: dict[str, ModelSpec] = {}


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

    The builder's keyword-only parameters other than the four standard ones become the model's
    ``options``. ``description`` defaults to the first line of the builder's docstring.

    Raises:
        ValueError: ``name`` is already registered (a programming error, not a user one).
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        standard = {"in_channels", "num_classes", "image_size", "normalize"}
        params = inspect.signature(builder).parameters.values()
        options = tuple(
            p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in standard
        )
        doc = description if description is not None else (builder.__doc__ or "").strip()
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            image_sizes=tuple(image_sizes),
            in_channels=tuple(in_channels),
            options=options,
            group=group,
            channels_last=channels_last,
            description=doc.splitlines()[0] if doc else "",
        )
        return builder

    return decorator


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
            support, or mean/std of the wrong length or with a non-positive std.
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
    return spec.builder(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=size,
        normalize=normalize,
        **options,
    )


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
