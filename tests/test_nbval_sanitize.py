"""nbval's sanitizer (tests/nbval_sanitize.cfg): what it hides, and what it must still catch.

nbval replaces each `regex:` of the file by its `replace:` in both the committed and the re-run
output before comparing them. Timings and rates vary from run to run and are hidden. A float's
full repr (a glue record, a bare print) varies from CPU to CPU in its last digits and is compared
at its first 4 significant digits. A real change of a result must still fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

SANITIZER = Path(__file__).parent / "nbval_sanitize.cfg"


def _sanitize(text: str) -> str:
    """Apply the sanitizer exactly as nbval does: its own parser, each pattern in file order."""
    for regex, replace in get_sanitize_patterns(SANITIZER.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


def test_sanitizer_hides_times_and_rates_but_not_results() -> None:
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


# Pairs seen between two CPUs (issue 20): the same result, differing from the 5th digit on.
SAME_RESULT = [
    ("5.301843758534045", "5.301843044713074"),  # a perplexity
    ("0.12844018692756798", "0.12844046208031212"),  # a gain
    ("0.19668573141098022", "0.19668611884117126"),  # a median gradient norm
    ("0.5484375", "0.5484466911764706"),  # an accuracy, 7 digits against 16
    ("1.7881393432617188e-07", "1.7881396e-07"),  # exponent kept
    ("1702.1234567", "1702.1239999"),  # a long integer part is kept whole
    ("array([0.12345678, 1.23456789])", "array([0.12345612, 1.23456712])"),
]
# A real change: the 3rd (or 4th) significant digit, or a short number, or an integer.
DIFFERENT_RESULT = [
    ("5.301843758534045", "5.311843758534045"),  # perplexity off by 0.01
    ("0.5484375", "0.5494375"),  # accuracy off by 0.1 point
    ("0.12844018692756798", "0.12944018692756798"),
    ("1.7881393432617188e-07", "2.384185791015625e-07"),
    ("1.7881393432617188e-07", "1.7881393432617188e-06"),  # the exponent counts
    ("1702.1234567", "1703.1234567"),
    ("loss 0.3979", "loss 0.3980"),  # formatted for the page: compared exactly
    ("0.548438", "0.548439"),  # six significant digits: compared exactly
    ("78042 parameters", "78043 parameters"),  # integers are never shortened
    ("1234567.5", "1234568.5"),
]


@pytest.mark.parametrize(("committed", "rerun"), SAME_RESULT)
def test_long_floats_compare_at_four_significant_digits(committed: str, rerun: str) -> None:
    assert _sanitize(committed) == _sanitize(rerun)
    assert _sanitize(f"ppl {committed} after") == _sanitize(f"ppl {rerun} after")


@pytest.mark.parametrize(("committed", "rerun"), DIFFERENT_RESULT)
def test_a_changed_result_still_differs(committed: str, rerun: str) -> None:
    assert _sanitize(committed) != _sanitize(rerun)


def test_numbers_inside_names_and_versions_are_left_alone() -> None:
    for text in ("torch 2.14.1", "x1.2345678", "conv1.weight", "fig-11-ladder"):
        assert _sanitize(text) == text


def _notebook(path: Path, committed_glue: str, committed_print: str) -> None:
    """A one-cell notebook that glues and prints 5.301843758534045, committed with other outputs."""
    cell = nbformat.v4.new_code_cell(
        "from myst_nb import glue\n\nppl = 5.301843758534045\nglue('ppl', ppl, display=False)\n"
        "print('validation perplexity', ppl)",
        execution_count=1,
        outputs=[
            nbformat.v4.new_output(
                "display_data",
                data={"application/papermill.record/text/plain": committed_glue},
                metadata={
                    "scrapbook": {"name": "ppl", "mime_prefix": "application/papermill.record/"}
                },
            ),
            nbformat.v4.new_output(
                "stream", name="stdout", text=f"validation perplexity {committed_print}\n"
            ),
        ],
    )
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def test_nbval_passes_a_seventh_digit_wobble_and_fails_a_third_digit_change(
    tmp_path: Path,
) -> None:
    """The real nbval, with the real sanitizer, on a glue record and a printed float."""
    true, wobble, changed = "5.301843758534045", "5.301843044713074", "5.311843758534045"
    cases = {
        "wobble.ipynb": (wobble, wobble),  # both outputs as another CPU wrote them: passes
        "print_changed.ipynb": (wobble, changed),  # the printed perplexity is off by 0.01: fails
        "glue_changed.ipynb": (changed, true),  # the glued perplexity is off by 0.01: fails
    }
    for name, (glued, printed) in cases.items():
        _notebook(tmp_path / name, glued, printed)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    outcomes = {}
    for name in cases:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval",
             "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZER), name],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode in (0, 1), run.stdout + run.stderr
        outcomes[name] = "passed" if run.returncode == 0 else run.stdout
    assert outcomes["wobble.ipynb"] == "passed"
    for name, changed_output in (
        ("print_changed.ipynb", "stdout"),
        ("glue_changed.ipynb", "text/plain"),
    ):
        assert "mismatch" in outcomes[name].lower() and changed_output in outcomes[name], outcomes[
            name
        ]
