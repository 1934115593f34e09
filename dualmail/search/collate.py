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

``fold``, ``tokens`` and ``MAX_TOKEN`` are defined in ``dualmail.model.terms`` (below the
store, which makes each Email's terms at ingest) and re-exported here.
"""

from __future__ import annotations

from ..model.terms import MAX_TOKEN, WORD, fold, tokens

__all__ = ["MAX_TOKEN", "fold", "query_runs", "sort_key", "tokens"]

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def sort_key(s: str | None) -> str:
    """The i;unicode-casemap sort key of a string (None and "" sort first, RFC 5256).

    The folded string with a-z mapped back to A-Z: RFC 5051 titlecases and RFC 4790
    i;ascii-casemap upper-cases, so letters sort *before* ``[``, ``_`` and the other
    punctuation between "Z" and "a" (as Dovecot sorts; imaptest sort-subject).
    """
    return fold(s).strip().translate(_ASCII_UPPER) if s else ""


def query_runs(folded: str) -> list[tuple[str, bool, bool]]:
    """Each word run of a folded query with (left_bounded, right_bounded).

    A run is bounded on a side when the query itself has a non-word character there:
    wherever the query occurs in a text, that run is then a whole term of the text on
    that side too.
    """
    out = []
    for m in WORD.finditer(folded):
        out.append((m.group(), m.start() > 0, m.end() < len(folded)))
    return out
