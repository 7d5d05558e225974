"""Group-equivariant CNNs (e2cnn): ``gcnn-c4``, ``gcnn-c8``, ``gcnn-d4``.

Design, chosen so that the logits are *exactly* invariant (up to float rounding) to the group
elements that act on the pixel grid (90-degree rotations; for D4 also the flips):

* ``Normalize`` (plain torch, per channel) commutes with every spatial permutation.
* Every convolution is an e2cnn ``R2Conv`` with an odd kernel, stride 1 and symmetric padding
  ``k // 2``: its sampled filters are equivariant on the grid, so it commutes with ``rot90``/flips.
* ``InnerBatchNorm`` and ``ReLU`` act per field (regular representation), so they commute.
* 2x2/stride-2 max-pools only ever see even spatial sizes (28 -> 14 -> 7, 32 -> 16 -> 8), where the
  pooling windows tile the image exactly and ``rot90``/flips map windows onto windows.
* ``GroupPooling`` (max over each field's channels) makes the features invariant, then a global
  spatial average and a small MLP head give the logits.

Rotations by 45 degrees (the other half of C8) do not act on the grid, so C8 is only approximately
invariant to them.

e2cnn is imported lazily (it takes seconds to import), when the first gcnn model is built.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from trainables.models._cnn import check_width
from trainables.models._common import GroupMaxPool, Normalize
from trainables.models._registry import ModelBuilder, register_model

# (fields of the C4 model, kernel size, max-pool after) for each R2Conv-IBN-ReLU block.
_C4_PLAN: tuple[tuple[int, int, bool], ...] = (
    (8, 5, False),
    (8, 3, True),
    (16, 3, False),
    (16, 3, True),
)
_C4_ORDER = 4
_GROUPS: dict[str, tuple[str, int]] = {"C4": ("rot", 4), "C8": ("rot", 8), "D4": ("fliprot", 4)}


def make_gspace(group: str) -> Any:
    from e2cnn import gspaces

    kind, n = _GROUPS[group]
    return gspaces.Rot2dOnR2(N=n) if kind == "rot" else gspaces.FlipRot2dOnR2(N=n)


@contextlib.contextmanager
def quiet_basis_warnings() -> Iterator[None]:
    """Silence the warning e2cnn 0.2.3 (its last release) gives when it builds its filter bases
    (it indexes with uint8 masks)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "indexing with dtype torch.uint8", UserWarning)
        yield


def _sync_filter_caches(root: nn.Module) -> None:
    """Make the filters e2cnn caches in ``R2Conv`` safe to use, save and load.

    ``R2Conv`` keeps its expanded filter (and bias) as *persistent* buffers: zeros from construction
    until the first ``train()``, then, after each switch to eval mode, the expansion of the weights,
    still attached to their autograd graph. Left alone this (1) makes the state-dict keys depend on
    the module's history and mode, so a checkpoint saved in one mode does not load into a model in
    the other, and (2) makes a second ``backward()`` through an eval-mode model fail.
    Re-register them detached and non-persistent: they are derived data, recomputed from the
    weights on every switch to eval mode (and after a state-dict load, see
    :func:`_refresh_filter_caches`).
    """
    from e2cnn import nn as enn

    for module in root.modules():
        if not isinstance(module, enn.R2Conv):
            continue
        buffers = dict(module.named_buffers(recurse=False))
        for name in ("filter", "expanded_bias"):
            tensor = buffers.get(name)
            if tensor is not None:
                delattr(module, name)
                module.register_buffer(name, tensor.detach(), persistent=False)


def _refresh_filter_caches(root: nn.Module, incompatible_keys: Any = None) -> None:
    """Recompute the eval-mode filter caches from the current weights (after a state-dict load)."""
    from e2cnn import nn as enn

    del incompatible_keys
    for module in root.modules():
        if isinstance(module, enn.R2Conv) and not module.training:
            module.train(True)
            module.train(False)
    _sync_filter_caches(root)


class E2Model(nn.Module):
    """Base of the e2cnn models: filter caches kept out of checkpoints, pickling, export.

    A subclass stores its constructor's keyword arguments (all but ``normalize``) in
    ``self._init_args``, calls :meth:`_finish_init` at the end of ``__init__`` and gives the
    modules of its plain-torch export in ``_plain_parts``.
    """

    _init_args: dict[str, Any]

    def _finish_init(self) -> None:
        _sync_filter_caches(self)
        self.register_load_state_dict_post_hook(_refresh_filter_caches)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as constructor arguments + state dict (e2cnn groups hold unpicklable lambdas)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        frozen = [name for name, p in self.named_parameters() if not p.requires_grad]
        reference = next(self.parameters())
        placement = (str(reference.device), str(reference.dtype).removeprefix("torch."))
        return (_unpickle, (type(self), self._init_args, state, self.training, frozen, placement))

    def __deepcopy__(self, memo: dict[int, Any]) -> E2Model:
        # The default deepcopy (not __reduce__, which is for pickling): copy every attribute.
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    def train(self, mode: bool = True) -> E2Model:
        super().train(mode)
        _sync_filter_caches(self)
        return self

    def export(self) -> nn.Sequential:
        """A plain-torch ``nn.Sequential`` (no e2cnn modules) computing the eval-mode logits.

        ``self`` is not modified. The result is in eval mode, on the same device, and shares no
        storage with ``self``; it is for evaluation only (training it breaks the equivariance).
        """
        clone = copy.deepcopy(self)
        clone.eval()
        exported = nn.Sequential(clone._plain_parts())
        reference = next(self.parameters())
        return exported.to(device=reference.device, dtype=reference.dtype).eval()

    def _plain_parts(self) -> OrderedDict[str, nn.Module]:
        """The modules of :meth:`export`, in order, from this eval-mode copy."""
        raise NotImplementedError


def _unpickle(
    cls: type[E2Model],
    init_args: dict[str, Any],
    state: dict[str, torch.Tensor],
    training: bool,
    frozen: list[str],
    placement: tuple[str, str],
) -> E2Model:
    channels = init_args["in_channels"]
    model = cls(normalize=Normalize.identity(channels), **init_args)
    device, dtype = placement
    model = model.to(device=torch.device(device), dtype=getattr(torch, dtype))
    model.load_state_dict(state)
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    return model.train(training)


class EquivariantCNN(E2Model):
    """A small group-equivariant CNN with group-invariant logits (see the module docstring).

    Four ``R2Conv(k) -> InnerBatchNorm -> ReLU`` blocks on regular-representation fields
    (kernel 5 then 3, 3, 3), a 2x2 max-pool after blocks 2 and 4, ``GroupPooling``, a global
    spatial average and ``Linear -> ReLU -> Linear``.

    Args:
        group: ``"C4"``, ``"C8"`` or ``"D4"``.
        in_channels: input channels (trivial-representation fields).
        num_classes: number of logits.
        image_size: the input side; must be divisible by 4 (both pools see even sizes).
        normalize: the input normalisation applied first, in plain torch.
        width: multiplier on the number of fields. At ``width=1`` C4 has 8-8-16-16 fields
            (32-32-64-64 channels) and the order-8 groups have ``1/sqrt(2)`` as many fields
            (6-6-11-11, i.e. 48-48-88-88 channels), which keeps the parameter counts comparable.
        hidden: width of the head's hidden layer.

    ``eval()`` caches the expanded filters (fast repeated evaluation); :meth:`export` gives a
    plain-torch module with the same eval-mode logits.
    """

    def __init__(
        self,
        *,
        group: str,
        in_channels: int,
        num_classes: int,
        image_size: int,
        normalize: Normalize,
        width: float = 1.0,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        from e2cnn import nn as enn

        self._init_args: dict[str, Any] = dict(
            group=group,
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            width=width,
            hidden=hidden,
        )
        if image_size % 4 != 0:
            raise ValueError(f"image_size must be divisible by 4; got {image_size}")
        gspace = make_gspace(group)
        self.group = group
        self.group_order = int(gspace.fibergroup.order())
        scale = width * math.sqrt(_C4_ORDER / self.group_order)
        self.normalize = normalize
        self.in_type = enn.FieldType(gspace, in_channels * [gspace.trivial_repr])
        layers: list[nn.Module] = []
        field_type = self.in_type
        fields = 0
        for base_fields, kernel_size, pool in _C4_PLAN:
            fields = max(1, round(base_fields * scale))
            out_type = enn.FieldType(gspace, fields * [gspace.regular_repr])
            layers += [
                enn.R2Conv(field_type, out_type, kernel_size, padding=kernel_size // 2, bias=False),
                enn.InnerBatchNorm(out_type),
                enn.ReLU(out_type, inplace=True),
            ]
            if pool:
                layers.append(enn.PointwiseMaxPool(out_type, kernel_size=2, stride=2))
            field_type = out_type
        self.features = enn.SequentialModule(*layers)
        self.gpool = enn.GroupPooling(field_type)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(fields, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )
        self._finish_init()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from e2cnn import nn as enn

        geometric = enn.GeometricTensor(self.normalize(x), self.in_type)
        features = self.gpool(self.features(geometric)).tensor
        return self.head(self.pool(features))

    def _plain_parts(self) -> OrderedDict[str, nn.Module]:
        return OrderedDict(
            normalize=self.normalize,
            features=self.features.export(),
            gpool=GroupMaxPool(self.group_order),
            pool=self.pool,
            head=self.head,
        )


def e2cnn_builder(name: str, model: type[E2Model], summary: str, **fixed: Any) -> ModelBuilder:
    """The registry builder of an e2cnn model class (options: ``width``; ``fixed``: the other
    constructor arguments)."""

    def build(
        *,
        in_channels: int,
        num_classes: int,
        image_size: int,
        normalize: Normalize,
        width: float = 1.0,
    ) -> nn.Module:
        with quiet_basis_warnings():
            return model(
                in_channels=in_channels,
                num_classes=num_classes,
                image_size=image_size,
                normalize=normalize,
                width=check_width(name, width),
                **fixed,
            )

    build.__doc__ = summary
    build.__name__ = name.replace("-", "_")
    return build


# The e2cnn models gain nothing from channels_last (benchmarks/bench_layout.py).
for _group, _summary in (
    ("C4", "C4-equivariant CNN (e2cnn, 8-8-16-16 regular fields x width), invariant logits."),
    ("C8", "C8-equivariant CNN (e2cnn, 6-6-11-11 regular fields x width), invariant logits."),
    (
        "D4",
        "D4-equivariant CNN (e2cnn, 6-6-11-11 regular fields x width), rotation/flip-invariant.",
    ),
):
    register_model(
        f"gcnn-{_group.lower()}",
        image_sizes=(28, 32),
        in_channels=(1, 3),
        group=_group,
        channels_last=False,
    )(e2cnn_builder(f"gcnn-{_group.lower()}", EquivariantCNN, _summary, group=_group))
del _group, _summary
