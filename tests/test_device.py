"""get_device(): automatic choice, the CNNBOOK_DEVICE override, and its errors."""

from __future__ import annotations

import pytest
import torch

from cnnbook import device as device_module
from cnnbook.device import describe_device, get_device


def test_cpu_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNBOOK_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_automatic_choice_without_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNBOOK_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_automatic_choice_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNBOOK_DEVICE", raising=False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device() == torch.device("mps")


@pytest.mark.parametrize("value", ["gpu", "tpu", "cuda:x", "cpu0", "CUDA 1"])
def test_unknown_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CNNBOOK_DEVICE", value)
    with pytest.raises(
        ValueError, match=r"CNNBOOK_DEVICE=.*not a device this book knows.*'cpu', 'cuda'"
    ):
        get_device()


def test_unavailable_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CNNBOOK_DEVICE", "cuda:1")
    with pytest.raises(RuntimeError, match=r"asks for a CUDA GPU, but PyTorch sees none"):
        get_device()


def test_missing_gpu_index_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CNNBOOK_DEVICE", "cuda:1")
    with pytest.raises(RuntimeError, match=r"asks for GPU 1, but this machine has 1"):
        get_device()


def test_unavailable_mps_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    monkeypatch.setenv("CNNBOOK_DEVICE", "mps")
    with pytest.raises(RuntimeError, match=r"Apple's MPS backend, which is not available"):
        get_device()


def test_describe_cpu_names_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert describe_device(torch.device("cpu")) == "cpu (2 threads)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device(torch.device("cpu")) == "cpu (1 thread)"
