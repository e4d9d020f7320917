"""Tests for cnnbook.augment: batch augmentation keeps shapes, flips flip, crops stay in bounds."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cnnbook.augment import BatchAugment, random_crop, random_flip
from cnnbook.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    MNIST_MEAN,
    MNIST_STD,
    normalize,
    normalize_mnist,
)
from cnnbook.train import accuracy, predict


def batch(n: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    return images.to(dtype) / 255 if dtype.is_floating_point else images.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_flip_and_crop_keep_shape_and_dtype(dtype: torch.dtype) -> None:
    images = batch(dtype=dtype)
    for out in (
        random_flip(images),
        random_crop(images, 2),
        random_crop(images, 2, padding_mode="constant"),
    ):
        assert out.shape == images.shape
        assert out.dtype == dtype


def test_flips_are_flips_or_identity_and_both_happen() -> None:
    images = batch(64)
    out = random_flip(images, generator=torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, images, strict=True)]
    same = [bool(torch.equal(o, i)) for o, i in zip(out, images, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 10 < sum(flipped) < 54  # about half of 64
    assert torch.equal(random_flip(images, p=1.0), images.flip(-1))
    assert torch.equal(random_flip(images, p=0.0), images)


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_crops_are_windows_of_the_padded_image(mode: str) -> None:
    padding = 3
    images = batch(32)
    out = random_crop(images, padding, torch.Generator().manual_seed(0), padding_mode=mode)
    padded = F.pad(images, (padding,) * 4, mode=mode)
    shifts = set()
    for o, p in zip(out, padded, strict=True):
        windows = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(p[:, dy : dy + 8, dx : dx + 8], o)
        ]
        assert windows, "a crop is not a window of the padded image"
        shifts.add(windows[0])
    assert len(shifts) > 5  # the shifts vary between images


def test_zero_padding_crop_is_identity_and_bad_arguments_raise() -> None:
    images = batch()
    assert torch.equal(random_crop(images, 0), images)
    with pytest.raises(ValueError, match="padding"):
        random_crop(images, -1)
    with pytest.raises(ValueError, match="reflect padding"):
        random_crop(images, 8)
    with pytest.raises(ValueError, match="padding_mode"):
        random_crop(images, 2, padding_mode="wrap")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_flip(images[0])
    with pytest.raises(ValueError, match="probability"):
        random_flip(images, p=2.0)


def test_seeded_augmentation_is_reproducible() -> None:
    images = batch(32)
    first = BatchAugment(crop_padding=2, generator=torch.Generator().manual_seed(7))(images)
    second = BatchAugment(crop_padding=2, generator=torch.Generator().manual_seed(7))(images)
    other = BatchAugment(crop_padding=2, generator=torch.Generator().manual_seed(8))(images)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_normalize_standardises_channels() -> None:
    images = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert torch.allclose(normalize(images), torch.zeros(2, 3, 4, 4), atol=1e-6)
    plus_one_std = images + torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize(plus_one_std), torch.ones(2, 3, 4, 4), atol=1e-6)
    with pytest.raises(ValueError, match="one value per channel"):
        normalize(images, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match=r"batch of shape \(N, C, H, W\)"):
        normalize(images[0])
    digits = torch.full((2, 1, 4, 4), MNIST_MEAN[0] + MNIST_STD[0])
    assert torch.allclose(normalize_mnist(digits), torch.ones(2, 1, 4, 4), atol=1e-6)
    with pytest.raises(ValueError, match="both mean and std"):
        BatchAugment(mean=None)


def test_predict_with_flip_averages_image_and_mirror() -> None:
    class LeftColumn(torch.nn.Module):
        """Logits = the mean of the leftmost column, so a flip changes them."""

        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left = x[..., 0].mean(dim=(1, 2))
            return torch.stack([left, -left], dim=1)

    images = batch(4)
    loader = [(images, torch.zeros(4, dtype=torch.long))]
    model = LeftColumn()
    plain, _ = predict(model, loader)
    tta, targets = predict(model, loader, flip=True)
    expected = (model(images) + model(images.flip(-1))) / 2
    assert torch.allclose(tta, expected)
    assert not torch.allclose(plain, tta)
    assert targets.tolist() == [0, 0, 0, 0]
    assert accuracy(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])) == 0.5
