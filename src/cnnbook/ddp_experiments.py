"""The data-parallel experiments of chapter 12, run as ``torchrun ... -m cnnbook.ddp_experiments``.

Three experiments, each a subcommand that rank 0 reports as one JSON object
(written to ``--out`` and printed as the last line of the log):

- ``allreduce``: every rank holds a small tensor; after ``all_reduce`` every
  rank holds their sum.
- ``equivalence``: train for a few steps with ``DistributedDataParallel``, each
  rank on batch B of its shard; rank 0 saves the weights, which the chapter
  compares with one process trained on batch N·B (:func:`train_steps`).
- ``throughput``: time training steps with DDP, the same steps without
  gradient synchronisation (``no_sync``), and one all-reduce of all the
  gradients, to see what the communication costs.

Run without torchrun, each runs as a single process. The chapter launches them
with :func:`cnnbook.distributed.launch_torchrun`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .data import load_tensors, normalize_mnist
from .device import synchronize
from .distributed import (
    DistributedContext,
    ShardedTensorLoader,
    all_reduce_mean,
    distributed_session,
    print_rank0,
    save_on_rank0,
    show_progress,
)
from .models import MnistBNCNN, MnistCNN
from .train import TrainingLog, fit

MODEL_KINDS = ("plain", "batchnorm", "syncbatchnorm")


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
    MNIST training split). Introduced in chapter 12.
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

    A kind that cannot run here (``syncbatchnorm`` on the CPU) is reported
    with its error message instead of a file. Introduced in chapter 12.
    """
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
        report["runs"][kind] = {"weights": str(path), "losses": losses}
    return report


def _forever(loader: ShardedTensorLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    return itertools.chain.from_iterable(itertools.repeat(loader))


def throughput_run(
    context: DistributedContext, global_batch: int, steps: int, warmup: int = 3
) -> dict:
    """Time training steps of :class:`cnnbook.models.MnistCNN`, with and without communication.

    Each of the N ranks trains on ``global_batch / N`` images per step, with
    ``DistributedDataParallel`` when N > 1. Each time is the median over
    ``steps`` steps (after ``warmup`` untimed ones) on the slowest rank, so that
    a burst of other work on a shared machine does not count: a full step; with
    N > 1, the same step under ``no_sync`` (no gradient all-reduce: the
    computation alone); and one ``all_reduce`` of a tensor as large as all the
    gradients. Introduced in chapter 12.
    """
    if global_batch % context.world_size:
        raise ValueError(
            f"the global batch {global_batch} must split evenly over {context.world_size} ranks."
        )
    parallel = context.is_distributed and context.world_size > 1
    images, labels = load_tensors("mnist", train=True)
    torch.manual_seed(0)
    net = MnistCNN().to(context.device)
    model: nn.Module = net
    if parallel:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        model = DistributedDataParallel(net, device_ids=device_ids)
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

    def timed_steps(sync: bool, description: str) -> float:
        times = []
        with TrainingLog(
            warmup + steps, description, every=steps, progress=show_progress(context)
        ) as log:
            for _ in range(warmup + steps):
                start = time.perf_counter()
                inputs, targets = next(batches)
                with model.no_sync() if parallel and not sync else nullcontext():  # type: ignore[operator]
                    loss = loss_fn(model(inputs), targets)
                    loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                synchronize(context.device)
                times.append(time.perf_counter() - start)
                log.step(loss=loss.item())
        return slowest(statistics.median(times[warmup:]))

    step_seconds = timed_steps(True, "DDP steps" if parallel else "steps")
    compute_seconds = step_seconds
    allreduce_seconds = 0.0
    parameters = sum(p.numel() for p in net.parameters())
    if parallel:
        compute_seconds = timed_steps(False, "no_sync steps")
        flat = torch.zeros(parameters, device=context.device)
        times = []
        for _ in range(3 + 20):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(flat)
            synchronize(context.device)
            times.append(time.perf_counter() - start)
        allreduce_seconds = slowest(statistics.median(times[3:]))
    return {
        "world_size": context.world_size,
        "backend": context.backend,
        "threads_per_process": torch.get_num_threads(),
        "global_batch": global_batch,
        "batch_per_rank": global_batch // context.world_size,
        "steps": steps,
        "parameters": parameters,
        "step_seconds": step_seconds,
        "compute_seconds": compute_seconds,
        "allreduce_seconds": allreduce_seconds,
        "images_per_second": global_batch / step_seconds,
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cnnbook.ddp_experiments", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("experiment", choices=["allreduce", "equivalence", "throughput"])
    parser.add_argument("--out", type=Path, required=True, help="folder for results and weights")
    parser.add_argument("--batch-size", type=int, default=32, help="per rank (equivalence)")
    parser.add_argument("--global-batch", type=int, default=256, help="(throughput)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (equivalence)")
    parser.add_argument("--kinds", default="plain,batchnorm", help="comma-separated model kinds")
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
        else:
            report = throughput_run(context, args.global_batch, args.steps)
        if context.is_main:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{args.experiment}.json").write_text(json.dumps(report))
            print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
