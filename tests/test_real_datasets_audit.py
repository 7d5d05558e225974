"""The real datasets as a user who fetched them by hand meets them: no network, no GPU.

Tiny MNIST, Fashion-MNIST and CIFAR-10 files are written in the real on-disk formats (as in
test_datasets.py) and read through the real torchvision loaders, through ``load_dataset`` and
through the CLI. Each mistake a user makes with the files or ``data_dir`` must end in one line
that says what to change (exit code 2 from the CLI), leave nothing behind, and data that is not
the dataset asked for must not pass unnoticed.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import pickle
import shutil
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.cifar
import torchvision.datasets.mnist

from trainables.datasets import dataset_info, load_dataset
from trainables.errors import UserError
from tune_jobs.cli import main

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: big-endian magic 0x000008NN (uint8 data, NN dimensions), the sizes, the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def _mnist_images(rng: np.random.Generator, n: int, mean: float) -> np.ndarray:
    """Ink-on-black images with about ``mean`` as their mean pixel (in [0, 1])."""
    return ((rng.random((n, 28, 28)) < mean) * 255).astype(np.uint8)


def _write_mnist_like(
    root: Path, name: str = "mnist", n_train: int = 30, n_test: int = 12, mean: float | None = None
) -> dict[str, np.ndarray]:
    """Tiny IDX files in ``<root>/<folder>/raw``, with the dataset's own mean pixel by default.

    Train and test differ in size and in their labels (train 0..9 cycling, test 9..0), so a
    swap of the splits cannot go unseen.
    """
    rng = np.random.default_rng(len(name))
    mean = dataset_info(name).mean[0] if mean is None else mean
    arrays = {
        "train-images-idx3-ubyte": _mnist_images(rng, n_train, mean),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": _mnist_images(rng, n_test, mean),
        "t10k-labels-idx1-ubyte": (9 - np.arange(n_test) % 10).astype(np.uint8),
    }
    raw = root / FOLDERS[name] / "raw"
    raw.mkdir(parents=True)
    for file, array in arrays.items():
        _write_idx(raw / file, array)
    return arrays


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_cifar10(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple]:
    """Tiny CIFAR-10 batches (6 images per training batch, 8 test images) that torchvision
    accepts: its checksum tables are pointed at these files' MD5s (the check still runs)."""
    rng = np.random.default_rng(3)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches: dict[str, tuple] = {}
    for name, n in [*((f"data_batch_{i}", 6) for i in range(1, 6)), ("test_batch", 8)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        classes = list(dataset_info("cifar10").classes)
        pickle.dump({"label_names": classes, "num_vis": 3072}, f, protocol=2)
    cls = torchvision.datasets.CIFAR10
    train = [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(cls, "train_list", train)
    monkeypatch.setattr(cls, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})
    return batches


def _offline(*args: object, **kwargs: object) -> None:
    raise URLError("network unreachable")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No download can succeed (as here): torchvision's downloads fail like a lost network."""
    for module in (torchvision.datasets.mnist, torchvision.datasets.cifar):
        monkeypatch.setattr(module, "download_and_extract_archive", _offline)


def _user_error(name: str, data_dir: object, **kwargs: object) -> str:
    with pytest.raises(UserError) as info:
        load_dataset(name, data_dir, **kwargs)
    message = str(info.value)
    assert "\n" not in message and info.value.__cause__ is None
    return message


# --------------------------------------------------------------------------------------------------
# What comes out is the bytes that went in


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_like_images_and_labels_are_the_files_bytes(tmp_path: Path, name: str) -> None:
    arrays = _write_mnist_like(tmp_path, name)
    ds = load_dataset(name, tmp_path)
    assert (ds.num_train, ds.num_test) == (30, 12)  # train is the train files, not swapped
    assert ds.train_images.shape == (30, 1, 28, 28) and ds.train_images.dtype == torch.uint8
    assert ds.train_labels.dtype == torch.int64 and ds.test_labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.train_images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.test_images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.train_labels.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.train_labels.min() >= 0 and ds.test_labels.max() < ds.info.num_classes
    # the images a trial trains on: float in [0, 1]
    x = ds.train_images[:4].float().div(255)
    assert x.min() >= 0 and x.max() <= 1 and set(x.unique().tolist()) <= {0.0, 1.0}


def test_cifar10_images_are_channels_first_from_the_planes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _write_cifar10(tmp_path, monkeypatch)
    ds = load_dataset("cifar10", tmp_path, n_train=25, n_test=8)
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert ds.train_images.shape == (25, 3, 32, 32) and ds.train_images.is_contiguous()
    np.testing.assert_array_equal(ds.train_images.reshape(25, 3072).numpy(), train[:25])
    np.testing.assert_array_equal(ds.test_images.reshape(8, 3072).numpy(), batches["test_batch"][0])
    assert ds.test_labels.tolist() == batches["test_batch"][1]
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])[:25]
    assert ds.train_labels.tolist() == labels
    # blue plane, row 31, column 0 of the 7th image (in the second batch file)
    assert ds.train_images[6, 2, 31, 0] == batches["data_batch_2"][0][0, 2048 + 31 * 32]


# --------------------------------------------------------------------------------------------------
# data_dir one folder off: the message names the data_dir that works


@pytest.mark.parametrize(
    ("name", "given"),
    [
        ("mnist", "data/MNIST"),  # the dataset's folder
        ("mnist", "data/MNIST/raw"),  # the folder of the files
        ("fashion-mnist", "data/FashionMNIST/raw"),
        ("mnist", "."),  # the parent of the data directory
        ("cifar10", "data/cifar-10-batches-py"),
        ("cifar10", "data/MNIST"),  # CIFAR-10 pointed at the MNIST folder next to it
    ],
)
def test_data_dir_next_to_the_right_one_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, given: str
) -> None:
    data = tmp_path / "data"
    _write_mnist_like(data, "mnist")
    _write_mnist_like(data, "fashion-mnist")
    _write_cifar10(data, monkeypatch)
    message = _user_error(name, (tmp_path / given).resolve())
    assert message.endswith(f"has it; set data_dir (dataset.data_dir in a job spec) to {data}")
    assert load_dataset(name, data).num_train == 30  # following the advice works


def test_files_loose_in_the_data_dir_say_where_to_move_them(tmp_path: Path) -> None:
    _write_mnist_like(tmp_path / "downloads", "mnist")
    raw = tmp_path / "downloads" / "MNIST" / "raw"
    for file in MNIST_FILES:  # unpacked from the .gz files straight into data_dir/MNIST
        (raw / file).rename(raw.parent / file)
    raw.rmdir()
    message = _user_error("mnist", tmp_path / "downloads")
    assert message == (
        f"the mnist files are in {raw.parent}, but torchvision reads them from {raw}; "
        "move them into that folder"
    )


def test_cifar10_archive_not_extracted_says_extract_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_cifar10(tmp_path / "build", monkeypatch)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(tmp_path / "build")
    message = _user_error("cifar10", tmp_path)
    assert message.startswith(f"cifar10 in {tmp_path} is still packed in cifar-10-python.tar.gz")
    assert f"(tar xzf {archive} -C {tmp_path})" in message
    with tarfile.open(archive) as tar:  # following the advice works
        tar.extractall(tmp_path, filter="data")
    assert load_dataset("cifar10", tmp_path).num_test == 8


def test_gzipped_files_with_one_missing_say_both(tmp_path: Path) -> None:
    _write_mnist_like(tmp_path, "mnist")
    raw = tmp_path / "MNIST" / "raw"
    for file in MNIST_FILES[:3]:
        (raw / f"{file}.gz").write_bytes(gzip.compress((raw / file).read_bytes()))
        (raw / file).unlink()
    (raw / MNIST_FILES[3]).unlink()
    message = _user_error("mnist", tmp_path)
    assert message.startswith(
        f"mnist files in {raw} are incomplete: t10k-labels-idx1-ubyte missing "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        "still gzipped)"
    )


def test_data_dir_that_is_a_file_or_empty_or_absent(tmp_path: Path) -> None:
    file = tmp_path / "mnist.npz"
    file.write_bytes(b"")
    assert _user_error("mnist", file).startswith(f"data_dir {file} is a file, not a directory;")
    assert _user_error("cifar10", "").startswith("data_dir is empty; ")
    assert f"({tmp_path / 'nowhere'} does not exist)" in _user_error("mnist", tmp_path / "nowhere")


def test_relative_data_dir_is_reported_as_the_folder_it_names_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data_dir is read from the current directory; the message shows which."""
    _write_mnist_like(tmp_path / "project" / "data", "mnist")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert load_dataset("mnist", "data").num_train == 30
    monkeypatch.chdir(tmp_path / "elsewhere")
    message = _user_error("mnist", "data")
    assert message.startswith(f"mnist not found in {tmp_path / 'elsewhere' / 'data' / 'MNIST'}")


def test_data_dir_with_a_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _write_mnist_like(tmp_path / "datasets", "fashion-mnist")
    assert load_dataset("fashion-mnist", "~/datasets").num_test == 12


# --------------------------------------------------------------------------------------------------
# Downloads that fail leave nothing behind


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_failed_download_leaves_no_empty_folders(tmp_path: Path, offline: None, name: str) -> None:
    message = _user_error(name, tmp_path / "new" / "data", download=True)
    assert message.startswith(f"could not download {name} into {tmp_path / 'new' / 'data'}")
    assert list(tmp_path.iterdir()) == []


def test_failed_mnist_download_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's MNIST says "Error downloading x.gz:" on one line and the cause on others."""

    def unreachable(url: str, *args: object, **kwargs: object) -> None:
        raise URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", unreachable)
    message = _user_error("mnist", tmp_path, download=True)
    assert "Error downloading train-images-idx3-ubyte.gz: Tried " in message
    assert "network unreachable" in message and ":;" not in message


# --------------------------------------------------------------------------------------------------
# Another dataset's files under this one's names


@pytest.mark.parametrize(
    ("name", "other"), [("mnist", "fashion-mnist"), ("fashion-mnist", "mnist")]
)
def test_the_other_datasets_files_are_not_taken_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, other: str
) -> None:
    """MNIST and Fashion-MNIST files have the same names: one copied for the other is noticed."""
    _write_mnist_like(tmp_path, name, n_train=400, mean=dataset_info(other).mean[0])
    with caplog.at_level(logging.WARNING, logger="trainables.datasets"):
        load_dataset(name, tmp_path)
    (record,) = caplog.records
    assert f"the {name} training images in {tmp_path / FOLDERS[name] / 'raw'}" in record.message
    assert f"they look like {other}'s" in record.message


def test_the_right_files_load_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_mnist_like(tmp_path, "mnist", n_train=400)
    with caplog.at_level(logging.WARNING, logger="trainables.datasets"):
        load_dataset("mnist", tmp_path)
    assert caplog.records == []


# --------------------------------------------------------------------------------------------------
# Through the CLI: exit code 2 and one line, nothing written


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (["dataset=mnist", "data_dir={data}/MNIST/raw"], "set data_dir (dataset.data_dir in a "),
        (["dataset=cifar10", "data_dir={data}/MNIST"], "set data_dir (dataset.data_dir in a "),
        (["dataset=minst", "data_dir={data}"], "did you mean 'mnist'?"),
        (["dataset=mnist", "data_dir={data}", "train_size=31"], "set train_size (dataset.tr"),
        (["dataset=cifar10", "data_dir={data}", "test_size=9"], "to at most 8"),
    ],
)
def test_cli_train_mistakes_exit_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    settings: list[str],
    expected: str,
) -> None:
    data = tmp_path / "data"
    _write_mnist_like(data, "mnist")
    _write_cifar10(data, monkeypatch)
    out = tmp_path / "out"
    args = [arg for s in settings for arg in ("--set", s.format(data=data))]
    assert main(["train", *args, "--set", "epochs=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cusp-tune: error: ") and expected in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_cli_train_on_each_real_dataset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    name: str,
) -> None:
    data = tmp_path / "data"
    _write_cifar10(data, monkeypatch) if name == "cifar10" else _write_mnist_like(data, name)
    monkeypatch.setenv("CUSP_TUNE_DATA", str(data))  # the README's other way to give data_dir
    fast = ["epochs=1", "model_width=0.25", "train_pgd_steps=1", "eval_pgd_steps=1"]
    fast += ["final_profiles=false", "device=cpu", f"dataset={name}"]
    out = tmp_path / "out"
    assert main(["train", *(a for s in fast for a in ("--set", s)), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"on {name} (30 images)" in captured.out
    assert (out / "trial.pt").is_file() and (out / "metrics.json").is_file()
