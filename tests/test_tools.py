"""The project's own tools: the notebook runner's stream cleanup and the Sphinx script fix."""

from __future__ import annotations

import importlib.util
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
