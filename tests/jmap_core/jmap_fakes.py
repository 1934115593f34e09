"""Fakes for the JMAP core tests: an in-memory "Foo" data type implementing
every standard.py hook, an Authenticator, a Backend, and helpers to run
requests without a running reactor. (Uniquely named so test files import it
unambiguously; conftest.py only holds fixtures.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


from twisted.internet.defer import Deferred, ensureDeferred, succeed

from dualmail.jmap.dispatch import CallContext, Dispatcher
from dualmail.jmap.errors import CannotCalculateChanges, SetError
from dualmail.jmap.request import parse_request
from dualmail.jmap.session import CORE, Account, CoreLimits, SessionInfo
from dualmail.jmap.standard import (
    Changes,
    GetResult,
    Query,
    QueryChanges,
    QueryResult,
    match_filter,
)
from dualmail.jmap.state import StatePosition

FOO = "https://example.com/apis/foo"


class FooAccount:
    def __init__(self) -> None:
        self.modseq = 1
        self.records: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[int, str, str]] = []  # (modseq, created|updated|destroyed, id)
        self.history: dict[int, dict[str, dict[str, Any]]] = {1: {}}
        self.compacted_below = 0


class FooTx:
    def __init__(self, account: FooAccount):
        self.account = account
        self.changes: list[tuple[str, str]] = []
        self.committed_modseq: int | None = None


class FooType:
    """The RFC 8620 §5.7 "Todo"-like type: title, keywords (default {}),
    estimate (server-set, derived from the title), subFooIds (ids)."""

    name = "Foo"
    capability = FOO
    properties = frozenset({"id", "title", "keywords", "estimate", "subFooIds"})
    server_set = frozenset({"id", "estimate"})
    defaults = {"keywords": {}}
    id_properties = frozenset({"subFooIds"})
    filter_conditions = frozenset({"hasKeyword", "title"})
    sort_properties = frozenset({"title", "id"})

    def __init__(self) -> None:
        self.accounts: dict[str, FooAccount] = {"A1": FooAccount(), "A2": FooAccount(), "B1": FooAccount()}
        self.counter = 0
        self.writes = 0

    # -- /get
    def get(self, ctx: CallContext, account_id: str, ids: list[str] | None, properties: frozenset[str], extra: dict) -> GetResult:
        acct = self.accounts[account_id]
        if ids is None:
            records = list(acct.records.values())
        else:
            records = [acct.records[i] for i in ids if i in acct.records]
        return GetResult([copy.deepcopy(r) for r in records], acct.modseq)

    # -- /changes
    def changes_since(self, ctx: CallContext, account_id: str, since: StatePosition, limit: int) -> Changes:
        acct = self.accounts[account_id]
        if since.modseq < acct.compacted_below or since.modseq > acct.modseq or since.offset:
            raise CannotCalculateChanges("state too old")
        created: list[str] = []
        updated: list[str] = []
        destroyed: list[str] = []
        new = since.modseq
        for modseq in range(since.modseq + 1, acct.modseq + 1):
            entries = [(k, i) for m, k, i in acct.log if m == modseq]
            if len(created) + len(updated) + len(destroyed) + len(entries) > limit:
                if new == since.modseq:
                    raise CannotCalculateChanges("one transaction exceeds maxChanges")
                return Changes(created, updated, destroyed, new, True)
            for kind, i in entries:
                {"created": created, "updated": updated, "destroyed": destroyed}[kind].append(i)
            new = modseq
        return Changes(created, updated, destroyed, new, False)

    # -- /set
    @contextmanager
    def write(self, ctx: CallContext, account_id: str) -> Iterator[FooTx]:
        acct = self.accounts[account_id]
        snapshot = copy.deepcopy(acct.records)
        tx = FooTx(acct)
        try:
            yield tx
        except BaseException:
            acct.records = snapshot
            raise
        if tx.changes:
            self.writes += 1
            acct.modseq += 1
            acct.log.extend((acct.modseq, kind, i) for kind, i in tx.changes)
            acct.history[acct.modseq] = copy.deepcopy(acct.records)
        tx.committed_modseq = acct.modseq

    def state(self, ctx: CallContext, tx: FooTx) -> int:
        return tx.account.modseq

    def committed_state(self, ctx: CallContext, tx: FooTx) -> int:
        assert tx.committed_modseq is not None
        return tx.committed_modseq

    def lookup(self, ctx: CallContext, tx: FooTx, id: str) -> dict | None:
        record = tx.account.records.get(id)
        return copy.deepcopy(record) if record is not None else None

    def _validate(self, tx: FooTx, obj: Mapping[str, Any]) -> None:
        bad = []
        if not isinstance(obj.get("title"), str):
            bad.append("title")
        keywords = obj.get("keywords", {})
        if not isinstance(keywords, dict) or not all(v is True for v in keywords.values()):
            bad.append("keywords")
        subs = obj.get("subFooIds")
        if subs is not None and (not isinstance(subs, list) or any(s not in tx.account.records for s in subs)):
            bad.append("subFooIds")
        if bad:
            raise SetError("invalidProperties", properties=bad)

    def create(self, ctx: CallContext, tx: FooTx, obj: dict) -> dict:
        self._validate(tx, obj)
        self.counter += 1
        new_id = f"f{self.counter}"
        record = {"id": new_id, "keywords": {}, "subFooIds": None, **obj, "estimate": len(obj["title"]) * 10}
        tx.account.records[new_id] = record
        tx.changes.append(("created", new_id))
        server = {"id": new_id, "estimate": record["estimate"]}
        if "keywords" not in obj:
            server["keywords"] = {}
        return server

    def update(self, ctx: CallContext, tx: FooTx, id: str, current: dict, patched: dict) -> dict | None:
        self._validate(tx, patched)
        patched["estimate"] = len(patched["title"]) * 10
        tx.account.records[id] = patched
        tx.changes.append(("updated", id))
        if patched["estimate"] != current["estimate"]:
            return {"estimate": patched["estimate"]}
        return None

    def destroy(self, ctx: CallContext, tx: FooTx, id: str) -> None:
        if id not in tx.account.records:
            raise SetError("notFound")
        del tx.account.records[id]
        tx.changes.append(("destroyed", id))

    # -- /copy
    def read_for_copy(self, ctx: CallContext, account_id: str, ids: list[str]) -> tuple[dict, int]:
        acct = self.accounts[account_id]
        return {i: copy.deepcopy(acct.records[i]) for i in ids if i in acct.records}, acct.modseq

    def copy(self, ctx: CallContext, tx: FooTx, from_account: str, original: dict, overrides: dict) -> dict:
        obj = {k: v for k, v in original.items() if k not in self.server_set and k != "subFooIds"}
        obj.update(overrides)
        props = self.create(ctx, tx, obj)
        return {"id": props["id"], "estimate": props["estimate"]}

    # -- /query
    def _results(self, records: Mapping[str, dict], q: Query) -> list[str]:
        def matches(rec: dict, c: Mapping[str, Any]) -> bool:
            return all(
                (key == "hasKeyword" and value in rec["keywords"]) or (key == "title" and value in rec["title"])
                for key, value in c.items()
            )

        matched = [rec for rec in records.values() if match_filter(q.filter, lambda c, rec=rec: matches(rec, c))]
        matched.sort(key=lambda r: r["id"])
        for comparator in reversed(q.sort):
            matched.sort(key=lambda r: r[comparator.property], reverse=not comparator.is_ascending)
        return [r["id"] for r in matched]

    def query(self, ctx: CallContext, account_id: str, q: Query) -> QueryResult:
        acct = self.accounts[account_id]
        return QueryResult(self._results(acct.records, q), acct.modseq, True)

    def query_changes(self, ctx: CallContext, account_id: str, q: Query, since: int, up_to_id: str | None, max_changes: int | None) -> QueryChanges:
        acct = self.accounts[account_id]
        if since not in acct.history:
            raise CannotCalculateChanges()
        old = self._results(acct.history[since], q)
        new = self._results(acct.records, q)
        removed = [i for i in old if i not in new]
        added = [(i, index) for index, i in enumerate(new) if i not in old]
        return QueryChanges(removed, added, acct.modseq, len(new))


class FakeAuthenticator:
    def __init__(self) -> None:
        self.users = {"alice": "secret", "bob": "hunter2"}
        self.tokens = {"tok-alice": "alice"}
        self.async_results = False

    def verify_basic(self, username: str, password: str) -> Any:
        result = username if self.users.get(username) == password else None
        return succeed(result) if self.async_results else result

    def verify_bearer(self, token: str) -> Any:
        return self.tokens.get(token)


class FakeBackend:
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {("A1", "blob1"): b"0123456789"}
        self.subscribers: list[tuple[Any, Any, Any]] = []
        self.uploaded: list[tuple[str, str, bytes]] = []
        self.pending_upload: Deferred | None = None

    def capabilities(self) -> Mapping[str, Mapping[str, Any]]:
        return {FOO: {"maxFoosFinangled": 42}}

    def session_info(self, principal: Any) -> SessionInfo:
        return SessionInfo(
            username=principal,
            accounts={
                "A1": Account("alice@example.com", True, False, {FOO: {}}),
                "A2": Account("shared@example.com", False, True, {FOO: {}}),
                "B1": Account("team@example.com", False, False, {FOO: {}}),
                "C1": Account("nofoo@example.com", False, False, {}),
            },
            primary_accounts={FOO: "A1"},
        )

    def upload(self, principal: Any, account_id: str, content_type: str, body: Any) -> Any:
        data = body.read()
        blob_id = f"up{len(self.uploaded) + 1}"
        self.uploaded.append((account_id, content_type, data))
        self.blobs[(account_id, blob_id)] = data
        result = {"accountId": account_id, "blobId": blob_id, "type": content_type, "size": len(data)}
        if self.pending_upload is not None:
            return self.pending_upload.addCallback(lambda _: result)
        return result

    def download(self, principal: Any, account_id: str, blob_id: str) -> Any:
        return self.blobs.get((account_id, blob_id))

    def subscribe(self, principal: Any, types: Any, callback: Any) -> Any:
        entry = (principal, types, callback)
        self.subscribers.append(entry)
        return lambda: self.subscribers.remove(entry)


def result_of(d: Any) -> Any:
    """The result of an already-fired Deferred (fail loudly otherwise)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


class Runner:
    """Run JMAP requests through parse_request + Dispatcher, no HTTP."""

    def __init__(self, methods: Mapping[str, Any], limits: CoreLimits, capabilities: Any = (CORE, FOO)):
        self.dispatcher = Dispatcher(methods, limits)
        self.limits = limits
        self.capabilities = capabilities
        self.accounts = FakeBackend().session_info("alice").accounts

    def __call__(self, calls: list, using: Any = (CORE, FOO), created_ids: Any = None) -> dict:
        body: dict[str, Any] = {"using": list(using), "methodCalls": calls}
        if created_ids is not None:
            body["createdIds"] = created_ids
        request = parse_request(
            json.dumps(body).encode(),
            capabilities=self.capabilities,
            max_size_request=10**9,
            max_calls_in_request=self.limits.max_calls_in_request,
        )
        return result_of(ensureDeferred(self.dispatcher.run(
            request, principal="alice", accounts=self.accounts, session_state="s1"
        )))
