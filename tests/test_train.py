"""seed_everything, fit, evaluate and predict on a tiny, fast problem."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from cnnbook import train
from cnnbook.data import TensorLoader
from cnnbook.train import (
    History,
    TrainingLog,
    count_parameters,
    evaluate,
    fit,
    format_metrics,
    predict,
    seconds_per_step,
    seed_everything,
)


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
    with pytest.raises(ValueError, match="no batches"):
        predict(model, empty)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        fit(model, TensorLoader(images, labels, 4), None, optimizer, max_steps=0)


def test_count_parameters() -> None:
    assert count_parameters(_model()) == 16 * 2 + 2


def _fit(epochs: int, **options: object) -> tuple[nn.Module, History]:
    seed_everything(0)
    images, labels = _separable_problem()
    train_loader = TensorLoader(
        images, labels, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)
    )  # 8 batches per epoch
    test_loader = TensorLoader(images, labels, batch_size=64)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    history = fit(model, train_loader, test_loader, optimizer, epochs, progress=False, **options)
    return model, history


def test_fit_counts_steps_and_evaluates_after_the_last_epoch_only_when_asked() -> None:
    _, every = _fit(3)
    assert every.steps == 24 and len(every.test_acc) == 3
    assert every.train_seconds == pytest.approx(sum(every.epoch_seconds))
    _, last = _fit(3, evaluate_every_epoch=False)
    assert len(last.test_acc) == 1 and last.test_acc[0] == every.test_acc[-1]


def test_fit_stops_at_the_target_accuracy() -> None:
    _, history = _fit(10, evaluate_every_epoch=False, target_acc=0.9)
    assert history.epochs < 10  # the separable problem reaches 90% within a few epochs
    assert history.test_acc[-1] >= 0.9 and all(acc < 0.9 for acc in history.test_acc[:-1])
    assert history.reached_at == pytest.approx(history.train_seconds)
    _, never = _fit(2, target_acc=1.01)
    assert never.epochs == 2 and never.reached_at is None


@pytest.mark.parametrize(("max_steps", "epochs"), [(3, 1), (8, 1), (11, 2)])
def test_fit_stops_after_max_steps_and_evaluates(max_steps: int, epochs: int) -> None:
    _, history = _fit(3, max_steps=max_steps)
    assert history.steps == max_steps and history.epochs == epochs
    assert len(history.batch_loss) == max_steps and len(history.test_acc) == epochs


def test_fit_evaluates_with_flip_tta_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    flips: list[bool] = []
    original = train.evaluate

    def spy(*args: object, flip: bool = False, **kwargs: object) -> tuple[float, float]:
        flips.append(flip)
        return original(*args, flip=flip, **kwargs)

    monkeypatch.setattr(train, "evaluate", spy)
    _fit(2, flip=True)
    assert flips == [True, True]


def test_each_epoch_is_synchronized_on_its_device(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.device] = []
    monkeypatch.setattr(train, "synchronize", seen.append)
    _fit(2)
    assert seen == [torch.device("cpu")] * 2


def test_seconds_per_step_trains_the_given_number_of_steps() -> None:
    images, labels = _separable_problem(16)
    inputs = images.float() / 255
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    seconds = seconds_per_step(model, inputs, labels, optimizer, steps=3, warmup=2)
    assert seconds > 0
    assert optimizer.state_dict()["state"] == {}  # plain SGD keeps no state; weights moved:
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        seconds_per_step(model, inputs, labels, optimizer, steps=0)


def test_format_metrics_formats_each_kind_of_number_one_way() -> None:
    line = format_metrics(
        val_loss=0.123456, val_acc=0.9073, steps=600, epoch_seconds=26.84, seconds=3.0, note="ok"
    )
    assert line == "val loss 0.1235  val acc 90.73%  steps 600  epoch 26.8 s  time 3.0 s  note ok"
    assert format_metrics(grad_norm=torch.tensor(2.0)) == "grad norm 2.0000"


def test_training_log_writes_the_first_every_nth_and_last_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with TrainingLog(10, "demo", every=4) as log:
        for step in range(10):
            log.step(loss=1 / (step + 1))
    assert [line[:10] for line in log.lines] == [
        "step  1/10",
        "step  4/10",
        "step  8/10",
        "step 10/10",
    ]
    assert log.lines[1] == "step  4/10  loss 0.2500"
    out, err = capsys.readouterr()
    # The bar redraws itself with carriage returns; what a terminal keeps of each line:
    shown = [line.rsplit("\r", 1)[-1] for line in out.split("\n")]
    assert [line for line in shown if line.startswith("step")] == log.lines
    assert "demo: 100%" in [line for line in shown if line][-1], "the bar's last state ends it"
    assert err == "", "bar and lines share stdout, so a notebook keeps them in one block"


def test_training_log_is_silent_without_progress(capsys: pytest.CaptureFixture[str]) -> None:
    with TrainingLog(3, every=1, progress=False) as log:
        for _ in range(3):
            log.step(loss=0.5)
    assert len(log.lines) == 3
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("total", "every"), [(0, None), (5, 0)])
def test_training_log_rejects_bad_arguments(total: int, every: int | None) -> None:
    with pytest.raises(ValueError, match="total >= 1|every must be >= 1"):
        TrainingLog(total, every=every)


def test_fit_writes_one_line_per_epoch_naming_the_evaluation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs, targets = _separable_problem()
    loader = TensorLoader(inputs, targets, batch_size=64)
    model = _model()
    fit(model, loader, loader, torch.optim.SGD(model.parameters(), lr=0.1), 2, eval_label="test")
    shown = [line.rsplit("\r", 1)[-1] for line in capsys.readouterr().out.split("\n")]
    lines = [line for line in shown if "train loss" in line]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2  train loss ")
    assert "  test loss " in lines[1] and "  test acc " in lines[1] and lines[1].endswith(" s")
