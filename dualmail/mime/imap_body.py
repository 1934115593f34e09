"""IMAP FETCH data from a stored summary, in wire syntax (sans I/O).

One job: render ENVELOPE, BODY / BODYSTRUCTURE (RFC 9051 §7.5.2, RFC 3501
§7.4.2) and cut BODY[section] (RFC 9051 §6.4.5.1) and BINARY[section]
(RFC 3516) out of the raw bytes using the offsets of ``structure.py``.
Nothing here parses MIME again; HEADER.FIELDS only re-splits one header
block.

Wire choices:

- strings are quoted; a string with CR, LF or 8-bit octets is sent as a
  literal ``{n}\\r\\n...``; NUL octets are dropped; None is ``NIL``;
- type, subtype, encoding, parameter names and disposition type are
  upper-cased (as in the RFC 9051 examples); values keep their case;
- text/* parts without a charset parameter get ``"CHARSET" "us-ascii"``
  (RFC 2045 §5.2 default) after their other parameters, as Dovecot does;
- a parameter value that is not ASCII after RFC 2231 decoding is sent
  re-encoded as ``NAME*`` ``utf-8''%XX..`` (RFC 2231 §4), so 7-bit
  IMAP4rev1 clients can still read it;
- a message/rfc822 (or message/global) part whose embedded message could
  not be parsed in place (transfer-encoded, or beyond the depth cap) is
  described as APPLICATION/OCTET-STREAM, since the grammar would otherwise
  require an envelope;
- a section that names a part that does not exist yields ``b""``; a
  malformed section raises ``SectionError`` (the caller answers BAD).

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from typing import Any, Union
from urllib.parse import quote

from .headers import split_header_block
from .text import IDENTITY_ENCODINGS, UnknownCTEError, decode_cte

__all__ = [
    "SectionError",
    "UnknownCTEError",
    "binary_section",
    "binary_size",
    "nul_parts_to_base64",
    "bodystructure_bytes",
    "envelope_bytes",
    "parse_section",
    "section_bytes",
]

Node = dict[str, Any]
Section = Union[str, Sequence[Any]]

_SPECS = ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")
_RFC2231_SAFE = "!#$&+-.^_`|~"


class SectionError(ValueError):
    """A syntactically invalid FETCH section specification (IMAP BAD)."""


# -- strings ---------------------------------------------------------------------


def _string(s: str) -> bytes:
    data = s.encode("utf-8", "replace")
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    if b"\r" in data or b"\n" in data or not data.isascii():
        return b"{%d}\r\n" % len(data) + data
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _nstring(s: str | None) -> bytes:
    return b"NIL" if s is None else _string(s)


def _params(params: list[list[str]], text_default: bool) -> bytes:
    items: list[str] = []
    has_charset = False
    for key, value in params:
        if key == "charset":
            has_charset = True
        if value.isascii():
            items += [key.upper(), value]
        else:
            items += [key.upper() + "*", "utf-8''" + quote(value.encode("utf-8"), safe=_RFC2231_SAFE)]
    if text_default and not has_charset:
        items += ["CHARSET", "us-ascii"]  # after the others, as Dovecot does
    if not items:
        return b"NIL"
    return b"(" + b" ".join(_string(x) for x in items) + b")"


def _disposition(disp: list[Any] | None) -> bytes:
    if not disp:
        return b"NIL"
    return b"(" + _string(disp[0].upper()) + b" " + _params(disp[1], False) + b")"


def _language(lang: list[str] | None) -> bytes:
    if not lang:
        return b"NIL"
    return b"(" + b" ".join(_string(t) for t in lang) + b")"


def _addresses(addrs: list[list[str | None]] | None) -> bytes:
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(b"(" + b" ".join(_nstring(x) for x in a) + b")" for a in addrs) + b")"


# -- ENVELOPE, BODY, BODYSTRUCTURE ---------------------------------------------------


def envelope_bytes(env: dict[str, Any]) -> bytes:
    """The ENVELOPE parenthesized list (RFC 9051 §7.5.2) for ``summary["envelope"]``."""
    return (
        b"("
        + b" ".join(
            [
                _nstring(env.get("date")),
                _nstring(env.get("subject")),
                _addresses(env.get("from")),
                _addresses(env.get("sender")),
                _addresses(env.get("reply_to")),
                _addresses(env.get("to")),
                _addresses(env.get("cc")),
                _addresses(env.get("bcc")),
                _nstring(env.get("in_reply_to")),
                _nstring(env.get("message_id")),
            ]
        )
        + b")"
    )


def _body(node: Node, ext: bool) -> bytes:
    if node["type"] == "multipart" and node.get("parts"):
        out = b"(" + b"".join(_body(c, ext) for c in node["parts"]) + b" " + _string(node["subtype"].upper())
        if ext:
            out += b" " + b" ".join(
                [
                    _params(node["params"], False),
                    _disposition(node["disposition"]),
                    _language(node["language"]),
                    _nstring(node["location"]),
                ]
            )
        return out + b")"
    ctype, subtype = node["type"], node["subtype"]
    msg = node.get("message")
    is_message = ctype == "message" and subtype in ("rfc822", "global")
    if is_message and not msg:
        ctype, subtype = "application", "octet-stream"
    fields = [
        _string(ctype.upper()),
        _string(subtype.upper()),
        _params(node["params"], ctype == "text"),
        _nstring(node["id"]),
        _nstring(node["description"]),
        _string(node["encoding"].upper()),
        b"%d" % max(0, node["body_end"] - node["body_start"]),
    ]
    if is_message and msg:
        fields += [envelope_bytes(msg["envelope"]), _body(msg["structure"], ext), b"%d" % (node["lines"] or 0)]
    elif ctype == "text":
        fields.append(b"%d" % (node["lines"] or 0))
    if ext:
        fields += [
            _nstring(node.get("md5")),
            _disposition(node["disposition"]),
            _language(node["language"]),
            _nstring(node["location"]),
        ]
    return b"(" + b" ".join(fields) + b")"


def bodystructure_bytes(structure: Node, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (``extensible=True``) or BODY (no extension data)."""
    return _body(structure, extensible)


# -- sections ------------------------------------------------------------------------------


def parse_section(section: Section) -> tuple[list[int], str, list[str]]:
    """Section text (``"1.2.HEADER.FIELDS (From To)"``) or list
    (``[1, 2, "HEADER.FIELDS", ["From", "To"]]``) -> (path, spec, field names)."""
    names: list[str] = []
    if isinstance(section, str):
        text = section.strip()
        if "(" in text:
            text, _sep, rest = text.partition("(")
            if not rest.rstrip().endswith(")"):
                raise SectionError("unterminated header list")
            names = [n.strip('"') for n in rest.rstrip()[:-1].split()]
            text = text.rstrip()
        tokens: list[Any] = text.split(".") if text else []
        path: list[int] = []
        while tokens and str(tokens[0]).isdigit():
            path.append(int(tokens.pop(0)))
        spec = ".".join(tokens).upper()
    else:
        path = []
        items = list(section)
        while items and (isinstance(items[0], int) or (isinstance(items[0], str) and items[0].isdigit())):
            path.append(int(items.pop(0)))
        spec = ""
        if items and isinstance(items[0], str):
            spec = items.pop(0).upper()
        if items and isinstance(items[0], (list, tuple)):
            names = [str(n) for n in items.pop(0)]
        if items:
            raise SectionError("trailing section items")
    if spec not in _SPECS:
        raise SectionError("unknown section specifier")
    if any(n < 1 for n in path):
        raise SectionError("part numbers start at 1")
    if spec == "MIME" and not path:
        raise SectionError("MIME needs a part number")
    if spec.startswith("HEADER.FIELDS"):
        if not names:
            raise SectionError("empty header list")
    elif names:
        raise SectionError("header list only with HEADER.FIELDS")
    return path, spec, names


def _children(node: Node) -> list[Node]:
    if node["type"] == "multipart":
        return list(node.get("parts") or [])
    msg = node.get("message")
    if msg:
        root = msg["structure"]
        return list(root.get("parts") or []) if root["type"] == "multipart" else [root]
    return []


def _resolve(structure: Node, path: list[int]) -> Node | None:
    """The node for an IMAP part number (RFC 9051 §6.4.5.1), or None."""
    kids = list(structure.get("parts") or []) if structure["type"] == "multipart" else [structure]
    node: Node | None = None
    for number in path:
        if node is not None:
            kids = _children(node)
        if number > len(kids):
            return None
        node = kids[number - 1]
    return node


def _header_subset(raw: bytes, start: int, end: int, names: list[str], negate: bool) -> bytes:
    block = split_header_block(raw, start, end)
    want = {n.lower() for n in names}
    out: list[bytes] = []
    for f in block.fields:
        if (f.name.lower() in want) != negate:
            chunk = raw[f.start : f.end]
            out.append(chunk if chunk.endswith(b"\n") else chunk + b"\r\n")
    if block.blank_start is not None:
        out.append(raw[block.blank_start : block.body_start])
    return b"".join(out)


def _message_part(raw: bytes, root: Node, spec: str, names: list[str]) -> bytes:
    if spec == "TEXT":
        return raw[root["body_start"] : root["body_end"]]
    if spec == "HEADER":
        return raw[root["hdr_start"] : root["hdr_end"]]
    return _header_subset(raw, root["hdr_start"], root["hdr_end"], names, spec.endswith(".NOT"))


def section_bytes(raw: bytes, structure: Node, section: Section) -> bytes:
    """BODY[section] contents (before any <partial>); b"" if the part does not exist."""
    path, spec, names = parse_section(section)
    if not path:
        if spec == "":
            return raw
        top = dict(structure, hdr_start=0, body_end=len(raw))
        return _message_part(raw, top, spec, names)
    node = _resolve(structure, path)
    if node is None:
        return b""
    if spec == "":
        return raw[node["body_start"] : node["body_end"]]
    if spec == "MIME":
        return raw[node["hdr_start"] : node["hdr_end"]]
    msg = node.get("message")
    if not msg:
        return b""
    return _message_part(raw, msg["structure"], spec, names)


_LINE_END = re.compile(rb"\r?\n")


def binary_section(raw: bytes, structure: Node, part: Union[str, Sequence[int]]) -> bytes:
    """BINARY[part] (RFC 3516): the part with its transfer encoding removed.

    ``part`` is ``"1.2"``, ``[1, 2]`` or empty for the whole message.  Text
    parts are returned with CRLF line ends (RFC 9051 §7.5.2): stored 7bit/8bit
    line ends and quoted-printable hard breaks become CRLF; base64-decoded
    octets are returned exactly (they are already canonical, RFC 2045 §6.8).  Raises
    ``UnknownCTEError`` (answer NO [UNKNOWN-CTE]) for an encoding this
    server cannot decode, ``SectionError`` for a malformed part number.
    """
    if isinstance(part, str):
        if part and not all(p.isdigit() for p in part.split(".")):
            raise SectionError("BINARY takes part numbers only")
        path = [int(p) for p in part.split(".")] if part else []
    else:
        path = [int(p) for p in part]
    if any(n < 1 for n in path):
        raise SectionError("part numbers start at 1")
    if not path:
        return raw
    node = _resolve(structure, path)
    if node is None:
        return b""
    data = raw[node["body_start"] : node["body_end"]]
    if node["type"] == "multipart":
        return data
    encoding = (node["encoding"] or "7bit").strip().lower()
    data, _problem = decode_cte(data, encoding, strict=True, crlf=True)
    if node["type"] == "text" and encoding in IDENTITY_ENCODINGS:
        # Only the storage line ends are normalised (RFC 9051 §7.5.2).  A
        # base64 body already is the canonical form (RFC 2045 §6.8): a bare
        # CR or LF inside it is data and is returned untouched, as Dovecot
        # does; quoted-printable hard breaks come out as CRLF from decode_cte.
        data = _LINE_END.sub(b"\r\n", data)
    return data


def binary_size(raw: bytes, structure: Node, part: Union[str, Sequence[int]]) -> int:
    """BINARY.SIZE[part]: equals ``len(binary_section(...))`` by construction."""
    return len(binary_section(raw, structure, part))


_CTE_FIELD = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*")


def _leaves(node: Node) -> list[Node]:
    out: list[Node] = []
    if node.get("type") == "multipart":
        for child in node.get("parts") or []:
            out.extend(_leaves(child))
    elif node.get("message"):
        out.extend(_leaves(node["message"]["structure"]))
    else:
        out.append(node)
    return out


def nul_parts_to_base64(raw: bytes, structure: Node) -> bytes:
    """Re-encode every ``binary`` leaf part that holds NUL octets as base64.

    RFC 3516 §4.4 lets APPEND change the transfer encoding of appended data
    without loss: a NUL can never be sent in BODY[...] (a <literal> is
    CHAR8, RFC 9051 §4.3), so such parts are stored base64-encoded (as
    Dovecot does); BINARY[...] still returns the original octets.
    """
    edits: list[tuple[int, int, bytes]] = []
    for node in _leaves(structure):
        body = raw[node["body_start"]:node["body_end"]]
        if (node.get("encoding") or "").lower() != "binary" or b"\x00" not in body:
            continue
        nl = b"\r\n"
        encoded = binascii.b2a_base64(body, newline=False)
        lines = nl.join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
        hdr = raw[node["hdr_start"]:node["hdr_end"]]
        m = _CTE_FIELD.search(hdr)
        if m is None:  # pragma: no cover - encoding "binary" came from this field
            continue
        edits.append((node["hdr_start"] + m.start(), node["hdr_start"] + m.end(),
                      b"Content-Transfer-Encoding: base64"))
        edits.append((node["body_start"], node["body_end"], lines))
    for start, end, data in sorted(edits, reverse=True):
        raw = raw[:start] + data + raw[end:]
    return raw


def part_node(structure: Node, path: Sequence[int]) -> Node | None:
    """The structure node of IMAP part ``path`` (empty: the message itself), or None
    (URLFETCH BODYPARTSTRUCTURE, RFC 5524 §3)."""
    return structure if not path else _resolve(structure, list(path))
