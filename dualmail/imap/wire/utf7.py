"""Modified UTF-7 mailbox-name codec (RFC 3501 §5.1.3).

One job: convert between mailbox names as Python ``str`` and their modified UTF-7
wire form, used when the client has not enabled UTF8=ACCEPT (RFC 6855).  Decoding
is strict and canonical: anything ``encode`` would not produce raises ValueError.
Imports nothing outside the standard library.
"""

from __future__ import annotations

import base64
import binascii

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _direct(ch: str) -> bool:
    """Printable US-ASCII other than "&" represents itself."""
    return 0x20 <= ord(ch) <= 0x7E and ch != "&"


def _b64(chunk: str) -> str:
    raw = chunk.encode("utf-16-be", "surrogatepass")
    return base64.b64encode(raw).rstrip(b"=").replace(b"/", b",").decode("ascii")


def encode(name: str) -> str:
    """Encode a mailbox name to modified UTF-7 (ASCII only output)."""
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if _direct(ch):
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending.clear()
            out.append(ch)
        elif ch == "&":
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending.clear()
            out.append("&-")
        else:
            if 0xD800 <= ord(ch) <= 0xDFFF:
                raise ValueError("lone surrogate in mailbox name")
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


def decode(name: str | bytes) -> str:
    """Decode modified UTF-7; raise ValueError unless the input is canonical."""
    if isinstance(name, str):
        try:
            data = name.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("modified UTF-7 must be 7-bit") from None
    else:
        data = bytes(name)
    out: list[str] = []
    i, n = 0, len(data)
    last_shift_end = -1
    while i < n:
        c = data[i]
        if c != 0x26:  # "&"
            if not 0x20 <= c <= 0x7E:
                raise ValueError(f"byte {c:#04x} must be base64-encoded")
            out.append(chr(c))
            i += 1
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise ValueError("unterminated base64 shift")
        body = data[i + 1 : end]
        if not body:
            out.append("&")
            i = end + 1
            continue
        if last_shift_end == i:
            raise ValueError("adjacent base64 shifts must be merged")
        if not set(body) <= _B64_ALPHABET:
            raise ValueError("bad character in base64 shift")
        if len(body) % 4 == 1:
            raise ValueError("truncated base64 shift")
        padded = body.replace(b",", b"/") + b"=" * (-len(body) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64 shift: {exc}") from None
        if len(raw) % 2 or not raw:
            raise ValueError("base64 shift is not UTF-16")
        if base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") != body:
            raise ValueError("non-zero padding bits in base64 shift")
        try:
            text = raw.decode("utf-16-be")
        except UnicodeDecodeError:
            raise ValueError("bad UTF-16 in base64 shift") from None
        if any(_direct(ch) or ch == "&" for ch in text):
            raise ValueError("printable ASCII must not be base64-encoded")
        out.append(text)
        i = end + 1
        last_shift_end = i
    return "".join(out)
