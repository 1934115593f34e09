"""The JMAP Identity data type (RFC 8621 §6): /get, /changes, /set.

Identities are records of the store's ``object`` table (kind Identity). Each
account gets a default Identity for its own address the first time any
Identity method runs (one small write transaction, so accounts created before
this existed get one too); it has ``mayDelete: false``. An Identity may only
use an address the account owns: today that is the account's address
(compared case-insensitively); anything else is ``forbiddenFrom``.

Identity belongs to ``urn:ietf:params:jmap:submission`` (RFC 8621 §1.3.2).

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ...model import ids
from ...store.txn import MailTxn
from ..dispatch import CallContext
from ..errors import SetError
from ..standard import Changes, GetResult
from ..state import StatePosition
from .base import ChangesFromLog, StoreType, account_number

SUBMISSION = "urn:ietf:params:jmap:submission"

_STORED = ("name", "email", "replyTo", "bcc", "textSignature", "htmlSignature")


class IdentityType(ChangesFromLog, StoreType):
    name = "Identity"
    capability = SUBMISSION
    id_prefix = ids.IDENTITY
    properties = frozenset({"id", "name", "email", "replyTo", "bcc", "textSignature", "htmlSignature", "mayDelete"})
    server_set = frozenset({"id", "mayDelete"})
    defaults = {"name": "", "replyTo": None, "bcc": None, "textSignature": "", "htmlSignature": ""}

    # -- the default identity --

    def ensure_default(self, a: int) -> None:
        """Create the account's default Identity if it never had one."""
        with self.store.read(a) as r:
            if r.objects_created("Identity"):
                return
        with self.store.write(a) as tx:
            if not tx.objects_created("Identity"):
                address = tx.account()["address"]
                tx.create_object("Identity", {**self.defaults, "email": address, "default": True})

    def owned(self, tx: Any, email: str) -> bool:
        return email.strip().lower() == str(tx.account()["address"]).lower()

    def to_jmap(self, n: int, rec: Mapping[str, Any]) -> dict[str, Any]:
        obj = {k: rec.get(k, self.defaults.get(k)) for k in _STORED}
        obj["id"] = self.wire(n)
        obj["mayDelete"] = not rec.get("default", False)
        return obj

    # -- /get, /changes --

    def get(self, ctx: CallContext, account_id: str, wanted: list[str] | None,
            properties: frozenset[str], extra: dict[str, Any]) -> GetResult:
        a = account_number(account_id)
        self.ensure_default(a)
        with self.store.read(a) as r:
            if wanted is None:
                records = [self.to_jmap(n, rec) for n, rec in r.objects("Identity")]
            else:
                records = []
                for wire_id in wanted:
                    n = self.number(wire_id)
                    rec = r.get_object("Identity", n) if n is not None else None
                    if rec is not None:
                        records.append(self.to_jmap(n, rec))  # type: ignore[arg-type]
            return GetResult(records, r.state("Identity"))

    def changes_since(self, ctx: CallContext, account_id: str, since: StatePosition, limit: int) -> Changes:
        self.ensure_default(account_number(account_id))
        return super().changes_since(ctx, account_id, since, limit)

    # -- /set --

    @contextmanager
    def write(self, ctx: CallContext, account_id: str) -> Iterator[MailTxn]:
        self.ensure_default(account_number(account_id))
        with super().write(ctx, account_id) as tx:
            yield tx

    def lookup(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> dict[str, Any] | None:
        n = self.number(wire_id)
        rec = tx.get_object("Identity", n) if n is not None else None
        return None if rec is None else self.to_jmap(n, rec)  # type: ignore[arg-type]

    def _validate(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        bad = []
        for key in ("name", "textSignature", "htmlSignature"):
            if not isinstance(obj.get(key, ""), str):
                bad.append(key)
        if not isinstance(obj.get("email"), str) or "@" not in obj["email"]:
            bad.append("email")
        for key in ("replyTo", "bcc"):
            if not _addresses(obj.get(key)):
                bad.append(key)
        if bad:
            raise SetError("invalidProperties", "invalid " + ", ".join(sorted(bad)), properties=sorted(bad))
        return {k: obj.get(k, self.defaults.get(k)) for k in _STORED}

    def create(self, ctx: CallContext, tx: MailTxn, obj: dict[str, Any]) -> dict[str, Any]:
        record = self._validate(obj)
        if not self.owned(tx, record["email"]):
            raise SetError("forbiddenFrom", f"this account may not send from {record['email']!r}")
        n = tx.create_object("Identity", {**record, "default": False})
        created = self.to_jmap(n, record)
        return {k: v for k, v in created.items() if k not in obj}

    def update(self, ctx: CallContext, tx: MailTxn, wire_id: str, current: dict[str, Any],
               patched: dict[str, Any]) -> dict[str, Any] | None:
        if patched.get("email") != current["email"]:
            raise SetError("invalidProperties", "email is immutable", properties=["email"])
        record = self._validate(patched)
        n = self.number(wire_id)
        old = tx.get_object("Identity", n)  # type: ignore[arg-type]
        assert old is not None and n is not None
        if {k: old.get(k) for k in _STORED} != record:
            tx.put_object("Identity", n, {**record, "default": old.get("default", False)})
        return None

    def destroy(self, ctx: CallContext, tx: MailTxn, wire_id: str) -> None:
        n = self.number(wire_id)
        rec = tx.get_object("Identity", n) if n is not None else None
        if rec is None or n is None:
            raise SetError("notFound", f"no Identity {wire_id!r}")
        if rec.get("default"):
            raise SetError("forbidden", "the default Identity cannot be destroyed (mayDelete is false)")
        tx.delete_object("Identity", n)


def _addresses(value: Any) -> bool:
    """``EmailAddress[]|null`` (RFC 8621 §4.1.2.3)."""
    if value is None:
        return True
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "email"}:
            return False
        if not isinstance(item.get("email"), str) or not (item.get("name") is None or isinstance(item["name"], str)):
            return False
    return True
