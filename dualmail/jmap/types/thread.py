"""The JMAP Thread data type (RFC 8621 §3): /get and /changes.

A Thread's ``emailIds`` are its JMAP-visible Emails (an Email whose every
membership is IMAP ``\\Deleted`` is not visible, CONTRACT §2), ordered by
receivedAt and then by Email number (the store keeps the thread record in
that order). A Thread with no visible Email does not exist for JMAP.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model import ids
from ..dispatch import CallContext
from ..standard import GetResult
from .base import ChangesFromLog, StoreType, account_number
from .mailbox import MAIL


class ThreadType(ChangesFromLog, StoreType):
    name = "Thread"
    capability = MAIL
    id_prefix = ids.THREAD
    properties = frozenset({"id", "emailIds"})
    server_set = frozenset({"id", "emailIds"})

    def to_jmap(self, t: int, rec: Mapping[str, Any]) -> dict[str, Any] | None:
        email_ids = [ids.format_id(ids.EMAIL, int(e)) for _received, e, vis in rec["emails"] if vis]
        if not email_ids:
            return None
        return {"id": self.wire(t), "emailIds": email_ids}

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        records = []
        with self.store.read(account_number(account_id)) as r:
            if wanted is None:
                # one more than the limit, so /get can answer requestTooLarge
                pairs = r.threads(ctx.limits.max_objects_in_get + 1)
            else:
                pairs = []
                for wire_id in wanted:
                    t = self.number(wire_id)
                    rec = r.thread(t) if t is not None else None
                    if rec is not None:
                        pairs.append((t, rec))
            for t, rec in pairs:
                obj = self.to_jmap(t, rec)
                if obj is not None:
                    records.append(obj)
            return GetResult(records, r.state("Thread"))
