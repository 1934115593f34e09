"""The JMAP Quota data type (RFC 9425): /get, /changes, /query, /queryChanges.

An account has at most two quotas, both of scope ``account`` and both for Emails: one of
resourceType ``octets`` (the sum of the sizes of the account's Emails, each counted once
however many mailboxes it is in) and one of resourceType ``count`` (the number of
Emails). A Quota object exists while the admin has set its limit (``dualmail user quota``);
its ``used`` is kept by the store in the same transaction as every Email it counts, so
/get reads two numbers and never recounts. IMAP shows the same figures (RFC 9208,
``dualmail.imap.ops.quota``).

State: Quota objects are in the store's change log; a change of ``used`` alone is
logged as a counts-only update, so /changes answers ``updatedProperties: ["used"]``
(RFC 9425 §4.3). There is no /set: limits are the admin's.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model import ids
from ...store.txn import QUOTA_RESOURCES
from ..dispatch import CallContext
from ..errors import MethodError
from ..standard import GetResult, Query, QueryChanges, QueryResult, filter_conditions_in, match_filter
from .base import ChangesFromLog, StoreType, account_number, recomputed_query_changes
from .mailbox import MAIL

QUOTA = "urn:ietf:params:jmap:quota"
KIND = "Quota"

_NAMES = {"octets": "Mail storage", "count": "Mail messages"}
_DESCRIPTIONS = {
    "octets": "The size of all Emails of the account, each counted once.",
    "count": "The number of Emails of the account.",
}


class QuotaType(ChangesFromLog, StoreType):
    name = KIND
    capability = QUOTA
    id_prefix = ids.QUOTA
    properties = frozenset({"id", "resourceType", "used", "hardLimit", "scope", "name", "types",
                            "warnLimit", "softLimit", "description"})
    server_set = properties
    filter_conditions = frozenset({"name", "scope", "resourceType", "type"})
    sort_properties = frozenset({"name", "used"})

    # -- records --

    def _records(self, ctx: CallContext, r: Any) -> list[dict[str, Any]]:
        """The account's Quota objects as JMAP sees them.  RFC 9425 §4.1: types the client
        did not ask for (``using``) are left out, and a Quota with no type the client
        knows is not returned at all; these apply to Email (urn:ietf:params:jmap:mail)."""
        if MAIL not in ctx.using:
            return []
        limits = r.quota_limits()
        if not limits:
            return []
        used = r.usage()
        out = []
        for resource, n in QUOTA_RESOURCES.items():
            if resource in limits:
                out.append({
                    "id": self.wire(n), "resourceType": resource, "used": used[resource],
                    "hardLimit": limits[resource], "scope": "account", "name": _NAMES[resource],
                    "types": ["Email"], "warnLimit": None, "softLimit": None,
                    "description": _DESCRIPTIONS[resource],
                })
        return out

    # -- /get, /changes --

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        with self.store.read(account_number(account_id)) as r:
            records = self._records(ctx, r)
            state = r.state(KIND)
        if wanted is not None:
            by_id = {rec["id"]: rec for rec in records}
            records = [by_id[i] for i in wanted if i in by_id]
        return GetResult(records, state)

    def changes_extra(self, ch: Any) -> dict[str, Any]:
        """RFC 9425 §4.3: ``["used"]`` when only usage changed, else null."""
        only_used = ch.only_counts and not ch.created and not ch.destroyed
        return {"updatedProperties": ["used"] if only_used else None}

    # -- /query, /queryChanges --

    def _run_query(self, ctx: CallContext, r: Any, q: Query) -> list[str]:
        _validate_filter(q.filter)
        found = [rec for rec in self._records(ctx, r) if match_filter(q.filter, lambda c: _matches(rec, c))]
        for comp in reversed(q.sort):
            found.sort(key=lambda rec: (rec[comp.property], rec["id"]), reverse=not comp.is_ascending)
        return [rec["id"] for rec in found]

    def query(self, ctx: CallContext, account_id: str, q: Query) -> QueryResult:
        with self.store.read(account_number(account_id)) as r:
            return QueryResult(self._run_query(ctx, r, q), r.state(KIND), can_calculate_changes=True)

    def query_changes(self, ctx: CallContext, account_id: str, q: Query, since: int,
                      up_to_id: str | None, max_changes: int | None) -> QueryChanges:
        """RFC 8620 §5.6 by re-running the query: every Quota changed since ``since`` is
        removed and, if it matches now, added at its index."""
        with self.store.read(account_number(account_id)) as r:
            return recomputed_query_changes(r, KIND, self.wire, self._run_query(ctx, r, q), since)


def _validate_filter(node: Mapping[str, Any] | None) -> None:
    for cond in filter_conditions_in(node):
        for key, value in cond.items():
            if not isinstance(value, str):
                raise MethodError("invalidArguments", f"filter {key!r} must be a String")


def _matches(rec: Mapping[str, Any], cond: Mapping[str, Any]) -> bool:
    """RFC 9425 §4.4: name contains the string; scope and resourceType match exactly;
    type is one of the types."""
    if "name" in cond and cond["name"] not in rec["name"]:
        return False
    for key in ("scope", "resourceType"):
        if key in cond and rec[key] != cond[key]:
            return False
    return not ("type" in cond and cond["type"] not in rec["types"])
