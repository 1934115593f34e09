"""Folding and index terms: the pure text functions the full-text index is made of.

They live here, below the store, so that the index terms of a message can be made
once at ingest (``store.txn.encode_summary``, in the importer's parsing processes too)
and stored as the Email's *term record* (``ftstok``); ``dualmail.search.collate``
re-exports them and documents the semantics (``fold``: case folding, NFKD, white-space
runs collapsed; ``tokens``: maximal runs of word characters and combining marks, each
cut to ``MAX_TOKEN`` characters).

Imports only the standard library.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

__all__ = ["MAX_TOKEN", "WORD", "email_terms", "fold", "pack_terms", "text_terms", "tokens", "unpack_terms"]

#: Index terms are cut to this many characters (the LMDB key limit is 511 bytes).
MAX_TOKEN = 64

_SPACE = re.compile(r"\s+")


def _marks(lo: int, hi: int) -> str:
    """A regex character class body of every combining mark (categories Mn, Mc, Me)
    in [lo, hi)."""
    out: list[str] = []
    start = prev = -2
    for cp in range(lo, hi):
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


# Marks live below U+20000 and in the variation selectors supplement (U+E0100..).
_BMP_MARKS = _marks(0, 0x10000)
#: A word: a maximal run of word characters and combining marks.
WORD = re.compile(r"[\w" + _BMP_MARKS + _marks(0x10000, 0x20000) + _marks(0xE0000, 0xE0200) + r"]+")
# The same for text without characters beyond the BMP: a class of BMP characters only
# compiles to a bitmap, ~3x faster than WORD's range list (same runs on such text).
_WORD_BMP = re.compile(r"[\w" + _BMP_MARKS + r"]+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_WORD_ASCII = re.compile(r"[0-9A-Za-z_]+")  # WORD on ASCII text


def fold(s: str) -> str:
    """Case-fold, NFKD-decompose and collapse white space (``dualmail.search.collate``)."""
    if s.isascii():
        return _SPACE.sub(" ", s.lower())
    return _SPACE.sub(" ", unicodedata.normalize("NFKD", s.casefold()))


def tokens(folded: str) -> set[str]:
    """The distinct index terms of already folded text, each cut to ``MAX_TOKEN``."""
    if folded.isascii():
        word = _WORD_ASCII
    else:
        word = WORD if _ASTRAL.search(folded) else _WORD_BMP
    return {m[:MAX_TOKEN] for m in word.findall(folded)}


def _fold_words(s: str) -> str:
    """``fold`` without collapsing white space, which no term contains: the same terms
    (``tokens(fold(s)) == tokens(_fold_words(s))``) at a third of the cost."""
    if s.isascii():
        return s.lower()
    s = s.casefold()
    return s if unicodedata.is_normalized("NFKD", s) else unicodedata.normalize("NFKD", s)


def text_terms(text: str) -> set[str]:
    """The index terms of one decoded text (a header field's value): ``tokens(fold(text))``."""
    return tokens(_fold_words(text))


def email_terms(header_text: str, body_text: str) -> set[str]:
    """The index terms of one Email: of its folded header text and body text."""
    return tokens(_fold_words(header_text)) | tokens(_fold_words(body_text))


def pack_terms(terms: set[str]) -> bytes:
    """The term record: zlib of the terms, one per line (terms hold no white space),
    sorted, so one message gives the same bytes in every process (a set's order follows
    the process's string hash seed)."""
    return zlib.compress("\n".join(sorted(terms)).encode("utf-8", "surrogatepass"), 1)


def unpack_terms(raw: bytes) -> str:
    """A term record as ``"\\n" + terms joined by "\\n" + "\\n"``, so that
    ``"\\nterm\\n" in`` it is a whole-term test and ``"\\nprefix" in`` it a prefix test."""
    return "\n" + zlib.decompress(raw).decode("utf-8", "surrogatepass") + "\n"
