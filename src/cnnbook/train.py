"""Seeding, training and evaluation loops shared by every training chapter.

The loops follow pytorch/examples ``mnist/main.py``: one function trains an
epoch, one evaluates, and :func:`fit` runs epochs and records a :class:`History`.
They accept any iterable of ``(inputs, targets)`` batches with a length: a
``torch.utils.data.DataLoader`` or the in-memory :class:`cnnbook.data.TensorLoader`.

Every loop in the book, packaged or written by hand in a chapter, reports its
progress the same way, through :class:`TrainingLog`: a tqdm bar with the latest
metrics, and one plain line per report in the format of :func:`format_metrics`.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

# Without ipywidgets, tqdm.auto falls back to a text bar and warns once; the text
# bar is what we want then, so the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found")
from tqdm.auto import tqdm  # noqa: E402

from .device import get_device, synchronize  # noqa: E402


class BatchIterable(Protocol):
    """What the loops need from a loader: iteration over batches and a length.

    Introduced in chapter 06.
    """

    def __iter__(self) -> Any: ...  # pragma: no cover

    def __len__(self) -> int: ...  # pragma: no cover


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def format_metrics(**metrics: float | int | str) -> str:
    """Metrics as one line, the same way in every chapter: ``loss 0.3227  acc 90.73%``.

    Names ending in ``acc`` are shown as percentages, names ending in
    ``seconds`` as seconds (``26.8 s``), other floats with four decimals,
    integers and strings as they are; underscores become spaces
    (``val_loss`` reads ``val loss``). Introduced in chapter 01.
    """
    parts = []
    for name, value in metrics.items():
        label = name.replace("_", " ")
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, str | bool | int | np.integer):
            text = str(value)
        elif name.endswith("acc"):
            text = f"{value:.2%}"
        elif name.endswith("seconds"):
            label, text = label.removesuffix("seconds").strip() or "time", f"{value:.1f} s"
        else:
            text = f"{value:.4f}"
        parts.append(f"{label} {text}")
    return "  ".join(parts)


class TrainingLog:
    """The book's one way of reporting a training run: a progress bar and a line per report.

    Call :meth:`step` once per step (or epoch) with the metrics you have; the
    tqdm bar advances and shows them. At the first step, every ``every``
    steps and at the last step, :meth:`step` also writes one line, ``step  40/100  loss 0.4859``,
    formatted by :func:`format_metrics`; :meth:`write` writes one whenever
    you like. The lines are kept in ``lines``. With ``progress=False`` there
    is no bar and no output; with ``bar=False`` only the lines. :func:`fit` reports through it, and so does every
    loop a chapter writes by hand. Use it as a context manager, or call
    :meth:`close`. Introduced in chapter 01.
    """

    def __init__(
        self,
        total: int,
        description: str = "train",
        every: int | None = None,
        progress: bool = True,
        unit: str = "step",
        bar: bool = True,
    ) -> None:
        if total < 1:
            raise ValueError(f"TrainingLog needs total >= 1 steps, got {total}.")
        if every is not None and every < 1:
            raise ValueError(f"every must be >= 1 (or None for no lines), got {every}.")
        self.total, self.every, self.progress, self.unit = total, every, progress, unit
        self.count = 0
        self.lines: list[str] = []
        # The bar and the lines share stdout, so a notebook keeps them in one block, in order,
        # and the saved page shows the lines and the bar's last state, not every redraw.
        self._bar = tqdm(
            file=sys.stdout,
            total=total,
            desc=description,
            unit=unit,
            disable=not (progress and bar),
            mininterval=1.0,
        )

    def step(self, **metrics: float | int | str) -> None:
        """Advance by one step; show ``metrics`` on the bar, and write a line when one is due."""
        self.count += 1
        self._bar.update(1)
        if metrics:
            # refresh=False: redraw at most once a second (mininterval), not every step.
            self._bar.set_postfix_str(format_metrics(**metrics), refresh=False)
        due = self.every is not None and (self.count % self.every == 0 or self.count == self.total)
        if due or (self.every is not None and self.count == 1):
            self.write(**metrics)

    def write(self, **metrics: float | int | str) -> str:
        """Write (and return) one line: the step count, then ``metrics``."""
        width = len(str(self.total))
        line = f"{self.unit} {self.count:>{width}}/{self.total}  {format_metrics(**metrics)}"
        self.lines.append(line)
        if self.progress:
            tqdm.write(line, file=sys.stdout)  # above any open bar, not through it
        return line

    def close(self) -> None:
        """Close the progress bar (its last state stays on screen)."""
        self._bar.close()

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU), and return a seeded generator.

    With ``deterministic=True`` cuDNN picks deterministic kernels and stops
    benchmarking, so two runs on the same machine give the same numbers. (Some
    GPU kernels have no deterministic version; those warn rather than fail.)
    Pass the returned generator to a ``DataLoader`` (``generator=``) so that its
    shuffling is reproducible too.

    Introduced in chapter 01.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run, plus every batch's training loss.

    Accuracies are fractions in [0, 1]; ``batch_loss`` has one entry per
    training batch, in order, across all epochs. The test columns have one entry
    per evaluation (after every epoch, unless :func:`fit` was told otherwise).
    ``steps`` counts optimizer steps; ``reached_at`` is the training time in
    seconds at which ``fit``'s ``target_acc`` was first reached (``None`` if never).

    Introduced in chapter 01.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)
    steps: int = 0
    reached_at: float | None = None

    @property
    def epochs(self) -> int:
        """How many epochs were recorded."""
        return len(self.train_loss)

    @property
    def train_seconds(self) -> float:
        """The training time of all epochs together (evaluation not counted)."""
        return sum(self.epoch_seconds)

    def as_dict(self) -> dict[str, list[float]]:
        """The history as a plain dictionary (for JSON or pandas)."""
        return asdict(self)


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    return batch.to(device, non_blocking=True)


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return get_device()


def _logits_batches(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | None,
    flip: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float logits, targets) on ``device`` for every batch, in eval mode and without gradients."""
    device = device or _model_device(model)
    model.eval()
    with torch.inference_mode():
        for inputs, targets in loader:
            inputs = _to_device(inputs, device)
            logits = model(inputs).float()
            if flip:
                logits = (logits + model(inputs.flip(-1)).float()) / 2
            yield logits, _to_device(targets, device)


def predict(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | None = None,
    flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``loader`` in eval mode; return (logits, targets) on the CPU.

    With ``flip=True`` (test-time augmentation, chapter 11) each batch also goes
    through the model mirrored left to right and the two logits are averaged: a
    picture and its mirror image show the same object, so the average is a
    slightly better guess. Introduced in chapter 07.
    """
    all_logits, all_targets = [], []
    for logits, targets in _logits_batches(model, loader, device, flip):
        all_logits.append(logits.cpu())
        all_targets.append(targets.cpu())
    if not all_logits:
        raise ValueError("predict() got a loader with no batches; check the dataset is not empty.")
    return torch.cat(all_logits), torch.cat(all_targets)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The fraction of rows of ``logits`` whose largest entry is at the target class.

    Introduced in chapter 11.
    """
    if logits.shape[0] != targets.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {targets.shape[0]} targets.")
    return (logits.argmax(dim=1) == targets).float().mean().item()


def confusion_matrix(
    predictions: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts ``matrix[true, predicted]`` as an ``int64`` tensor of shape (classes, classes).

    Introduced in chapter 07; :func:`cnnbook.plot.plot_confusion_matrix` draws it.
    """
    predictions, targets = predictions.reshape(-1).cpu().long(), targets.reshape(-1).cpu().long()
    if predictions.shape != targets.shape:
        raise ValueError(
            f"{predictions.numel()} predictions but {targets.numel()} targets; they must match."
        )
    flat = targets * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn | None = None,
    device: torch.device | None = None,
    flip: bool = False,
) -> tuple[float, float]:
    """Return ``(mean loss, accuracy)`` of ``model`` on every batch of ``loader``.

    The model is put in eval mode (dropout off, BatchNorm using running
    statistics) and no gradients are kept. ``loss_fn`` defaults to cross-entropy;
    ``flip`` averages each image's logits with its mirror image's, as in
    :func:`predict`. Introduced in chapter 06.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    total_loss, correct, count = 0.0, 0, 0
    for logits, targets in _logits_batches(model, loader, device, flip):
        total_loss += loss_fn(logits, targets).item() * targets.shape[0]
        correct += (logits.argmax(dim=1) == targets).sum().item()
        count += targets.shape[0]
    if count == 0:
        raise ValueError("evaluate() got a loader with no batches; check the dataset is not empty.")
    return total_loss / count, correct / count


def train_one_epoch(
    model: nn.Module,
    loader: BatchIterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn | None = None,
    device: torch.device | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    description: str = "train",
    progress: bool = True,
    batch_losses: list[float] | None = None,
) -> tuple[float, float]:
    """Train ``model`` for one pass over ``loader``; return ``(mean loss, accuracy)``.

    ``scheduler``, when given, is stepped after every batch (as one-cycle
    schedules expect). The progress bar (:class:`TrainingLog`) shows the
    running loss and accuracy. When
    ``batch_losses`` is a list, the loss of every batch is appended to it.

    Introduced in chapter 07.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = device or _model_device(model)
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    per_batch: list[torch.Tensor] = []
    log = TrainingLog(len(loader), description, progress=progress, unit="batch")
    for step, (inputs, targets) in enumerate(loader, start=1):
        inputs, targets = _to_device(inputs, device), _to_device(targets, device)
        logits = model(inputs)
        loss = loss_fn(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        # Accumulate on the device: calling .item() every batch would stall a GPU.
        total_loss += loss.detach() * targets.shape[0]
        if batch_losses is not None:
            per_batch.append(loss.detach())
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        count += targets.shape[0]
        if progress and (step % 20 == 0 or step == len(loader)):
            log.step(loss=total_loss.item() / count, acc=correct.item() / count)
        else:
            log.step()
    log.close()
    if count == 0:
        raise ValueError(
            "train_one_epoch() got a loader with no batches; check the dataset is not empty."
        )
    if batch_losses is not None:
        batch_losses.extend(torch.stack(per_batch).float().cpu().tolist())
    return total_loss.item() / count, correct.item() / count


class _FirstBatches:
    """The first ``count`` batches of ``loader``: an epoch cut short by ``max_steps``."""

    def __init__(self, loader: BatchIterable, count: int) -> None:
        self.loader = loader
        self.count = count

    def __len__(self) -> int:
        return min(len(self.loader), self.count)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(iter(self.loader), len(self))


def fit(
    model: nn.Module,
    train_loader: BatchIterable,
    test_loader: Iterable[tuple[torch.Tensor, torch.Tensor]] | None,
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    loss_fn: LossFn | None = None,
    device: torch.device | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: bool = True,
    *,
    flip: bool = False,
    evaluate_every_epoch: bool = True,
    target_acc: float | None = None,
    max_steps: int | None = None,
    eval_label: str = "val",
) -> History:
    """Train for ``epochs`` epochs, evaluating after each; return the :class:`History`.

    One progress bar per epoch, and after it one line (:class:`TrainingLog`)
    with the epoch's training loss and accuracy, the evaluation's, and the
    epoch's time; ``progress=False`` turns both off. ``scheduler`` is stepped
    once per batch. ``test_loader`` may be ``None`` to skip evaluation (the
    test columns of the history then stay empty); ``eval_label`` names it in
    the log (``"val"`` for a validation split, ``"test"`` for the test set). The epoch times exclude evaluation and, on a GPU,
    include waiting for its queued work (:func:`cnnbook.device.synchronize`).

    The CIFAR-10 recipe (chapter 11) needs a few more controls: ``flip``
    evaluates with flip test-time augmentation (:func:`predict`);
    ``evaluate_every_epoch=False`` evaluates only after the last epoch;
    ``target_acc`` evaluates after every epoch and stops at the first that
    reaches it (recording the training time in ``history.reached_at``);
    ``max_steps`` stops after that many optimizer steps (the scheduler keeps
    the full run's length) and then evaluates, a quick check that a
    configuration runs. Introduced in chapter 06.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be at least 1 (or None for no limit), got {max_steps}.")
    if isinstance(train_loader, Sized) and len(train_loader) == 0:
        raise ValueError("fit() got an empty train_loader; check the dataset and batch size.")
    device = device or _model_device(model)
    every_epoch = evaluate_every_epoch or target_acc is not None
    history = History()
    # One line per epoch; the bars are per epoch, in train_one_epoch.
    log = TrainingLog(epochs, every=1, progress=progress, unit="epoch", bar=False)
    for epoch in range(1, epochs + 1):
        loader = (
            train_loader
            if max_steps is None
            else _FirstBatches(train_loader, max_steps - history.steps)
        )
        start = time.perf_counter()
        loss, acc = train_one_epoch(
            model,
            loader,
            optimizer,
            loss_fn,
            device,
            scheduler,
            description=f"epoch {epoch}/{epochs}",
            progress=progress,
            batch_losses=history.batch_loss,
        )
        synchronize(device)
        history.epoch_seconds.append(time.perf_counter() - start)
        history.train_loss.append(loss)
        history.train_acc.append(acc)
        history.steps += len(loader)
        out_of_steps = max_steps is not None and history.steps >= max_steps
        metrics: dict[str, float] = {"train_loss": loss, "train_acc": acc}
        reached = False
        if test_loader is not None and (every_epoch or epoch == epochs or out_of_steps):
            test_loss, test_acc = evaluate(model, test_loader, loss_fn, device, flip=flip)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
            metrics |= {f"{eval_label}_loss": test_loss, f"{eval_label}_acc": test_acc}
            reached = target_acc is not None and test_acc >= target_acc
            if reached:
                history.reached_at = history.train_seconds
        log.step(**metrics, seconds=history.epoch_seconds[-1])
        if reached or out_of_steps:
            break
    log.close()
    return history


def seconds_per_step(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    steps: int = 5,
    warmup: int = 1,
    loss_fn: LossFn | None = None,
) -> float:
    """Mean wall-clock time of one training step (forward, backward, update) on one batch.

    The first ``warmup`` steps are run but not timed (they pay for memory
    allocation and kernel selection); the device finishes its queued work
    before the clock stops. ``loss_fn`` defaults to cross-entropy. Introduced in
    chapter 10 (the channels-last layout); chapter 11 times batch sizes, threads
    and number formats with it.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}.")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = inputs.device
    model.train()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters in ``model``: ``sum(p.numel() for p in ...)``.

    Introduced in chapter 01.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
