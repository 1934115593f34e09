"""The JMAP EmailSubmission data type (RFC 8621 §7): /get /changes /query
/queryChanges /set, with the implicit Email/set of ``onSuccessUpdateEmail``
and ``onSuccessDestroyEmail`` (§7.5).

A submission is a record of the store's ``object`` table (kind
EmailSubmission); creating one checks the message and the sender (§7.5
SetErrors, the sending limits of RFC 8621 §9) and, in the same transaction,
queues the bytes for the smarthost (``store/outbox.py``): the stored Email
stays byte-exact, the copy sent has a ``Received:`` field naming the
authenticated user and the HTTP client's address and no Bcc. The queue runner
(``dualmail.submission.relay``) updates ``deliveryStatus`` as the smarthost
answers. There is no delayed send (``maxDelayedSend`` 0): ``undoStatus`` is
``final`` from the start, so setting it to ``canceled`` is ``cannotUnsend``.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from twisted.logger import Logger

from ...model import ids
from ...store import outbox
from ...store.store import Store
from ...store.txn import MailTxn, visible
from ...submission import limits as send_limits
from ...submission.config import SubmissionConfig
from ...submission.message import (
    InvalidEmailError,
    check_originator,
    delivery_status,
    derive_envelope,
    outgoing_bytes,
    received_field,
    valid_mailbox,
)
from ..args import is_id
from ..dispatch import CallContext, Method, Responses
from ..errors import MethodError, SetError
from ..standard import GetResult, Query, QueryChanges, QueryResult, filter_conditions_in, match_filter, set_
from .base import ChangesFromLog, StoreType, account_number, recomputed_query_changes
from .email import parse_utc_date
from .email_props import utc_date
from .identity import SUBMISSION, IdentityType

KIND = "EmailSubmission"
_STORED = ("identityId", "emailId", "threadId", "envelope", "sendAt", "undoStatus", "deliveryStatus",
           "dsnBlobIds", "mdnBlobIds")


class EmailSubmissionType(ChangesFromLog, StoreType):
    name = KIND
    capability = SUBMISSION
    id_prefix = ids.SUBMISSION
    properties = frozenset({"id", *_STORED})
    server_set = frozenset({"id", "threadId", "sendAt", "deliveryStatus", "dsnBlobIds", "mdnBlobIds"})
    id_properties = frozenset({"identityId", "emailId"})
    filter_conditions = frozenset({"identityIds", "emailIds", "threadIds", "undoStatus", "before", "after"})
    sort_properties = frozenset({"emailId", "threadId", "sentAt", "sendAt"})
    set_arguments = {"onSuccessUpdateEmail": None, "onSuccessDestroyEmail": None}
    log = Logger()

    def __init__(self, store: Store, now: Callable[[], float], config: SubmissionConfig | None = None) -> None:
        super().__init__(store)
        self.now = now
        self.config = config or SubmissionConfig()
        self.identities = IdentityType(store)
        # emailId of each submission touched by the /set being run (onSuccess*)
        self._emails: dict[str, str] = {}

    def to_jmap(self, n: int, rec: Mapping[str, Any]) -> dict[str, Any]:
        obj = {k: rec.get(k) for k in _STORED}
        obj["id"] = self.wire(n)
        return obj

    # -- /get, /changes --

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        with self.store.read(account_number(account_id)) as r:
            if wanted is None:
                records = [self.to_jmap(n, rec) for n, rec in r.objects(KIND)]
            else:
                records = []
                for wire_id in wanted:
                    n = self.number(wire_id)
                    rec = r.get_object(KIND, n) if n is not None else None
                    if rec is not None and n is not None:
                        records.append(self.to_jmap(n, rec))
            return GetResult(records, r.state(KIND))

    # -- /query, /queryChanges (in memory over the account's submissions) --

    def _run_query(self, r: Any, q: Query) -> list[str]:
        _check_filter(q.filter)
        found = [self.to_jmap(n, rec) for n, rec in r.objects(KIND)]
        selected = [o for o in found if match_filter(q.filter, functools.partial(_matches, o))]

        def key(o: Mapping[str, Any]) -> list[Any]:
            return [o["sendAt"] if c.property in ("sentAt", "sendAt") else o[c.property] for c in q.sort]

        def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
            for c, x, y in zip(q.sort, key(a), key(b)):
                if x != y:
                    return (-1 if x < y else 1) * (1 if c.is_ascending else -1)
            return (self.number(a["id"]) or 0) - (self.number(b["id"]) or 0)

        selected.sort(key=functools.cmp_to_key(compare))
        return [o["id"] for o in selected]

    def query(self, ctx: CallContext, account_id: str, q: Query) -> QueryResult:
        with self.store.read(account_number(account_id)) as r:
            return QueryResult(self._run_query(r, q), r.state(KIND), can_calculate_changes=True)

    def query_changes(self, ctx: CallContext, account_id: str, q: Query, since: int,
                      up_to_id: str | None, max_changes: int | None) -> QueryChanges:
        """RFC 8620 §5.6: every submission changed since ``since`` is removed
        and, if it matches now, added at its index (the extra removals are
        allowed)."""
        with self.store.read(account_number(account_id)) as r:
            return recomputed_query_changes(r, KIND, self.wire, self._run_query(r, q), since)

    # -- /set --

    @contextmanager
    def write(self, ctx: CallContext, account_id: str) -> Iterator[MailTxn]:
        self.identities.ensure_default(account_number(account_id))
        with super().write(ctx, account_id) as tx:
            yield tx

    def lookup(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> dict[str, Any] | None:
        n = self.number(wire_id)
        rec = tx.get_object(KIND, n) if n is not None else None
        return None if rec is None or n is None else self.to_jmap(n, rec)

    def create(self, ctx: CallContext, tx: MailTxn, obj: dict[str, Any]) -> dict[str, Any]:
        """Check everything first (a SetError writes nothing), then store the
        submission and queue the message in this transaction."""
        limits = self.config.limits
        bad = [p for p in ("identityId", "emailId") if not is_id(obj.get(p))]
        envelope = obj.get("envelope")
        if envelope is not None and not _valid_envelope(envelope):
            bad.append("envelope")
        if obj.get("undoStatus", "final") != "final":
            bad.append("undoStatus")  # no delayed send: nothing can start "pending"
        if bad:
            raise SetError("invalidProperties", "invalid " + ", ".join(bad), properties=bad)
        identity_n = ids.parse_id(ids.IDENTITY, obj["identityId"])
        identity = tx.get_object("Identity", identity_n) if identity_n is not None else None
        if identity is None:
            raise SetError("invalidProperties", f"no Identity {obj['identityId']!r}", properties=["identityId"])
        e = ids.parse_id(ids.EMAIL, obj["emailId"])
        rec = tx.email(e) if e is not None else None
        if rec is None or e is None or not visible(rec):
            raise SetError("invalidProperties", f"no Email {obj['emailId']!r}", properties=["emailId"])
        if self.config.smarthost is None:
            raise SetError("forbiddenToSend", "this server has no smarthost configured for sending mail")
        if int(rec["size"]) > limits.max_size:
            raise SetError("tooLarge", f"the message is larger than {limits.max_size} octets",
                           maxSize=limits.max_size)
        raw = tx.raw_message(e)
        if raw is None:
            raise SetError("invalidEmail", "the message content is missing", properties=["blobId"])
        owned = _owned_addresses(tx)
        try:
            froms = check_originator(raw)
            if envelope is None:
                envelope = derive_envelope(raw, str(identity["email"]))
        except InvalidEmailError as err:
            raise SetError("invalidEmail", str(err), properties=err.properties) from None
        foreign = [a for a in froms if a.lower() not in owned]
        if foreign:
            raise SetError("forbiddenFrom", f"this account may not send as {foreign[0]!r}")
        mail_from = envelope["mailFrom"]["email"]
        if mail_from.lower() not in owned:
            raise SetError("forbiddenMailFrom", f"this account may not use {mail_from!r} as the envelope sender")
        if not valid_mailbox(mail_from):  # e.g. a UTF-8 address: no SMTPUTF8 towards the smarthost
            raise SetError("forbiddenMailFrom", f"{mail_from!r} cannot be used as an SMTP envelope sender")
        rcpts = _dedupe([r["email"] for r in envelope["rcptTo"]])
        if not rcpts:
            raise SetError("noRecipients", "the envelope has no recipients")
        invalid = [a for a in rcpts if not valid_mailbox(a)]
        if invalid:
            raise SetError("invalidRecipients", "not addresses this server can send to: " + ", ".join(invalid),
                           invalidRecipients=invalid)
        if len(rcpts) > limits.max_recipients:
            raise SetError("tooManyRecipients", f"at most {limits.max_recipients} recipients per message",
                           maxRecipients=limits.max_recipients)
        now = int(self.now())
        refusal = send_limits.refusal(tx, limits, len(rcpts), now)
        if refusal is not None:
            raise SetError("forbiddenToSend", refusal)
        record = {
            "identityId": obj["identityId"],
            "emailId": obj["emailId"],
            "threadId": ids.format_id(ids.THREAD, int(rec["thread"])),
            "envelope": envelope,
            "sendAt": utc_date(now),
            "undoStatus": "final",
            "deliveryStatus": delivery_status({"email": a, "state": "queued"} for a in rcpts),
            "dsnBlobIds": [],
            "mdnBlobIds": [],
        }
        n = tx.create_object(KIND, record)
        login = str(tx.account()["address"])
        trace = received_field(login=login, client=ctx.client, hostname=self.config.hostname,
                               submission_id=self.wire(n), now=now)
        q = outbox.enqueue(tx, {
            "kind": "submission", "sub": n, "from": mail_from,
            "rcpt": [{"email": a, "state": "queued", "reply": ""} for a in rcpts],
            "login": login, "client": ctx.client,
        }, outgoing_bytes(raw, trace), now)
        self.log.info("submission {id} of {login} queued as {q} for {n} recipients", id=self.wire(n), login=login,
                      q=q, n=len(rcpts))
        self._emails[self.wire(n)] = obj["emailId"]
        created = self.to_jmap(n, record)
        return {k: v for k, v in created.items() if k not in obj or k == "id"}

    def update(self, ctx: CallContext, tx: MailTxn, wire_id: str, current: dict[str, Any],
               patched: dict[str, Any]) -> dict[str, Any] | None:
        changed = sorted(k for k in patched if patched[k] != current.get(k))
        if changed == ["undoStatus"] and patched["undoStatus"] == "canceled":
            raise SetError("cannotUnsend", "the message has already been relayed (no delayed send)")
        if changed:
            raise SetError("invalidProperties", "immutable: " + ", ".join(changed), properties=changed)
        self._emails[wire_id] = current["emailId"]
        return None

    def destroy(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> None:
        """Removes the record only; the delivery goes on (RFC 8621 §7.5)."""
        n = self.number(wire_id)
        rec = tx.get_object(KIND, n) if n is not None else None
        if rec is None or n is None:
            raise SetError("notFound", f"no EmailSubmission {wire_id!r}")
        tx.delete_object(KIND, n)
        self._emails[wire_id] = rec["emailId"]

    # -- EmailSubmission/set with its implicit Email/set --

    def set_with_email_changes(self, ctx: CallContext, args: dict[str, Any]) -> Any:
        update_email = args.get("onSuccessUpdateEmail")
        destroy_email = args.get("onSuccessDestroyEmail")
        if update_email is not None and (not isinstance(update_email, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in update_email.items())):
            raise MethodError("invalidArguments", "argument 'onSuccessUpdateEmail' must be an Id[PatchObject]")
        if destroy_email is not None and (not isinstance(destroy_email, list) or not all(
                isinstance(k, str) for k in destroy_email)):
            raise MethodError("invalidArguments", "argument 'onSuccessDestroyEmail' must be an Id[]")
        self._emails = {}
        try:
            responses = list(set_(self, ctx, args))
            touched = dict(self._emails)
        finally:
            self._emails = {}
        if not update_email and not destroy_email:
            return responses
        result = responses[0][1]
        succeeded = set(result.get("updated") or {}) | set(result.get("destroyed") or [])
        succeeded |= {v["id"] for v in (result.get("created") or {}).values()}

        def email_of(key: str) -> str | None:
            real = ctx.resolve_creation_id(key) if key.startswith("#") else key
            return touched.get(real) if real in succeeded else None

        update: dict[str, Any] = {}
        for key, patch in (update_email or {}).items():
            email_id = email_of(key)
            if email_id is not None:
                update[email_id] = patch
        destroy = list(dict.fromkeys(e for e in (email_of(k) for k in destroy_email or []) if e is not None))
        destroy_set = set(destroy)
        update = {k: v for k, v in update.items() if k not in destroy_set}
        if not update and not destroy:
            return responses
        email_args = {"accountId": result["accountId"], "update": update or None, "destroy": destroy or None}
        try:
            more = ctx.call("Email/set", email_args)
        except MethodError as e:
            return responses + [("error", e.to_json())]
        if inspect.isawaitable(more):
            return _then(more, responses)
        return responses + list(more)


async def _then(more: Any, responses: list[Any]) -> Responses:
    try:
        tail = await more
    except MethodError as e:
        return responses + [("error", e.to_json())]
    return responses + list(tail)


def submission_methods(store: Store, now: Callable[[], float],
                       config: SubmissionConfig | None = None) -> dict[str, Method]:
    """EmailSubmission/{get,changes,query,queryChanges,set}."""
    from ..standard import standard_methods

    datatype = EmailSubmissionType(store, now, config)
    methods = standard_methods(datatype)
    methods[f"{KIND}/set"] = Method(SUBMISSION, datatype.set_with_email_changes)
    return methods


# -- helpers ---------------------------------------------------------------------


def _owned_addresses(tx: MailTxn) -> set[str]:
    """What the account may send as: its address and its Identities' emails."""
    owned = {str(tx.account()["address"]).lower()}
    owned.update(str(rec.get("email", "")).lower() for _n, rec in tx.objects("Identity"))
    return owned


def _dedupe(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for a in addresses:
        if a.lower() not in seen:
            seen.add(a.lower())
            out.append(a)
    return out


def _valid_address_object(value: Any) -> bool:
    """RFC 8621 §7 ``Address``; parameters must be null or empty: dualmail
    passes no SMTP extensions (``submissionExtensions`` is empty)."""
    return isinstance(value, dict) and set(value) <= {"email", "parameters"} \
        and isinstance(value.get("email"), str) and value.get("parameters") in (None, {})


def _valid_envelope(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"mailFrom", "rcptTo"} \
        and _valid_address_object(value["mailFrom"]) and isinstance(value["rcptTo"], list) \
        and all(_valid_address_object(r) for r in value["rcptTo"])


def _check_filter(node: Mapping[str, Any] | None) -> None:
    """Value types of the FilterConditions (RFC 8621 §7.3)."""
    for cond in filter_conditions_in(node):
        for key in ("identityIds", "emailIds", "threadIds"):
            if key in cond and (not isinstance(cond[key], list) or not all(isinstance(v, str) for v in cond[key])):
                raise MethodError("invalidArguments", f"filter {key!r} must be an Id[]")
        if "undoStatus" in cond and not isinstance(cond["undoStatus"], str):
            raise MethodError("invalidArguments", "filter 'undoStatus' must be a String")
        for key in ("before", "after"):
            if key in cond and parse_utc_date(cond[key]) is None:
                raise MethodError("invalidArguments", f"filter {key!r} must be a UTCDate")


def _matches(obj: Mapping[str, Any], cond: Mapping[str, Any]) -> bool:
    for key, prop in (("identityIds", "identityId"), ("emailIds", "emailId"), ("threadIds", "threadId")):
        if key in cond and obj[prop] not in cond[key]:
            return False
    if "undoStatus" in cond and obj["undoStatus"] != cond["undoStatus"]:
        return False
    sent = parse_utc_date(obj["sendAt"]) or 0
    if "before" in cond and not sent < (parse_utc_date(cond["before"]) or 0):
        return False
    if "after" in cond and not sent >= (parse_utc_date(cond["after"]) or 0):
        return False
    return True


__all__ = ["EmailSubmissionType", "submission_methods"]
