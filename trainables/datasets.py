"""Image datasets as whole uint8 tensors, a name -> loader registry, and a device-resident batcher.

A trial keeps its entire dataset on the training device as ``uint8`` NCHW tensors (MNIST is 47 MB,
CIFAR-10 184 MB) and converts one batch at a time to float in ``[0, 1]`` with
:func:`iterate_batches`; normalisation lives inside the model, so attacks work in pixel space.

Datasets are looked up by name with :func:`load_dataset`:

- ``synthetic-digits``: an offline MNIST-like set rendered from a font and randomly deformed,
  deterministic in its ``seed``; used by the tests and for runs without network access.
- ``mnist``, ``fashion-mnist``, ``cifar10``: the real data sets through torchvision's classes, in
  torchvision's on-disk layout under ``data_dir``.

``data_dir`` defaults to ``$CUSP_TUNE_DATA`` or, if that is unset, ``~/.cache/cusp-tune``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import os
import pickle
import struct
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainables._registration import check_function, check_name
from trainables.errors import UserError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "CUSP_TUNE_DATA"
"""Environment variable that overrides the default data directory."""

_DEFAULT_DATA_DIR = Path("~/.cache/cusp-tune")


# --------------------------------------------------------------------------------------------------
# Dataclasses


@dataclass(frozen=True)
class DatasetInfo:
    """What models, attacks and curricula need to know about a dataset, without its data.

    Attributes:
        name: the registry name, e.g. ``"mnist"``.
        channels: image channels (1 for grey, 3 for RGB).
        image_size: height and width in pixels (images are square).
        num_classes: number of labels; labels are ``0 .. num_classes - 1``.
        eps_scale: the field's standard L-inf budget in pixel units of ``[0, 1]`` (0.3 for MNIST,
            8/255 for CIFAR-10); epsilon schedules are usually expressed relative to it.
        pgd_steps: number of PGD steps conventionally used in adversarial training.
        pgd_step_size: PGD step size in pixel units (0.01 for MNIST, 2/255 for CIFAR-10).
        mean: per-channel mean of the training pixels in ``[0, 1]``, for the model's own
            normalisation layer.
        std: per-channel standard deviation of the training pixels in ``[0, 1]``.
        classes: human-readable class names, indexed by label.
        crop_padding: the field's standard training augmentation, part 1: a random crop of the
            image size from the image zero-padded by this many pixels per side (4 for CIFAR-10,
            0 = none, as for MNIST in Madry et al.).
        hflip: part 2: a random left-right flip with probability 1/2 (CIFAR-10).
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    eps_scale: float
    pgd_steps: int
    pgd_step_size: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    crop_padding: int = 0
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.channels <= 0 or self.image_size <= 0 or self.num_classes <= 1:
            raise ValueError(f"{self.name}: channels, image_size and num_classes must be positive")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean and std need one entry per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"{self.name}: std entries must be positive")
        if len(self.classes) != self.num_classes:
            raise ValueError(f"{self.name}: classes needs one name per class")
        if not (0 < self.eps_scale <= 1 and 0 < self.pgd_step_size <= 1 and self.pgd_steps > 0):
            raise ValueError(f"{self.name}: eps_scale, pgd_step_size and pgd_steps out of range")
        padding = self.crop_padding
        if (
            isinstance(padding, bool)
            or not isinstance(padding, int)
            or not 0 <= padding < self.image_size
            or not isinstance(self.hflip, bool)
        ):
            raise ValueError(f"{self.name}: crop_padding must be in [0, image_size), hflip a bool")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image."""
        return (self.channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class SharedDataset:
    """An ``ImageDataset`` as numpy arrays (see ``ImageDataset.to_shared``)."""

    info: DatasetInfo
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def to_dataset(self) -> ImageDataset:
        """Tensors over the same memory (read-only arrays from the object store stay shared)."""
        with warnings.catch_warnings():  # torch warns that the arrays are not writable
            warnings.simplefilter("ignore", UserWarning)
            tensors = [
                torch.from_numpy(array)
                for array in (
                    self.train_images,
                    self.train_labels,
                    self.test_images,
                    self.test_labels,
                )
            ]
        return ImageDataset(self.info, *tensors)


@dataclass(frozen=True)
class ImageDataset:
    """A whole dataset as tensors: images ``uint8`` of shape (N, C, H, W), labels ``int64`` (N,).

    All four tensors sit on the same device. The constructor checks shapes, dtypes and the label
    range against ``info`` and raises ``ValueError`` on a mismatch (a bug in a loader, not a user
    mistake; loaders turn bad files into :class:`UserError` themselves).
    """

    info: DatasetInfo
    train_images: torch.Tensor = field(repr=False)
    train_labels: torch.Tensor = field(repr=False)
    test_images: torch.Tensor = field(repr=False)
    test_labels: torch.Tensor = field(repr=False)

    def __post_init__(self) -> None:
        device = self.train_images.device
        for split in ("train", "test"):
            images: torch.Tensor = getattr(self, f"{split}_images")
            labels: torch.Tensor = getattr(self, f"{split}_labels")
            where = f"{self.info.name} {split}"
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(
                    f"{where} images must be uint8 (N, C, H, W), got {images.dtype} "
                    f"of shape {tuple(images.shape)}"
                )
            if tuple(images.shape[1:]) != self.info.shape:
                raise ValueError(
                    f"{where} images have shape {tuple(images.shape[1:])} per image, "
                    f"expected {self.info.shape}"
                )
            if labels.dtype != torch.int64 or labels.dim() != 1:
                raise ValueError(
                    f"{where} labels must be int64 of shape (N,), got {labels.dtype} "
                    f"of shape {tuple(labels.shape)}"
                )
            if labels.shape[0] != images.shape[0]:
                raise ValueError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")
            if images.device != device or labels.device != device:
                raise ValueError(f"{where}: all tensors must be on one device")
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.info.num_classes):
                raise ValueError(f"{where} labels outside 0..{self.info.num_classes - 1}")

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.info.name}: {self.num_train} train, {self.num_test} test, "
            f"{'x'.join(map(str, self.info.shape))}, {self.device})"
        )

    @property
    def num_train(self) -> int:
        """Number of training images."""
        return int(self.train_images.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test images."""
        return int(self.test_images.shape[0])

    @property
    def device(self) -> torch.device:
        """The device all four tensors sit on."""
        return self.train_images.device

    def to(self, device: torch.device | str) -> ImageDataset:
        """Return a copy with all tensors on ``device`` (still uint8); ``self`` if already there."""
        device = torch.device(device)
        if device == self.device:
            return self
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )

    def to_shared(self) -> SharedDataset:
        """The dataset as numpy arrays, for Ray's object store.

        Ray maps numpy arrays of an object zero-copy into every worker on a node, but copies
        torch tensors into each worker: trials share a ``SharedDataset``, not an ``ImageDataset``.
        """
        return SharedDataset(
            self.info,
            self.train_images.cpu().numpy(),
            self.train_labels.cpu().numpy(),
            self.test_images.cpu().numpy(),
            self.test_labels.cpu().numpy(),
        )

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> ImageDataset:
        """Return the first ``n_train`` training and ``n_test`` test samples (None keeps all).

        The subset owns copies of its rows, so it does not keep (or pickle, e.g. into Ray's object
        store) the full tensors alive; ``self`` is returned when nothing is cut.

        The counts are the ``train_size`` and ``test_size`` settings; error messages name those.

        Raises:
            UserError: if a count is not positive or exceeds what the dataset has.
        """
        n_train = _check_count("train_size", n_train, self.num_train, self.info.name, "training")
        n_test = _check_count("test_size", n_test, self.num_test, self.info.name, "test")
        if n_train == self.num_train and n_test == self.num_test:
            return self
        return replace(
            self,
            train_images=self.train_images[:n_train].clone(),
            train_labels=self.train_labels[:n_train].clone(),
            test_images=self.test_images[:n_test].clone(),
            test_labels=self.test_labels[:n_test].clone(),
        )


def _check_count(key: str, value: Any, available: int, name: str, split: str) -> int:
    """Validate an optional count of ``split`` images against ``available``; None means all.

    ``key`` is the setting the count comes from, named in the error message.
    """
    if value is None:
        return available
    value = _positive_int(key, value)
    if value > available:
        hint = f" (dataset.{key} in a job spec)" if key in ("train_size", "test_size") else ""
        raise UserError(
            f"{key} {value}: {name} has only {available} {split} images; "
            f"set {key}{hint} to at most {available}"
        )
    return value


def _positive_int(option: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``, else UserError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise UserError(f"option {option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# Registry

Loader = Callable[..., ImageDataset]
"""``loader(data_dir: Path, download: bool, **options) -> ImageDataset``.

Options are the loader's keyword-only parameters; each must have a default."""


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    loader: Loader
    options: tuple[str, ...]


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, info: DatasetInfo) -> Callable[[Loader], Loader]:
    """Decorator that registers ``loader`` under ``name``, described by ``info``.

    ``info`` is registered with the loader so that :func:`dataset_info` can answer without loading
    any data (job validation, model construction, epsilon defaults). The loader is called as
    ``loader(data_dir, download, **options)``; its keyword-only parameters are the options users
    may set, and must all have defaults. Registering the same loader again (same module and
    qualified name: ``importlib.reload``, a notebook cell run twice) replaces the entry.

    Raises:
        ValueError: ``name`` is not a non-empty lower-case str with ``-`` rather than ``_``
            (names are looked up that way), differs from ``info.name`` or is taken by another
            loader; the loader is not callable or has an option without a default.
    """
    check_name("dataset", name)
    if name != name.lower().replace("_", "-"):
        raise ValueError(
            f"dataset name {name!r} must be lower-case with '-' for '_' (load_dataset looks names "
            f"up that way), e.g. {name.lower().replace('_', '-')!r}"
        )
    if info.name != name:
        raise ValueError(f"info.name {info.name!r} differs from the registered name {name!r}")

    def decorator(loader: Loader) -> Loader:
        registered = _REGISTRY.get(name)
        check_function("dataset", name, loader, registered and registered.loader)
        params = inspect.signature(loader).parameters.values()
        options = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
        if any(p.default is inspect.Parameter.empty for p in params if p.name in options):
            raise ValueError(f"every option of the {name!r} loader needs a default")
        _REGISTRY[name] = _Entry(info=info, loader=loader, options=options)
        return loader

    return decorator


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    key = str(name).strip().lower().replace("_", "-")
    if key in _REGISTRY:
        return _REGISTRY[key]
    known = list_datasets()
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"unknown dataset '{name}'; {hint}known datasets: {', '.join(known)}")


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset, without loading it.

    Raises:
        UserError: if no dataset of that name is registered.
    """
    return _entry(name).info


def dataset_options(name: str) -> dict[str, Any]:
    """The options a dataset's loader accepts, with their defaults."""
    entry = _entry(name)
    params = inspect.signature(entry.loader).parameters
    return {option: params[option].default for option in entry.options}


def default_data_dir() -> Path:
    """``$CUSP_TUNE_DATA`` if set and not empty, else ``~/.cache/cusp-tune`` (expanded)."""
    return Path(os.environ.get(DATA_DIR_ENV) or _DEFAULT_DATA_DIR).expanduser()


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    **options: Any,
) -> ImageDataset:
    """Load a registered dataset onto the CPU.

    Args:
        name: a name from :func:`list_datasets` (case and ``_``/``-`` are not significant).
        data_dir: where the files are (or the synthetic cache goes); None means
            :func:`default_data_dir`.
        download: let real datasets fetch missing files from the internet.
        **options: loader-specific options, e.g. ``n_train``, ``n_test``, ``seed``.

    Raises:
        UserError: for an unknown name, an unknown or bad option, or missing/unreadable files.
    """
    entry = _entry(name)
    for option in sorted(options):
        if option not in entry.options:
            close = difflib.get_close_matches(option, entry.options, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            allowed = ", ".join(entry.options) or "none"
            raise UserError(
                f"unknown option '{option}' for dataset '{entry.info.name}'; {hint}"
                f"its options are: {allowed}"
            )
    if not isinstance(download, bool):
        raise UserError(f"download must be true or false, got {download!r}")
    if isinstance(data_dir, str) and not data_dir.strip():
        raise UserError(
            "data_dir is empty; give the directory that holds the datasets, or leave it out "
            f"(null) for the default (${DATA_DIR_ENV} or {_DEFAULT_DATA_DIR})"
        )
    # Absolute, so that messages show where a relative data_dir was looked for (the cwd counts).
    root = (default_data_dir() if data_dir is None else Path(data_dir).expanduser()).absolute()
    try:
        dataset = entry.loader(root, download, **options)
    except UserError:
        raise
    except ValueError as exc:  # ImageDataset's checks of what a (plugin's) loader built
        name = entry.info.name
        raise UserError(f"dataset '{name}': what its loader returned is refused: {exc}") from None
    if not isinstance(dataset, ImageDataset) or dataset.info != entry.info:
        got = type(dataset).__name__ if not isinstance(dataset, ImageDataset) else dataset.info.name
        raise UserError(
            f"dataset '{entry.info.name}': its loader must return an ImageDataset with the "
            f"registered DatasetInfo, got {got}"
        )
    return dataset


# --------------------------------------------------------------------------------------------------
# Batches


def iterate_batches(
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches, images as float32 in ``[0, 1]`` on the data's device.

    Arguments are checked (and a shuffle drawn) when this is called, not at the first batch.
    The data never leaves its device: a shuffle is one ``torch.randperm`` (drawn on the
    generator's device, so a CPU generator works with CUDA data), batches are gathered with
    ``index_select`` and converted with ``.float().div_(255)``.

    Args:
        images_u8: uint8 images (N, C, H, W).
        labels: labels (N,), on the same device.
        batch_size: samples per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: visit the samples in a random order (each exactly once).
        generator: source of randomness for the shuffle; seed it for a reproducible order.
        drop_last: skip a final batch smaller than ``batch_size``.

    Raises:
        UserError: if ``batch_size`` is not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    if images_u8.dtype != torch.uint8:
        raise ValueError(f"iterate_batches expects uint8 images, got {images_u8.dtype}")
    n = images_u8.shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{n} images but {labels.shape[0]} labels")
    order: torch.Tensor | None = None
    if shuffle:
        perm_device = generator.device if generator is not None else images_u8.device
        order = torch.randperm(n, generator=generator, device=perm_device)
        order = order.to(images_u8.device)
    stop = n - n % batch_size if drop_last else n
    return _batches(images_u8, labels, batch_size, order, stop)


def _batches(
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    order: torch.Tensor | None,
    stop: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, stop, batch_size):
        if order is None:
            x, y = images_u8[start : start + batch_size], labels[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            x, y = images_u8.index_select(0, index), labels.index_select(0, index)
        yield x.float().div_(255), y


# --------------------------------------------------------------------------------------------------
# Synthetic digits

_DIGIT_CLASSES = tuple(str(d) for d in range(10))

# Mean and std of the pixels of the default synthetic training set (n_train=10000, seed=0),
# measured once from this generator and rounded; they stay close for any seed and size.
SYNTHETIC_DIGITS_INFO = DatasetInfo(
    name="synthetic-digits",
    channels=1,
    image_size=28,
    num_classes=10,
    eps_scale=0.3,
    pgd_steps=40,
    pgd_step_size=0.01,
    mean=(0.1982,),
    std=(0.3446,),
    classes=_DIGIT_CLASSES,
)

_SYNTH_FORMAT_VERSION = 1
"""Bump whenever the generator changes its output, so stale caches are not reused."""

_HI = 56
"""Side of the high-resolution canvas (2x the output) that glyphs are rendered and thickened on;
the per-sample warp samples it straight to the 28x28 output."""

_GLYPH_HEIGHT = 40
"""Digit height on the high-resolution canvas: 20 px at 28x28, as in MNIST."""


def _render_glyphs() -> torch.Tensor:
    """Render digits 0-9 once with Pillow's default font: float (10, 1, _HI, _HI) in [0, 1].

    Each glyph is cropped to its ink, resized to ``_GLYPH_HEIGHT`` keeping its aspect ratio and
    centred on a black canvas. Newer Pillow (>= 10.1, with FreeType) gives a scalable font; older
    ones give a small bitmap font, which is upscaled (the later blur hides its blockiness).
    """
    from PIL import Image, ImageDraw, ImageFont

    try:
        font: Any = ImageFont.load_default(size=96)
    except TypeError:  # Pillow < 10.1: no size argument
        font = ImageFont.load_default()
    glyphs = []
    for digit in _DIGIT_CLASSES:
        left, top, right, bottom = font.getbbox(digit)
        canvas = Image.new("L", (right - left + 8, bottom - top + 8))
        ImageDraw.Draw(canvas).text((4 - left, 4 - top), digit, fill=255, font=font)
        ink = canvas.crop(canvas.getbbox())
        width = max(1, round(ink.width * _GLYPH_HEIGHT / ink.height))
        ink = ink.resize((width, _GLYPH_HEIGHT), Image.Resampling.LANCZOS)
        out = Image.new("L", (_HI, _HI))
        out.paste(ink, ((_HI - width) // 2, (_HI - _GLYPH_HEIGHT) // 2))
        glyphs.append(torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0))
    return torch.stack(glyphs).unsqueeze(1)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` floats drawn uniformly from ``[low, high)``."""
    return torch.rand(n, generator=gen) * (high - low) + low


def _glyph_levels(glyphs: torch.Tensor) -> torch.Tensor:
    """Stroke-thickness variants of the glyphs, thin to bold: (6, 10, 1, _HI, _HI).

    Grey-level erosion and dilation (3x3 min / max filters) at the high resolution, with
    half-way blends between them, then a 3x3 binomial blur so that sampling at the output
    resolution does not alias.
    """
    eroded = -F.max_pool2d(-glyphs, 3, 1, 1)
    dilated = F.max_pool2d(glyphs, 3, 1, 1)
    bold = F.max_pool2d(dilated, 3, 1, 1)
    levels = torch.stack(
        [
            eroded,
            (eroded + glyphs) / 2,
            glyphs,
            (glyphs + dilated) / 2,
            dilated,
            (dilated + bold) / 2,
        ]
    ).flatten(0, 1)
    binomial = torch.tensor([1.0, 2.0, 1.0])
    kernel = (binomial[:, None] * binomial[None, :] / 16).view(1, 1, 3, 3)
    return F.conv2d(levels, kernel, padding=1).view(6, 10, 1, _HI, _HI)


def _generate_digits(
    n: int, gen: torch.Generator, levels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` deformed digits: uint8 (n, 1, 28, 28) and balanced int64 labels (n,).

    Per sample, as batched torch ops: a stroke thickness (one of ``levels``), an affine warp
    (scale, aspect, slant, rotation within +-10 degrees, shift of +-2 px), a smooth elastic wobble,
    a Gaussian blur, a contrast stretch that saturates the strokes, and pixel noise. Rotations
    stay small on purpose: orientation carries meaning (a 6 turned by 180 degrees is a 9), and
    rotation robustness is what the searches measure.
    """
    size = SYNTHETIC_DIGITS_INFO.image_size
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
    thickness = torch.randint(0, levels.shape[0], (n,), generator=gen)
    base = levels.flatten(0, 1).index_select(0, thickness * 10 + labels)  # (n, 1, _HI, _HI)

    # Forward map digit -> image: shift . rotate . slant . scale; grid_sample needs its inverse.
    scale = _uniform(n, 0.8, 1.1, gen)
    aspect = _uniform(n, 0.8, 1.2, gen).sqrt()
    slant = _uniform(n, -0.3, 0.3, gen)
    angle = _uniform(n, -10.0, 10.0, gen).deg2rad()
    shift = _uniform(2 * n, -2.0, 2.0, gen).view(n, 2, 1) * (2.0 / size)  # normalised units
    cos, sin = angle.cos(), angle.sin()
    rotate = torch.stack([cos, -sin, sin, cos], 1).view(n, 2, 2)
    shear = torch.eye(2).repeat(n, 1, 1)
    shear[:, 0, 1] = slant
    stretch = torch.diag_embed(torch.stack([scale * aspect, scale / aspect], 1))
    inverse = torch.linalg.inv(rotate @ shear @ stretch)

    # The sampling grid on a coarse 8x8 lattice of output positions (affine map plus a random
    # elastic wobble), bilinearly upsampled to every pixel centre; exact for the affine part.
    nodes = torch.linspace(-1 + 1 / size, 1 - 1 / size, 8)
    lattice = torch.stack(torch.meshgrid(nodes, nodes, indexing="xy")).view(1, 2, 64)  # (x, y)
    coarse = (inverse @ (lattice - shift)).view(n, 2, 8, 8)
    wobble = torch.randn(n, 2, 4, 4, generator=gen) * _uniform(n, 0.0, 0.03, gen).view(n, 1, 1, 1)
    coarse = coarse + F.interpolate(wobble, size=(8, 8), mode="bicubic", align_corners=True)
    coarse = coarse.contiguous(memory_format=torch.channels_last)
    grid = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    x = F.grid_sample(
        base, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=False
    )

    # Blur with a per-sample sigma in [0.3, 1.0] px: one grouped convolution over the batch.
    sigma = _uniform(n, 0.3, 1.0, gen).view(n, 1, 1)
    taps = torch.arange(-2, 3, dtype=torch.float32)
    gauss = torch.exp(-(taps.view(1, 5, 1) ** 2 + taps.view(1, 1, 5) ** 2) / (2 * sigma**2))
    kernel = (gauss / gauss.sum((1, 2), keepdim=True)).unsqueeze(1)  # (n, 1, 5, 5)
    x = F.conv2d(x.view(1, n, size, size), kernel, padding=2, groups=n).view(n, 1, size, size)

    # Saturate strokes like MNIST ink, then add mild noise; the background stays near black.
    peak = x.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)
    gain = _uniform(n, 1.2, 2.0, gen).view(n, 1, 1, 1)
    x = (x * (gain / peak)).clamp_(0, 1)
    noise = torch.randn(x.shape, generator=gen) * _uniform(n, 0.0, 0.06, gen).view(n, 1, 1, 1)
    x = (x + noise).clamp_(0, 1)
    return x.mul_(255).round_().to(torch.uint8), labels


def _split_generator(seed: int, split: int) -> torch.Generator:
    """A CPU generator for one split, seeded from (seed, split) so splits never share draws."""
    state = np.random.SeedSequence([seed, split]).generate_state(1, dtype=np.uint32)[0]
    return torch.Generator(device="cpu").manual_seed(int(state))


def generate_synthetic_digits(
    n_train: int = 10_000, n_test: int = 2_000, seed: int = 0
) -> ImageDataset:
    """Generate the ``synthetic-digits`` dataset in memory, on the CPU, without caching.

    The same arguments give bit-identical tensors on the same platform and torch / Pillow
    versions (another CPU or library version may move a few pixels by one grey level; the cache
    and Ray's object store keep one copy per search anyway). Train and test come from
    independent random streams derived from ``seed``. The defaults take about half a second on
    one CPU core.
    """
    n_train = _positive_int("n_train", n_train)
    n_test = _positive_int("n_test", n_test)
    seed = _positive_int("seed", seed, minimum=0)
    start = time.perf_counter()
    levels = _glyph_levels(_render_glyphs())
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for split, n in ((0, n_train), (1, n_test)):
        gen = _split_generator(seed, split)
        chunks = [_generate_digits(min(4096, n - i), gen, levels) for i in range(0, n, 4096)]
        parts.append((torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])))
    logger.info(
        "generated synthetic-digits (%d train, %d test, seed %d) in %.1f s",
        n_train,
        n_test,
        seed,
        time.perf_counter() - start,
    )
    (train_x, train_y), (test_x, test_y) = parts
    return ImageDataset(SYNTHETIC_DIGITS_INFO, train_x, train_y, test_x, test_y)


_TENSOR_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def synthetic_cache_path(data_dir: Path, n_train: int, n_test: int, seed: int) -> Path:
    """Where ``synthetic-digits`` with these options is cached under ``data_dir``."""
    return (
        Path(data_dir)
        / "synthetic-digits"
        / f"v{_SYNTH_FORMAT_VERSION}-train{n_train}-test{n_test}-seed{seed}.pt"
    )


def _read_cache(path: Path) -> ImageDataset | None:
    """The cached dataset at ``path``, or None if it is missing or unusable (then regenerated)."""
    if not path.is_file():
        return None
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
        return ImageDataset(SYNTHETIC_DIGITS_INFO, *(tensors[k] for k in _TENSOR_KEYS))
    except Exception as exc:  # a truncated or foreign file: regenerate rather than fail
        logger.warning("ignoring unreadable cache %s (%s); regenerating", path, exc)
        return None


def _write_cache(path: Path, dataset: ImageDataset) -> None:
    """Save atomically (temp file + rename); a cache that cannot be written is only a warning."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            torch.save({k: getattr(dataset, k) for k in _TENSOR_KEYS}, tmp)
        os.replace(tmp_name, path)
        tmp_name = None
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        logger.warning("could not cache synthetic-digits at %s: %s", path, exc)
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


@register_dataset("synthetic-digits", SYNTHETIC_DIGITS_INFO)
def _load_synthetic_digits(
    data_dir: Path,
    download: bool,
    *,
    n_train: int = 10_000,
    n_test: int = 2_000,
    seed: int = 0,
    cache: bool = True,
) -> ImageDataset:
    """Synthetic MNIST-like digits; cached under ``data_dir`` unless ``cache`` is false.

    ``download`` is ignored: nothing is ever fetched.
    """
    n_train = _positive_int("n_train", n_train)
    n_test = _positive_int("n_test", n_test)
    seed = _positive_int("seed", seed, minimum=0)
    if not cache:
        return generate_synthetic_digits(n_train, n_test, seed)
    path = synthetic_cache_path(data_dir, n_train, n_test, seed)
    dataset = _read_cache(path)
    if dataset is None:
        dataset = generate_synthetic_digits(n_train, n_test, seed)
        _write_cache(path, dataset)
    else:
        logger.info("loaded synthetic-digits from cache %s", path)
    return dataset


# --------------------------------------------------------------------------------------------------
# Real datasets through torchvision

MNIST_INFO = DatasetInfo(
    name="mnist",
    channels=1,
    image_size=28,
    num_classes=10,
    eps_scale=0.3,
    pgd_steps=40,
    pgd_step_size=0.01,
    mean=(0.1307,),
    std=(0.3081,),
    classes=_DIGIT_CLASSES,
)

# The usual Fashion-MNIST budget is 0.1 (0.3 destroys most garments); 40 steps of 0.01 as MNIST.
FASHION_MNIST_INFO = DatasetInfo(
    name="fashion-mnist",
    channels=1,
    image_size=28,
    num_classes=10,
    eps_scale=0.1,
    pgd_steps=40,
    pgd_step_size=0.01,
    mean=(0.2860,),
    std=(0.3530,),
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
)

CIFAR10_INFO = DatasetInfo(
    name="cifar10",
    channels=3,
    image_size=32,
    num_classes=10,
    eps_scale=8 / 255,
    pgd_steps=10,
    pgd_step_size=2 / 255,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    crop_padding=4,  # the paper's (and the field's) random crop with 4 px padding
    hflip=True,  # and horizontal flip
)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line: its first line, or its lines joined when the first
    only announces the rest (torchvision's "Error downloading x.gz:" and the mirrors' errors)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        joined = " ".join(lines)
        return joined if len(joined) <= 300 else f"{joined[:297]}..."
    return lines[0]


# What torchvision's classes raise on missing, unreadable or undownloadable files: besides
# RuntimeError ("Dataset not found or corrupted", a bad shape) and OSError (including URLError),
# the IDX reader asserts, and the CIFAR reader unpickles (which may import), indexes and reshapes
# whatever it finds.
_READ_ERRORS = (
    RuntimeError,
    OSError,
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    AssertionError,
    ImportError,
)


def _expected_files(cls: type) -> list[str]:
    """The files torchvision's ``cls`` reads from its folder, from the class's own tables."""
    if hasattr(cls, "train_list"):  # CIFAR
        return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    # MNIST family: the unpacked names of the downloaded .gz files
    return [os.path.splitext(os.path.basename(name))[0] for name, _ in cls.resources]


def _idx_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete uint8 IDX file of the rank its name says, or None."""
    rank = 3 if "idx3" in path.name else 1
    with open(path, "rb") as f:
        head = f.read(4 + 4 * rank)
    if len(head) < 4 + 4 * rank or head[:4] != bytes((0, 0, 8, rank)):
        return f"{path.name} is not a {rank}-D uint8 IDX file"
    expected = len(head) + math.prod(struct.unpack(f">{rank}I", head[4:]))
    size = path.stat().st_size
    if size < expected:
        return f"{path.name} is truncated ({size} of {expected} bytes)"
    if size > expected:
        return f"{path.name} has the wrong size ({size} bytes, its header says {expected})"
    return None


def _checksum_problem(cls: type, where: Path) -> str | None:
    """Which CIFAR files fail torchvision's MD5 check, or None if all pass."""
    from torchvision.datasets.utils import check_integrity

    tables = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    bad = [name for name, md5 in tables if not check_integrity(str(where / name), md5)]
    if not bad:
        return None
    verb = "fails" if len(bad) == 1 else "fail"
    return f"{', '.join(bad)} {verb} torchvision's checksum (truncated, changed or not original)"


def _file_problem(cls: type, where: Path) -> str | None:
    """What is wrong with a complete set of files, or None if no check finds anything."""
    if hasattr(cls, "train_list"):
        return _checksum_problem(cls, where)
    problems = (_idx_problem(where / name) for name in _expected_files(cls))
    return next((problem for problem in problems if problem), None)


def _complete_here(names: list[str], folder: Path) -> bool:
    """Whether ``folder`` holds every one of ``names`` (unpacked or as ``<name>.gz``)."""
    try:
        return folder.is_dir() and all(
            (folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in names
        )
    except OSError:  # unreadable folder: not where the data is
        return False


def _child_dirs(root: Path, limit: int = 1000) -> list[Path]:
    """The sub-directories of ``root`` (at most ``limit`` entries looked at), sorted."""
    try:
        with os.scandir(root) as entries:
            found = []
            for count, entry in enumerate(entries):
                if count >= limit:
                    break
                if entry.is_dir():
                    found.append(Path(entry.path))
        return sorted(found)
    except OSError:
        return []


def _where_it_is(info: DatasetInfo, cls: type, root: Path, folder: str) -> str | None:
    """What to change when none of the files is in ``root / folder`` but the data is close by.

    Users who fetched a dataset themselves point ``data_dir`` at the folder of the files (the
    child of the right one), at the parent of the right one, or at a sibling dataset's folder;
    or keep CIFAR-10's archive packed. Each gets the ``data_dir`` that works, or what to move.
    """
    archive = getattr(cls, "filename", None)  # CIFAR: the downloaded tar.gz
    if archive and (root / archive).is_file():
        return (
            f"{info.name} in {root} is still packed in {archive}; extract it there "
            f"(tar xzf {root / archive} -C {root}), or set download=true to have torchvision "
            f"check and extract it"
        )
    names = _expected_files(cls)
    where = root / folder
    depth = len(Path(folder).parts)
    around = [*list(root.parents)[: depth + 1], *_child_dirs(root)]
    for candidate in around:
        if _complete_here(names, candidate / folder):
            return (
                f"{info.name} not found in {where}, but {candidate / folder} has it; set "
                f"data_dir (dataset.data_dir in a job spec) to {candidate}"
            )
    # the files themselves, loose in data_dir or above torchvision's sub-folder
    loose = [root, *(root / Path(*Path(folder).parts[:i]) for i in range(1, depth))]
    for candidate in loose:
        if _complete_here(names, candidate):
            return (
                f"the {info.name} files are in {candidate}, but torchvision reads them from "
                f"{where}; move them into that folder"
            )
    return None


def _load_error(
    info: DatasetInfo, cls: type, root: Path, folder: str, download: bool, exc: BaseException
) -> str:
    """The one-line message for a torchvision constructor that raised ``exc``.

    Files that are all there but unreadable need replacing (torchvision does not download over
    them); gzipped MNIST files need unpacking; data found next to ``root / folder`` needs
    ``data_dir`` changed (or the files moved); only missing files call for ``download=true``.
    """
    where = root / folder
    names = _expected_files(cls)
    if root.exists() and not root.is_dir():
        return (
            f"data_dir {root} is a file, not a directory; point data_dir (dataset.data_dir in a "
            f"job spec) at the directory that holds {folder}"
        )
    missing = [name for name in names if not (where / name).is_file()]
    if not missing:
        try:
            problem = _file_problem(cls, where) or _one_line(exc)
        except OSError as err:
            problem = f"{err.strerror}: {err.filename}"
        return (
            f"{info.name} files in {where} are unreadable: {problem}; "
            f"replace them with the original files"
        )
    packed = [f"{name}.gz" for name in missing if (where / f"{name}.gz").is_file()]
    if packed and len(packed) == len(missing):
        return (
            f"{info.name} files in {where} are gzipped ({', '.join(packed)}) and torchvision "
            f"reads only unpacked files; unpack them in that folder (gunzip {where}/*.gz)"
        )
    if len(missing) == len(names) and not packed:
        moved = _where_it_is(info, cls, root, folder)
        if moved is not None:
            return moved
    absent = [name for name in missing if f"{name}.gz" not in packed]
    if packed:  # some gzipped, some not there at all
        return (
            f"{info.name} files in {where} are incomplete: {', '.join(absent)} missing "
            f"({', '.join(packed)} still gzipped); set download=true to fetch them "
            f"(dataset.download=true in a job spec), or put all the unpacked files there"
        )
    listed = f" (missing {', '.join(missing)})" if len(missing) < len(names) else ""
    if download:
        return (
            f"could not download {info.name} into {where}{listed}: {_one_line(exc)}; "
            f"check the network, or put the files in {where} by hand"
        )
    nowhere = f" ({root} does not exist)" if not root.exists() else ""
    return (
        f"{info.name} not found in {where}{listed}{nowhere}; set download=true to fetch it "
        f"(dataset.download=true in a job spec), or point data_dir (dataset.data_dir) at a "
        f"directory that has it"
    )


def _absent_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    absent = []
    while not path.exists() and path != path.parent:
        absent.append(path)
        path = path.parent
    return absent


_MEAN_TOLERANCE = 0.05
"""How far the mean training pixel may lie from the dataset's known mean before a warning (the
means of MNIST and Fashion-MNIST, whose files have the same names, differ by 0.155)."""


def _unlike_problem(info: DatasetInfo, images: torch.Tensor) -> str | None:
    """Why training ``images`` do not look like ``info``'s (their mean pixel), or None."""
    if images.numel() == 0:
        return None
    sums = images.sum(dim=(0, 2, 3), dtype=torch.float64)
    means = (sums / (images.shape[0] * images.shape[2] * images.shape[3] * 255)).tolist()
    if all(abs(got - want) <= _MEAN_TOLERANCE for got, want in zip(means, info.mean, strict=True)):
        return None
    like = [
        other.name
        for other in (MNIST_INFO, FASHION_MNIST_INFO)
        if other.name != info.name
        and other.channels == info.channels
        and all(abs(g - w) <= _MEAN_TOLERANCE for g, w in zip(means, other.mean, strict=True))
    ]
    guess = f"; they look like {like[0]}'s, whose files have the same names" if like else ""
    shown = ", ".join(f"{m:.3f}" for m in means)
    known = ", ".join(f"{m:.3f}" for m in info.mean)
    return f"mean pixel value {shown}, where {info.name}'s is {known}{guess}"


def _load_torchvision(
    info: DatasetInfo,
    class_name: str,
    folder: str,
    data_dir: Path,
    download: bool,
    n_train: int | None,
    n_test: int | None,
) -> ImageDataset:
    """Load both splits with ``torchvision.datasets.<class_name>`` and convert to uint8 NCHW.

    ``folder`` is the sub-directory of ``data_dir`` torchvision reads, for error messages.
    MNIST-family training images whose mean pixel is far from the dataset's known one (another
    dataset's files under this one's names: MNIST's and Fashion-MNIST's are the same) are loaded
    with a warning.
    """
    import torchvision.datasets

    cls = getattr(torchvision.datasets, class_name)
    where = data_dir / folder
    created = _absent_dirs(where) if download else []
    try:
        splits = [
            cls(root=str(data_dir), train=train, download=download) for train in (True, False)
        ]
    except _READ_ERRORS as exc:
        for path in created:  # a failed download leaves no empty folders behind
            try:
                path.rmdir()
            except OSError:
                break
        raise UserError(_load_error(info, cls, data_dir, folder, download, exc)) from None
    tensors: list[torch.Tensor] = []
    for ds in splits:
        data = ds.data
        if isinstance(data, np.ndarray):  # CIFAR: numpy (N, H, W, C)
            images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
        else:  # MNIST family: torch (N, H, W)
            images = data.unsqueeze(1).contiguous()
        tensors += [images, torch.as_tensor(ds.targets, dtype=torch.int64)]
    try:
        dataset = ImageDataset(info, *tensors)
    except ValueError as exc:
        raise UserError(
            f"the files in {where} do not look like {info.name} ({exc}); "
            f"replace them with the original files"
        ) from None
    # CIFAR's files pass torchvision's checksums; the MNIST family's unpacked files have none
    problem = None if hasattr(cls, "train_list") else _unlike_problem(info, dataset.train_images)
    if problem is not None:
        logger.warning(
            "the %s training images in %s have %s: check that these are %s's files",
            info.name,
            where,
            problem,
            info.name,
        )
    n_train = _check_count("n_train", n_train, dataset.num_train, info.name, "training")
    n_test = _check_count("n_test", n_test, dataset.num_test, info.name, "test")
    return dataset.subset(n_train, n_test)


@register_dataset("mnist", MNIST_INFO)
def _load_mnist(
    data_dir: Path, download: bool, *, n_train: int | None = None, n_test: int | None = None
) -> ImageDataset:
    """MNIST from ``<data_dir>/MNIST/raw``; optionally only the first n_train / n_test samples."""
    return _load_torchvision(MNIST_INFO, "MNIST", "MNIST/raw", data_dir, download, n_train, n_test)


@register_dataset("fashion-mnist", FASHION_MNIST_INFO)
def _load_fashion_mnist(
    data_dir: Path, download: bool, *, n_train: int | None = None, n_test: int | None = None
) -> ImageDataset:
    """Fashion-MNIST from ``<data_dir>/FashionMNIST/raw``; optionally truncated."""
    return _load_torchvision(
        FASHION_MNIST_INFO, "FashionMNIST", "FashionMNIST/raw", data_dir, download, n_train, n_test
    )


@register_dataset("cifar10", CIFAR10_INFO)
def _load_cifar10(
    data_dir: Path, download: bool, *, n_train: int | None = None, n_test: int | None = None
) -> ImageDataset:
    """CIFAR-10 from ``<data_dir>/cifar-10-batches-py``; optionally truncated."""
    return _load_torchvision(
        CIFAR10_INFO, "CIFAR10", "cifar-10-batches-py", data_dir, download, n_train, n_test
    )
