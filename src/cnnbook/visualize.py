"""Looking inside a trained CNN: activations via forward hooks, filters, saliency and occlusion.

:func:`capture_activations` records what chosen layers output during one
forward pass; :func:`plot_filters` and :func:`plot_feature_maps` draw weights
and activations as image grids; :func:`edge_energy_fraction` measures how much
of a filter is an oriented edge (brightness-ramp) detector; :func:`saliency`
and :func:`occlusion` say which input pixels a prediction depends on.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .conv import conv_output_size
from .plot import SMALLEST_TEXT_PT


def capture_activations(
    model: nn.Module,
    x: torch.Tensor,
    layer_types: Sequence[type[nn.Module]] | type[nn.Module] = (nn.Conv2d, nn.ReLU, nn.MaxPool2d),
) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` once and return the output of every submodule of ``layer_types``.

    A forward hook (``register_forward_hook``) on each matching submodule copies
    its output; the hooks are removed afterwards, even on error. The result maps
    the module's name in ``model.named_modules()`` (for example ``"layer1.0"``)
    to a detached CPU tensor, in the order the layers ran. The model runs in
    eval mode without gradients; its previous training mode is restored.

    Introduced in chapter 09.
    """
    types = tuple(layer_types) if isinstance(layer_types, Sequence) else (layer_types,)
    if not types:
        raise ValueError("layer_types must name at least one module type, e.g. (nn.Conv2d,).")
    activations: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            calls[name] = calls.get(name, 0) + 1  # a module used twice gets "name#2"
            key = name if calls[name] == 1 else f"{name}#{calls[name]}"
            activations[key] = output.detach().cpu().clone()

        return hook

    handles = [
        module.register_forward_hook(hook_for(name))
        for name, module in model.named_modules()
        if name and isinstance(module, types)
    ]
    if not handles:
        raise ValueError(f"model has no submodules of type {[t.__name__ for t in types]}.")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return activations


def _grid(count: int, ncols: int, size: float, title: str | None) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, count))
    nrows = int(np.ceil(count / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.5 if title else 0)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig, axes.ravel()


def plot_filters(
    weight: torch.Tensor | np.ndarray,
    ncols: int = 10,
    title: str | None = None,
    size: float = 0.9,
    cmap: str = "gray",
) -> Figure:
    """Draw convolution filters (out_channels, in_channels, kH, kW) as small images.

    Filters with 3 input channels are shown in colour; otherwise the first input
    channel is shown with ``cmap``. Each filter is scaled to its own minimum and
    maximum, so that its pattern (light: positive weights, dark: negative) is
    visible whatever its magnitude.

    Introduced in chapter 08.
    """
    array = (
        weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    )
    if array.ndim != 4:
        raise ValueError(
            f"weight must have shape (out_channels, in_channels, kH, kW), got {array.shape}."
        )
    fig, axes = _grid(array.shape[0], ncols, size, title)
    for ax, kernel in zip(axes, array, strict=False):
        picture = kernel.transpose(1, 2, 0) if kernel.shape[0] == 3 else kernel[0]
        low, high = picture.min(), picture.max()
        picture = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
        ax.imshow(picture, cmap=None if picture.ndim == 3 else cmap, vmin=0, vmax=1)
    fig.tight_layout()
    return fig


def edge_energy_fraction(weight: torch.Tensor) -> torch.Tensor:
    """The share of each kernel's energy that lies in an oriented brightness ramp.

    ``weight`` is a convolution weight (out_channels, in_channels, kH, kW). With
    centred coordinates ``x`` (column) and ``y`` (row) of the kernel, the ramps
    ``a * x + b * y`` are the pure edge (gradient) detectors of every
    orientation, with zero sum. Each kernel ``w`` is projected onto that plane,
    and the result is ``|projection|^2 / |w|^2`` in [0, 1]: 1 for a pure ramp
    (a Prewitt filter), about 0.89 for a Sobel filter, 0 for a constant kernel
    or one with no linear trend; an all-zero kernel gives 0. Random independent
    weights put on average ``2 / (kH * kW)`` of their energy there (2/9 for
    3x3), so a clearly larger value means the kernel has become edge-like.
    Returns an (out_channels, in_channels) tensor.

    Introduced in chapter 13.
    """
    if weight.dim() != 4:
        raise ValueError(
            f"weight must have shape (out_channels, in_channels, kH, kW), got {tuple(weight.shape)}."
        )
    kernel_h, kernel_w = weight.shape[-2:]
    if kernel_h < 2 and kernel_w < 2:
        raise ValueError("a 1x1 kernel has no spatial extent, so it cannot detect edges.")
    w = weight.detach().double()
    rows = torch.arange(kernel_h, dtype=w.dtype, device=w.device) - (kernel_h - 1) / 2
    cols = torch.arange(kernel_w, dtype=w.dtype, device=w.device) - (kernel_w - 1) / 2
    projected = torch.zeros(w.shape[:2], dtype=w.dtype, device=w.device)
    for ramp in (cols.expand(kernel_h, kernel_w), rows[:, None].expand(kernel_h, kernel_w)):
        norm = ramp.pow(2).sum()
        if norm > 0:  # the two ramps are orthogonal, so their energies add up
            projected += (w * ramp).sum(dim=(-2, -1)).pow(2) / norm
    energy = w.pow(2).sum(dim=(-2, -1))
    fraction = torch.where(energy > 0, projected / energy.clamp_min(1e-300), 0.0)
    return fraction.to(weight.dtype if weight.is_floating_point() else torch.float32)


def plot_feature_maps(
    maps: torch.Tensor | np.ndarray,
    max_maps: int = 16,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.0,
    cmap: str = "viridis",
) -> Figure:
    """Draw the first ``max_maps`` channels of one activation (C, H, W) or (1, C, H, W).

    Each map is shown with its own colour scale (bright: strong response) and
    titled with its channel index.

    Introduced in chapter 09.
    """
    array = (
        maps.detach().cpu().float().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    )
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"maps must have shape (C, H, W) or (1, C, H, W), got {array.shape}.")
    count = min(max_maps, array.shape[0])
    fig, axes = _grid(count, ncols, size, title)
    for index in range(count):
        axes[index].imshow(array[index], cmap=cmap)
        axes[index].set_title(str(index), fontsize=SMALLEST_TEXT_PT)
    fig.tight_layout()
    return fig


def _targets(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor | Sequence[int] | None
) -> torch.Tensor:
    if target is None:
        with torch.no_grad():
            return model(images).argmax(dim=1)
    target = torch.as_tensor(target, device=images.device).reshape(-1)
    if target.numel() != images.shape[0]:
        raise ValueError(
            f"target has {target.numel()} entries for {images.shape[0]} images; give one per image."
        )
    return target


def saliency(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor | Sequence[int] | None = None
) -> torch.Tensor:
    """Vanilla gradient saliency: ``|d score_target / d pixel|``, maximised over channels.

    ``images`` is (N, C, H, W); ``target`` gives one class per image (default:
    the predicted class). The score is the logit before softmax (Simonyan et
    al., 2014). Returns a (N, H, W) tensor on the images' device: large values
    mark pixels whose small change would move the class score most.

    Introduced in chapter 13.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
    was_training = model.training
    model.eval()
    try:
        target = _targets(model, images, target)
        inputs = images.detach().clone().requires_grad_(True)
        scores = model(inputs)
        scores.gather(1, target.view(-1, 1)).sum().backward()
        return inputs.grad.detach().abs().amax(dim=1)
    finally:
        model.train(was_training)


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor | Sequence[int] | None = None,
    patch_size: int = 6,
    stride: int = 2,
    fill: float = 0.0,
) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler and Fergus, 2014): how much a grey patch lowers the class probability.

    A ``patch_size`` square of value ``fill`` slides over each image with
    ``stride``; for every position the model sees the occluded image, and the
    map holds ``p(target | image) - p(target | occluded image)``. Returns a
    tensor (N, out_h, out_w) with ``out = conv_output_size(H, patch_size, stride)``;
    entry (i, j) belongs to the patch whose top-left corner is (i*stride, j*stride).

    Introduced in chapter 13.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}.")
    n, _, h, w = images.shape
    out_h, out_w = conv_output_size(h, patch_size, stride), conv_output_size(w, patch_size, stride)
    was_training = model.training
    model.eval()
    try:
        target = _targets(model, images, target)
        maps = torch.empty((n, out_h, out_w), device=images.device)
        with torch.no_grad():
            for index in range(n):
                image = images[index]
                batch = image.expand(out_h * out_w, *image.shape).clone()
                for i in range(out_h):
                    for j in range(out_w):
                        top, left = i * stride, j * stride
                        batch[
                            i * out_w + j, :, top : top + patch_size, left : left + patch_size
                        ] = fill
                probabilities = torch.softmax(model(torch.cat([image[None], batch])), dim=1)
                p = probabilities[:, target[index]]
                maps[index] = (p[0] - p[1:]).view(out_h, out_w)
        return maps
    finally:
        model.train(was_training)
