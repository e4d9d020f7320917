"""The CIFAR-10 speed benchmark runs on a CPU in its short configuration and prints its JSON line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "cifar10_speed.py"


def cifar10_available() -> bool:
    root = os.environ.get("CNNBOOK_DATA")
    return bool(root) and (
        (Path(root) / "cifar10-jpeg").is_dir() or (Path(root) / "cifar-10-batches-py").is_dir()
    )


@pytest.mark.skipif(not cifar10_available(), reason="CNNBOOK_DATA does not hold CIFAR-10")
def _run_benchmark(
    arguments: list[str], timeout: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run benchmarks/cifar10_speed.py with ``arguments`` in a subprocess, capturing its output."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_cpu_short_configuration_prints_one_json_line() -> None:
    env = {**os.environ, "CNNBOOK_DEVICE": "cpu"}
    completed = _run_benchmark(["--device", "cpu"], timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    json_lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert len(json_lines) == 1, completed.stdout
    report = json.loads(json_lines[0])
    expected = {
        "device",
        "data_source",
        "target_accuracy",
        "reached",
        "time_to_target_s",
        "epochs",
        "final_accuracy",
        "train_seconds",
    }
    assert expected <= report.keys()
    assert report["device"].startswith("cpu")
    assert 1 <= report["epochs"] <= report["max_epochs"]
    assert 0.0 <= report["final_accuracy"] <= 1.0
    assert report["reached"] == (report["time_to_target_s"] is not None)
    assert report["reached"], f"the short run should reach its target: {report}"
    assert "Test accuracy per epoch" in completed.stdout  # the readable summary


def test_bad_target_is_rejected() -> None:
    completed = _run_benchmark(["--device", "cpu", "--target", "94"], timeout=120)
    assert completed.returncode != 0
    assert "--target must be a fraction" in completed.stderr


def _load_benchmark() -> ModuleType:
    """The benchmark script as a module, so that tests can call its functions."""
    spec = importlib.util.spec_from_file_location("cifar10_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def benchmark(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmark module, with every way of loading data replaced by a failure."""
    module = _load_benchmark()

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the benchmark loaded data before checking its arguments")

    monkeypatch.setattr(module, "load_tensors", no_data)
    monkeypatch.setattr(module, "cifar10", no_data)
    return module


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("bogus", "--device 'bogus' is not a device this book knows. Use 'cpu', 'cuda'"),
        ("cuda:x", "--device 'cuda:x' is not a device this book knows"),
        ("cuda:7", "--device 'cuda:7' asks for"),
    ],
    ids=["bogus", "bad-index", "missing-gpu"],
)
def test_bad_device_is_refused_before_any_data_is_loaded(
    benchmark: ModuleType, monkeypatch: pytest.MonkeyPatch, device: str, message: str
) -> None:
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU 7")
    monkeypatch.setenv("CNNBOOK_DEVICE", "cpu")
    with pytest.raises(SystemExit) as caught:
        benchmark.main(["--device", device])
    text = str(caught.value.code)
    assert text.startswith("cifar10_speed.py: error: ") and message in text
    assert "CNNBOOK_DEVICE" not in text  # the message names the option that was given
    assert os.environ["CNNBOOK_DEVICE"] == "cpu"  # the variable is left as it was


def test_bad_device_in_a_subprocess_gives_one_clear_line(tmp_path: Path) -> None:
    # An empty data root: had the script loaded data first, it would complain about CIFAR-10.
    env = {**os.environ, "CNNBOOK_DATA": str(tmp_path)}
    env.pop("CNNBOOK_DEVICE", None)
    completed = _run_benchmark(["--device", "bogus"], timeout=120, env=env)
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr and "CIFAR-10" not in completed.stderr
    assert "--device 'bogus' is not a device this book knows" in completed.stderr
    assert completed.stdout == ""


def test_settings_choose_the_gpu_configuration_for_cuda_or_full() -> None:
    module = _load_benchmark()
    gpu = module.settings(module.parse_args([]), "cuda")
    assert {key: gpu[key] for key in module.GPU_DEFAULTS} == module.GPU_DEFAULTS
    assert gpu["gpu_configuration"] and gpu["warmup"] and gpu["max_steps"] is None
    assert module.settings(module.parse_args(["--full"]), "cpu") == gpu
    cpu = module.settings(module.parse_args([]), "cpu")
    assert {key: cpu[key] for key in module.CPU_DEFAULTS} == module.CPU_DEFAULTS
    assert not cpu["gpu_configuration"] and not cpu["warmup"]
    assert not module.settings(module.parse_args(["--no-warmup"]), "cuda")["warmup"]
    with pytest.raises(module.BenchmarkError, match="--max-steps must be at least 1"):
        module.settings(module.parse_args(["--max-steps", "0"]), "cpu")


@pytest.mark.skipif(not cifar10_available(), reason="CNNBOOK_DATA does not hold CIFAR-10")
def test_gpu_configuration_runs_on_the_cpu_for_a_few_steps() -> None:
    """``--full`` on the CPU: GPU widths, bfloat16, channels-last, the warm-up, 3 steps each.

    The batch and the data are small so that it takes seconds; what is checked is that
    every line of the GPU configuration runs, so a typo there fails here, not on a GPU.
    """
    completed = _run_benchmark(
        ["--full", "--max-steps", "3", "--device", "cpu", "--batch-size", "64"]
        + ["--train-subset", "512", "--test-subset", "128"],
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["gpu_configuration"] and report["warmup"]
    assert report["widths"] == list(_load_benchmark().GPU_DEFAULTS["widths"])
    assert report["max_steps"] == 3 and report["steps"] == 3 and report["epochs"] == 1
    assert report["device"].startswith("cpu") and report["batch_size"] == 64
    assert report["world_size"] == 1 and report["batch_per_rank"] == 64  # a single process
    assert "Stopped after 3 optimizer steps" in completed.stdout


@pytest.mark.skipif(not cifar10_available(), reason="CNNBOOK_DATA does not hold CIFAR-10")
def test_runs_unchanged_under_torchrun_with_two_cpu_processes(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node=2`` on the CPU (gloo): one JSON line, from rank 0 only.

    The global batch of 64 is split into 2 x 32; three steps keep it to seconds.
    """
    from cnnbook.distributed import launch_torchrun

    run = launch_torchrun(
        [str(SCRIPT), "--device", "cpu", "--max-steps", "3", "--batch-size", "64"]
        + ["--train-subset", "512", "--test-subset", "128"],
        nproc_per_node=2,
        env={"CNNBOOK_DEVICE": "cpu"},
        stream=False,
        timeout=300,
    )
    report = run.result
    assert report is not None, run.log[-2000:]
    assert report["world_size"] == 2 and report["backend"] == "gloo"
    assert report["global_batch_size"] == report["batch_size"] == 64
    assert report["batch_per_rank"] == 32
    assert report["steps"] == 3 and report["device"].startswith("cpu")
    assert sum(line.startswith("{") for line in run.log.splitlines()) == 1  # rank 0 only
    assert "Data parallel: 2 processes (gloo), global batch 64 = 2 x 32" in run.log
