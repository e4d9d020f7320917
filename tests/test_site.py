"""The built site, as a reader sees it: every page of the table of contents in headless Chromium.

The test builds the book with ``jupyter-book build . -W -n --keep-going`` (any
warning fails), serves ``_build/html`` on 127.0.0.1 and opens every page. It
checks for JavaScript console errors, that notebook outputs and figures appear
(images loaded), that math is rendered by MathJax (served from the local npm
copy in ``node_modules/mathjax``, since CI is offline) and that each chapter's
Colab button opens that chapter's notebook. Screenshots of every page are saved
in ``_build/screenshots`` to look at.

Chromium comes from Debian (``apt-get install chromium``). Without it the test
is skipped on a laptop, but fails in CI (where ``CI`` is set).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
MATHJAX = ROOT / "node_modules" / "mathjax"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _chromium() -> str:
    path = (
        os.environ.get("CNNBOOK_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path:
        return path
    message = "Chromium is not installed: run `apt-get install -y chromium` (Debian) or set CNNBOOK_CHROMIUM."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def _repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Build the book and serve it; yield the base URL."""
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going"],
        check=True, cwd=ROOT,
    )  # fmt: skip
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[object]:
    executable = _chromium()
    if not (MATHJAX / "es5" / "tex-mml-chtml.js").exists():
        pytest.fail(
            "The local MathJax copy is missing: run `npm install` (package.json lists mathjax@3)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _route_offline(page: object, site: str) -> list[str]:
    """Serve MathJax from the local copy; refuse, and record, every other outside request."""
    refused: list[str] = []

    def handle(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(site) or url.startswith("data:"):
            route.continue_()  # type: ignore[attr-defined]
        elif url.startswith(MATHJAX_CDN):
            local = MATHJAX / url[len(MATHJAX_CDN) :].split("?")[0]
            route.fulfill(path=str(local), content_type="application/javascript")  # type: ignore[attr-defined]
        else:
            refused.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", handle)  # type: ignore[attr-defined]
    return refused


@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_without_errors(browser: object, site: str, page_path: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    refused = _route_offline(page, site)
    response = page.goto(f"{site}/{page_path}.html", wait_until="load")
    assert response is not None and response.ok, f"{page_path}.html did not load"
    page.wait_for_load_state("networkidle")

    has_math = page.locator("div.math, span.math").count() > 0
    if has_math:
        page.wait_for_selector("mjx-container", timeout=15_000)
        assert (
            page.locator("mjx-container").count() >= page.locator("div.math, span.math").count()
        ), "some math was not rendered"

    images = page.locator("main img")
    broken = page.evaluate(
        "Array.from(document.querySelectorAll('main img')).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"

    if page_path.startswith("chapters/"):
        assert page.locator(".cell_output").count() > 0, "the chapter shows no notebook outputs"
        assert images.count() > 0, "the chapter shows no figures"
        url, branch = _repository()
        owner_repo = url.removeprefix("https://github.com/")
        colab = page.locator("a[href*='colab.research.google.com']")
        assert colab.count() >= 1, "no Colab launch button"
        expected = (
            f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{page_path}.ipynb"
        )
        assert colab.first.get_attribute("href") == expected

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{page_path.replace('/', '_')}.png"), full_page=False)
    page.close()
    assert not errors, f"JavaScript console errors on {page_path}: {errors}"
    assert not refused, f"{page_path} tried to load outside resources: {refused}"
