"""The CIFAR-10 chapter's training recipe, shared by the chapter (11) and the benchmark.

The recipe follows Keller Jordan's airbench: :class:`cnnbook.models.CifarNet`
with a patch-whitening first layer, the data as in-memory tensors with batch
augmentation (:class:`cnnbook.augment.BatchAugment`), SGD with Nesterov
momentum on a one-cycle (triangular) learning-rate schedule, a much larger
learning rate for the BatchNorm shifts, label smoothing, optional bfloat16
autocast and channels-last memory, and test-time flip augmentation. Every one of
these is a field of :class:`CifarRecipe`, so the chapter's one-change-at-a-time
comparison is a list of recipes. :func:`train_cifar10` builds the pieces and
trains with the book's :func:`cnnbook.train.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .augment import BatchAugment
from .data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader, normalize
from .distributed import DistributedContext, ShardedTensorLoader
from .models import CifarNet
from .train import evaluate, fit


class AutocastModel(nn.Module):
    """Wrap a model so that its forward pass runs under ``torch.autocast`` and returns floats.

    ``dtype=None`` turns autocast off. With ``channels_last=True`` inputs are
    converted to the channels-last memory format, which the convolution
    kernels of the CPU (oneDNN) and of recent GPUs prefer.

    Introduced in chapter 11.
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

    Introduced in chapter 11.
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


def one_cycle_average(total_steps: int) -> float:
    """The mean of :func:`one_cycle`'s factor over a run of ``total_steps`` steps.

    About 0.55 for any run of more than a few dozen steps. The ``"constant"``
    schedule of :class:`CifarRecipe` trains at this factor of the peak learning
    rate, so that it moves the weights by about as much as the one-cycle run.

    Introduced in chapter 11.
    """
    cycle = one_cycle(total_steps)
    return sum(cycle(step) for step in range(total_steps)) / total_steps


def accuracy_standard_error(accuracy: float, count: int) -> float:
    """The standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on ``n`` images.

    It counts only the luck of which images were evaluated, not the run-to-run
    spread of training (seed, machine), so it is a lower bound on the noise.

    Introduced in chapter 11.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must lie in [0, 1], got {accuracy}.")
    return math.sqrt(accuracy * (1.0 - accuracy) / count)


def difference_margin(
    accuracy_a: float,
    accuracy_b: float,
    count_a: int,
    count_b: int | None = None,
    z: float = 3.0,
) -> float:
    """``z`` standard errors of the difference of two accuracies (on ``count_a`` and ``count_b`` images).

    The two accuracies are treated as independent, so the standard error of
    their difference is the root of the sum of their squared standard errors
    (:func:`accuracy_standard_error`); ``count_b`` defaults to ``count_a``.
    Two models scored on the same images are not independent: their errors
    are positively correlated, much of this image-sampling noise cancels in
    their difference, and the margin overstates it. What it leaves out is the
    run-to-run spread of training (seed, machine), which does not cancel. So
    a difference smaller than the margin (three standard errors by default) is
    reported, not asserted, and one to be asserted should be several times
    larger.

    Introduced in chapter 11.
    """
    count_b = count_a if count_b is None else count_b
    return z * math.hypot(
        accuracy_standard_error(accuracy_a, count_a), accuracy_standard_error(accuracy_b, count_b)
    )


@dataclass
class CifarRecipe:
    """The settings of :func:`train_cifar10`. Learning rates are per mean loss.

    ``network`` makes the model (``None``: ``CifarNet(widths)``). ``lr`` is the
    peak learning rate of the weights for a batch of 1024 (scaled linearly with
    ``batch_size``); the BatchNorm shifts get ``bias_lr_scale`` times more.
    ``weight_decay`` is PyTorch's coupled decay. ``schedule`` is ``"one_cycle"``
    (:func:`one_cycle`) or ``"constant"``, a constant factor equal to the
    one-cycle schedule's average, so that both move the weights by about as
    much in total. ``normalize`` standardises the inputs with CIFAR-10's
    statistics; ``crop_padding`` (0: none) and ``flip`` are the training
    augmentation. ``whitening`` sets CifarNet's first layer from the data and
    freezes it. ``autocast`` is ``"bf16"`` or ``None``; ``tta`` averages the
    logits of each evaluated image and its mirror image. The defaults are the
    chapter's final recipe.

    Introduced in chapter 11.
    """

    widths: tuple[int, int, int] = (32, 64, 128)
    epochs: int = 4
    batch_size: int = 512
    lr: float = 1.5
    momentum: float = 0.85
    weight_decay: float = 0.0153 / 11.5
    bias_lr_scale: float = 64.0
    schedule: str = "one_cycle"
    label_smoothing: float = 0.2
    normalize: bool = True
    crop_padding: int = 2
    flip: bool = True
    whitening: bool = True
    autocast: str | None = "bf16"
    channels_last: bool = True
    tta: bool = True
    seed: int = 0
    network: Callable[[], nn.Module] | None = None

    def as_dict(self) -> dict:
        """The settings as a plain dictionary (for printing or JSON)."""
        return asdict(self)


@dataclass
class CifarResult:
    """What :func:`train_cifar10` returns: the model, accuracies and timings.

    ``test_acc`` lists the accuracy on the evaluated images after each evaluated
    epoch (with TTA when the recipe asks for it) and ``test_acc_plain`` the last
    one without TTA; ``train_seconds`` counts training only, without the
    evaluations; ``epoch_seconds`` is per epoch. ``reached_at`` is the training
    time at which the target accuracy was first reached (``None`` if never).
    ``steps`` counts the optimizer steps taken.

    Introduced in chapter 11.
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
        """The accuracy on the evaluated images after the last epoch."""
        return self.test_acc[-1] if self.test_acc else float("nan")


def build_optimizer(model: nn.Module, recipe: CifarRecipe) -> torch.optim.SGD:
    """SGD with Nesterov momentum and two groups: BatchNorm shifts, and everything else.

    Only parameters that require gradients are optimised (CifarNet's BatchNorm
    scales and a frozen whitening layer are not).

    Introduced in chapter 11.
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
    """Batches of an evaluation split, scaled to [0, 1] and normalised with CIFAR-10's statistics.

    Introduced in chapter 11.
    """
    return TensorLoader(
        images, labels, batch_size=batch_size, transform=normalize, device=device, drop_last=False
    )


def build_model(
    recipe: CifarRecipe, train_images: torch.Tensor, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    """The recipe's network on ``device``, and the model to train (autocast, channels-last).

    Returns ``(net, model)``: ``net`` holds the parameters, ``model`` wraps it in
    :class:`AutocastModel`. With ``recipe.whitening`` the first layer is set from
    5,000 training images drawn at random and frozen.

    Introduced in chapter 11.
    """
    torch.manual_seed(recipe.seed)
    net = (recipe.network or (lambda: CifarNet(widths=recipe.widths)))().to(device)
    if recipe.whitening:
        if not isinstance(net, CifarNet):
            raise ValueError(
                f"whitening=True needs a CifarNet, got {type(net).__name__}; "
                "set whitening=False for other networks."
            )
        # Patches from 5,000 images drawn at random: a split stored class by class (the
        # offline JPEG copy) would otherwise give the whitening airplanes only.
        chosen = torch.randperm(
            len(train_images), generator=torch.Generator().manual_seed(recipe.seed)
        )[:5000]
        sample = train_images[chosen].to(device).float().div_(255)
        net.init_whitening(normalize(sample) if recipe.normalize else sample)
        net.whiten.weight.requires_grad_(False)
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if recipe.autocast == "bf16" else None
    return net, AutocastModel(net, dtype=dtype, channels_last=recipe.channels_last)


def _check_recipe(recipe: CifarRecipe) -> None:
    if recipe.epochs < 1:
        raise ValueError(f"recipe.epochs must be at least 1, got {recipe.epochs}.")
    if recipe.autocast not in (None, "bf16"):
        raise ValueError(f"recipe.autocast must be 'bf16' or None, got {recipe.autocast!r}.")
    if recipe.schedule not in ("one_cycle", "constant"):
        raise ValueError(
            f"recipe.schedule must be 'one_cycle' or 'constant', got {recipe.schedule!r}."
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
    distributed: DistributedContext | None = None,
) -> CifarResult:
    """Train the recipe's network on uint8 tensors; return a :class:`CifarResult`.

    Images are ``uint8 (N, 3, 32, 32)`` as from :func:`cnnbook.data.load_tensors`.
    The "test" images are the ones evaluated: in the chapter, the validation
    split. They are evaluated after the last epoch, or after every epoch when
    ``eval_every_epoch`` (or ``target_acc``) is set; with ``target_acc``
    training stops at the first evaluation that reaches it. Evaluation time is
    not counted in ``train_seconds``. ``max_steps`` stops training after that
    many optimizer steps (the learning-rate schedule keeps the full run's
    length) and then evaluates: a quick check that a configuration runs, not a
    way to train. Training is :func:`cnnbook.train.fit`.

    Under torchrun, pass the :class:`cnnbook.distributed.DistributedContext`
    as ``distributed`` (chapter 12): ``recipe.batch_size`` stays the global
    batch, each of the N ranks trains on ``batch_size / N`` images of its
    shard (:class:`cnnbook.distributed.ShardedTensorLoader`, its own
    augmentation draws) with the model in ``DistributedDataParallel``, and every
    rank evaluates the whole evaluation split, so that all stop together.
    BatchNorm normalises each rank's batch by that batch's own statistics (no
    ``SyncBatchNorm``); its running statistics are rank 0's, which
    ``DistributedDataParallel`` broadcasts to every rank at the start of each
    forward pass (``forward_sync_buffers=True``, the default; formerly
    ``broadcast_buffers``), each rank then updating its copy with its own batch. Introduced in chapter 11.
    """
    _check_recipe(recipe)
    world_size = distributed.world_size if distributed is not None else 1
    parallel = distributed is not None and distributed.is_distributed and world_size > 1
    if recipe.batch_size % world_size:
        raise ValueError(
            f"recipe.batch_size {recipe.batch_size} is the global batch and must split evenly "
            f"over the {world_size} processes; choose a multiple of {world_size}."
        )
    rank = distributed.rank if distributed is not None else 0
    generator = torch.Generator().manual_seed(recipe.seed + rank)
    net, model = build_model(recipe, train_images, device)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if recipe.normalize else (None, None)
    augment = BatchAugment(recipe.crop_padding, recipe.flip, mean, std, generator=generator)
    train_loader: TensorLoader
    if parallel:
        device_ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
        train_loader = ShardedTensorLoader(
            train_images, train_labels, recipe.batch_size // world_size, rank, world_size,
            shuffle=True, transform=augment, device=device, seed=recipe.seed, drop_last=True,
        )  # fmt: skip
    else:
        train_loader = TensorLoader(
            train_images, train_labels, recipe.batch_size, shuffle=True, transform=augment,
            device=device, generator=generator, drop_last=True,
        )  # fmt: skip
    test_loader = TensorLoader(
        test_images, test_labels, batch_size=1000, device=device,
        transform=normalize if recipe.normalize else None,
    )  # fmt: skip
    optimizer = build_optimizer(net, recipe)
    total_steps = recipe.epochs * len(train_loader)
    cycle = one_cycle(total_steps)
    if recipe.schedule == "constant":
        average = one_cycle_average(total_steps)
        cycle = lambda step: average  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cycle)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history = fit(
        model, train_loader, test_loader, optimizer, recipe.epochs, loss_fn, device, scheduler,
        progress, flip=recipe.tta, evaluate_every_epoch=eval_every_epoch, target_acc=target_acc,
        max_steps=max_steps,
    )  # fmt: skip
    return CifarResult(
        model=model.module if isinstance(model, DistributedDataParallel) else model,
        test_acc=history.test_acc,
        test_acc_plain=evaluate(model, test_loader, device=device)[1],
        epoch_seconds=history.epoch_seconds,
        train_seconds=history.train_seconds,
        epochs=history.epochs,
        reached_at=history.reached_at,
        steps=history.steps,
    )


def _setting(value: object) -> str:
    if callable(value):
        return getattr(value, "__name__", repr(value))
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def describe_recipe(recipe: CifarRecipe) -> str:
    """One line naming the recipe's settings, with the learning rate as applied.

    The learning rate is the one the weights get at this batch size (``lr`` is
    per batch of 1024); with the ``"constant"`` schedule it is the constant
    rate, :func:`one_cycle_average` (0.55) times the peak, shown as both. The
    average is taken over 1,000 steps: a run of a few dozen steps or more differs
    from it by less than 0.2%.

    Introduced in chapter 11.
    """
    network = recipe.network.__name__ if recipe.network else f"CifarNet{recipe.widths}"
    augmentation = " + ".join(
        name
        for name, used in (
            (f"crop±{recipe.crop_padding}", recipe.crop_padding),
            ("flip", recipe.flip),
        )
        if used
    )
    peak = recipe.lr * recipe.batch_size / 1024
    if recipe.schedule == "constant":
        average = one_cycle_average(1000)
        rate = f"constant lr {average * peak:.3g} ({average:.2f} × {peak:.3g})"
    else:
        rate = f"one-cycle lr, peak {peak:.3g}"
    epochs = f"{recipe.epochs} epoch{'s' if recipe.epochs != 1 else ''}"
    return (
        f"{network}, {epochs}, batch {recipe.batch_size}, SGD with {rate}, Nesterov momentum "
        f"{recipe.momentum:g}, weight decay {recipe.weight_decay:.3g}, BatchNorm shifts at "
        f"{recipe.bias_lr_scale:g}× lr, label smoothing {recipe.label_smoothing:g}, "
        f"augmentation: {augmentation or 'none'}, normalize={recipe.normalize}, "
        f"whitening={recipe.whitening}, autocast={recipe.autocast}, TTA={recipe.tta}"
    )


def recipe_changes(before: CifarRecipe, after: CifarRecipe) -> list[str]:
    """Every setting in which ``after`` differs from ``before``, as ``"name: old → new"``.

    Fields are listed in :class:`CifarRecipe`'s order, with the field's own
    value (``lr`` per batch of 1024); a ``network`` of ``None`` is named
    ``CifarNet``. A comparison of two recipes changes exactly these things.

    Introduced in chapter 11.
    """
    changes = []
    for setting in fields(CifarRecipe):
        old, new = getattr(before, setting.name), getattr(after, setting.name)
        if setting.name == "network":
            old, new = old or CifarNet, new or CifarNet
        if old != new:
            changes.append(f"{setting.name}: {_setting(old)} → {_setting(new)}")
    return changes
