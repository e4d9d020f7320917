"""Pick the device a chapter trains on: a GPU when there is one, else the CPU.

Every notebook calls :func:`get_device` once and prints :func:`describe_device`.
The environment variable ``CNNBOOK_DEVICE`` overrides the automatic choice, for
example ``CNNBOOK_DEVICE=cpu`` to compare a GPU machine with a laptop.
"""

from __future__ import annotations

import os
import re

import torch

ENV_VAR = "CNNBOOK_DEVICE"
_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda)(:\d+)?$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _parse_device(name: str) -> torch.device:
    """Turn the text of ``CNNBOOK_DEVICE`` into a device, or explain why it cannot."""
    text = name.strip().lower()
    if not _DEVICE_PATTERN.match(text):
        raise ValueError(
            f"{ENV_VAR}={name!r} is not a device this book knows. "
            "Use 'cpu', 'cuda', 'cuda:N' (N = GPU index) or 'mps', "
            f"or unset {ENV_VAR} to pick automatically."
        )
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"{ENV_VAR}={name!r} asks for a CUDA GPU, but PyTorch sees none on this machine "
                f"(torch.cuda.is_available() is False). Unset {ENV_VAR} or set it to 'cpu'."
            )
        index = device.index or 0
        count = torch.cuda.device_count()
        if index >= count:
            raise RuntimeError(
                f"{ENV_VAR}={name!r} asks for GPU {index}, but this machine has {count} "
                f"(indices 0 to {count - 1}). Choose an index that exists or set it to 'cuda'."
            )
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(
            f"{ENV_VAR}={name!r} asks for Apple's MPS backend, which is not available here. "
            f"Unset {ENV_VAR} or set it to 'cpu'."
        )
    return device


def get_device() -> torch.device:
    """Return the device to compute on: ``CNNBOOK_DEVICE`` if set, else CUDA, else MPS, else CPU.

    The automatic order follows what is fastest on common machines: an NVIDIA GPU
    (Colab, a workstation), then Apple silicon, then the CPU. A value in
    ``CNNBOOK_DEVICE`` that is unknown or names a device this machine lacks raises
    an error that says which value was wrong and what to use instead.

    Introduced in chapter 01.
    """
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return _parse_device(override)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | str | None = None) -> str:
    """One line saying what ``device`` is: the GPU's name, or the CPU and its thread count.

    Introduced in chapter 01.
    """
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple silicon GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work, so that a timer reads true time.

    GPUs run kernels asynchronously: without this, a timer stopped after a
    training loop measures how fast work was queued, not how fast it ran. On
    the CPU there is nothing to wait for. Introduced in chapter 11.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
