"""Three ``twistd dualmail`` nodes on one PostgreSQL database (issue 18): the one promise
across nodes -- an IMAP client on one node and a JMAP client on another see the same truth,
with one modseq (CONTRACT §4, §5).

- An IMAP session in IDLE (RFC 2177, CONDSTORE RFC 7162 §3.1) on node 1 and a JMAP
  EventSource (RFC 8620 §7.3) on node 2 both hear an APPEND made through node 3, with the
  new MODSEQ as the Email state, without polling.
- Every node's LISTEN connection cut: a commit made meanwhile still reaches node 1, which
  reads the commit log when it reconnects.
- Writers on one account from all three nodes at once: every MODSEQ an IMAP STORE answered
  is distinct and each client's are increasing, no update is lost (each node's keywords on
  the one Email all stick), and ``dualmail check`` (counters = recount) is clean.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import pytest_twisted
from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from tests.cross.cross_util import JMAP, PASSWORD, TIMEOUT, USER, close, idle_until, in_thread, message
from tests.multinode.nodes import database_with_account, dualmail_cli, start_nodes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def cluster(pg_server, tmp_path):
    url = database_with_account(pg_server, "mn", USER, PASSWORD)
    nodes = start_nodes(url, tmp_path, 3)
    yield url, nodes
    for node in nodes:
        node.stop()


def imap(node) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=node.imap_port, ssl=False, timeout=TIMEOUT)
    client.login(USER, PASSWORD)
    return client


@pytest_twisted.ensureDeferred
async def test_idle_on_node1_and_eventsource_on_node2_hear_an_append_through_node3(cluster):
    from twisted.internet import reactor

    url, (n1, n2, n3) = cluster
    pool = HTTPConnectionPool(reactor, persistent=False)
    jmap = JMAP(HTTPClient(Agent(reactor, pool=pool)), n2.jmap_base)
    await jmap.start()
    events = await jmap.events()

    def idle_on_node1():
        c = imap(n1)
        c.enable("CONDSTORE")
        c.select_folder("INBOX")
        c.idle()
        return c

    c = await in_thread(idle_on_node1)
    try:
        def append_on_node3():
            w = imap(n3)
            try:
                w.append("INBOX", message("across nodes"))
                return w.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
            finally:
                w.logout()

        modseq = await in_thread(append_on_node3)
        _, change = await events.wait_for(
            lambda e: e[0] == "state" and jmap.account in e[1]["changed"]
            and int(e[1]["changed"][jmap.account].get("Email", 0)) >= modseq)
        assert change["changed"][jmap.account]["Email"] == str(modseq), change

        def idle_sees_it():
            seen = idle_until(c, lambda got: any(r[1:2] == (b"EXISTS",) for r in got))
            c.idle_done()
            return seen, c.fetch([1], ["MODSEQ", "ENVELOPE"])

        seen, fetched = await in_thread(idle_sees_it)
        assert (1, b"EXISTS") in seen, seen
        [(_seq, items)] = fetched.items()
        assert items[b"MODSEQ"] == (modseq,)
        assert items[b"ENVELOPE"].subject == b"across nodes"
        # And node 2's JMAP view agrees with node 1's IMAP view.
        got = await jmap.call("Email/query", {})
        assert len(got["ids"]) == 1 and got["queryState"]
        assert await jmap.state("Email") == str(modseq)

        # Every node's LISTEN connection is cut; a commit made meanwhile still reaches
        # node 1's IDLE: the listener reconnects and reads the commit log first.
        def cut_listeners_then_append():
            c.idle()
            with psycopg.connect(url, autocommit=True) as admin:
                cut = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'").fetchall()
            assert len(cut) == 3, cut
            append_on_node3()
            seen = idle_until(c, lambda got: any(r[1:2] == (b"EXISTS",) and r[0] == 2 for r in got))
            c.idle_done()
            return seen

        assert (2, b"EXISTS") in await in_thread(cut_listeners_then_append)
    finally:
        events.close()
        await in_thread(close, c)
        await pool.closeCachedConnections()


def test_concurrent_writers_on_three_nodes_lose_nothing(cluster):
    url, nodes = cluster
    setup = imap(nodes[0])
    setup.append("INBOX", message("shared"))
    setup.logout()
    rounds = 8
    modseqs: dict[int, list[int]] = {}
    failures: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            c = imap(nodes[i])
            c.enable("CONDSTORE")
            c.select_folder("INBOX")
            mine = []
            for n in range(rounds):
                c._imap.response("FETCH")  # drop FETCHes imaplib kept from earlier commands
                typ, data = c._imap.uid("STORE", "1", "+FLAGS", f"(n{i}r{n})")
                assert typ == "OK", data
                # The STORE's own FETCH comes first; unsolicited FETCHes of other nodes'
                # later changes to the same message may follow it (RFC 7162 §3.1.4.1).
                [(_uid, items)] = parse_fetch_response([d for d in data if d][:1], uid_is_key=True).items()
                mine.append(items[b"MODSEQ"][0])
                c.append("INBOX", message(f"from node {i} round {n}", msgid=f"<n{i}r{n}@x>"))
            modseqs[i] = mine
            c.logout()
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert time.monotonic() - started < 120
    check = imap(nodes[1])
    try:
        check.select_folder("INBOX")
        flags = {f.decode() for f in check.get_flags([1])[1]}
        highest = check.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
        assert {f"n{i}r{n}" for i in range(3) for n in range(rounds)} <= flags, (flags, modseqs)  # no lost update
        assert len(check.search("ALL")) == 1 + 3 * rounds
    finally:
        check.logout()
    every = [m for ms in modseqs.values() for m in ms]
    assert len(set(every)) == len(every) == 3 * rounds, (modseqs, highest)  # one modseq per write, never shared
    assert highest == 2 + 2 * 3 * rounds  # account + setup APPEND + every STORE and APPEND, once each
    for ms in modseqs.values():
        assert ms == sorted(ms) and len(set(ms)) == len(ms)
    r = dualmail_cli("--store", url, "check")
    assert r.returncode == 0 and f"{USER}: ok" in r.stdout, r.stdout + r.stderr


@pytest_twisted.ensureDeferred
async def test_every_kind_of_write_through_node3_reaches_node1_and_node2_and_the_views_agree(cluster):
    """APPEND, STORE, MOVE (RFC 6851), EXPUNGE, RENAME through node 3's IMAP and Email/set
    through node 3's JMAP: node 1's QRESYNC session in IDLE (RFC 7162 §3.2.10: VANISHED)
    hears each, node 2's EventSource reaches the final Email state, and afterwards IMAP
    (node 1) and JMAP (node 2) agree on every mailbox's counts, and HIGHESTMODSEQ equals the
    Email state (CONTRACT §4)."""
    from twisted.internet import reactor

    _url, (n1, n2, n3) = cluster
    pool = HTTPConnectionPool(reactor, persistent=False)
    jmap2 = JMAP(HTTPClient(Agent(reactor, pool=pool)), n2.jmap_base)
    jmap3 = JMAP(HTTPClient(Agent(reactor, pool=pool)), n3.jmap_base)
    await jmap2.start()
    await jmap3.start()

    def seed():
        w = imap(n3)
        for i in range(4):
            w.append("INBOX", message(f"m{i}", msgid=f"<m{i}@x>"))
        w.create_folder("Work")
        w.logout()

    await in_thread(seed)
    events = await jmap2.events()
    listener = await in_thread(lambda: _idle_qresync(n1))
    try:
        def imap_writes_on_node3():
            w = imap(n3)
            try:
                w.select_folder("INBOX")
                w.add_flags([1], [b"\\Flagged"])
                w.move([2], "Archive")
                w.add_flags([3], [b"\\Deleted"])
                w.expunge()
                w.rename_folder("Work", "Projects")
            finally:
                w.logout()

        await in_thread(imap_writes_on_node3)
        email_ids = (await jmap3.call("Email/query", {"sort": [{"property": "receivedAt"}]}))["ids"]
        result = await jmap3.call("Email/set", {"update": {email_ids[-1]: {"keywords/$seen": True}}})
        final = result["newState"]

        def heard():
            seen = idle_until(listener, lambda got: any(_modseq(r) == int(final) for r in got))
            listener.idle_done()
            return seen

        seen = await in_thread(heard)
        flagged = [r for r in seen if r[1:2] == (b"FETCH",) and b"\\Flagged" in r[2][r[2].index(b"FLAGS") + 1]]
        assert flagged and flagged[0][0] == 1, seen  # STORE
        assert [r[1] for r in seen if r[0] == b"VANISHED"] == [2, 3], seen  # MOVE, then EXPUNGE
        _, change = await events.wait_for(
            lambda e: e[0] == "state" and e[1]["changed"].get(jmap2.account, {}).get("Email") == final)
        assert change["changed"][jmap2.account]["Email"] == final

        boxes = await jmap2.mailboxes()
        assert "Projects" in boxes and "Work" not in boxes

        def imap_view():
            c = imap(n1)
            try:
                out = {}
                for name in ("INBOX", "Archive", "Projects"):
                    st = c.folder_status(name, ["MESSAGES", "UNSEEN", "HIGHESTMODSEQ"])
                    out[name] = (st[b"MESSAGES"], st[b"UNSEEN"], st[b"HIGHESTMODSEQ"])
                return out
            finally:
                c.logout()

        view = await in_thread(imap_view)
        for name, (messages, unseen, _hms) in view.items():
            assert (boxes[name]["totalEmails"], boxes[name]["unreadEmails"]) == (messages, unseen), name
        assert max(h for _m, _u, h in view.values()) == int(final) == int(await jmap2.state("Email"))
    finally:
        events.close()
        await in_thread(close, listener)
        await pool.closeCachedConnections()


def _modseq(response) -> int | None:
    """The MODSEQ of an untagged FETCH as imapclient's IDLE gives it, else None."""
    if response[1:2] != (b"FETCH",) or b"MODSEQ" not in response[2]:
        return None
    return response[2][response[2].index(b"MODSEQ") + 1][0]


def _idle_qresync(node) -> IMAPClient:
    c = imap(node)
    c.enable("QRESYNC")
    c.select_folder("INBOX")
    c.idle()
    return c
