"""The data-parallel experiments of chapter 12, run as ``torchrun ... -m cnnbook.ddp_experiments``.

Five experiments, each a subcommand that rank 0 reports as one JSON object
(written to ``--out`` and printed as the last line of the log):

- ``allreduce``: every rank holds a small tensor; after ``all_reduce`` every
  rank holds their sum.
- ``equivalence``: train for a few steps with ``DistributedDataParallel``, each
  rank on batch B of its shard; every rank's weights are gathered and compared
  bit for bit, and rank 0 saves them, which the chapter compares with one
  process trained on batch N·B (:func:`train_steps`).
- ``throughput``: time training steps with DDP and the same steps without
  gradient synchronisation (``no_sync``), interleaved, and time DDP's own
  all-reduce of each gradient bucket with a communication hook.
- ``cifar10``: chapter 11's recipe (:func:`cnnbook.cifar.train_cifar10`) for a
  few steps under DDP, a check that the pipeline runs.
- ``resume``: train with a checkpoint after every epoch; with
  ``--fail-at-epoch`` one rank kills itself once, ``torchrun --max-restarts``
  restarts every process, and the run resumes from the last checkpoint.

Run without torchrun, each runs as a single process. The chapter launches them
with :func:`cnnbook.distributed.launch_torchrun`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import statistics
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from .cifar import CifarRecipe, train_cifar10
from .data import cifar10, dataset_source, load_tensors, normalize_mnist, random_subset
from .device import synchronize
from .distributed import (
    DistributedContext,
    ShardedTensorLoader,
    all_reduce_mean,
    distributed_session,
    gather_flat,
    load_training_state,
    main_process_first,
    print_rank0,
    quiet_unless_main,
    replicas_identical,
    save_on_rank0,
    save_training_state,
    seed_per_rank,
    show_progress,
)
from .models import MnistBNCNN, MnistCNN
from .train import TrainingLog, fit, format_metrics, train_one_epoch

MODEL_KINDS = ("plain", "batchnorm", "syncbatchnorm")
EXPERIMENTS = ("allreduce", "equivalence", "throughput", "cifar10", "resume")


def make_model(kind: str) -> nn.Module:
    """The network of an equivalence run: ``plain``, ``batchnorm`` or ``syncbatchnorm``.

    ``plain`` is :class:`cnnbook.models.MnistCNN` (no normalisation layer),
    ``batchnorm`` is :class:`cnnbook.models.MnistBNCNN`, and ``syncbatchnorm``
    the same with every BatchNorm converted by
    ``nn.SyncBatchNorm.convert_sync_batchnorm``. Introduced in chapter 12.
    """
    if kind == "plain":
        return MnistCNN()
    if kind == "batchnorm":
        return MnistBNCNN()
    if kind == "syncbatchnorm":
        return nn.SyncBatchNorm.convert_sync_batchnorm(MnistBNCNN())
    raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}.")


class SplitBatchForward(nn.Module):
    """Run ``model`` separately on ``chunks`` interleaved parts of each batch, as DDP's ranks do.

    Part ``r`` is samples ``r, r + chunks, ...``, what rank ``r`` of ``chunks``
    gets from a :class:`cnnbook.distributed.ShardedTensorLoader`; the outputs
    come back in the batch's order. Layers that look at each sample alone do
    not notice. BatchNorm does: it normalises each part with that part's
    statistics, as each process under DDP does with its shard. So one process with this wrapper
    reproduces a DDP run with per-process BatchNorm. Introduced in chapter 12.
    """

    def __init__(self, model: nn.Module, chunks: int) -> None:
        super().__init__()
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, got {chunks}.")
        self.model, self.chunks = model, chunks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.chunks:
            raise ValueError(
                f"a batch of {x.shape[0]} does not split into {self.chunks} equal parts."
            )
        # Part r holds samples r, r + chunks, r + 2 chunks, ...: the samples rank r gets
        # from a ShardedTensorLoader. The outputs are put back in the batch's order.
        parts = [self.model(x[part :: self.chunks]) for part in range(self.chunks)]
        return torch.stack(parts, dim=1).flatten(0, 1)


def train_steps(
    context: DistributedContext,
    kind: str,
    batch_size: int,
    steps: int,
    lr: float = 0.02,
    seed: int = 0,
    split: int = 1,
    progress: bool = True,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[nn.Module, list[float]]:
    """Train ``make_model(kind)`` on MNIST for ``steps`` steps; return it and the loss per step.

    Each rank takes batches of ``batch_size`` from its shard
    (:class:`cnnbook.distributed.ShardedTensorLoader`, seeded with ``seed``);
    with more than one process the model is wrapped in
    ``DistributedDataParallel``. Training is :func:`cnnbook.train.fit` with SGD
    (momentum 0.9), unchanged. ``split > 1`` wraps the model in
    :class:`SplitBatchForward`. The losses are averaged over the ranks: the
    loss of the global batch. ``data`` is ``(images, labels)`` (default: the
    MNIST training split). The initial weights come from ``seed`` (DDP copies
    rank 0's to every rank anyway); the random draws of training (dropout,
    augmentation) from ``seed + rank`` (:func:`cnnbook.distributed.seed_per_rank`),
    so that the ranks do not repeat each other's. Introduced in chapter 12.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    images, labels = data if data is not None else load_tensors("mnist", train=True)
    torch.manual_seed(seed)
    net = make_model(kind).to(context.device)
    model: nn.Module = net
    if context.is_distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=device_ids)
    seed_per_rank(seed, context)
    if split > 1:
        model = SplitBatchForward(model, split)
    loader = ShardedTensorLoader.for_context(
        context, images, labels, batch_size, transform=normalize_mnist, seed=seed, drop_last=True
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    history = fit(
        model, loader, None, optimizer, epochs=math.ceil(steps / len(loader)),
        device=context.device, progress=show_progress(context, progress), max_steps=steps,
    )  # fmt: skip
    losses = all_reduce_mean(torch.tensor(history.batch_loss, device=context.device), context)
    return net, losses.tolist()


def allreduce_demo(context: DistributedContext) -> dict:
    """Every rank holds ``[r + 1, 10(r + 1)]``; ``all_reduce`` leaves their sum on every rank.

    Returns each rank's tensor before and after, gathered on every rank.
    Introduced in chapter 12.
    """
    mine = torch.tensor([context.rank + 1.0, 10.0 * (context.rank + 1)], device=context.device)
    record = {"rank": context.rank, "before": mine.tolist()}
    if context.is_distributed:
        dist.all_reduce(mine, op=dist.ReduceOp.SUM)
    record["after"] = mine.tolist()
    records: list = [record]
    if context.is_distributed:
        records = [None] * context.world_size
        dist.all_gather_object(records, record)
    for item in records:
        print_rank0(context, f"rank {item['rank']}: before {item['before']}  after {item['after']}")
    return {"world_size": context.world_size, "backend": context.backend, "ranks": records}


def equivalence_run(
    context: DistributedContext,
    kinds: list[str],
    batch_size: int,
    steps: int,
    out_dir: Path,
    lr: float = 0.02,
    seed: int = 0,
) -> dict:
    """Train each kind of model with DDP; rank 0 saves its weights to ``out_dir/<kind>.pt``.

    Every rank's parameters are then gathered and compared bit for bit
    (:func:`cnnbook.distributed.replicas_identical`), and so are its buffers
    (BatchNorm's running statistics, which DDP does not average). A kind that
    cannot run here (``syncbatchnorm`` on the CPU) is reported with its error
    message instead of a file. Introduced in chapter 12.
    """
    # A loader that names its source does so once; a download happens once.
    with quiet_unless_main(context), main_process_first(context):
        data = load_tensors("mnist", train=True)
    report: dict = {
        "world_size": context.world_size, "backend": context.backend, "lr": lr,
        "batch_per_rank": batch_size, "global_batch": batch_size * context.world_size,
        "steps": steps, "runs": {},
    }  # fmt: skip
    for kind in kinds:
        print_rank0(context, f"== {kind}: {steps} steps, batch {batch_size} per rank")
        try:
            net, losses = train_steps(context, kind, batch_size, steps, lr, seed, data=data)
        except ValueError as error:  # every rank fails the same way, before any collective
            print_rank0(context, f"{kind} cannot run here: {error}")
            report["runs"][kind] = {"error": str(error)}
            continue
        path = out_dir / f"{kind}.pt"
        save_on_rank0(context, net.state_dict(), path)
        parameters = replicas_identical(net, context)
        has_buffers = next(net.buffers(), None) is not None
        buffers = replicas_identical(net, context, buffers=True) if has_buffers else None
        print_rank0(
            context, f"{kind}: parameters identical on all {parameters['world_size']} ranks: "
            f"{parameters['identical']}",
        )  # fmt: skip
        report["runs"][kind] = {
            "weights": str(path), "losses": losses, "parameters": parameters, "buffers": buffers,
        }  # fmt: skip
    return report


def _forever(loader: ShardedTensorLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return itertools.chain.from_iterable(itertools.repeat(loader))


class BucketTimer:
    """A DDP communication hook that all-reduces each gradient bucket and times it.

    Register it with ``ddp_model.register_comm_hook(timer, timer.hook)``. It
    does what DDP does by default (``default_hooks.allreduce_hook``: sum the
    bucket over the ranks, divide by the world size) and records, per bucket,
    its size in bytes and the seconds from the bucket being ready to its
    all-reduce being complete on this rank, which includes waiting for slower
    ranks. ``calls`` counts buckets. Introduced in chapter 12.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.seconds: list[float] = []
        self.bucket_bytes: list[int] = []

    def hook(self, state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        """Launch the bucket's all-reduce and note when it completes."""
        start = time.perf_counter()
        self.calls += 1
        buffer = bucket.buffer()
        self.bucket_bytes.append(buffer.numel() * buffer.element_size())
        future = default_hooks.allreduce_hook(None, bucket)  # type: ignore[arg-type]

        def done(completed: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            self.seconds.append(time.perf_counter() - start)
            return completed.value()

        return future.then(done)


# DDP checks a hook's annotations against the objects themselves; with postponed evaluation
# (``from __future__ import annotations``) they would be strings, so they are set here.
BucketTimer.hook.__annotations__.update(
    bucket=dist.GradBucket, state=object, **{"return": torch.futures.Future[torch.Tensor]}
)


def throughput_run(
    context: DistributedContext, global_batch: int, steps: int, warmup: int = 3
) -> dict:
    """Time training steps of :class:`cnnbook.models.MnistCNN`, with and without communication.

    Each of the N ranks trains on ``global_batch / N`` images per step, with
    ``DistributedDataParallel`` when N > 1. With N > 1 the timed steps
    alternate: a full DDP step, then the same step under ``no_sync`` (no
    gradient all-reduce: the computation alone), so that both kinds meet the
    same load on a shared machine; a :class:`BucketTimer` hook counts DDP's
    gradient buckets and times their all-reduce inside the step. Each time is
    the median over ``steps`` steps (after ``warmup`` untimed ones) on the
    slowest rank; ``sync_cost_seconds`` is the median over the pairs of a DDP
    step minus the ``no_sync`` step after it. One more figure, for comparison:
    a bare ``all_reduce`` of a tensor as large as all the gradients, timed
    after a barrier. Introduced in chapter 12.
    """
    if global_batch % context.world_size:
        raise ValueError(
            f"the global batch {global_batch} must split evenly over {context.world_size} ranks."
        )
    parallel = context.is_distributed and context.world_size > 1
    with quiet_unless_main(context), main_process_first(context):
        images, labels = load_tensors("mnist", train=True)
    torch.manual_seed(0)
    net = MnistCNN().to(context.device)
    model: nn.Module = net
    timer = BucketTimer()
    if parallel:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        ddp = DistributedDataParallel(net, device_ids=device_ids)
        ddp.register_comm_hook(None, timer.hook)
        model = ddp
    loader = ShardedTensorLoader.for_context(
        context, images, labels, global_batch // context.world_size,
        transform=normalize_mnist, drop_last=True,
    )  # fmt: skip
    batches = _forever(loader)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def slowest(seconds: float) -> float:
        value = torch.tensor(seconds)
        if parallel:
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return value.item()

    def one_step(sync: bool) -> tuple[float, torch.Tensor]:
        start = time.perf_counter()
        inputs, targets = next(batches)
        with model.no_sync() if parallel and not sync else nullcontext():  # type: ignore[operator]
            loss = loss_fn(model(inputs), targets)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(context.device)
        return time.perf_counter() - start, loss

    kinds = (True, False) if parallel else (True,)
    times: dict[bool, list[float]] = {True: [], False: []}
    calls_before = 0
    with TrainingLog(
        warmup + steps, "DDP + no_sync steps" if parallel else "steps", every=steps,
        progress=show_progress(context),
    ) as log:  # fmt: skip
        for step in range(warmup + steps):
            if step == warmup:
                calls_before, timer.seconds = timer.calls, []
            for sync in kinds:
                seconds, loss = one_step(sync)
                if step >= warmup:
                    times[sync].append(seconds)
            log.step(loss=loss.item())
    step_seconds = slowest(statistics.median(times[True]))
    compute_seconds = step_seconds
    sync_cost_seconds = 0.0
    bucket_seconds = 0.0
    allreduce_seconds = 0.0
    parameters = sum(p.numel() for p in net.parameters())
    buckets_per_step = 0.0
    if parallel:
        compute_seconds = slowest(statistics.median(times[False]))
        pairs = [a - b for a, b in zip(times[True], times[False], strict=True)]
        sync_cost_seconds = slowest(statistics.median(pairs))
        buckets_per_step = (timer.calls - calls_before) / steps
        bucket_seconds = slowest(statistics.median(timer.seconds))
        flat = torch.zeros(parameters, device=context.device)
        bare = []
        for _ in range(3 + 20):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(flat)
            synchronize(context.device)
            bare.append(time.perf_counter() - start)
        allreduce_seconds = slowest(statistics.median(bare[3:]))
    return {
        "world_size": context.world_size,
        "backend": context.backend,
        "threads_per_process": torch.get_num_threads(),
        "global_batch": global_batch,
        "batch_per_rank": global_batch // context.world_size,
        "steps": steps,
        "parameters": parameters,
        "gradient_bytes": sum(p.numel() * p.element_size() for p in net.parameters()),
        "first_bucket_cap_bytes": dist._DEFAULT_FIRST_BUCKET_BYTES,
        "buckets_per_step": buckets_per_step,
        "bucket_bytes": sorted(set(timer.bucket_bytes)),
        "step_seconds": step_seconds,
        "compute_seconds": compute_seconds,
        "sync_cost_seconds": sync_cost_seconds,
        "bucket_allreduce_seconds": bucket_seconds,
        "allreduce_seconds": allreduce_seconds,
        "images_per_second": global_batch / step_seconds,
    }


def cifar10_check(
    context: DistributedContext,
    max_steps: int,
    train_subset: int,
    test_subset: int,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Chapter 11's recipe under DDP for ``max_steps`` steps on random subsets of CIFAR-10.

    The CPU configuration of ``benchmarks/cifar10_speed.py`` (widths 32-64-128,
    4 epochs, global batch ``batch_size``, bfloat16 autocast), trained by
    :func:`cnnbook.cifar.train_cifar10` with the context, so that each rank
    takes its share of the global batch. A check that the pipeline runs, not a
    measurement; it needs only the package. Each rank's final accuracy and the
    equality of the replicas' parameters and buffers are gathered. Introduced
    in chapter 12.
    """
    # The loaders print their source (once is enough), and the first load in a fresh
    # environment (Colab) downloads CIFAR-10: rank 0 does it before the others read it.
    with quiet_unless_main(context), main_process_first(context):
        train_images, train_labels = load_tensors("cifar10", train=True)
        test_images, test_labels = load_tensors("cifar10", train=False)
    source = dataset_source(cifar10(train=False, download=False, verbose=False))
    train_images, train_labels = random_subset(train_images, train_labels, train_subset, seed)
    test_images, test_labels = random_subset(test_images, test_labels, test_subset, seed)
    recipe = CifarRecipe(
        widths=(32, 64, 128), epochs=4, batch_size=batch_size, autocast="bf16", seed=seed
    )
    result = train_cifar10(
        recipe, train_images, train_labels, test_images, test_labels, context.device,
        progress=False, max_steps=max_steps, distributed=context,
    )  # fmt: skip
    accuracies = gather_flat(
        [torch.tensor([result.final_acc], dtype=torch.float64, device=context.device)], context
    )
    report = {
        "world_size": context.world_size, "backend": context.backend,
        "data_source": source, "train_images": train_subset, "test_images": test_subset,
        "global_batch_size": batch_size, "batch_per_rank": batch_size // context.world_size,
        "steps": result.steps,
        "accuracy_per_rank": [copy.view(torch.float64).item() for copy in accuracies],
        "parameters": replicas_identical(result.model, context),
        "buffers": replicas_identical(result.model, context, buffers=True),
    }  # fmt: skip
    print_rank0(
        context, f"{result.steps} steps, global batch {batch_size} = {context.world_size} x "
        f"{report['batch_per_rank']}; accuracy {result.final_acc:.2%} (a check, not a measurement)",
    )  # fmt: skip
    return report


def resume_run(
    context: DistributedContext,
    out_dir: Path,
    epochs: int = 3,
    fail_at_epoch: int | None = None,
    fail_rank: int = 1,
    batch_size: int = 32,
    train_subset: int = 2048,
    lr: float = 0.02,
    seed: int = 0,
) -> dict:
    """Train MnistCNN for ``epochs`` epochs with a checkpoint after each; resume from it.

    The checkpoint (``out_dir/checkpoint.pt``, :func:`cnnbook.distributed.save_training_state`)
    holds the weights, the SGD momentum, the per-step cosine schedule and the
    epochs done; at start every rank loads it if it exists
    (:func:`cnnbook.distributed.load_training_state`) and continues with the
    next epoch, whose shuffle is that epoch's (``set_epoch``) and whose random
    draws are seeded by epoch and rank. With ``fail_at_epoch`` set, rank
    ``fail_rank`` kills itself (SIGKILL, as a crash or a lost machine would) at
    the start of that epoch in the first attempt only
    (``TORCHELASTIC_RESTART_COUNT`` is 0); under ``torchrun --max-restarts=1``
    torchrun then stops the other ranks and starts all of them again. Rank 0
    saves the final weights to ``out_dir/final.pt``. Introduced in chapter 12.
    """
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    with quiet_unless_main(context), main_process_first(context):
        images, labels = load_tensors("mnist", train=True)
    images, labels = random_subset(images, labels, train_subset, seed)
    torch.manual_seed(seed)
    net = MnistCNN().to(context.device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    loader = ShardedTensorLoader.for_context(
        context, images, labels, batch_size, transform=normalize_mnist, seed=seed, drop_last=True
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
    checkpoint = out_dir / "checkpoint.pt"
    start = load_training_state(checkpoint, net, optimizer, scheduler, context.device)
    model: nn.Module = net
    if context.is_distributed:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=device_ids)
    print_rank0(
        context, f"attempt {restart}: {context.world_size} processes, "
        + (f"resuming after epoch {start} from {checkpoint.name}" if start else "from scratch"),
    )  # fmt: skip
    loader.set_epoch(start)
    for epoch in range(start, epochs):
        if fail_at_epoch == epoch and restart == 0 and context.rank == fail_rank:
            print(
                f"rank {context.rank}: killing itself at the start of epoch {epoch + 1}", flush=True
            )
            os.kill(os.getpid(), signal.SIGKILL)
        seed_per_rank(seed + 1000 * epoch, context)  # the same draws in a resumed epoch
        loss, acc = train_one_epoch(
            model, loader, optimizer, device=context.device, scheduler=scheduler,
            description=f"epoch {epoch + 1}/{epochs}", progress=show_progress(context),
        )  # fmt: skip
        save_training_state(context, checkpoint, model, optimizer, scheduler, epoch + 1)
        print_rank0(
            context, format_metrics(epoch=f"{epoch + 1}/{epochs}", loss=loss, acc=acc)
            + "  checkpoint saved",
        )  # fmt: skip
    parameters = replicas_identical(net, context)
    save_on_rank0(context, net.state_dict(), out_dir / "final.pt")
    return {
        "world_size": context.world_size, "backend": context.backend, "epochs": epochs,
        "restart_count": restart, "max_restarts": int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")),
        "started_at_epoch": start, "fail_at_epoch": fail_at_epoch,
        "weights": str(out_dir / "final.pt"), "parameters": parameters,
        "steps_per_epoch": len(loader),
    }  # fmt: skip


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cnnbook.ddp_experiments", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--out", type=Path, required=True, help="folder for results and weights")
    parser.add_argument("--batch-size", type=int, default=32, help="per rank (equivalence)")
    parser.add_argument("--global-batch", type=int, default=256, help="(throughput)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (equivalence)")
    parser.add_argument("--kinds", default="plain,batchnorm", help="comma-separated model kinds")
    parser.add_argument("--max-steps", type=int, default=5, help="(cifar10)")
    parser.add_argument("--train-subset", type=int, default=None, help="(cifar10, resume)")
    parser.add_argument("--test-subset", type=int, default=500, help="(cifar10)")
    parser.add_argument("--epochs", type=int, default=3, help="(resume)")
    parser.add_argument(
        "--fail-at-epoch", type=int, default=None, help="(resume) rank 1 dies once, at this epoch"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run one experiment in this process (one of torchrun's); rank 0 reports it as JSON.

    Introduced in chapter 12.
    """
    args = _parse_args(argv)
    with distributed_session() as context:
        if args.experiment == "allreduce":
            report = allreduce_demo(context)
        elif args.experiment == "equivalence":
            kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
            for kind in kinds:
                if kind not in MODEL_KINDS:
                    raise SystemExit(f"--kinds: {kind!r} is not one of {MODEL_KINDS}.")
            report = equivalence_run(
                context, kinds, args.batch_size, args.steps, args.out, lr=args.lr
            )
        elif args.experiment == "throughput":
            report = throughput_run(context, args.global_batch, args.steps)
        elif args.experiment == "cifar10":
            report = cifar10_check(
                context, args.max_steps, args.train_subset or 2560, args.test_subset,
                batch_size=args.global_batch,
            )  # fmt: skip
        else:
            report = resume_run(
                context, args.out, args.epochs, args.fail_at_epoch,
                batch_size=args.batch_size, train_subset=args.train_subset or 2048, lr=args.lr,
            )  # fmt: skip
        if context.is_main:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{args.experiment}.json").write_text(json.dumps(report))
            print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
