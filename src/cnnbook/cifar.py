"""The CIFAR-10 chapter's fast training recipe, shared by the chapter and the benchmark.

The recipe follows Keller Jordan's airbench: :class:`cnnbook.models.CifarNet`
with a patch-whitening first layer, the data as in-memory tensors with batch
augmentation (:class:`cnnbook.augment.BatchAugment`), SGD with Nesterov
momentum on a one-cycle (triangular) learning-rate schedule, a much larger
learning rate for the BatchNorm shifts, label smoothing, optional bfloat16
autocast and channels-last memory, and test-time flip augmentation.
:func:`train_cifar10` runs it with the book's :func:`cnnbook.train.train_one_epoch`,
one epoch at a time, and can stop as soon as a target accuracy is reached.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .augment import CIFAR10_MEAN, CIFAR10_STD, BatchAugment, accuracy, normalize, predict_tta
from .data import TensorLoader
from .models import CifarNet
from .train import train_one_epoch


class AutocastModel(nn.Module):
    """Wrap a model so that its forward pass runs under ``torch.autocast`` and returns floats.

    ``dtype=None`` turns autocast off. With ``channels_last=True`` inputs are
    converted to the channels-last memory format, which the convolution
    kernels of the CPU (oneDNN) and of recent GPUs prefer.
    """

    def __init__(
        self, model: nn.Module, dtype: torch.dtype | None = None, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.model(x).float()


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work, so that a timer reads true time.

    GPUs run kernels asynchronously: without this, a timer stopped after a
    training loop measures how fast work was queued, not how fast it ran. On
    the CPU there is nothing to wait for.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _FirstBatches:
    """The first ``count`` batches of ``loader``: an epoch cut short by ``max_steps``."""

    def __init__(self, loader: TensorLoader, count: int) -> None:
        self.loader = loader
        self.count = count

    def __len__(self) -> int:
        return min(len(self.loader), self.count)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(iter(self.loader), len(self))


def one_cycle(
    total_steps: int,
    start: float = 0.2,
    peak: float = 1.0,
    end: float = 0.07,
    peak_at: float = 0.23,
) -> Callable[[int], float]:
    """A triangular one-cycle factor for ``LambdaLR``: ``start`` → ``peak`` → ``end``.

    The factor rises linearly from ``start`` to ``peak`` over the first
    ``peak_at`` fraction of ``total_steps`` and falls linearly to ``end`` at the
    last step (airbench's schedule). Multiply it by the peak learning rate.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}.")
    if not 0.0 < peak_at < 1.0:
        raise ValueError(f"peak_at must be a fraction strictly between 0 and 1, got {peak_at}.")
    warmup = max(1, int(total_steps * peak_at))

    def factor(step: int) -> float:
        if step < warmup:
            return start + (peak - start) * step / warmup
        fraction = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return peak + (end - peak) * fraction

    return factor


@dataclass
class CifarRecipe:
    """The settings of :func:`train_cifar10`. Learning rates are per mean loss.

    ``lr`` is the peak learning rate of the weights for a batch of 1024
    (scaled linearly with ``batch_size``); the BatchNorm shifts get
    ``bias_lr_scale`` times more. ``weight_decay`` is PyTorch's coupled decay.
    ``autocast`` is ``"bf16"`` or ``None``; ``tta`` averages the logits of each
    test image and its mirror image.
    """

    widths: tuple[int, int, int] = (32, 64, 128)
    epochs: int = 4
    batch_size: int = 512
    lr: float = 1.5
    momentum: float = 0.85
    weight_decay: float = 0.0153 / 11.5
    bias_lr_scale: float = 64.0
    label_smoothing: float = 0.2
    crop_padding: int = 2
    whitening: bool = True
    autocast: str | None = "bf16"
    channels_last: bool = True
    tta: bool = True
    seed: int = 0

    def as_dict(self) -> dict:
        """The settings as a plain dictionary (for printing or JSON)."""
        return asdict(self)


@dataclass
class CifarResult:
    """What :func:`train_cifar10` returns: the model, accuracies and timings.

    ``test_acc`` lists the test accuracy after each evaluated epoch (with TTA when
    the recipe asks for it); ``train_seconds`` counts training only, without the
    evaluations; ``epoch_seconds`` is per epoch. ``reached_at`` is the training
    time at which the target accuracy was first reached (``None`` if never).
    ``steps`` counts the optimizer steps taken.
    """

    model: nn.Module
    test_acc: list[float] = field(default_factory=list)
    test_acc_plain: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    epochs: int = 0
    reached_at: float | None = None
    steps: int = 0

    @property
    def final_acc(self) -> float:
        """The test accuracy after the last epoch."""
        return self.test_acc[-1] if self.test_acc else float("nan")


def build_optimizer(model: nn.Module, recipe: CifarRecipe) -> torch.optim.SGD:
    """SGD with Nesterov momentum and two groups: BatchNorm shifts, and everything else.

    Only parameters that require gradients are optimised (CifarNet's BatchNorm
    scales and a frozen whitening layer are not).
    """
    norm_ids = {
        id(parameter)
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for parameter in module.parameters()
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    norm_biases = [p for p in trainable if id(p) in norm_ids]
    others = [p for p in trainable if id(p) not in norm_ids]
    lr = recipe.lr * recipe.batch_size / 1024
    bias_lr = lr * recipe.bias_lr_scale
    groups = [
        {"params": others, "lr": lr, "weight_decay": recipe.weight_decay},
        {"params": norm_biases, "lr": bias_lr, "weight_decay": recipe.weight_decay * lr / bias_lr},
    ]
    return torch.optim.SGD(
        [g for g in groups if g["params"]], lr=lr, momentum=recipe.momentum, nesterov=True
    )


def normalized_test_loader(
    images: torch.Tensor, labels: torch.Tensor, device: torch.device, batch_size: int = 1000
) -> TensorLoader:
    """Batches of the test split, scaled to [0, 1] and normalised with CIFAR-10's statistics."""
    return TensorLoader(
        images, labels, batch_size=batch_size, transform=normalize, device=device, drop_last=False
    )


def train_cifar10(
    recipe: CifarRecipe,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    device: torch.device,
    target_acc: float | None = None,
    eval_every_epoch: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
) -> CifarResult:
    """Train a :class:`CifarNet` with ``recipe`` on uint8 tensors; return a :class:`CifarResult`.

    Images are ``uint8 (N, 3, 32, 32)`` as from :func:`cnnbook.data.load_tensors`.
    The test split is evaluated after the last epoch, or after every epoch when
    ``eval_every_epoch`` (or ``target_acc``) is set; with ``target_acc`` training
    stops at the first evaluation that reaches it. Evaluation time is not counted
    in ``train_seconds``. ``max_steps`` stops training after that many optimizer
    steps (the learning-rate schedule keeps the full run's length) and then
    evaluates: a quick check that a configuration runs, not a way to train.
    """
    if recipe.epochs < 1:
        raise ValueError(f"recipe.epochs must be at least 1, got {recipe.epochs}.")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be at least 1 (or None for no limit), got {max_steps}.")
    if recipe.autocast not in (None, "bf16"):
        raise ValueError(f"recipe.autocast must be 'bf16' or None, got {recipe.autocast!r}.")
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    net = CifarNet(widths=recipe.widths).to(device)
    if recipe.whitening:
        # Patches from 5,000 images drawn at random: a split stored class by class (the
        # offline JPEG copy) would otherwise give the whitening airplanes only.
        chosen = torch.randperm(
            len(train_images), generator=torch.Generator().manual_seed(recipe.seed)
        )[:5000]
        sample = train_images[chosen].to(device).float().div_(255)
        net.init_whitening(normalize(sample))
        net.whiten.weight.requires_grad_(False)
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if recipe.autocast == "bf16" else None
    model = AutocastModel(net, dtype=dtype, channels_last=recipe.channels_last)
    augment = BatchAugment(crop_padding=recipe.crop_padding, flip=True, generator=generator)
    train_loader = TensorLoader(
        train_images,
        train_labels,
        batch_size=recipe.batch_size,
        shuffle=True,
        transform=augment,
        device=device,
        generator=generator,
        drop_last=True,
    )
    test_loader = normalized_test_loader(test_images, test_labels, device)
    optimizer = build_optimizer(net, recipe)
    total_steps = recipe.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(total_steps))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    result = CifarResult(model=model)
    evaluate_each = eval_every_epoch or target_acc is not None
    for epoch in range(1, recipe.epochs + 1):
        loader = (
            train_loader
            if max_steps is None
            else _FirstBatches(train_loader, max_steps - result.steps)
        )
        start = time.perf_counter()
        train_one_epoch(
            model, loader, optimizer, loss_fn, device, scheduler,
            description=f"epoch {epoch}/{recipe.epochs}", progress=progress,
        )  # fmt: skip
        synchronize(device)
        seconds = time.perf_counter() - start
        result.epoch_seconds.append(seconds)
        result.train_seconds += seconds
        result.epochs = epoch
        result.steps += len(loader)
        out_of_steps = max_steps is not None and result.steps >= max_steps
        if evaluate_each or epoch == recipe.epochs or out_of_steps:
            logits, targets = predict_tta(model, test_loader, flip=recipe.tta, device=device)
            result.test_acc.append(accuracy(logits, targets))
            if target_acc is not None and result.test_acc[-1] >= target_acc:
                result.reached_at = result.train_seconds
                break
        if out_of_steps:
            break
    logits, targets = predict_tta(model, test_loader, flip=False, device=device)
    result.test_acc_plain = accuracy(logits, targets)
    return result


def describe_recipe(recipe: CifarRecipe) -> str:
    """One line naming the recipe's main settings."""
    return (
        f"CifarNet{recipe.widths}, {recipe.epochs} epochs, batch {recipe.batch_size}, "
        f"one-cycle SGD (peak lr {recipe.lr * recipe.batch_size / 1024:g}), "
        f"label smoothing {recipe.label_smoothing}, crop±{recipe.crop_padding}+flip, "
        f"whitening={recipe.whitening}, autocast={recipe.autocast}, TTA={recipe.tta}"
    )


__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "AutocastModel",
    "CifarRecipe",
    "CifarResult",
    "build_optimizer",
    "describe_recipe",
    "normalized_test_loader",
    "one_cycle",
    "synchronize",
    "train_cifar10",
]
