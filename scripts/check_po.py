"""Check Korean catalogs: every entry translated, none fuzzy, markup as in the English.

    python scripts/check_po.py [FILE.po ...]    (default: every catalog in locales/ko)

The checks themselves live in ``tests/test_translations.py`` (``problems``); this is the
command translators run on the files they edit.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_translations import CATALOGS, problems  # noqa: E402


def main(paths: list[str]) -> int:
    files = [Path(p) for p in paths] or sorted(CATALOGS.rglob("*.po"))
    found = 0
    for path in files:
        for problem in problems(path):
            print(f"{path}: {problem}")
            found += 1
    print(f"{len(files)} catalogs, {found} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
