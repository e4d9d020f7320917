"""Glued numbers inside translated paragraphs (the Korean edition).

Sphinx translates a paragraph by parsing its ``msgstr`` as a document of its own
(``sphinx.transforms.i18n.publish_msgstr``). That document lacks the notebook's
glue data, so MyST-NB's ``{glue:text}`key``` role finds nothing there and renders
nothing, with the warning "No key ... found in glue data for this document".

This extension gives such a paragraph its source notebook's glue data: inside a
translated paragraph, a ``{glue:text}`` role that names no document becomes
MyST-NB's own cross-document reference to the notebook being read
(``create_pending_glue_ref``), which MyST-NB resolves after reading, from the glue
data it saved for that notebook. The key and format spec are kept, so the Korean
page shows each number exactly as the English page does; an unknown key still
fails the strict build with MyST-NB's warning.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from myst_nb.ext.glue.roles import PasteTextRole
from myst_nb.ext.glue.utils import PendingGlueReferenceError, create_pending_glue_ref, glue_warning
from sphinx.application import Sphinx

_original_run = PasteTextRole.run


def _in_translated_paragraph(document: nodes.document) -> bool:
    """Whether the role is being parsed from a catalog's msgstr, not from the notebook."""
    return "nb_renderer" not in document and str(document.get("source", "")).endswith(
        "<translated>"
    )


def split_key(text: str) -> tuple[str, str]:
    """``key:fmt`` -> (key, fmt); a bare ``key`` formats with ``s``, as in MyST-NB."""
    key, colon, fmt_spec = text.rpartition(":")
    return (key, fmt_spec) if colon else (text, "s")


def _run(self: PasteTextRole) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    if "::" in self.text or not _in_translated_paragraph(self.document):
        return _original_run(self)
    key, fmt_spec = split_key(self.text)
    env = self.document.settings.env
    source = "/" + str(env.doc2path(env.docname, False))
    try:
        ref = create_pending_glue_ref(
            self.document, self.source, self.line, source, key,
            inline=True, gtype="text", fmt_spec=fmt_spec,
        )  # fmt: skip
    except PendingGlueReferenceError as exc:
        return [], [glue_warning(str(exc), self.document, self.line)]
    return [ref], []


def setup(app: Sphinx) -> dict[str, Any]:
    PasteTextRole.run = _run  # type: ignore[method-assign]
    return {"parallel_read_safe": True, "parallel_write_safe": True}
