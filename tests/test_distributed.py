"""cnnbook.distributed and cnnbook.ddp_experiments: sharding, the torchrun environment, and
real two-process runs on the CPU with gloo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from cnnbook.ddp_experiments import SplitBatchForward, make_model, train_steps
from cnnbook.distributed import (
    DistributedContext,
    ShardedTensorLoader,
    all_reduce_mean,
    init_distributed,
    launch_torchrun,
    print_rank0,
    save_on_rank0,
    shard_indices,
    show_progress,
    torchrun_command,
)

CPU = {"CNNBOOK_DEVICE": "cpu"}


def mnist_available() -> bool:
    root = os.environ.get("CNNBOOK_DATA")
    return bool(root) and (Path(root) / "MNIST" / "raw").is_dir()


@pytest.mark.parametrize("n", [1, 7, 10, 64])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_are_what_distributed_sampler_gives(
    n: int, world_size: int, drop_last: bool, shuffle: bool
) -> None:
    if drop_last and n < world_size:
        pytest.skip("no sample per rank")
    for epoch in (0, 3):
        for rank in range(world_size):
            sampler = DistributedSampler(
                range(n), world_size, rank, shuffle=shuffle, seed=5, drop_last=drop_last
            )
            sampler.set_epoch(epoch)
            ours = shard_indices(n, rank, world_size, epoch, 5, shuffle, drop_last)
            assert ours.tolist() == list(sampler)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_are_disjoint_and_cover_the_data_exactly_once(world_size: int) -> None:
    n = 120  # a multiple of every world size here: no padding, nothing dropped
    shards = [shard_indices(n, rank, world_size, epoch=1) for rank in range(world_size)]
    together = torch.cat(shards)
    assert sorted(together.tolist()) == list(range(n))
    assert all(len(shard) == n // world_size for shard in shards)


def test_padding_repeats_the_first_samples_and_drop_last_trims() -> None:
    padded = torch.cat([shard_indices(10, rank, 4, shuffle=False) for rank in range(4)])
    assert sorted(padded.tolist()) == sorted([*range(10), 0, 1])
    trimmed = torch.cat([shard_indices(10, r, 4, shuffle=False, drop_last=True) for r in range(4)])
    assert sorted(trimmed.tolist()) == list(range(8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0, "rank": 0, "world_size": 1}, "n must be at least 1"),
        ({"n": 5, "rank": 0, "world_size": 0}, "world_size must be at least 1"),
        ({"n": 5, "rank": 2, "world_size": 2}, r"rank must be in 0\.\.1"),
        ({"n": 5, "rank": 0, "world_size": 2, "epoch": -1}, "epoch must be 0 or more"),
        ({"n": 1, "rank": 0, "world_size": 2, "drop_last": True}, "leaves no sample per rank"),
    ],
)
def test_bad_shard_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shard_indices(**kwargs)


def _images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    return images, torch.arange(n)


def test_sharded_loader_batches_add_up_to_the_single_process_batches() -> None:
    images, labels = _images(48)
    single = ShardedTensorLoader(images, labels, batch_size=8, seed=3, drop_last=True)
    ranks = [
        ShardedTensorLoader(images, labels, 4, rank, 2, seed=3, drop_last=True) for rank in (0, 1)
    ]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 6
    for _ in range(2):  # each pass is a new epoch, reshuffled the same way on every rank
        whole = [set(y.tolist()) for _, y in single]
        parts = [[set(y.tolist()) for _, y in loader] for loader in ranks]
        assert whole == [a | b for a, b in zip(*parts, strict=True)]
        assert all(not (a & b) for a, b in zip(*parts, strict=True))
    assert single.epoch == ranks[0].epoch == 2


def test_sharded_loader_reshuffles_every_epoch_and_set_epoch_replays_one() -> None:
    images, labels = _images(40)
    loader = ShardedTensorLoader(images, labels, batch_size=5, rank=1, world_size=2, seed=0)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert not torch.equal(first, second)
    assert len(first) == len(second) == 20  # half of the 40 samples, another half each epoch
    loader.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in loader]), first)
    assert torch.equal(loader.indices(0), shard_indices(40, 1, 2, epoch=0))
    inputs, _ = next(iter(loader))
    assert inputs.dtype == torch.float32 and float(inputs.max()) <= 1.0
    with pytest.raises(ValueError, match="epoch must be 0 or more"):
        loader.set_epoch(-1)


def test_sharded_loader_for_context_uses_the_rank_and_device() -> None:
    images, labels = _images(10)
    context = DistributedContext(rank=1, world_size=2)
    loader = ShardedTensorLoader.for_context(context, images, labels, 2, shuffle=False)
    assert loader.indices().tolist() == [1, 3, 5, 7, 9] and loader.device.type == "cpu"
    with pytest.raises(ValueError, match="rank must be in"):
        ShardedTensorLoader(images, labels, 2, rank=2, world_size=2)


def test_without_torchrun_the_context_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu")
    assert context == DistributedContext(device=torch.device("cpu"))
    assert context.is_main and not context.is_distributed and show_progress(context)
    assert not show_progress(DistributedContext(rank=1, world_size=2))
    value = torch.tensor([1.0, 2.0])
    assert all_reduce_mean(value, context) is value


def test_incomplete_torchrun_environment_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="WORLD_SIZE, MASTER_ADDR|WORLD_SIZE.*not set"):
        init_distributed("cpu")
    for name, value in {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "x"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "1")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="inconsistent"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="RANK='one' is not an integer"):
        init_distributed("cpu")


def test_rank0_prints_and_saves_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    print_rank0(DistributedContext(rank=1, world_size=2), "hidden")
    print_rank0(DistributedContext(), "shown")
    assert capsys.readouterr().out == "shown\n"
    save_on_rank0(DistributedContext(rank=1, world_size=2), {"x": 1}, tmp_path / "a.pt")
    save_on_rank0(DistributedContext(), {"x": torch.ones(2)}, tmp_path / "b" / "b.pt")
    assert not (tmp_path / "a.pt").exists()
    assert torch.equal(torch.load(tmp_path / "b" / "b.pt", weights_only=True)["x"], torch.ones(2))


def test_torchrun_command_and_its_bad_arguments() -> None:
    command = torchrun_command(["-m", "pkg.mod", "--x", "1"], nproc_per_node=3, python="py")
    assert command == [
        "py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
        "-m", "pkg.mod", "--x", "1",
    ]  # fmt: skip
    with pytest.raises(TypeError, match="list of arguments"):
        torchrun_command("train.py")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="script is empty"):
        torchrun_command([])
    with pytest.raises(ValueError, match="nproc_per_node must be at least 1"):
        torchrun_command(["train.py"], nproc_per_node=0)


def test_split_batch_forward_runs_the_interleaved_parts_separately() -> None:
    seen: list[list[float]] = []

    class Record(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.flatten().tolist())
            return x * 10

    x = torch.arange(6.0).view(6, 1)
    out = SplitBatchForward(Record(), 2)(x)
    assert seen == [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]  # what ranks 0 and 1 would get
    assert torch.equal(out, x * 10)  # back in the batch's order
    with pytest.raises(ValueError, match="does not split into 4 equal parts"):
        SplitBatchForward(Record(), 4)(x)
    with pytest.raises(ValueError, match="chunks must be at least 1"):
        SplitBatchForward(Record(), 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_model("layernorm")


def test_allreduce_with_two_gloo_processes(tmp_path: Path) -> None:
    """A real torchrun launch: two processes, gloo on the CPU, one all_reduce."""
    run = launch_torchrun(
        ["-m", "cnnbook.ddp_experiments", "allreduce", "--out", str(tmp_path)],
        nproc_per_node=2, result_path=tmp_path / "allreduce.json", env=CPU, stream=False,
        timeout=240,
    )  # fmt: skip
    assert run.result is not None
    assert run.result["world_size"] == 2 and run.result["backend"] == "gloo"
    assert [r["before"] for r in run.result["ranks"]] == [[1.0, 10.0], [2.0, 20.0]]
    assert [r["after"] for r in run.result["ranks"]] == [[3.0, 30.0], [3.0, 30.0]]
    assert run.log.count("rank 0: before") == 1  # rank 0 logs, once
    assert json.loads(run.log.strip().splitlines()[-1]) == run.result


@pytest.mark.skipif(not mnist_available(), reason="CNNBOOK_DATA does not hold MNIST")
def test_two_processes_with_batch_b_match_one_with_batch_2b(tmp_path: Path) -> None:
    """DDP on 2 CPU processes equals one process on the doubled batch (no BatchNorm)."""
    steps, batch = 4, 8
    run = launch_torchrun(
        ["-m", "cnnbook.ddp_experiments", "equivalence", "--out", str(tmp_path),
         "--steps", str(steps), "--batch-size", str(batch), "--kinds", "plain"],
        nproc_per_node=2, env=CPU, stream=False, timeout=240,
    )  # fmt: skip
    assert run.result is not None and run.result["global_batch"] == 2 * batch
    saved = torch.load(run.result["runs"]["plain"]["weights"], weights_only=True)
    net, losses = train_steps(DistributedContext(), "plain", 2 * batch, steps, progress=False)
    reference = net.state_dict()
    largest = max((saved[k] - reference[k]).abs().max().item() for k in reference)
    assert largest < 1e-5
    assert losses == pytest.approx(run.result["runs"]["plain"]["losses"], abs=1e-5)


def test_a_failing_launch_raises_with_the_workers_error(tmp_path: Path) -> None:
    with pytest.raises(
        RuntimeError, match=r"torchrun exited with status [^0][\s\S]*invalid choice"
    ):
        launch_torchrun(
            ["-m", "cnnbook.ddp_experiments", "nonsense", "--out", str(tmp_path)],
            nproc_per_node=1, env=CPU, stream=False, timeout=120,
        )  # fmt: skip
