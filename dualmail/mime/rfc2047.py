"""RFC 2047 encoded-word decoding for header text.

One job: turn ``=?charset?Q|B?text?=`` sequences in an (unfolded) header
value into Unicode, following RFC 2047 §5-6 and RFC 8621 §4.1.2.2:

- whitespace between two adjacent encoded-words is dropped (§6.2);
- adjacent words in one charset are joined before charset decoding, so a
  multi-octet character split across words survives;
- words with an unknown charset or malformed base64 are left as they are;
- control characters produced by decoding are dropped;
- with ``strict=True`` (unstructured fields, RFC 8621 "Text") a word must
  be delimited by whitespace or the ends of the value, else it is not
  decoded.  ``strict=False`` is used for phrases and parameters, where
  mailers commonly put words inside quoted strings.

The RFC 2231 ``charset*language`` suffix (RFC 2231 §5) is accepted.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import binascii
import re
import unicodedata

from .text import codec_for, valid_text

__all__ = ["decode_words", "nfc"]

_EW = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def nfc(text: str) -> str:
    """NFC-normalise (RFC 8621 §4.1.2.2 step 5); ASCII is returned as-is."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text)


def _decode_one(charset: str, kind: str, payload: str) -> tuple[str, bytes] | None:
    codec = codec_for(charset)
    if codec is None:
        return None
    try:
        data = payload.encode("ascii")
    except UnicodeEncodeError:
        return None
    if kind in "qQ":
        return codec, binascii.a2b_qp(data, header=True)
    pad = -len(data) % 4
    try:
        return codec, binascii.a2b_base64(data + b"=" * pad, strict_mode=True)
    except binascii.Error:
        return None


def _flush(codec: str, data: bytes, out: list[str]) -> None:
    try:
        text = data.decode(codec, "replace")
    except Exception:
        text = data.decode("utf-8", "replace")
    out.append(_CONTROLS.sub("", valid_text(text).replace("\t", " ")))


def decode_words(text: str, strict: bool = True) -> str:
    """Decode the RFC 2047 encoded-words in ``text``; never raises."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    run_codec: str | None = None
    run = b""
    n = len(text)
    for m in _EW.finditer(text):
        start, end = m.span()
        if strict:
            if start > 0 and not text[start - 1].isspace():
                continue
            if end < n and not text[end].isspace():
                continue
        decoded = _decode_one(m.group(1), m.group(2), m.group(3))
        if decoded is None:
            continue
        codec, data = decoded
        between = text[pos:start]
        if run_codec is not None and not between.strip():
            if codec == run_codec:
                run += data
            else:
                _flush(run_codec, run, out)
                run_codec, run = codec, data
        else:
            if run_codec is not None:
                _flush(run_codec, run, out)
            out.append(between)
            run_codec, run = codec, data
        pos = end
    if run_codec is not None:
        _flush(run_codec, run, out)
    out.append(text[pos:])
    return "".join(out)
