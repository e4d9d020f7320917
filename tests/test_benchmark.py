"""The CIFAR-10 speed benchmark runs on a CPU in its short configuration and prints its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "cifar10_speed.py"


def cifar10_available() -> bool:
    root = os.environ.get("CNNBOOK_DATA")
    return bool(root) and (
        (Path(root) / "cifar10-jpeg").is_dir() or (Path(root) / "cifar-10-batches-py").is_dir()
    )


@pytest.mark.skipif(not cifar10_available(), reason="CNNBOOK_DATA does not hold CIFAR-10")
def test_cpu_short_configuration_prints_one_json_line() -> None:
    env = {**os.environ, "CNNBOOK_DEVICE": "cpu"}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
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
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--target", "94"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert completed.returncode != 0
    assert "--target must be a fraction" in completed.stderr
