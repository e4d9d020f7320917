"""Data augmentation on whole batches of tensors, and test-time augmentation.

A per-image ``DataLoader`` transform calls Python once per image; here one call
handles a whole batch ``(N, C, H, W)`` already in memory (on the GPU when there
is one): :func:`random_flip` mirrors a random half of the images,
:func:`random_crop` pads every image and cuts a randomly shifted window of the
original size, and :class:`BatchAugment` chains them with
:func:`cnnbook.data.normalize` as a ``transform`` for
:class:`cnnbook.data.TensorLoader`. Randomness comes from a ``torch.Generator``
so that a seeded run is reproducible. (Test-time augmentation, which averages
over an image and its mirror image, is ``predict(..., flip=True)`` in
:mod:`cnnbook.train`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .data import CIFAR10_MEAN, CIFAR10_STD, normalize


def _check_batch(images: torch.Tensor, name: str) -> None:
    if images.dim() != 4:
        raise ValueError(
            f"{name}() expects a batch of shape (N, C, H, W), got {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0)."
        )


def _uniform(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``count`` uniform numbers drawn with ``generator`` (which may live on another device)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(count, generator=generator, device=gen_device).to(device)


def random_flip(
    images: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``; return a new batch.

    One random number per image decides; the flipped images are
    ``images.flip(-1)``. Works for any dtype and device.

    Introduced in chapter 11.
    """
    _check_batch(images, "random_flip")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}.")
    flip = _uniform(images.shape[0], generator, images.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def random_crop(
    images: torch.Tensor,
    padding: int = 4,
    generator: torch.Generator | None = None,
    padding_mode: str = "reflect",
) -> torch.Tensor:
    """Pad every image by ``padding`` pixels and cut a random window of the original size.

    Each image gets its own shift of ``-padding..padding`` pixels in each
    direction, so the result is the image translated by up to ``padding`` pixels
    with the border filled by ``padding_mode`` (``"reflect"``, ``"replicate"`` or
    ``"constant"`` for zeros). The whole batch is cropped with one gather.

    Introduced in chapter 11.
    """
    _check_batch(images, "random_crop")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}.")
    if padding == 0:
        return images.clone()
    if padding_mode not in ("reflect", "replicate", "constant"):
        raise ValueError(
            f"padding_mode must be 'reflect', 'replicate' or 'constant', got {padding_mode!r}."
        )
    n, channels, height, width = images.shape
    if padding_mode == "reflect" and padding >= min(height, width):
        raise ValueError(
            f"reflect padding must be smaller than the image ({height}x{width}), got {padding}; "
            "use a smaller padding or padding_mode='constant'."
        )
    source = images if images.is_floating_point() else images.float()
    padded = F.pad(source, (padding,) * 4, mode=padding_mode)
    padded_width = padded.shape[3]
    shifts = (_uniform(2 * n, generator, images.device) * (2 * padding + 1)).long()
    shift_rows, shift_cols = shifts.clamp_(max=2 * padding).view(2, n, 1, 1)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    # The flat position of every output pixel in its padded image: one gather does the batch.
    index = (shift_rows + rows) * padded_width + shift_cols + cols  # (N, H, W)
    flat = padded.reshape(n, channels, -1)
    out = flat.gather(2, index.view(n, 1, -1).expand(n, channels, height * width))
    out = out.view(n, channels, height, width)
    return out if images.is_floating_point() else out.to(images.dtype)


class BatchAugment:
    """A batch transform for :class:`cnnbook.data.TensorLoader`: crop, flip, then normalise.

    ``crop_padding`` > 0 applies :func:`random_crop`, ``flip`` applies
    :func:`random_flip`, and ``mean``/``std`` (when given) apply
    :func:`normalize` last. All randomness comes from ``generator``.

    Introduced in chapter 10 (the small ResNet); chapter 11 explains and measures it.
    """

    def __init__(
        self,
        crop_padding: int = 4,
        flip: bool = True,
        mean: Sequence[float] | None = CIFAR10_MEAN,
        std: Sequence[float] | None = CIFAR10_STD,
        generator: torch.Generator | None = None,
        padding_mode: str = "reflect",
    ) -> None:
        if (mean is None) != (std is None):
            raise ValueError("Give both mean and std, or neither (no normalisation).")
        self.crop_padding = crop_padding
        self.flip = flip
        self.mean = mean
        self.std = std
        self.generator = generator
        self.padding_mode = padding_mode

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_padding > 0:
            images = random_crop(images, self.crop_padding, self.generator, self.padding_mode)
        if self.flip:
            images = random_flip(images, generator=self.generator)
        if self.mean is not None and self.std is not None:
            images = normalize(images, self.mean, self.std)
        return images

    def __repr__(self) -> str:
        return (
            f"BatchAugment(crop_padding={self.crop_padding}, flip={self.flip}, "
            f"normalize={self.mean is not None})"
        )
