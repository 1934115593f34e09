"""The JMAP VacationResponse data type (RFC 8621 §8): /get and /set of the
one object with id ``"singleton"``.

Stored as object number 1 of kind VacationResponse in the store's ``object``
table; until first set, /get shows the defaults (disabled, all null). Create
and destroy are ``singleton`` SetErrors (RFC 8620 §5.3). Sending the replies
(RFC 3834) belongs to the mail flow, not here.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...store.txn import MailTxn
from ..dispatch import CallContext
from ..errors import SetError
from ..standard import GetResult
from .base import StoreType, account_number

VACATION = "urn:ietf:params:jmap:vacationresponse"
SINGLETON = "singleton"
_NUMBER = 1

# RFC 8620 §1.4 UTCDate: RFC 3339 date-time, "Z", upper case.
_UTC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z\Z")


class VacationResponseType(StoreType):
    name = "VacationResponse"
    capability = VACATION
    properties = frozenset({"id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody"})
    server_set = frozenset({"id"})
    defaults: Mapping[str, Any] = {
        "isEnabled": False, "fromDate": None, "toDate": None, "subject": None, "textBody": None, "htmlBody": None,
    }

    def to_jmap(self, rec: Mapping[str, Any] | None) -> dict[str, Any]:
        obj = {k: (rec or {}).get(k, v) for k, v in self.defaults.items()}
        obj["id"] = SINGLETON
        return obj

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        with self.store.read(account_number(account_id)) as r:
            rec = r.get_object(self.name, _NUMBER)
            records = [self.to_jmap(rec)] if wanted is None or SINGLETON in wanted else []
            return GetResult(records, r.state(self.name))

    def lookup(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> dict[str, Any] | None:
        if wire_id != SINGLETON:
            return None
        return self.to_jmap(tx.get_object(self.name, _NUMBER))

    def create(self, ctx: CallContext, tx: MailTxn, obj: dict[str, Any]) -> dict[str, Any]:
        raise SetError("singleton", "there is exactly one VacationResponse; update \"singleton\"")

    def destroy(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> None:
        if wire_id != SINGLETON:
            raise SetError("notFound", f"no VacationResponse {wire_id!r}")
        raise SetError("singleton", "the VacationResponse cannot be destroyed")

    def update(self, ctx: CallContext, tx: MailTxn, wire_id: str, current: dict[str, Any],
               patched: dict[str, Any]) -> dict[str, Any] | None:
        bad = []
        if not isinstance(patched.get("isEnabled"), bool):
            bad.append("isEnabled")
        for key in ("fromDate", "toDate"):
            value = patched.get(key)
            if value is not None and (not isinstance(value, str) or not _UTC_DATE.match(value)):
                bad.append(key)
        for key in ("subject", "textBody", "htmlBody"):
            value = patched.get(key)
            if value is not None and not isinstance(value, str):
                bad.append(key)
        if bad:
            raise SetError("invalidProperties", "invalid " + ", ".join(bad), properties=bad)
        record = {k: patched.get(k) for k in self.defaults}
        if record != {k: current.get(k) for k in self.defaults}:
            tx.put_object(self.name, _NUMBER, record)
        return None
