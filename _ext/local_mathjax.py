"""Put MathJax into the built site, so that formulas render without a CDN.

Sphinx loads MathJax from ``mathjax_path``. By default that is a CDN URL, and a
reader offline (or behind a firewall that blocks the CDN) sees every formula as
raw LaTeX. ``_config.yml`` sets ``mathjax_path: mathjax/tex-mml-chtml.js``, a
path relative to the site's ``_static/`` folder, and this extension copies
MathJax 3's ``es5`` distribution there from the npm copy in
``node_modules/mathjax`` (``package.json``; ``npm ci`` installs it, and
``make book`` runs it first).

Besides the entry script it copies the folders that MathJax loads on demand
(fonts, TeX extensions, the accessibility menu's components) and skips the other
combined bundles the site does not use. A missing npm copy stops the build with
a message that says how to install it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

ENTRY = "tex-mml-chtml.js"
SITE_FOLDER = "mathjax"  # under _static/, so mathjax_path is "mathjax/tex-mml-chtml.js"


def _source(app: Sphinx) -> Path:
    return Path(app.srcdir) / "node_modules" / "mathjax" / "es5"


def check_source(app: Sphinx) -> None:
    """Fail early, with a fix, when the npm copy of MathJax 3 is missing or not version 3."""
    if app.builder.format != "html":
        return
    source = _source(app)
    if not (source / ENTRY).is_file():
        raise ExtensionError(
            f"MathJax is missing: {source / ENTRY} does not exist. The site carries its own "
            "copy of MathJax 3 from npm: run `npm ci` (package.json lists mathjax@3) in "
            f"{app.srcdir}, or build with `make book`, which does it for you."
        )
    version = json.loads((source.parent / "package.json").read_text())["version"]
    if not version.startswith("3."):
        raise ExtensionError(
            f"node_modules/mathjax is version {version}; the site needs MathJax 3."
        )
    expected = f"{SITE_FOLDER}/{ENTRY}"
    if app.config.mathjax_path != expected:
        logger.warning(
            "mathjax_path is %r; set it to %r to use the copy of MathJax in the site",
            app.config.mathjax_path,
            expected,
        )


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the entry script and MathJax's on-demand components into ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    source = _source(app)
    target = Path(app.outdir) / "_static" / SITE_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / ENTRY, target / ENTRY)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        shutil.copytree(folder, target / folder.name, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", check_source)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
