"""The MIME tree of a message, with byte offsets into the raw message.

One job: ``build(raw)`` walks the raw octets once and returns the root node
(a JSON-serialisable dict) and the top-level header fields.  Payloads are
never decoded here: only header blocks are read and boundaries searched.

Every node has::

    type, subtype            lower-case; defaults per RFC 2045 §5.2 /
                             RFC 2046 §5.1.5 (message/rfc822 in a digest)
    params                   [[name, value], ...] (RFC 2231-decoded)
    id, description          raw Content-ID / Content-Description or None
    encoding                 lower-case Content-Transfer-Encoding, "7bit" default
    disposition              [type, params] or None (RFC 2183)
    language                 [tag, ...] or None;  location: str or None
    md5                      always None
    hdr_start, hdr_end       raw[hdr_start:hdr_end] = header block incl. blank
                             line (IMAP n.MIME, or HEADER of a message)
    body_start, body_end     raw[body_start:body_end] = body (IMAP n / TEXT)
    lines                    text/* and message/*: lines of the encoded body
    charset, name, cid       for JMAP (RFC 8621 §4.1.4)
    part                     IMAP section number ("1.2"); "" or the enclosing
                             message part's number for a multipart root
    parts                    multipart only: children (never empty)
    message                  message/rfc822|global only: {"envelope",
                             "structure"} of the embedded message, or None
                             when it cannot be parsed in place (encoded, or
                             too deep)

Malformed input (RFC 2046 §5.1.1 boundaries): a delimiter is a line that
is ``--boundary`` plus optional ``--`` and whitespace; the CRLF before it
belongs to it.  A multipart without boundary parameter, without any
delimiter line, beyond ``MAX_DEPTH``, or when ``MAX_PARTS`` is reached gets
one synthetic text/plain child with no header covering its whole body, so
a multipart always has a part 1 and the offsets stay consistent.  A missing
close delimiter ends the last part at the end of the enclosing body.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .envelope import envelope
from .headers import HeaderField, parse_bare_text_type, parse_content_type, parse_disposition, parse_language, split_header_block, unfold
from .rfc2047 import decode_words
from .text import IDENTITY_ENCODINGS

__all__ = ["MAX_DEPTH", "MAX_PARTS", "build", "count_lines", "iter_nodes"]

#: Maximum nesting of multiparts and embedded messages (recursion bound).
MAX_DEPTH = 64
#: Maximum number of nodes in one message tree.
MAX_PARTS = 5000

_MESSAGE_SUBTYPES = ("rfc822", "global")


@dataclass(slots=True)
class _Context:
    raw: bytes
    count: int = 0
    defects: list[str] = field(default_factory=list)

    def defect(self, what: str) -> None:
        if what not in self.defects:
            self.defects.append(what)


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Lines in raw[start:end]: the number of line ends (LF) in it.

    The line break in front of a delimiter belongs to the delimiter (RFC 2046
    §5.1.1), so a part's last line has none and is not counted: the count
    Dovecot and Cyrus give in BODYSTRUCTURE.
    """
    if end <= start:
        return 0
    return raw.count(b"\n", start, end)


def _first(fields: tuple[HeaderField, ...]) -> dict[str, bytes]:
    first: dict[str, bytes] = {}
    for f in fields:
        key = f.name.lower()
        if key.startswith("content-") and key not in first:
            first[key] = f.value
    return first


def _node(fields: tuple[HeaderField, ...], default: tuple[str, str]) -> dict[str, Any]:
    h = _first(fields)
    ctype = subtype = None
    params: list[list[str]] = []
    has_ct = False
    if "content-type" in h:
        value = unfold(h["content-type"])
        parsed = parse_content_type(value)
        if parsed is None:
            # "Content-Type: text; charset=..." (no subtype): text/plain as RFC 2045
            # §5.2 advises for an invalid field, but keeping the charset it names.
            parsed = parse_bare_text_type(value)
        if parsed is not None:
            ctype, subtype, params = parsed
            has_ct = True
    if ctype is None or subtype is None:
        # RFC 2045 §5.2: absent or invalid Content-Type means the default.
        if default == ("text", "plain") or "content-type" in h:
            ctype, subtype, params = "text", "plain", [["charset", "us-ascii"]]
        else:
            ctype, subtype, params = default[0], default[1], []
    pmap = {k: v for k, v in params}
    charset = pmap.get("charset")
    if charset is None and (ctype == "text" or not has_ct):
        charset = "us-ascii"
    disposition = None
    if "content-disposition" in h:
        disp = parse_disposition(unfold(h["content-disposition"]))
        if disp is not None:
            disposition = [disp[0], disp[1]]
    name = None
    if disposition is not None:
        name = next((v for k, v in disposition[1] if k == "filename"), None)
    if name is None:
        name = pmap.get("name")
    if name is not None:
        name = decode_words(name, strict=False)
    raw_id = unfold(h["content-id"]).strip() if "content-id" in h else None
    cid = None
    if raw_id:
        cid = "".join(raw_id.split()).strip("<>") or None
    encoding = "7bit"
    if "content-transfer-encoding" in h:
        encoding = unfold(h["content-transfer-encoding"]).strip().lower() or "7bit"
    location = None
    if "content-location" in h:
        location = "".join(unfold(h["content-location"]).split()) or None
    return {
        "type": ctype,
        "subtype": subtype,
        "params": params,
        "id": raw_id,
        "description": unfold(h["content-description"]).strip() if "content-description" in h else None,
        "encoding": encoding,
        "disposition": disposition,
        "language": parse_language(unfold(h["content-language"])) if "content-language" in h else None,
        "location": location,
        "md5": None,
        "hdr_start": 0,
        "hdr_end": 0,
        "body_start": 0,
        "body_end": 0,
        "lines": None,
        "charset": charset,
        "name": name,
        "cid": cid,
        "part": "",
    }


def _synthetic(start: int, end: int, part: str, raw: bytes) -> dict[str, Any]:
    node = _node((), ("text", "plain"))
    node.update(hdr_start=start, hdr_end=start, body_start=start, body_end=end, part=part)
    node["lines"] = count_lines(raw, start, end)
    return node


def _delimiters(ctx: _Context, boundary: bytes, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Delimiter lines in raw[start:end] as (line start, line end, is_close)."""
    raw = ctx.raw
    delim = b"--" + boundary
    found: list[tuple[int, int, bool]] = []
    pos = start
    while pos < end:
        i = raw.find(delim, pos, end)
        if i < 0:
            break
        j = i + len(delim)
        if i == start or raw[i - 1] == 0x0A:
            close = raw.startswith(b"--", j) and j + 2 <= end
            k = j + 2 if close else j
            nl = raw.find(b"\n", k, end)
            line_end = end if nl < 0 else nl + 1
            if not raw[k:line_end].strip(b" \t\r\n"):
                found.append((i, line_end, close))
                if close or ctx.count + len(found) >= MAX_PARTS:
                    if not close:
                        ctx.defect("too_many_parts")
                    break
                pos = line_end
                continue
        pos = j
    return found


def _reuses_boundary(ctx: _Context, boundary: bytes, start: int, stop: int) -> bool:
    """Is the part at raw[start:] a multipart with the same boundary as its parent?

    (An old Outlook Express habit.)  The boundary appearing before the next delimiter
    is the cheap test; the header is parsed only then.
    """
    raw = ctx.raw
    if raw.find(boundary, start, stop) < 0:
        return False
    block = split_header_block(raw, start, stop)
    ct = _first(block.fields).get("content-type")
    parsed = parse_content_type(unfold(ct)) if ct is not None else None
    if parsed is None or parsed[0] != "multipart":
        return False
    return next((v for k, v in parsed[2] if k == "boundary"), "").encode("utf-8", "surrogateescape") == boundary


def _skip_nested(ctx: _Context, boundary: bytes, delims: list[tuple[int, int, bool]], idx: int,
                 end: int) -> list[tuple[int, int, bool]]:
    """Delimiters of the parent once the nested multipart starting after delims[idx] (same
    boundary) has taken its own: those up to its close delimiter, as a parser keeping a
    stack of open boundaries (Dovecot's, Thunderbird's) assigns them."""
    close = next((k for k in range(idx + 1, len(delims)) if delims[k][2]), None)
    if close is None:
        return delims[: idx + 1]  # the nested one runs to the end
    more = _delimiters(ctx, boundary, delims[close][1], end)
    return delims[: idx + 1] + more


def _crlf_before(raw: bytes, i: int, floor: int) -> int:
    """Offset where the line break attached to the delimiter at ``i`` starts."""
    if i - 2 >= floor and raw[i - 2 : i] == b"\r\n":
        return i - 2
    if i - 1 >= floor and raw[i - 1] == 0x0A:
        return i - 1
    return i


def _entity(
    ctx: _Context,
    start: int,
    end: int,
    depth: int,
    default: tuple[str, str],
    part: str,
    message_of: str | None = None,
) -> tuple[dict[str, Any], tuple[HeaderField, ...]]:
    """Build the node for the entity raw[start:end].

    ``part`` is its IMAP section number as a leaf.  For the root of a
    message, ``message_of`` is the number of the message part holding it
    ("" at top level): a multipart root then takes that number, and its
    children are numbered below it (RFC 9051 §6.4.5.1).
    """
    raw = ctx.raw
    ctx.count += 1
    block = split_header_block(raw, start, end)
    node = _node(block.fields, default)
    node.update(hdr_start=start, hdr_end=block.body_start, body_start=block.body_start, body_end=end, part=part)
    bstart = block.body_start
    ctype, subtype = node["type"], node["subtype"]
    if ctype == "multipart":
        if message_of is not None:
            node["part"] = part = message_of
        prefix = part + "." if part else ""
        boundary = next((v for k, v in node["params"] if k == "boundary"), "")
        children: list[dict[str, Any]] = []
        if depth >= MAX_DEPTH:
            ctx.defect("max_depth")
        elif not boundary:
            ctx.defect("no_boundary")
        elif ctx.count >= MAX_PARTS:
            ctx.defect("too_many_parts")
        else:
            bbytes = boundary.encode("utf-8", "surrogateescape")
            delims = _delimiters(ctx, bbytes, bstart, end)
            child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
            idx = -1
            while idx + 1 < len(delims):
                idx += 1
                i, line_end, close = delims[idx]
                if close:
                    break
                if idx + 1 < len(delims) and _reuses_boundary(ctx, bbytes, line_end, delims[idx + 1][0]):
                    delims = _skip_nested(ctx, bbytes, delims, idx, end)
                if idx + 1 < len(delims):
                    nxt = delims[idx + 1][0]
                    pend = max(line_end, _crlf_before(raw, nxt, line_end))
                else:
                    pend = end
                    ctx.defect("no_close_delimiter")
                child, _f = _entity(ctx, line_end, pend, depth + 1, child_default, prefix + str(len(children) + 1))
                children.append(child)
            if not children:
                ctx.defect("no_parts")
        if not children:
            children.append(_synthetic(bstart, end, prefix + "1", raw))
            ctx.count += 1
        node["parts"] = children
    elif ctype == "message" and subtype in _MESSAGE_SUBTYPES:
        node["lines"] = count_lines(raw, bstart, end)
        node["message"] = None
        if node["encoding"] not in IDENTITY_ENCODINGS:
            ctx.defect("encoded_message")
        elif depth >= MAX_DEPTH:
            ctx.defect("max_depth")
        else:
            sub, sub_fields = _entity(ctx, bstart, end, depth + 1, ("text", "plain"), part + ".1", part)
            node["message"] = {"envelope": envelope(sub_fields), "structure": sub}
    elif ctype == "text":
        node["lines"] = count_lines(raw, bstart, end)
    return node, block.fields


def build(raw: bytes) -> tuple[dict[str, Any], tuple[HeaderField, ...], list[str]]:
    """Root node, top-level header fields and defect names for ``raw``."""
    ctx = _Context(raw)
    root, fields = _entity(ctx, 0, len(raw), 0, ("text", "plain"), "1", "")
    return root, fields, ctx.defects


def iter_nodes(node: dict[str, Any], into_messages: bool = True) -> list[dict[str, Any]]:
    """All nodes of a tree in document order (iterative, no recursion)."""
    out: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        kids: list[dict[str, Any]] = list(n.get("parts") or ())
        msg = n.get("message")
        if into_messages and msg:
            kids = [msg["structure"]]
        stack.extend(reversed(kids))
    return out
