"""The push-only token in the Session's eventSourceUrl (for browsers, whose
EventSource cannot send an Authorization header), the websocket capability
(RFC 8887 §3) and the access log that never holds a token."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from dualmail.jmap.app import access_log_line
from dualmail.jmap.service import SESSION_PUSH_TOKEN_RENEW, SESSION_PUSH_TOKEN_TTL
from tests.jmap.jmap_store_util import ALICE, BASE, BOB, JSON, USING, Client, aid, basic

WEBSOCKET = "urn:ietf:params:jmap:websocket"


def session(client: Client) -> dict:
    response = client.request("GET", "/jmap/session")
    assert response.code == 200
    return dict(json.loads(response.body))


def token_of(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["access_token"]
    return token


def test_event_source_url_template_carries_a_push_only_token(client, store, alice):
    s = session(client)
    url = s["eventSourceUrl"]
    assert url.startswith(BASE + "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}&access_token=")
    token = token_of(url.format(types="*", closeafter="no", ping="0"))
    # push-only and account-scoped: the store knows it as a push token of alice
    assert store.verify_token(token, kind="push") == alice
    assert store.verify_token(token, kind="app") is None
    assert token != ALICE[1]
    # not a Bearer token for the API or the session
    d = client.request("GET", "/jmap/session", headers={"Authorization": "Bearer " + token}, fired=False)
    client.clock.advance(1.0)
    client.stub.flush()
    assert client.finish(d).code == 401


def test_token_is_reused_then_rotated_and_the_state_follows(client, store, alice):
    first = session(client)
    again = session(client)
    assert again["eventSourceUrl"] == first["eventSourceUrl"]  # no write per session fetch
    assert again["state"] == first["state"]
    # an API response's sessionState is that of the Session now
    response = client.request("POST", "/jmap/api", body={"using": USING, "methodCalls": [["Core/echo", {}, "0"]]},
                              headers={**client.headers, **JSON})
    assert json.loads(response.body)["sessionState"] == first["state"]
    # near its end the token is replaced: a new URL, a new session state
    client.clock.advance(SESSION_PUSH_TOKEN_TTL - SESSION_PUSH_TOKEN_RENEW + 1)
    rotated = session(client)
    assert token_of(rotated["eventSourceUrl"]) != token_of(first["eventSourceUrl"])
    assert rotated["state"] != first["state"]

    def api_state() -> str:
        r = client.request("POST", "/jmap/api", body={"using": USING, "methodCalls": [["Core/echo", {}, "0"]]},
                           headers={**client.headers, **JSON})
        return str(json.loads(r.body)["sessionState"])

    # the API's sessionState is remembered, but only while the Session is the same
    assert api_state() == rotated["state"]
    # revoking the account's tokens replaces it at the next fetch
    store.revoke_tokens(ALICE[0])
    assert store.verify_token(token_of(rotated["eventSourceUrl"])) is None
    renewed = session(client)
    assert store.verify_token(token_of(renewed["eventSourceUrl"]), kind="push") == alice
    assert renewed["state"] != rotated["state"]
    assert api_state() == renewed["state"]


def test_tokens_are_per_account(store, alice, clock):
    bob = store.create_account(*BOB)
    a = token_of(session(Client(store, clock))["eventSourceUrl"])
    b = token_of(session(Client(store, clock, auth=BOB))["eventSourceUrl"])
    assert a != b
    assert store.verify_token(b, kind="push") == bob
    assert aid(bob) != aid(alice)


def test_websocket_capability_follows_the_scheme(client, store, alice):
    s = session(client)
    assert s["capabilities"][WEBSOCKET] == {"url": "wss://mail.example.org/jmap/ws", "supportsPush": True}
    plain = Client(store, client.clock)
    plain.app.base_url = "http://127.0.0.1:8080"
    s = session(plain)
    assert s["capabilities"][WEBSOCKET]["url"] == "ws://127.0.0.1:8080/jmap/ws"


def test_access_log_line_blanks_tokens():
    class Request:
        uri = b"/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token=SECRET-TOKEN_1"
        method = b"GET"
        clientproto = b"HTTP/1.1"
        code = 200
        sentLength = 10

        def getClientAddress(self):
            from twisted.internet.address import IPv4Address

            return IPv4Address("TCP", "127.0.0.1", 1)

        def getHeader(self, name):
            return {b"referer": b"http://x/?access_token=OTHER", b"user-agent": b"ua"}.get(name)

    line = access_log_line("[01/Jan/2026:00:00:00 +0000]", Request())
    assert "SECRET-TOKEN_1" not in line and "OTHER" not in line
    assert "/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token=-" in line


def test_header_path_unchanged(client, alice):
    """An Authorization header on the EventSource still decides, whatever the URL holds."""
    url = session(client)["eventSourceUrl"].format(types="*", closeafter="state", ping="0")
    path = url[len(BASE):]
    d = client.request("GET", path, headers=basic("alice@example.org", "wrong"), fired=False)
    client.clock.advance(1.0)
    client.stub.flush()
    assert client.finish(d).code == 401
