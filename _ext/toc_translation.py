"""Translated part captions of the table of contents (the Korean edition's sidebar).

sphinx-external-toc builds the root page's toctrees from ``_toc.yml`` after Sphinx's
translation transform has run, so their captions ("Getting started", ...) stay English
on the Korean site, although the gettext builder extracts them into ``intro.po``. This
extension translates each toctree caption from the root page's catalog when the
document is read.
"""

from __future__ import annotations

import gettext
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx


def _translate_captions(app: Sphinx, doctree: nodes.document) -> None:
    language = app.config.language
    if not language or language == "en":
        return
    domain = app.env.docname  # gettext_compact = False: one catalog per page
    localedirs = [str(Path(app.srcdir, d)) for d in app.config.locale_dirs]
    for localedir in localedirs:
        try:
            catalog = gettext.translation(domain, localedir=localedir, languages=[language])
        except OSError:
            continue
        for toctree in doctree.findall(addnodes.toctree):
            caption = toctree.get("caption")
            if caption:
                toctree["caption"] = catalog.gettext(caption)
        return


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", _translate_captions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
