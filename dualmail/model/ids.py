"""Object ids shared by JMAP and IMAP OBJECTID (CONTRACT §1, RFC 8474, RFC 8620 §1.2).

Internally every object is numbered by a per-account counter; on the wire an id is a
one-letter kind prefix followed by the number in lowercase base 32 (digits and a-v), so
ids use only ``[A-Za-z0-9]``, never start with a digit or dash, and are never reused.

Imports nothing outside the standard library.
"""

from __future__ import annotations

_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_VALUES = {c: i for i, c in enumerate(_DIGITS)}

MAILBOX = "M"
EMAIL = "E"
THREAD = "T"
ACCOUNT = "A"
IDENTITY = "I"
SUBMISSION = "S"
QUOTA = "Q"


_PAIRS = [a + b for a in _DIGITS for b in _DIGITS]  # 10 bits at a time


def _b32(n: int) -> str:
    if n < 32:
        return _DIGITS[n]
    if n < 1024:
        return _PAIRS[n] if n >= 32 else _DIGITS[n]
    out = []
    while n >= 1024:
        n, r = divmod(n, 1024)
        out.append(_PAIRS[r])
    out.append(_PAIRS[n] if n >= 32 else _DIGITS[n])
    return "".join(reversed(out))


def format_id(kind: str, n: int) -> str:
    """The wire id of object number ``n`` of ``kind`` (one of the constants above)."""
    if n < 0:
        raise ValueError("negative id number")
    return kind + _b32(n)


def parse_id(kind: str, text: object) -> int | None:
    """The number inside a wire id of ``kind``, or None if ``text`` is not such an id."""
    if not isinstance(text, str) or len(text) < 2 or len(text) > 14 or text[0] != kind:
        return None
    n = 0
    for c in text[1:]:
        v = _VALUES.get(c)
        if v is None:
            return None
        n = n * 32 + v
    if len(text) > 2 and text[1] == "0":  # reject leading zeros: one number, one spelling
        return None
    return n


def blob_id(sha256_hex: str) -> str:
    """The JMAP blobId of stored content with this SHA-256 (hex)."""
    return "G" + sha256_hex


def parse_blob_id(text: object) -> str | None:
    if not isinstance(text, str) or len(text) != 65 or text[0] != "G":
        return None
    h = text[1:]
    if any(c not in "0123456789abcdef" for c in h):
        return None
    return h


def part_blob_id(container: str, part_id: str) -> str:
    """The blobId of body part ``part_id`` ("2.1") of the message whose blobId is
    ``container``: ``container + "_" + part_id`` with dots as dashes, e.g.
    ``G<sha>_2-1``.  A part of an attached message, parsed with Email/parse, nests:
    ``G<sha>_2_1``.  Only ``[A-Za-z0-9_-]`` (RFC 8620 §1.2)."""
    return container + "_" + part_id.replace(".", "-")


def parse_part_blob_id(text: object) -> tuple[str, list[str]] | None:
    """``(sha256 hex, [partId, ...])`` of a blobId (``[]`` for a whole stored blob),
    or None if ``text`` is not one of ours."""
    if not isinstance(text, str) or len(text) > 255:
        return None
    head, _sep, rest = text.partition("_")
    sha = parse_blob_id(head)
    if sha is None:
        return None
    if not _sep:
        return sha, []
    path = []
    for segment in rest.split("_"):
        numbers = segment.split("-")
        if not all(n.isascii() and n.isdigit() and n == str(int(n)) and n != "0" for n in numbers):
            return None
        path.append(".".join(numbers))
    return sha, path
