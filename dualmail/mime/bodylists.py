"""RFC 8621 §4.1.4 textBody / htmlBody / attachments, and hasAttachment.

One job: decompose a structure tree (see ``structure.py``) into the three
JMAP part lists.  ``body_lists`` is a line-by-line translation of the
``parseStructure`` pseudo-code of RFC 8621 §4.1.4, including its JavaScript
semantics: ``textBody = null`` in one call only affects that call (and the
calls it makes), not the caller's list.  It does not descend into
message/rfc822 parts (they are attachments).

``has_attachment`` rule (RFC 8621 §4.1.4 "hasAttachment" SHOULD/MAY):
true iff some part in ``attachments`` neither has ``Content-Disposition:
inline`` nor is an embedded resource, i.e. a non-first child of a
multipart/related that has a Content-ID (referenced from the HTML).

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["body_lists", "has_attachment", "mime_type"]

Node = dict[str, Any]


def mime_type(node: Node) -> str:
    return f"{node['type']}/{node['subtype']}"


def _disposition(node: Node) -> str | None:
    disp = node.get("disposition")
    return disp[0] if disp else None


def _is_inline_media(t: str) -> bool:
    return t.startswith("image/") or t.startswith("audio/") or t.startswith("video/")


def _parse_structure(
    parts: list[Node],
    multipart_type: str,
    in_alternative: bool,
    html_body: Optional[list[Node]],
    text_body: Optional[list[Node]],
    attachments: list[Node],
) -> None:
    # For multipartType == alternative
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        ptype = mime_type(part)
        is_multipart = ptype.startswith("multipart/")
        # Is this a body part rather than an attachment
        is_inline = (
            _disposition(part) != "attachment"
            # Must be one of the allowed body types
            and (ptype == "text/plain" or ptype == "text/html" or _is_inline_media(ptype))
            # If multipart/related, only the first part can be inline
            # If a text part with a filename, and not the first item
            # in the multipart, assume it is an attachment
            and (i == 0 or (multipart_type != "related" and (_is_inline_media(ptype) or not part.get("name"))))
        )
        if is_multipart:
            sub_multi_type = part["subtype"]
            _parse_structure(
                part.get("parts") or [],
                sub_multi_type,
                in_alternative or sub_multi_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                if ptype == "text/plain":
                    if text_body is not None:
                        text_body.append(part)
                elif ptype == "text/html":
                    if html_body is not None:
                        html_body.append(part)
                else:
                    attachments.append(part)
                continue
            elif in_alternative:
                if ptype == "text/plain":
                    html_body = None
                if ptype == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _is_inline_media(ptype):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found HTML part only
        if text_length == len(text_body) and html_length != len(html_body):
            for j in range(html_length, len(html_body)):
                text_body.append(html_body[j])
        # Found plaintext part only
        if html_length == len(html_body) and text_length != len(text_body):
            for j in range(text_length, len(text_body)):
                html_body.append(text_body[j])


def body_lists(structure: Node) -> tuple[list[Node], list[Node], list[Node]]:
    """(textBody, htmlBody, attachments) as lists of structure nodes."""
    html_body: list[Node] = []
    text_body: list[Node] = []
    attachments: list[Node] = []
    _parse_structure([structure], "mixed", False, html_body, text_body, attachments)
    return text_body, html_body, attachments


def _embedded_resources(structure: Node) -> set[int]:
    """ids of non-first children with a Content-ID of any multipart/related."""
    found: set[int] = set()
    stack = [structure]
    while stack:
        node = stack.pop()
        kids = node.get("parts") or []
        if node["type"] == "multipart" and node["subtype"] == "related":
            found.update(id(k) for k in kids[1:] if k.get("cid"))
        stack.extend(kids)
    return found


def has_attachment(structure: Node, attachments: list[Node]) -> bool:
    if not attachments:
        return False
    embedded = _embedded_resources(structure)
    return any(_disposition(a) != "inline" and id(a) not in embedded for a in attachments)
