"""Figures the chapters share: labelled image grids, training curves, confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .train import History

#: The smallest text, in points, that the book's figures use for labels and counts.
#: Figures are sized for the page's content column (about 7 in at 100 dpi), so 10 pt
#: text shows about 13 px high there; smaller text is hard to read on the site.
SMALLEST_TEXT_PT = 10.0


def _to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (C, H, W) or (H, W) image as an array matplotlib can show, scaled to [0, 1]."""
    array = (
        image.detach().cpu().float().numpy()
        if isinstance(image, torch.Tensor)
        else np.asarray(image, float)
    )
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    if array.max() > 1.0 + 1e-6:  # uint8-style pixel values
        array = array / 255.0
    return np.clip(array, 0.0, 1.0)


def show_images(
    images: torch.Tensor | Sequence[torch.Tensor],
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    predictions: Sequence[int] | torch.Tensor | None = None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.4,
) -> Figure:
    """Draw images in a grid, each titled with its label (and prediction, if given).

    Titles are :data:`SMALLEST_TEXT_PT` points high; ``size`` is each panel's
    width in inches. ``images`` is a batch ``(N, C, H, W)`` (uint8 0..255 or float 0..1) or a
    list of images. With ``predictions``, a title reads ``true → predicted`` and
    is red where they differ. Returns the figure so a notebook can show or save it.

    Introduced in chapter 01.
    """
    count = len(images)
    if count == 0:
        raise ValueError("show_images() needs at least one image.")
    ncols = min(ncols, count)
    nrows = int(np.ceil(count / ncols))
    label_room = 0.3 if labels is not None else 0.0  # each row's titles need their own line
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, (size + label_room) * nrows + (0.4 if title else 0))
    )
    axes = np.atleast_1d(axes).ravel()

    def name(index: int) -> str:
        return class_names[index] if class_names is not None else str(index)

    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= count:
            continue
        picture = _to_display(images[i])
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        if labels is not None:
            true = int(labels[i])
            if predictions is not None:
                guess = int(predictions[i])
                ax.set_title(
                    f"{name(true)} → {name(guess)}",
                    fontsize=SMALLEST_TEXT_PT,
                    color="black" if guess == true else "red",
                )
            else:
                ax.set_title(name(true), fontsize=SMALLEST_TEXT_PT)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: History, title: str | None = None) -> Figure:
    """Loss and accuracy per epoch, training and test, side by side.

    Introduced in chapter 07.
    """
    epochs = np.arange(1, history.epochs + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(epochs, history.train_loss, "o-", label="train")
    acc_ax.plot(epochs, [100 * a for a in history.train_acc], "o-", label="train")
    if history.test_loss:
        loss_ax.plot(epochs, history.test_loss, "s-", label="test")
        acc_ax.plot(epochs, [100 * a for a in history.test_acc], "s-", label="test")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_batch_loss(
    history: History | Mapping[str, History],
    smoothing: int = 20,
    title: str = "Training loss per batch",
    log_scale: bool = False,
) -> Figure:
    """Every batch's training loss, with a moving average over ``smoothing`` batches.

    Given a mapping from names to histories instead of one history, draws each
    run in its own colour on the same axes (its batches faint, its average
    labelled with its name), to compare runs, as chapter 07 compares two
    recipes. ``log_scale`` puts the loss on a logarithmic axis, where late,
    small losses stay readable. Introduced in chapter 07.
    """
    runs = {"": history} if isinstance(history, History) else dict(history)
    if not runs or any(len(run.batch_loss) == 0 for run in runs.values()):
        raise ValueError("A history has no batch losses; it must come from fit().")
    fig, ax = plt.subplots(figsize=(6, 3.2) if len(runs) == 1 else (7, 3.2))
    for name, run in runs.items():
        losses = np.asarray(run.batch_loss, dtype=float)
        steps = np.arange(1, losses.size + 1)
        window = max(1, min(smoothing, losses.size))
        average = np.convolve(losses, np.ones(window) / window, mode="valid")
        if name:  # one colour per run: its batches faint, its average named
            (batches,) = ax.plot(steps, losses, alpha=0.2, linewidth=0.6)
            ax.plot(steps[window - 1 :], average, color=batches.get_color(), label=name)
        else:
            ax.plot(steps, losses, alpha=0.35, label="batch")
            ax.plot(steps[window - 1 :], average, label=f"mean of last {window}")
    ax.set(xlabel="batch", ylabel="loss", title=title, yscale="log" if log_scale else "linear")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    matrix: torch.Tensor, class_names: Sequence[str], title: str = "Confusion matrix"
) -> Figure:
    """Draw a confusion matrix (rows: true class, columns: predicted) with its counts.

    Introduced in chapter 07.
    """
    counts = matrix.cpu().numpy()
    size = max(4.0, 0.55 * len(class_names) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = counts.max() / 2
    for (row, col), value in np.ndenumerate(counts):
        ax.text(
            col,
            row,
            str(value),
            ha="center",
            va="center",
            fontsize=SMALLEST_TEXT_PT,
            color="white" if value > threshold else "black",
        )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
