"""Failures on PostgreSQL (issue 18): a node killed with SIGKILL while a client writes
through it, and the database restarting under a client.  Every acknowledged write is
there afterwards, the other nodes keep serving, clients get temporary errors
(``NO [UNAVAILABLE]``, RFC 5530) while the database is away, and ``dualmail check`` is
clean."""

from __future__ import annotations

import imaplib
import json
import time
import urllib.request
import base64

import pytest
from imapclient import IMAPClient

from tests.cross.cross_util import PASSWORD, TIMEOUT, USER, message
from tests.multinode.nodes import database_with_account, dualmail_cli, start_node, start_nodes
from tests.pg.server import PgServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def imap(node) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=node.imap_port, ssl=False, timeout=TIMEOUT)
    client.login(USER, PASSWORD)
    return client


def subjects(node) -> set[str]:
    c = imap(node)
    try:
        c.select_folder("INBOX", readonly=True)
        got = c.fetch(c.search("ALL"), ["ENVELOPE"])
        return {v[b"ENVELOPE"].subject.decode() for v in got.values()}
    finally:
        c.logout()


def jmap_post(node, calls: list) -> dict:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(node.jmap_base + "/.well-known/jmap", headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        session = json.loads(r.read())
    account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                       "methodCalls": [[n, {"accountId": account, **a}, str(i)] for i, (n, a) in enumerate(calls)]})
    req = urllib.request.Request(session["apiUrl"], data=body.encode(), method="POST",
                                 headers={"Authorization": "Basic " + auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return json.loads(r.read())


def test_kill_9_of_a_node_loses_no_acknowledged_write(pg_server, tmp_path):
    url = database_with_account(pg_server, "k9", USER, PASSWORD)
    nodes = start_nodes(url, tmp_path, 3)
    try:
        n1, n2, n3 = nodes
        writer = imap(n3)
        acknowledged = []
        for i in range(40):
            if i == 15:
                n3.kill()  # SIGKILL mid-stream: its session and any open transaction die
            try:
                writer.append("INBOX", message(f"w{i}", msgid=f"<w{i}@x>"))
            except (imaplib.IMAP4.abort, OSError):
                break
            acknowledged.append(f"w{i}")
        assert 15 <= len(acknowledged) < 40
        # The other nodes keep serving, and have every acknowledged write.
        assert set(acknowledged) <= subjects(n1)
        c = imap(n2)
        c.append("INBOX", message("after the kill", msgid="<after@x>"))
        c.logout()
        # The restarted node serves it all.
        nodes[2] = start_node("node3-again", url, str(tmp_path / "node3"))
        nodes[2].wait_listening()
        assert set(acknowledged) | {"after the kill"} <= subjects(nodes[2])
        r = dualmail_cli("--store", url, "check")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        for node in nodes:
            node.stop()


def test_a_database_restart_gives_temporary_errors_then_service_resumes(tmp_path):
    server = PgServer().start()  # its own cluster: this test stops it
    try:
        url = database_with_account(server, "rs", USER, PASSWORD)
        node = start_node("node", url, str(tmp_path / "node"))
        try:
            node.wait_listening()
            c = imap(node)
            c.append("INBOX", message("before", msgid="<before@x>"))
            c.select_folder("INBOX")
            server.pg_ctl_stop("fast")
            # IMAP: the session survives; the write is refused as temporary.
            with pytest.raises(imaplib.IMAP4.error, match=r"UNAVAILABLE"):
                try:
                    c.append("INBOX", message("during", msgid="<during@x>"))
                except imaplib.IMAP4.abort as e:
                    raise AssertionError(node.log()) from e
            # JMAP: the method call is serverUnavailable (RFC 8620 §3.6.2) -- or the
            # request is refused before it, when authentication cannot read the store.
            try:
                got = jmap_post(node, [["Email/query", {}]])
                assert got["methodResponses"][0][1]["type"] == "serverUnavailable", got
            except urllib.error.HTTPError as e:
                assert e.code == 503, e
            server.pg_ctl_start()
            ok = False
            for _attempt in range(10):  # each attempt is a real command, bounded
                try:
                    c.append("INBOX", message("after", msgid="<after@x>"))
                    ok = True
                    break
                except imaplib.IMAP4.error as e:
                    assert "UNAVAILABLE" in str(e), e
            assert ok, "service did not resume after the database came back"
            c.logout()
            assert subjects(node) == {"before", "after"}  # "during" was not half-applied
            r = dualmail_cli("--store", url, "check")
            assert r.returncode == 0, r.stdout + r.stderr
        finally:
            node.stop()
    finally:
        server.stop()
