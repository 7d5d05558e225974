"""Tests for trainables.models: registry, shapes, gradients, invariance, export, checkpoints."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainables.errors import UserError
from trainables.models import (
    EquivariantCNN,
    EquivariantResNet,
    Normalize,
    build_model,
    export_model,
    get_model_spec,
    list_models,
    register_model,
)

GCNNS = ("gcnn-c4", "gcnn-c8", "gcnn-d4", "gcnn-resnet18")
ALL_MODELS = (
    "gcnn-c4", "gcnn-c8", "gcnn-d4", "gcnn-resnet18", "lenet", "resnet18", "stdcnn", "vgg16",
)  # fmt: skip
# Every supported (model, image size, channels) combination.
CASES = [
    (name, size, channels)
    for name in ALL_MODELS
    for size in get_model_spec(name).image_sizes
    for channels in get_model_spec(name).in_channels
]
# The combinations the datasets use: 28x28x1 (MNIST-like) and 32x32x3 (CIFAR-like).
GCNN_CASES = [
    (name, size, 1 if size == 28 else 3)
    for name in GCNNS
    for size in (28, 32)
    if size in get_model_spec(name).image_sizes
]
# gcnn-resnet18 takes 8 s to build at width 1 (test_gcnn_resnet18_is_the_papers_layout does).
SMALL = {"gcnn-resnet18": {"width": 0.25}}


def _build(name: str, channels: int, size: int, **kwargs: Any) -> nn.Module:
    """``build_model`` with 10 classes, at a width that builds in about a second."""
    return build_model(name, channels, 10, size, **SMALL.get(name, {}), **kwargs)


def _images(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=generator)


def _trained_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give the BN layers non-trivial running statistics and affine parameters, then eval()."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        model.train()
        model(x)
        model(x * 0.5 + 0.25)
    return model.eval()


def _logit_tol(logits: torch.Tensor) -> float:
    return 1e-4 * max(1.0, float(logits.abs().max()))


def test_registry_lists_all_models() -> None:
    assert list_models() == sorted(ALL_MODELS)
    spec = get_model_spec("gcnn-c4")
    assert spec.group == "C4" and spec.options == ("width",)
    assert get_model_spec("gcnn-d4").group == "D4"
    assert get_model_spec("vgg16").image_sizes == (32,)
    assert get_model_spec("lenet").options == ()
    assert all(get_model_spec(n).description for n in ALL_MODELS)


def test_register_model_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("stdcnn")(lambda **kwargs: nn.Identity())


@pytest.mark.parametrize(("name", "size", "channels"), CASES)
def test_forward_backward(name: str, size: int, channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, channels, 7, size, **SMALL.get(name, {}))
    assert model.training
    assert isinstance(next(iter(model.children())), Normalize), "Normalize must come first"
    x = _images(2, channels, size)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {param_name}"
    assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters())


def test_tuple_image_size_and_width_option() -> None:
    model = build_model("stdcnn", 1, 10, (28, 28), width=0.5)
    assert model(_images(2, 1, 28)).shape == (2, 10)
    small = build_model("gcnn-c4", 1, 10, 28, width=0.5)
    large = build_model("gcnn-c4", 1, 10, 28)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in large.parameters())


def test_plain_cnn_is_not_rotation_invariant() -> None:
    """Sanity check that the invariance tests below can fail."""
    torch.manual_seed(0)
    x = _images(4, 1, 28)
    model = _trained_stats(build_model("stdcnn", 1, 10, 28), x)
    with torch.no_grad():
        diff = (model(x) - model(torch.rot90(x, 1, (2, 3)))).abs().max()
    assert diff > _logit_tol(model(x))


@pytest.mark.parametrize(("name", "size", "channels"), GCNN_CASES)
def test_gcnn_invariance_and_export(name: str, size: int, channels: int) -> None:
    torch.manual_seed(0)
    x = _images(3, channels, size, seed=2)
    model = _build(name, channels, size, mean=(0.4,) * channels, std=(0.3,) * channels)
    model = _trained_stats(model, x)
    group = get_model_spec(name).group
    transforms = [lambda t, k=k: torch.rot90(t, k, (2, 3)) for k in (1, 2, 3)]
    if group == "D4":
        transforms += [
            lambda t: torch.flip(t, (3,)),
            lambda t: torch.flip(t, (2,)),
            lambda t: torch.rot90(torch.flip(t, (3,)), 1, (2, 3)),
        ]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    exported = export_model(model)
    assert not exported.training
    for module in exported.modules():
        assert not type(module).__module__.startswith("e2cnn"), type(module)
    with torch.no_grad():
        logits = model(x)
        assert (exported(x) - logits).abs().max() <= 1e-5 * max(1.0, float(logits.abs().max()))
        assert logits.abs().max() > 1e-3  # not trivially invariant
        for transform in transforms:
            for net in (model, exported):
                moved = net(transform(x))
                assert (moved - logits).abs().max() <= _logit_tol(logits)
    # Exporting left the original untouched.
    assert not model.training
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_export_does_not_touch_a_training_model() -> None:
    model = build_model("gcnn-c4", 1, 10, 28)
    x = _images(2, 1, 28)
    model(x)
    modes = [m.training for m in model.modules()]
    exported = model.export()
    assert isinstance(exported, nn.Sequential)
    assert [m.training for m in model.modules()] == modes
    model.eval()
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), atol=1e-5)
    # No storage is shared: changing the export does not change the model.
    with torch.no_grad():
        for p in exported.parameters():
            p.zero_()
    assert all(float(p.abs().sum()) > 0 for p in model.parameters() if p.dim() > 1)


def test_export_model_copies_plain_models() -> None:
    model = build_model("lenet", 1, 10, 28)
    exported = export_model(model)
    assert model.training and not exported.training
    assert exported is not model
    pointers = {p.data_ptr() for p in model.parameters()}
    assert not pointers & {p.data_ptr() for p in exported.parameters()}
    model.eval()
    x = _images(2, 1, 28)
    with torch.no_grad():
        assert torch.equal(model(x), exported(x))


def test_gcnn_eval_mode_allows_repeated_backward() -> None:
    """PGD loops call backward() many times through an eval-mode model."""
    model = build_model("gcnn-c8", 1, 10, 28).eval()
    x = _images(2, 1, 28).requires_grad_(True)
    for _ in range(3):
        model(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_normalize_is_applied() -> None:
    torch.manual_seed(0)
    normalized = build_model("lenet", 1, 10, 28, mean=(0.5,), std=(0.25,)).eval()
    plain = build_model("lenet", 1, 10, 28).eval()
    state = normalized.state_dict()
    state["normalize.mean"] = torch.zeros_like(state["normalize.mean"])
    state["normalize.std"] = torch.ones_like(state["normalize.std"])
    plain.load_state_dict(state)
    x = _images(2, 1, 28)
    with torch.no_grad():
        assert torch.allclose(normalized.normalize(x), (x - 0.5) / 0.25)
        assert torch.allclose(normalized(x), plain((x - 0.5) / 0.25), atol=1e-6)
    identity = Normalize.identity(3)
    assert torch.equal(identity(_images(1, 3, 4)), _images(1, 3, 4))


def test_normalize_survives_state_dict_and_to(tmp_path: Path) -> None:
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    model = build_model("stdcnn", 3, 10, 32, mean=mean, std=std)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    fresh = build_model("stdcnn", 3, 10, 32)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert torch.allclose(fresh.normalize.mean.flatten(), torch.tensor(mean))
    assert torch.allclose(fresh.normalize.std.flatten(), torch.tensor(std))
    buffers = {id(b) for b in fresh.buffers()}
    assert id(fresh.normalize.mean) in buffers and id(fresh.normalize.std) in buffers
    fresh = fresh.to(torch.float64).to("cpu").eval()
    assert fresh.normalize.mean.dtype == torch.float64
    assert torch.allclose(fresh.normalize.mean.flatten(), torch.tensor(mean, dtype=torch.float64))
    assert fresh(_images(2, 3, 32).double()).dtype == torch.float64


@pytest.mark.parametrize("name", ALL_MODELS)
def test_state_dict_round_trip(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = get_model_spec(name)
    size = spec.image_sizes[0]
    channels = 1 if size == 28 else 3
    x = _images(2, channels, size)
    model = _trained_stats(_build(name, channels, size, mean=(0.3,) * channels), x)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    with torch.no_grad():
        expected = model(x)
        # Into a fresh model in train mode, then eval ...
        fresh = _build(name, channels, size)
        fresh.load_state_dict(state)
        assert torch.allclose(fresh.eval()(x), expected, atol=1e-6)
        # ... and into a fresh model already in eval mode (cached e2cnn filters are refreshed).
        fresh_eval = _build(name, channels, size).eval()
        fresh_eval.load_state_dict(state)
        assert torch.allclose(fresh_eval(x), expected, atol=1e-6)
        # A train-mode checkpoint has the same keys as an eval-mode one.
        assert model.train().state_dict().keys() == state.keys()


@pytest.mark.parametrize(("name", "cls", "head"), [
    ("gcnn-c8", EquivariantCNN, "head.0"), ("gcnn-resnet18", EquivariantResNet, "linear"),
])  # fmt: skip
def test_gcnn_pickles_and_deep_copies(name: str, cls: type, head: str) -> None:
    """e2cnn's groups hold lambdas; the model pickles by constructor arguments + state dict."""
    size = get_model_spec(name).image_sizes[-1]
    x = _images(2, 1, size)
    model = _trained_stats(_build(name, 1, size, mean=(0.2,), std=(0.3,)), x)
    model.get_submodule(head).weight.requires_grad_(False)
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert isinstance(clone, cls) and not clone.training
        frozen = [n for n, p in clone.named_parameters() if not p.requires_grad]
        assert frozen == [f"{head}.weight"]
        with torch.no_grad():
            assert torch.equal(clone(x), model(x))


@pytest.mark.parametrize("name", ["gcnn-d4", "gcnn-resnet18"])
def test_gcnn_state_dict_has_no_cached_filters(name: str) -> None:
    model = _build(name, 1, 32)
    for mode in (True, False, True):
        keys = model.train(mode).state_dict().keys()
        assert not [k for k in keys if k.endswith((".filter", ".expanded_bias"))]


def test_gcnn_resnet18_is_the_papers_layout() -> None:
    """p4m ResNet18: 23-45-91-181 regular D4 fields (8 channels each) at 32-16-8-4 pixels."""
    model = build_model("gcnn-resnet18", 3, 10, 32)
    resnet18 = build_model("resnet18", 3, 10, 32)
    sizes: list[tuple[int, int]] = []
    for stage in model.layers:
        stage[-1].register_forward_hook(
            lambda m, i, out: sizes.append(tuple(out.tensor.shape[1:3]))
        )
    assert model(_images(2, 3, 32)).shape == (2, 10)
    assert sizes == [(23 * 8, 32), (45 * 8, 16), (91 * 8, 8), (181 * 8, 4)]
    assert [len(stage) for stage in model.layers] == [2, 2, 2, 2]
    parameters = sum(p.numel() for p in model.parameters())
    assert 0.6 < parameters / sum(p.numel() for p in resnet18.parameters()) < 0.7  # 7.5M / 11.2M


@pytest.mark.parametrize(
    ("fields_in", "fields_out", "kernel_size", "trivial_in"),
    [(1, 1, 3, False), (3, 4, 3, False), (2, 5, 1, False), (3, 6, 3, True)],
)
def test_he_init_std_is_e2cnns(
    fields_in: int, fields_out: int, kernel_size: int, trivial_in: bool
) -> None:
    """The fast per-block computation gives e2cnn's generalized He init, weight for weight."""
    from e2cnn import gspaces
    from e2cnn import nn as enn
    from e2cnn.nn.init import _generalized_he_init_variances

    from trainables.models._gcnn_resnet import he_init_std

    gspace = gspaces.FlipRot2dOnR2(4)
    in_repr = gspace.trivial_repr if trivial_in else gspace.regular_repr
    in_type = enn.FieldType(gspace, fields_in * [in_repr])
    out_type = enn.FieldType(gspace, fields_out * [gspace.regular_repr])
    conv = enn.R2Conv(in_type, out_type, kernel_size, padding=kernel_size // 2, initialize=False)
    expected = _generalized_he_init_variances(conv.basisexpansion)
    assert torch.equal(he_init_std(in_type, out_type, kernel_size), expected)
    assert len(expected.unique()) > 1  # not a constant that any layout would match


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "vgg61"}, r"unknown model 'vgg61'; did you mean 'vgg16'"),
        ({"name": "gcnn-c5"}, r"did you mean 'gcnn-c8', 'gcnn-c4' or 'gcnn-d4'\?"),
        ({"name": "vgg16", "image_size": 28}, r"vgg16 takes 32x32 inputs; got 28x28"),
        ({"name": "gcnn-resnet18", "image_size": 28}, r"gcnn-resnet18 takes 32x32 inputs"),
        ({"name": "stdcnn", "image_size": 64}, r"stdcnn takes 28x28 or 32x32 inputs; got 64x64"),
        ({"image_size": (28, 32)}, r"takes square inputs; got 28x32"),
        ({"image_size": "28"}, r"image_size must be"),
        ({"in_channels": 2}, r"takes 1 or 3 input channels; got 2"),
        ({"num_classes": 0}, r"num_classes must be a positive integer"),
        ({"mean": (0.5, 0.5)}, r"mean has 2 value\(s\) but the model takes 1 channel"),
        ({"std": (0.0,)}, r"std values must all be > 0"),
        ({"widht": 2.0}, r"unknown option 'widht' for stdcnn; did you mean 'width'"),
        ({"name": "lenet", "width": 2.0}, r"lenet takes no options"),
        ({"width": -1.0}, r"width must be a number > 0"),
        ({"name": "gcnn-c4", "width": 0}, r"width must be a number > 0"),
    ],
)
def test_user_errors(kwargs: dict, match: str) -> None:
    args = {"name": "stdcnn", "in_channels": 1, "num_classes": 10, "image_size": 28}
    args.update(kwargs)
    with pytest.raises(UserError, match=match) as info:
        build_model(
            args.pop("name"),
            args.pop("in_channels"),
            args.pop("num_classes"),
            args.pop("image_size"),
            **args,
        )
    assert "\n" not in str(info.value)


def test_unknown_spec_name_raises_user_error() -> None:
    with pytest.raises(UserError, match="did you mean 'resnet18'"):
        get_model_spec("resnet-18")


def test_import_does_not_load_e2cnn() -> None:
    code = "import sys, trainables.models; assert 'e2cnn' not in sys.modules"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_building_a_gcnn_does_not_pass_on_e2cnns_uint8_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model("gcnn-c4", 1, 10, 28, width=0.25)
    assert not [w for w in caught if "uint8" in str(w.message)]
