"""Build the book as one PDF: the single-page site printed by Chromium (``make pdf``).

Usage: python scripts/build_pdf.py [--no-build]

1. ``jupyter-book build . --builder singlehtml`` puts the whole book on one page,
   ``_build/singlehtml/intro.html``, with the site's chapter and section numbers,
   figures, outputs and bibliography.
2. That page is served on 127.0.0.1 and opened in Debian's Chromium through
   Playwright (``executable_path``; Playwright's own browser download is not
   needed). Requests that would leave 127.0.0.1 are refused. The script waits
   until every image has loaded and MathJax has typeset every formula
   (``MathJax.startup.promise``), then prints with print media: A4, page numbers
   in the footer, a tagged PDF whose outline (bookmarks) follows the headings:
   the book's title, one entry per chapter, its sections below it (written with
   pikepdf from the page's headings).
3. The print styles live with the site (``_static/book.css``, ``@media print``):
   no navigation, buttons or search box; code and outputs wrap at the margin;
   figures are not split across pages; folded solutions print open; and each
   animation of ``cnnbook.animation`` prints as a strip of key frames without
   its controls (``_static/animation_print.js``). What only the book needs (a new
   page for every chapter) is added here, in ``BOOK_CSS``.

The PDF is written to ``_build/pdf/cnnbook.pdf`` (``CNNBOOK_BUILD_PATH`` moves
``_build`` elsewhere, as for the site test). It prints the page count, the size
and the time each step took.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)) / "_build"
SINGLEHTML = BUILD / "singlehtml"
PDF = BUILD / "pdf" / "cnnbook.pdf"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# A4 less 10 mm margins left and right is 718 px at 96 px per inch: the width at which the
# site test checks that nothing is cut off in print (tests/test_site.py, PRINT).
MARGIN = {"top": "12mm", "bottom": "14mm", "left": "10mm", "right": "10mm"}
FOOTER = (
    '<div style="width:100%;font-size:8pt;color:#555;text-align:center;'
    'font-family:sans-serif"><span class="pageNumber"></span> / '
    '<span class="totalPages"></span></div>'
)
# Only the book needs these: every chapter (a section with an h2 on the single page, inside
# the toctree's wrapper) starts on a new page, under a larger title.
BOOK_CSS = """
@media print {
  article.bd-article section:has(> h2) { break-before: page; }
  article.bd-article section > h2 { font-size: 2.2em; margin-top: 0; }
  div.cell_input { break-after: avoid; }
}
"""
# The outline's entries: the book's title (h1), its chapters and front and back matter (h2)
# and their sections (h3), in page order, each with a new id that Chromium turns into a
# named destination (its headerlink, hidden in print, now points to it). The sections' own
# ids are not unique on the single page: every chapter has a "summary".
_HEADINGS_JS = """
() => Array.from(document.querySelectorAll(
    'article.bd-article section > h1, article.bd-article section > h2, '
    + 'article.bd-article section > h3')).map((h, i) => {
  const text = h.cloneNode(true);
  text.querySelectorAll('.headerlink').forEach((a) => a.remove());
  h.id = `pdf-outline-${i}`;
  // Chromium writes a named destination only for an element that a link points to.
  const link = h.querySelector('a.headerlink');
  if (link) link.setAttribute('href', `#${h.id}`);
  return {level: Number(h.tagName[1]), id: h.id, title: text.textContent.replace(/\\s+/g, ' ').trim()};
})
"""
_READY_JS = """
async () => {
  for (const img of document.images) img.loading = 'eager';
  await Promise.all(Array.from(document.images).map((img) => img.decode().catch(() => {})));
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  return {
    images: Array.from(document.images).filter((i) => !(i.complete && i.naturalWidth > 0))
      .map((i) => (i.getAttribute('src') || '').slice(0, 80)),
    math: document.querySelectorAll('div.math, span.math').length,
    typeset: document.querySelectorAll('mjx-container').length,
  };
}
"""


def chromium() -> str:
    """Debian's Chromium (``apt-get install -y chromium``), or ``$CNNBOOK_CHROMIUM``."""
    path = (
        os.environ.get("CNNBOOK_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        raise SystemExit(
            "Chromium is not installed: run `apt-get install -y chromium` (Debian) "
            "or set CNNBOOK_CHROMIUM."
        )
    return path


def build_singlehtml() -> Path:
    """Build the whole book as one HTML page (any Sphinx warning fails); return its path."""
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT),
         "--builder", "singlehtml", "-W", "-n", "--keep-going", "--path-output", str(BUILD.parent)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return SINGLEHTML / "intro.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def print_pdf(url: str, output: Path) -> list[dict[str, Any]]:
    """Open ``url`` in Chromium, wait for its images and MathJax, and print it to ``output``.

    Returns the headings that the outline will list (``_HEADINGS_JS``).
    """
    from playwright.sync_api import sync_playwright

    base = url.rsplit("/", 1)[0] + "/"
    refused: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith((base, "data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        # Reduced motion: the animations do not start playing (the strips print anyway).
        page = browser.new_page(reduced_motion="reduce")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", only_local)
        started = time.perf_counter()
        page.goto(url, wait_until="load", timeout=180_000)
        loaded = time.perf_counter()
        page.emulate_media(media="print")
        page.add_style_tag(content=BOOK_CSS)
        state = page.evaluate(_READY_JS)
        if refused or errors or state["images"] or state["typeset"] < state["math"]:
            raise SystemExit(
                f"the page is not ready to print: refused {refused}, errors {errors}, "
                f"images not loaded {state['images']}, "
                f"{state['math'] - state['typeset']} formulas not typeset"
            )
        headings = page.evaluate(_HEADINGS_JS)
        ready = time.perf_counter()
        output.parent.mkdir(parents=True, exist_ok=True)
        page.pdf(
            path=str(output),
            format="A4",
            margin=MARGIN,
            print_background=True,
            display_header_footer=True,
            header_template="<div></div>",
            footer_template=FOOTER,
            # Chromium's own outline (outline=True) runs the words of a wrapped heading
            # together and repeats some; add_outline writes it from the headings instead.
            tagged=True,
        )
        browser.close()
    print(
        f"page loaded in {loaded - started:.0f} s, images and formulas ready in "
        f"{ready - loaded:.0f} s, printed in {time.perf_counter() - ready:.0f} s"
    )
    return headings


def add_outline(path: Path, headings: list[dict[str, Any]]) -> int:
    """Give the PDF an outline (bookmarks): the title, each h2 at the top level, its h3 below.

    Each entry points at its heading's named destination (the book's title, which print
    media hides, at the first page); a viewer opens the PDF with the outline shown.
    Returns the number of entries.
    """
    import pikepdf

    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        destinations = pdf.Root.get("/Dests", pikepdf.Dictionary())
        chapter = None
        with pdf.open_outline() as outline:
            for heading in headings:
                name = pikepdf.Name(f"/{heading['id']}")
                if name in destinations:
                    item = pikepdf.OutlineItem(heading["title"], destination=name)
                elif heading["level"] == 1:
                    item = pikepdf.OutlineItem(heading["title"], destination=0)
                else:
                    raise SystemExit(f"no destination in the PDF for {heading['title']!r}")
                if heading["level"] == 3:
                    if chapter is None:
                        raise SystemExit(f"the section {heading['title']!r} precedes any chapter")
                    chapter.children.append(item)
                else:
                    outline.root.append(item)
                    chapter = item if heading["level"] == 2 else None
        pdf.Root.PageMode = pikepdf.Name.UseOutlines
        pdf.save(path)
    return len(headings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-build", action="store_true", help="print the existing _build/singlehtml"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    page = SINGLEHTML / "intro.html" if args.no_build else build_singlehtml()
    built = time.perf_counter()
    with serve(SINGLEHTML) as base:
        headings = print_pdf(f"{base}/{page.name}", PDF)
    printed = time.perf_counter()
    entries = add_outline(PDF, headings)
    done = time.perf_counter()
    print(
        f"{PDF}: {_page_count(PDF)} pages, {PDF.stat().st_size / 2**20:.1f} MiB, "
        f"{entries} outline entries; single page built in {built - start:.0f} s, "
        f"printed in {printed - built:.0f} s, outline in {done - printed:.0f} s, "
        f"{done - start:.0f} s in all"
    )


def _page_count(path: Path) -> int:
    import pikepdf

    with pikepdf.open(path) as pdf:
        return len(pdf.pages)


if __name__ == "__main__":
    main()
