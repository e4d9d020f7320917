"""Author-year citations as a book prints them: "(LeCun et al., 1998)" and "LeCun et al. (1998)".

sphinxcontrib-bibtex's ``author_year`` style puts citations in square brackets,
and its ``plain`` bibliography numbers the entries, so a reader who follows
"[LeCun et al., 1998]" lands on "[23]". This extension registers two styles,
selected in ``_config.yml``:

- ``author_year_round`` (``bibtex_reference_style``): the same citations with
  round brackets;
- ``book_author_year`` (``bibtex_default_style``): pybtex's ``plain`` entries, sorted by
  author, labelled with the text a citation shows ("LeCun et al., 1998"; "n.d."
  when an entry has no year).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import pybtex.plugin
import sphinxcontrib.bibtex.plugin
from pybtex.database import Entry
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclasses.dataclass
class RoundAuthorYearReferenceStyle(AuthorYearReferenceStyle):
    """``author_year`` with round brackets: {cite:p} gives "(Saito, 2016)"."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


def author_year_label(entry: Entry) -> str:
    """ "Saito, 2016", "Dumoulin and Visin, 2016", "LeCun et al., 1998" for one entry."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [str(Text.from_latex(" ".join(p.prelast_names + p.last_names))) for p in persons]
    if not names:
        authors = str(Text.from_latex(entry.fields.get("title", "Anonymous")))
    elif len(names) == 1:
        authors = names[0]
    elif len(names) == 2:
        authors = f"{names[0]} and {names[1]}"
    else:
        authors = f"{names[0]} et al."
    return f"{authors}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Label each bibliography entry with its author-year citation text."""

    def format_labels(self, sorted_entries: Iterable[Entry]) -> Iterator[str]:
        # Two works of the same authors and year get "2016a", "2016b" (in bibliography order), as
        # author-year styles do: equal labels would be one anchor for two entries, which Sphinx
        # warns about.
        entries = list(sorted_entries)
        labels = [author_year_label(entry) for entry in entries]
        seen: dict[str, int] = {}
        for label in labels:
            if labels.count(label) > 1:
                seen[label] = seen.get(label, 0) + 1
                yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[seen[label] - 1]}"
            else:
                yield label


class BookStyle(PlainStyle):
    """pybtex's ``plain`` style, labelled by author and year instead of by number."""

    default_label_style = "book_author_year"


def setup(app: Sphinx) -> dict[str, Any]:
    sphinxcontrib.bibtex.plugin.register_plugin(
        "sphinxcontrib.bibtex.style.referencing",
        "author_year_round",
        RoundAuthorYearReferenceStyle,
        force=True,
    )
    pybtex.plugin.register_plugin(
        "pybtex.style.labels", "book_author_year", AuthorYearLabelStyle, force=True
    )
    pybtex.plugin.register_plugin(
        "pybtex.style.formatting", "book_author_year", BookStyle, force=True
    )
    return {"parallel_read_safe": True, "parallel_write_safe": True}
