"""End to end: the real ``twistd dualmail`` service (``tap.makeService``) on
loopback ports chosen by the OS, spoken to over real HTTP with treq."""

from __future__ import annotations

import base64
import json

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from dualmail.store.store import open_store
from tests.conftest import store_target
from dualmail.tap import Options, makeService

pytestmark = pytest.mark.e2e

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"alice@example.org:secret")]}
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


@pytest.mark.parametrize("engine", ["lmdb", "postgresql"])
@pytest_twisted.ensureDeferred
async def test_service_session_api_and_push(tmp_path, engine, request):

    from twisted.internet import reactor

    data = store_target(engine, tmp_path, request)  # LMDB directory or PostgreSQL URL
    setup = open_store(data, sync=False)
    alice = setup.create_account("alice@example.org", "secret")
    setup.close()
    options = Options()
    options.parseOptions(["--data", data, "--jmap", "tcp:0:interface=127.0.0.1",
                          "--imap", "tcp:0:interface=127.0.0.1", "--no-first-account"])
    service = makeService(options, reactor)
    service.startService()
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, pool=pool))
    try:
        [port] = await service.bound_ports("jmap")
        base = f"http://127.0.0.1:{port.getHost().port}"

        response = await http.get(base + "/.well-known/jmap", headers=AUTH)
        assert response.code == 200
        session = json.loads(await response.content())
        assert session["username"] == "alice@example.org"
        account_id = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        assert session["apiUrl"] == base + "/jmap/api"  # taken from the Host header

        wrong = {b"Authorization": [b"Basic " + base64.b64encode(b"alice@example.org:nope")]}
        denied = await http.get(base + "/.well-known/jmap", headers=wrong)
        assert denied.code == 401
        await denied.content()

        body = json.dumps({"using": USING, "methodCalls": [
            ["Mailbox/get", {"accountId": account_id, "properties": ["name", "role"]}, "0"]]}).encode()
        response = await http.post(session["apiUrl"], data=body,
                                   headers={**AUTH, b"Content-Type": [b"application/json"]})
        assert response.code == 200
        [[name, result, _]] = json.loads(await response.content())["methodResponses"]
        assert name == "Mailbox/get"
        assert {m["role"] for m in result["list"]} >= {"inbox", "trash"}

        url = session["eventSourceUrl"].format(types="*", closeafter="state", ping="0")
        stream = await http.get(url, headers=AUTH, unbuffered=True)
        assert stream.code == 200
        assert stream.headers.getRawHeaders(b"content-type") == [b"text/event-stream"]
        # the response has started, so the server is subscribed: now change the store
        # as IMAP or LMTP would, and the event must arrive (closeafter=state ends it)
        with service.store.write(alice) as tx:
            tx.create_mailbox("Pushed")
            modseq = tx.modseq
        text = (await stream.content()).decode()
        events = [block for block in text.split("\n\n") if block.startswith("event: state")]
        assert len(events) == 1
        change = json.loads(events[0].split("data: ", 1)[1])
        assert change == {"@type": "StateChange", "changed": {account_id: {"Mailbox": str(modseq)}}}
    finally:
        await pool.closeCachedConnections()
        await service.stopService()


@pytest.mark.parametrize("engine", ["lmdb", "postgresql"])
@pytest_twisted.ensureDeferred
async def test_jmapc_client_over_tls(tmp_path, engine, request):
    """A real JMAP client from PyPI (jmapc; synchronous, so in a thread) over
    TLS from an ``ssl:`` endpoint string: session discovery, Core/echo, and
    Mailbox/query + Mailbox/get with a result reference."""
    jmapc = pytest.importorskip("jmapc")
    pytest.importorskip("trustme")
    from twisted.internet.threads import deferToThread

    from tests.conftest import write_tls_files

    key_pem, cert_pem, ca_pem = write_tls_files(tmp_path)

    data = store_target(engine, tmp_path, request)  # LMDB directory or PostgreSQL URL
    setup = open_store(data, sync=False)
    setup.create_account("alice@example.org", "secret")
    setup.close()
    from tests.conftest import start_jmap_over_tls

    service, host = await start_jmap_over_tls(data, key_pem, cert_pem)
    try:

        def run() -> tuple:
            from jmapc import Ref
            from jmapc.methods import CoreEcho, MailboxGet, MailboxQuery

            client = jmapc.Client.create_with_password(host=host, user="alice@example.org", password="secret")
            client.requests_session.trust_env = False  # else REQUESTS_CA_BUNDLE beats verify=
            client.requests_session.verify = str(ca_pem)
            try:
                session = client.jmap_session
                echo = client.request(CoreEcho(data={"hello": "world"}))
                results = client.request([MailboxQuery(), MailboxGet(ids=Ref("/ids"))])
            finally:
                client.requests_session.close()
            return session, echo, results

        session, echo, results = await deferToThread(run)
        assert session.username == "alice@example.org"
        assert session.api_url == f"https://{host}/jmap/api"
        assert echo.data == {"hello": "world"}
        names = {m.name for m in results[1].response.data}
        assert {"INBOX", "Trash", "Sent"} <= names
    finally:
        await service.stopService()
