"""The JMAP Mailbox data type (RFC 8621 §2) over the store's mailbox records.

A Mailbox is the IMAP mailbox of the same id (CONTRACT §3): ``parentId`` +
``name`` are the IMAP hierarchy (separator ``/``, so a name cannot contain
it), roles are SPECIAL-USE, ``isSubscribed`` is SUBSCRIBE, and the four counts
are the store's counters, read, never recounted. A rename or move keeps the id
and UIDVALIDITY.

/set validates each object completely before touching the store, so a
SetError leaves nothing of that object written (RFC 8620 §5.3); whatever the
store still refuses goes through ``base.set_error``.

/queryChanges is exact for plain sorts and filters: every Mailbox changed
since the old state is reported removed and, if it still matches, added at its
new index (RFC 8620 §5.6 allows the extra removals). With ``sortAsTree`` or
``filterAsTree`` a change to one Mailbox can move others, so those queries
answer ``cannotCalculateChanges``.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from ...model import errors, ids
from ...store.txn import MAX_NAME, ROLES, SEPARATOR, MailTxn, ReadView
from ..args import is_id
from ..dispatch import CallContext
from ..errors import CannotCalculateChanges, MethodError, SetError
from ..standard import Comparator, GetResult, Query, QueryChanges, QueryResult, filter_conditions_in, match_filter
from .base import ChangesFromLog, StoreType, account_number, recomputed_query_changes, set_error

MAIL = "urn:ietf:params:jmap:mail"

COUNT_PROPERTIES = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]
MAX_SORT_ORDER = 2**31

_RIGHTS = ("mayReadItems", "mayAddItems", "mayRemoveItems", "maySetSeen", "maySetKeywords",
           "mayCreateChild", "mayRename", "mayDelete", "maySubmit")


def my_rights(rec: Mapping[str, Any]) -> dict[str, bool]:
    """The owner may do everything, except rename or delete INBOX (the store
    refuses both: INBOX is fixed, CONTRACT §3)."""
    rights = dict.fromkeys(_RIGHTS, True)
    if rec.get("role") == "inbox" and not rec.get("parent"):
        rights["mayRename"] = rights["mayDelete"] = False
    return rights


class MailboxType(ChangesFromLog, StoreType):
    name = "Mailbox"
    capability = MAIL
    id_prefix = ids.MAILBOX
    properties = frozenset({
        "id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails", "totalThreads",
        "unreadThreads", "myRights", "isSubscribed",
    })
    server_set = frozenset({"id", "totalEmails", "unreadEmails", "totalThreads", "unreadThreads", "myRights"})
    defaults = {"parentId": None, "role": None, "sortOrder": 0}
    id_properties = frozenset({"parentId"})
    set_arguments = {"onDestroyRemoveEmails": False}
    query_arguments = {"sortAsTree": False, "filterAsTree": False}
    filter_conditions = frozenset({"parentId", "name", "role", "hasAnyRole", "isSubscribed"})
    sort_properties = frozenset({"sortOrder", "name"})

    # -- records --

    def to_jmap(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        c = rec["counts"]
        return {
            "id": self.wire(int(rec["id"])),
            "name": rec["name"],
            "parentId": self.wire(int(rec["parent"])) if rec["parent"] else None,
            "role": rec.get("role"),
            "sortOrder": int(rec.get("sort", 0)),
            "totalEmails": int(c["total"]),
            "unreadEmails": int(c["unread"]),
            "totalThreads": int(c["threads"]),
            "unreadThreads": int(c["unreadThreads"]),
            "myRights": my_rights(rec),
            "isSubscribed": bool(rec.get("sub")),
        }

    # -- /get --

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        with self.store.read(account_number(account_id)) as r:
            if wanted is None:
                records = [self.to_jmap(rec) for rec in r.mailboxes()]
            else:
                records = []
                for wire_id in wanted:
                    n = self.number(wire_id)
                    rec = r.mailbox(n) if n is not None else None
                    if rec is not None:
                        records.append(self.to_jmap(rec))
            return GetResult(records, r.state("Mailbox"))

    # -- /changes --

    def changes_extra(self, ch: Any) -> dict[str, Any]:
        """RFC 8621 §2.2: when only counts changed, say which properties; a Mailbox
        created or destroyed in the window is more than counts (null)."""
        only_counts = ch.only_counts and not ch.created and not ch.destroyed
        return {"updatedProperties": list(COUNT_PROPERTIES) if only_counts else None}

    # -- /set --

    def lookup(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> dict[str, Any] | None:
        n = self.number(wire_id)
        rec = tx.mailbox(n) if n is not None else None
        return None if rec is None else self.to_jmap(rec)

    def _validate(self, tx: MailTxn, obj: Mapping[str, Any], n: int | None) -> tuple[str, int, str | None, int, bool]:
        """Check a whole (created or patched) Mailbox for Mailbox ``n`` (None:
        new); -> (name, parent, role, sortOrder, isSubscribed). Raises one
        SetError listing every invalid property."""
        bad: dict[str, str] = {}
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            bad["name"] = "name must be a non-empty String"
        elif len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
            bad["name"] = f"name is longer than {MAX_NAME} octets"
        elif SEPARATOR in name or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
            bad["name"] = f"name must not contain {SEPARATOR!r} or control characters"
        parent = 0
        parent_id = obj.get("parentId")
        if parent_id is not None:
            number = self.number(parent_id)
            if number is None or tx.mailbox(number) is None:
                bad["parentId"] = f"no Mailbox {parent_id!r}"
            else:
                parent = number
                if n is not None and self._is_ancestor_or_self(tx, n, parent):
                    bad["parentId"] = "a Mailbox cannot be moved under itself"
        role = obj.get("role")
        current = tx.mailbox(n) if n is not None else None
        if role is not None and (not isinstance(role, str) or role not in ROLES):
            bad["role"] = f"unknown role {role!r}"
        elif current is not None and current.get("role") == "inbox" and role != "inbox":
            bad["role"] = "the inbox role cannot be moved or removed"
        elif role is not None:
            holder = tx.role_mailbox(role)
            if holder is not None and holder != n:
                bad["role"] = f"role {role!r} is already used by {self.wire(holder)}"
        sort_order = obj.get("sortOrder", 0)
        if isinstance(sort_order, bool) or not isinstance(sort_order, int) or not 0 <= sort_order < MAX_SORT_ORDER:
            bad["sortOrder"] = "sortOrder must be an UnsignedInt below 2^31"
        # a new Mailbox is subscribed unless asked otherwise (RFC 8621 §2); patching
        # isSubscribed to null removes it from the patched object: invalid
        subscribed = obj.get("isSubscribed", True if n is None else None)
        if not isinstance(subscribed, bool):
            bad["isSubscribed"] = "isSubscribed must be a Boolean"
        duplicate = None
        if "name" not in bad and "parentId" not in bad:
            sibling = tx.child(parent, name)  # type: ignore[arg-type]
            if sibling is not None and sibling != n:
                duplicate = sibling
        if bad:
            names = sorted(bad)
            raise SetError("invalidProperties", "; ".join(bad[k] for k in names), properties=names)
        if duplicate is not None:
            # Sibling names are unique (RFC 8621 §2.1).  alreadyExists (RFC 8620 §5.4, a
            # "Common" error) with existingId tells the client which Mailbox is in the way,
            # as Cyrus and Fastmail answer and the JMAP test suite expects.
            raise SetError("alreadyExists", f"a sibling Mailbox is already named {name!r}",
                           properties=["name"], existingId=self.wire(duplicate))
        return name, parent, role, sort_order, subscribed  # type: ignore[return-value]

    def _is_ancestor_or_self(self, tx: ReadView, n: int, m: int) -> bool:
        """Is ``n`` ``m`` or one of its ancestors?"""
        depth = 0
        while m and depth < 10_000:
            if m == n:
                return True
            rec = tx.mailbox(m)
            m = int(rec["parent"]) if rec else 0
            depth += 1
        return False

    def create(self, ctx: CallContext, tx: MailTxn, obj: dict[str, Any]) -> dict[str, Any]:
        if "name" not in obj:
            raise SetError("invalidProperties", "name is required", properties=["name"])
        name, parent, role, sort_order, subscribed = self._validate(tx, obj, None)
        try:
            n = tx.create_mailbox(name, parent, role=role, subscribed=subscribed, sort_order=sort_order)
        except errors.DomainError as e:
            raise set_error(e) from None
        created = self.to_jmap(tx.require_mailbox(n))
        # server-set and defaulted properties (RFC 8620 §5.3 "created")
        return {k: v for k, v in created.items() if k not in obj}

    def update(self, ctx: CallContext, tx: MailTxn, wire_id: str, current: dict[str, Any],
               patched: dict[str, Any]) -> dict[str, Any] | None:
        n = self.number(wire_id)
        assert n is not None  # lookup() found it
        rec = tx.require_mailbox(n)
        name, parent, role, sort_order, subscribed = self._validate(tx, patched, n)
        if (name, parent) != (rec["name"], rec["parent"]) and not my_rights(rec)["mayRename"]:
            raise SetError("forbidden", "INBOX cannot be renamed or moved")
        try:
            tx.update_mailbox(n, name=name, parent=parent, role=role, subscribed=subscribed, sort_order=sort_order)
        except errors.DomainError as e:
            raise set_error(e) from None
        return None

    def destroy(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> None:
        n = self.number(wire_id)
        rec = tx.mailbox(n) if n is not None else None
        if rec is None or n is None:
            raise SetError("notFound", f"no Mailbox {wire_id!r}")
        if not my_rights(rec)["mayDelete"]:
            raise SetError("forbidden", "INBOX cannot be destroyed")
        if tx.children(n):
            raise SetError("mailboxHasChild", "the Mailbox has child Mailboxes")
        remove = bool(ctx.extra.get("onDestroyRemoveEmails", False))
        # any membership counts, also IMAP \Deleted ones the JMAP counts hide
        if rec["counts"]["msgs"] and not remove:
            raise SetError("mailboxHasEmail", "the Mailbox has Emails; pass onDestroyRemoveEmails")
        try:
            tx.delete_mailbox(n, remove_emails=remove)
        except errors.DomainError as e:
            raise set_error(e) from None

    # -- /query --

    def _check_query(self, q: Query) -> tuple[bool, bool]:
        sort_as_tree = q.extra.get("sortAsTree", False)
        filter_as_tree = q.extra.get("filterAsTree", False)
        for name, value in (("sortAsTree", sort_as_tree), ("filterAsTree", filter_as_tree)):
            if not isinstance(value, bool):
                raise MethodError("invalidArguments", f"argument {name!r} must be a Boolean")
        _check_filter(q.filter)
        return sort_as_tree, filter_as_tree

    def _run_query(self, r: ReadView, q: Query) -> list[str]:
        sort_as_tree, filter_as_tree = self._check_query(q)
        mailboxes = [self.to_jmap(rec) for rec in r.mailboxes()]
        by_id = {m["id"]: m for m in mailboxes}

        def matches(m: Mapping[str, Any]) -> bool:
            return match_filter(q.filter, lambda cond: _condition(cond, m))

        def path(m: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            out = [m]
            while out[-1]["parentId"] is not None and len(out) < 10_000:
                out.append(by_id[out[-1]["parentId"]])
            return list(reversed(out))

        selected = [m for m in mailboxes if matches(m)]
        if filter_as_tree:
            selected = [m for m in selected if all(matches(a) for a in path(m))]
        compare = _comparator(q.sort)
        if sort_as_tree:
            def tree_compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
                pa, pb = path(a), path(b)
                for x, y in zip(pa, pb):
                    if x is not y:
                        return compare(x, y)
                return len(pa) - len(pb)

            selected.sort(key=functools.cmp_to_key(tree_compare))
        else:
            selected.sort(key=functools.cmp_to_key(compare))
        return [m["id"] for m in selected]

    def query(self, ctx: CallContext, account_id: str, q: Query) -> QueryResult:
        with self.store.read(account_number(account_id)) as r:
            found = self._run_query(r, q)
            state = r.state("Mailbox")
        sort_as_tree, filter_as_tree = self._check_query(q)
        return QueryResult(found, state, can_calculate_changes=not (sort_as_tree or filter_as_tree))

    def query_changes(self, ctx: CallContext, account_id: str, q: Query, since: int,
                      up_to_id: str | None, max_changes: int | None) -> QueryChanges:
        sort_as_tree, filter_as_tree = self._check_query(q)
        if sort_as_tree or filter_as_tree:
            raise CannotCalculateChanges("sortAsTree/filterAsTree results are not tracked")
        with self.store.read(account_number(account_id)) as r:
            return recomputed_query_changes(r, "Mailbox", self.wire, self._run_query(r, q), since)


def _check_filter(node: Mapping[str, Any] | None) -> None:
    """Value types of the FilterConditions (RFC 8621 §2.3)."""
    for cond in filter_conditions_in(node):
        for key, value in cond.items():
            ok = {
                "parentId": value is None or is_id(value),
                "name": isinstance(value, str),
                "role": value is None or isinstance(value, str),
                "hasAnyRole": isinstance(value, bool),
                "isSubscribed": isinstance(value, bool),
            }[key]
            if not ok:
                raise MethodError("invalidArguments", f"filter condition {key!r} has a value of the wrong type")


def _condition(cond: Mapping[str, Any], m: Mapping[str, Any]) -> bool:
    for key, value in cond.items():
        if key == "parentId" and m["parentId"] != value:
            return False
        if key == "name" and value.casefold() not in m["name"].casefold():
            return False
        if key == "role" and m["role"] != value:
            return False
        if key == "hasAnyRole" and (m["role"] is not None) != value:
            return False
        if key == "isSubscribed" and m["isSubscribed"] != value:
            return False
    return True


def _collate(collation: str | None) -> Callable[[str], Any]:
    if collation == "i;ascii-numeric":
        def numeric(s: str) -> tuple[int, int]:
            digits = ""
            for ch in s:
                if not ch.isascii() or not ch.isdigit():
                    break
                digits += ch
            return (0, int(digits)) if digits else (1, 0)  # RFC 4790: non-numbers sort last

        return numeric
    if collation == "i;ascii-casemap":
        return lambda s: s.translate(_ASCII_LOWER)
    return lambda s: s.casefold()  # i;unicode-casemap (the default)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _comparator(sort: tuple[Comparator, ...]) -> Callable[[Mapping[str, Any], Mapping[str, Any]], int]:
    """Compare two Mailboxes by the Comparators; no sort: sortOrder then
    name (RFC 8621 §2 display order); ties: by id number, for a stable order."""
    if not sort:
        sort = (Comparator("sortOrder"), Comparator("name"))

    def key(c: Comparator, m: Mapping[str, Any]) -> Any:
        return m["sortOrder"] if c.property == "sortOrder" else _collate(c.collation)(m["name"])

    def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
        for c in sort:
            ka, kb = key(c, a), key(c, b)
            if ka != kb:
                result = -1 if ka < kb else 1
                return result if c.is_ascending else -result
        na, nb = ids.parse_id(ids.MAILBOX, a["id"]) or 0, ids.parse_id(ids.MAILBOX, b["id"]) or 0
        return (na > nb) - (na < nb)

    return compare
