"""The project's own tools: the notebook runner's stream cleanup and the Sphinx script fix."""

from __future__ import annotations

import configparser
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_progress_bar_updates_collapse_to_the_final_line() -> None:
    runner = _load(ROOT / "scripts" / "run_notebooks.py")
    text = "epoch 1:  0%|\repoch 1: 50%|\repoch 1: 100%|\nepoch 2:  0%|\repoch 2: 100%|\n"
    assert runner.collapse_carriage_returns(text) == "epoch 1: 100%|\nepoch 2: 100%|\n"
    assert runner.collapse_carriage_returns("plain\ntext\n") == "plain\ntext\n"
    assert runner.collapse_carriage_returns("a\r\nb\n") == "a\nb\n"


def test_separate_stream_messages_merge_into_one_output() -> None:
    runner = _load(ROOT / "scripts" / "run_notebooks.py")

    def stream(name: str, text: str) -> dict:
        return {"output_type": "stream", "name": name, "text": text}

    figure = {"output_type": "display_data", "data": {}, "metadata": {}}
    outputs = [
        stream("stderr", "\repoch 1:  0%|"),
        stream("stderr", "\repoch 1: 50%|"),
        stream("stderr", "\repoch 1: 100%|\n"),
        stream("stdout", "done\n"),
        figure,
        stream("stdout", "after\n"),
    ]
    merged = runner.coalesce_streams(outputs)
    assert merged == [
        stream("stderr", "epoch 1: 100%|\n"),
        stream("stdout", "done\n"),
        figure,
        stream("stdout", "after\n"),
    ]


def test_repeated_scripts_are_dropped_keeping_the_first() -> None:
    fixes = _load(ROOT / "_ext" / "site_fixes.py")

    def script(filename: str | None, **attributes: str) -> SimpleNamespace:
        return SimpleNamespace(filename=filename, attributes=attributes)

    config = script(None, body="const THEBE_JS_URL = 1")
    same_config = script("", body="const THEBE_JS_URL = 1")
    other = script("_static/a.js")
    context = {"script_files": [config, other, same_config, script("_static/a.js")]}
    fixes.drop_repeated_scripts(None, "intro", "page.html", context, None)
    assert context["script_files"] == [config, other]


def _sanitize(text: str) -> str:
    """Apply tests/nbval_sanitize.cfg the way nbval does: each section's regex, in order."""
    config = configparser.ConfigParser()
    config.read(Path(__file__).parent / "nbval_sanitize.cfg", encoding="utf-8")
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"], text)
    return text


def test_nbval_sanitizer_hides_times_and_rates_but_not_results() -> None:
    one = "course loop: 100%|██████████| 20/20 [00:00<00:00, 42.11batch/s, loss 0.3979]"
    other = "course loop: 100%|██████████| 20/20 [00:03<00:00,  6.5batch/s, loss 0.3979]"
    start = "demo:   0%|          | 0/30 [00:00<?, ?step/s]"
    assert _sanitize(one) == _sanitize(other.replace(",  6.5", ", 6.5"))
    assert _sanitize(start) == "demo:   0%|          | 0/30 [TIME, RATE]"
    assert _sanitize("[01:02<00:01, 1.50s/it]") == "[TIME, RATE]"
    assert _sanitize("epoch 1/4  train loss 0.2868  val acc 95.58%  time 10.1 s") == (
        "epoch 1/4  train loss 0.2868  val acc 95.58%  time DURATION"
    )
    assert _sanitize("loss 0.3979") != _sanitize("loss 0.3980")
