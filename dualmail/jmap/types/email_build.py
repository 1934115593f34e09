"""Email/set create: an RFC 5322/MIME message from JMAP Email properties
(RFC 8621 §4.6).

One job: ``build_message(obj, ...) -> bytes`` checks the create constraints of
§4.6 (no ``headers``, one property per header field, allowed parsed forms, no
``Content-*`` on the Email, ``bodyStructure`` xor the three body lists, one
text/plain ``textBody`` and one text/html ``htmlBody``, ``partId`` xor
``blobId``, no charset/size with ``partId``, no Content-Transfer-Encoding,
``bodyValues`` not truncated or broken) and generates the message with the
standard library's ``email`` package (policy SMTP: CRLF, RFC 2047/2231
encoding, boundaries, transfer encodings). ``Date`` and ``Message-ID`` are
generated when missing. Header fields given in ``Raw`` form are written
byte for byte.

Without ``bodyStructure`` the tree is: text and HTML in multipart/alternative;
attachments with a ``cid`` and inline disposition in multipart/related with
the HTML; any other attachment in multipart/mixed around all that.

Header fields: one property per field in the Email and in each body part; a
field RFC 5322 §3.6 allows once (Date, From, Message-ID, ...) or MIME-Version
only on the Email, never on a body part, and never twice; ``bodyStructure`` (or
a lone body part, which becomes the message's header block) sets no field the
Email sets (§4.6); Content-Type and Content-Transfer-Encoding are written from
the part's properties only.  Every field is folded by ``fold_header`` (78
characters where whitespace allows, RFC 5322 §2.1.1) and no line may exceed 998.

Errors are ``SetError``: ``invalidProperties`` listing every offending property
by its path (``subject``, ``textBody/0/header:Message-ID``,
``bodyStructure/subParts/1/headers``), ``blobNotFound`` with ``notFound``
listing every missing blobId.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import re
import uuid
from collections.abc import Callable, Mapping
from email.headerregistry import Address, AddressHeader, BaseHeader, Group, UnstructuredHeader
from email.message import MIMEPart
from email.quoprimime import body_encode
from typing import Any

from ..errors import SetError
from .email_props import CONVENIENCE, BODY_PART_PROPERTIES, parse_header_prop

_POLICY = email.policy.SMTP
_POLICY_UTF8 = email.policy.SMTPUTF8
_AddressField = type("_AddressField", (AddressHeader, BaseHeader), {})
_TextField = type("_TextField", (UnstructuredHeader, BaseHeader), {})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\Z")
# Content-* fields an EmailBodyPart property already writes.
_PART_FIELDS = {
    "content-type": ("type", "charset", "subParts"),
    "content-disposition": ("disposition", "name"),
    "content-id": ("cid",),
    "content-language": ("language",),
    "content-location": ("location",),
}
_TOP_ORDER = ["Date", "Message-ID", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject", "In-Reply-To",
              "References"]
MAX_PARTS = 256
MAX_DEPTH = 16
#: RFC 5322 §2.1.1: lines SHOULD be at most 78 characters and MUST be at most 998.
FOLD_LENGTH = 78
MAX_LINE_LENGTH = 998
# Fields a header block may hold once: RFC 5322 §3.6 (the table's "1"s), RFC 2045 §4
# and the Content-* fields of RFC 2045, 2183, 3282, 2557.
_ONCE = frozenset({
    "date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to", "references",
    "subject", "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
    "content-id", "content-description", "content-language", "content-location",
})
# Fields of the message header only (RFC 5322 §3.6; MIME-Version: RFC 2045 §4).
_MESSAGE_ONLY = frozenset({
    "date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to", "references",
    "subject", "mime-version",
})


class _Invalid(Exception):
    """Invalid properties (paths) of the create object, and why."""

    def __init__(self, props: str | list[str], why: str):
        super().__init__(why)
        self.props = [props] if isinstance(props, str) else list(dict.fromkeys(props))
        self.why = why


class _Conflicts:
    """Header field conflicts found so far, all reported at the end (RFC 8621 §4.6),
    and the fields written, checked once the message's policy is known."""

    def __init__(self) -> None:
        self.props: list[str] = []
        self.why = ""
        self.written: list[tuple[Any, str]] = []  # (field object, property path)

    def add(self, props: list[str], why: str) -> None:
        self.props += props
        self.why = self.why or why


class HeaderTooLongError(ValueError):
    """A header field that cannot be written in lines of at most 998 characters."""


_FOLD_TOKEN = re.compile(r"[ \t]*[^ \t]+")


def fold_header(name: str, value: str) -> str:
    """The header field ``name: value`` folded for writing (RFC 5322 §2.1.1, §2.2.3).

    An ASCII value is folded at its whitespace (kept as it is), so that lines are at
    most 78 characters where its words allow: msg-ids, URLs, dates and addresses keep
    their form.  A value with other characters is written as ``email.policy.SMTP``
    writes it: RFC 2047 encoded-words for text and display names, folded at 78.  A
    line break in ``value`` counts as a space (no header injection).  Lines are joined
    by CRLF; there is none at the end.  Raises ``HeaderTooLongError`` when a line
    would still exceed 998 characters (a word that long).

    The one folding of the header fields dualmail writes: Email/set create, vacation
    replies and submissions.
    """
    value = re.sub(r"\r\n|\r|\n", " ", re.sub(r"\r?\n(?=[ \t])", "", value))
    if value.isascii():
        tokens = _FOLD_TOKEN.findall(value)  # each word with the whitespace before it
        lines: list[str] = []
        line = name + ":" + (" " + tokens[0].lstrip(" \t") if tokens else "")
        for token in tokens[1:]:
            if len(line) + len(token) > FOLD_LENGTH:  # fold: CRLF before the whitespace
                lines.append(line)
                line = token
            else:
                line += token
        lines.append(line)
        text = "\r\n".join(lines)
    else:
        text = _POLICY.header_factory(name, value).fold(policy=_POLICY).rstrip("\r\n")
    _check_line_length(text)
    return text


def _check_line_length(text: str) -> None:
    for line in text.split("\n"):
        if len(line.rstrip("\r").encode("utf-8", "replace")) > MAX_LINE_LENGTH:
            raise HeaderTooLongError(f"a header line would be longer than {MAX_LINE_LENGTH} characters "
                                     "(RFC 5322 §2.1.1)")


def folded_field(name: str, value: str) -> RawField:
    """``fold_header(name, value)`` as a field for an ``email.message`` part."""
    return RawField(name, fold_header(name, value)[len(name) + 1 :])


class RawField:
    """A header field written exactly as given (``Raw`` form): the generator
    calls ``fold`` on anything with a ``name``."""

    def __init__(self, name: str, value: str):
        self.name = name
        self.value = value

    def fold(self, *, policy: Any) -> str:
        value = self.value.replace("\r\n", "\n").replace("\n", "\r\n")
        return f"{self.name}:{value}\r\n"

    def __str__(self) -> str:
        return self.value


# -- header values (RFC 8621 §4.1.2 forms, the other way round) -------------------------


def _address(value: Any, prop: str) -> Address:
    if not isinstance(value, dict) or not isinstance(value.get("email"), str) or not (
            value.get("name") is None or isinstance(value.get("name"), str)) or set(value) - {"name", "email"}:
        raise _Invalid(prop, "an EmailAddress is {name: String|null, email: String}")
    addr = value["email"].strip()
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    try:
        return Address(display_name=value.get("name") or "", username=local, domain=domain)
    except (ValueError, TypeError, IndexError) as e:
        raise _Invalid(prop, f"bad address {addr!r}: {e}") from None


def _folded(name: str, value: str, prop: str) -> RawField:
    try:
        return folded_field(name, value)
    except HeaderTooLongError as e:
        raise _Invalid(prop, str(e)) from None


def header_field(name: str, form: str, value: Any, prop: str) -> Any:
    """A header field object for ``value`` in ``form``; None: leave the field out."""
    if value is None:
        return None
    if form == "Raw":
        if not isinstance(value, str) or re.search(r"\r?\n(?![ \t])|\r(?!\n)", value):
            raise _Invalid(prop, "a Raw value is a String whose line breaks are folds")
        return RawField(name, value)
    if form == "Text":
        if not isinstance(value, str):
            raise _Invalid(prop, "a Text value is a String")
        return _TextField(name, " ".join(value.splitlines()))
    if form == "Addresses":
        if not isinstance(value, list):
            raise _Invalid(prop, "an Addresses value is an EmailAddress[]")
        return _AddressField(name, [_address(v, prop) for v in value])
    if form == "GroupedAddresses":
        if not isinstance(value, list):
            raise _Invalid(prop, "a GroupedAddresses value is an EmailAddressGroup[]")
        groups: list[Address | Group] = []
        for g in value:
            if not isinstance(g, dict) or not isinstance(g.get("addresses"), list):
                raise _Invalid(prop, "an EmailAddressGroup is {name: String|null, addresses: EmailAddress[]}")
            addresses = [_address(v, prop) for v in g["addresses"]]
            if g.get("name") is None:
                groups.extend(addresses)
            elif isinstance(g["name"], str):
                groups.append(Group(g["name"], addresses))
            else:
                raise _Invalid(prop, "a group name is a String or null")
        return _AddressField(name, groups)
    if form == "MessageIds":
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) and v and not re.search(r"[\s<>]", v) for v in value):
            raise _Invalid(prop, "a MessageIds value is a non-empty String[] of ids without <> or spaces")
        return _folded(name, " ".join(f"<{v}>" for v in value), prop)
    if form == "Date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise _Invalid(prop, "a Date value is an RFC 3339 date-time")
        try:
            when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _Invalid(prop, "not a valid date") from None
        return _folded(name, email.utils.format_datetime(when), prop)
    if form == "URLs":
        if not isinstance(value, list) or not all(isinstance(v, str) and v and not re.search(r"[\s<>]", v)
                                                  for v in value):
            raise _Invalid(prop, "a URLs value is a String[] of URLs")
        return _folded(name, ", ".join(f"<{v}>" for v in value), prop)
    raise _Invalid(prop, f"unknown form {form!r}")


def _fields(obj: Mapping[str, Any], where: str, conflicts: _Conflicts, *,
            part: bool) -> list[tuple[str, Any, str]]:
    """(field name, field object, property path) for the header properties of an
    Email (``part`` False) or of the EmailBodyPart at ``where``.  Fields in conflict
    are left out and every property in a conflict is added to ``conflicts``: two
    properties for one field, a once-only field given twice, a message field on a
    body part, a field the part's properties write."""
    def path(prop: str) -> str:
        return f"{where}/{prop}" if part else prop

    specs: list[tuple[str, str, Any, str]] = []
    if not part:
        for prop, (field, form) in CONVENIENCE.items():
            if prop in obj:
                value = obj[prop]
                if prop == "sentAt" and value is not None:
                    form = "Date"
                specs.append((field, form, value, prop))
    for prop, value in obj.items():
        if not prop.startswith("header:"):
            continue
        hp = parse_header_prop(prop)
        if hp is None:
            raise _Invalid(path(prop), f"invalid header property {prop!r}")
        if hp.all:
            if value is not None and not isinstance(value, list):
                raise _Invalid(path(prop), f"{prop} takes a list of values")
            for v in value or []:
                specs.append((hp.name, hp.form, v, prop))
            if not value:
                specs.append((hp.name, hp.form, None, prop))
        else:
            specs.append((hp.name, hp.form, value, prop))
    by_field: dict[str, dict[str, int]] = {}  # field -> property -> values given
    for field, _form, value, prop in specs:
        counts = by_field.setdefault(field.lower(), {})
        counts[prop] = counts.get(prop, 0) + (value is not None)
    bad: set[str] = set()
    for key, counts in by_field.items():
        props = list(counts)
        problem = ""
        if len(props) > 1:
            problem = f"{' and '.join(props)} set the same field ({key})"
        elif key in _ONCE and sum(counts.values()) > 1:
            problem = f"{key} may be given only once"
        elif not part and key.startswith("content-"):
            problem = f"{key} may only be given on a body part"
        elif not part and key == "mime-version":
            problem = "MIME-Version is written by the server"
        elif part and key in _MESSAGE_ONLY:
            problem = f"{key} is a field of the message header: give it on the Email"
        elif part and key in ("content-type", "content-transfer-encoding"):
            problem = f"{key} is written from the part's type and charset"
        clash = [p for p in _PART_FIELDS.get(key, ()) if p in obj] if part else []
        if clash and not problem:
            problem = f"{props[0]} and {clash[0]} both set {key}"
        if problem:
            conflicts.add([path(p) for p in props + clash], problem)
            bad.add(key)
    out = []
    for field, form, value, prop in specs:
        if field.lower() in bad:
            continue
        made = header_field(field, form, value, path(prop))
        if made is not None:
            out.append((field, made, path(prop)))
            conflicts.written.append((made, path(prop)))
    return out


# -- the body ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, body_values: Mapping[str, Any], resolve_blob: Callable[[str], bytes | None],
                 conflicts: _Conflicts):
        self.values = body_values
        self.conflicts = conflicts
        self.resolve_blob = resolve_blob
        self.missing: list[str] = []
        self.count = 0
        self.blob_bytes = 0
        self.fields: dict[int, list[tuple[str, str]]] = {}  # id(part) -> (field, path) given

    def part(self, spec: Any, where: str, depth: int = 0, default_type: str | None = None) -> MIMEPart:
        if not isinstance(spec, dict):
            raise _Invalid(where, "an EmailBodyPart must be an object")
        self.count += 1
        if self.count > MAX_PARTS or depth > MAX_DEPTH:
            raise _Invalid(where, "too many or too deeply nested body parts")
        unknown = [k for k in spec if k not in BODY_PART_PROPERTIES and not k.startswith("header:")]
        unknown += ["headers"] if "headers" in spec else []
        if unknown:
            raise _Invalid([f"{where}/{k}" for k in unknown],
                           f"EmailBodyPart property {unknown[0]!r} cannot be set")
        ptype = spec.get("type")
        if ptype is not None and (not isinstance(ptype, str) or not _TYPE.match(ptype)):
            raise _Invalid(f"{where}/type", f"bad type {ptype!r}")
        part_id, blob_id, subparts = spec.get("partId"), spec.get("blobId"), spec.get("subParts")
        if sum(x is not None for x in (part_id, blob_id, subparts)) != 1:
            raise _Invalid([f"{where}/{k}" for k in ("partId", "blobId", "subParts") if spec.get(k) is not None]
                           or [where], "a body part needs exactly one of partId, blobId or subParts")
        ptype = (ptype or default_type or ("multipart/mixed" if subparts is not None else
                                           "text/plain" if part_id is not None else
                                           "application/octet-stream")).lower()
        maintype, subtype = ptype.split("/", 1)
        node = MIMEPart(policy=_POLICY)
        if subparts is not None:
            if maintype != "multipart" or not isinstance(subparts, list):
                raise _Invalid(f"{where}/subParts", "subParts need a multipart/* type and a list")
            if spec.get("charset") is not None:
                raise _Invalid(f"{where}/charset", "a multipart has no charset")
            node["Content-Type"] = ptype
            node.set_payload([self.part(s, f"{where}/subParts/{i}", depth + 1) for i, s in enumerate(subparts)])
        elif part_id is not None:
            if maintype == "multipart":
                raise _Invalid(f"{where}/type", "a multipart needs subParts")
            given = [k for k in ("charset", "size") if spec.get(k) is not None]
            if given:
                raise _Invalid([f"{where}/{k}" for k in given], "charset and size must be omitted with a partId")
            value = self.values.get(part_id) if isinstance(part_id, str) else None
            if value is None:
                raise _Invalid(f"{where}/partId", f"partId {part_id!r} is not in bodyValues")
            text = value["value"]
            if maintype == "text":
                _text_content(node, ptype, text)
            else:
                node.set_content(text.encode("utf-8"), maintype, subtype)
        else:
            if maintype == "multipart":
                raise _Invalid(f"{where}/type", "a multipart needs subParts")
            if not isinstance(blob_id, str):
                raise _Invalid(f"{where}/blobId", "blobId must be a String")
            data = self.resolve_blob(blob_id)
            if data is None:
                self.missing.append(blob_id)
                data = b""
            self.blob_bytes += len(data)
            if maintype == "message":
                node.set_content(data, maintype, subtype, cte="8bit" if not data.isascii() else "7bit")
            else:
                node.set_content(data, maintype, subtype)
            charset = spec.get("charset")
            if charset is not None:
                if not isinstance(charset, str) or not charset.isascii() or not charset:
                    raise _Invalid(f"{where}/charset", "charset must be an ASCII String")
                node.set_param("charset", charset)
        self._content_fields(node, spec, where)
        return node

    def _content_fields(self, node: MIMEPart, spec: Mapping[str, Any], where: str) -> None:
        name, disposition = spec.get("name"), spec.get("disposition")
        if name is not None and not isinstance(name, str):
            raise _Invalid(f"{where}/name", "name must be a String")
        if disposition is not None and (not isinstance(disposition, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+",
                                                                                            disposition)):
            raise _Invalid(f"{where}/disposition", "disposition must be a token")
        if name and node.get_content_maintype() != "multipart":
            node.set_param("name", name)
        if disposition is not None or name:
            del node["Content-Disposition"]
            params = {"filename": name} if name else {}
            node.add_header("Content-Disposition", (disposition or "attachment").lower(), **params)
        cid = spec.get("cid")
        if cid is not None:
            if not isinstance(cid, str) or not cid or re.search(r"[\s<>]", cid):
                raise _Invalid(f"{where}/cid", "cid must be a String without <> or spaces")
            node["Content-ID"] = f"<{cid}>"
        language = spec.get("language")
        if language is not None:
            if not isinstance(language, list) or not all(isinstance(t, str) and re.fullmatch(r"[A-Za-z0-9-]+", t)
                                                         for t in language):
                raise _Invalid(f"{where}/language", "language must be a String[] of language tags")
            if language:
                node["Content-Language"] = ", ".join(language)
        location = spec.get("location")
        if location is not None:
            if not isinstance(location, str) or re.search(r"\s", location):
                raise _Invalid(f"{where}/location", "location must be a URI")
            node["Content-Location"] = location
        self.fields[id(node)] = [(hp.name.lower(), f"{where}/{k}") for k in spec if k.startswith("header:")
                                 if (hp := parse_header_prop(k)) is not None]
        for field, made, _prop in _fields(spec, where, self.conflicts, part=True):
            node[field] = made


def _text_content(node: MIMEPart, ptype: str, text: str) -> None:
    """A text part holding exactly ``text`` (LF as CRLF, no line end added,
    so the bodyValue reads back unchanged): 7bit when it can be, else
    quoted-printable UTF-8."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if data.isascii() and all(len(line) <= 998 for line in data.split("\r\n")):
        cte, payload = "7bit", data
    else:
        cte, payload = "quoted-printable", body_encode(data.encode("utf-8").decode("latin-1"), 76, "\r\n")
    node["Content-Type"] = ptype
    node.set_param("charset", "utf-8")
    node["Content-Transfer-Encoding"] = cte
    node.set_payload(payload)


def _multipart(subtype: str, children: list[MIMEPart]) -> MIMEPart:
    node = MIMEPart(policy=_POLICY)
    node["Content-Type"] = "multipart/" + subtype
    node.set_payload(children)  # type: ignore[arg-type]
    return node


def _check_body_values(values: Any) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise _Invalid("bodyValues", "bodyValues must be an object")
    for part_id, v in values.items():
        if not isinstance(v, dict) or not isinstance(v.get("value"), str) or set(v) - {
                "value", "isEncodingProblem", "isTruncated"}:
            raise _Invalid(f"bodyValues/{part_id}", f"bodyValues/{part_id} must be an EmailBodyValue")
        if v.get("isEncodingProblem") or v.get("isTruncated"):
            raise _Invalid(f"bodyValues/{part_id}", "isEncodingProblem and isTruncated must be false")
    return values


def _body(obj: Mapping[str, Any], builder: _Builder) -> MIMEPart:
    lists = [k for k in ("textBody", "htmlBody", "attachments") if k in obj]
    if "bodyStructure" in obj:
        if lists:
            raise _Invalid("bodyStructure", "bodyStructure excludes textBody, htmlBody and attachments")
        return builder.part(obj["bodyStructure"], "bodyStructure")
    parts: dict[str, MIMEPart | None] = {"textBody": None, "htmlBody": None}
    for prop, wanted in (("textBody", "text/plain"), ("htmlBody", "text/html")):
        value = obj.get(prop)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict) or (
                value[0].get("type") or wanted).lower() != wanted:
            raise _Invalid(prop, f"{prop} must hold exactly one {wanted} part")
        parts[prop] = builder.part(value[0], f"{prop}/0", default_type=wanted)
    attachments = obj.get("attachments") or []
    if not isinstance(attachments, list):
        raise _Invalid("attachments", "attachments must be an EmailBodyPart[]")
    inline: list[MIMEPart] = []
    other: list[MIMEPart] = []
    for i, spec in enumerate(attachments):
        node = builder.part(spec, f"attachments/{i}")
        is_inline = isinstance(spec, dict) and spec.get("cid") and (spec.get("disposition") or "").lower() == "inline"
        (inline if is_inline and parts["htmlBody"] is not None else other).append(node)
    text, html = parts["textBody"], parts["htmlBody"]
    if html is not None and inline:
        html = _multipart("related", [html, *inline])
    if text is not None and html is not None:
        body: MIMEPart | None = _multipart("alternative", [text, html])
    else:
        body = text or html
    if other:
        return _multipart("mixed", ([body] if body is not None else []) + other)
    if body is None:
        body = MIMEPart(policy=_POLICY)
        _text_content(body, "text/plain", "")
    return body


def build_message(obj: Mapping[str, Any], *, resolve_blob: Callable[[str], bytes | None], now: float,
                  domain: str, max_blob_bytes: int | None = None) -> bytes:
    """The raw message for an Email/set create object (RFC 8621 §4.6);
    ``max_blob_bytes``: the most octets of blobs (attachments) it may hold
    (maxSizeAttachmentsPerEmail), else SetError ``tooLarge``."""
    try:
        conflicts = _Conflicts()
        top = _fields(obj, "", conflicts, part=False)
        builder = _Builder(_check_body_values(obj.get("bodyValues")), resolve_blob, conflicts)
        root = _body(obj, builder)
        # The root part's fields are the message's: none may be set on the Email too
        # (RFC 8621 §4.6, said of bodyStructure; a lone textBody part is the root too).
        on_top = {field.lower(): prop for field, _made, prop in top}
        for field, prop in builder.fields.get(id(root), []):
            if field in on_top:
                conflicts.add([on_top[field], prop], f"{on_top[field]} and {prop} set the same field ({field})")
        if conflicts.props:
            raise _Invalid(conflicts.props, conflicts.why)
        # RFC 6532 UTF-8 header fields only for what cannot be written in ASCII: an
        # address, or a Raw value (written as given).
        utf8 = any(not a.addr_spec.isascii() for made, _p in conflicts.written
                   if isinstance(made, AddressHeader) for a in made.addresses) or any(
                       isinstance(made, RawField) and not made.value.isascii() for made, _p in conflicts.written)
        policy = _POLICY_UTF8 if utf8 else _POLICY
        for made, prop in conflicts.written:
            try:
                _check_line_length(made.fold(policy=policy))
            except HeaderTooLongError as e:
                raise _Invalid(prop, str(e)) from None
            except Exception as e:  # the generator refusing some odd value
                raise _Invalid(prop, f"cannot write {prop}: {e}") from None
    except _Invalid as e:
        raise SetError("invalidProperties", e.why, properties=e.props or ["headers"]) from None
    if builder.missing:
        raise SetError("blobNotFound", "blobs not found: " + ", ".join(builder.missing),
                       notFound=list(dict.fromkeys(builder.missing)))
    if max_blob_bytes is not None and builder.blob_bytes > max_blob_bytes:
        raise SetError("tooLarge", f"attachments exceed {max_blob_bytes} octets (maxSizeAttachmentsPerEmail)")
    names = {field.lower() for field, _made, _prop in top}
    if "date" not in names:
        when = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        top.append(("Date", folded_field("Date", email.utils.format_datetime(when)), ""))
    if "message-id" not in names:
        top.append(("Message-ID", folded_field("Message-ID", f"<{uuid.uuid4().hex}@{domain}>"), ""))
    rank = {name.lower(): i for i, name in enumerate(_TOP_ORDER)}
    top.sort(key=lambda f: rank.get(f[0].lower(), len(rank)))
    content = list(root.items())
    for name in {k for k, _v in content}:
        del root[name]
    for field, made, _prop in top:
        root[field] = made
    root["MIME-Version"] = "1.0"
    for name, value in content:
        root[name] = value
    try:
        return root.as_bytes(policy=policy)
    except Exception as e:  # the generator refusing some odd value
        raise SetError("invalidProperties", f"cannot generate the message: {e}", properties=["headers"]) from None
