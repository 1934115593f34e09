"""Issue 10: long SEARCH/SORT/THREAD work must not stall the reactor.

The real service on loopback; the search work is made to block on an event the test
controls.  Another client's NOOP is answered while it blocks: the work runs on a worker
thread (``Session.Offload``), not on the reactor.  Were it on the reactor, the NOOP could
not be answered until the event's bounded wait ran out, and the test would see that.
"""

from __future__ import annotations

import imaplib
import threading

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import deliver, message
from imap_e2e import PASSWORD, USER, running
from dualmail.imap.ops import search as search_ops

pytestmark = pytest.mark.e2e


def _client(port: int) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    m.login(USER, PASSWORD)
    m.select("INBOX")
    return m


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("command", [("THREAD", "REFERENCES", "UTF-8", "ALL"),
                                     ("SORT", "(SUBJECT)", "UTF-8", "ALL"),
                                     ("SEARCH", "ALL")])
async def test_other_clients_are_answered_while_a_search_runs(tmp_path, monkeypatch, command) -> None:
    started, release = threading.Event(), threading.Event()
    outcome: dict[str, bool] = {}
    real = search_ops.engine.search

    def blocking_search(*args, **kw):
        if threading.current_thread() is threading.main_thread():
            outcome["on_reactor"] = True
        started.set()
        outcome["released"] = release.wait(20)  # bounded: a stalled reactor makes this False
        return real(*args, **kw)

    async with running(tmp_path) as srv:
        for i in range(3):
            deliver(srv.store, srv.account, raw=message(f"subject {i}"))
        a, b = await deferToThread(_client, srv.imap_port), await deferToThread(_client, srv.imap_port)
        try:
            monkeypatch.setattr(search_ops.engine, "search", blocking_search)
            long_one = deferToThread(a.uid, *command)
            assert await deferToThread(started.wait, 20)
            typ, _ = await deferToThread(b.noop)  # answered while the search blocks
            assert typ == "OK"
            release.set()
            typ, data = await long_one
            assert typ == "OK" and data[0], data
            assert outcome == {"released": True}, outcome
        finally:
            release.set()
            monkeypatch.undo()
            await deferToThread(a.logout)
            await deferToThread(b.logout)
