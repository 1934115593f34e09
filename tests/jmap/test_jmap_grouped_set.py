"""Email/set and Mailbox/set through the store's group commit (``group_writes`` in
dualmail/jmap/service.py): the write runs on a worker thread in a transaction other
writers may share, and the response still keeps RFC 8620 §5.3's promises —
``oldState`` is the state before the call, ``newState`` a state whose /changes from
``oldState`` include every change of the call, ``ifInState`` is checked against the
state the call changes from.  Over the real app (``build_app``) on a real store."""

from __future__ import annotations

import json
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from dualmail.jmap.service import build_app
from dualmail.model import ids
from dualmail.jmap.state import to_state
from tests.jmap.jmap_store_util import (
    ALICE, BASE, INBOX, JSON, USING, Client, add_email, aid, basic, mid, result_of,
)


class HeldWrites:
    """A ``run_blocking`` that runs everything at once except the store's group-commit
    writes, which it holds until the test releases them (as a worker thread would)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.held: list[tuple[int, Any, Deferred]] = []

    def __call__(self, f: Any, *args: Any) -> Deferred:
        if f == self.store.write_grouped:
            account, fn = args
            d: Deferred = Deferred()
            self.held.append((account, fn, d))
            return d
        return maybeDeferred(f, *args)


class HeldClient(Client):
    """``Client`` whose app hands its group-commit writes to ``HeldWrites``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.clock = Clock()
        self.writes = HeldWrites(store)
        self.app = build_app(store, self.clock, base_url=BASE, run_blocking=self.writes, failed_login_delay=1.0)
        self.stub = StubTreq(self.app.app.resource())
        self.headers = basic(*ALICE)

    def start(self, calls: list) -> Deferred:
        """Send a request; its response waits for the held writes."""
        return self.request("POST", "/jmap/api", body={"using": USING, "methodCalls": calls},
                            headers={**self.headers, **JSON}, fired=False)

    def responses(self, d: Deferred) -> list:
        response = self.finish(d)
        assert response.code == 200, response.body
        return json.loads(response.body)["methodResponses"]


def eid(n: int) -> str:
    return ids.format_id(ids.EMAIL, n)


def modseq(store: Any, account: int) -> int:
    with store.read(account) as r:
        return r.highest_modseq


def shared_tx(store: Any, account: int, held: list) -> None:
    """Run the held writes in ONE transaction of ``account``, as the group commit does
    for calls of one account arriving together (``Store._commit_group``: one MailTxn)."""
    with store.write(account) as tx:
        results = [fn(tx) for a, fn, _d in held if a == account]
    for (_a, _fn, d), res in zip(held, results):
        d.callback(res)


class RolledBack(Exception):
    pass


def rerun_after_rollback(store: Any, client: "HeldClient") -> None:
    """Run the one held write, roll it back, then run it again and commit: what the group
    commit does when another call of the group fails."""
    [(a, fn, held)] = client.writes.held
    with pytest.raises(RolledBack):
        with store.write(a) as tx:
            fn(tx)
            raise RolledBack
    held.callback(store.write_grouped(a, fn))
    client.stub.flush()


def seen_update(account: int, e: int, value: bool = True) -> list:
    return ["Email/set", {"accountId": aid(account), "update": {eid(e): {"keywords/$seen": value}}}, "c0"]


def test_email_set_writes_through_the_group_commit(store, alice, client, monkeypatch):
    e = add_email(store, alice)
    calls: list[int] = []
    real = store.write_grouped

    def spy(account: int, fn: Any) -> Any:
        calls.append(account)
        return real(account, fn)

    monkeypatch.setattr(store, "write_grouped", spy)
    published: list[Any] = []
    store.subscribe(published.append)
    before = modseq(store, alice)

    result = client.call("Email/set", {"update": {eid(e): {"keywords/$flagged": True}}}, alice)

    assert calls == [alice]
    assert result["updated"] == {eid(e): None}
    assert result["oldState"] == to_state(before)
    assert result["newState"] == to_state(modseq(store, alice)) != result["oldState"]
    assert [(c.account, c.modseq) for c in published] == [(alice, modseq(store, alice))]
    changes = client.call("Email/changes", {"sinceState": result["oldState"]}, alice)
    assert changes["updated"] == [eid(e)] and changes["newState"] == result["newState"]
    with store.read(alice) as r:
        assert "$flagged" in r.email(e)["kw"]


def test_mailbox_set_writes_through_the_group_commit(store, alice, client, monkeypatch):
    calls: list[int] = []
    real = store.write_grouped
    monkeypatch.setattr(store, "write_grouped", lambda a, fn: calls.append(a) or real(a, fn))

    result = client.call("Mailbox/set", {"create": {"k": {"name": "Receipts"}}}, alice)

    assert calls == [alice]
    created = result["created"]["k"]["id"]
    assert result["newState"] == to_state(modseq(store, alice))
    got = client.call("Mailbox/get", {"ids": [created]}, alice)
    assert [m["name"] for m in got["list"]] == ["Receipts"]


def test_two_sets_sharing_one_transaction_share_its_modseq(store, alice):
    """Two clients' Email/set calls committed together: one transaction, one modseq
    (CONTRACT), so both newStates are that modseq, and /changes from either oldState
    lists both changes — never fewer than the call's own (RFC 8620 §5.3 newState)."""
    e1, e2 = add_email(store, alice, received=1), add_email(store, alice, received=2)
    client = HeldClient(store)
    before = modseq(store, alice)
    d1 = client.start([seen_update(alice, e1)])
    d2 = client.start([seen_update(alice, e2)])
    assert len(client.writes.held) == 2  # both wait on the commit

    shared_tx(store, alice, client.writes.held)
    client.stub.flush()
    [[_, r1, _]] = client.responses(d1)
    [[_, r2, _]] = client.responses(d2)

    shared = modseq(store, alice)
    assert shared == before + 1
    assert r1["oldState"] == r2["oldState"] == to_state(before)
    assert r1["newState"] == r2["newState"] == to_state(shared)
    assert r1["updated"] == {eid(e1): None} and r2["updated"] == {eid(e2): None}
    changes = client.call("Email/changes", {"sinceState": r1["oldState"]}, alice)
    assert sorted(changes["updated"]) == sorted([eid(e1), eid(e2)])


def test_a_set_that_changes_nothing_beside_one_that_does(store, alice):
    """The call whose update fails changed no Email: its newState is its oldState
    (nothing to fetch for it), although the shared transaction took a modseq."""
    e = add_email(store, alice)
    client = HeldClient(store)
    before = modseq(store, alice)
    d_ok = client.start([seen_update(alice, e)])
    d_bad = client.start([["Email/set", {"accountId": aid(alice), "update": {eid(999): {"keywords/$seen": True}}},
                           "c0"]])
    shared_tx(store, alice, client.writes.held)
    client.stub.flush()
    [[_, ok, _]] = client.responses(d_ok)
    [[_, bad, _]] = client.responses(d_bad)

    assert ok["newState"] == to_state(before + 1)
    assert bad["notUpdated"][eid(999)]["type"] == "notFound"
    # the transaction changed an Email (the other call's), so the state moved for both
    assert bad["newState"] == to_state(before + 1)


def test_no_change_keeps_the_state(store, alice):
    """A set that changes nothing in a transaction that changes nothing: newState ==
    oldState, and the modseq has not moved."""
    client = HeldClient(store)
    before = modseq(store, alice)
    d = client.start([["Email/set", {"accountId": aid(alice), "destroy": [eid(77)]}, "c0"]])
    [(a, fn, held)] = client.writes.held
    held.callback(store.write_grouped(a, fn))
    client.stub.flush()
    [[_, r, _]] = client.responses(d)
    assert r["notDestroyed"][eid(77)]["type"] == "notFound"
    assert r["oldState"] == r["newState"] == to_state(before)
    assert modseq(store, alice) == before


def test_if_in_state_keeps_a_transaction_of_its_own(store, alice):
    """ifInState (RFC 8620 §5.3) is checked against the state the call changes from,
    so such a call does not share a transaction: it never reaches the group commit."""
    e = add_email(store, alice)
    client = HeldClient(store)
    before = modseq(store, alice)
    state, stale = to_state(before), to_state(before - 1)

    d = client.start([["Email/set", {"accountId": aid(alice), "ifInState": stale,
                                     "update": {eid(e): {"keywords/$seen": True}}}, "c0"]])
    [[name, err, _]] = client.responses(d)
    assert (name, err["type"]) == ("error", "stateMismatch")
    assert modseq(store, alice) == before
    with store.read(alice) as r:
        assert "$seen" not in r.email(e)["kw"]

    d = client.start([["Email/set", {"accountId": aid(alice), "ifInState": state,
                                     "update": {eid(e): {"keywords/$seen": True}}}, "c0"]])
    [[name, ok, _]] = client.responses(d)
    assert name == "Email/set" and ok["oldState"] == state and ok["updated"] == {eid(e): None}
    assert client.writes.held == []


def test_a_rerun_reports_only_the_last_run(store, alice):
    """The group commit may roll a group back and run each call again alone: the
    response and the store show one creation, from the run that committed."""
    client = HeldClient(store)
    d = client.start([["Mailbox/set", {"accountId": aid(alice), "create": {"k": {"name": "Once"}}}, "c0"]])
    rerun_after_rollback(store, client)
    [[_, r, _]] = client.responses(d)

    created = r["created"]["k"]["id"]
    listing = client.call("Mailbox/get", {"ids": None}, alice)["list"]
    assert [m["id"] for m in listing if m["name"] == "Once"] == [created]
    assert r["newState"] == to_state(modseq(store, alice))


def test_a_failing_write_fails_only_its_call(store, alice):
    """A store error in the grouped write is a serverFail of that call alone; the
    request's other calls still answer and nothing is half-written."""
    e = add_email(store, alice)
    client = HeldClient(store)
    before = modseq(store, alice)
    d = client.start([seen_update(alice, e), ["Mailbox/get", {"accountId": aid(alice), "ids": [mid(INBOX)]}, "c1"]])
    [(_a, _fn, held)] = client.writes.held
    held.errback(OSError("disk full"))
    client.stub.flush()
    [[name, err, _], [name2, got, _]] = client.responses(d)
    assert (name, err["type"]) == ("error", "serverFail")
    assert name2 == "Mailbox/get" and got["list"][0]["id"] == mid(INBOX)
    assert modseq(store, alice) == before


RAW = b"From: bob@example.org\r\nSubject: imported\r\nMessage-ID: <imp@example.org>\r\n\r\nhello\r\n"


def uploaded(client: Client, account: int, data: bytes = RAW) -> str:
    response = client.request("POST", f"/jmap/upload/{aid(account)}/", body=data,
                              headers={**client.headers, "Content-Type": "message/rfc822"})
    assert response.code == 201, response.body
    return json.loads(response.body)["blobId"]


def import_call(account: int, blob: str, **extra: Any) -> list:
    return ["Email/import", {"accountId": aid(account), **extra,
                             "emails": {"k": {"blobId": blob, "mailboxIds": {mid(INBOX): True}}}}, "c0"]


class RecordingWrites(HeldWrites):
    """``HeldWrites`` that also records which functions ran through ``run_blocking``."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.ran: list[str] = []

    def __call__(self, f: Any, *args: Any) -> Deferred:
        self.ran.append(getattr(f, "__name__", repr(f)))
        return super().__call__(f, *args)


def test_email_import_parses_off_the_loop_and_writes_grouped(store, alice):
    """RFC 8621 §4.8: the blobs are read and parsed through ``run_blocking`` (a worker
    thread in the service), the write goes to the group commit, and the response's
    newState is the commit's modseq; Email/changes from oldState lists the import."""
    client = HeldClient(store)
    client.writes = RecordingWrites(store)
    client.app = build_app(store, client.clock, base_url=BASE, run_blocking=client.writes, failed_login_delay=1.0)
    client.stub = StubTreq(client.app.app.resource())
    blob = uploaded(client, alice)
    before = modseq(store, alice)
    d = client.start([import_call(alice, blob)])
    assert "_prepare_import" in client.writes.ran
    [(a, fn, held)] = client.writes.held
    assert modseq(store, alice) == before  # nothing written until the group commits
    held.callback(store.write_grouped(a, fn))
    client.stub.flush()
    [[name, r, _]] = client.responses(d)
    assert name == "Email/import"
    created = r["created"]["k"]["id"]
    assert r["oldState"] == to_state(before) and r["newState"] == to_state(modseq(store, alice))
    changes = client.call("Email/changes", {"sinceState": r["oldState"]}, alice)
    assert changes["created"] == [created]


def test_email_import_rerun_creates_one_email(store, alice):
    client = HeldClient(store)
    blob = uploaded(client, alice)
    d = client.start([import_call(alice, blob)])
    rerun_after_rollback(store, client)
    [[_, r, _]] = client.responses(d)
    created = r["created"]["k"]["id"]
    ids_now = client.call("Email/query", {}, alice)["ids"]
    assert ids_now == [created]


def test_email_import_if_in_state_keeps_its_own_transaction(store, alice):
    """ifInState (RFC 8621 §4.8, as RFC 8620 §5.3) checked against the state the import
    changes from: a stale state is stateMismatch with nothing stored; neither call
    reaches the group commit."""
    client = HeldClient(store)
    blob = uploaded(client, alice)
    before = modseq(store, alice)
    d = client.start([import_call(alice, blob, ifInState=to_state(before - 1))])
    [[name, err, _]] = client.responses(d)
    assert (name, err["type"]) == ("error", "stateMismatch")
    assert modseq(store, alice) == before
    assert client.call("Email/query", {}, alice)["ids"] == []
    d = client.start([import_call(alice, blob, ifInState=to_state(before))])
    [[name, ok, _]] = client.responses(d)
    assert name == "Email/import" and ok["newState"] == to_state(modseq(store, alice)) != to_state(before)
    assert client.writes.held == []
