"""The JMAP Email data type (RFC 8621 §4): /get /changes /query
/queryChanges /set /copy over the store's email records.

An Email is one stored message (CONTRACT §2): ``mailboxIds`` are its
memberships that are not IMAP ``\\Deleted`` (an Email with none is not
visible: ``notFound``, not counted, not found by /query); ``keywords`` are the
one flag set its IMAP memberships share, so a keyword change here is an IMAP
FLAGS change there. Removing a mailbox from ``mailboxIds`` is an IMAP expunge
in it, adding one gives a new UID; destroy expunges every membership.

- /get renders properties with ``email_props`` (metadata-only gets read the
  record alone, the message blob only for header and body properties);
- /query and /queryChanges run the one search engine (``dualmail.search``);
- /set create builds the message with ``email_build``; one /set is one store
  transaction (``standard.set_``).

/queryChanges re-runs the query and reports every Email changed since the old
state as removed and, if it still matches, added at its new index (RFC 8620
§5.6 allows the extra removals). When the result of one Email depends on
others of its Thread (``collapseThreads``, the ``*InThreadHaveKeyword``
filters and sorts), every Email of a touched Thread counts as changed.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...mime.jmap_listing import encode as encode_listing, from_summary
from ...mime.parse import summarize
from ...model import errors, ids, keywords as kwmod
from ...model.dates import parse_utc_date
from ...search import JMAP, from_jmap_filter, from_jmap_sort
from ...search import query as run_query
from ...search import query_page
from ...search.query import And, Cond, FilterError, Not, Or, SortKey, ThreadKeyword
from ...store.store import Store
from ...store.txn import CannotCalculateChangesError, MailTxn, jmap_mailbox_ids, visible
from ..dispatch import CallContext
from ..errors import CannotCalculateChanges, MethodError, SetError
from ..standard import GetResult, Query, QueryChanges, QueryResult
from .base import ChangesFromLog, StoreType, account_number, set_error
from .email_blobs import resolve_blob
from .email_build import build_message
from .email_props import (
    BODY_ARGUMENTS,
    DEFAULT_GET,
    FROM_SUMMARY,
    METADATA,
    PROPERTIES,
    EmailProperties,
    body_options,
    check_properties,
    metadata,
    needs_raw,
    needs_summary,
    render,
    utc_date,
)
from .mailbox import MAIL

FILTER_CONDITIONS = frozenset({
    "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize", "allInThreadHaveKeyword",
    "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasKeyword", "notKeyword", "hasAttachment", "text",
    "from", "to", "cc", "bcc", "subject", "body", "header",
})
#: RFC 8621 §4.4.2; advertised as emailQuerySortOptions.
SORT_OPTIONS = ("receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword", "allInThreadHaveKeyword",
                "someInThreadHaveKeyword")
_THREAD_SORTS = frozenset({"allInThreadHaveKeyword", "someInThreadHaveKeyword"})
#: Properties Email/copy may set (RFC 8621 §4.7).
COPY_PROPERTIES = frozenset({"mailboxIds", "keywords", "receivedAt"})


def check_keywords(value: Any, prop: str = "keywords") -> list[str]:
    if not isinstance(value, dict):
        raise SetError("invalidProperties", f"{prop} must be a String[Boolean]", properties=[prop])
    for k, v in value.items():
        if v is not True or not kwmod.is_valid_keyword(k):
            raise SetError("invalidProperties", f"invalid keyword {k!r} (values must be true)", properties=[prop])
    return sorted({k.lower() for k in value})


def check_mailboxes(view: Any, value: Any, prop: str = "mailboxIds") -> list[int]:
    """The store numbers of a mailboxIds value (at least one, all existing)."""
    if not isinstance(value, dict) or not value:
        raise SetError("invalidProperties", f"{prop} must name at least one Mailbox", properties=[prop])
    out = []
    for wire_id, v in value.items():
        n = ids.parse_id(ids.MAILBOX, wire_id)
        if v is not True or n is None or view.mailbox(n) is None:
            raise SetError("invalidProperties", f"no Mailbox {wire_id!r} (values must be true)", properties=[prop])
        out.append(n)
    return sorted(set(out))


def created_props(tx: Any, e: int) -> dict[str, Any]:
    """RFC 8621 §4.6: a created Email reports id, blobId, threadId and size."""
    rec = tx.require_email(e)
    return {
        "id": ids.format_id(ids.EMAIL, e),
        "blobId": ids.blob_id(str(rec["blob"])),
        "threadId": ids.format_id(ids.THREAD, int(rec["thread"])),
        "size": int(rec["size"]),
    }


def compile_query(q: Query) -> tuple[Cond, list[SortKey], bool]:
    """The engine's condition, sort keys and collapseThreads of an Email/query."""
    collapse = q.extra.get("collapseThreads", False)
    if collapse is None:
        collapse = False
    if not isinstance(collapse, bool):
        raise MethodError("invalidArguments", "argument 'collapseThreads' must be a Boolean")
    comparators = []
    for c in q.sort:
        item: dict[str, Any] = {"property": c.property, "isAscending": c.is_ascending, **c.extra}
        if c.collation is not None:
            item["collation"] = c.collation
        comparators.append(item)
    try:
        cond = from_jmap_filter(q.filter)
        keys = from_jmap_sort(comparators)
    except FilterError as e:
        raise MethodError(e.jmap_type, str(e)) from None
    if not keys:
        keys = [SortKey("received", reverse=True)]  # newest first when the client gives no sort
    return cond, keys, collapse


#: Properties an Email/get can answer from the Email record and the listing record.
LISTING = METADATA | FROM_SUMMARY


def _create_email(tx: Any, raw: bytes, mailboxes: list[int], keywords: Any, received: int) -> tuple[int, Any]:
    """A new Email from ``raw`` with every stored form APPEND and LMTP give it, the JMAP
    listing record (table jmapw) included, so listings of it take the fast path."""
    summary = summarize(raw)
    return tx.create_email(raw, summary, mailboxes, keywords, received, encoded=encode_listing(summary))


class _Listing:
    """Renders Emails for a listing (``LISTING`` properties only): the Email record for
    the §4.1.1 metadata, the JMAP listing record (``mime.jmap_listing``, one small JSON
    value written at ingest) for the rest -- the same values ``email_props.render``
    gives from the summary, which is read only for an Email stored without that record.
    Thread and mailbox ids are formatted once per request."""

    def __init__(self, view: Any, properties: frozenset[str]) -> None:
        self.view = view
        self.derived = [p for p in sorted(properties) if p in FROM_SUMMARY]
        self.meta = properties & METADATA
        self.threads: dict[int, str] = {}
        self.mailboxes: dict[int, str] = {}

    def from_summary(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """The derived properties from a summary, as a listing record holds them."""
        return {p: from_summary(p, summary) for p in self.derived}

    def __call__(self, e: int, rec: Mapping[str, Any],
                 got: dict[str, Any] | None = None) -> dict[str, Any]:
        """``got``: the Email's listing record if already read (else read here)."""
        out: dict[str, Any] = {}
        if self.derived:
            if got is None:
                got = self.view.jmap_listing(e)
            if got is None:  # stored without a listing record
                summary = self.view.summary(e) or {}
                out = {p: from_summary(p, summary) for p in self.derived}
            else:
                out = {p: got[p] for p in self.derived}
        meta = self.meta
        out["id"] = ids.format_id(ids.EMAIL, e)
        if "threadId" in meta:
            t = int(rec["thread"])
            tid = self.threads.get(t)
            if tid is None:
                tid = self.threads[t] = ids.format_id(ids.THREAD, t)
            out["threadId"] = tid
        if "mailboxIds" in meta:
            boxes = {}
            for m in sorted(int(k) for k, v in rec["mbx"].items() if not v[1]):  # jmap_mailbox_ids
                mid = self.mailboxes.get(m)
                if mid is None:
                    mid = self.mailboxes[m] = ids.format_id(ids.MAILBOX, m)
                boxes[mid] = True
            out["mailboxIds"] = boxes
        if "keywords" in meta:
            out["keywords"] = dict.fromkeys(rec["kw"], True)
        if "size" in meta:
            out["size"] = int(rec["size"])
        if "receivedAt" in meta:
            out["receivedAt"] = utc_date(int(rec["recv"]))
        if "blobId" in meta:
            out["blobId"] = ids.blob_id(str(rec["blob"]))
        return out


def _thread_dependent(cond: Cond) -> bool:
    if isinstance(cond, (And, Or)):
        return any(_thread_dependent(c) for c in cond.conds)
    if isinstance(cond, Not):
        return _thread_dependent(cond.cond)
    return isinstance(cond, ThreadKeyword)


class EmailType(ChangesFromLog, StoreType):
    name = "Email"
    capability = MAIL
    id_prefix = ids.EMAIL
    properties = EmailProperties(PROPERTIES)
    default_properties = DEFAULT_GET
    server_set = frozenset({"id", "blobId", "threadId", "size", "hasAttachment", "preview", "headers"})
    id_properties = frozenset({"mailboxIds"})
    get_arguments = BODY_ARGUMENTS
    query_arguments = {"collapseThreads": False}
    filter_conditions = FILTER_CONDITIONS
    sort_properties = frozenset(SORT_OPTIONS)
    comparator_arguments = frozenset({"keyword"})

    def __init__(self, store: Store, now: Callable[[], float] = time.time, *, sanitize_html: bool = True) -> None:
        super().__init__(store)
        self.now = now
        self.sanitize_html = sanitize_html  # RFC 8621 §9.1; off with --no-html-sanitize

    # -- /get --

    def render(self, view: Any, e: int, rec: Mapping[str, Any], props: Iterable[str], opts: Any,
               summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Email's properties; ``summary``: its summary if already read (else read
        here when ``props`` need it)."""
        props = list(props)
        if summary is None and needs_summary(props):
            summary = view.summary(e)
        meta = metadata(e, rec, jmap_mailbox_ids(dict(rec)))
        raw = (lambda: view.blob(rec["blob"]) or b"") if needs_raw(props) else None
        return render(props, meta=meta, summary=summary, raw=raw, blob_id=meta["blobId"], opts=opts)

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        check_properties(properties)
        opts = body_options(extra, self.sanitize_html)
        records = []
        with self.store.read(account_number(account_id)) as r:
            if wanted is None:
                numbers: list[int] = []
                for e in r.received_order(None):
                    numbers.append(e)
                    if len(numbers) > ctx.limits.max_objects_in_get:
                        break
            else:
                numbers = [n for n in (self.number(w) for w in wanted) if n is not None]
            # records, then listing records or summaries, each in one batched read (one
            # round trip on PostgreSQL)
            found = [(e, rec) for e, rec in zip(numbers, r.emails(numbers))
                     if rec is not None and visible(rec)]
            if properties <= LISTING:  # a listing: records only, never the MIME summary
                render_listing = _Listing(r, properties)
                listed: list[Any] = (r.jmap_listings([e for e, _rec in found]) if render_listing.derived
                                     else [None] * len(found))
                if render_listing.derived:  # Emails stored without a listing record: their
                    # summaries, in one batched read too (never one read per Email)
                    bare = [i for i, got in enumerate(listed) if got is None]
                    for i, summary in zip(bare, r.summaries([found[i][0] for i in bare])):
                        listed[i] = render_listing.from_summary(summary or {})
                for (e, rec), got in zip(found, listed):
                    records.append(render_listing(e, rec, got))
                return GetResult(records, r.state("Email"), exact=True)
            summaries = (r.summaries([e for e, _rec in found]) if needs_summary(list(properties))
                         else [None] * len(found))
            for (e, rec), summary in zip(found, summaries):
                records.append(self.render(r, e, rec, properties, opts, summary))
            return GetResult(records, r.state("Email"))

    # -- /set --

    def lookup(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> dict[str, Any] | None:
        n = self.number(wire_id)
        rec = tx.email(n) if n is not None else None
        if rec is None or not visible(rec):
            return None
        meta = metadata(n, rec, jmap_mailbox_ids(rec))  # type: ignore[arg-type]
        return {"id": meta["id"], "keywords": meta["keywords"], "mailboxIds": meta["mailboxIds"]}

    def _domain(self, tx: MailTxn) -> str:
        record = self.store.account_record(tx.a) or {}
        address = str(record.get("address") or "")
        return address.rpartition("@")[2] or "dualmail.invalid"

    def create(self, ctx: CallContext, tx: MailTxn, obj: dict[str, Any]) -> dict[str, Any]:
        if "mailboxIds" not in obj:
            raise SetError("invalidProperties", "mailboxIds is required", properties=["mailboxIds"])
        mailboxes = check_mailboxes(tx, obj["mailboxIds"])
        keywords = check_keywords(obj.get("keywords") or {})
        received = int(self.now())
        if obj.get("receivedAt") is not None:
            parsed = parse_utc_date(obj["receivedAt"])
            if parsed is None:
                raise SetError("invalidProperties", "receivedAt must be a UTCDate", properties=["receivedAt"])
            received = parsed
        message = {k: v for k, v in obj.items() if k not in METADATA}
        raw = build_message(message, resolve_blob=lambda b: resolve_blob(tx, b), now=self.now(),
                            domain=self._domain(tx), max_blob_bytes=ctx.limits.max_size_upload)
        try:
            e, _uids = _create_email(tx, raw, mailboxes, keywords, received)
        except errors.DomainError as err:
            raise set_error(err) from None
        return created_props(tx, e)

    def update(self, ctx: CallContext, tx: MailTxn, wire_id: str, current: dict[str, Any],
               patched: dict[str, Any]) -> dict[str, Any] | None:
        bad = sorted(k for k in patched if k not in ("id", "keywords", "mailboxIds"))
        if bad:
            raise SetError("invalidProperties", "only keywords and mailboxIds can change", properties=bad)
        e = self.number(wire_id)
        assert e is not None  # lookup() found it
        keywords = check_keywords(patched.get("keywords", {}))
        wanted = check_mailboxes(tx, patched.get("mailboxIds"))
        rec = tx.require_email(e)
        try:
            if keywords != rec["kw"]:
                tx.set_keywords(e, keywords)
            have = set(jmap_mailbox_ids(rec))
            for m in wanted:
                if m in have:
                    continue
                if str(m) in rec["mbx"]:  # a hidden IMAP \Deleted membership: expunge it first
                    tx.remove_membership(e, m)
                tx.add_membership(e, m)
                rec = tx.require_email(e)
            for m in sorted(have - set(wanted)):
                tx.remove_membership(e, m)
        except errors.DomainError as err:
            raise set_error(err) from None
        return None

    def destroy(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> None:
        e = self.number(wire_id)
        rec = tx.email(e) if e is not None else None
        if rec is None or e is None or not visible(rec):
            raise SetError("notFound", f"no Email {wire_id!r}")
        tx.destroy_email(e)

    # -- /copy (RFC 8621 §4.7) --

    def read_for_copy(self, ctx: CallContext, from_account_id: str,
                      wanted: list[str]) -> tuple[dict[str, Any], int]:
        found: dict[str, Any] = {}
        with self.store.read(account_number(from_account_id)) as r:
            for wire_id in wanted:
                e = self.number(wire_id)
                rec = r.email(e) if e is not None else None
                if rec is None or e is None or not visible(rec):
                    continue
                raw = r.blob(rec["blob"])
                if raw is not None:
                    found[wire_id] = {"raw": raw, "kw": list(rec["kw"]), "recv": int(rec["recv"]),
                                      "summary": r.summary(e)}
            return found, r.state("Email")

    def copy(self, ctx: CallContext, tx: MailTxn, from_account_id: str, original: dict[str, Any],
             overrides: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(overrides) - COPY_PROPERTIES)
        if bad:
            raise SetError("invalidProperties", "only mailboxIds, keywords and receivedAt can be set",
                           properties=bad)
        mailboxes = check_mailboxes(tx, overrides.get("mailboxIds"))
        keywords = check_keywords(overrides["keywords"]) if "keywords" in overrides else original["kw"]
        received = original["recv"]
        if overrides.get("receivedAt") is not None:
            parsed = parse_utc_date(overrides["receivedAt"])
            if parsed is None:
                raise SetError("invalidProperties", "receivedAt must be a UTCDate", properties=["receivedAt"])
            received = parsed
        raw = original["raw"]
        try:
            e, _uids = _create_email(tx, raw, mailboxes, keywords, received)
        except errors.DomainError as err:
            raise set_error(err) from None
        return created_props(tx, e)

    # -- /query --

    def query(self, ctx: CallContext, account_id: str, q: Query) -> QueryResult:
        cond, keys, collapse = compile_query(q)
        with self.store.read(account_number(account_id)) as r:
            # only the window's leading ids (limit_hint) and, if asked, the total
            page = query_page(r, JMAP, cond, keys, collapse=collapse, limit_hint=q.limit_hint,
                              need_total=q.need_total)
            state = r.state("Email")
        return QueryResult([self.wire(e) for e in page.items], state, can_calculate_changes=True,
                           total=page.total)

    def query_changes(self, ctx: CallContext, account_id: str, q: Query, since: int,
                      up_to_id: str | None, max_changes: int | None) -> QueryChanges:
        cond, keys, collapse = compile_query(q)
        by_thread = collapse or _thread_dependent(cond) or any(k.name in _THREAD_SORTS for k in keys)
        with self.store.read(account_number(account_id)) as r:
            items = run_query(r, JMAP, cond, keys, collapse=collapse)
            state = r.state("Email")
            found = [self.wire(e) for e in items]
            if since == state:
                return QueryChanges([], [], state, len(found))
            try:
                ch = r.changes("Email", since)
                threads = r.changes("Thread", since) if by_thread else None
            except CannotCalculateChangesError as err:
                raise CannotCalculateChanges(err.message) from None
            changed = set(ch.created) | set(ch.updated) | set(ch.destroyed)
            if threads is not None:
                touched = set(threads.created) | set(threads.updated) | set(threads.destroyed)
                for e in ch.created + ch.updated:
                    rec = r.email(e)
                    if rec is not None:
                        touched.add(int(rec["thread"]))
                for t in touched:
                    th = r.thread(t)
                    if th is not None:
                        changed.update(int(x[1]) for x in th["emails"])
        removed = [self.wire(e) for e in sorted(changed)]
        changed_wire = set(removed)
        added = [(i, index) for index, i in enumerate(found) if i in changed_wire]
        return QueryChanges(removed, added, state, len(found))
