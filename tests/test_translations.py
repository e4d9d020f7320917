"""The Korean catalogs (``locales/ko/LC_MESSAGES``) against their English sources.

Every English message of the book (extracted afresh by Sphinx's gettext builder) must
have its entry, and each entry must be translated and not fuzzy, must keep its English source's glue keys,
cross-reference and document targets, citation keys, inline math, inline code and link
targets (the same multiset of each), and must use none of the renderings that
``locales/ko/glossary.yml`` rejects.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polib
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext"))
CATALOGS = ROOT / "locales" / "ko" / "LC_MESSAGES"
GLOSSARY = ROOT / "locales" / "ko" / "glossary.yml"

# What must survive translation unchanged: roles with what they point at, math, code, URLs.
_ROLE = re.compile(r"\{(glue(?::\w+)?|cite(?::\w+)?|ref|doc|numref|eq|download)\}`([^`]*)`")
_MATH = re.compile(r"(?<![\\$])\$\$?[^$]+\$\$?")
_CODE = re.compile(r"(?<!\})``?[^`]+``?")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _role_target(role: str, body: str) -> str:
    """A role's invariant part: the target of `{ref}`Text <target>``, else the whole body."""
    if role in {"ref", "doc", "numref"}:
        match = re.search(r"<([^>]+)>\s*$", body)
        if match:
            return match.group(1)
    return body


def markup(text: str) -> Counter[str]:
    """The multiset of what a translation must keep from its source."""
    found: Counter[str] = Counter()
    for role, body in _ROLE.findall(text):
        found[f"{{{role}}}{_role_target(role, body)}"] += 1
    rest = _ROLE.sub(" ", text)
    # Code before math: a code span may hold a `$` (`$CNNBOOK_DATA`), never the reverse here.
    found.update(f"code {c}" for c in _CODE.findall(rest))
    rest = _CODE.sub(" ", rest)
    found.update(f"math {m}" for m in _MATH.findall(rest))
    rest = _MATH.sub(" ", rest)
    found.update(f"link {u}" for u in _LINK.findall(rest))
    return found


def _rejected() -> dict[str, str]:
    glossary = yaml.safe_load(GLOSSARY.read_text(encoding="utf-8"))
    return {bad: term for term, entry in glossary.items() for bad in entry.get("rejected", [])}


def problems(path: Path) -> list[str]:
    """Everything wrong with one catalog, one line each."""
    rejected = _rejected()
    found = []
    for entry in polib.pofile(str(path)):
        if entry.obsolete:
            continue
        head = entry.msgid[:50].replace("\n", " ")
        if not entry.msgstr.strip():
            found.append(f"untranslated: {head!r}")
            continue
        if "fuzzy" in entry.flags:
            found.append(f"fuzzy: {head!r}")
        source, target = markup(entry.msgid), markup(entry.msgstr)
        if source != target:
            missing, extra = source - target, target - source
            found.append(
                f"markup differs in {head!r}: missing {dict(missing)}, extra {dict(extra)}"
            )
        for bad, term in rejected.items():
            if bad in entry.msgstr:
                found.append(f"rejected rendering {bad!r} of {term!r} in {head!r}")
    return found


def test_markup_finds_what_must_survive() -> None:
    text = (
        "Both equal {glue:text}`n:.0f` at $n=3$ ({cite:t}`he2016`), see {ref}`the table <tab>` "
        "and `nn.Conv2d` in [the docs](https://pytorch.org)."
    )
    assert markup(text) == Counter(
        ["{glue:text}n:.0f", "math $n=3$", "{cite:t}he2016", "{ref}tab", "code `nn.Conv2d`",
         "link https://pytorch.org"]
    )  # fmt: skip
    translated = "{ref}`표 <tab>`와 `nn.Conv2d`, $n=3$에서 {glue:text}`n:.0f` ({cite:t}`he2016`), [문서](https://pytorch.org)."
    assert markup(translated) == markup(text)
    assert markup(translated.replace("n:.0f", "m:.0f")) != markup(text)
    assert markup(translated.replace("$n=3$", "$n=4$")) != markup(text)
    dollars = "Set `$CNNBOOK_DATA/x` or keep `$` for $n$ cells."
    assert markup(dollars) == Counter(["code `$CNNBOOK_DATA/x`", "code `$`", "math $n$"])


def _catalogs() -> list[Path]:
    return sorted(CATALOGS.rglob("*.po"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The English messages as Sphinx extracts them now (``.pot`` files, one per page)."""
    out = tmp_path_factory.mktemp("gettext")
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--builder", "custom",
         "--custom-builder", "gettext", "--path-output", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out / "_build" / "gettext"


def test_every_english_message_has_its_korean_entry(templates: Path) -> None:
    pots = sorted(templates.rglob("*.pot"))
    assert len(pots) >= 20, f"the gettext build extracted only {len(pots)} pages"
    missing = []
    for pot in pots:
        po = CATALOGS / pot.relative_to(templates).with_suffix(".po")
        assert po.is_file(), f"{po} does not exist: run `make translations` and translate it"
        have = {e.msgid for e in polib.pofile(str(po)) if not e.obsolete}
        missing += [
            f"{po.name}: {e.msgid[:60]!r}" for e in polib.pofile(str(pot)) if e.msgid not in have
        ]
    assert not missing, (
        f"{len(missing)} English messages have no Korean entry (run `make translations`, then "
        f"translate): {missing[:10]}"
    )


@pytest.mark.parametrize("catalog", _catalogs(), ids=lambda p: str(p.relative_to(CATALOGS)))
def test_catalog_is_translated_and_keeps_markup(catalog: Path) -> None:
    found = problems(catalog)
    assert not found, f"{len(found)} problems in {catalog.name}: {found[:10]}"


def test_glossary_entries_are_well_formed() -> None:
    glossary = yaml.safe_load(GLOSSARY.read_text(encoding="utf-8"))
    assert len(glossary) >= 30
    for term, entry in glossary.items():
        assert entry["ko"] and entry["ko"] not in entry.get("rejected", []), term


def test_problems_catches_untranslated_fuzzy_and_changed_glue(tmp_path: Path) -> None:
    po = polib.POFile()
    po.append(polib.POEntry(msgid="Accuracy {glue:text}`acc:.1f`%.", msgstr=""))
    po.append(polib.POEntry(msgid="A `kernel`.", msgstr="`kernel` 커널.", flags=["fuzzy"]))
    po.append(
        polib.POEntry(msgid="Loss {glue:text}`loss:.2f`.", msgstr="손실 {glue:text}`loss:.3f`.")
    )
    po.append(polib.POEntry(msgid="Stride $s$.", msgstr="보폭 $s$."))
    po.append(polib.POEntry(msgid="Fine $s$.", msgstr="좋다 $s$."))
    path = tmp_path / "x.po"
    po.save(str(path))
    found = problems(path)
    assert len(found) == 4, found
    assert found[0].startswith("untranslated") and found[1].startswith("fuzzy")
    assert "markup differs" in found[2] and "rejected rendering '보폭'" in found[3]


def test_glue_key_split_as_myst_nb_does() -> None:
    from glue_translation import split_key

    assert split_key("largest_difference:.1e") == ("largest_difference", ".1e")
    assert split_key("n_configurations") == ("n_configurations", "s")


def test_language_links_are_relative_and_mirror_each_other() -> None:
    from language_switcher import other_language_url

    assert other_language_url("en", "intro") == ("ko", "한국어", "ko/intro.html")
    assert other_language_url("ko", "intro") == ("en", "English", "../intro.html")
    assert other_language_url("en", "chapters/07_mnist")[2] == "../ko/chapters/07_mnist.html"
    assert other_language_url("ko", "chapters/07_mnist")[2] == "../../chapters/07_mnist.html"
    with pytest.raises(ValueError, match="not one of the book's"):
        other_language_url("fr", "intro")
