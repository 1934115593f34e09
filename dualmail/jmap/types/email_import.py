"""Email/import (RFC 8621 §4.8) and Email/parse (§4.9).

Import: each EmailImport names a blob (an upload, a stored message, or a body
part such as an attached message/rfc822, see ``email_blobs``), its
``mailboxIds``, ``keywords`` and ``receivedAt`` (default: the date of the
newest Received field, else now). Blobs are read and parsed before the one
write transaction that stores every import; each import succeeds or fails
on its own (SetError ``invalidProperties`` -- also for a blobId that does
not exist, as §4.8 says -- or ``invalidEmail``). Duplicates are allowed: an import always makes a new
Email (like IMAP APPEND, CONTRACT §2).

A blob is taken as a message when it starts with a header block (at least
one header field); otherwise import answers ``invalidEmail`` and parse lists
it in ``notParsable``.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...mime.headers import parse_date, split_header_block, unfold
from ...mime.jmap_listing import encode
from ...mime.parse import summarize
from ...model import errors
from ...store.store import Store
from ...store.txn import EncodedSummary
from ..args import ArgReader, is_id
from ..dispatch import CallContext, Method, Responses
from ..errors import MethodError, SetError
from ..state import to_state
from .base import account_number, set_error
from .email import check_keywords, check_mailboxes, created_props, parse_utc_date
from .email_blobs import resolve_blob, stored_sha
from .email_props import BODY_ARGUMENTS, DEFAULT_PARSE, PROPERTIES, body_options, check_properties, render
from .mailbox import MAIL


def is_message(summary: dict[str, Any]) -> bool:
    return bool(summary.get("header_names"))


def received_date(raw: bytes) -> int | None:
    """The date of the topmost (newest) Received field (RFC 5321 §4.4), if any."""
    block = split_header_block(raw, 0, len(raw))
    for f in block.fields:
        if f.name.lower() == "received":
            text = unfold(f.value)
            if ";" in text:
                parsed = parse_date(text.rsplit(";", 1)[1].strip())
                return parsed[0] if parsed else None
            return None
    return None


@dataclass(slots=True)
class _ImportPlan:
    """An Email/import call read, its blobs resolved and parsed (no transaction yet)."""

    account_id: str
    account: int
    if_in_state: str | None
    # creation id -> (EmailImport, bytes, summary, its stored forms, stored blob sha)
    ready: dict[str, tuple[dict[str, Any], bytes, dict[str, Any], EncodedSummary | None, str | None]]
    not_created: dict[str, Any]


def _read_import(ctx: CallContext, args: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"), write=True)
    if_in_state = r.string("ifInState", None, nullable=True)
    emails = r.object("emails")
    r.finish()
    for cid in emails:
        if not is_id(cid):
            raise MethodError("invalidArguments", f"argument 'emails': {cid!r} is not a valid creation id")
    if len(emails) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"maxObjectsInSet is {ctx.limits.max_objects_in_set}")
    return account_id, if_in_state, emails


def _prepare_import(store: Store, account_id: str, if_in_state: str | None, emails: dict[str, Any]) -> _ImportPlan:
    """Read and parse every blob, outside the write transaction (no ``ctx``: this may run
    on a worker thread)."""
    a = account_number(account_id)
    not_created: dict[str, Any] = {}
    ready: dict[str, tuple[dict[str, Any], bytes, dict[str, Any], EncodedSummary | None, str | None]] = {}
    with store.read(a) as view:
        for cid, obj in emails.items():
            try:
                if not isinstance(obj, dict):
                    raise SetError("invalidProperties", "an EmailImport must be an object")
                unknown = sorted(set(obj) - {"blobId", "mailboxIds", "keywords", "receivedAt"})
                if unknown:
                    raise SetError("invalidProperties", "unknown properties", properties=unknown)
                blob_id = obj.get("blobId")
                if not isinstance(blob_id, str):
                    raise SetError("invalidProperties", "blobId is required", properties=["blobId"])
                raw = resolve_blob(view, blob_id)
                if raw is None:  # §4.8: an unknown blobId is invalidProperties here
                    raise SetError("invalidProperties", f"no blob {blob_id!r}", properties=["blobId"])
                ready[cid] = (obj, raw, {}, None, stored_sha(blob_id))
            except SetError as err:
                not_created[cid] = err.to_json()
    for cid, (obj, raw, _s, _e, sha) in list(ready.items()):
        summary = summarize(raw)
        if not is_message(summary):
            not_created[cid] = SetError("invalidEmail", "the blob is not a message").to_json()
            del ready[cid]
        else:  # with the JMAP listing record (jmapw), as APPEND and LMTP store it
            ready[cid] = (obj, raw, summary, encode(summary, raw), sha)
    return _ImportPlan(account_id, a, if_in_state, ready, not_created)


@dataclass(slots=True)
class _ImportOutcome:
    old_state: int
    created: dict[str, Any]
    not_created: dict[str, Any]
    tx: Any  # the transaction it ran in: its state is read once it committed

    @property
    def new_state(self) -> int:
        """The transaction's modseq if it changed an Email (this call's, or in a group
        commit another call's of the same account: one modseq, CONTRACT §4), else the
        state the call started from."""
        return self.tx.modseq if "Email" in self.tx.changed_kinds else self.old_state


def _apply_import(plan: _ImportPlan, now: Callable[[], float], tx: Any) -> _ImportOutcome:
    """Store the parsed imports in ``tx``; may run again (a group commit's re-run), so it
    starts from fresh results every time."""
    old_state = tx.state("Email")
    if plan.if_in_state is not None and plan.if_in_state != to_state(old_state):
        raise MethodError("stateMismatch", f"state is {to_state(old_state)}, not {plan.if_in_state}")
    created: dict[str, Any] = {}
    not_created = dict(plan.not_created)
    for cid, (obj, raw, summary, enc, sha) in plan.ready.items():
        try:
            if "mailboxIds" not in obj:
                raise SetError("invalidProperties", "mailboxIds is required", properties=["mailboxIds"])
            mailboxes = check_mailboxes(tx, obj["mailboxIds"])
            keywords = check_keywords(obj.get("keywords") or {})
            received = received_date(raw) or int(now())
            if obj.get("receivedAt") is not None:
                parsed = parse_utc_date(obj["receivedAt"])
                if parsed is None:
                    raise SetError("invalidProperties", "receivedAt must be a UTCDate",
                                   properties=["receivedAt"])
                received = parsed
            try:
                email, _uids = tx.create_email(raw, summary, mailboxes, keywords, received, blob_sha=sha,
                                                encoded=enc)
            except errors.DomainError as domain_error:
                raise set_error(domain_error) from None
            created[cid] = created_props(tx, email)
        except SetError as err:
            not_created[cid] = err.to_json()
    return _ImportOutcome(old_state, created, not_created, tx)


def _import_response(ctx: CallContext, plan: _ImportPlan, out: _ImportOutcome) -> Responses:
    ctx.created_ids.update({cid: props["id"] for cid, props in out.created.items()})
    return [("Email/import", {
        "accountId": plan.account_id,
        "oldState": to_state(out.old_state),
        "newState": to_state(out.new_state),
        "created": out.created or None,
        "notCreated": out.not_created or None,
    })]


def email_import(store: Store, now: Callable[[], float], ctx: CallContext, args: dict[str, Any]) -> Responses:
    """Email/import in one write transaction, on the calling thread."""
    plan = _prepare_import(store, *_read_import(ctx, args))
    with store.write(plan.account) as tx:
        out = _apply_import(plan, now, tx)
    return _import_response(ctx, plan, out)


async def email_import_grouped(store: Store, now: Callable[[], float], ctx: CallContext, args: dict[str, Any], *,
                               run_blocking: Callable[..., Awaitable[Any]],
                               run_write: Callable[[str, Callable[[Any], Any]], Awaitable[Any]]) -> Responses:
    """Email/import with the blob reads and MIME parsing on a worker thread
    (``run_blocking``) and the write in the store's group commit (``run_write``, as
    ``standard.set_grouped``); with ``ifInState`` the write keeps a transaction of its
    own (on the reactor, as ``email_import``)."""
    account_id, if_in_state, emails = _read_import(ctx, args)
    plan = await run_blocking(_prepare_import, store, account_id, if_in_state, emails)

    def apply(tx: Any) -> _ImportOutcome:
        return _apply_import(plan, now, tx)

    if if_in_state is not None:  # its state check must see the state it changes from
        with store.write(plan.account) as tx:
            out = apply(tx)
    else:
        out = await run_write(account_id, apply)
    return _import_response(ctx, plan, out)


def email_parse(store: Store, ctx: CallContext, args: dict[str, Any], sanitize_html: bool = True) -> Responses:
    r = ArgReader(args)
    account_id = ctx.account(r.id("accountId"))
    blob_ids = r.id_list("blobIds")
    properties = r.string_list("properties", None, nullable=True)
    extra = {name: r.any(name, default, nullable=True) for name, default in BODY_ARGUMENTS.items()}
    r.finish()
    opts = body_options(extra, sanitize_html)
    if properties is None:
        props = sorted(DEFAULT_PARSE)
    else:
        unknown = [p for p in properties if p not in PROPERTIES and not p.startswith("header:")]
        if unknown:
            raise MethodError("invalidArguments", f"argument 'properties': unknown property {unknown[0]!r}")
        check_properties(properties)
        props = list(dict.fromkeys(properties))
    if len(blob_ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"maxObjectsInGet is {ctx.limits.max_objects_in_get}")
    parsed: dict[str, Any] = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    with store.read(account_number(account_id)) as view:
        blobs = {b: resolve_blob(view, b) for b in dict.fromkeys(blob_ids)}
    for blob_id, raw in blobs.items():
        if raw is None:
            not_found.append(blob_id)
            continue
        summary = summarize(raw)
        if not is_message(summary):
            not_parsable.append(blob_id)
            continue
        meta = {"blobId": blob_id, "size": len(raw)}
        parsed[blob_id] = render(props, meta=meta, summary=summary, raw=_constant(raw), blob_id=blob_id,
                                 opts=opts)
    return [("Email/parse", {
        "accountId": account_id,
        "parsed": parsed or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    })]


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def email_methods(store: Store, now: Callable[[], float], *, sanitize_html: bool = True) -> dict[str, Method]:
    return {
        "Email/import": Method(MAIL, lambda ctx, args: email_import(store, now, ctx, args)),
        "Email/parse": Method(MAIL, lambda ctx, args: email_parse(store, ctx, args, sanitize_html)),
    }
