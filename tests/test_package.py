"""The package as a whole: every public name documented with its chapter, one home per idea."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import cnnbook

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_REFERENCE = re.compile(r"\b[Cc]hapters? (\d\d)\b")
MODULES = sorted(module.name for module in pkgutil.iter_modules(cnnbook.__path__))


def _public(module_name: str) -> list[tuple[str, object]]:
    module = importlib.import_module(f"cnnbook.{module_name}")
    return [
        (name, obj)
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == module.__name__
    ]


def _chapter_numbers() -> set[str]:
    return {path.name[:2] for path in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")}


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_names_the_chapter_that_introduces_it(module_name: str) -> None:
    undocumented = [
        name
        for name, obj in _public(module_name)
        if not CHAPTER_REFERENCE.search(inspect.getdoc(obj) or "")
    ]
    assert not undocumented, (
        f"cnnbook.{module_name}: {undocumented} have no 'Introduced in chapter NN.' in their "
        "docstring; name the chapter that first uses them."
    )


def test_every_chapter_named_in_the_package_exists() -> None:
    existing = _chapter_numbers()
    named = {
        (path.name, number)
        for path in (ROOT / "src" / "cnnbook").glob("*.py")
        for number in CHAPTER_REFERENCE.findall(path.read_text())
    }
    missing = sorted((file, number) for file, number in named if number not in existing)
    assert not missing, f"docstrings name chapters that do not exist: {missing}"


def test_the_package_docstring_describes_every_module() -> None:
    described = set(re.findall(r":mod:`cnnbook\.(\w+)`", cnnbook.__doc__ or ""))
    assert described == set(MODULES)


def test_no_notebook_defines_its_own_copy_of_a_package_function() -> None:
    public = {name for module in MODULES for name, _ in _public(module)}
    copies = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = [line for line in source.splitlines() if not line.lstrip().startswith("%")]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                is_definition = isinstance(node, (ast.FunctionDef, ast.ClassDef))
                if is_definition and node.name in public:
                    copies.append(f"{path.name}: {node.name}")
    assert not copies, f"notebooks redefine package code instead of importing it: {copies}"
