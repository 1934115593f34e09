"""Issue 10: a long JMAP Email/query must not stall the reactor (the IMAP side is in
tests/imap/test_imap_reactor_free.py).  The query's search is made to block on an event
the test controls; another request is answered meanwhile, so the query runs on a worker
thread.  Were it on the reactor, nothing could be answered until the bounded wait ran out."""

from __future__ import annotations

import base64
import json
import socket

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.jmap.types import email as email_type
from tests.imap.imap_e2e import PASSWORD, USER, Gate, running

pytestmark = pytest.mark.e2e
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


def _api(port: int, calls: list) -> dict:
    body = json.dumps({"using": USING, "methodCalls": calls}).encode()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    head = (f"POST /jmap/api HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"), data
    return json.loads(data.partition(b"\r\n\r\n")[2])


@pytest_twisted.ensureDeferred
async def test_other_requests_are_answered_while_an_email_query_runs(tmp_path, monkeypatch) -> None:
    gate = Gate(email_type.query_page)

    async with running(tmp_path) as srv:
        [port] = await srv.service.bound_ports("jmap")
        jmap = port.getHost().port
        account = f"A{srv.account}"
        await deferToThread(_api, jmap, [["Core/echo", {}, "warm"]])  # argon2 done before
        monkeypatch.setattr(email_type, "query_page", gate)
        try:
            query = deferToThread(_api, jmap, [["Email/query", {"accountId": account,
                                                                "filter": {"text": "x"}}, "q"]])
            assert await deferToThread(gate.started.wait, 20)
            echo = await deferToThread(_api, jmap, [["Core/echo", {"hello": 1}, "e"]])
            assert echo["methodResponses"] == [["Core/echo", {"hello": 1}, "e"]]
            gate.release()
            [[name, result, _]] = (await query)["methodResponses"]
            assert name == "Email/query" and result["ids"] == []
            assert gate.outcome == {"released": True}, gate.outcome
        finally:
            gate.release()


@pytest_twisted.ensureDeferred
async def test_email_get_with_body_values_runs_off_the_reactor(tmp_path, monkeypatch) -> None:
    """Email/get with fetch*BodyValues decodes and sanitises whole parts (nh3): on a worker
    thread, so a huge or hostile HTML part does not stall other requests."""
    from dualmail.jmap.types import email_props

    gate = Gate(email_props.sanitize_html)
    async with running(tmp_path) as srv:
        [port] = await srv.service.bound_ports("jmap")
        jmap = port.getHost().port
        account = f"A{srv.account}"
        raw = (b"From: a@example.org\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n<p onclick=x>hi</p>\r\n")
        from dualmail.mail.ops import deliver

        deliver(srv.store, srv.account, raw, 1)
        await deferToThread(_api, jmap, [["Core/echo", {}, "warm"]])
        monkeypatch.setattr(email_props, "sanitize_html", gate)
        try:
            get = deferToThread(_api, jmap, [["Email/get", {"accountId": account, "ids": None,
                                                            "properties": ["bodyValues"],
                                                            "fetchHTMLBodyValues": True}, "g"]])
            assert await deferToThread(gate.started.wait, 20)
            echo = await deferToThread(_api, jmap, [["Core/echo", {"hello": 1}, "e"]])
            assert echo["methodResponses"] == [["Core/echo", {"hello": 1}, "e"]]
            gate.release()
            [[name, result, _]] = (await get)["methodResponses"]
            assert name == "Email/get" and list(result["list"][0]["bodyValues"].values())[0]["value"] == "<p>hi</p>\n"
            assert gate.outcome == {"released": True}, gate.outcome
        finally:
            gate.release()
