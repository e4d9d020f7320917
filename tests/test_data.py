"""Datasets: the root folder, offline fallbacks, clear errors, and the in-memory loader."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnbook import data
from cnnbook.data import (
    CIFAR10_CLASSES,
    DatasetCorruptError,
    DatasetUnavailableError,
    TensorLoader,
    cifar10,
    data_root,
    load_tensors,
    mnist,
    random_subset,
    validation_split,
)

from .conftest import real_data_root


def test_data_root_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNNBOOK_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("CNNBOOK_DATA")
    assert data_root() == Path("~/.cache/cnnbook/data").expanduser()


def test_mnist_missing_offline_is_one_clear_error(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DatasetUnavailableError) as caught:
        mnist(train=False, root=tmp_path)
    message = str(caught.value)
    assert "MNIST is not available" in message
    assert str(tmp_path) in message  # the folder searched
    assert (
        "downloading it failed" in message and "name resolution" in message
    )  # why the download failed
    assert "set CNNBOOK_DATA" in message and "connect to the internet" in message  # how to fix it


def test_cifar10_missing_offline_is_one_clear_error(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DatasetUnavailableError) as caught:
        cifar10(train=True, root=tmp_path)
    message = str(caught.value)
    assert "CIFAR-10 is not available" in message
    assert "cifar10-jpeg/train/" in message and str(tmp_path) in message
    assert "URLError" in message and "unpack an image-folder copy" in message


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array in MNIST's IDX format (uint8 data)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, images: int, labels: int, size: int = 28) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte", np.zeros((images, size, size)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.zeros(labels))


def test_mnist_with_too_few_images_is_reported_as_corrupt(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, images=100, labels=100)
    with pytest.raises(
        DatasetCorruptError, match=r"MNIST test split .* looks corrupt: 100 images instead of 10000"
    ):
        mnist(train=False, root=tmp_path)


def test_mnist_with_mismatched_labels_is_reported_as_corrupt(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, images=10_000, labels=9_999)
    with pytest.raises(DatasetCorruptError, match=r"9999 labels for 10000 images"):
        mnist(train=False, root=tmp_path)


def test_truncated_mnist_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, images=10, labels=10)
    image_file = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    image_file.write_bytes(image_file.read_bytes()[:-100])
    with pytest.raises(DatasetCorruptError, match=r"could not be read .* truncated"):
        mnist(train=False, root=tmp_path)


def _fake_cifar_folder(root: Path, classes: list[str], per_class: int) -> None:
    for name in classes:
        folder = root / "cifar10-jpeg" / "test" / name
        folder.mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (32, 32), (index, 0, 0)).save(folder / f"{index:04d}.jpg")


def test_incomplete_cifar10_copy_is_reported_as_corrupt(tmp_path: Path, offline: None) -> None:
    _fake_cifar_folder(tmp_path, CIFAR10_CLASSES, per_class=2)
    with pytest.raises(
        DatasetCorruptError, match=r"CIFAR-10 test split .* 20 images instead of 10000"
    ):
        cifar10(train=False, root=tmp_path, verbose=False)


def test_cifar10_copy_with_wrong_classes_is_reported_as_corrupt(
    tmp_path: Path, offline: None
) -> None:
    _fake_cifar_folder(tmp_path, ["cats", "dogs"], per_class=1)
    with pytest.raises(
        DatasetCorruptError, match=r"class folders \['cats', 'dogs'\], expected exactly"
    ):
        cifar10(train=False, root=tmp_path, verbose=False)


def test_load_tensors_rejects_unknown_dataset() -> None:
    with pytest.raises(ValueError, match=r"knows 'mnist' and 'cifar10', not 'imagenet'"):
        load_tensors("imagenet")


needs_data = pytest.mark.skipif(
    real_data_root() is None, reason="CNNBOOK_DATA does not point at the datasets"
)


@needs_data
def test_real_mnist_in_memory() -> None:
    images, labels = load_tensors("mnist", train=False)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist()[:2] == [980, 1135]  # the official test set's counts


@needs_data
def test_real_cifar10_uses_a_named_source(
    capsys: pytest.CaptureFixture[str], offline: None
) -> None:
    dataset = cifar10(train=False)
    assert "CIFAR-10 test source:" in capsys.readouterr().out
    assert len(dataset) == 10_000
    assert data.dataset_source(dataset).startswith(("official files", "offline JPEG copy"))
    image, label = dataset[0]
    assert image.size == (32, 32) and 0 <= label < 10


def test_tensor_loader_batches_and_scaling() -> None:
    images = torch.arange(10 * 1 * 2 * 2, dtype=torch.uint8).reshape(10, 1, 2, 2)
    labels = torch.arange(10)
    loader = TensorLoader(images, labels, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert batches[0][0].dtype == torch.float32
    assert torch.allclose(batches[0][0], images[:4].float() / 255)
    assert len(TensorLoader(images, labels, batch_size=4, drop_last=True)) == 2


def test_tensor_loader_shuffle_is_reproducible_with_a_generator() -> None:
    images = torch.zeros(20, 1, 1, 1, dtype=torch.uint8)
    labels = torch.arange(20)

    def order(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        loader = TensorLoader(images, labels, batch_size=5, shuffle=True, generator=generator)
        return torch.cat([y for _, y in loader]).tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(20))


def test_tensor_loader_applies_transform_to_whole_batch() -> None:
    images = torch.full((6, 3, 2, 2), 255, dtype=torch.uint8)
    seen: list[tuple[int, ...]] = []

    def transform(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape))
        return batch * 2

    inputs, _ = next(iter(TensorLoader(images, torch.zeros(6), batch_size=6, transform=transform)))
    assert seen == [(6, 3, 2, 2)] and torch.all(inputs == 2)


@pytest.mark.parametrize(
    ("images", "labels", "batch_size", "message"),
    [
        (torch.zeros(4, 2, 2, dtype=torch.uint8), torch.zeros(4), 2, r"shape \(N, C, H, W\)"),
        (torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), 2, r"4 images but 3 labels"),
        (
            torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
            torch.zeros(4),
            0,
            r"batch_size must be at least 1",
        ),
    ],
)
def test_tensor_loader_rejects_bad_input(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TensorLoader(images, labels, batch_size=batch_size)


class TestRandomSubset:
    def test_draws_distinct_images_from_every_class_reproducibly(self) -> None:
        labels = torch.arange(10).repeat_interleave(100)  # sorted by class, like the JPEG copy
        images = torch.arange(1000).view(1000, 1, 1, 1)
        sub_images, sub_labels = random_subset(images, labels, 200, seed=3)
        assert sub_images.shape == (200, 1, 1, 1)
        assert sub_images.flatten().unique().numel() == 200  # no image twice
        assert torch.equal(labels[sub_images.flatten()], sub_labels)  # pairs stay together
        assert set(sub_labels.tolist()) == set(range(10))
        again, _ = random_subset(images, labels, 200, seed=3)
        assert torch.equal(sub_images, again)

    @pytest.mark.parametrize("count", [0, 1001])
    def test_rejects_a_count_out_of_range(self, count: int) -> None:
        with pytest.raises(ValueError, match="count must be between 1 and the number of images"):
            random_subset(torch.zeros(1000, 1, 1, 1), torch.zeros(1000), count)

    def test_rejects_labels_that_do_not_match_the_images(self) -> None:
        with pytest.raises(ValueError, match="1000 images but 999 labels"):
            random_subset(torch.zeros(1000, 1, 1, 1), torch.zeros(999), 10)


def test_validation_split_is_stratified_disjoint_and_seeded() -> None:
    labels = torch.arange(10).repeat_interleave(torch.arange(10, 110, 10))  # 10, 20, ..., 100
    images = torch.arange(len(labels)).view(-1, 1, 1, 1)
    train_x, train_y, val_x, val_y = validation_split(images, labels, count=55, seed=3)
    assert len(val_x) == 55 and len(train_x) == len(labels) - 55
    # Each class keeps its share: 10% of every class here.
    assert torch.bincount(val_y, minlength=10).tolist() == list(range(1, 11))
    seen = torch.cat([train_x.flatten(), val_x.flatten()]).sort().values
    assert torch.equal(seen, torch.arange(len(labels)))
    assert torch.equal(labels[val_x.flatten()], val_y)
    again = validation_split(images, labels, count=55, seed=3)
    assert torch.equal(again[2], val_x)
    other = validation_split(images, labels, count=55, seed=4)
    assert not torch.equal(other[2], val_x)


def test_validation_split_hits_the_count_exactly_with_uneven_shares() -> None:
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3)
    images = torch.zeros(len(labels), 1, 2, 2)
    for count in range(1, len(labels)):
        _, _, val_x, val_y = validation_split(images, labels, count=count)
        assert len(val_x) == count
        assert (torch.bincount(val_y, minlength=3) <= torch.tensor([7, 5, 3])).all()


@pytest.mark.parametrize("count", [0, 15, -1])
def test_validation_split_refuses_bad_counts(count: int) -> None:
    labels = torch.zeros(15, dtype=torch.int64)
    with pytest.raises(ValueError, match="count must be between 1"):
        validation_split(torch.zeros(15, 1, 2, 2), labels, count=count)


def test_validation_split_refuses_mismatched_labels() -> None:
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        validation_split(torch.zeros(10, 1, 2, 2), torch.zeros(9, dtype=torch.int64), count=2)
