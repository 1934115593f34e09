"""JMAP over WebSocket (RFC 8887) end to end: the real service on loopback ports
chosen by the OS, driven by a WebSocket implementation other than the server's
(``websockets``' synchronous client, run in a thread), with changes made through
IMAP, LMTP and JMAP.

Every wait is a receive with a timeout; nothing sleeps."""

from __future__ import annotations

import base64
import json
import smtplib
import urllib.request
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.lmtp.lmtp_util import PASSWORD, USER, running

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

pytestmark = pytest.mark.e2e

WEBSOCKET = "urn:ietf:params:jmap:websocket"
CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
TIMEOUT = 10


def session(port: int, auth: str = BASIC) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/jmap/session", headers={"Authorization": auth})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return dict(json.loads(r.read()))


def open_ws(url: str, auth: str | None = BASIC, protocols: list[str] | None = None) -> Any:
    headers = {"Authorization": auth} if auth else {}
    return connect(url, subprotocols=protocols if protocols is not None else ["jmap"],
                   additional_headers=headers, open_timeout=TIMEOUT)


def recv(ws: Any) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=TIMEOUT)))


def send(ws: Any, obj: Any) -> None:
    ws.send(json.dumps(obj))


def deliver(port: int, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("bob@example.org", [USER], (
            f"From: bob@example.org\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\nhello\r\n").encode())


async def in_thread(fn: Any, *args: Any) -> Any:
    return await deferToThread(fn, *args)


@pytest_twisted.ensureDeferred
async def test_session_capability_and_handshake(tmp_path):
    """§3: an absolute ws:// URL and supportsPush; §4.1/§4.2: credentials at the
    upgrade as for HTTP, and the ``jmap`` subprotocol is required."""
    async with running(tmp_path) as srv:
        def run() -> None:
            s = session(srv.jmap_port)
            cap = s["capabilities"][WEBSOCKET]
            assert cap == {"url": f"ws://127.0.0.1:{srv.jmap_port}/jmap/ws", "supportsPush": True}
            with open_ws(cap["url"]) as ws:
                assert ws.subprotocol == "jmap"
            for auth, protocols, status in (
                (None, ["jmap"], 401),  # no credentials
                ("Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode(), ["jmap"], 401),
                (BASIC, [], 400),  # no subprotocol
                (BASIC, ["chat"], 400),  # not jmap
            ):
                with pytest.raises(InvalidStatus) as info:
                    open_ws(cap["url"], auth, protocols)
                assert info.value.response.status_code == status
            # Bearer (an app token) works as on the HTTP routes
            token = srv.service.store.create_token(USER, kind="app")
            with open_ws(cap["url"], "Bearer " + token) as ws:
                send(ws, {"@type": "Request", "id": "b", "using": [CORE],
                          "methodCalls": [["Core/echo", {"x": 1}, "0"]]})
                assert recv(ws)["methodResponses"] == [["Core/echo", {"x": 1}, "0"]]
            # a plain GET (no upgrade) gets no WebSocket
            req = urllib.request.Request(cap["url"].replace("ws://", "http://"), headers={"Authorization": BASIC})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=TIMEOUT)
            assert err.value.code >= 400

        await in_thread(run)


@pytest_twisted.ensureDeferred
async def test_requests_responses_and_errors(tmp_path):
    """§4.3.2-§4.3.4: Request/Response with id/requestId, several in flight on one
    socket, RequestErrors with the request's id, the connection surviving each."""
    async with running(tmp_path) as srv:
        def run() -> None:
            s = session(srv.jmap_port)
            account = s["primaryAccounts"][MAIL]
            with open_ws(s["capabilities"][WEBSOCKET]["url"]) as ws:
                # several requests in flight; answers matched by requestId
                ids = [f"R{i}" for i in range(6)]
                for i, rid in enumerate(ids):
                    send(ws, {"@type": "Request", "id": rid, "using": [CORE, MAIL], "methodCalls": [
                        ["Mailbox/get", {"accountId": account, "properties": ["name"]}, "m"],
                        ["Core/echo", {"n": i}, "e"]]})
                got = {}
                for _ in ids:
                    r = recv(ws)
                    assert r["@type"] == "Response"
                    assert r["sessionState"] == s["state"]
                    got[r["requestId"]] = r
                assert set(got) == set(ids)
                for i, rid in enumerate(ids):
                    [mb, echo] = got[rid]["methodResponses"]
                    assert mb[0] == "Mailbox/get" and "INBOX" in {m["name"] for m in mb[1]["list"]}
                    assert echo == ["Core/echo", {"n": i}, "e"]
                # no id: none echoed
                send(ws, {"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {}, "0"]]})
                r = recv(ws)
                assert "requestId" not in r and r["methodResponses"] == [["Core/echo", {}, "0"]]

                def error(message: Any, raw: bool = False) -> dict[str, Any]:
                    ws.send(message if raw else json.dumps(message))
                    r = recv(ws)
                    assert r["@type"] == "RequestError", r
                    return r

                # the RFC's own example (§4.4): not JSON, requestId null
                e = error("The quick brown fox jumps\n over the lazy dog.", raw=True)
                assert (e["type"], e["status"], e["requestId"]) == ("urn:ietf:params:jmap:error:notJSON", 400, None)
                e = error('{"@type": "Request", "id": "d", "using": [], "using": []}', raw=True)  # I-JSON
                assert e["type"].endswith(":notJSON")
                e = error([1, 2])
                assert e["type"].endswith(":notRequest")
                e = error({"@type": "Bogus", "id": "x"})
                assert e["type"].endswith(":notRequest") and e["requestId"] == "x"
                e = error({"id": "y", "using": [CORE], "methodCalls": []})  # no @type
                assert e["type"].endswith(":notRequest") and e["requestId"] == "y"
                e = error({"@type": "Request", "id": "u", "using": ["urn:example:nope"], "methodCalls": []})
                assert (e["type"], e["requestId"]) == ("urn:ietf:params:jmap:error:unknownCapability", "u")
                e = error({"@type": "Request", "id": "c", "using": [CORE],
                           "methodCalls": [["Core/echo", {}, str(i)] for i in range(17)]})
                assert (e["type"], e["limit"], e["requestId"]) == (
                    "urn:ietf:params:jmap:error:limit", "maxCallsInRequest", "c")
                e = error({"@type": "Request", "id": "m", "using": [CORE], "methodCalls": [["Core/echo", {}]]})
                assert e["type"].endswith(":notRequest") and e["requestId"] == "m"
                # maxSizeRequest (10,000,000 octets): the limit error, the socket stays
                big = json.dumps({"@type": "Request", "id": "big", "using": [CORE],
                                  "methodCalls": [["Core/echo", {"pad": "x" * 10_000_000}, "0"]]})
                e = error(big, raw=True)
                assert (e["type"], e["limit"]) == ("urn:ietf:params:jmap:error:limit", "maxSizeRequest")
                # an unknown method is a method-level error inside a Response, as over HTTP
                send(ws, {"@type": "Request", "id": "z", "using": [CORE], "methodCalls": [["Nope/get", {}, "0"]]})
                r = recv(ws)
                assert r["methodResponses"] == [["error", {"type": "unknownMethod"}, "0"]]
                # §4.3.1: a binary frame closes the connection with 1003
                ws.send(b"\x00\x01")
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=TIMEOUT)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

        await in_thread(run)


@pytest_twisted.ensureDeferred
async def test_push_enable_disable_and_push_state(tmp_path):
    """§4.3.5: StateChanges after WebSocketPushEnable, filtered to dataTypes, with a
    pushState; a pushState given back catches up at once; WebSocketPushDisable
    stops them. Changes come from LMTP, IMAP and JMAP."""
    from imapclient import IMAPClient

    async with running(tmp_path) as srv:
        def run() -> None:
            s = session(srv.jmap_port)
            account = s["primaryAccounts"][MAIL]
            url = s["capabilities"][WEBSOCKET]["url"]
            with open_ws(url) as ws:
                send(ws, {"@type": "WebSocketPushEnable", "dataTypes": ["Email"]})
                deliver(srv.lmtp_port, "one")
                change = recv(ws)
                assert change["@type"] == "StateChange"
                assert list(change["changed"]) == [account]
                assert set(change["changed"][account]) == {"Email"}  # Mailbox/Thread filtered out
                first = change["pushState"]
                assert change["changed"][account]["Email"] == first  # the commit's modseq

                # a Mailbox-only change is not pushed with dataTypes ["Email"]: the next
                # message is the Email change made after it
                send(ws, {"@type": "Request", "id": "mb", "using": [CORE, MAIL], "methodCalls": [
                    ["Mailbox/set", {"accountId": account, "create": {"k": {"name": "Pushed"}}}, "0"]]})
                assert recv(ws)["requestId"] == "mb"
                imap = IMAPClient("127.0.0.1", srv.imap_port, ssl=False, timeout=TIMEOUT)
                imap.login(USER, PASSWORD)
                imap.select_folder("INBOX")
                imap.add_flags([1], [b"\\Flagged"])
                change = recv(ws)
                assert set(change["changed"][account]) == {"Email"}
                assert int(change["pushState"]) > int(first) + 1

                # re-enable for every type (null); JMAP Email/set is pushed too
                send(ws, {"@type": "WebSocketPushEnable", "dataTypes": None})
                ids = imap.search()
                email_id = imap.fetch(ids, ["EMAILID"])[ids[0]][b"EMAILID"][0].decode()
                send(ws, {"@type": "Request", "id": "kw", "using": [CORE, MAIL], "methodCalls": [
                    ["Email/set", {"accountId": account, "update": {email_id: {"keywords/$seen": True}}}, "0"]]})
                got = [recv(ws), recv(ws)]  # the push and the response, either order
                [push] = [m for m in got if m["@type"] == "StateChange"]
                assert {"Email", "Mailbox"} <= set(push["changed"][account])
                last = push["pushState"]

                # disable: the next change is not pushed; the next message is the Response
                send(ws, {"@type": "WebSocketPushDisable"})
                deliver(srv.lmtp_port, "two")
                send(ws, {"@type": "Request", "id": "after", "using": [CORE], "methodCalls": [["Core/echo", {}, "0"]]})
                assert recv(ws)["requestId"] == "after"
                imap.logout()

            # a new connection with the last pushState: everything since at once
            with open_ws(url) as ws:
                send(ws, {"@type": "WebSocketPushEnable", "dataTypes": ["Email", "Thread"], "pushState": last})
                change = recv(ws)
                assert set(change["changed"][account]) == {"Email", "Thread"}  # "two" arrived
                assert int(change["pushState"]) > int(last)
                # up to date: nothing to catch up; the next message answers the request
                send(ws, {"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": change["pushState"]})
                send(ws, {"@type": "Request", "id": "q", "using": [CORE], "methodCalls": [["Core/echo", {}, "0"]]})
                assert recv(ws)["requestId"] == "q"
                # bad arguments: a RequestError, push unchanged
                send(ws, {"@type": "WebSocketPushEnable", "dataTypes": "Email"})
                assert recv(ws)["type"].endswith(":notRequest")

        await in_thread(run)


@pytest_twisted.ensureDeferred
async def test_browser_push_token_socket_and_no_token_in_logs(tmp_path):
    """A browser cannot set headers on a WebSocket: the push-only token of the
    Session's eventSourceUrl opens a push-only socket (Requests are refused 403).
    An app token is not accepted in the URL, and no token reaches the log."""
    from urllib.parse import parse_qs, urlsplit

    from twisted.logger import formatEvent, globalLogPublisher

    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(formatEvent(event) + repr(event.get("log_text", "")) + repr(event.get("message", "")))

    globalLogPublisher.addObserver(observe)
    try:
        async with running(tmp_path) as srv:
            def run() -> str:
                s = session(srv.jmap_port)
                account = s["primaryAccounts"][MAIL]
                [token] = parse_qs(urlsplit(s["eventSourceUrl"]).query)["access_token"]
                url = s["capabilities"][WEBSOCKET]["url"]
                with open_ws(f"{url}?access_token={token}", auth=None) as ws:
                    send(ws, {"@type": "WebSocketPushEnable", "dataTypes": None})
                    deliver(srv.lmtp_port, "browser")
                    change = recv(ws)
                    assert "Email" in change["changed"][account]
                    send(ws, {"@type": "Request", "id": "r", "using": [CORE], "methodCalls": [["Core/echo", {}, "0"]]})
                    e = recv(ws)
                    assert (e["@type"], e["status"], e["requestId"]) == ("RequestError", 403, "r")
                app_token = srv.service.store.create_token(USER, kind="app")
                with pytest.raises(InvalidStatus) as info:
                    open_ws(f"{url}?access_token={app_token}", auth=None)
                assert info.value.response.status_code == 401
                return token + " " + app_token

            tokens = await in_thread(run)
    finally:
        globalLogPublisher.removeObserver(observe)
    text = "\n".join(lines)
    assert "JMAP WebSocket from" in text  # the connections were logged...
    for token in tokens.split():
        assert token not in text  # ...never a credential


@pytest_twisted.ensureDeferred
async def test_frames_sent_are_not_logged(tmp_path):
    """The protocol's own events (open, close) reach the log; autobahn's per-frame debug
    calls stay no-ops: before, a Twisted Logger in autobahn's ``log`` attribute made every
    frame sent a debug event that twistd's observer formatted and wrote, a log line per
    socket and push."""
    from twisted.logger import LogLevel, globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        async with running(tmp_path) as srv:
            def run() -> None:
                s = session(srv.jmap_port)
                account = s["primaryAccounts"][MAIL]
                with open_ws(s["capabilities"][WEBSOCKET]["url"]) as ws:
                    send(ws, {"@type": "WebSocketPushEnable", "dataTypes": None})
                    for i in range(3):
                        deliver(srv.lmtp_port, f"frame{i}")
                        assert "Email" in recv(ws)["changed"][account]
                    send(ws, {"@type": "Request", "id": "r", "using": [CORE], "methodCalls": [["Core/echo", {}, "0"]]})
                    assert recv(ws)["requestId"] == "r"

            await in_thread(run)
    finally:
        globalLogPublisher.removeObserver(events.append)
    ours = [e for e in events if str(e.get("log_namespace", "")).startswith("dualmail.jmap.websocket")]
    assert any(e["log_level"] == LogLevel.info and "JMAP WebSocket from" in e["log_format"] for e in ours)
    debug = [e for e in events if e.get("log_level") == LogLevel.debug
             and "WebSocket" in str(e.get("log_namespace", "")) + str(e.get("log_format", ""))]
    assert debug == []
    assert not [e for e in events if "bytes for peer" in str(e.get("log_format", ""))]
