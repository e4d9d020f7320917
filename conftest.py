"""Repository-wide pytest hooks: a per-file time report (one line per notebook under nbval)."""

from __future__ import annotations

from collections import defaultdict

import pytest

_seconds_by_file: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds_by_file[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    notebooks = {name: s for name, s in _seconds_by_file.items() if name.endswith(".ipynb")}
    others = {name: s for name, s in _seconds_by_file.items() if not name.endswith(".ipynb")}
    if notebooks:
        terminalreporter.section("time per notebook (nbval)")
        for name, seconds in sorted(notebooks.items()):
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}")
        terminalreporter.write_line(f"{sum(notebooks.values()):8.1f} s  all notebooks")
    if others:
        terminalreporter.section("time per test file")
        for name, seconds in sorted(others.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{seconds:8.1f} s  {name}")
