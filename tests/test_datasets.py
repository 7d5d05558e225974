"""Tests for trainables.datasets: no network, no GPU.

Real datasets are exercised through torchvision's own classes on tiny files that the tests write
in the exact on-disk formats torchvision reads.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.cifar
import torchvision.datasets.mnist

from trainables import datasets
from trainables.datasets import (
    DatasetInfo,
    ImageDataset,
    dataset_info,
    dataset_options,
    iterate_batches,
    list_datasets,
    load_dataset,
)
from trainables.errors import UserError

SMALL = {"n_train": 500, "n_test": 100}


# --------------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_builtin_datasets() -> None:
    assert {"synthetic-digits", "mnist", "fashion-mnist", "cifar10"} <= set(list_datasets())
    assert list_datasets() == sorted(list_datasets())


def test_dataset_info_without_loading() -> None:
    info = dataset_info("cifar10")
    assert info.shape == (3, 32, 32)
    assert info.eps_scale == pytest.approx(8 / 255)
    assert (info.pgd_steps, info.pgd_step_size) == (10, pytest.approx(2 / 255))
    mnist = dataset_info("MNIST")  # case-insensitive
    assert (mnist.eps_scale, mnist.pgd_steps, mnist.pgd_step_size) == (0.3, 40, 0.01)
    assert dataset_info("fashion_mnist").name == "fashion-mnist"
    for name in list_datasets():
        assert len(dataset_info(name).classes) == dataset_info(name).num_classes


def test_unknown_dataset_suggests_a_name() -> None:
    with pytest.raises(UserError, match=r"unknown dataset 'mnsit'.*did you mean 'mnist'") as info:
        load_dataset("mnsit")
    assert "cifar10" in str(info.value) and "\n" not in str(info.value)


def test_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="'n_trian'.*did you mean 'n_train'"):
        load_dataset("synthetic-digits", tmp_path, n_trian=5)
    with pytest.raises(UserError, match="seed"):
        load_dataset("mnist", tmp_path, seed=1)
    with pytest.raises(UserError, match="download must be true or false"):
        load_dataset("mnist", tmp_path, download="yes")


@pytest.mark.parametrize(
    "option", [{"n_train": 0}, {"n_test": -1}, {"seed": -1}, {"n_train": 2.5}, {"n_train": True}]
)
def test_bad_option_values(tmp_path: Path, option: dict) -> None:
    with pytest.raises(UserError, match=next(iter(option))):
        load_dataset("synthetic-digits", tmp_path, cache=False, **option)


def test_dataset_options() -> None:
    assert dataset_options("synthetic-digits") == {
        "n_train": 10_000,
        "n_test": 2_000,
        "seed": 0,
        "cache": True,
    }
    assert dataset_options("mnist") == {"n_train": None, "n_test": None}


def test_register_dataset_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "_REGISTRY", dict(datasets._REGISTRY))
    info = DatasetInfo("tiny", 1, 2, 2, 0.1, 1, 0.1, (0.5,), (0.5,), ("a", "b"))

    @datasets.register_dataset("tiny", info)
    def _load(data_dir: Path, download: bool, *, n: int = 3) -> ImageDataset:
        images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
        labels = torch.zeros(n, dtype=torch.int64)
        return ImageDataset(info, images, labels, images, labels)

    assert load_dataset("tiny", n=4).num_train == 4
    with pytest.raises(ValueError, match="already registered"):
        datasets.register_dataset("tiny", info)(lambda data_dir, download: None)
    with pytest.raises(ValueError, match="differs"):
        datasets.register_dataset("other", info)


# --------------------------------------------------------------------------------------------------
# ImageDataset


def _tiny(n: int = 6) -> ImageDataset:
    info = dataset_info("synthetic-digits")
    images = torch.arange(n * 784, dtype=torch.int64).remainder(256).to(torch.uint8)
    labels = torch.arange(n) % 10
    return ImageDataset(info, images.view(n, 1, 28, 28), labels, images.view(n, 1, 28, 28), labels)


def test_image_dataset_validates() -> None:
    ds = _tiny()
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(
            ds.info, ds.train_images.float(), ds.train_labels, ds.test_images, ds.test_labels
        )
    with pytest.raises(ValueError, match="per image"):
        ImageDataset(
            ds.info,
            ds.train_images.view(6, 1, 14, 56),
            ds.train_labels,
            ds.test_images,
            ds.test_labels,
        )
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(ds.info, ds.train_images, ds.train_labels[:3], ds.test_images, ds.test_labels)
    with pytest.raises(ValueError, match="outside"):
        ImageDataset(ds.info, ds.train_images, ds.train_labels + 5, ds.test_images, ds.test_labels)
    assert "6 train" in repr(ds)


def test_image_dataset_to_and_subset() -> None:
    ds = _tiny()
    assert ds.to("cpu") is ds
    sub = ds.subset(4, 2)
    assert (sub.num_train, sub.num_test) == (4, 2)
    assert torch.equal(sub.train_images, ds.train_images[:4])
    assert ds.subset() is ds
    # subset cuts by the train_size / test_size settings: the message names the setting.
    with pytest.raises(UserError) as info:
        ds.subset(7)
    assert str(info.value) == (
        "train_size 7: synthetic-digits has only 6 training images; "
        "set train_size (dataset.train_size in a job spec) to at most 6"
    )
    with pytest.raises(UserError, match=r"^test_size 9: .* only 6 test images; set test_size "):
        ds.subset(2, 9)


# --------------------------------------------------------------------------------------------------
# Synthetic digits


@pytest.fixture(scope="module")
def synthetic() -> ImageDataset:
    return datasets.generate_synthetic_digits(1_000, 200, seed=0)


def test_synthetic_shapes_dtypes_labels(synthetic: ImageDataset) -> None:
    assert synthetic.train_images.shape == (1_000, 1, 28, 28)
    assert synthetic.test_images.shape == (200, 1, 28, 28)
    assert synthetic.train_images.dtype == torch.uint8
    assert synthetic.train_labels.dtype == torch.int64
    for labels in (synthetic.train_labels, synthetic.test_labels):
        counts = torch.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.min() == counts.max()  # balanced, all present
    # MNIST-like: white ink on a black background, strokes saturated.
    images = synthetic.train_images.float() / 255
    assert images[..., :2, :].mean() < 0.05
    assert (images.amax((1, 2, 3)) > 0.95).all()
    mean, std = synthetic.info.mean[0], synthetic.info.std[0]
    assert images.mean().item() == pytest.approx(mean, abs=0.02)
    assert images.std().item() == pytest.approx(std, abs=0.02)


def test_synthetic_seeds(synthetic: ImageDataset) -> None:
    again = datasets.generate_synthetic_digits(1_000, 200, seed=0)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(again, key), getattr(synthetic, key))
    other = datasets.generate_synthetic_digits(1_000, 200, seed=1)
    assert not torch.equal(other.train_images, synthetic.train_images)
    assert not torch.equal(other.test_images, synthetic.test_images)
    # Train and test come from different draws.
    assert not torch.equal(synthetic.test_images, synthetic.train_images[:200])


def test_synthetic_orientation_matters(synthetic: ImageDataset) -> None:
    """A 6 turned by 180 degrees looks like a 9, not like a 6: rotations are not augmented away."""
    images = synthetic.train_images.float() / 255
    means = torch.stack([images[synthetic.train_labels == c].mean(0) for c in range(10)])
    six_turned = torch.rot90(means[6], 2, (1, 2))
    assert (six_turned - means[9]).norm() < 0.6 * (six_turned - means[6]).norm()
    nine_turned = torch.rot90(means[9], 2, (1, 2))
    assert (nine_turned - means[6]).norm() < 0.6 * (nine_turned - means[9]).norm()


def test_synthetic_cache_created_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic: ImageDataset
) -> None:
    first = load_dataset("synthetic-digits", tmp_path, n_train=1_000, n_test=200)
    path = datasets.synthetic_cache_path(tmp_path, 1_000, 200, 0)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    assert torch.equal(first.train_images, synthetic.train_images)

    def fail(*args: object, **kwargs: object) -> ImageDataset:
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(datasets, "generate_synthetic_digits", fail)
    mtime = path.stat().st_mtime_ns
    second = load_dataset("synthetic-digits", tmp_path, n_train=1_000, n_test=200)
    assert path.stat().st_mtime_ns == mtime
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(second, key), getattr(synthetic, key))


def test_synthetic_corrupt_cache_is_regenerated(tmp_path: Path) -> None:
    path = datasets.synthetic_cache_path(tmp_path, 500, 100, 3)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    ds = load_dataset("synthetic-digits", tmp_path, seed=3, **SMALL)
    assert ds.num_train == 500
    assert torch.equal(torch.load(path, weights_only=True)["train_images"], ds.train_images)


def test_synthetic_default_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "data"))
    assert datasets.default_data_dir() == tmp_path / "data"
    load_dataset("synthetic-digits", seed=5, **SMALL)
    assert datasets.synthetic_cache_path(tmp_path / "data", 500, 100, 5).is_file()


def test_synthetic_without_cache_writes_nothing(tmp_path: Path) -> None:
    ds = load_dataset("synthetic-digits", tmp_path, cache=False, **SMALL)
    assert ds.num_test == 100
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: tiny IDX files in torchvision's layout


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: big-endian magic 0x000008NN (uint8 data, NN dimensions), the sizes, the bytes."""
    assert array.dtype == np.uint8
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _write_mnist_like(root: Path, folder: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    raw = root / folder / "raw"  # torchvision reads the uncompressed files here
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        _write_idx(raw / name, array)
    return arrays


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_like_round_trip(tmp_path: Path, name: str, folder: str) -> None:
    arrays = _write_mnist_like(tmp_path, folder, seed=len(name))
    ds = load_dataset(name, tmp_path)
    assert ds.info.name == name
    assert ds.train_images.shape == (20, 1, 28, 28) and ds.train_images.dtype == torch.uint8
    assert ds.train_labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train_labels.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.test_images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])

    sub = load_dataset(name, tmp_path, n_train=5, n_test=3)
    assert torch.equal(sub.train_images, ds.train_images[:5])
    with pytest.raises(UserError, match=rf"^n_train 21: {name} has only 20 training images; "):
        load_dataset(name, tmp_path, n_train=21)
    with pytest.raises(UserError, match="set n_test to at most 10$"):
        load_dataset(name, tmp_path, n_test=11)


def test_mnist_corrupt_file_is_user_error(tmp_path: Path) -> None:
    _write_mnist_like(tmp_path, "MNIST", seed=0)
    _write_idx(
        tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((20, 28), dtype=np.uint8)
    )  # 2-D: not an image file
    with pytest.raises(UserError, match="unreadable: train-images-idx3-ubyte is not a 3-D uint8"):
        load_dataset("mnist", tmp_path)


def _offline(calls: list[object]) -> object:
    """A stand-in for torchvision's download that records the call and fails like no network."""

    def download(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise URLError("network unreachable")

    return download


@pytest.mark.parametrize("download", [False, True])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda data: data[:5000], r"is truncated \(5000 of 15696 bytes\)"),
        (lambda data: data + b"\0" * 8, r"has the wrong size \(15704 bytes"),
    ],
)
def test_mnist_damaged_file_is_unreadable_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, download: bool, change, reason: str
) -> None:
    """Files that are there but damaged need replacing; download=true would not touch them."""
    calls: list[object] = []
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline(calls))
    _write_mnist_like(tmp_path, "MNIST", seed=0)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(UserError, match=f"train-images-idx3-ubyte {reason}") as info:
        load_dataset("mnist", tmp_path, download=download)
    message = str(info.value)
    assert message.startswith(f"mnist files in {tmp_path / 'MNIST' / 'raw'} are unreadable: ")
    assert message.endswith("replace them with the original files")
    assert "download" not in message and "not found" not in message and "\n" not in message
    assert calls == []  # torchvision does not download over files that exist


@pytest.mark.parametrize("download", [False, True])
def test_gzipped_mnist_files_need_unpacking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, download: bool
) -> None:
    """torchvision reads only the unpacked files; with download=true it would refetch the .gz."""
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline([]))
    _write_mnist_like(tmp_path, "FashionMNIST", seed=0)
    raw = tmp_path / "FashionMNIST" / "raw"
    for path in list(raw.iterdir()):
        (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    with pytest.raises(UserError) as info:
        load_dataset("fashion-mnist", tmp_path, download=download)
    message = str(info.value)
    assert f"fashion-mnist files in {raw} are gzipped (train-images-idx3-ubyte.gz, " in message
    assert message.endswith(f"unpack them in that folder (gunzip {raw}/*.gz)")
    assert "download" not in message and "\n" not in message
    for path in list(raw.iterdir()):  # following the advice works
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
    assert load_dataset("fashion-mnist", tmp_path).num_train == 20


def test_partly_missing_mnist_names_the_missing_file(tmp_path: Path) -> None:
    _write_mnist_like(tmp_path, "MNIST", seed=0)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        UserError, match=r"not found in .*raw \(missing t10k-labels-idx1-ubyte\); set download=true"
    ):
        load_dataset("mnist", tmp_path)


def test_failed_download_is_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    with pytest.raises(UserError, match="could not download mnist") as info:
        load_dataset("mnist", tmp_path, download=True)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# CIFAR-10: pickled batches in torchvision's layout


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar10(folder: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Tiny CIFAR-10 batches (4 images per training batch, 6 test images), as torchvision reads."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    batches: dict[str, tuple[np.ndarray, list[int]]] = {}
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 6)]:
        # Rows are the red, green and blue 32x32 planes, each row-major, as in the real files.
        # The real files were pickled by Python 2 with str keys (torchvision loads them with
        # encoding="latin1"), so str keys here match what torchvision reads.
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f, protocol=2)
    classes = list(dataset_info("cifar10").classes)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_vis": 3072}, f, protocol=2)
    return batches


def _accept_cifar10_files(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make torchvision's CIFAR-10 checksums those of the files now in ``folder``.

    torchvision verifies every file against the MD5 of the real CIFAR-10 release (in
    CIFAR10._check_integrity and again in _load_meta). Rather than switch the check off, point the
    class's checksum tables at the MD5s of the files written: the real integrity check still runs,
    and fails if a file is missing or changed afterwards.
    """
    cls = torchvision.datasets.CIFAR10
    train = [f"data_batch_{i}" for i in range(1, 6)]
    monkeypatch.setattr(cls, "train_list", [[n, _md5(folder / n)] for n in train])
    monkeypatch.setattr(cls, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})


def test_cifar10_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    batches = _write_cifar10(folder)
    _accept_cifar10_files(folder, monkeypatch)

    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(ds.train_images.reshape(20, 3072).numpy(), train)
    expected = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert ds.train_labels.tolist() == expected
    np.testing.assert_array_equal(ds.test_images.reshape(6, 3072).numpy(), batches["test_batch"][0])
    assert ds.test_labels.tolist() == batches["test_batch"][1]
    # Channel 0 of pixel (row 1, column 2) is byte 1 * 32 + 2 of the red plane.
    assert ds.train_images[0, 0, 1, 2] == train[0, 34]
    assert ds.train_images[0, 2, 1, 2] == train[0, 2048 + 34]


@pytest.mark.parametrize("download", [False, True])
def test_cifar10_checksum_failure_is_unreadable_not_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, download: bool
) -> None:
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", _offline([]))
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    _accept_cifar10_files(folder, monkeypatch)
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:-100])  # truncated after the checksums were taken
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", tmp_path, download=download)
    message = str(info.value)
    assert message.startswith(f"cifar10 files in {folder} are unreadable: data_batch_2 fails ")
    assert "torchvision's checksum" in message
    assert message.endswith("replace them with the original files")
    assert "download" not in message and "not found" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda data: data[: len(data) // 2], "pickle data was truncated"),
        (lambda data: b"not a pickle", "invalid load key"),
        (lambda data: b"", "Ran out of input"),  # EOFError
        (
            lambda data: pickle.dumps({"data": np.zeros((4, 3000), np.uint8), "labels": [0] * 4}),
            "has size 3000",  # ValueError: not 3072 bytes per image
        ),
        (lambda data: pickle.dumps({"labels": [0] * 4}), "'data'"),  # KeyError
    ],
)
def test_cifar10_corrupt_pickle_is_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content, reason: str
) -> None:
    """A batch that passes the checksum but cannot be unpickled is a one-line UserError."""
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    path = folder / "data_batch_1"
    path.write_bytes(content(path.read_bytes()))
    _accept_cifar10_files(folder, monkeypatch)
    with pytest.raises(UserError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert message.startswith(f"cifar10 files in {folder} are unreadable: ")
    assert reason in message and "download" not in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --------------------------------------------------------------------------------------------------
# Missing data


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_data_without_download(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as info:
        load_dataset(name, tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message
    assert "download=true" in message and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --------------------------------------------------------------------------------------------------
# iterate_batches


def _data(n: int = 103) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return images, torch.arange(n)


def test_iterate_batches_in_order() -> None:
    images, labels = _data()
    batches = list(iterate_batches(images, labels, 25))
    assert [len(y) for _, y in batches] == [25, 25, 25, 25, 3]
    x, y = batches[1]
    assert x.dtype == torch.float32 and x.shape == (25, 1, 2, 2)
    assert torch.equal(y, torch.arange(25, 50))
    assert torch.allclose(x[:, 0, 0, 0], torch.arange(25, 50).float() / 255)


def test_iterate_batches_shuffle_covers_each_sample_once() -> None:
    images, labels = _data()
    seen = []
    for x, y in iterate_batches(
        images, labels, 10, shuffle=True, generator=torch.Generator().manual_seed(0)
    ):
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)  # images stay with labels
        seen.append(y)
    order = torch.cat(seen)
    assert sorted(order.tolist()) == list(range(103))
    assert not torch.equal(order, torch.arange(103))


def test_iterate_batches_deterministic_with_seed() -> None:
    images, labels = _data()

    def order(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.cat(
            [y for _, y in iterate_batches(images, labels, 16, shuffle=True, generator=gen)]
        )

    assert torch.equal(order(7), order(7))
    assert not torch.equal(order(7), order(8))


def test_iterate_batches_drop_last() -> None:
    images, labels = _data()
    sizes = [len(y) for _, y in iterate_batches(images, labels, 25, shuffle=True, drop_last=True)]
    assert sizes == [25, 25, 25, 25]
    assert list(iterate_batches(images[:5], labels[:5], 10, drop_last=True)) == []


@pytest.mark.parametrize("batch_size", [0, -3])
def test_iterate_batches_rejects_bad_batch_size(batch_size: int) -> None:
    images, labels = _data()
    with pytest.raises(UserError, match="batch_size"):
        next(iterate_batches(images, labels, batch_size))


def test_iterate_batches_rejects_float_images() -> None:
    images, labels = _data()
    with pytest.raises(ValueError, match="uint8"):
        next(iterate_batches(images.float(), labels, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_iterate_batches_cuda_data_with_cpu_generator() -> None:
    images, labels = (t.cuda() for t in _data())
    gen = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(images, labels, 10, shuffle=True, generator=gen))
    assert all(x.is_cuda and y.is_cuda for x, y in batches)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(103))


def test_shared_dataset_round_trips_without_copying(tmp_path):
    import pickle

    dataset = load_dataset("synthetic-digits", tmp_path, n_train=64, n_test=16, seed=1)
    shared = dataset.to_shared()
    back = shared.to_dataset()
    assert torch.equal(back.train_images, dataset.train_images)
    assert torch.equal(back.test_labels, dataset.test_labels)
    assert back.train_images.data_ptr() == shared.train_images.__array_interface__["data"][0]
    # What the object store holds is plain numpy: Ray maps those zero-copy into workers.
    assert pickle.loads(pickle.dumps(shared)).to_dataset().info == dataset.info
