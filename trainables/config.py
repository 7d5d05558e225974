"""The flat configuration of one trial, as a search samples it and ``--set`` overrides it.

A trial config is a flat mapping of plain values. Keys that name a ``TrialConfig`` field set
that field. The remaining keys that belong to the curriculum (``curriculum``, ``order``,
``lr_milestones``, ``lr_gamma`` and keys that start with ``theta_``, ``eps_`` or
``translate_``) are handed to ``trainables.curriculum.curriculum_from_config``, which validates
them. Anything else is an error with a suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.curriculum import Curriculum, curriculum_from_config
from trainables.curriculum import curriculum_keys as curriculum_keys_known
from trainables.datasets import dataset_info
from trainables.errors import UserError
from trainables.models import build_model, get_model_spec

if TYPE_CHECKING:
    from torch import nn

    from trainables.datasets import DatasetInfo

CURRICULUM_PREFIXES = ("theta_", "eps_", "translate_")
LR_SCHEDULES = ("multistep", "cosine", "constant")
METHODS = ("standard", "pgd", "trades")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs besides the data itself.

    ``None`` means "the dataset's convention": ``eps_eval`` defaults to the dataset's eps scale
    (0.3 MNIST-like, 8/255 CIFAR-like), PGD steps and step sizes to its training convention
    (40 x 0.01, 10 x 2/255). When fewer PGD steps than the convention are asked for and no step
    size is given, the step size grows so the total travel stays the same.

    A relative ``data_dir`` (or one with ``~``) is made absolute from the current directory when
    the config is made, so that a search resumed, or a model evaluated, from another directory
    reads the same data; ``None`` stays "the default directory of the machine that loads it".
    ``dataset`` is kept under its registered name (``fashion_mnist`` -> ``fashion-mnist``).

    ``augment`` applies the dataset's standard training augmentation (``DatasetInfo``'s
    ``crop_padding`` and ``hflip``: a random crop with 4 px zero padding and a horizontal flip for
    CIFAR-10, as in the paper's code; nothing for MNIST-like data) before the curriculum's spatial
    transform; ``false`` turns it off.
    """

    dataset: str = "synthetic-digits"
    data_dir: str | None = None
    download: bool = False
    train_size: int | None = None  # use the first N training images (None = all)
    test_size: int | None = None
    model: str = "stdcnn"
    model_width: float | None = None  # channel multiplier, for models that take one
    epochs: int = 5
    batch_size: int = 128
    augment: bool = True  # the dataset's standard augmentation (CIFAR-10: crop pad 4 + flip)
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "multistep"
    method: str = "pgd"
    trades_beta: float = 6.0
    train_pgd_steps: int | None = None
    train_pgd_step_size: float | None = None
    theta_eval: float = 180.0
    translate_eval: float = 0.0
    eps_eval: float | None = None
    eval_pgd_steps: int | None = None
    eval_pgd_step_size: float | None = None
    eval_subset: int = 500
    eval_batch_size: int = 500
    final_profiles: bool = True
    seed: int = 0
    amp: bool = False  # bf16 autocast in training, on CUDA
    channels_last: bool | None = None  # NHWC weights; None: the model's choice (plain CNNs)
    compile: bool = False  # torch.compile the model (for CUDA; slower on the CPU)
    device: str = "auto"
    checkpoint_every: int = 1
    curriculum: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for key in ("lr_milestones", "lr_gamma"):
            if key in self.curriculum and self.lr_schedule != "multistep":
                raise UserError(
                    f"{key} is not used by lr_schedule {self.lr_schedule!r}; remove it or set "
                    "lr_schedule: multistep"
                )
        _check_choice("method", self.method, METHODS)
        _check_choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size", "eval_subset", "eval_batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("train_size", "test_size", "train_pgd_steps", "eval_pgd_steps"):
            value = getattr(self, name)
            if value is not None and value < (1 if name.endswith("size") else 0):
                raise UserError(f"{name} must be positive, got {value}")
        if not 0 < self.lr < 10:
            raise UserError(f"lr must be in (0, 10), got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must be in [0, 1), got {self.momentum}")
        for name in ("weight_decay", "trades_beta", "translate_eval"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0 <= self.theta_eval <= 180:
            raise UserError(f"theta_eval must be in [0, 180] degrees, got {self.theta_eval}")
        if self.translate_eval > 0.5:
            raise UserError(
                f"translate_eval is a fraction of the image size in [0, 0.5], got "
                f"{self.translate_eval}"
            )
        if self.eps_eval is not None and not 0 <= self.eps_eval <= 1:
            raise UserError(f"eps_eval must be in [0, 1] (pixel scale), got {self.eps_eval}")
        for name in ("train_pgd_step_size", "eval_pgd_step_size"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise UserError(f"{name} must be in (0, 1], got {value}")
        if self.model_width is not None and self.model_width <= 0:
            raise UserError(f"model_width must be positive, got {self.model_width}")
        spec = get_model_spec(self.model)
        if self.model_width is not None and "width" not in spec.options:
            raise UserError(f"model {self.model} takes no model_width; remove it")
        info = dataset_info(self.dataset)
        object.__setattr__(self, "dataset", info.name)
        if isinstance(self.data_dir, str) and self.data_dir.strip():
            absolute = Path(self.data_dir).expanduser().absolute()  # symlinks kept as named
            object.__setattr__(self, "data_dir", str(absolute))
        if not spec.supports(info.channels, info.image_size):
            raise UserError(
                f"model {self.model} does not take {info.name}'s {info.image_size}x"
                f"{info.image_size}x{info.channels} images; choose another model"
            )
        self.build_curriculum()

    @property
    def uses_channels_last(self) -> bool:
        """``channels_last``, or when unset the model's registered preference."""
        if self.channels_last is None:
            return get_model_spec(self.model).channels_last
        return self.channels_last

    @property
    def model_options(self) -> dict[str, Any]:
        return {} if self.model_width is None else {"width": self.model_width}

    def build_model(self, info: DatasetInfo | None = None) -> nn.Module:
        """The untrained model these settings describe (``trainables.models.build_model``), for
        the input shape, classes and normalisation of ``info`` (default: the dataset's)."""
        info = info or dataset_info(self.dataset)
        return build_model(
            self.model,
            info.channels,
            info.num_classes,
            info.image_size,
            mean=info.mean,
            std=info.std,
            **self.model_options,
        )

    def build_curriculum(self) -> Curriculum:
        """The curriculum these settings describe (budgets scaled to the dataset's eps scale)."""
        return curriculum_from_config(
            self.curriculum, epochs=self.epochs, eps_scale=dataset_info(self.dataset).eps_scale
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrialConfig:
        """Build from a flat mapping; the curriculum keys are gathered into ``curriculum``."""
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)} - {"curriculum"}
        curriculum_keys = set(curriculum_keys_known())
        kwargs: dict[str, Any] = {}
        curriculum: dict[str, Any] = {}
        for key, value in values.items():
            if key in fields:
                kwargs[key] = _coerce(key, value, hints[key])
            elif key in curriculum_keys or key.startswith(CURRICULUM_PREFIXES):
                curriculum[key] = value
            else:
                raise UserError(_unknown_key_message(key, sorted(fields | curriculum_keys)))
        return cls(**kwargs, curriculum=curriculum)

    def to_dict(self) -> dict[str, Any]:
        """The flat form ``from_dict`` accepts (curriculum keys inlined)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        curriculum = flat.pop("curriculum")
        flat.update(curriculum)
        return flat

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrialConfig:
        """A copy with some flat keys replaced (curriculum keys merged, not replaced)."""
        return TrialConfig.from_dict({**self.to_dict(), **overrides})


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}{suggestion}")


def _unknown_key_message(key: str, known: list[str]) -> str:
    flat = key.rsplit(".", 1)[-1]  # a job's dotted path (training.epochs): trials take flat keys
    hint = [flat] if flat in known else difflib.get_close_matches(key, known, n=1)
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"unknown trial setting {key!r}{suggestion}"


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check a value against its field type; ints are accepted where floats are expected."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise UserError(f"{key} must be set (got null)")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise UserError(f"{key} must be a finite number, got {value}")
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise UserError(f"{key} must be {base.__name__}, got {value!r} ({type(value).__name__})")


__all__ = ["CURRICULUM_PREFIXES", "TrialConfig"]
