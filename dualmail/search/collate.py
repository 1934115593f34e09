"""The one text normalisation of search and sort: folding, tokens, the sort collation.

``fold(s)`` is what "case-insensitive" means everywhere in ``dualmail.search``: the
query string and the stored text are both folded and then compared as plain
substrings (IMAP SEARCH, RFC 9051 §6.4.4) or ordered by code point (SORT, RFC 5256).

It follows i;unicode-casemap (RFC 5051 §2) with two documented differences:

* step 2(a) maps each character to its *title case*; we use Unicode full case folding
  (``str.casefold``) instead.  Both make case variants equal (``ß``/``SS``/``ss``,
  Greek final sigma, ...); folded strings are lower case, which changes no equality
  and no substring test.  For ordering, ``sort_key`` maps ASCII a-z back to A-Z so
  that letters sort before ``[``, ``\\``, ``]``, ``^``, ``_`` and backquote, as with
  title case (non-ASCII letters stay folded).
* step 2(b) decomposes (NFKD); we do the same, so ``ﬁ`` matches ``fi`` and a
  precomposed ``é`` equals ``e`` + U+0301 (a search for ``e`` therefore also finds
  ``é``, as RFC 5051 implies).
* and, as a search convenience, every run of white space becomes one space, so a
  phrase matches across a line break of the decoded body.

``tokens(folded)`` splits folded text into index terms: maximal runs of word
characters (``\\w``, plus combining marks so that decomposed accents do not split a
word).  ``query_runs(folded)`` says, for each run of a folded query, whether the query
bounds it on the left and on the right -- which is what the full-text index needs to
turn a substring query into term lookups (see ``fts``).

Imports only the standard library.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_TOKEN", "fold", "query_runs", "sort_key", "tokens"]

#: Index terms are cut to this many characters (the LMDB key limit is 511 bytes).
MAX_TOKEN = 64

_SPACE = re.compile(r"\s+")


def _marks() -> str:
    """A regex character class body of every combining mark (categories Mn, Mc, Me)."""
    out: list[str] = []
    start = prev = -2
    # Marks live below U+20000 and in the variation selectors supplement (U+E0100..).
    for cp in [*range(0x20000), *range(0xE0000, 0xE0200)]:
        if unicodedata.category(chr(cp))[0] == "M" and not chr(cp).isalnum():
            if cp != prev + 1:
                if start >= 0:
                    out.append(_span(start, prev))
                start = cp
            prev = cp
    if start >= 0:
        out.append(_span(start, prev))
    return "".join(out)


def _span(a: int, b: int) -> str:
    return re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"


_WORD = re.compile(r"[\w" + _marks() + r"]+")


def fold(s: str) -> str:
    """Case-fold, NFKD-decompose and collapse white space (see the module docstring)."""
    if s.isascii():
        return _SPACE.sub(" ", s.lower())
    return _SPACE.sub(" ", unicodedata.normalize("NFKD", s.casefold()))


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def sort_key(s: str | None) -> str:
    """The i;unicode-casemap sort key of a string (None and "" sort first, RFC 5256).

    The folded string with a-z mapped back to A-Z: RFC 5051 titlecases and RFC 4790
    i;ascii-casemap upper-cases, so letters sort *before* ``[``, ``_`` and the other
    punctuation between "Z" and "a" (as Dovecot sorts; imaptest sort-subject).
    """
    return fold(s).strip().translate(_ASCII_UPPER) if s else ""


def tokens(folded: str) -> set[str]:
    """The distinct index terms of already folded text, each cut to ``MAX_TOKEN``."""
    return {m[:MAX_TOKEN] for m in _WORD.findall(folded)}


def query_runs(folded: str) -> list[tuple[str, bool, bool]]:
    """Each word run of a folded query with (left_bounded, right_bounded).

    A run is bounded on a side when the query itself has a non-word character there:
    wherever the query occurs in a text, that run is then a whole term of the text on
    that side too.
    """
    out = []
    for m in _WORD.finditer(folded):
        out.append((m.group(), m.start() > 0, m.end() < len(folded)))
    return out
