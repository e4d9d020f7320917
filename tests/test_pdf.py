"""The book as a PDF (``make pdf``, ``scripts/build_pdf.py``), built and read back.

The test builds the single-page site and prints it with Chromium, as ``make pdf``
does, then reads the PDF with poppler-utils (``pdftotext``, ``pdfimages``,
``pdftoppm``) and pikepdf, and checks it against the single page it was printed
from:

- A4 pages, numbered "N / total" in the footer;
- every chapter title, numbered as on the site, in the text, and one top-level
  outline entry (bookmark) per chapter, front and back matter, each with the
  chapter's sections below it;
- every figure caption in the text, and the bibliography (every entry's label);
- every image of the page embedded at its own size: each figure, and each
  animation as the strip of key frames that ``_static/animation_print.js`` prints;
- no MathJax source (``\\frac``, ``$$``, ``\\(``) in the text: every formula was typeset
  before printing, and nothing of the player controls or the search box.

It renders the first page, the first page with an animation and one of chapter 11's
pages to PNG in ``_build/pdf/pages`` to look at. That code and outputs are not cut
at the right margin in print is checked on every page of the site at the A4 width
(``tests/test_site.py``, ``test_layout_fits``), with the same print styles.

Chromium comes from Debian (``apt-get install chromium``), the PDF tools from
``poppler-utils``. Without them the test is skipped on a laptop, but fails in CI.
"""

from __future__ import annotations

import collections
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)) / "_build"
SINGLE_PAGE = BUILD / "singlehtml" / "intro.html"
PDF = BUILD / "pdf" / "cnnbook.pdf"
PAGES = BUILD / "pdf" / "pages"
A4_POINTS = (595.3, 841.9)
POPPLER = ("pdftotext", "pdfimages", "pdftoppm")


def _require(tools: tuple[str, ...]) -> None:
    missing = [tool for tool in tools if not shutil.which(tool)]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed: run `apt-get install -y chromium poppler-utils`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _text(fragment: str) -> str:
    """The text of an HTML fragment, without the headerlink '#', in single spaces."""
    fragment = re.sub(r'<a class="headerlink".*?</a>', "", fragment, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _squeeze(text: str) -> str:
    """Text compared without spaces: PDF text breaks lines where the HTML has none."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def book() -> dict:
    if not (os.environ.get("CNNBOOK_CHROMIUM") or shutil.which("chromium")):
        _require(("chromium",))
    _require(POPPLER)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_pdf.py")], check=True, cwd=ROOT)
    pages = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(PDF), "-"], check=True, capture_output=True, text=True
    ).stdout.split("\f")[:-1]
    return {"html": SINGLE_PAGE.read_text(encoding="utf-8"), "pages": pages}


def _chapters() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


def _h2_titles(page: str) -> list[str]:
    return [_text(h) for h in re.findall(r"<h2>(.*?)</h2>", page, flags=re.S)]


def test_a4_and_page_numbers(book: dict) -> None:
    import pikepdf

    pages = book["pages"]
    with pikepdf.open(PDF) as pdf:
        assert len(pdf.pages) == len(pages) > 100
        for page in pdf.pages:
            width, height = (float(v) for v in page.mediabox[2:])
            assert abs(width - A4_POINTS[0]) < 2 and abs(height - A4_POINTS[1]) < 2, (
                f"a page is {width} x {height} pt, not A4"
            )
    for number in (1, 2, len(pages) // 2, len(pages)):
        assert f"{number} / {len(pages)}" in pages[number - 1], f"page {number} is not numbered"


def test_chapter_titles_and_outline(book: dict) -> None:
    import pikepdf

    titles = _h2_titles(book["html"])
    files = _chapters()
    assert len(titles) == len(files), f"{len(files)} pages in _toc.yml, {len(titles)} on the page"
    for file, title in zip(files, titles, strict=True):
        number = re.fullmatch(r"chapters/(\d+)_\w+", file)
        if number:
            assert title.startswith(f"{int(number.group(1))}. "), f"{title!r} is not numbered"
    text = _squeeze("".join(book["pages"]))
    missing = [title for title in titles if _squeeze(title) not in text]
    assert not missing, f"chapter titles not in the PDF: {missing}"

    with pikepdf.open(PDF) as pdf, pdf.open_outline() as outline:
        top = outline.root
        assert top[0].title == "Convolutional Neural Networks in PyTorch"
        entries = {item.title: item for item in top[1:]}
        assert list(entries) == titles, "the outline's top level is not the list of chapters"
        for title in titles[1:-1]:  # every numbered chapter lists its sections
            assert entries[title].children, f"the outline lists no sections of {title!r}"
        # Each entry opens the page that shows its title.
        page_of = {page.objgen: index for index, page in enumerate(pdf.pages)}
        for title, item in entries.items():
            destination = pdf.Root.Dests[item.destination]
            page = page_of[destination[0].objgen]
            assert _squeeze(title) in _squeeze(book["pages"][page]), (
                f"the outline entry {title!r} opens page {page + 1}, which does not show it"
            )


def test_figure_captions_and_bibliography(book: dict) -> None:
    text = _squeeze("".join(book["pages"]))
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", book["html"], flags=re.S)
    assert len(captions) >= 50
    missing = []
    for caption in captions:
        # Inline math prints as typeset glyphs: compare the words around it.
        for words in re.split(r'<span class="math[^"]*">.*?</span>', caption, flags=re.S):
            if _text(words) and _squeeze(_text(words)) not in text:
                missing.append(_text(words))
    assert not missing, f"{len(missing)} figure captions not in the PDF: {missing}"
    labels = re.findall(
        r'<div class="citation" id="[^"]+" role="doc-biblioentry">\s*<span class="label">(.*?)</span></span>',
        book["html"],
    )
    assert len(labels) >= 10
    references = _squeeze("".join(book["pages"][-12:]))
    absent = [_text(label) for label in labels if _squeeze(_text(label)) not in references]
    assert not absent, f"bibliography entries not at the end of the PDF: {absent}"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _key_frames(count: int) -> int:
    """How many frames the printed strip of an animation holds (_static/animation_print.js)."""
    return len({step for step in (0, 1, (count - 1) // 2, count - 1) if 0 <= step < count})


def test_every_image_embedded(book: dict) -> None:
    import base64

    page = book["html"]
    expected: collections.Counter[tuple[int, int]] = collections.Counter()
    for source in re.findall(r'<img[^>]*src="(_images/[^"]+\.png)"', page):
        expected[_png_size((SINGLE_PAGE.parent / source).read_bytes())] += 1
    players = re.findall(r"var frames = (\[[^\]]*\]);", page)
    assert players, "no animation on the page"
    for frames in players:
        first = re.search(r"base64,([A-Za-z0-9+/=]+)", frames)
        assert first is not None
        size = _png_size(base64.b64decode(first.group(1)))
        expected[size] += _key_frames(frames.count("data:image/png"))
    listing = subprocess.run(
        ["pdfimages", "-list", str(PDF)], check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    embedded = collections.Counter(
        (int(row.split()[3]), int(row.split()[4])) for row in listing if row.split()[2] == "image"
    )
    short = {size: (n, embedded[size]) for size, n in expected.items() if embedded[size] < n}
    assert not short, f"images missing from the PDF, {{(width, height): (site, PDF)}}: {short}"
    assert embedded.total() == expected.total(), (
        f"{embedded.total()} images in the PDF, {expected.total()} on the page"
    )


def test_no_math_source_or_controls(book: dict) -> None:
    text = "".join(book["pages"])
    for source in ("\\frac", "$$", "\\(", "\\)", "\\begin{"):
        assert source not in text, f"MathJax source {source!r} printed as text"
    for control in ("Ctrl+K", "Pause", "Previous step", "Toggle navigation"):
        assert control not in text, f"{control!r} (a control of the site) printed"


def test_pages_render(book: dict) -> None:
    from PIL import Image

    pages = book["pages"]
    animated = next(i for i, page in enumerate(pages) if "Step 1 of" in page)
    cifar = next(i for i, page in enumerate(pages) if "11. CIFAR-10" in page)
    PAGES.mkdir(parents=True, exist_ok=True)
    for index in (0, animated, cifar + 2):
        number = index + 1
        prefix = PAGES / f"page-{number:03d}"
        subprocess.run(
            ["pdftoppm", "-png", "-r", "60", "-singlefile", "-f", str(number), "-l", str(number),
             str(PDF), str(prefix)],
            check=True,
        )  # fmt: skip
        with Image.open(prefix.with_suffix(".png")) as image:
            grey = image.convert("L")
            width, height = grey.size  # A4 at 60 dpi: 496 x 702 px, give or take rounding
            assert abs(width - 496) <= 1 and abs(height - 702) <= 1, f"page {number}: {grey.size}"
            inked = sum(grey.histogram()[:200])
            assert inked > 0.01 * grey.size[0] * grey.size[1], f"page {number} is blank"
