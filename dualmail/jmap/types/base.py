"""What every store-backed JMAP data type shares: the account-id bridge, the
one write transaction per /set, state and /changes from the store's change
log, and THE table mapping domain errors (``model/errors.py``) to SetErrors.

A data type subclasses ``StoreType`` and adds its own properties and hooks
(see ``dualmail.jmap.standard`` for the hook protocol). Hooks are
synchronous: one short LMDB transaction on the reactor thread.

Must not import twisted.internet or klein; talks to the store only through
``Store.read``/``Store.write`` and their views.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...model import errors, ids
from ...store.store import Store
from ...store.txn import CannotCalculateChangesError, MailTxn
from ..dispatch import CallContext
from ..errors import CannotCalculateChanges, MethodError, SetError
from ..standard import Changes, QueryChanges
from ..state import StatePosition

# The one table: domain error -> (SetError type, the property it concerns or None).
# Types with better knowledge validate first and raise their own SetError; this
# is the mapping for whatever the store still refuses.
SET_ERRORS: dict[type[errors.DomainError], tuple[str, str | None]] = {
    errors.NotFoundError: ("notFound", None),
    errors.AlreadyExistsError: ("invalidProperties", "name"),
    errors.InvalidNameError: ("invalidProperties", "name"),
    errors.CycleError: ("invalidProperties", "parentId"),
    errors.RoleError: ("invalidProperties", "role"),
    errors.HasChildrenError: ("mailboxHasChild", None),
    errors.HasEmailError: ("mailboxHasEmail", None),
    errors.CannotError: ("forbidden", None),
    errors.LimitError: ("overQuota", None),
    errors.InvalidKeywordError: ("invalidProperties", "keywords"),
}


def set_error(error: errors.DomainError) -> SetError:
    """The SetError for a domain error (``SET_ERRORS``); unknown ones are
    ``forbidden`` with the error's message."""
    for cls in type(error).__mro__:
        if cls in SET_ERRORS:
            kind, prop = SET_ERRORS[cls]
            return SetError(kind, error.message, properties=[prop] if prop else None)
    return SetError("forbidden", error.message)


def account_number(account_id: str) -> int:
    """The store's account number of a (checked) JMAP accountId."""
    n = ids.parse_id(ids.ACCOUNT, account_id)
    if n is None:  # ctx.account() has already accepted it, so this is a bug
        raise MethodError("accountNotFound", f"no account {account_id!r}")
    return n


def account_id(n: int) -> str:
    return ids.format_id(ids.ACCOUNT, n)


class StoreType:
    """Shared hooks; subclasses set ``name``, ``capability``, ``properties``,
    ``server_set`` and add get/create/update/destroy/query."""

    name = ""
    capability = ""
    id_prefix = ""

    def __init__(self, store: Store) -> None:
        self.store = store
        # the type's state when each open /set transaction began
        self._started: weakref.WeakKeyDictionary[MailTxn, int] = weakref.WeakKeyDictionary()

    # -- ids --

    def wire(self, n: int) -> str:
        return ids.format_id(self.id_prefix, n)

    def number(self, wire_id: object) -> int | None:
        return ids.parse_id(self.id_prefix, wire_id)

    # -- /set transaction --

    @contextmanager
    def write(self, ctx: CallContext, account_id: str) -> Iterator[MailTxn]:
        with self.store.write(account_number(account_id)) as tx:
            yield tx

    def state(self, ctx: CallContext, tx: MailTxn) -> int:
        state = tx.state(self.name)
        self._started[tx] = state
        return state

    def committed_state(self, ctx: CallContext, tx: MailTxn) -> int:
        """The type's state after the commit: this transaction's modseq if it
        changed an object of the type, else the state it started from (never
        re-read, so a later commit by someone else is not claimed)."""
        return self.state_after(tx, self._started.pop(tx))

    def state_after(self, tx: MailTxn, started: int) -> int:
        """The type's state once ``tx`` committed, given its state when ``tx`` began."""
        if self.name in tx.changed_kinds:
            return tx.modseq
        return started


class ChangesFromLog:
    """/changes from the store's change log, for types that have it (not
    VacationResponse: RFC 8621 §8 defines no /changes)."""

    name: str
    store: Store
    wire: Any

    def changes_since(self, ctx: CallContext, account_id: str, since: StatePosition, limit: int) -> Changes:
        with self.store.read(account_number(account_id)) as r:
            try:
                ch = r.changes(self.name, since.modseq, limit, after=since.offset)
            except CannotCalculateChangesError as e:
                raise CannotCalculateChanges(e.message) from None
        return Changes(
            [self.wire(n) for n in ch.created],
            [self.wire(n) for n in ch.updated],
            [self.wire(n) for n in ch.destroyed],
            StatePosition(ch.new_state, ch.new_after),
            ch.has_more,
            self.changes_extra(ch),
        )

    def changes_extra(self, ch: Any) -> dict[str, Any]:
        """Type-specific response arguments of /changes (Mailbox: updatedProperties)."""
        return {}


def recomputed_query_changes(r: Any, kind: str, wire: Any, found: list[str], since: int) -> QueryChanges:
    """/queryChanges (RFC 8620 §5.6) for a type whose query is re-run in
    memory: ``found`` is the result now; every object of ``kind`` changed since
    ``since`` is removed and, if it is in ``found``, added at its index (the
    extra removals are allowed)."""
    state = r.state(kind)
    if since == state:
        return QueryChanges([], [], state, len(found))
    try:
        ch = r.changes(kind, since)
    except CannotCalculateChangesError as e:
        raise CannotCalculateChanges(e.message) from None
    touched = {wire(n) for n in ch.created + ch.updated}
    removed = [wire(n) for n in ch.updated + ch.destroyed]
    added = [(i, index) for index, i in enumerate(found) if i in touched]
    return QueryChanges(removed, added, state, len(found))
