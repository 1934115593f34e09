"""The properties of an Email object (RFC 8621 §4.1), rendered from the store.

One job: given the property names a client asked for, build the Email object
from the store's email record (metadata, §4.1.1), the parsed summary kept at
ingest (convenience header properties, ``preview``, ``hasAttachment``) and,
only when a body or header property is asked for, the raw message (§4.1.2
``header:{name}:as{Form}``, §4.1.4 ``bodyStructure``/``textBody``/
``htmlBody``/``attachments``/``bodyValues``). A metadata-only /get never
reads the message blob.

Also the one check of ``header:`` property names (which parsed forms a field
may use, §4.1.2) and of the body arguments of Email/get and Email/parse.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...mime.bodylists import body_lists
from ...mime.jmap_body import (
    DEFAULT_BODY_PROPERTIES,
    HEADER_FORMS,
    body_part,
    body_value,
    header_property,
    part_headers,
)
from ...mime.jmap_listing import CONVENIENCE, FROM_SUMMARY, from_summary
from ...mime.sanitize import sanitize_html, truncate_html
from ...mime.structure import iter_nodes
from ...model import ids
from ..errors import MethodError

# -- property names -------------------------------------------------------------

METADATA = frozenset({"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"})
FROM_RAW = frozenset({"headers", "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments"})
PROPERTIES = METADATA | FROM_SUMMARY | FROM_RAW

#: RFC 8621 §4.2: /get with properties null.
DEFAULT_GET = frozenset({
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview", "bodyValues", "textBody", "htmlBody", "attachments",
})
#: RFC 8621 §4.9: Email/parse with properties omitted.
DEFAULT_PARSE = DEFAULT_GET - METADATA

BODY_PART_PROPERTIES = frozenset(DEFAULT_BODY_PROPERTIES) | {"headers", "subParts"}

# -- header forms (RFC 8621 §4.1.2) ------------------------------------------------

_ADDRESS_FIELDS = frozenset({
    "from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender", "resent-reply-to",
    "resent-to", "resent-cc", "resent-bcc",
})
_LIST_FIELDS = frozenset({"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
                          "list-archive"})
#: Fields defined by RFC 5322 or RFC 2369: only the forms listed for them are allowed.
DEFINED_FIELDS = _ADDRESS_FIELDS | _LIST_FIELDS | frozenset({
    "date", "message-id", "in-reply-to", "references", "subject", "comments", "keywords", "resent-date",
    "resent-message-id", "return-path", "received",
})
FORM_FIELDS: dict[str, frozenset[str]] = {
    "Text": frozenset({"subject", "comments", "keywords", "list-id"}),
    "Addresses": _ADDRESS_FIELDS,
    "GroupedAddresses": _ADDRESS_FIELDS,
    "MessageIds": frozenset({"message-id", "in-reply-to", "references", "resent-message-id"}),
    "Date": frozenset({"date", "resent-date"}),
    "URLs": _LIST_FIELDS,
}


@dataclass(frozen=True, slots=True)
class HeaderProp:
    """A parsed ``header:{name}[:as{Form}][:all]`` property name."""

    name: str
    form: str
    all: bool


def form_allowed(name: str, form: str) -> bool:
    key = name.lower()
    if form == "Raw" or key not in DEFINED_FIELDS:
        return True
    return key in FORM_FIELDS.get(form, frozenset())


def parse_header_prop(prop: str) -> HeaderProp | None:
    """The parts of a ``header:`` property, or None if it is malformed or uses a
    form the field may not use (RFC 8621 §4.1.2: such a fetch is invalidArguments)."""
    parts = prop.split(":")
    if len(parts) < 2 or len(parts) > 4 or parts[0] != "header":
        return None
    name = parts[1]
    if not name or any(not 0x21 <= ord(c) <= 0x7E for c in name):
        return None
    rest = parts[2:]
    all_ = bool(rest) and rest[-1] == "all"
    if all_:
        rest = rest[:-1]
    form = "Raw"
    if rest:
        if not rest[0].startswith("as") or rest[0][2:] not in HEADER_FORMS:
            return None
        form = rest[0][2:]
    if not form_allowed(name, form):
        return None
    return HeaderProp(name, form, all_)


class EmailProperties(frozenset[str]):
    """The Email's property names, which also contain every ``header:...``
    property (so the generic /get and /set accept them); their forms are
    checked by ``check_properties``."""

    def __contains__(self, item: object) -> bool:
        return frozenset.__contains__(self, item) or (isinstance(item, str) and item.startswith("header:"))


def check_properties(props: Iterable[str]) -> None:
    for p in props:
        if p.startswith("header:") and parse_header_prop(p) is None:
            raise MethodError("invalidArguments", f"argument 'properties': invalid header property {p!r}")


# -- body arguments of Email/get and Email/parse --------------------------------------


@dataclass(frozen=True, slots=True)
class BodyOptions:
    properties: tuple[str, ...] = DEFAULT_BODY_PROPERTIES
    fetch_text: bool = False
    fetch_html: bool = False
    fetch_all: bool = False
    max_bytes: int = 0
    #: RFC 8621 §9.1: text/html bodyValues cleaned with nh3 (``twistd dualmail
    #: --no-html-sanitize`` turns it off for clients that sanitise themselves)
    sanitize_html: bool = True


BODY_ARGUMENTS = {
    "bodyProperties": None,
    "fetchTextBodyValues": False,
    "fetchHTMLBodyValues": False,
    "fetchAllBodyValues": False,
    "maxBodyValueBytes": 0,
}


def body_options(extra: Mapping[str, Any], sanitize_html: bool = True) -> BodyOptions:
    """Validate the body arguments (RFC 8621 §4.2) -> BodyOptions."""
    props = extra.get("bodyProperties")
    if props is None:
        props = list(DEFAULT_BODY_PROPERTIES)
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise MethodError("invalidArguments", "argument 'bodyProperties' must be a String[]")
    for p in props:
        if p not in BODY_PART_PROPERTIES and not (p.startswith("header:") and parse_header_prop(p)):
            raise MethodError("invalidArguments", f"argument 'bodyProperties': unknown property {p!r}")
    flags = {}
    for name in ("fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues"):
        value = extra.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise MethodError("invalidArguments", f"argument {name!r} must be a Boolean")
        flags[name] = value
    max_bytes = extra.get("maxBodyValueBytes", 0)
    if max_bytes is None:
        max_bytes = 0
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 0 <= max_bytes < 2**53:
        raise MethodError("invalidArguments", "argument 'maxBodyValueBytes' must be an UnsignedInt")
    return BodyOptions(tuple(dict.fromkeys(props)), flags["fetchTextBodyValues"], flags["fetchHTMLBodyValues"],
                       flags["fetchAllBodyValues"], max_bytes, sanitize_html)


# -- rendering ---------------------------------------------------------------------------


def utc_date(epoch: int) -> str:
    """RFC 3339 UTCDate (``...Z``)."""
    day, second = divmod(int(epoch), 86400)
    hours, rest = divmod(second, 3600)
    return f"{_utc_day(day)}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


@functools.lru_cache(maxsize=4096)
def _utc_day(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).strftime("%Y-%m-%d")


def needs_raw(props: Iterable[str]) -> bool:
    return any(p in FROM_RAW or p.startswith("header:") for p in props)


def needs_summary(props: Iterable[str]) -> bool:
    return any(p in FROM_SUMMARY for p in props) or needs_raw(props)


def metadata(e: int, rec: Mapping[str, Any], mailbox_ids: Iterable[int]) -> dict[str, Any]:
    """§4.1.1 from the email record (JMAP-visible mailboxes only, CONTRACT §2)."""
    return {
        "id": ids.format_id(ids.EMAIL, e),
        "blobId": ids.blob_id(str(rec["blob"])),
        "threadId": ids.format_id(ids.THREAD, int(rec["thread"])),
        "mailboxIds": {ids.format_id(ids.MAILBOX, m): True for m in mailbox_ids},
        "keywords": {k: True for k in rec["kw"]},
        "size": int(rec["size"]),
        "receivedAt": utc_date(int(rec["recv"])),
    }


def _strip_leaf_subparts(part: dict[str, Any]) -> dict[str, Any]:
    subs = part.get("subParts")
    if subs is None:
        part.pop("subParts", None)
    else:
        for sub in subs:
            _strip_leaf_subparts(sub)
    return part


def _truncate_html(value: str) -> str:
    """Do not end a truncated HTML value inside a tag (RFC 8621 §4.2 SHOULD)."""
    lt = value.rfind("<")
    if lt >= 0 and value.find(">", lt) < 0:
        return value[:lt]
    return value


def body_values(raw: bytes, structure: dict[str, Any], opts: BodyOptions) -> dict[str, Any]:
    """§4.1.4 bodyValues: the text/* parts the fetch flags select."""
    nodes: list[dict[str, Any]] = []
    if opts.fetch_text or opts.fetch_html:
        text_body, html_body, _att = body_lists(structure)
        if opts.fetch_text:
            nodes.extend(text_body)
        if opts.fetch_html:
            nodes.extend(html_body)
    if opts.fetch_all:
        nodes.extend(n for n in iter_nodes(structure, into_messages=False) if n["type"] != "multipart")
    out: dict[str, Any] = {}
    for node in nodes:
        part_id = node.get("part")
        if node["type"] != "text" or not part_id or part_id in out:
            continue
        if node["subtype"] == "html" and opts.sanitize_html:
            # sanitise the whole value, then cut the clean text to the budget: a cut
            # can only shorten what the sanitiser wrote (re-sanitising a cut value
            # could grow it past maxBodyValueBytes again)
            value = body_value(raw, node)
            value["value"], value["isTruncated"] = truncate_html(sanitize_html(value["value"]), opts.max_bytes)
        else:
            value = body_value(raw, node, opts.max_bytes)
            if value["isTruncated"] and node["subtype"] == "html":
                value["value"] = _truncate_html(value["value"])
        out[part_id] = value
    return out


def render(
    props: Iterable[str],
    *,
    meta: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    raw: Callable[[], bytes] | None,
    blob_id: str | None,
    opts: BodyOptions,
) -> dict[str, Any]:
    """The Email object with ``props``. ``meta``: §4.1.1 values (None: Email/parse,
    all null); ``summary``: the stored summary (needed for any non-metadata
    property); ``raw``: loads the message (called at most once, only for header
    and body properties); ``blob_id``: the message's blobId, base of its parts'."""
    out: dict[str, Any] = {}
    message: bytes | None = None

    def load() -> bytes:
        nonlocal message
        if message is None:
            message = raw() if raw is not None else b""
        return message

    structure = (summary or {}).get("structure")

    def part_blob(part_id: str) -> str:
        return ids.part_blob_id(blob_id or "", part_id)

    blob_fn = part_blob if blob_id else None
    for prop in props:
        if prop in METADATA:
            out[prop] = meta.get(prop) if meta is not None else None
        elif prop in FROM_SUMMARY:
            out[prop] = from_summary(prop, summary or {})
        elif structure is None:
            out[prop] = None
        elif prop == "headers":
            out[prop] = part_headers(load(), structure)
        elif prop.startswith("header:"):
            hp = parse_header_prop(prop)
            out[prop] = None if hp is None else header_property(load(), structure, hp.name, hp.form, hp.all)
        elif prop == "bodyStructure":
            body_props = list(opts.properties)
            if "subParts" not in body_props:
                out[prop] = _strip_leaf_subparts(body_part(load(), structure, blob_fn, body_props + ["subParts"]))
            else:
                out[prop] = body_part(load(), structure, blob_fn, body_props)
        elif prop in ("textBody", "htmlBody", "attachments"):
            lists = _lists(load(), structure, blob_fn, opts)
            out[prop] = lists[prop]
        elif prop == "bodyValues":
            out[prop] = body_values(load(), structure, opts)
    return out


def _lists(raw: bytes, structure: dict[str, Any], blob_fn: Callable[[str], str] | None,
           opts: BodyOptions) -> dict[str, list[dict[str, Any]]]:
    text_body, html_body, attachments = body_lists(structure)
    props = list(opts.properties)
    return {
        "textBody": [body_part(raw, n, blob_fn, props) for n in text_body],
        "htmlBody": [body_part(raw, n, blob_fn, props) for n in html_body],
        "attachments": [body_part(raw, n, blob_fn, props) for n in attachments],
    }
