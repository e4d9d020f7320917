"""A link from every page to the same page in the book's other language.

The English site is ``_build/html``, the Korean one ``_build/html/ko`` (built from the
same sources and ``locales/ko``; ``scripts/translations.py``), with identical page
names. sphinx-book-theme has no language switcher and the maintained Sphinx packages
that offer one assume a Read the Docs-style ``/<lang>/<version>/`` layout, so this
extension adds one link to the article header (``templates/language-switcher.html``,
listed in ``html_theme_options.article_header_end``). The link is relative, so the
site works from any folder and offline; print styles hide it (``_static/book.css``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config

# language -> (its name in that language, the folder below the English root it lives in)
LANGUAGES: dict[str, tuple[str, str]] = {"en": ("English", ""), "ko": ("한국어", "ko/")}


def other_language_url(language: str, pagename: str) -> tuple[str, str, str]:
    """(language, its name, relative URL) of ``pagename`` in the other edition.

    The URL is relative to the page's own folder: ``chapters/07_mnist`` in English
    links to ``../ko/chapters/07_mnist.html``, and back with ``../../chapters/...``.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not one of the book's {sorted(LANGUAGES)}")
    other = "ko" if language == "en" else "en"
    up = "../" * pagename.count("/")
    here_root = up + ("../" if LANGUAGES[language][1] else "")  # the English root
    return other, LANGUAGES[other][0], f"{here_root}{LANGUAGES[other][1]}{pagename}.html"


def _add_context(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    language = app.config.language or "en"
    other, name, url = other_language_url(language, pagename)
    context["other_language"] = {"code": other, "name": name, "url": url}


def _add_templates(app: Sphinx, config: Config) -> None:
    config.templates_path = [*config.templates_path, str(Path(__file__).parent / "templates")]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _add_templates)
    app.connect("html-page-context", _add_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
