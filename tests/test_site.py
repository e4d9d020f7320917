"""The built site, as a reader sees it: every page of the table of contents in headless Chromium.

The test builds the book with ``jupyter-book build . -W -n --keep-going`` (any
warning fails, including an unresolved ``{cite}``, ``{doc}`` or ``{ref}``),
serves ``_build/html`` on 127.0.0.1 and opens every page at 1280 px. On every
page it checks that:

- no request leaves 127.0.0.1: the site carries its own MathJax
  (``_ext/local_mathjax.py`` copies npm's ``mathjax@3``), fonts and scripts, so
  it works offline; an outside request is refused and fails the test;
- the browser logs no console error;
- math is rendered by MathJax, images load, and chapters show their outputs and
  figures and a Colab button that opens that chapter's notebook;
- chapter N's title is numbered "N." and its sections "N.M";
- every citation links to an entry of the references page (``references.md``).

The Korean edition (``_build/html/ko``, built by ``scripts/translations.py build``
from ``locales/ko``) gets the same checks on every page, and its own: ``<html
lang="ko">``, the same glued numbers as the English page, a language link to the same
page in the other edition and back, and Korean search that finds a chapter by a
Korean word.

It saves screenshots of three pages of each edition at 1280 px (desktop) and 390 px (phone) in
``_build/screenshots`` to look at. ``layout_problems`` measures what does not
fit the page (clipped code, outputs and equations; figures shrunk below 70% of
their width) and ``test_layout_fits`` requires, on every page at 1280 px, that
nothing is clipped, no figure is shrunk below that, and every figure has a
numbered caption and alt text; and, printed on A4 (print media, 718 px between
the margins), that nothing is cut off.

Chromium comes from Debian (``apt-get install chromium``). Without it the test
is skipped on a laptop, but fails in CI (where ``CI`` is set).
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Where the book is built: the checkout by default; CNNBOOK_BUILD_PATH sends the build
# (and the screenshots) elsewhere, so that two people can test the site at once.
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)) / "_build"
HTML = BUILD / "html"
SCREENSHOTS = BUILD / "screenshots"
LOCAL_MATHJAX = HTML / "_static" / "mathjax" / "tex-mml-chtml.js"
REFERENCES_PAGE = "references"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# A4 paper (210 mm at 96 px per inch) less the printer's 10 mm margins on each side.
PRINT = {"width": 718, "height": 1016}
# The pages whose screenshots are kept, and what each screenshot is scrolled to.
SCREENSHOT_PAGES = {
    "intro": None,  # the landing page: parts, chapters, a formula, citations
    "chapters/03_padding_stride_dilation": "div.math",  # the first display equation
    "chapters/07_mnist": ".cell_output img",  # the first figure
}
FIGURE_MIN_SCALE = 0.7
# The editions: the English site at the root, the Korean one below ko/ (same page names).
EDITIONS = ["", "ko/"]


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


def _require_korean_font() -> None:
    """Fail (skip outside CI) unless fontconfig knows a font with Hangul, for the Korean pages."""
    fc_list = shutil.which("fc-list")
    found = (
        fc_list
        and subprocess.run(
            [fc_list, ":lang=ko", "family"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    if found:
        return
    message = (
        "No Korean font is installed, so Chromium draws the Korean pages' Hangul as boxes: "
        "run `apt-get install -y fonts-noto-cjk` (Debian) or install another font with Hangul."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _toc() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def _pages() -> list[str]:
    toc = _toc()
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def _edition_pages() -> list[str]:
    """Every page of every edition: ``chapters/07_mnist`` and ``ko/chapters/07_mnist``."""
    return [edition + page for edition in EDITIONS for page in _pages()]


def _chapter_number(page_path: str) -> int | None:
    """The number a page's title must carry: NN for chapters/NN_*.ipynb, else None."""
    match = re.fullmatch(r"(?:ko/)?chapters/(\d+)_\w+", page_path)
    return int(match.group(1)) if match else None


def _repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"]["branch"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Build the book and serve it; yield the base URL."""
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(BUILD.parent)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "translations.py"), "build"],
        check=True, cwd=ROOT, env={**os.environ, "CNNBOOK_BUILD_PATH": str(BUILD.parent)},
    )  # fmt: skip
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def citation_targets(site: str) -> set[str]:
    """The anchors of the entries on the references page."""
    text = (HTML / f"{REFERENCES_PAGE}.html").read_text(encoding="utf-8")
    return set(re.findall(r'<div class="citation" id="([^"]+)"', text))


class Visit:
    """One page opened in Chromium, with its console errors and refused outside requests."""

    def __init__(self, browser: Any, site: str, page_path: str, viewport: dict[str, int]) -> None:
        self.page = browser.new_page(viewport=viewport)
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", functools.partial(self._only_local, site))
        response = self.page.goto(f"{site}/{page_path}.html", wait_until="load")
        assert response is not None and response.ok, f"{page_path}.html did not load"
        self.page.wait_for_load_state("networkidle")
        assert not self.refused, f"{page_path} requested outside resources: {self.refused}"
        if self.page.locator("div.math, span.math").count():
            # attached, not visible: the first formula may sit in a hidden part of the page
            self.page.wait_for_selector("mjx-container", state="attached", timeout=15_000)

    def _only_local(self, site: str, route: Any) -> None:
        url = route.request.url
        if url.startswith(f"{site}/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def check_clean(self, page_path: str) -> None:
        """No outside request, no console error."""
        assert not self.refused, f"{page_path} requested outside resources: {self.refused}"
        assert not self.errors, f"JavaScript console errors on {page_path}: {self.errors}"

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def visits(browser: Any, site: str) -> Iterator[list[Visit]]:
    opened: list[Visit] = []
    yield opened
    for visit in opened:
        visit.close()


def test_site_carries_mathjax_and_no_general_index(site: str) -> None:
    assert LOCAL_MATHJAX.is_file(), (
        f"the site has no MathJax of its own: {LOCAL_MATHJAX} is missing"
    )
    for page_path in _edition_pages():
        text = (HTML / f"{page_path}.html").read_text(encoding="utf-8")
        # Scripts, stylesheets and fonts named with an absolute URL would come from another site.
        outside = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="((?:https?:)?//[^"]+)"', text)
        assert not outside, f"{page_path}.html loads from outside the site: {outside}"
        assert "genindex.html" not in text, f"{page_path}.html links to the empty general index"


@pytest.mark.parametrize("page_path", _edition_pages())
def test_page_renders_offline(
    browser: Any, site: str, citation_targets: set[str], visits: list[Visit], page_path: str
) -> None:
    visit = Visit(browser, site, page_path, DESKTOP)
    visits.append(visit)
    page = visit.page

    rendered = page.locator("mjx-container").count()
    written = page.locator("div.math, span.math").count()
    assert rendered >= written, f"{written - rendered} formulas were not rendered by MathJax"
    if written:
        script = page.evaluate(
            "Array.from(document.scripts).map(s => s.src).find(s => s.includes('tex-mml-chtml'))"
        )
        assert script and script.startswith(f"{site}/"), f"MathJax came from {script}"

    broken = page.evaluate(
        "Array.from(document.querySelectorAll('main img'))"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"

    number = _chapter_number(page_path)
    if number is not None:
        assert page.locator(".cell_output").count() > 0, "the chapter shows no notebook outputs"
        assert page.locator("main img").count() > 0, "the chapter shows no figures"
        url, branch = _repository()
        owner_repo = url.removeprefix("https://github.com/")
        colab = page.locator("a[href*='colab.research.google.com']")
        assert colab.count() >= 1, "no Colab launch button"
        notebook = page_path.removeprefix("ko/")  # both editions open the one notebook
        expected = (
            f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{notebook}.ipynb"
        )
        assert colab.first.get_attribute("href") == expected

        title = page.locator("main article h1").first.inner_text()
        assert title.startswith(f"{number}. "), f"the title {title!r} is not numbered {number}."
        sections = page.locator("main article section > h2").all_inner_texts()
        unnumbered = [s for s in sections if not re.match(rf"{number}\.\d+\. ", s)]
        assert not unnumbered, f"sections not numbered {number}.M: {unnumbered}"

    citations = page.evaluate(
        "Array.from(document.querySelectorAll('main .bibtex-citation'))"
        ".map(c => ({text: c.innerText, links: Array.from(c.querySelectorAll('a'))"
        ".map(a => a.getAttribute('href'))}))"
    )
    for citation in citations:
        assert citation["links"], f"citation {citation['text']!r} links to no reference"
        for href in citation["links"]:
            target_page, _, anchor = href.rpartition("#")
            assert target_page.endswith(f"{REFERENCES_PAGE}.html") and anchor in citation_targets, (
                f"citation {citation['text']!r} links to {href}, not to an entry of the references"
            )
    visit.check_clean(page_path)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
@pytest.mark.parametrize("page_path", [e + p for e in EDITIONS for p in SCREENSHOT_PAGES])
def test_screenshot(
    browser: Any, site: str, visits: list[Visit], page_path: str, viewport: dict[str, int]
) -> None:
    """Save what a reader sees first (or at the page's first equation or figure), to look at."""
    if page_path.startswith("ko/"):
        _require_korean_font()
    visit = Visit(browser, site, page_path, viewport)
    visits.append(visit)
    target = SCREENSHOT_PAGES[page_path.removeprefix("ko/")]
    if target:
        visit.page.locator(target).first.scroll_into_view_if_needed()
        visit.page.evaluate("window.scrollBy(0, -80)")  # leave room for the sticky header
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = f"{page_path.replace('/', '_')}-{viewport['width']}px.png"
    visit.page.screenshot(path=str(SCREENSHOTS / name))
    visit.check_clean(page_path)


# --- Layout: what does not fit the page -------------------------------------------------

_LAYOUT_JS = """
(minScale) => {
  const describe = (el) => (el.innerText || el.textContent || '').trim().split('\\n')[0].slice(0, 60);
  const kind = (el) => el.closest('.cell_output') ? 'output'
    : el.matches('div.math, mjx-container') ? 'math' : 'code';
  const clipped = [];
  const seen = new Set();
  for (const el of document.querySelectorAll(
      'article pre, article div.math, article mjx-container[display="true"], article .cell_output table')) {
    const box = el.matches('table') ? el.parentElement : el;
    if (seen.has(box) || box.clientWidth === 0) continue;
    seen.add(box);
    if (box.scrollWidth > box.clientWidth + 1) {
      clipped.push({kind: kind(el), over: box.scrollWidth - box.clientWidth, text: describe(el)});
    }
  }
  const figures = [];
  for (const img of document.querySelectorAll('article img')) {
    const shown = img.getBoundingClientRect().width;
    if (img.naturalWidth > 0 && shown > 0 && shown / img.naturalWidth < minScale) {
      figures.push({src: img.getAttribute('src'), natural: img.naturalWidth,
                    shown: Math.round(shown), scale: +(shown / img.naturalWidth).toFixed(2)});
    }
  }
  return {clipped, figures};
}
"""


def layout_problems(page: Any, min_scale: float = FIGURE_MIN_SCALE) -> dict[str, list[dict]]:
    """What does not fit a loaded page: clipped elements and shrunk figures.

    ``clipped``: each code block, output, display equation or output table whose
    content is wider than its box (``scrollWidth > clientWidth``), with its kind
    (``code``, ``output``, ``math``), by how many pixels, and its first line.
    ``figures``: each image shown at less than ``min_scale`` of its natural
    width, where its text shrinks with it.
    """
    return page.evaluate(_LAYOUT_JS, min_scale)


@pytest.mark.parametrize("page_path", _edition_pages())
def test_layout_fits(browser: Any, site: str, visits: list[Visit], page_path: str) -> None:
    visit = Visit(browser, site, page_path, DESKTOP)
    visits.append(visit)
    problems = layout_problems(visit.page)
    assert not problems["clipped"], f"{len(problems['clipped'])} clipped: {problems['clipped']}"
    assert not problems["figures"], f"figures shown too small: {problems['figures']}"
    unlabelled = uncaptioned_figures(visit.page)
    assert not unlabelled, f"figures without a numbered caption or alt text: {unlabelled}"
    # On paper nothing scrolls: whatever would be clipped there is lost for good.
    visit.page.emulate_media(media="print")
    visit.page.set_viewport_size(PRINT)
    on_paper = layout_problems(visit.page)["clipped"]
    assert not on_paper, f"{len(on_paper)} cut off when printed on A4: {on_paper}"


_FIGURES_JS = """
() => Array.from(document.querySelectorAll('article img')).map((img) => {
  const figure = img.closest('figure');
  const caption = figure ? figure.querySelector('figcaption') : null;
  const alt = (img.getAttribute('alt') || '').trim();
  return {src: img.getAttribute('src'), alt,
          caption: caption ? caption.innerText.trim().slice(0, 60) : null};
}).filter((f) => !f.caption || !/^(Fig\\.|그림) \\d/.test(f.caption) || !f.alt
                 || /\\.(png|jpe?g|svg)$|^(_|\\.\\.\\/)/.test(f.alt))
"""


def uncaptioned_figures(page: Any) -> list[dict]:
    """Images not shown as a numbered figure with a caption and a meaningful alt text.

    A numbered caption starts "Fig. N" in English and "그림 N" in Korean. MyST-NB renders a
    code cell's figure with ``mystnb.figure.caption`` (and
    ``mystnb.image.alt``) in its metadata as ``<figure>`` with a numbered
    ``<figcaption>``; without them the image's alt text is its file path.
    """
    return page.evaluate(_FIGURES_JS)


# --- The Korean edition ------------------------------------------------------------------


_STRAIGHT_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _pasted(text: str) -> list[str]:
    """The glued values a page shows (MyST-NB's ``pasted-text`` spans), sorted.

    Quotes are compared straight: in an English paragraph a glued text passes through
    docutils' SmartQuotes (``’``), in a translated one it is filled in after that
    transform (``_ext/glue_translation.py``), so it keeps the notebook's ``'``.
    """
    spans = re.findall(r'<span class="pasted-text">([^<]*)</span>', text)
    return sorted(html.unescape(span).translate(_STRAIGHT_QUOTES) for span in spans)


@pytest.mark.parametrize("page_path", _pages())
def test_korean_page_matches_english(site: str, page_path: str) -> None:
    """Same page name, ``lang="ko"``, every glued number the English page shows, same numbering."""
    english = (HTML / f"{page_path}.html").read_text(encoding="utf-8")
    korean = (HTML / "ko" / f"{page_path}.html").read_text(encoding="utf-8")
    assert re.search(r'<html lang="ko"', korean), f"ko/{page_path}.html is not marked lang=ko"
    assert _pasted(korean) == _pasted(english), f"ko/{page_path} shows other glued values"
    number = re.compile(r'<span class="section-number">([\d.]+)')
    assert number.findall(korean) == number.findall(english), (
        f"ko/{page_path} is numbered differently"
    )
    assert re.search(r"[\uac00-\ud7a3]", korean), f"ko/{page_path}.html has no Korean text"
    captions = re.findall(r'<span class="caption-text">([^<]*)</span>', korean)
    english_captions = [c for c in captions if not re.search(r"[\uac00-\ud7a3]", c)]
    assert captions and not english_captions, f"untranslated sidebar parts: {english_captions}"


@pytest.mark.parametrize("page_path", ["intro", "chapters/07_mnist"])
def test_language_link_goes_both_ways(
    browser: Any, site: str, visits: list[Visit], page_path: str
) -> None:
    visit = Visit(browser, site, page_path, DESKTOP)
    visits.append(visit)
    visit.page.locator("a.language-switcher").first.click()
    visit.page.wait_for_load_state("load")
    assert visit.page.url == f"{site}/ko/{page_path}.html"
    assert visit.page.locator("html").get_attribute("lang") == "ko"
    visit.page.locator("a.language-switcher").first.click()
    visit.page.wait_for_load_state("load")
    assert visit.page.url == f"{site}/{page_path}.html"
    visit.check_clean(page_path)


def test_korean_search_finds_a_chapter(browser: Any, site: str, visits: list[Visit]) -> None:
    """A Korean word (the glossary's 'pooling') finds the pooling chapter in the Korean search."""
    visit = Visit(browser, site, "ko/search", DESKTOP)
    visits.append(visit)
    visit.page.goto(f"{site}/ko/search.html?q=%ED%92%80%EB%A7%81", wait_until="load")  # 풀링
    visit.page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    found = visit.page.locator("#search-results ul.search li a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert any("04_pooling" in href for href in found), f"풀링 found only {found}"
    visit.check_clean("ko/search")
