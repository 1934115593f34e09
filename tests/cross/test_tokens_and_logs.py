"""App tokens with scopes over the real JMAP and IMAP listeners (issue 17), and what the
server logs: one fail2ban-matchable line per failed login, never a password or token.

RFC 8620 §3.6.2: a call the credentials may not make answers ``forbidden``."""

from __future__ import annotations

import base64
import imaplib
import json
import re

import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from cross_util import PASSWORD, USER, USING, in_thread, running

# docs/security.md gives this failregex; fail2ban replaces <HOST> with its host pattern
FAILREGEX = r"auth failure: ip=<HOST> protocol=\S+ mechanism=\S+ failures=\d+ delay=\S+ user=\S*$"


async def _post(srv, headers: dict, calls: list) -> tuple[int, dict]:
    jmap = srv.jmap
    body = json.dumps({"using": USING, "methodCalls": calls}).encode()
    response = await jmap.http.post(jmap.session["apiUrl"], data=body,
                                    headers={**headers, b"Content-Type": [b"application/json"]})
    text = await response.content()
    return response.code, (json.loads(text) if text else {})


def bearer(token: str) -> dict:
    return {b"Authorization": [b"Bearer " + token.encode()]}


@pytest_twisted.ensureDeferred
async def test_read_only_token_gets_forbidden_on_set(tmp_path) -> None:
    async with running(tmp_path) as srv:
        store, account = srv.service.store, srv.jmap.account
        read = store.create_token(USER, scope="jmap-read")
        full = store.create_token(USER, scope="jmap")
        imap_only = store.create_token(USER, scope="imap")
        code, got = await _post(srv, bearer(read), [["Mailbox/get", {"accountId": account, "ids": None}, "0"]])
        assert code == 200 and got["methodResponses"][0][0] == "Mailbox/get"
        state = got["methodResponses"][0][1]["state"]
        create = ["Mailbox/set", {"accountId": account, "create": {"k": {"name": "Nope"}}}, "1"]
        code, got = await _post(srv, bearer(read), [create])
        assert got["methodResponses"] == [["error", {"type": "forbidden", "description": got[
            "methodResponses"][0][1]["description"]}, "1"]]
        code, got = await _post(srv, bearer(read), [["Mailbox/get", {"accountId": account, "ids": None}, "0"]])
        assert got["methodResponses"][0][1]["state"] == state  # nothing changed
        assert "Nope" not in {m["name"] for m in got["methodResponses"][0][1]["list"]}
        upload = await srv.jmap.http.post(srv.jmap.session["uploadUrl"].format(accountId=account),
                                          data=b"x", headers=bearer(read))
        assert upload.code == 403
        code, got = await _post(srv, bearer(full), [create])
        assert "k" in got["methodResponses"][0][1]["created"]
        code, _ = await _post(srv, bearer(imap_only), [create])
        assert code == 401  # an IMAP-only token is no JMAP credential
        basic = {b"Authorization": [b"Basic " + base64.b64encode(f"{USER}:{read}".encode())]}
        code, got = await _post(srv, basic, [create])  # a token as the Basic password: same scope
        assert got["methodResponses"][0][1]["type"] == "forbidden"
        [rec] = [r for r in store.list_tokens(USER) if r["scope"] == "jmap"]
        store.revoke_tokens(USER, rec["id"])
        code, _ = await _post(srv, bearer(full), [create])
        assert code == 401  # revocation: the next request


@pytest_twisted.ensureDeferred
async def test_eventsource_ends_when_its_token_is_revoked(tmp_path) -> None:
    async with running(tmp_path) as srv:
        store = srv.service.store
        token = store.create_token(USER, scope="jmap-read")
        url = srv.jmap.session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
        from cross_util import EventSource

        source = EventSource(await srv.jmap.http.get(url, headers=bearer(token), unbuffered=True))
        await srv.jmap.call("Mailbox/set", {"create": {"a": {"name": "One"}}})
        await source.wait_for(lambda e: e[0] == "state")
        store.revoke_tokens(USER, token)
        await srv.jmap.call("Mailbox/set", {"create": {"b": {"name": "Two"}}})
        await source.done  # the stream ended instead of carrying the second change
        assert [e[0] for e in source.events] == ["state"]


def _imap_failures(port: int, token: str) -> None:
    for password in ("wrong-" + PASSWORD, token[::-1]):
        M = imaplib.IMAP4("127.0.0.1", port)
        try:
            M.login(USER, password)
        except imaplib.IMAP4.error:
            pass
        M.logout()
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login(USER, token)
    M.logout()
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login(USER, PASSWORD)
    M.logout()


@pytest_twisted.ensureDeferred
async def test_logs_match_failregex_and_hold_no_secret(tmp_path) -> None:
    lines: list[str] = []

    def observer(event: dict) -> None:
        lines.append(formatEvent(event) or "")
        if event.get("log_failure") is not None:
            lines.append(str(event["log_failure"].getTraceback()))

    globalLogPublisher.addObserver(observer)
    try:
        async with running(tmp_path) as srv:
            token = srv.service.store.create_token(USER, scope="imap")
            jmap_token = srv.service.store.create_token(USER, scope="jmap")
            await in_thread(_imap_failures, srv.imap_port, token)
            wrong = {b"Authorization": [b"Basic " + base64.b64encode(f"{USER}:bad-{PASSWORD}".encode())]}
            code, _ = await _post(srv, wrong, [])
            assert code == 401
            code, _ = await _post(srv, bearer(jmap_token + "x"), [])
            assert code == 401
            code, _ = await _post(srv, bearer(jmap_token), [])
            assert code == 200
    finally:
        globalLogPublisher.removeObserver(observer)
    text = "\n".join(lines)
    for secret in (PASSWORD, token, token[::-1], jmap_token):
        assert secret not in text, secret
    pattern = re.compile(FAILREGEX.replace("<HOST>", r"(?P<host>\S+)"))
    failures = [m for m in map(pattern.search, lines) if m]
    # two IMAP LOGIN failures, one Basic, one bearer; each one line, all from loopback
    assert len(failures) == 4, [line for line in lines if "failure" in line]
    assert {m.group("host") for m in failures} == {"127.0.0.1"}
    protocols = sorted(re.search(r"protocol=(\S+)", m.string).group(1) for m in failures)
    assert protocols == ["imap", "imap", "jmap", "jmap"]
