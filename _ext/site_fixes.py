"""Sphinx fixes for the book's site, loaded through ``sphinx.local_extensions`` in _config.yml.

sphinx-thebe 0.3.1 registers its inline configuration script once per
``env-before-read-docs`` event, and Jupyter Book fires that event twice, so every
page declared ``const THEBE_JS_URL`` twice and the browser logged a SyntaxError.
This extension drops repeated scripts from each page, keeping the first copy.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _script_key(script: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    attributes = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script) or ""), tuple(
        sorted((k, str(v)) for k, v in attributes.items())
    )


def drop_repeated_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """Keep only the first of identical ``<script>`` entries on a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
