"""Data-parallel training with ``torch.distributed``: the plumbing a script needs under torchrun.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script and tells
each, through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``), who it is and where to meet the others.
:func:`init_distributed` reads them, joins the process group (``nccl`` on GPUs,
``gloo`` on the CPU) and gives each process its own GPU (the one numbered by its
local rank); run without torchrun, it returns a single-process context and the
same script works unchanged. :class:`ShardedTensorLoader` gives each rank its own
disjoint slice of the in-memory data, reshuffled every epoch exactly as
``torch.utils.data.DistributedSampler`` would (:func:`shard_indices`).
:func:`print_rank0`, :func:`quiet_unless_main`, :func:`show_progress` and
:func:`save_on_rank0` keep logs, progress bars and checkpoints to one process;
:func:`main_process_first` lets rank 0 download the data before the others read it;
:func:`seed_per_rank` gives each rank its own random numbers;
:func:`gather_flat` and :func:`replicas_identical` check that every rank holds
the same weights; :func:`save_training_state` and :func:`load_training_state`
let a run that torchrun restarts resume where it stopped;
:func:`distributed_session` shuts the process group down cleanly, and
:func:`launch_torchrun` starts such a script from a notebook, streams its log
and reads its JSON result.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from .data import TensorLoader
from .device import get_device

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is in a data-parallel run, and what it computes on.

    ``rank`` numbers the processes of the whole run (0 to ``world_size - 1``),
    ``local_rank`` those of this machine (it picks the GPU); ``backend`` is
    ``"gloo"`` or ``"nccl"`` once a process group is joined, ``None`` for a plain
    single process. Rank 0 is the *main* process: it logs and saves.

    Introduced in chapter 12.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs and saves."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when this process belongs to a process group (launched by torchrun)."""
        return self.backend is not None


def _read_int(name: str, environ: Mapping[str, str]) -> int:
    value = environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not an integer; torchrun sets it, so launch the script "
            "with torchrun rather than setting it by hand."
        ) from None


def check_ranks(rank: int, local_rank: int, world_size: int) -> None:
    """Raise ``ValueError`` unless ``0 <= rank < world_size`` and ``local_rank >= 0``.

    Nothing else is checked: torchrun's documentation warns never to assume a
    relation between ``RANK`` and ``LOCAL_RANK``, which an elastic restart may
    pair differently (a node's processes can get another range of ranks), so
    ``LOCAL_RANK=1`` with ``RANK=0`` is valid. Introduced in chapter 12.
    """
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size} are inconsistent: "
            "ranks run from 0 to WORLD_SIZE - 1 and a local rank is 0 or more."
        )


def init_distributed(
    device: torch.device | str | None = None, backend: str | None = None
) -> DistributedContext:
    """Join the process group torchrun prepared, or return a single-process context.

    Under torchrun (``RANK`` and ``WORLD_SIZE`` set) the process joins the group
    with ``backend`` (default: ``"nccl"`` for CUDA, ``"gloo"`` otherwise) and, on
    GPUs, takes GPU number ``LOCAL_RANK`` as its device. ``device`` is the kind
    of device to use (default :func:`cnnbook.device.get_device`, so
    ``CNNBOOK_DEVICE=cpu`` forces gloo on the CPU). Without those variables the
    script runs as one ordinary process (``backend`` ``None``). A partial or
    inconsistent environment raises ``ValueError``. Introduced in chapter 12.
    """
    environ = os.environ
    base = torch.device(device) if device is not None else get_device()
    if "RANK" not in environ and "WORLD_SIZE" not in environ:
        return DistributedContext(device=base)
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise ValueError(
            f"torchrun's environment is incomplete: {', '.join(missing)} not set. Launch the "
            "script with torchrun (python -m torch.distributed.run --nproc_per_node=N ...), "
            "or unset RANK and WORLD_SIZE to run it as a single process."
        )
    rank, local_rank, world_size = (
        _read_int(name, environ) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    )
    check_ranks(rank, local_rank, world_size)
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"Local rank {local_rank} needs GPU {local_rank}, but this machine has "
                f"{torch.cuda.device_count()}. Start at most that many processes per node "
                "(--nproc_per_node), or run on the CPU with CNNBOOK_DEVICE=cpu."
            )
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    elif base.type != "cpu":
        raise ValueError(
            f"Data-parallel training runs on CUDA GPUs (nccl) or the CPU (gloo), not on "
            f"{base.type!r}; set CNNBOOK_DEVICE=cpu."
        )
    backend = backend or ("nccl" if base.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)  # env:// : the variables torchrun set
    return DistributedContext(rank, local_rank, world_size, base, backend)


def shutdown_distributed() -> None:
    """Leave the process group (if any), so that the process exits cleanly.

    Introduced in chapter 12.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_session(
    device: torch.device | str | None = None, backend: str | None = None
) -> Iterator[DistributedContext]:
    """``with distributed_session() as ctx:``: :func:`init_distributed`, then always shut down.

    The process group is destroyed when the block ends, even on an error, so a
    failing rank does not leave the others waiting. Introduced in chapter 12.
    """
    context = init_distributed(device, backend)
    try:
        yield context
    finally:
        shutdown_distributed()


def print_rank0(context: DistributedContext, *values: object, **kwargs: Any) -> None:
    """``print`` on rank 0 only, so that a run with N processes logs each line once.

    Introduced in chapter 12.
    """
    if context.is_main:
        print(*values, **kwargs, flush=True)


def show_progress(context: DistributedContext, progress: bool = True) -> bool:
    """Whether this process shows progress bars: ``progress`` on rank 0, never elsewhere.

    Pass it as ``progress=`` to :func:`cnnbook.train.fit` or
    :class:`cnnbook.train.TrainingLog`. Introduced in chapter 12.
    """
    return progress and context.is_main


def all_reduce_mean(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of ``tensor`` over all ranks (a copy); ``tensor`` itself when not distributed.

    For logging: each rank's loss is the loss of its shard, their mean that of
    the global batch. Introduced in chapter 12.
    """
    if not context.is_distributed:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / context.world_size


@contextmanager
def quiet_unless_main(context: DistributedContext) -> Iterator[None]:
    """``with quiet_unless_main(ctx):``: what the block prints shows on rank 0 only.

    For code that prints by itself and knows nothing of ranks, such as the
    data loaders' line naming their source: on the other ranks its standard
    output goes nowhere. Introduced in chapter 12.
    """
    if context.is_main:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextmanager
def main_process_first(context: DistributedContext, local: bool = False) -> Iterator[None]:
    """``with main_process_first(ctx):``: rank 0 runs the block first, the other ranks after it.

    For work that writes files every rank then reads, such as downloading a
    dataset or building its cache: N processes downloading into one folder at
    once can leave a truncated archive or half-extracted files. Rank 0 runs the
    block while the others wait at a barrier; then they run it and find the
    files in place. With ``local=True`` the process of local rank 0 on each node
    goes first, for data that each node keeps on a disk of its own. Rank 0 reaches
    the barrier even if the block fails, so no rank waits forever. Without a
    process group the block simply runs. All ranks must enter it.
    Introduced in chapter 12.
    """
    first = (context.local_rank if local else context.rank) == 0
    if context.is_distributed and not first:
        dist.barrier()
    try:
        yield
    finally:
        if context.is_distributed and first:
            dist.barrier()


def seed_per_rank(seed: int, context: DistributedContext) -> torch.Generator:
    """Seed Python, NumPy and torch with ``seed + rank``; return a generator seeded the same.

    Under DDP every rank must draw *different* random numbers for dropout and
    augmentation: with one seed everywhere, rank 1 would drop the same units and
    crop the same way as rank 0, and N ranks would see N copies of one random
    draw instead of N independent ones. (The initial weights do not need it:
    DDP copies rank 0's to every rank when it wraps the model.) The seeds stay
    reproducible: rank r always gets ``seed + r``. Introduced in chapter 12.
    """
    rank_seed = seed + context.rank
    random.seed(rank_seed)
    np.random.seed(rank_seed)
    torch.manual_seed(rank_seed)
    return torch.Generator().manual_seed(rank_seed)


def gather_flat(tensors: Sequence[torch.Tensor], context: DistributedContext) -> list[torch.Tensor]:
    """Every rank's ``tensors``, each flattened into one vector, gathered on every rank.

    Item ``r`` of the list is rank ``r``'s copy (on the CPU); without a
    process group it is a list of one. The tensors are viewed as raw bytes, so
    comparing the vectors with ``torch.equal`` is a bitwise comparison whatever
    the dtypes. Introduced in chapter 12.
    """
    if not tensors:
        raise ValueError("gather_flat() needs at least one tensor.")
    flat = torch.cat([t.detach().contiguous().reshape(-1).view(torch.uint8) for t in tensors])
    if not context.is_distributed:
        return [flat.cpu()]
    flat = flat.to(context.device)
    copies = [torch.empty_like(flat) for _ in range(context.world_size)]
    dist.all_gather(copies, flat)
    return [copy.cpu() for copy in copies]


def replicas_identical(
    model: nn.Module, context: DistributedContext, buffers: bool = False
) -> dict[str, Any]:
    """Whether every rank holds bit for bit the same parameters (and buffers, if asked).

    All ranks must call it (it gathers). Returns ``identical`` (a bool), the
    ``world_size`` and one short SHA-256 ``digests`` per rank of the gathered
    bytes. With ``buffers`` it compares BatchNorm's running statistics too,
    which DDP does not average: each rank updates them from its own shard.
    Introduced in chapter 12.
    """
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    tensors = list(module.buffers()) if buffers else list(module.parameters())
    copies = gather_flat(tensors, context)
    digests = [hashlib.sha256(copy.numpy().tobytes()).hexdigest()[:16] for copy in copies]
    identical = all(torch.equal(copies[0], copy) for copy in copies[1:])
    return {"identical": identical, "world_size": len(copies), "digests": digests}


def save_on_rank0(context: DistributedContext, obj: object, path: str | Path) -> None:
    """``torch.save(obj, path)`` on rank 0 only; every rank waits until the file is written.

    All ranks hold the same weights, so one copy is enough, and N processes
    writing one file would race. Read it back with ``torch.load(path,
    weights_only=True)``. Introduced in chapter 12.
    """
    if context.is_main:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, path)
    if context.is_distributed:
        dist.barrier()


def save_training_state(
    context: DistributedContext,
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    epoch: int,
) -> None:
    """Save what a restarted run needs to continue after ``epoch`` (rank 0 writes it).

    The checkpoint holds the model's weights (those of the module inside DDP,
    so without its ``module.`` prefix), the optimizer's state (momentum
    buffers), the scheduler's and ``epoch``, the number of epochs completed.
    The file is written to a temporary name and renamed, so a process killed
    while writing never leaves half a checkpoint; every rank waits until it is
    in place. Introduced in chapter 12.
    """
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    state = {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
    }
    if context.is_main:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(state, partial)
        os.replace(partial, path)
    if context.is_distributed:
        dist.barrier()


def load_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
) -> int:
    """Load a :func:`save_training_state` checkpoint if there is one; return the epoch to start.

    Returns 0 (start from scratch) when ``path`` does not exist. Tensors are
    loaded straight onto ``device`` (``map_location``), not onto the GPU that
    saved them, which on another node may not exist or belong to another rank.
    Weights saved from a DDP-wrapped model carry a ``module.`` prefix on every
    name; it is removed, so either kind of checkpoint loads into the plain
    model. Call it on every rank before wrapping the model in DDP.
    Introduced in chapter 12.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    state = torch.load(path, map_location=device, weights_only=True)
    weights = dict(state["model"])
    consume_prefix_in_state_dict_if_present(weights, "module.")
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    module.load_state_dict(weights)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])


def shard_indices(
    n: int,
    rank: int,
    world_size: int,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> torch.Tensor:
    """The indices of the samples rank ``rank`` sees in ``epoch``, as ``DistributedSampler``.

    Every rank draws the same permutation of ``range(n)`` (seeded with
    ``seed + epoch``), makes its length a multiple of ``world_size`` (repeating
    the first indices, or with ``drop_last`` dropping the tail), and takes every
    ``world_size``-th index starting at ``rank``. The shards are disjoint and
    together cover the data exactly once (up to the padding). Batch ``k`` of
    size B on each of N ranks then holds the same samples as batch ``k`` of
    size N·B in a single process. Introduced in chapter 12.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 (the number of samples), got {n}.")
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}.")
    if not 0 <= rank < world_size:
        raise ValueError(
            f"rank must be in 0..{world_size - 1} for world_size {world_size}, got {rank}."
        )
    if epoch < 0:
        raise ValueError(f"epoch must be 0 or more, got {epoch}.")
    if drop_last and n < world_size:
        raise ValueError(
            f"drop_last with {n} samples and {world_size} ranks leaves no sample per rank; "
            "use fewer processes or drop_last=False."
        )
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    if drop_last:
        order = order[: n // world_size * world_size]
    else:
        total = math.ceil(n / world_size) * world_size
        order = torch.cat([order] * math.ceil(total / n))[:total]
    return order[rank::world_size]


class ShardedTensorLoader(TensorLoader):
    """A :class:`cnnbook.data.TensorLoader` over this rank's shard of the data only.

    Each pass uses :func:`shard_indices` for its epoch: the same seeded
    permutation on every rank, each rank taking its own disjoint slice, so N
    ranks with ``batch_size`` B see together what one process sees with batch
    N·B. Unlike ``DistributedSampler``, which repeats its order until you call
    ``set_epoch``, the loader advances its epoch at every pass, so
    :func:`cnnbook.train.fit`, which knows nothing of ranks, reshuffles every
    epoch; :meth:`set_epoch` chooses the epoch of the next pass (to resume a
    run). ``drop_last`` trims the data to a multiple of the world size and drops
    a last incomplete batch. With ``world_size=1`` it is an ordinary loader.

    Introduced in chapter 12.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: torch.device | str | None = None,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(images, labels, batch_size, shuffle, transform, device, None, drop_last)
        shard_indices(len(images), rank, world_size, 0, seed, False, drop_last)  # checks
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0

    @classmethod
    def for_context(
        cls,
        context: DistributedContext,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        **kwargs: Any,
    ) -> ShardedTensorLoader:
        """The loader of ``context``'s rank, on ``context``'s device."""
        kwargs.setdefault("device", context.device)
        return cls(images, labels, batch_size, context.rank, context.world_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use the shuffle of ``epoch`` (the same on every rank)."""
        if epoch < 0:
            raise ValueError(f"epoch must be 0 or more, got {epoch}.")
        self.epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor:
        """This rank's sample indices for ``epoch`` (default: the next pass's)."""
        return shard_indices(
            len(self.labels), self.rank, self.world_size,
            self.epoch if epoch is None else epoch, self.seed, self.shuffle, self.drop_last,
        )  # fmt: skip

    def shard_size(self) -> int:
        """How many samples this rank sees per epoch."""
        n = len(self.labels)
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def samples_per_pass(self) -> int:
        """This rank's shard: what :meth:`TensorLoader.__len__` counts batches of."""
        return self.shard_size()

    def order(self) -> torch.Tensor:
        """This rank's indices for the coming pass; the pass after it reshuffles."""
        order = self.indices().to(self.device)
        self.epoch += 1
        return order


@dataclass
class LaunchResult:
    """What :func:`launch_torchrun` returns: the command, its log and its JSON result.

    Introduced in chapter 12.
    """

    command: list[str]
    log: str
    result: dict | None
    seconds: float


def torchrun_command(
    script: Sequence[str],
    nproc_per_node: int = 2,
    python: str | None = None,
    options: Sequence[str] = (),
) -> list[str]:
    """The command line that starts ``script`` on ``nproc_per_node`` processes of this machine.

    ``script`` is what follows torchrun's own options: ``["train.py", "--epochs",
    "2"]`` or ``["-m", "cnnbook.ddp_experiments", "allreduce"]``. torchrun is run
    as ``python -m torch.distributed.run`` with this interpreter, so the
    processes use the same environment, and ``--standalone`` lets it pick a free
    port on this machine. ``options`` are more of torchrun's own, placed before
    the script (``["--max-restarts=1"]``). Introduced in chapter 12.
    """
    if isinstance(script, str) or isinstance(options, str):
        raise TypeError(
            f"script and options must be lists of arguments, not the string "
            f"{script if isinstance(script, str) else options!r}; split it into its arguments."
        )
    if not script:
        raise ValueError("script is empty: give the script (or -m module) and its arguments.")
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be at least 1, got {nproc_per_node}.")
    return [
        python or sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc_per_node}", *options, *script,
    ]  # fmt: skip


def _last_json_object(log: str) -> dict | None:
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux ``/proc``; an empty list elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_group(process: subprocess.Popen) -> None:
    # torchrun starts each worker in a session of its own, so killing torchrun's process
    # group does not reach them; they are found and killed first, while still its children.
    for pid in [*_descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def launch_torchrun(
    script: Sequence[str],
    nproc_per_node: int = 2,
    result_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stream: bool = True,
    timeout: float | None = None,
    options: Sequence[str] = (),
) -> LaunchResult:
    """Run ``script`` under torchrun in a subprocess, stream its log, and return its result.

    The processes' output (stdout and stderr together) is copied to this
    process's stdout as it arrives when ``stream``, and kept in
    ``LaunchResult.log``. The result is the JSON object in ``result_path`` when
    given (the script writes it), else the last line of the log that is a JSON
    object. ``env`` adds environment variables; ``options`` are more of
    torchrun's own (:func:`torchrun_command`). A non-zero exit raises
    ``RuntimeError`` with the end of the log.

    torchrun runs with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` unless ``env``
    or this process's environment says otherwise. By default the workers share
    torchrun's rendezvous store, and a group that torchrun restarts
    (``--max-restarts``) meets in the same store, where the previous attempt's
    addresses are still written: a restarted rank can read a dead rank's address
    and fail or hang while joining the process group (PyTorch issue #135712,
    seen here with torch 2.14). With the variable, every attempt gets a store of
    its own. Introduced in chapter 12.
    """
    command = torchrun_command(script, nproc_per_node, options=options)
    environment = {
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", **os.environ, "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }  # fmt: skip
    start = time.perf_counter()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    timed_out = threading.Event()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
        start_new_session=True,  # its own process group: a stop reaches every worker
    ) as process:  # fmt: skip
        assert process.stdout is not None

        def stop() -> None:
            timed_out.set()
            _kill_group(process)

        timer = threading.Timer(timeout, stop) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            while chunk := os.read(process.stdout.fileno(), 65536):
                text = decoder.decode(chunk)
                pieces.append(text)
                if stream:
                    sys.stdout.write(text)
                    sys.stdout.flush()
        except BaseException:  # an interrupted notebook cell stops the workers too
            _kill_group(process)
            raise
        finally:
            returncode = process.wait()
            if timer is not None:
                timer.cancel()
    log = "".join(pieces) + decoder.decode(b"", final=True)
    if timed_out.is_set():
        raise TimeoutError(f"torchrun ran past {timeout} s and was stopped: {' '.join(command)}")
    if returncode != 0:
        lines = log.splitlines()
        # What the workers wrote says what went wrong; torchrun's own traceback, the last
        # unindented one, only says that a worker failed.
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
        from_workers = lines[: starts[-1]] if starts else lines
        tail = "\n".join((from_workers or lines)[-25:])
        raise RuntimeError(
            f"torchrun exited with status {returncode}: {' '.join(command)}\n"
            f"The end of its log:\n{tail}"
        )
    if result_path is not None:
        path = Path(result_path)
        if not path.is_file():
            raise RuntimeError(f"the script ran but wrote no result to {path}.")
        result = json.loads(path.read_text())
    else:
        result = _last_json_object(log)
    return LaunchResult(command, log, result, time.perf_counter() - start)
