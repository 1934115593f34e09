"""Quotas on the real service (both engines): one usage and one limit seen alike by IMAP
(RFC 9208) and JMAP (RFC 9425), pushed like any other JMAP type, and enforced wherever
mail comes in - IMAP APPEND, JMAP Email/import, Email/set, blob upload and LMTP - with
nothing written by a refused addition."""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys

import pytest
import pytest_twisted

from dualmail.store.store import open_store
from tests.cross import cross_util
from tests.cross.cross_util import AUTH, USER, in_thread, message, running

pytestmark = pytest.mark.e2e

QUOTA = "urn:ietf:params:jmap:quota"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", QUOTA]


async def jmap(srv, calls, using=USING):
    body = json.dumps({"using": using, "methodCalls": calls}).encode()
    response = await srv.jmap.http.post(srv.jmap.session["apiUrl"], data=body,
                                        headers={**AUTH, b"Content-Type": [b"application/json"]})
    text = await response.content()
    assert response.code == 200, text
    return json.loads(text)["methodResponses"]


async def call(srv, name, args, using=USING):
    [[got, result, _]] = await jmap(srv, [[name, {"accountId": srv.jmap.account, **args}, "0"]], using)
    assert got == name, (got, result)
    return result


async def views(srv):
    """(IMAP GETQUOTAROOT reply, JMAP Quota/get list)."""

    def imap_side():
        c = srv.imap()
        try:
            typ, data = c._imap._simple_command("GETQUOTAROOT", "INBOX")
            assert typ == "OK"
            return c._imap.untagged_responses.pop("QUOTA", [])
        finally:
            c.logout()

    quota = await in_thread(imap_side)
    got = await call(srv, "Quota/get", {"ids": None})
    return [q.decode() if isinstance(q, bytes) else q for q in quota], got


@pytest_twisted.ensureDeferred
async def test_imap_and_jmap_show_the_same_quota(tmp_path):
    async with running(tmp_path) as srv:
        session = srv.jmap.session
        assert QUOTA in session["capabilities"]
        assert session["primaryAccounts"][QUOTA] == srv.jmap.account
        # no limit: no Quota object, an empty IMAP resource list
        quota, got = await views(srv)
        assert quota == ['"" ()'] and got["list"] == []
        srv.service.store.set_quota(USER, {"octets": 1024 * 1024, "count": 10})

        def append():
            c = srv.imap()
            try:
                for i in range(3):
                    c.append("INBOX", message(f"m{i}", "x" * 2000 + "\r\n"))
                c.select_folder("INBOX")
                c.copy([1], "Archive")  # shares the Email: usage unchanged
            finally:
                c.logout()

        await in_thread(append)
        quota, got = await views(srv)

        def with_imapclient():  # a real client library's RFC 2087/9208 support
            c = srv.imap()
            try:
                return c.get_quota_root("INBOX"), c.get_quota("INBOX")
            finally:
                c.logout()

        (roots, root_quotas), quotas = await in_thread(with_imapclient)
        assert roots.quota_roots == [""] and root_quotas == quotas
        assert {(q.resource, q.usage, q.limit) for q in quotas} >= {("MESSAGE", 3, 10)}
        by_type = {q["resourceType"]: q for q in got["list"]}
        assert set(by_type) == {"octets", "count"}
        octets, count = by_type["octets"], by_type["count"]
        assert count["used"] == 3 and count["hardLimit"] == 10
        assert octets["hardLimit"] == 1024 * 1024 and octets["scope"] == "account"
        assert octets["types"] == ["Email"]
        kib = -(-octets["used"] // 1024)
        assert quota == [f'"" (STORAGE {kib} 1024 MESSAGE 3 10)']
        # RFC 9425 §4.1: a client that did not ask for mail sees no Quota for Email
        bare = await call(srv, "Quota/get", {"ids": None}, ["urn:ietf:params:jmap:core", QUOTA])
        assert bare["list"] == []


@pytest_twisted.ensureDeferred
async def test_quota_changes_query_and_push(tmp_path):
    async with running(tmp_path) as srv:
        srv.service.store.set_quota(USER, {"count": 100, "octets": 10**9})
        state = (await call(srv, "Quota/get", {"ids": []}))["state"]
        q = await call(srv, "Quota/query", {"sort": [{"property": "name"}]})
        assert len(q["ids"]) == 2
        events = await srv.jmap.events("Quota")
        try:
            def append():
                c = srv.imap()
                try:
                    c.append("INBOX", message("push me"))
                finally:
                    c.logout()

            await in_thread(append)
            _event, change = await events.wait_for(lambda ev: ev[0] == "state")
            [(account, types)] = change["changed"].items()
            assert account == srv.jmap.account and "Quota" in types
        finally:
            events.close()
        ch = await call(srv, "Quota/changes", {"sinceState": state})
        assert sorted(ch["updated"]) == sorted(q["ids"]) and ch["created"] == [] == ch["destroyed"]
        assert ch["updatedProperties"] == ["used"]  # RFC 9425 §4.3
        assert ch["newState"] == types["Quota"]
        # /query filters and sorts (RFC 9425 §4.4)
        only = await call(srv, "Quota/query", {"filter": {"resourceType": "count"}})
        [count_id] = only["ids"]
        got = await call(srv, "Quota/get", {"ids": [count_id], "properties": ["used"]})
        assert got["list"] == [{"id": count_id, "used": 1}]
        named = await call(srv, "Quota/query", {"filter": {"name": "storage", "type": "Email"}})
        assert len(named["ids"]) == 1 and named["ids"] != only["ids"]
        by_used = await call(srv, "Quota/query", {"sort": [{"property": "used", "isAscending": True}]})
        assert by_used["ids"][0] == count_id
        qc = await call(srv, "Quota/queryChanges", {"filter": {"resourceType": "count"},
                                                    "sinceQueryState": only["queryState"],
                                                    "calculateTotal": True})
        assert qc["oldQueryState"] == only["queryState"] and qc["total"] == 1
        [[kind, err, _]] = await jmap(srv, [["Quota/query", {"accountId": srv.jmap.account,
                                                              "filter": {"scope": 3}}, "0"]])
        assert kind == "error" and err["type"] == "invalidArguments"
        [[kind, err, _]] = await jmap(srv, [["Quota/set", {"accountId": srv.jmap.account}, "0"]])
        assert kind == "error" and err["type"] == "unknownMethod"


def _snapshot(srv):
    with srv.service.store.read(1) as r:
        return (r.highest_modseq, r.usage(),
                sorted((m["id"], m["uidnext"], tuple(sorted(m["counts"].items()))) for m in r.mailboxes()))


@pytest_twisted.ensureDeferred
async def test_every_way_in_is_refused_over_quota_and_writes_nothing(tmp_path):
    async with running(tmp_path) as srv:
        def first():
            c = srv.imap()
            try:
                c.append("INBOX", message("the one"))
            finally:
                c.logout()

        await in_thread(first)
        srv.service.store.set_quota(USER, {"count": 1})
        before = _snapshot(srv)
        inbox = (await srv.jmap.mailboxes())["INBOX"]["id"]

        # IMAP APPEND (RFC 9208 §4.3.1)
        def imap_append():
            c = srv.imap()
            try:
                c.append("INBOX", message("too many"))
            except c.Error as e:
                return str(e)
            finally:
                c.logout()

        refused = await in_thread(imap_append)
        assert "[OVERQUOTA]" in refused
        # JMAP Email/set create and Email/import: SetError overQuota (RFC 8620 §5.3)
        made = await call(srv, "Email/set", {"create": {"d": {
            "mailboxIds": {inbox: True}, "subject": "draft", "bodyValues": {"1": {"value": "x"}},
            "textBody": [{"partId": "1", "type": "text/plain"}]}}})
        assert made["notCreated"]["d"]["type"] == "overQuota"
        # blob upload: refused while it could never become an Email
        srv.service.store.set_quota(USER, {"count": None, "octets": before[1]["octets"] + 10})
        before = _snapshot(srv)
        url = srv.jmap.session["uploadUrl"].replace("{accountId}", srv.jmap.account)
        response = await srv.jmap.http.post(url, data=b"y" * 100,
                                            headers={**AUTH, b"Content-Type": [b"text/plain"]})
        problem = json.loads(await response.content())
        assert response.code == 403 and problem["type"] == "urn:ietf:params:jmap:error:overQuota"
        assert _snapshot(srv) == before
        srv.service.store.set_quota(USER, {"octets": None})
        raw = message("imported")
        response = await srv.jmap.http.post(url, data=raw,
                                            headers={**AUTH, b"Content-Type": [b"message/rfc822"]})
        assert response.code == 201
        blob = json.loads(await response.content())["blobId"]
        srv.service.store.set_quota(USER, {"octets": before[1]["octets"] + len(raw) - 1})
        before = _snapshot(srv)
        imported = await call(srv, "Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {inbox: True}}}})
        assert imported["notCreated"]["i"]["type"] == "overQuota"
        # LMTP: 552 5.2.2 mailbox full (RFC 3463 §3.3), a permanent failure by default
        [lmtp_port] = await srv.service.bound_ports("lmtp")

        def deliver():
            with smtplib.LMTP("127.0.0.1", lmtp_port.getHost().port, timeout=10) as lmtp:
                try:
                    lmtp.sendmail("bob@example.org", [USER], message("via lmtp"))
                except smtplib.SMTPDataError as e:  # one recipient: its LMTP reply (RFC 2033 §4.2)
                    return e.smtp_code, e.smtp_error
            return None

        code, text = await in_thread(deliver)
        assert code == 552 and text.startswith(b"5.2.2")
        assert _snapshot(srv) == before  # nothing of any refused addition was written
        # deleting is always possible, and then mail comes in again
        srv.service.store.set_quota(USER, {"octets": None, "count": 1})

        def expunge_and_deliver():
            c = srv.imap()
            try:
                c.select_folder("INBOX")
                c.delete_messages([1])
                c.expunge()
            finally:
                c.logout()
            with smtplib.LMTP("127.0.0.1", lmtp_port.getHost().port, timeout=10) as lmtp:
                return lmtp.sendmail("bob@example.org", [USER], message("via lmtp"))

        assert await in_thread(expunge_and_deliver) == {}


@pytest_twisted.ensureDeferred
async def test_lmtp_quota_tempfail_option(tmp_path, monkeypatch):
    """With --quota-tempfail the MTA is told to retry: 452 4.2.2."""
    real = cross_util.Options.parseOptions

    def with_flag(self, argv):
        return real(self, [*argv, "--quota-tempfail"])

    monkeypatch.setattr(cross_util.Options, "parseOptions", with_flag)
    async with running(tmp_path) as srv:
        srv.service.store.set_quota(USER, {"count": 0})
        [lmtp_port] = await srv.service.bound_ports("lmtp")

        def deliver():
            with smtplib.LMTP("127.0.0.1", lmtp_port.getHost().port, timeout=10) as lmtp:
                try:
                    lmtp.sendmail("bob@example.org", [USER], message("later"))
                except smtplib.SMTPDataError as e:  # one recipient: its LMTP reply (RFC 2033 §4.2)
                    return e.smtp_code, e.smtp_error

        code, text = await in_thread(deliver)
        assert code == 452 and text.startswith(b"4.2.2")


def test_cli_quota_and_import_stop(tmp_path):
    """``dualmail user quota`` sets, shows and removes limits; ``dualmail import`` stops at
    the quota with a clear message, keeps what it imported, and a re-run after the limit
    is raised imports only the rest (RFC 9208 limits, docs/operating.md)."""
    data = str(tmp_path / "data")
    dm = [sys.executable, "-m", "dualmail.cli", "--data", data]
    run = lambda *a, **kw: subprocess.run([*dm, *a], capture_output=True, text=True, **kw)  # noqa: E731
    assert run("user", "add", USER, input="pw\n").returncode == 0
    out = run("user", "quota", USER, "--messages", "3", "--storage", "1G")
    assert out.returncode == 0, out.stderr
    assert "messages: 0 of 3" in out.stdout and f"storage: 0 of {1024**3} octets" in out.stdout
    bad = run("user", "quota", USER, "--storage", "lots")
    assert bad.returncode != 0 and "--storage" in bad.stderr
    mbox = tmp_path / "in.mbox"
    with open(mbox, "wb") as f:
        for i in range(5):
            f.write(b"From bob@example.org Mon Feb  7 21:52:25 1994\n")
            f.write(message(f"imported {i}", f"body {i}\r\n", msgid=f"<imp{i}@x>").replace(b"\r\n", b"\n"))
            f.write(b"\n")
    out = run("import", USER, str(mbox))
    assert out.returncode != 0
    assert "over its quota" in out.stderr and "stopped after importing 3 message(s)" in out.stderr, out.stderr
    store = open_store(data)
    try:
        with store.read(1) as r:
            assert r.usage()["count"] == 3
    finally:
        store.close()
    assert run("user", "quota", USER, "--messages", "none").returncode == 0
    out = run("import", USER, str(mbox))
    assert out.returncode == 0, out.stderr
    assert re.search(r"imported 2, skipped 3", out.stdout), out.stdout
    out = run("user", "quota", USER)
    assert "messages: 5 of unlimited" in out.stdout
