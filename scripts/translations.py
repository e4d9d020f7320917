"""The Korean edition: update its catalogs, and build it into ``_build/html/ko``.

    python scripts/translations.py update   # re-extract the English, update locales/ko
    python scripts/translations.py build    # the Korean site, after the English one

``update`` runs Sphinx's gettext builder over the book (``_build/gettext``) and
``sphinx-intl update``: new English paragraphs arrive untranslated, edited ones as
``fuzzy`` with the old Korean kept for reference, and until they are translated the
Korean page shows the English (``tests/test_translations.py`` fails on both).

``build`` writes the Korean configuration (``_build/ko/_config.yml``: ``_config.yml``
with ``language: ko``, the Korean title and search text; the jupyter-book command
line has no ``-D language``, jupyter-book issue #1791), builds with it as strictly as
the English (``-W -n --keep-going``) and copies the site to ``_build/html/ko``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("CNNBOOK_BUILD_PATH", ROOT)) / "_build"
LANGUAGE = "ko"
TITLE = "PyTorch로 배우는 합성곱 신경망"
SEARCH_TEXT = "이 책에서 검색…"
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")


def korean_config(config: dict) -> dict:
    """``_config.yml`` for the Korean build: the same book, in Korean, extensions found by path."""
    config = yaml.safe_load(yaml.safe_dump(config))  # a deep copy
    config["title"] = TITLE
    sphinx = config.setdefault("sphinx", {})
    sphinx["local_extensions"] = {
        name: str((ROOT / path).resolve())
        for name, path in sphinx.get("local_extensions", {}).items()
    }
    settings = sphinx.setdefault("config", {})
    settings["language"] = LANGUAGE
    settings.setdefault("html_theme_options", {})["search_bar_text"] = SEARCH_TEXT
    return config


def update() -> None:
    """Extract the English messages and merge them into ``locales/ko``."""
    out = BUILD / "gettext"
    subprocess.run(
        [JUPYTER_BOOK, "build", str(ROOT), "--builder", "custom", "--custom-builder", "gettext",
         "--path-output", str(out)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [str(Path(sys.executable).parent / "sphinx-intl"), "update", "-p", str(out / "_build" / "gettext"),
         "-l", LANGUAGE, "-d", str(ROOT / "locales"), "-w", "0"],
        check=True,
    )  # fmt: skip


def build() -> Path:
    """Build the Korean site and copy it to ``_build/html/ko``; return that folder."""
    out = BUILD / LANGUAGE
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "_config.yml"
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config_path.write_text(
        yaml.safe_dump(korean_config(config), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    subprocess.run(
        [JUPYTER_BOOK, "build", str(ROOT), "--config", str(config_path), "-W", "-n", "--keep-going",
         "--path-output", str(out)],
        check=True,
    )  # fmt: skip
    site = BUILD / "html" / LANGUAGE
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(out / "_build" / "html", site)
    return site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["update", "build"])
    args = parser.parse_args()
    update() if args.command == "update" else print(build())


if __name__ == "__main__":
    main()
