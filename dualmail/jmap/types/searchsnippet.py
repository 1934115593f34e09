"""SearchSnippet/get (RFC 8621 §5): the subject and a piece of the body with
the filter's search terms wrapped in ``<mark></mark>``, the rest HTML-escaped.

The terms are the values of the filter's ``text``, ``subject`` (subject only)
and ``body`` (preview only) conditions that are not under a NOT, split into
terms as Email/query does (``search.query.jmap_text_terms``: quoted phrases
stay whole). Matching is the search engine's: case-insensitive by
``search.collate.fold``, a substring of the decoded text, so what Email/query
matched is what gets marked. The preview comes from the body text stored at
ingest (decoded, HTML converted to text), never from re-parsing the message,
and is at most 255 octets with its markup.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import html
import unicodedata
from typing import Any

from ...model import ids
from ...search import from_jmap_filter
from ...search.query import FilterError, jmap_text_terms
from ...store.store import Store
from ...store.txn import visible
from ..args import ArgReader
from ..dispatch import CallContext, Method, Responses
from ..errors import MethodError
from .base import account_number
from .mailbox import MAIL

MAX_PREVIEW_OCTETS = 255
_CONTEXT_BEFORE = 40  # characters of body shown before the first match


def filter_terms(node: Any, negated: bool = False) -> tuple[list[str], list[str]]:
    """(subject terms, body terms) of a (validated) Email/query filter."""
    subject: list[str] = []
    body: list[str] = []
    if not isinstance(node, dict):
        return subject, body
    if "operator" in node:
        neg = negated or node["operator"] == "NOT"
        for child in node.get("conditions") or []:
            s, b = filter_terms(child, neg)
            subject += s
            body += b
        return subject, body
    if negated:
        return subject, body
    for key in ("text", "subject", "body"):
        value = node.get(key)
        if isinstance(value, str):
            terms = [t for t in jmap_text_terms(value) if t.strip()]
            if key in ("text", "subject"):
                subject += terms
            if key in ("text", "body"):
                body += terms
    return subject, body


def _fold_map(text: str) -> tuple[str, list[int]]:
    """``text`` folded as ``search.collate.fold`` does, with, for each folded
    character, the index of the original character it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if out and out[-1] == " ":
                continue
            folded = " "
        elif ch.isascii():
            folded = ch.lower()
        else:
            folded = unicodedata.normalize("NFKD", ch.casefold())
        for f in folded:
            out.append(f)
            where.append(i)
    return "".join(out), where


def _fold(s: str) -> str:
    return _fold_map(s)[0]


def find_matches(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) spans of ``text`` matching any term."""
    folded, where = _fold_map(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        q = _fold(term).strip()
        if not q:
            continue
        start = folded.find(q)
        while start >= 0:
            end = start + len(q)
            spans.append((where[start], where[end - 1] + 1))
            start = folded.find(q, end)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def highlight(text: str, spans: list[tuple[int, int]], start: int = 0, end: int | None = None) -> str:
    end = len(text) if end is None else end
    out: list[str] = []
    pos = start
    for s, e in spans:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        out.append(html.escape(text[pos:s], quote=False))
        out.append("<mark>" + html.escape(text[s:e], quote=False) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end], quote=False))
    return "".join(out)


def preview_snippet(body: str, terms: list[str]) -> str | None:
    spans = find_matches(body, terms)
    if not spans:
        return None
    start = max(0, spans[0][0] - _CONTEXT_BEFORE)
    # begin at a word boundary
    if start > 0:
        space = body.find(" ", start, spans[0][0])
        if space >= 0:
            start = space + 1
    end = min(len(body), start + MAX_PREVIEW_OCTETS)
    while True:
        text = highlight(body, spans, start, end)
        text = " ".join(text.split())
        if len(text.encode("utf-8")) <= MAX_PREVIEW_OCTETS or end <= start:
            return text
        end -= max(1, (len(text.encode("utf-8")) - MAX_PREVIEW_OCTETS) // 4)
        # never end inside a match
        for s, e in spans:
            if s < end < e:
                end = s


def search_snippet_get(store: Store, ctx: CallContext, args: dict[str, Any]) -> Responses:
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    filter_ = r.any("filter", None, nullable=True)
    email_ids = r.id_list("emailIds", refs=True)
    r.finish()
    try:
        from_jmap_filter(filter_)
    except FilterError as err:
        raise MethodError(err.jmap_type, str(err)) from None
    if len(email_ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"maxObjectsInGet is {ctx.limits.max_objects_in_get}")
    subject_terms, body_terms = filter_terms(filter_)
    found: list[dict[str, Any]] = []
    not_found: list[str] = []
    with store.read(account_number(account_id)) as view:
        for given in dict.fromkeys(email_ids):
            wire = ctx.resolve_creation_id(given) or given
            e = ids.parse_id(ids.EMAIL, wire)
            rec = view.email(e) if e is not None else None
            if rec is None or e is None or not visible(rec):
                not_found.append(given)
                continue
            subject = None
            if subject_terms:
                summary = view.summary(e) or {}
                text = summary.get("subject") or ""
                spans = find_matches(text, subject_terms)
                subject = highlight(text, spans) if spans else None
            preview = preview_snippet(view.text(e)[1], body_terms) if body_terms else None
            found.append({"emailId": wire, "subject": subject, "preview": preview})
    return [("SearchSnippet/get", {"accountId": account_id, "list": found, "notFound": not_found or None})]


def snippet_methods(store: Store) -> dict[str, Method]:
    return {"SearchSnippet/get": Method(MAIL, lambda ctx, args: search_snippet_get(store, ctx, args))}
