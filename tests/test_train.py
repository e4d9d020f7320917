"""seed_everything, fit, evaluate and predict on a tiny, fast problem."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from cnnbook.data import TensorLoader
from cnnbook.train import History, count_parameters, evaluate, fit, predict, seed_everything


def _separable_problem(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is whether the left or the right half is brighter."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 100, (n, 1, 4, 4), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 2, (n,), generator=generator)
    images[labels == 0, :, :, :2] += 150
    images[labels == 1, :, :, 2:] += 150
    return images, labels


def _model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 2))


def test_seed_everything_repeats_every_generator() -> None:
    def draw() -> tuple[float, float, float, float]:
        generator = seed_everything(123)
        return (
            random.random(),
            float(np.random.rand()),
            torch.rand(1).item(),
            torch.rand(1, generator=generator).item(),
        )

    assert draw() == draw()


def test_fit_learns_and_records_history() -> None:
    seed_everything(0)
    images, labels = _separable_problem()
    train = TensorLoader(
        images, labels, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    test = TensorLoader(images, labels, batch_size=64)
    model = _model()
    history = fit(
        model, train, test, torch.optim.SGD(model.parameters(), lr=0.5), epochs=3, progress=False
    )
    assert isinstance(history, History) and history.epochs == 3
    assert len(history.test_acc) == 3 and len(history.epoch_seconds) == 3
    assert history.test_acc[-1] > 0.95
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.batch_loss) == 3 * len(train)
    assert np.mean(history.batch_loss[: len(train)]) == pytest.approx(
        history.train_loss[0], rel=0.05
    )
    loss, accuracy = evaluate(model, test)
    assert accuracy == pytest.approx(history.test_acc[-1]) and loss == pytest.approx(
        history.test_loss[-1]
    )


def test_fit_is_reproducible_with_the_same_seed() -> None:
    def run() -> list[float]:
        generator = seed_everything(7)
        images, labels = _separable_problem()
        loader = TensorLoader(images, labels, batch_size=32, shuffle=True, generator=generator)
        model = _model()
        history = fit(
            model,
            loader,
            None,
            torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=2,
            progress=False,
        )
        return history.train_loss

    assert run() == run()


def test_predict_returns_logits_and_targets_in_order() -> None:
    images, labels = _separable_problem(50)
    logits, targets = predict(_model(), TensorLoader(images, labels, batch_size=16))
    assert logits.shape == (50, 2) and torch.equal(targets, labels)


def test_fit_rejects_bad_arguments() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = _separable_problem(8)
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        fit(model, TensorLoader(images, labels, 4), None, optimizer, epochs=0)
    empty = TensorLoader(images[:0], labels[:0], 4)
    with pytest.raises(ValueError, match="empty train_loader"):
        fit(model, empty, None, optimizer)
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, empty)


def test_count_parameters() -> None:
    assert count_parameters(_model()) == 16 * 2 + 2
