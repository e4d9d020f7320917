"""Execute chapter notebooks top to bottom in a fresh kernel and save them with outputs.

Usage: python scripts/run_notebooks.py [NOTEBOOK ...]   (default: every chapters/**/*.ipynb)

This is the project's own command for refreshing committed outputs (``make
notebooks``). It uses nbclient with ``record_timing`` so each code cell keeps its
start and end time in ``metadata.execution``; tests read those timings to check
the time budgets. Carriage-return progress updates (tqdm) are collapsed to the
final line, as Jupyter would display them, so committed notebooks stay small.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
_CARRIAGE_RETURN = re.compile(r"[^\n]*\r(?=[^\n])")
_TIMEOUT_SECONDS = 1800


def collapse_carriage_returns(text: str) -> str:
    """Keep only what a terminal would show after each ``\\r`` rewrite of a line."""
    text = text.replace("\r\n", "\n")
    return _CARRIAGE_RETURN.sub("", text).replace("\r", "")


def run(path: Path) -> float:
    """Execute one notebook in place; return the wall-clock seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        notebook,
        timeout=_TIMEOUT_SECONDS,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    for cell in notebook.cells:
        if "outputs" in cell:
            cell["outputs"] = coalesce_streams(cell["outputs"])
    nbformat.write(notebook, path)
    return seconds


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stdout (or stderr) outputs into one and collapse its ``\\r`` rewrites.

    A progress bar arrives as hundreds of separate stderr messages; Jupyter shows
    them as one block, and so does the committed notebook.
    """
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = collapse_carriage_returns(output["text"])
    return merged


def main(arguments: list[str]) -> int:
    paths = [Path(a) for a in arguments] or sorted(
        p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )
    for path in paths:
        seconds = run(path.resolve())
        print(f"{seconds:7.1f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
