"""RFC 8621 §4.1.2-4.1.4 Email body and header properties from raw + summary.

One job: build EmailBodyPart objects, the textBody / htmlBody / attachments
lists, EmailBodyValue objects and the ``header:{name}:as{Form}`` parsed
forms, from the raw message and the stored ``summary["structure"]``.

- ``partId`` is the part's IMAP section number ("1", "2.1", ...): unique
  within the Email, stable, and it lets IMAP and JMAP name the same part.
- ``blobId`` is left to the caller: pass ``blob_id(part_id) -> str``.
- ``size`` is the decoded size (RFC 8621 §4.1.4): the octets ``part_blob``
  returns (an unknown transfer encoding counts as none).  For a multipart
  it is the size of its raw body.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from .addresses import jmap_addresses, jmap_grouped_addresses, parse_address_list
from .bodylists import body_lists, mime_type
from .headers import parse_date, parse_msg_ids, parse_urls, split_header_block, unfold
from .parse import header_text_form
from .text import decode_cte, decode_text

__all__ = [
    "DEFAULT_BODY_PROPERTIES",
    "HEADER_FORMS",
    "as_addresses",
    "as_date",
    "as_grouped_addresses",
    "as_message_ids",
    "as_raw",
    "as_text",
    "as_urls",
    "body_part",
    "body_parts",
    "body_value",
    "find_part",
    "format_date",
    "header_property",
    "header_values",
    "part_blob",
    "part_headers",
    "part_size",
]

Node = dict[str, Any]
BlobId = Callable[[str], str]

#: RFC 8621 §4.2 default "bodyProperties".
DEFAULT_BODY_PROPERTIES = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location",
)


# -- header forms (RFC 8621 §4.1.2); each takes the raw value after the colon --------


def as_raw(value: bytes) -> str:
    """§4.1.2.1 Raw: invalid UTF-8 replaced by U+FFFD, NUL dropped."""
    return value.decode("utf-8", "replace").replace("\x00", "")


def as_text(value: bytes) -> str:
    """§4.1.2.2 Text: unfolded, leading SP removed, RFC 2047 decoded, NFC."""
    return header_text_form(value)


def as_addresses(value: bytes) -> list[dict[str, str | None]]:
    """§4.1.2.3 Addresses."""
    return jmap_addresses(parse_address_list(unfold(value)))


def as_grouped_addresses(value: bytes) -> list[dict[str, Any]]:
    """§4.1.2.4 GroupedAddresses."""
    return jmap_grouped_addresses(parse_address_list(unfold(value)))


def as_message_ids(value: bytes) -> list[str] | None:
    """§4.1.2.5 MessageIds, or None if parsing fails."""
    return parse_msg_ids(unfold(value))


def format_date(epoch: int, offset_minutes: int) -> str:
    """RFC 3339 date-time in the original zone ("Z" for +00:00)."""
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=epoch + offset_minutes * 60)
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def as_date(value: bytes) -> str | None:
    """§4.1.2.6 Date, or None if parsing fails."""
    parsed = parse_date(unfold(value))
    if parsed is None:
        return None
    try:
        return format_date(*parsed)
    except (OverflowError, ValueError):
        return None


def as_urls(value: bytes) -> list[str] | None:
    """§4.1.2.7 URLs (RFC 2369), or None if parsing fails."""
    return parse_urls(unfold(value))


HEADER_FORMS: dict[str, Callable[[bytes], Any]] = {
    "Raw": as_raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}


# -- headers of a part -------------------------------------------------------------


def part_headers(raw: bytes, node: Node) -> list[dict[str, str]]:
    """EmailHeader list (§4.1.3 "headers") of a part, values in Raw form."""
    block = split_header_block(raw, node["hdr_start"], node["hdr_end"])
    return [{"name": f.name, "value": as_raw(f.value)} for f in block.fields]


def header_values(raw: bytes, node: Node, name: str) -> list[bytes]:
    """Raw values of every instance of field ``name`` (case-insensitive), in order."""
    key = name.lower()
    block = split_header_block(raw, node["hdr_start"], node["hdr_end"])
    return [f.value for f in block.fields if f.name.lower() == key]


def header_property(raw: bytes, node: Node, name: str, form: str = "Raw", all: bool = False) -> Any:
    """Value of ``header:{name}[:as{form}][:all]`` (§4.1.3); KeyError for an unknown form."""
    convert = HEADER_FORMS[form]
    values = [convert(v) for v in header_values(raw, node, name)]
    if all:
        return values
    return values[-1] if values else None


def _header_prop(raw: bytes, node: Node, prop: str) -> Any:
    parts = prop.split(":")[1:]
    name = parts[0]
    all_ = len(parts) > 1 and parts[-1] == "all"
    form = "Raw"
    if len(parts) > 1 and parts[1].startswith("as"):
        form = parts[1][2:]
    return header_property(raw, node, name, form, all_)


# -- parts ---------------------------------------------------------------------------


def find_part(structure: Node, part_id: str) -> Node | None:
    """The non-multipart node with this partId (not inside embedded messages)."""
    stack = [structure]
    while stack:
        node = stack.pop()
        if node["type"] == "multipart":
            stack.extend(node.get("parts") or [])
        elif node.get("part") == part_id:
            return node
    return None


def part_blob(raw: bytes, node: Node) -> bytes:
    """The part's octets after removing a known transfer encoding (its blob)."""
    data = raw[node["body_start"] : node["body_end"]]
    if node["type"] == "multipart":
        return data
    return decode_cte(data, node["encoding"])[0]


def part_size(raw: bytes, node: Node) -> int:
    if node["type"] == "multipart" or node["encoding"] in ("7bit", "8bit", "binary"):
        return max(0, node["body_end"] - node["body_start"])
    return len(part_blob(raw, node))


def body_part(
    raw: bytes,
    node: Node,
    blob_id: BlobId | None = None,
    properties: Iterable[str] | None = None,
) -> dict[str, Any]:
    """EmailBodyPart (§4.1.4); ``subParts`` recurse for multipart/* only.

    ``properties`` defaults to all standard ones plus headers and subParts;
    ``header:...`` properties are supported.
    """
    props = list(properties) if properties is not None else list(DEFAULT_BODY_PROPERTIES) + ["headers", "subParts"]
    is_multi = node["type"] == "multipart"
    part_id = None if is_multi else node.get("part")
    out: dict[str, Any] = {}
    for prop in props:
        if prop == "partId":
            out[prop] = part_id
        elif prop == "blobId":
            out[prop] = blob_id(part_id) if (blob_id is not None and part_id is not None) else None
        elif prop == "size":
            out[prop] = part_size(raw, node)
        elif prop == "headers":
            out[prop] = part_headers(raw, node)
        elif prop == "name":
            out[prop] = node.get("name")
        elif prop == "type":
            out[prop] = mime_type(node)
        elif prop == "charset":
            out[prop] = node.get("charset")
        elif prop == "disposition":
            disp = node.get("disposition")
            out[prop] = disp[0] if disp else None
        elif prop in ("cid", "language", "location"):
            out[prop] = node.get(prop)
        elif prop == "subParts":
            out[prop] = [body_part(raw, c, blob_id, props) for c in node["parts"]] if is_multi else None
        elif prop.startswith("header:"):
            try:
                out[prop] = _header_prop(raw, node, prop)
            except KeyError:
                out[prop] = None
    return out


def body_parts(
    raw: bytes,
    structure: Node,
    blob_id: BlobId | None = None,
    properties: Iterable[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``textBody``, ``htmlBody`` and ``attachments`` (§4.1.4) as EmailBodyParts."""
    props = list(properties) if properties is not None else list(DEFAULT_BODY_PROPERTIES)
    text_body, html_body, attachments = body_lists(structure)
    return {
        "textBody": [body_part(raw, n, blob_id, props) for n in text_body],
        "htmlBody": [body_part(raw, n, blob_id, props) for n in html_body],
        "attachments": [body_part(raw, n, blob_id, props) for n in attachments],
    }


def _truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    if len(text) <= max_bytes // 4:
        return text, False
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text, False
    cut = max_bytes
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut].decode("utf-8", "replace"), True


def body_value(raw: bytes, part: Node, max_bytes: int = 0) -> dict[str, Any]:
    """EmailBodyValue (§4.1.4 "bodyValues") of a text part.

    CTE and charset decoded best effort, CRLF -> LF, truncated to at most
    ``max_bytes`` UTF-8 octets at a character boundary when ``max_bytes``
    is greater than 0.
    """
    data = raw[part["body_start"] : part["body_end"]]
    data, cte_problem = decode_cte(data, part["encoding"])
    text, cs_problem = decode_text(data, part.get("charset"))
    text = text.replace("\r\n", "\n")
    truncated = False
    if max_bytes > 0:
        text, truncated = _truncate_utf8(text, max_bytes)
    return {"value": text, "isEncodingProblem": cte_problem or cs_problem, "isTruncated": truncated}
