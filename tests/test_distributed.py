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
    check_ranks,
    gather_flat,
    init_distributed,
    launch_torchrun,
    load_training_state,
    main_process_first,
    print_rank0,
    quiet_unless_main,
    replicas_identical,
    save_on_rank0,
    save_training_state,
    seed_per_rank,
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


def test_rank_checks_assume_no_relation_between_rank_and_local_rank() -> None:
    check_ranks(0, 1, 2)  # valid: torchrun may give rank 0 to a node's second process
    check_ranks(3, 0, 4)
    for rank, local_rank, world_size in [(2, 0, 2), (-1, 0, 2), (0, -1, 1), (0, 0, 0)]:
        with pytest.raises(ValueError, match="inconsistent"):
            check_ranks(rank, local_rank, world_size)


def test_quiet_unless_main_silences_the_other_ranks(capsys: pytest.CaptureFixture) -> None:
    with quiet_unless_main(DistributedContext(rank=1, world_size=2)):
        print("from rank 1")
    with quiet_unless_main(DistributedContext()):
        print("from rank 0")
    assert capsys.readouterr().out == "from rank 0\n"


def test_main_process_first_lets_rank0_run_the_block_before_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    monkeypatch.setattr(
        torch.distributed, "barrier", lambda *args, **kwargs: events.append("barrier")
    )
    for rank, local_rank in [(0, 0), (1, 1), (2, 0)]:
        context = DistributedContext(rank, local_rank, 4, backend="gloo")
        for local in (False, True):
            events.clear()
            with main_process_first(context, local=local):
                events.append("block")
            first = (local_rank if local else rank) == 0
            assert events == (["block", "barrier"] if first else ["barrier", "block"])
    events.clear()
    with pytest.raises(OSError, match="download failed"):  # rank 0 still releases the others
        with main_process_first(DistributedContext(0, 0, 2, backend="gloo")):
            raise OSError("download failed")
    assert events == ["barrier"]
    events.clear()
    with main_process_first(DistributedContext()):  # one process: no barrier at all
        events.append("block")
    assert events == ["block"]


def test_seed_per_rank_gives_each_rank_its_own_reproducible_draws() -> None:
    draws = {}
    for rank in (0, 1, 0):
        generator = seed_per_rank(7, DistributedContext(rank=rank, world_size=2))
        draws.setdefault(rank, []).append(
            (torch.rand(4).tolist(), torch.rand(2, generator=generator).tolist())
        )
    assert draws[0][0] == draws[0][1]  # the same rank and seed: the same numbers
    assert draws[0][0][0] != draws[1][0][0] and draws[0][0][1] != draws[1][0][1]
    torch.manual_seed(8)
    assert torch.rand(4).tolist() == draws[1][0][0]  # rank 1 of seed 7 is seed 8


def test_gather_flat_and_replicas_identical_compare_bits() -> None:
    single = DistributedContext()
    tensors = [torch.tensor([1.0, -0.0]), torch.tensor([3], dtype=torch.int64)]
    (flat,) = gather_flat(tensors, single)
    assert flat.dtype == torch.uint8 and flat.numel() == 2 * 4 + 8
    assert not torch.equal(
        gather_flat([torch.tensor([0.0])], single)[0],
        gather_flat([torch.tensor([-0.0])], single)[0],
    )  # 0.0 == -0.0, but not bit for bit
    with pytest.raises(ValueError, match="at least one tensor"):
        gather_flat([], single)
    report = replicas_identical(make_model("batchnorm"), single, buffers=True)
    assert report["identical"] and report["world_size"] == 1 and len(report["digests"]) == 1


def _state(model: torch.nn.Module) -> tuple:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10)
    return optimizer, scheduler


def test_training_state_round_trip_resumes_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = make_model("plain")
    optimizer, scheduler = _state(model)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    path = tmp_path / "state" / "checkpoint.pt"
    save_training_state(DistributedContext(), path, model, optimizer, scheduler, epoch=2)
    assert path.is_file() and not path.with_name("checkpoint.pt.partial").exists()
    fresh = make_model("plain")
    fresh_optimizer, fresh_scheduler = _state(fresh)
    epoch = load_training_state(path, fresh, fresh_optimizer, fresh_scheduler, device="cpu")
    assert epoch == 2 and fresh_scheduler.last_epoch == scheduler.last_epoch == 2
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    momentum = [fresh_optimizer.state[p]["momentum_buffer"] for p in fresh.parameters()]
    assert all(torch.equal(a, optimizer.state[p]["momentum_buffer"])
               for a, p in zip(momentum, model.parameters(), strict=True))  # fmt: skip
    assert load_training_state(tmp_path / "missing.pt", fresh) == 0  # start from scratch
    save_training_state(DistributedContext(rank=1, world_size=2), tmp_path / "r1.pt",
                        model, optimizer, None, 1)  # fmt: skip
    assert not (tmp_path / "r1.pt").exists()  # only rank 0 writes


def test_training_state_accepts_weights_saved_from_inside_ddp(tmp_path: Path) -> None:
    model = make_model("plain")
    wrapped = {f"module.{name}": value for name, value in model.state_dict().items()}
    torch.save({"model": wrapped, "optimizer": None, "scheduler": None, "epoch": 4},
               tmp_path / "ddp.pt")  # fmt: skip
    fresh = make_model("plain")
    assert load_training_state(tmp_path / "ddp.pt", fresh) == 4
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )


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
    with_options = torchrun_command(["t.py"], 2, python="py", options=["--max-restarts=1"])
    assert with_options[4:] == ["--nproc_per_node=2", "--max-restarts=1", "t.py"]
    with pytest.raises(TypeError, match="lists of arguments"):
        torchrun_command("train.py")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lists of arguments"):
        torchrun_command(["train.py"], options="--max-restarts=1")  # type: ignore[arg-type]
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
    replicas = run.result["runs"]["plain"]["parameters"]
    assert replicas["identical"] and replicas["world_size"] == 2
    assert replicas["digests"][0] == replicas["digests"][1]
    assert run.result["runs"]["plain"]["buffers"] is None  # MnistCNN has none
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


@pytest.mark.skipif(not mnist_available(), reason="CNNBOOK_DATA does not hold MNIST")
def test_mnist_cnn_gradients_fit_in_one_ddp_bucket(tmp_path: Path) -> None:
    """MnistCNN's 196 KiB of gradients fit in DDP's first bucket (1 MiB by default)."""
    run = launch_torchrun(
        ["-m", "cnnbook.ddp_experiments", "throughput", "--out", str(tmp_path),
         "--global-batch", "32", "--steps", "3"],
        nproc_per_node=2, env=CPU, stream=False, timeout=240,
    )  # fmt: skip
    report = run.result
    assert report is not None and report["world_size"] == 2
    assert report["gradient_bytes"] == 4 * report["parameters"] == 200_744
    assert report["gradient_bytes"] < report["first_bucket_cap_bytes"] == 2**20
    assert report["buckets_per_step"] == 1 and report["bucket_bytes"] == [200_744]
    assert 0 < report["bucket_allreduce_seconds"] and 0 < report["compute_seconds"]


@pytest.mark.skipif(not mnist_available(), reason="CNNBOOK_DATA does not hold MNIST")
def test_a_killed_rank_is_restarted_and_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    """torchrun --max-restarts=1: rank 1 dies at epoch 2, both restart, and the run resumes.

    The resumed run ends with the same weights, bit for bit, as an uninterrupted one.
    """
    arguments = ["--epochs", "2", "--train-subset", "512", "--batch-size", "32"]
    runs = {}
    for name, failure in [("failed", ["--fail-at-epoch", "1"]), ("whole", [])]:
        runs[name] = launch_torchrun(
            ["-m", "cnnbook.ddp_experiments", "resume", "--out", str(tmp_path / name),
             *arguments, *failure],
            nproc_per_node=2, env=CPU, stream=False, timeout=300,
            options=["--max-restarts=1"],
        )  # fmt: skip
    failed, whole = runs["failed"].result, runs["whole"].result
    assert failed is not None and whole is not None
    assert "rank 1: killing itself at the start of epoch 2" in runs["failed"].log
    assert failed["restart_count"] == 1 and failed["max_restarts"] == 1
    assert failed["started_at_epoch"] == 1 and whole["started_at_epoch"] == 0
    assert whole["restart_count"] == 0 and failed["parameters"]["identical"]
    resumed = torch.load(failed["weights"], weights_only=True)
    reference = torch.load(whole["weights"], weights_only=True)
    assert all(torch.equal(resumed[name], reference[name]) for name in reference)


def test_a_timeout_stops_torchrun_and_its_workers(tmp_path: Path) -> None:
    """torchrun puts each worker in its own session; a timeout must stop them too."""
    script = tmp_path / "sleep.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    with pytest.raises(TimeoutError, match="ran past 20 s"):
        launch_torchrun([str(script)], nproc_per_node=1, stream=False, timeout=20)


def test_each_restart_gets_a_rendezvous_store_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """launch_torchrun turns off the shared rendezvous store (pytorch/pytorch#135712)."""
    monkeypatch.delenv("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", raising=False)
    script = tmp_path / "show.py"
    script.write_text(
        "import json, os\n"
        "print(json.dumps({'value': os.environ.get('TORCH_DISABLE_SHARE_RDZV_TCP_STORE')}))\n"
    )
    run = launch_torchrun([str(script)], nproc_per_node=1, stream=False, timeout=120)
    assert run.result == {"value": "1"}
    kept = launch_torchrun(
        [str(script)], nproc_per_node=1, stream=False, timeout=120,
        env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "0"},
    )  # fmt: skip
    assert kept.result == {"value": "0"}  # the caller's choice wins
