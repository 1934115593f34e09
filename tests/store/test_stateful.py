"""Hypothesis stateful test of the store against a plain in-memory reference model.

After every step: the modseq rose by exactly one per changing write (CONTRACT §4);
counters equal a recount; UIDs ascend and are never reused (RFC 9051 §2.3.1.1); replaying
the change log (paged, from any earlier state) onto that earlier snapshot gives the current
state (RFC 8620 §5.2); ``\\Deleted`` memberships are hidden from the JMAP view (CONTRACT §2).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dualmail.model.keywords import unread
from dualmail.store.store import open_store
from dualmail.store.txn import visible, jmap_mailbox_ids
from tests.conftest import summary

KEYWORDS = ["$seen", "$flagged", "$draft", "work"]
kw_sets = st.sets(st.sampled_from(KEYWORDS))


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.store = self._open()
        self.a = self.store.create_account("m@x", "pw")
        self.boxes = {1, 2, 3, 4, 5, 6}
        self.emails: dict[int, dict] = {}  # e -> {"kw": set, "mbx": {m: [uid, deleted]}, "thread": t}
        self.max_uid: dict[int, int] = {m: 0 for m in self.boxes}
        self.modseq = 1
        self.snapshots: list[tuple[int, dict, dict]] = []
        self.n = 0
        self._snapshot()

    def _open(self):
        return open_store(self.dir, sync=False)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -------------------------------------------------------------------

    def _write(self, fn, changes: bool = True):
        with self.store.write(self.a) as tx:
            out = fn(tx)
        with self.store.read(self.a) as r:
            ms = r.highest_modseq
        assert ms == self.modseq + (1 if changes else 0), (ms, self.modseq, changes)
        self.modseq = ms
        self._snapshot()
        return out

    def _views(self):
        with self.store.read(self.a) as r:
            emails = {}
            for e in list(r.received_order(None)):
                rec = r.email(e)
                emails[e] = (tuple(jmap_mailbox_ids(rec)), tuple(rec["kw"]))
            mboxes = {int(m["id"]): (m["name"], tuple(m["counts"][k] for k in ("total", "unread", "threads", "unreadThreads")))
                      for m in r.mailboxes()}
        return emails, mboxes

    def _snapshot(self):
        e, m = self._views()
        with self.store.read(self.a) as r:
            states = (r.state("Email"), r.state("Mailbox"))
        self.snapshots.append((states, e, m))

    def _check_uid(self, m: int, u: int):
        assert u > self.max_uid[m]
        self.max_uid[m] = u


    # -- rules ---------------------------------------------------------------------

    @rule(boxes=st.sets(st.integers(1, 8), min_size=1, max_size=3), kw=kw_sets, deleted=st.booleans(),
          reply=st.booleans())
    def append(self, boxes, kw, deleted, reply):
        boxes = {m for m in boxes if m in self.boxes}
        if not boxes:
            return
        self.n += 1
        refs = [f"{self.n - 1}@x"] if reply and self.n > 1 else []
        e, uids = self._write(lambda tx: tx.create_email(
            f"Subject: m{self.n}\r\n\r\n".encode(), summary(f"{self.n}@x", "t", references=refs),
            sorted(boxes), kw, received=self.n % 7, deleted=deleted))
        for m, u in uids.items():
            self._check_uid(m, u)
        self.emails[e] = {"kw": set(kw), "mbx": {m: [uids[m], deleted] for m in boxes}}

    @precondition(lambda self: self.emails)
    @rule(data=st.data(), kw=kw_sets)
    def set_keywords(self, data, kw):
        e = data.draw(st.sampled_from(sorted(self.emails)))
        changed = set(kw) != self.emails[e]["kw"]
        self._write(lambda tx: tx.set_keywords(e, kw), changed)
        self.emails[e]["kw"] = set(kw)

    @precondition(lambda self: self.emails)
    @rule(data=st.data(), kw=kw_sets)
    def set_keywords_many(self, data, kw):
        es = data.draw(st.lists(st.sampled_from(sorted(self.emails)), min_size=1, max_size=4, unique=True))
        changed = any(set(kw) != self.emails[e]["kw"] for e in es)

        def fn(tx):
            for e in es:
                tx.set_keywords(e, kw)

        self._write(fn, changed)
        for e in es:
            self.emails[e]["kw"] = set(kw)

    @precondition(lambda self: self.emails)
    @rule(data=st.data(), flag=st.booleans())
    def set_deleted(self, data, flag):
        e = data.draw(st.sampled_from(sorted(self.emails)))
        m = data.draw(st.sampled_from(sorted(self.emails[e]["mbx"])))
        changed = self.emails[e]["mbx"][m][1] != flag
        self._write(lambda tx: tx.set_deleted(e, m, flag), changed)
        self.emails[e]["mbx"][m][1] = flag

    @precondition(lambda self: self.emails)
    @rule(data=st.data())
    def add_membership(self, data):
        e = data.draw(st.sampled_from(sorted(self.emails)))
        free = sorted(self.boxes - set(self.emails[e]["mbx"]))
        if not free:
            return
        m = data.draw(st.sampled_from(free))
        u = self._write(lambda tx: tx.add_membership(e, m))
        self._check_uid(m, u)
        self.emails[e]["mbx"][m] = [u, False]

    @precondition(lambda self: self.emails)
    @rule(data=st.data())
    def remove_membership(self, data):
        e = data.draw(st.sampled_from(sorted(self.emails)))
        m = data.draw(st.sampled_from(sorted(self.emails[e]["mbx"])))
        self._write(lambda tx: tx.remove_membership(e, m))
        del self.emails[e]["mbx"][m]
        if not self.emails[e]["mbx"]:
            del self.emails[e]

    @rule(m=st.integers(1, 8))
    def expunge(self, m):
        if m not in self.boxes:
            return
        gone = sorted(v[0] for e in self.emails.values() for mm, v in e["mbx"].items() if mm == m and v[1])
        got = self._write(lambda tx: tx.expunge(m), bool(gone))
        assert got == gone
        for e in list(self.emails):
            ms = self.emails[e]["mbx"]
            if m in ms and ms[m][1]:
                del ms[m]
                if not ms:
                    del self.emails[e]

    @precondition(lambda self: self.emails)
    @rule(data=st.data())
    def destroy(self, data):
        e = data.draw(st.sampled_from(sorted(self.emails)))
        self._write(lambda tx: tx.destroy_email(e))
        del self.emails[e]

    @precondition(lambda self: len(self.boxes) < 8)
    @rule()
    def create_mailbox(self):
        m = self._write(lambda tx: tx.create_mailbox(f"box{len(self.max_uid)}"))
        self.boxes.add(m)
        self.max_uid[m] = 0

    @precondition(lambda self: len(self.boxes) > 6)
    @rule(data=st.data())
    def delete_mailbox(self, data):
        m = data.draw(st.sampled_from(sorted(self.boxes - {1, 2, 3, 4, 5, 6})))
        self._write(lambda tx: tx.delete_mailbox(m, remove_emails=True))
        self.boxes.discard(m)
        for e in list(self.emails):
            self.emails[e]["mbx"].pop(m, None)
            if not self.emails[e]["mbx"]:
                del self.emails[e]

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def records_match_model(self):
        with self.store.read(self.a) as r:
            for e, want in self.emails.items():
                rec = r.email(e)
                assert rec is not None
                assert set(rec["kw"]) == want["kw"]
                assert {int(m): [v[0], bool(v[1])] for m, v in rec["mbx"].items()} == want["mbx"]
                for m, (u, _d) in want["mbx"].items():
                    assert r.email_at(m, u) == e
            for m in self.boxes:
                assert len(r.uids(m)) == sum(1 for e in self.emails.values() if m in e["mbx"])

    @invariant()
    def counters_equal_recount(self):
        with self.store.read(self.a) as r:
            threads = {e: r.email(e)["thread"] for e in self.emails}
            for m in self.boxes:
                c = r.mailbox(m)["counts"]
                members = [(e, v) for e, v in self.emails.items() if m in v["mbx"]]
                vis = [(e, v) for e, v in members if not v["mbx"][m][1]]
                assert c["msgs"] == len(members)
                assert c["unseen"] == sum(1 for _e, v in members if "$seen" not in v["kw"])
                assert c["deleted"] == len(members) - len(vis)
                assert c["total"] == len(vis)
                assert c["unread"] == sum(1 for _e, v in vis if unread(v["kw"]))
                assert c["threads"] == len({threads[e] for e, _v in vis})
                assert c["unreadThreads"] == len({threads[e] for e, v in vis if unread(v["kw"])})

    @invariant()
    def every_index_agrees(self):
        from dualmail.store.check import verify

        with self.store.read(self.a) as r:
            assert verify(r) == []

    @invariant()
    def jmap_view_hides_deleted(self):
        with self.store.read(self.a) as r:
            for e, want in self.emails.items():
                rec = r.email(e)
                assert jmap_mailbox_ids(rec) == sorted(m for m, v in want["mbx"].items() if not v[1])
                assert visible(rec) == any(not v[1] for v in want["mbx"].values())

    @invariant()
    def change_log_replays(self):
        cur_e, cur_m = self._views()
        for states, old_e, old_m in self.snapshots[-6:] + self.snapshots[:2]:
            for kind, old, cur, st_ in (("Email", old_e, cur_e, states[0]), ("Mailbox", old_m, cur_m, states[1])):
                view = dict(old)
                state, after = st_, 0
                for _page in range(1000):
                    with self.store.read(self.a) as r:
                        ch = r.changes(kind, state, limit=3, after=after)
                    for x in ch.destroyed:
                        view.pop(x, None)
                    for x in ch.created + ch.updated:
                        if x in cur:
                            view[x] = cur[x]
                    state, after = ch.new_state, ch.new_after
                    if not ch.has_more:
                        break
                assert view == cur, kind
                with self.store.read(self.a) as r:
                    assert (state, after) == (r.state(kind), 0)


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "60")), stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestStore = StoreMachine.TestCase


class PgStoreMachine(StoreMachine):
    """The same machine on the PostgreSQL engine (fewer examples: each step is a few
    round trips to a real server)."""

    fresh_url = None  # set by the fixture below

    def _open(self):
        return open_store(PgStoreMachine.fresh_url())


@pytest.fixture(autouse=True)
def _pg_for_machine(request):
    if request.node.cls is PgStoreMachine.TestCase or request.node.name == "TestStorePg":
        PgStoreMachine.fresh_url = request.getfixturevalue("pg_server").fresh_url
    yield


PgStoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("STATEFUL_EXAMPLES_PG", "12")), stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestStorePg = PgStoreMachine.TestCase
