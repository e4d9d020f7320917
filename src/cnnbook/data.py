"""Datasets for the book: where they live, where they come from, and fast in-memory forms.

The dataset root is ``$CNNBOOK_DATA`` when set, else ``~/.cache/cnnbook/data``.
:func:`mnist` and :func:`cifar10` return torchvision datasets. Online, torchvision
downloads the official files into the root. Offline, the files must already be
there (MNIST in ``<root>/MNIST/raw/``; CIFAR-10 as the official
``<root>/cifar-10-batches-py/`` or as an image-folder copy in
``<root>/cifar10-jpeg/{train,test}/<class>/*.jpg``); each function says which
source it used, and raises :class:`DatasetUnavailableError` when there is none.

The per-channel statistics (``MNIST_MEAN``, ``CIFAR10_STD``, ...) and
:func:`normalize` standardise the pixels. For fast training, :func:`load_tensors` returns a whole split as one ``uint8``
tensor of shape ``(N, C, H, W)`` plus ``int64`` labels, and :class:`TensorLoader`
iterates over such tensors in batches, on the GPU when there is one.

:func:`shakespeare` returns the text corpus of the character language model
(the original "tiny shakespeare" file online, ``<root>/shakespeare/input.txt``
offline) with the source it came from.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.io import ImageReadMode, decode_image

ENV_VAR = "CNNBOOK_DATA"
DEFAULT_ROOT = Path("~/.cache/cnnbook/data")

MNIST_CLASSES: list[str] = [str(digit) for digit in range(10)]
CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR10_JPEG_FOLDER = "cifar10-jpeg"

# The files of each layout in the table of how-to-use.md (the official names).
MNIST_FILES: tuple[str, ...] = tuple(
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
)
CIFAR10_FILES: tuple[str, ...] = (
    *(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "batches.meta",
)

# Per-channel mean and standard deviation of the training images, for pixels in [0, 1]:
# the values commonly quoted (pytorch/examples mnist/main.py; CIFAR-10 tutorials), which
# chapters 07 and 11 recompute from the data.
MNIST_MEAN: tuple[float] = (0.1307,)
MNIST_STD: tuple[float] = (0.3081,)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

_SPLIT_SIZES = {
    ("mnist", True): 60_000,
    ("mnist", False): 10_000,
    ("cifar10", True): 50_000,
    ("cifar10", False): 10_000,
}
_IMAGE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message says how to fix it.

    Introduced in chapter 01.
    """


class DatasetCorruptError(RuntimeError):
    """A dataset copy on disk is incomplete or malformed; the message names the file.

    Introduced in chapter 01.
    """


def data_root() -> Path:
    """The folder datasets are read from and downloaded to: ``$CNNBOOK_DATA`` or the default.

    The default, ``~/.cache/cnnbook/data``, keeps downloads out of the
    repository and shared between notebooks.

    Introduced in chapter 01.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else DEFAULT_ROOT.expanduser()


def _split(train: bool) -> str:
    return "train" if train else "test"


def _check_split(
    name: str, train: bool, images_shape: tuple[int, ...], n_labels: int, where: Path
) -> None:
    """Raise DatasetCorruptError unless a split has the official size and image shape."""
    expected = _SPLIT_SIZES[(name, train)]
    label = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[name]
    problems = []
    if images_shape[0] != expected:
        problems.append(f"{images_shape[0]} images instead of {expected}")
    if n_labels != images_shape[0]:
        problems.append(f"{n_labels} labels for {images_shape[0]} images")
    if problems:
        raise DatasetCorruptError(
            f"The {label} {_split(train)} split in {where} looks corrupt: {'; '.join(problems)}. "
            f"Delete that folder and download it again, or copy a complete dataset there."
        )


def _download_failed_message(
    label: str, root: Path, searched: str, error: BaseException, fix: str
) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return (
        f"{label} is not available. Searched {searched} under {root} and found no usable copy; "
        f"downloading it failed ({type(error).__name__}: {reason}). "
        f"To fix this, connect to the internet and run again (torchvision downloads the official files), "
        f"or {fix}, or set {ENV_VAR} to a folder that holds it."
    )


def mnist(
    train: bool = True,
    transform: Callable | None = None,
    root: str | Path | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """The official MNIST split (60,000 training or 10,000 test digits) as a torchvision dataset.

    Files are read from ``<root>/MNIST/raw/`` (root defaults to :func:`data_root`)
    and downloaded there when missing and ``download`` is true. A missing copy
    that cannot be downloaded raises :class:`DatasetUnavailableError`; a copy of
    the wrong size raises :class:`DatasetCorruptError` naming the folder.

    Introduced in chapter 01.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    raw = root / "MNIST" / "raw"
    if not all((raw / name).is_file() for name in MNIST_FILES):
        if not download:
            raise DatasetUnavailableError(
                f"MNIST is not in {raw} and download=False. Pass download=True while online, "
                f"or copy the four official files (train-images-idx3-ubyte, ...) there."
            )
        try:
            datasets.MNIST(root, train=train, download=True)
        except Exception as error:  # noqa: BLE001 - every download failure gets the same advice
            raise DatasetUnavailableError(
                _download_failed_message(
                    "MNIST",
                    root,
                    "MNIST/raw/",
                    error,
                    f"copy the four uncompressed official files into {raw}",
                )
            ) from error
    try:
        dataset = datasets.MNIST(root, train=train, transform=transform, download=False)
    except (RuntimeError, ValueError, AssertionError, OSError) as error:
        raise DatasetCorruptError(
            f"The MNIST files in {raw} could not be read ({type(error).__name__}: {error}). "
            "They are probably truncated or not the official files; delete them and download again."
        ) from error
    _check_split("mnist", train, tuple(dataset.data.shape), len(dataset.targets), raw)
    if tuple(dataset.data.shape[1:]) != (28, 28):
        raise DatasetCorruptError(
            f"The MNIST images in {raw} are {tuple(dataset.data.shape[1:])} pixels, not 28x28; "
            "delete the folder and download the official files again."
        )
    dataset.cnnbook_source = "official files (MNIST/raw in the data root)"  # type: ignore[attr-defined]
    return dataset


def cifar10(
    train: bool = True,
    transform: Callable | None = None,
    root: str | Path | None = None,
    download: bool = True,
    verbose: bool = True,
) -> Dataset:
    """The CIFAR-10 split (50,000 training or 10,000 test images) as a torchvision dataset.

    Order of sources: the official files in ``<root>/cifar-10-batches-py``; a
    download of them (when ``download``); the offline image-folder copy in
    ``<root>/cifar10-jpeg/{train,test}/<class>/`` loaded with
    ``torchvision.datasets.ImageFolder``. The source used is stored as
    ``dataset.cnnbook_source`` and printed when ``verbose``. Labels are the
    indices of :data:`CIFAR10_CLASSES` in both cases.

    Introduced in chapter 01.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    official = root / "cifar-10-batches-py"
    dataset: Dataset | None = None
    where = official
    download_error: BaseException | None = None
    if all((official / name).is_file() for name in CIFAR10_FILES):
        try:  # torchvision checks every file's MD5 sum
            dataset = datasets.CIFAR10(root, train=train, transform=transform, download=False)
        except (RuntimeError, ValueError, OSError) as error:
            raise DatasetCorruptError(
                f"The CIFAR-10 files in {official} could not be read ({error}). They are "
                "probably truncated or not the official files; delete the folder and run again "
                "online to download them."
            ) from error
        source = "official files (cifar-10-batches-py in the data root)"
    else:
        folder = root / CIFAR10_JPEG_FOLDER / _split(train)
        if download:
            try:
                dataset = datasets.CIFAR10(root, train=train, transform=transform, download=True)
                source = "official files (downloaded to cifar-10-batches-py in the data root)"
            except Exception as error:  # noqa: BLE001 - offline: fall back to the JPEG copy
                download_error = error
        if dataset is None:
            if not folder.is_dir():
                raise DatasetUnavailableError(
                    _download_failed_message(
                        "CIFAR-10",
                        root,
                        f"cifar-10-batches-py/ and {CIFAR10_JPEG_FOLDER}/{_split(train)}/",
                        download_error or RuntimeError("download=False"),
                        f"unpack an image-folder copy into {root / CIFAR10_JPEG_FOLDER} "
                        "(train/<class>/*.jpg and test/<class>/*.jpg)",
                    )
                )
            dataset = _cifar10_image_folder(folder, train, transform)
            where = folder
            source = (
                f"offline JPEG copy ({CIFAR10_JPEG_FOLDER}/{_split(train)} in the data root; "
                "not byte-exact, accuracy runs slightly lower)"
            )
    targets = dataset.targets  # type: ignore[attr-defined]
    n_images = len(dataset)  # type: ignore[arg-type]
    _check_split("cifar10", train, (n_images,), len(targets), where)
    dataset.cnnbook_source = source  # type: ignore[attr-defined]
    if verbose:
        print(f"CIFAR-10 {_split(train)} source: {source}")
    return dataset


def _cifar10_image_folder(
    folder: Path, train: bool, transform: Callable | None
) -> datasets.ImageFolder:
    """Load and validate the image-folder copy of one CIFAR-10 split."""
    try:
        dataset = datasets.ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, OSError) as error:
        raise DatasetCorruptError(
            f"The CIFAR-10 copy in {folder} could not be read: {error}"
        ) from error
    if dataset.classes != CIFAR10_CLASSES:
        raise DatasetCorruptError(
            f"The CIFAR-10 copy in {folder} has class folders {dataset.classes}, "
            f"expected exactly {CIFAR10_CLASSES}. Unpack a complete copy there."
        )
    _check_split("cifar10", train, (len(dataset),), len(dataset.targets), folder)
    return dataset


def dataset_source(dataset: Dataset) -> str:
    """Where a dataset returned by :func:`mnist` or :func:`cifar10` came from.

    Introduced in chapter 01.
    """
    return getattr(dataset, "cnnbook_source", "unknown source")


CACHE_FOLDER = "cnnbook-cache"
_CACHE_VERSION = 2  # in the file name, so that caches of other versions are never read


def _cache_path(root: Path, name: str, train: bool) -> Path:
    return root / CACHE_FOLDER / f"{name}-{_split(train)}-uint8-v{_CACHE_VERSION}.pt"


def _folder_record(folder: Path, samples: list[tuple[str, int]]) -> dict[str, str | int]:
    """What identifies an image-folder copy: its resolved path, file count and total size."""
    return {
        "source": str(folder.resolve()),
        "files": len(samples),
        "bytes": sum(os.stat(path).st_size for path, _ in samples),
    }


def _read_cache(
    cache: Path, record: dict[str, str | int], labels: torch.Tensor, image_shape: tuple[int, ...]
) -> tuple[dict | None, str | None]:
    """Read ``cache``; return its contents, or None and why it cannot be used.

    The cache must be readable, hold uint8 images of shape ``(N, *image_shape)``
    and ``N`` int64 labels in 0..9 equal to the folder's, and name the same
    source folder, file count and size as ``record``.
    """
    try:
        cached = torch.load(cache, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file just means "decode again"
        reason = " ".join(str(error).split())[:200]
        return None, f"the file is unreadable ({type(error).__name__}: {reason})"
    if not isinstance(cached, dict) or not {"images", "labels", "source"} <= cached.keys():
        return None, "the file does not hold the expected images, labels and source"
    images, cached_labels = cached["images"], cached["labels"]
    expected = (len(labels), *image_shape)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        return None, f"the images are not a uint8 tensor ({getattr(images, 'dtype', type(images))})"
    if tuple(images.shape) != expected:
        return None, f"the images have shape {tuple(images.shape)} instead of {expected}"
    if not isinstance(cached_labels, torch.Tensor) or cached_labels.dtype != torch.int64:
        return None, "the labels are not an int64 tensor"
    if cached_labels.shape != labels.shape:
        return None, f"it has {cached_labels.numel()} labels for {len(labels)} images"
    if cached_labels.numel() and not 0 <= int(cached_labels.min()) <= int(cached_labels.max()) < 10:
        return None, "its labels are outside 0..9"
    for key in ("source", "files", "bytes"):
        if cached.get(key) != record[key]:
            return None, (
                f"it was built from another copy ({key} {cached.get(key)!r}, now {record[key]!r})"
            )
    if not torch.equal(cached_labels, labels):
        return None, "its labels differ from the folder's"
    return cached, None


def _save_atomically(payload: dict, path: Path) -> None:
    """Write ``payload`` with ``torch.save`` so that ``path`` is either complete or untouched.

    The data goes to a temporary file in the same folder, which then replaces
    ``path`` in one step (``os.replace``); an interrupted save leaves at most a
    stray temporary file, never a truncated cache.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name, created exclusively and with the usual permissions (unlike mkstemp's 0600).
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _decode_image_folder(
    samples: list[tuple[str, int]], folder: Path, image_shape: tuple[int, ...]
) -> torch.Tensor:
    """Decode every image of an image-folder copy into one uint8 tensor ``(N, *image_shape)``.

    A file that cannot be decoded (truncated, empty, not an image) or has the
    wrong size raises :class:`DatasetCorruptError` naming the file and the fix.
    """
    images = torch.empty((len(samples), *image_shape), dtype=torch.uint8)
    copy = folder.parent
    fix = (
        f"The copy in {copy} is damaged (an interrupted unpack or download?): unpack it again, "
        f"or delete {copy} and download or copy CIFAR-10 again."
    )
    for index, (path, _) in enumerate(samples):
        try:
            image = decode_image(path, mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as error:
            # torchvision's messages start with "decode_jpeg, <source file>:<line>, ".
            reason = re.sub(r"^\w+, \S+:\d+, ", "", " ".join(str(error).split()))
            raise DatasetCorruptError(f"{path} could not be decoded ({reason}). {fix}") from error
        if tuple(image.shape) != image_shape:
            raise DatasetCorruptError(
                f"{path} is {tuple(image.shape)}, expected a 3x32x32 RGB image. {fix}"
            )
        images[index] = image
    return images


def load_tensors(
    name: str, train: bool = True, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split in memory: ``(images, labels)`` with images ``uint8 (N, C, H, W)``.

    ``name`` is ``"mnist"`` or ``"cifar10"``. Pixel values stay 0..255 so that
    MNIST's 60,000 images take 47 MB and CIFAR-10's 50,000 take 154 MB; convert
    batches to float as you use them (:class:`TensorLoader` does). Decoding the
    CIFAR-10 JPEG copy takes a while, so its tensors are cached in
    ``<root>/cnnbook-cache/`` when that folder is writable. The cache is written
    atomically and records the folder it came from; a cache that is unreadable,
    inconsistent or from another copy is rebuilt, with one printed line saying why.
    A JPEG that cannot be decoded raises :class:`DatasetCorruptError` naming it.

    Introduced in chapter 01.
    """
    if name not in _IMAGE_SHAPES:
        raise ValueError(f"load_tensors() knows 'mnist' and 'cifar10', not {name!r}.")
    root = Path(root).expanduser() if root is not None else data_root()
    if name == "mnist":
        dataset = mnist(train, root=root)
        images = dataset.data.unsqueeze(1).contiguous()
        labels = dataset.targets.to(torch.int64)
        return images, labels
    dataset = cifar10(train, root=root)
    if isinstance(dataset, datasets.CIFAR10):
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor(dataset.targets, dtype=torch.int64)
        return images, labels
    samples = dataset.samples  # type: ignore[attr-defined]
    folder = Path(dataset.root)  # type: ignore[attr-defined]
    labels = torch.tensor(dataset.targets, dtype=torch.int64)  # type: ignore[attr-defined]
    record = _folder_record(folder, samples)
    cache = _cache_path(root, name, train)
    if cache.exists():
        cached, problem = _read_cache(cache, record, labels, _IMAGE_SHAPES[name])
        if cached is not None:
            return cached["images"], cached["labels"]
        print(f"Rebuilding the cached CIFAR-10 {_split(train)} tensors in {cache}: {problem}.")
    images = _decode_image_folder(samples, folder, _IMAGE_SHAPES[name])
    try:
        _save_atomically({"images": images, "labels": labels, **record}, cache)
        # Caches of earlier versions (written in place, without a source) are never read.
        cache.with_name(f"{name}-{_split(train)}-uint8.pt").unlink(missing_ok=True)
    except (OSError, RuntimeError):
        pass  # a read-only or full disk just means decoding again next time
    return images, labels


def random_subset(
    images: torch.Tensor, labels: torch.Tensor, count: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images and their labels drawn at random (without replacement, seeded).

    Use it instead of ``images[:count]`` for a quick run on part of a split:
    the offline CIFAR-10 JPEG copy is stored class by class, so its first
    5,000 training images are all airplanes.

    Introduced in chapter 10.
    """
    if not 0 < count <= len(images):
        raise ValueError(
            f"count must be between 1 and the number of images ({len(images)}), got {count}."
        )
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels; they must match.")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[:count]
    return images[chosen], labels[chosen]


def validation_split(
    images: torch.Tensor, labels: torch.Tensor, count: int = 5_000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out ``count`` training images for validation: ``(train_x, train_y, val_x, val_y)``.

    The split is seeded and stratified: every class gets its share of ``count`` in
    proportion to its frequency (exactly ``count / 10`` per class on CIFAR-10), so
    the validation accuracy is not skewed by an unlucky class mix. Choices between
    settings and epoch counts are made on the validation part; the test split is
    used once, for the final number. Both parts keep the original order.

    Introduced in chapter 07.
    """
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels; they must match.")
    if not 0 < count < len(images):
        raise ValueError(
            f"count must be between 1 and the number of images minus one ({len(images) - 1}), "
            f"got {count}."
        )
    classes, frequency = torch.unique(labels, return_counts=True)
    share = frequency.double() * count / len(labels)
    per_class = share.floor().long()
    # Largest remainders first, so that the shares add up to exactly ``count``.
    missing = count - int(per_class.sum())
    per_class[torch.argsort(share - per_class, descending=True, stable=True)[:missing]] += 1
    generator = torch.Generator().manual_seed(seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for label, take in zip(classes.tolist(), per_class.tolist(), strict=True):
        members = (labels == label).nonzero().flatten()
        held_out[members[torch.randperm(len(members), generator=generator)[:take]]] = True
    return images[~held_out], labels[~held_out], images[held_out], labels[held_out]


def normalize(
    images: torch.Tensor,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> torch.Tensor:
    """Standardise each channel of a float batch (N, C, H, W): ``(images - mean) / std``.

    ``mean`` and ``std`` have one value per channel, in the units of ``images``
    (the defaults are CIFAR-10's statistics for pixels scaled to [0, 1]; for
    MNIST pass ``MNIST_MEAN, MNIST_STD``). Introduced in chapter 07.
    """
    if images.dim() != 4:
        raise ValueError(
            f"normalize() expects a batch of shape (N, C, H, W), got {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0)."
        )
    if len(mean) != images.shape[1] or len(std) != images.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel ({images.shape[1]}), "
            f"got {len(mean)} and {len(std)}."
        )
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_t) / std_t


def normalize_mnist(images: torch.Tensor) -> torch.Tensor:
    """:func:`normalize` with MNIST's statistics: a ``transform`` for MNIST loaders.

    Introduced in chapter 09.
    """
    return normalize(images, MNIST_MEAN, MNIST_STD)


class TensorLoader:
    """Batches from in-memory tensors: the fast alternative to a per-image ``DataLoader``.

    ``images`` are ``uint8 (N, C, H, W)`` (as from :func:`load_tensors`); each
    batch is moved to ``device``, scaled to floats in [0, 1] and passed through
    ``transform`` (for example ``torchvision.transforms.v2.Normalize`` or a batch
    augmentation), which sees the whole batch at once. Shuffling uses
    ``generator`` so that a seeded run is reproducible.

    Introduced in chapter 01.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{images.shape[0]} images but {labels.shape[0]} labels; they must match."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.transform = transform
        self.generator = generator
        self.drop_last = drop_last

    def samples_per_pass(self) -> int:
        """How many samples one pass over the loader draws them from (all of them here)."""
        return self.images.shape[0]

    def order(self) -> torch.Tensor:
        """The sample indices of the next pass, in order, on ``device``.

        Shuffled with ``generator`` when ``shuffle``; a subclass that changes
        which samples a pass sees (a rank's shard, chapter 12) overrides this
        and :meth:`samples_per_pass`, and keeps the batching.
        """
        n = self.images.shape[0]
        if self.shuffle:
            return torch.randperm(n, generator=self.generator).to(self.device)
        return torch.arange(n, device=self.device)

    def __len__(self) -> int:
        n = self.samples_per_pass()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            inputs = self.images[index].float().div_(255)
            if self.transform is not None:
                inputs = self.transform(inputs)
            yield inputs, self.labels[index]


# --- Text: Shakespeare for the character language model (chapter 18) -------------------------

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_LENGTH = 1_115_394  # characters of the original tiny-shakespeare file
SHAKESPEARE_DOWNLOAD_FOLDER = "tinyshakespeare"  # where the original file is downloaded to
SHAKESPEARE_OFFLINE_FOLDER = "shakespeare"  # where an offline copy is read from


@dataclass(frozen=True)
class TextCorpus:
    """A text corpus read by :func:`shakespeare`: the text, where it came from, and its file.

    Introduced in chapter 18.
    """

    text: str
    source: str
    path: Path


def _read_text_file(path: Path) -> str:
    """Read a corpus as UTF-8; an unreadable or empty file raises DatasetCorruptError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetCorruptError(
            f"{path} could not be read as UTF-8 text ({type(error).__name__}: {error}). "
            "Delete it and download it again, or copy a plain-text file there."
        ) from error
    if not text.strip():
        raise DatasetCorruptError(
            f"{path} is empty. Delete it and download it again, or copy the text there."
        )
    return text


def _length_note(text: str) -> str:
    if len(text) == SHAKESPEARE_LENGTH:
        return f"{len(text):,} characters, the original's length"
    return f"{len(text):,} characters; the original has {SHAKESPEARE_LENGTH:,}"


def _download_shakespeare(target: Path) -> None:
    """Download the original file to ``target`` atomically (a temporary name, then a rename)."""
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        datasets.utils.download_url(SHAKESPEARE_URL, str(target.parent), filename=temporary)
        os.replace(target.parent / temporary, target)
    finally:
        (target.parent / temporary).unlink(missing_ok=True)
        if created and not any(target.parent.iterdir()):
            target.parent.rmdir()  # a failed download leaves nothing behind


def shakespeare(
    root: str | Path | None = None, download: bool = True, verbose: bool = True
) -> TextCorpus:
    """The Shakespeare corpus of "tiny shakespeare" as one string, with the source it came from.

    Order of sources: the original file already downloaded to
    ``<root>/tinyshakespeare/input.txt``; a download of it from
    :data:`SHAKESPEARE_URL` (when ``download``); an offline copy in
    ``<root>/shakespeare/input.txt`` (root defaults to :func:`data_root`). The
    source, with the number of characters compared to the original's 1,115,394,
    is stored in ``corpus.source`` and printed when ``verbose``. With no source,
    :class:`DatasetUnavailableError` says what was searched and how to fix it.

    Introduced in chapter 18.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    downloaded = root / SHAKESPEARE_DOWNLOAD_FOLDER / "input.txt"
    offline = root / SHAKESPEARE_OFFLINE_FOLDER / "input.txt"
    download_error: BaseException | None = None
    if not downloaded.is_file() and download:
        try:
            _download_shakespeare(downloaded)
        except Exception as error:  # noqa: BLE001 - offline: fall back to the local copy
            download_error = error
    if downloaded.is_file():
        text, path = _read_text_file(downloaded), downloaded
        source = (
            f"original tiny-shakespeare file ({SHAKESPEARE_DOWNLOAD_FOLDER}/input.txt in the "
            f"data root; {_length_note(text)})"
        )
    elif offline.is_file():
        text, path = _read_text_file(offline), offline
        source = (
            f"offline copy ({SHAKESPEARE_OFFLINE_FOLDER}/input.txt in the data root; same "
            f"layout as the original, not byte-identical; {_length_note(text)})"
        )
    else:
        raise DatasetUnavailableError(
            _download_failed_message(
                "The Shakespeare corpus",
                root,
                f"{SHAKESPEARE_DOWNLOAD_FOLDER}/input.txt and {SHAKESPEARE_OFFLINE_FOLDER}/input.txt",
                download_error or RuntimeError("download=False"),
                f"save the text (from {SHAKESPEARE_URL}) as {offline}",
            )
        )
    if verbose:
        print(f"Shakespeare source: {source}")
    return TextCorpus(text, source, path)
