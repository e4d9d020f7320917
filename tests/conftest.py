"""Shared pytest setup: tests never touch the network or the user's dataset folder by accident."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every torchvision download fail as it does on a machine without internet."""
    from urllib.error import URLError

    def refuse(*args: object, **kwargs: object) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution (simulated offline)")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", refuse)
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", refuse)
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", refuse)
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", refuse)


def real_data_root() -> Path | None:
    """The dataset folder CI prepares (``CNNBOOK_DATA``), if it holds MNIST."""
    value = os.environ.get("CNNBOOK_DATA")
    if value and (Path(value) / "MNIST" / "raw").is_dir():
        return Path(value)
    return None
