"""Datasets: the root folder, offline fallbacks, clear errors, and the in-memory loader."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
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
    shakespeare,
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


def test_official_cifar10_files_that_fail_their_checksum_are_reported(
    tmp_path: Path, offline: None
) -> None:
    official = tmp_path / "cifar-10-batches-py"
    official.mkdir()
    for name in data.CIFAR10_FILES:
        (official / name).write_bytes(b"not the official file")
    with pytest.raises(DatasetCorruptError) as caught:
        cifar10(train=False, root=tmp_path, verbose=False)
    message = str(caught.value)
    assert str(official) in message and "delete the folder" in message


def test_an_incomplete_official_cifar10_folder_falls_back_to_the_image_copy(
    tmp_path: Path, offline: None
) -> None:
    official = tmp_path / "cifar-10-batches-py"
    official.mkdir()
    (official / "test_batch").write_bytes(b"")  # one file of seven: not the official layout
    with pytest.raises(DatasetUnavailableError, match="cifar10-jpeg/test/"):
        cifar10(train=False, root=tmp_path, verbose=False)


def test_the_layout_files_are_the_official_names() -> None:
    assert data.MNIST_FILES == (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    assert len(data.CIFAR10_FILES) == 7 and "batches.meta" in data.CIFAR10_FILES


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


@pytest.fixture
def small_cifar(tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 20-image CIFAR-10 test split as an image-folder copy, accepted as complete."""
    _fake_cifar_folder(tmp_path, CIFAR10_CLASSES, per_class=2)
    monkeypatch.setitem(data._SPLIT_SIZES, ("cifar10", False), 20)
    return tmp_path


def _cache_file(root: Path) -> Path:
    return data._cache_path(root, "cifar10", train=False)


def _rebuild_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Rebuilding")]


def test_truncated_jpeg_is_reported_with_its_file_and_the_fix(small_cifar: Path) -> None:
    broken = small_cifar / "cifar10-jpeg" / "test" / "cat" / "0001.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(DatasetCorruptError) as caught:
        load_tensors("cifar10", train=False, root=small_cifar)
    message = str(caught.value)
    assert str(broken) in message and "Image is incomplete or truncated" in message
    assert "decode_jpeg" not in message  # torchvision's internal prefix is gone
    assert "unpack it again" in message and f"delete {small_cifar / 'cifar10-jpeg'}" in message
    assert not _cache_file(small_cifar).exists()


def test_empty_image_file_is_reported_as_corrupt(small_cifar: Path) -> None:
    (small_cifar / "cifar10-jpeg" / "test" / "dog" / "0000.jpg").write_bytes(b"")
    with pytest.raises(DatasetCorruptError, match=r"dog.0000\.jpg could not be decoded"):
        load_tensors("cifar10", train=False, root=small_cifar)


def test_cache_is_written_atomically_and_then_used(
    small_cifar: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = small_cifar / "cnnbook-cache" / "cifar10-test-uint8.pt"
    legacy.parent.mkdir()
    legacy.write_bytes(b"a cache of an earlier version")
    images, labels = load_tensors("cifar10", train=False, root=small_cifar)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [label for label in range(10) for _ in range(2)]
    assert sorted(p.name for p in legacy.parent.iterdir()) == [_cache_file(small_cifar).name]
    umask = os.umask(0o022)
    os.umask(umask)
    assert _cache_file(small_cifar).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert not _rebuild_lines(capsys.readouterr().out)  # a first build is silent

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(data, "decode_image", no_decoding)
    cached_images, cached_labels = load_tensors("cifar10", train=False, root=small_cifar)
    assert torch.equal(cached_images, images) and torch.equal(cached_labels, labels)
    assert not _rebuild_lines(capsys.readouterr().out)


def test_interrupted_cache_save_leaves_no_truncated_file(
    small_cifar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = torch.save

    def interrupted(payload: object, file: object) -> None:
        real_save(payload, file)
        file.truncate(100)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_tensors("cifar10", train=False, root=small_cifar)
    assert list((small_cifar / "cnnbook-cache").iterdir()) == []  # no cache, no temporary file
    monkeypatch.setattr(torch, "save", real_save)
    images, _ = load_tensors("cifar10", train=False, root=small_cifar)
    assert images.shape == (20, 3, 32, 32)


def _spoil_truncated(cache: Path) -> None:
    cache.write_bytes(cache.read_bytes()[:1000])


def _spoil_payload(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def spoil(cache: Path) -> None:
        payload = torch.load(cache, weights_only=True)
        change(payload)
        torch.save(payload, cache)

    return spoil


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_spoil_truncated, "the file is unreadable"),
        (lambda cache: cache.write_bytes(b""), "the file is unreadable"),
        (_spoil_payload(lambda p: p.update(images=p["images"][:, :, :16])), "have shape"),
        (_spoil_payload(lambda p: p.update(images=p["images"].float())), "not a uint8 tensor"),
        (_spoil_payload(lambda p: p.update(labels=p["labels"][:-1])), "19 labels for 20 images"),
        (_spoil_payload(lambda p: p["labels"].__setitem__(0, 10)), "outside 0..9"),
        (_spoil_payload(lambda p: p["labels"].__setitem__(0, 9)), "differ from the folder's"),
        (_spoil_payload(lambda p: p.update(source="/elsewhere/test")), "another copy (source"),
        (_spoil_payload(lambda p: p.pop("source")), "does not hold the expected"),
    ],
    ids=[
        "truncated",
        "empty",
        "wrong-shape",
        "wrong-dtype",
        "label-count",
        "label-range",
        "other-labels",
        "other-source",
        "no-source",
    ],
)
def test_inconsistent_cache_is_rebuilt_with_one_line(
    small_cifar: Path,
    capsys: pytest.CaptureFixture[str],
    spoil: Callable[[Path], None],
    reason: str,
) -> None:
    images, labels = load_tensors("cifar10", train=False, root=small_cifar)
    spoil(_cache_file(small_cifar))
    capsys.readouterr()
    again, again_labels = load_tensors("cifar10", train=False, root=small_cifar)
    assert torch.equal(again, images) and torch.equal(again_labels, labels)
    lines = _rebuild_lines(capsys.readouterr().out)
    assert len(lines) == 1 and reason in lines[0], lines
    assert str(_cache_file(small_cifar)) in lines[0]
    load_tensors("cifar10", train=False, root=small_cifar)  # the rebuilt cache is good
    assert not _rebuild_lines(capsys.readouterr().out)


def test_cache_of_another_copy_is_rebuilt(
    small_cifar: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    load_tensors("cifar10", train=False, root=small_cifar)
    # The same files and cache under another root: the cache names the old folder.
    moved = tmp_path_factory.mktemp("moved") / "data"
    shutil.copytree(small_cifar, moved)
    capsys.readouterr()
    load_tensors("cifar10", train=False, root=moved)
    (line,) = _rebuild_lines(capsys.readouterr().out)
    assert "another copy (source" in line and str(small_cifar) in line
    # A copy replaced in place by different images (same names, other sizes) is noticed too.
    image = moved / "cifar10-jpeg" / "test" / "frog" / "0000.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(image)
    images, _ = load_tensors("cifar10", train=False, root=moved)
    (line,) = _rebuild_lines(capsys.readouterr().out)
    assert "another copy (bytes" in line
    frog = CIFAR10_CLASSES.index("frog") * 2
    assert images[frog].float().std() > 20  # the new, noisy image, not the cached plain one


# --- Chapter 18: the Shakespeare corpus -------------------------------------------------------

SPEECH = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_shakespeare_missing_offline_is_one_clear_error(tmp_path: Path, offline: None) -> None:
    with pytest.raises(DatasetUnavailableError) as caught:
        shakespeare(root=tmp_path)
    message = str(caught.value)
    assert "The Shakespeare corpus is not available" in message
    assert "tinyshakespeare/input.txt" in message and "shakespeare/input.txt" in message
    assert str(tmp_path) in message and "name resolution" in message
    assert "set CNNBOOK_DATA" in message and data.SHAKESPEARE_URL in message
    assert not (tmp_path / "tinyshakespeare").exists()  # a failed download leaves nothing


def test_shakespeare_without_download_names_the_reason(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        shakespeare(root=tmp_path, download=False)


def test_shakespeare_offline_copy_is_read_and_named(
    tmp_path: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_text(SPEECH)
    corpus = shakespeare(root=tmp_path)
    assert corpus.text == SPEECH and corpus.path == tmp_path / "shakespeare" / "input.txt"
    assert corpus.source.startswith("offline copy")
    assert f"{len(SPEECH):,} characters; the original has 1,115,394" in corpus.source
    assert capsys.readouterr().out == f"Shakespeare source: {corpus.source}\n"
    shakespeare(root=tmp_path, verbose=False)
    assert capsys.readouterr().out == ""


def test_shakespeare_download_is_used_and_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_download(url: str, root: str, filename: str, **kwargs: object) -> None:
        calls.append(url)
        (Path(root) / filename).write_text("x" * data.SHAKESPEARE_LENGTH)

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_text(SPEECH)
    corpus = shakespeare(root=tmp_path, verbose=False)
    assert calls == [data.SHAKESPEARE_URL]
    assert corpus.path == tmp_path / "tinyshakespeare" / "input.txt"
    assert corpus.source.startswith("original tiny-shakespeare file")
    assert "1,115,394 characters, the original's length" in corpus.source
    assert [p.name for p in corpus.path.parent.iterdir()] == ["input.txt"]  # no temporary left
    shakespeare(root=tmp_path, verbose=False)
    assert len(calls) == 1  # already on disk: not downloaded again


def test_shakespeare_download_of_another_length_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_download(url: str, root: str, filename: str, **kwargs: object) -> None:
        (Path(root) / filename).write_text(SPEECH)

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download)
    corpus = shakespeare(root=tmp_path, verbose=False)
    assert f"{len(SPEECH):,} characters; the original has 1,115,394" in corpus.source


@pytest.mark.parametrize("content", [b"", b"  \n", b"\xff\xfe\x00bad"])
def test_shakespeare_unreadable_or_empty_copy_is_corrupt(
    tmp_path: Path, offline: None, content: bytes
) -> None:
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_bytes(content)
    with pytest.raises(DatasetCorruptError, match="input.txt"):
        shakespeare(root=tmp_path)


@pytest.mark.skipif(
    not (data_root() / "shakespeare" / "input.txt").is_file(),
    reason="the data root (CNNBOOK_DATA) holds no Shakespeare copy",
)
def test_real_shakespeare_copy(offline: None) -> None:
    corpus = shakespeare(verbose=False)
    assert corpus.text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    assert len(corpus.text) > 1_000_000
