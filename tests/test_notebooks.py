"""The conventions every chapter notebook follows (CONTRIBUTING.md), read from the files.

nbval re-executes the notebooks; these tests check what nbval cannot: that each
notebook is in the table of contents, starts with the Colab setup cell for this
repository, was executed top to bottom by the project's runner, has no errors,
and stayed within its time budget in its recorded per-cell timings.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(
    p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)

# Seconds on a 2-core CPU, from the book guide: concept chapters 2 minutes,
# training chapters 4, CIFAR-10 12.
CONCEPT_BUDGET, TRAINING_BUDGET, CIFAR_BUDGET = 120, 240, 720
TRAINING_CHAPTERS = {
    "07_mnist",
    "08_cnn_from_scratch",
    "09_lenet_alexnet",
    "10_modern_cnn_blocks",
    "12_data_parallel",
    "13_visualizing",
    "18_char_language_model",
}


def budget(path: Path) -> int:
    """The time budget of one notebook, in seconds."""
    if path.stem == "11_cifar10":
        return CIFAR_BUDGET
    return TRAINING_BUDGET if path.stem in TRAINING_CHAPTERS else CONCEPT_BUDGET


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]


def tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def recorded_seconds(notebook: nbformat.NotebookNode) -> float:
    """Wall time from the first cell's start to the last cell's end, from nbclient's records."""
    timings = [c.metadata.get("execution", {}) for c in code_cells(notebook)]
    starts = [_time(t["iopub.execute_input"]) for t in timings if "iopub.execute_input" in t]
    ends = [_time(t["shell.execute_reply"]) for t in timings if "shell.execute_reply" in t]
    return (max(ends) - min(starts)).total_seconds()


def test_there_are_chapters() -> None:
    assert CHAPTERS, "no notebooks found in chapters/"


def test_every_toc_entry_exists() -> None:
    for entry in toc_files():
        assert (ROOT / f"{entry}.ipynb").exists() or (ROOT / f"{entry}.md").exists(), (
            f"_toc.yml lists {entry}, which does not exist"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
class TestChapter:
    def test_in_table_of_contents(self, path: Path) -> None:
        entry = path.relative_to(ROOT).with_suffix("").as_posix()
        assert entry in toc_files(), f"{entry} is not in _toc.yml, so the site does not show it"

    def test_opens_with_title_and_goals(self, path: Path) -> None:
        notebook = nbformat.read(path, as_version=4)
        first = notebook.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), (
            "the first cell must be the '# Title'"
        )
        assert re.search(r"you will learn", first.source, re.IGNORECASE), (
            "the first cell must list 'You will learn'"
        )
        titles = [
            line
            for c in notebook.cells
            if c.cell_type == "markdown"
            for line in c.source.splitlines()
            if line.startswith("# ")
        ]
        assert len(titles) == 1, f"exactly one top-level title expected, found {titles}"

    def test_ends_with_summary_and_exercises(self, path: Path) -> None:
        markdown = "\n".join(
            c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
        )
        assert re.search(r"^## Summary", markdown, re.MULTILINE), (
            "a '## Summary' section is missing"
        )
        assert re.search(r"^## Exercises", markdown, re.MULTILINE), (
            "a '## Exercises' section is missing"
        )
        assert markdown.count(":class: dropdown") >= 3, (
            "at least three exercises with folded solutions are expected"
        )

    def test_first_code_cell_is_colab_setup_for_this_repository(self, path: Path) -> None:
        cell = code_cells(nbformat.read(path, as_version=4))[0]
        url, branch = repository()
        assert "remove-input" in tags(cell), "the Colab setup cell must be tagged remove-input"
        assert '"google.colab" in sys.modules' in cell.source, (
            "the Colab cell must install only inside Colab"
        )
        assert f"git+{url}@{branch}" in cell.source, (
            f"the Colab cell must install from {url}@{branch} (_config.yml)"
        )

    def test_kernel_is_python3(self, path: Path) -> None:
        assert nbformat.read(path, as_version=4).metadata["kernelspec"]["name"] == "python3"

    def test_executed_in_order_without_errors(self, path: Path) -> None:
        cells = code_cells(nbformat.read(path, as_version=4))
        counts = [c.execution_count for c in cells]
        assert None not in counts, (
            "some code cells were never run; run the notebook with `make notebook`"
        )
        assert counts == list(range(1, len(cells) + 1)), (
            f"cells were not run top to bottom in a fresh kernel: {counts}"
        )
        errors = [o.get("ename") for c in cells for o in c.outputs if o.output_type == "error"]
        assert not errors, f"committed outputs contain errors: {errors}"

    def test_no_cell_is_skipped(self, path: Path) -> None:
        for cell in code_cells(nbformat.read(path, as_version=4)):
            assert "nbval-skip" not in tags(cell) and "NBVAL_SKIP" not in cell.source, (
                "cells must not be skipped"
            )
            assert "raises-exception" not in tags(cell), (
                "show errors with try/except and print the message"
            )

    def test_within_time_budget_in_recorded_timings(self, path: Path) -> None:
        notebook = nbformat.read(path, as_version=4)
        missing = [
            i
            for i, c in enumerate(code_cells(notebook))
            if "shell.execute_reply" not in c.metadata.get("execution", {})
        ]
        assert not missing, (
            f"code cells {missing} have no recorded timing; run the notebook with `make notebook`"
        )
        seconds = recorded_seconds(notebook)
        assert seconds <= budget(path), (
            f"{path.name} took {seconds:.0f} s, over its budget of {budget(path)} s"
        )


def test_most_outputs_are_compared() -> None:
    ignored = total = 0
    for path in CHAPTERS:
        for cell in code_cells(nbformat.read(path, as_version=4)):
            total += 1
            ignored += "nbval-ignore-output" in tags(cell)
    assert ignored / total < 0.4, (
        f"{ignored} of {total} code cells ignore their output; nbval would check little"
    )


def test_report_recorded_times(capsys: pytest.CaptureFixture[str]) -> None:
    """Print each notebook's recorded time (visible with -s or in CI's summary)."""
    rows = [
        (path.name, recorded_seconds(nbformat.read(path, as_version=4)), budget(path))
        for path in CHAPTERS
    ]
    with capsys.disabled():
        print("\nRecorded notebook times (make notebook):")
        for name, seconds, limit in rows:
            print(f"  {seconds:7.1f} s of {limit:4d} s  {name}")
        print(f"  {sum(s for _, s, _ in rows):7.1f} s in all")


# A percentage or a duration typed into prose: "85.01%", "99 %", "23 s", "about a minute" is
# not caught (no digits), "4 epochs" is not a measurement unit here.
_MEASURED = re.compile(
    r"(?<![\w.$\\])\d[\d,]*(?:\.\d+)?\s?(?:%|s\b|seconds?\b|ms\b|min\b|minutes?\b|hours?\b)"
)
# A block that names where its numbers come from: a citation, a link, or the words of one.
_SOURCED = re.compile(
    r"\{cite(?::\w+)?\}|\]\(https?://|et al\.|\bpaper\b|\breports?\b|\breported\b|"
    r"\bdocumentation\b|\bdocs\b",
    re.IGNORECASE,
)


def unsourced_numbers(markdown: str) -> list[str]:
    """Percentages and durations in ``markdown`` that are neither glued nor attributed.

    Code blocks, inline code, math and glue roles are removed first. A number may
    stand in a paragraph, list item, table or admonition that names its source
    (``{cite}``, a link, "et al.", "paper", "reports", "documentation"); a table
    counts as a whole, so a "Source" column covers its rows.
    """
    text = re.sub(r"```.*?```|~~~.*?~~~", "", markdown, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$|`[^`\n]*`", "", text, flags=re.S)
    text = re.sub(r"\{glue(?::\w+)?\}`[^`]*`", "", text)
    blocks = re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s)", text)
    found = []
    for block in blocks:
        if _SOURCED.search(block):
            continue
        found += [" ".join(m.group(0).split()) for m in _MEASURED.finditer(block)]
    return found


def test_unsourced_numbers_finds_typed_results_and_spares_glued_or_cited_ones() -> None:
    assert unsourced_numbers("The network reaches 98.36% in 23 s.") == ["98.36%", "23 s"]
    assert unsourced_numbers("It reaches {glue:text}`acc` in {glue:text}`secs` s.") == []
    assert unsourced_numbers("LeCun et al. report 0.95% error.") == []
    assert unsourced_numbers("Top-5 error 15.3% {cite}`krizhevsky2012`.") == []
    assert unsourced_numbers("```python\nx = 50%\n```\n$p = 5\\%$ and `10 s`") == []
    assert unsourced_numbers("- 97% here\n- 12% in the [paper](https://x.org)") == ["97%"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_prose_numbers_are_glued_or_sourced(path: Path) -> None:
    """Results quoted in prose come from the run through glue; others name their source."""
    notebook = nbformat.read(path, as_version=4)
    typed = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            typed += unsourced_numbers(cell.source)
    assert not typed, (
        f"{path.name}: percentages or timings typed into the prose: {typed}. Glue numbers that "
        "come from this run (myst_nb.glue, then {glue:text}`name`) and name the source of "
        "numbers quoted from elsewhere ({cite}, a link, or 'the paper reports ...')."
    )


def concept_chapters() -> list[Path]:
    """The chapters with the concept budget: the short ones, which `make nbval-portable` re-runs."""
    return [path for path in CHAPTERS if budget(path) == CONCEPT_BUDGET]


if __name__ == "__main__":
    # `python tests/test_notebooks.py concept` prints the concept chapters for the Makefile.
    import sys

    if sys.argv[1:] != ["concept"]:
        sys.exit("usage: python tests/test_notebooks.py concept")
    print(" ".join(str(path.relative_to(ROOT)) for path in concept_chapters()))
