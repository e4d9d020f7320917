"""Seeding, training and evaluation loops shared by every training chapter.

The loops follow pytorch/examples ``mnist/main.py``: one function trains an
epoch, one evaluates, and :func:`fit` runs epochs and records a :class:`History`.
They accept any iterable of ``(inputs, targets)`` batches with a length: a
``torch.utils.data.DataLoader`` or the in-memory :class:`cnnbook.data.TensorLoader`.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

# Without ipywidgets, tqdm.auto falls back to a text bar and warns once; the text
# bar is what we want then, so the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found")
from tqdm.auto import tqdm  # noqa: E402

from .device import get_device  # noqa: E402


class BatchIterable(Protocol):
    """What the loops need from a loader: iteration over batches and a length."""

    def __iter__(self) -> Any: ...  # pragma: no cover

    def __len__(self) -> int: ...  # pragma: no cover


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every GPU), and return a seeded generator.

    With ``deterministic=True`` cuDNN picks deterministic kernels and stops
    benchmarking, so two runs on the same machine give the same numbers. (Some
    GPU kernels have no deterministic version; those warn rather than fail.)
    Pass the returned generator to a ``DataLoader`` (``generator=``) so that its
    shuffling is reproducible too.
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
    training batch, in order, across all epochs.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    batch_loss: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """How many epochs were recorded."""
        return len(self.train_loss)

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


def predict(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``loader`` in eval mode; return (logits, targets) on the CPU."""
    device = device or _model_device(model)
    model.eval()
    all_logits, all_targets = [], []
    with torch.inference_mode():
        for inputs, targets in loader:
            all_logits.append(model(_to_device(inputs, device)).float().cpu())
            all_targets.append(targets.cpu())
    return torch.cat(all_logits), torch.cat(all_targets)


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn | None = None,
    device: torch.device | None = None,
) -> tuple[float, float]:
    """Return ``(mean loss, accuracy)`` of ``model`` on every batch of ``loader``.

    The model is put in eval mode (dropout off, BatchNorm using running
    statistics) and no gradients are kept. ``loss_fn`` defaults to cross-entropy.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = device or _model_device(model)
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with torch.inference_mode():
        for inputs, targets in loader:
            inputs, targets = _to_device(inputs, device), _to_device(targets, device)
            logits = model(inputs)
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
    schedules expect). The tqdm bar shows the running loss and accuracy. When
    ``batch_losses`` is a list, the loss of every batch is appended to it.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = device or _model_device(model)
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    per_batch: list[torch.Tensor] = []
    bar = tqdm(loader, desc=description, total=len(loader), disable=not progress, mininterval=1.0)
    for step, (inputs, targets) in enumerate(bar, start=1):
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
        hard_targets = targets if targets.dim() == 1 else targets.argmax(dim=1)
        correct += (logits.detach().argmax(dim=1) == hard_targets).sum()
        count += targets.shape[0]
        if progress and (step % 20 == 0 or step == len(loader)):
            bar.set_postfix(  # refresh=False: redraw at most once a second (mininterval)
                loss=f"{total_loss.item() / count:.4f}",
                acc=f"{correct.item() / count:.4f}",
                refresh=False,
            )
    if count == 0:
        raise ValueError(
            "train_one_epoch() got a loader with no batches; check the dataset is not empty."
        )
    if batch_losses is not None:
        batch_losses.extend(torch.stack(per_batch).float().cpu().tolist())
    return total_loss.item() / count, correct.item() / count


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
) -> History:
    """Train for ``epochs`` epochs, evaluating after each; return the :class:`History`.

    One tqdm progress bar per epoch. ``test_loader`` may be ``None`` to skip
    evaluation (the test columns of the history then stay empty).
    ``scheduler`` is stepped once per batch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if isinstance(train_loader, Sized) and len(train_loader) == 0:
        raise ValueError("fit() got an empty train_loader; check the dataset and batch size.")
    device = device or _model_device(model)
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss, acc = train_one_epoch(
            model,
            train_loader,
            optimizer,
            loss_fn,
            device,
            scheduler,
            description=f"epoch {epoch}/{epochs}",
            progress=progress,
            batch_losses=history.batch_loss,
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        history.epoch_seconds.append(time.perf_counter() - start)
        history.train_loss.append(loss)
        history.train_acc.append(acc)
        if test_loader is not None:
            test_loss, test_acc = evaluate(model, test_loader, loss_fn, device)
            history.test_loss.append(test_loss)
            history.test_acc.append(test_acc)
    return history


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters in ``model``: ``sum(p.numel() for p in ...)``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
