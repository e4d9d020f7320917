"""Figures: grids, curves and confusion matrices draw what they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cnnbook.plot import (  # noqa: E402
    SMALLEST_TEXT_PT,
    plot_batch_loss,
    plot_confusion_matrix,
    plot_history,
    show_images,
)
from cnnbook.train import History, confusion_matrix  # noqa: E402
from cnnbook.visualize import plot_feature_maps  # noqa: E402


def test_show_images_titles_labels_and_marks_mistakes() -> None:
    images = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    fig = show_images(
        images,
        labels=[0, 1, 2, 0, 1],
        class_names=["a", "b", "c"],
        predictions=[0, 2, 2, 0, 1],
        ncols=3,
    )
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a → a", "b → c", "c → c", "a → a", "b → b"]
    wrong = [ax for ax in fig.axes if ax.get_title() == "b → c"][0]
    assert wrong.title.get_color() == "red"
    assert len(fig.axes) == 6  # a 2x3 grid, the last cell empty


def test_show_images_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        show_images(torch.zeros(0, 1, 4, 4))


def test_plot_history_draws_train_and_test() -> None:
    history = History([1.0, 0.5], [0.5, 0.8], [1.1, 0.6], [0.4, 0.7], [1.0, 1.0])
    fig = plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "test"]
    assert list(acc_ax.lines[1].get_ydata()) == pytest.approx([40.0, 70.0])


def test_confusion_matrix_counts_true_by_predicted() -> None:
    matrix = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), num_classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    fig = plot_confusion_matrix(matrix, ["x", "y", "z"])
    assert fig.axes[0].get_xlabel() == "predicted"


def test_confusion_matrix_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 predictions but 2 targets"):
        confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1]), num_classes=2)


def test_plot_batch_loss_draws_raw_and_smoothed() -> None:
    history = History(batch_loss=[3.0, 2.0, 1.0, 1.0])
    ax = plot_batch_loss(history, smoothing=2).axes[0]
    assert list(ax.lines[0].get_ydata()) == [3.0, 2.0, 1.0, 1.0]
    assert list(ax.lines[1].get_ydata()) == pytest.approx([2.5, 1.5, 1.0])
    with pytest.raises(ValueError, match="no batch losses"):
        plot_batch_loss(History())


def test_plot_batch_loss_compares_named_runs_in_one_colour_each() -> None:
    runs = {
        "short": History(batch_loss=[4.0, 2.0, 1.0]),
        "long": History(batch_loss=[8.0, 4.0, 2.0, 1.0, 0.5]),
    }
    ax = plot_batch_loss(runs, smoothing=2, log_scale=True).axes[0]
    assert ax.get_yscale() == "log"
    short_batches, short_mean, long_batches, long_mean = ax.lines
    assert list(long_batches.get_ydata()) == [8.0, 4.0, 2.0, 1.0, 0.5]
    assert list(short_mean.get_ydata()) == pytest.approx([3.0, 1.5])
    assert list(long_mean.get_xdata()) == [2, 3, 4, 5]
    assert short_batches.get_color() == short_mean.get_color() != long_mean.get_color()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["short", "long"]
    with pytest.raises(ValueError, match="no batch losses"):
        plot_batch_loss({"empty": History()})


def _smallest_text(fig: matplotlib.figure.Figure) -> float:
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]
    return min(t.get_fontsize() for t in texts)


def test_labels_and_counts_are_legible_at_the_page_width() -> None:
    images = torch.zeros(4, 1, 8, 8)
    figures = [
        show_images(images, [0, 1, 2, 3], predictions=[0, 1, 3, 3], ncols=4),
        plot_confusion_matrix(torch.eye(10, dtype=torch.long) * 90, [str(i) for i in range(10)]),
        plot_feature_maps(torch.rand(8, 6, 6), ncols=8),
    ]
    for fig in figures:
        assert _smallest_text(fig) >= SMALLEST_TEXT_PT >= 9
        plt.close(fig)
