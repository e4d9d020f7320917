"""The Colab path: a chapter opened in Colab has everything it imports.

In Colab the only thing installed from this repository is the ``cnnbook`` package, by
each notebook's first (hidden) cell: ``%pip install "cnnbook @ git+<url>@<branch>"``
inside ``if "google.colab" in sys.modules:``. So every third-party module a chapter or
``cnnbook`` imports must come with a distribution that ``pyproject.toml`` declares in
``[project].dependencies``, directly or as a requirement of one of them.

- The static tests read every import in ``chapters/*.ipynb`` and ``src/cnnbook`` and map
  it to the distributions installed here (``importlib.metadata``).
- ``test_chapter_starts_in_simulated_colab`` builds a fresh virtual environment (no
  system site packages) with only ``ipykernel``, starts a kernel there that has imported a
  stand-in ``google.colab`` (``tests/colab_stub``), and runs each chapter's own setup cell,
  its install pointed at a copy of this checkout: pip installs ``cnnbook`` and what it
  declares. Then the cells up to the first ``get_device(`` call and every import
  statement of the chapter run on that kernel.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 has no tomllib; tomli is the same parser
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(
    p for p in (ROOT / "chapters").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
PACKAGE = ROOT / "src" / "cnnbook"
COLAB_STUB = Path(__file__).resolve().parent / "colab_stub"
IN_CI = os.environ.get("CI", "").lower() not in {"", "0", "false"}
# The CI cache folder of .ci/run; the simulated Colab environment is kept there when it exists.
CI_CACHE = Path(
    os.environ.get("CNNBOOK_CI_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnbook-ci"
)
# Colab runs this repository's code only through cnnbook, and always has google.colab.
IGNORED = ("cnnbook", "google.colab")


# --- what the chapters and the package import ---------------------------------------------


def python_source(cell_source: str) -> str:
    """A code cell's text as Python: IPython magics and shell lines become ``pass``."""
    lines = []
    for line in cell_source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def import_nodes(source: str) -> list[ast.Import | ast.ImportFrom]:
    """The absolute import statements anywhere in ``source``, in order."""
    nodes = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
    ]
    return sorted(nodes, key=lambda node: (node.lineno, node.col_offset))


def third_party_modules(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports, without the standard library,
    ``cnnbook`` and ``google.colab``."""
    dotted: set[str] = set()
    for node in import_nodes(source):
        if isinstance(node, ast.Import):
            dotted |= {alias.name for alias in node.names}
        elif node.module:
            dotted.add(node.module)
    return {
        name.split(".")[0]
        for name in dotted
        if name.split(".")[0] not in sys.stdlib_module_names
        and not any(name == skip or name.startswith(skip + ".") for skip in IGNORED)
    }


def notebook_sources(path: Path) -> list[str]:
    """The code cells of a notebook as Python source."""
    notebook = nbformat.read(path, as_version=4)
    return [python_source(c.source) for c in notebook.cells if c.cell_type == "code"]


# --- what pyproject.toml provides ------------------------------------------------------------


def canonical(name: str) -> str:
    """A distribution name in PEP 503 form (``PyYAML`` -> ``pyyaml``, ``myst_nb`` -> ``myst-nb``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> list[str]:
    """``[project].dependencies`` of pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


@functools.cache
def import_providers() -> dict[str, list[str]]:
    """Import name -> the installed distributions that provide it (``PIL`` -> ``pillow``)."""
    return dict(importlib.metadata.packages_distributions())


@functools.cache
def dependency_closure(declared: tuple[str, ...]) -> frozenset[str]:
    """The canonical names of the declared distributions and, transitively, of what their
    installed metadata requires on this platform (extras only where a requirement asks)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [Requirement(spec) for spec in declared]
    while todo:
        requirement = todo.pop()
        key = (canonical(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            requires = importlib.metadata.requires(requirement.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        extras = {"", *requirement.extras}
        for spec in requires:
            child = Requirement(spec)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                todo.append(child)
    return frozenset(names)


def undeclared_imports(modules: Iterable[str], declared: Iterable[str]) -> dict[str, str]:
    """For each module no declared distribution provides: what to add to the dependencies."""
    providers = import_providers()
    closure = dependency_closure(tuple(declared))
    missing = {}
    for module in sorted(set(modules)):
        distributions = sorted(set(providers.get(module, [])))
        if any(canonical(d) in closure for d in distributions):
            continue
        if distributions:
            missing[module] = (
                f'add "{distributions[0]}" to [project].dependencies in pyproject.toml'
            )
        else:
            missing[module] = (
                "no distribution installed here provides it; add the one that does "
                "to [project].dependencies in pyproject.toml"
            )
    return missing


def report(where: str, missing: dict[str, str]) -> str:
    lines = [
        f"{where} imports {module}, which Colab would not have: {fix}"
        for module, fix in missing.items()
    ]
    lines.append(
        "(In Colab only cnnbook is installed from this repository, with what pyproject.toml "
        "declares and what those distributions require.)"
    )
    return "\n".join(lines)


# --- the static tests ------------------------------------------------------------------------


def test_declared_dependencies_are_installed_here() -> None:
    """The static check maps imports with this environment's metadata, so it needs them."""
    absent = []
    for spec in declared_dependencies():
        try:
            importlib.metadata.distribution(Requirement(spec).name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(spec)
    assert not absent, f"declared but not installed here (run `make install`): {absent}"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_notebook_imports_are_declared(path: Path) -> None:
    modules: set[str] = set()
    for index, source in enumerate(notebook_sources(path)):
        try:
            modules |= third_party_modules(source)
        except SyntaxError as error:
            pytest.fail(f"{path.relative_to(ROOT)}, code cell {index}: not Python: {error}")
    missing = undeclared_imports(modules, declared_dependencies())
    assert not missing, report(str(path.relative_to(ROOT)), missing)


def test_package_imports_are_declared() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        missing = undeclared_imports(third_party_modules(path.read_text()), declared_dependencies())
        if missing:
            problems.append(report(str(path.relative_to(ROOT)), missing))
    assert not problems, "\n".join(problems)


def test_chapters_import_third_party_modules() -> None:
    """The notebook check has something to check: the chapters import torch and friends."""
    modules = set()
    for path in CHAPTERS:
        for source in notebook_sources(path):
            modules |= third_party_modules(source)
    assert {"torch", "numpy", "matplotlib"} <= modules, sorted(modules)


class TestChecker:
    """The checker itself, on made-up sources and dependency lists."""

    def test_magics_and_shell_lines_are_dropped(self) -> None:
        cell = 'import sys\n\nif "google.colab" in sys.modules:\n    %pip install x\n!ls\n'
        assert third_party_modules(python_source(cell)) == set()

    def test_standard_library_cnnbook_and_colab_are_not_third_party(self) -> None:
        source = (
            "import os, sys\nfrom pathlib import Path\nfrom cnnbook.train import fit\n"
            "import google.colab\nfrom google.colab import files\nimport torch.nn as nn\n"
        )
        assert third_party_modules(source) == {"torch"}

    def test_imports_inside_functions_count(self) -> None:
        source = "def f():\n    from torchinfo import summary\n    return summary\n"
        assert third_party_modules(source) == {"torchinfo"}

    def test_an_undeclared_import_is_reported_with_its_distribution(self) -> None:
        missing = undeclared_imports({"torchinfo", "torch"}, ["torch>=2.4"])
        assert list(missing) == ["torchinfo"]
        assert '"torchinfo"' in missing["torchinfo"]
        message = report("chapters/06_building_a_cnn.ipynb", missing)
        assert "chapters/06_building_a_cnn.ipynb imports torchinfo" in message

    def test_a_made_up_import_fails(self) -> None:
        missing = undeclared_imports({"cnnbook_made_up_module"}, declared_dependencies())
        assert list(missing) == ["cnnbook_made_up_module"]
        assert "no distribution installed here provides it" in missing["cnnbook_made_up_module"]

    def test_import_names_map_to_distributions_transitively(self) -> None:
        # PIL comes from pillow, which torchvision requires; yaml from PyYAML, via myst-nb.
        assert undeclared_imports({"PIL"}, ["torchvision"]) == {}
        assert undeclared_imports({"yaml"}, ["myst-nb"]) == {}
        assert "yaml" in undeclared_imports({"yaml"}, ["torch"])


# --- Colab, simulated ------------------------------------------------------------------------


def repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def checkout_files() -> list[str]:
    """What a clone would hold once committed: tracked and untracked, not ignored, files."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(ROOT)) for p in [ROOT / "pyproject.toml", ROOT / "README.md"]] + [
            str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
        ]
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="session")
def checkout_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout for pip to build from, as Colab builds from a git clone
    (building in the checkout itself would leave a ``build/`` folder in it)."""
    copy = tmp_path_factory.mktemp("colab") / "cnnbook"
    for name in checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="session")
def colab_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtual environment with only ``ipykernel``, Colab's kernel, before any setup cell.

    The setup cells install cnnbook and its declared dependencies into it. It is kept in the
    CI cache folder when there is one, keyed by pyproject.toml; otherwise it is removed."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    keep = CI_CACHE.is_dir()
    venv = CI_CACHE / f"colab-venv-{key}" if keep else tmp_path_factory.mktemp("colab") / "venv"
    lock_path = venv.parent / f"{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test session at a time installs into it
        if not (venv / ".complete").is_file():
            shutil.rmtree(venv, ignore_errors=True)
            run(sys.executable, "-m", "venv", venv)
            python = venv / "bin" / "python"
            run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
            run(python, "-m", "pip", "install", "--quiet", "ipykernel")
            (venv / ".complete").touch()
            if keep:
                remove_stale_venvs(venv)
        if not IN_CI:
            probe = subprocess.run(
                [
                    venv / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--dry-run",
                    "--quiet",
                    "--no-deps",
                    "--ignore-installed",
                    "--timeout",
                    "10",
                    "--retries",
                    "0",
                    "torch",
                ],
                capture_output=True,
                text=True,
            )
            if probe.returncode != 0:
                pytest.skip(
                    f"pip cannot reach torch from here, so Colab cannot be simulated "
                    f"(in CI this test runs):\n{probe.stderr[-2000:]}"
                )
        yield venv
    if not keep:
        shutil.rmtree(venv, ignore_errors=True)


def remove_stale_venvs(current: Path) -> None:
    """Remove simulated Colab environments of older pyproject.toml files (5 GB each)."""
    for other in current.parent.glob("colab-venv-*"):
        if other == current or not other.is_dir():
            continue
        with open(other.parent / f"{other.name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another session uses it
            shutil.rmtree(other, ignore_errors=True)
        (other.parent / f"{other.name}.lock").unlink(missing_ok=True)


def colab_cells(path: Path, package_url: str, venv: Path) -> list[str]:
    """The cells to run: checks around the chapter's own setup cell, the cells up to and
    including the first one that calls ``get_device(``, and every import of the chapter."""
    url, branch = repository()
    sources = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    setup, rest = sources[0], sources[1:]
    remote = f"git+{url}@{branch}"
    assert setup.count(remote) == 1, f"{path.name}: the setup cell does not install {remote}"
    local_setup = setup.replace(remote, package_url)
    assert package_url in local_setup and "%pip install" in local_setup
    device = next((i for i, s in enumerate(rest) if "get_device(" in s), None)
    assert device is not None, f"{path.name}: no cell calls get_device("
    imports = []
    for source in sources:
        for node in import_nodes(python_source(source)):
            line = ast.unparse(node)
            if line not in imports:
                imports.append(line)
    before = (
        "import importlib.util, sys\n"
        f"assert sys.prefix == {str(venv)!r}, sys.prefix\n"
        "assert 'google.colab' in sys.modules\n"
        "assert importlib.util.find_spec('cnnbook') is None, 'cnnbook is already installed'\n"
    )
    after = (
        "import importlib.metadata, json, sys\nfrom pathlib import Path\nimport cnnbook\n"
        "_url = json.loads(importlib.metadata.distribution('cnnbook').read_text("
        "'direct_url.json'))\n"
        f"assert _url['url'] == {package_url!r}, _url\n"
        "assert not _url.get('dir_info', {}).get('editable'), _url\n"
        "assert Path(cnnbook.__file__).is_relative_to(sys.prefix), cnnbook.__file__\n"
    )
    return [before, local_setup, after, *rest[: device + 1], "\n".join(imports)]


@pytest.fixture
def colab_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colab_venv: Path) -> dict:
    """A kernelspec for the simulated Colab runtime and the environment its kernel gets."""
    spec = tmp_path / "jupyter" / "kernels" / "colab-sim"
    spec.mkdir(parents=True)
    argv = [
        str(colab_venv / "bin" / "python"),
        "-m",
        "ipykernel_launcher",
        "--IPKernelApp.exec_lines=import google.colab",
        "-f",
        "{connection_file}",
    ]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Colab (simulated)", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{colab_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(COLAB_STUB)  # google.colab, as Colab's own site-packages has it
    content = tmp_path / "content"  # Colab's working folder
    content.mkdir()
    return {"env": env, "cwd": str(content)}


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_starts_in_simulated_colab(
    path: Path, colab_venv: Path, colab_kernel: dict, checkout_copy: Path
) -> None:
    python = colab_venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "uninstall", "--quiet", "--yes", "cnnbook"], capture_output=True
    )  # the setup cell must install it, every time
    package_url = f"file://{checkout_copy}"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(s) for s in colab_cells(path, package_url, colab_venv)
    ]
    notebook.metadata["kernelspec"] = {"name": "colab-sim", "display_name": "Colab (simulated)"}
    client = NotebookClient(
        notebook, kernel_name="colab-sim", timeout=1800, startup_timeout=120, allow_errors=False
    )
    start = time.monotonic()
    failure = None
    try:
        client.execute(**colab_kernel)
    except CellExecutionError as error:
        failure = plain(str(error))
    if failure is not None:
        pytest.fail(
            f"{path.relative_to(ROOT)} fails in simulated Colab:\n{failure}\n"
            f"The setup cell printed:\n{plain(setup_output(notebook))}",
            pytrace=False,
        )
    cells = ", ".join(f"{cell_seconds(c):.1f}" for c in notebook.cells)
    print(f"{path.stem}: {time.monotonic() - start:.1f} s in simulated Colab (cells: {cells} s)")


def plain(text: str) -> str:
    """Text without terminal colour codes (tracebacks and pip's errors have them)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def cell_seconds(cell: nbformat.NotebookNode) -> float:
    """How long nbclient saw a cell run."""
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def setup_output(notebook: nbformat.NotebookNode) -> str:
    """What the setup cell (the second cell run) printed: pip's errors, if any."""
    outputs = notebook.cells[1].get("outputs", [])
    return "".join(o.get("text", "") or "\n".join(o.get("traceback", [])) for o in outputs)
