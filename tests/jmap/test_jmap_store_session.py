"""Session object and authentication against the real store (RFC 8620 §2,
RFC 7617 Basic, RFC 6750 Bearer, the push-only token)."""

from __future__ import annotations

import contextlib
import io
import json
import time

from dualmail import cli
from dualmail.jmap.session import CORE
from dualmail.jmap.types.quota import QUOTA
from dualmail.store.store import open_store
from tests.jmap.jmap_store_util import (
    ALICE, BASE, MAIL, SUBMISSION, VACATION, Client, aid, basic, has_result, header, result_of,
)


def test_session_object(client, alice):
    response = client.request("GET", "/.well-known/jmap")
    assert response.code == 200
    session = json.loads(response.body)
    account = aid(alice)
    assert set(session["capabilities"]) == {CORE, MAIL, SUBMISSION, VACATION, QUOTA,
                                            "urn:ietf:params:jmap:websocket"}
    assert session["capabilities"][MAIL] == {}
    assert session["username"] == "alice@example.org"
    assert list(session["accounts"]) == [account]
    caps = session["accounts"][account]["accountCapabilities"]
    assert caps[MAIL]["mayCreateTopLevelMailbox"] is True
    assert caps[MAIL]["maxSizeMailboxName"] == 255
    assert caps[SUBMISSION] == {"maxDelayedSend": 0, "submissionExtensions": {}, "maxRecipients": 100}
    assert caps[VACATION] == {}
    assert session["accounts"][account]["isPersonal"] is True
    assert session["primaryAccounts"] == {MAIL: account, SUBMISSION: account, VACATION: account,
                                          QUOTA: account}
    assert caps[QUOTA] == {}  # RFC 9425 §2.1
    assert session["apiUrl"] == BASE + "/jmap/api"
    # the same object at /jmap/session
    assert json.loads(client.request("GET", "/jmap/session").body) == session


def test_missing_credentials_401(client):
    response = client.request("GET", "/.well-known/jmap", headers={})
    assert response.code == 401
    challenges = response.headers.getRawHeaders("www-authenticate")
    assert any(c.startswith("Basic ") for c in challenges) and any(c.startswith("Bearer ") for c in challenges)


def test_wrong_password_is_delayed_then_401(client, clock, store):
    d = client.request("GET", "/.well-known/jmap", headers=basic("alice@example.org", "wrong"), fired=False)
    assert not has_result(d)  # the answer waits for the failed-login delay
    clock.advance(0.999)
    client.stub.flush()
    assert not has_result(d)
    clock.advance(0.002)
    client.stub.flush()
    response = client.finish(d)
    assert response.code == 401
    assert header(response, "content-type") == "application/problem+json"


def test_unknown_user_is_delayed_too(client, clock):
    d = client.request("GET", "/jmap/session", headers=basic("nobody@example.org", "x"), fired=False)
    assert not has_result(d)
    clock.advance(1.0)
    client.stub.flush()
    assert client.finish(d).code == 401


def test_bearer_token_from_cli(client, store, alice, tmp_path):
    """``dualmail token create`` prints a token the Bearer path accepts;
    ``token revoke`` removes it."""
    data = getattr(store.kv, "url", None) or str(tmp_path / "data")  # either engine
    store.close()  # the CLI opens the store itself (another process would)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["--store" if "://" in data else "--data", data, "token", "create", "alice@example.org"]) == 0
    token = out.getvalue().strip()
    reopened = open_store(data, sync=False)
    try:
        c = Client(reopened, auth=ALICE)
        response = c.request("GET", "/jmap/session", headers={"Authorization": "Bearer " + token})
        assert response.code == 200
        assert json.loads(response.body)["username"] == "alice@example.org"
        reopened.close()
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli.main(["--store" if "://" in data else "--data", data, "token", "revoke", "alice@example.org"]) == 0
        reopened = open_store(data, sync=False)
        c = Client(reopened, auth=ALICE)
        d = c.request("GET", "/jmap/session", headers={"Authorization": "Bearer " + token}, fired=False)
        c.clock.advance(1.0)
        c.stub.flush()
        response = c.finish(d)
        assert response.code == 401
        assert 'error="invalid_token"' in " ".join(response.headers.getRawHeaders("www-authenticate"))
    finally:
        reopened.close()


def test_push_token_only_works_on_eventsource(client, clock, alice):
    response = client.request("POST", "/jmap/pushtoken")
    assert response.code == 201
    body = json.loads(response.body)
    token = body["token"]
    assert body["expiresIn"] == 300
    assert body["eventSourceUrl"].startswith(BASE + "/jmap/eventsource/?")
    # not a Bearer token for the API
    d = client.request("GET", "/jmap/session", headers={"Authorization": "Bearer " + token}, fired=False)
    clock.advance(1.0)
    client.stub.flush()
    assert client.finish(d).code == 401
    # nor as access_token anywhere but the EventSource
    d = client.request("GET", "/jmap/session?access_token=" + token, headers={}, fired=False)
    client.stub.flush()
    assert client.finish(d).code == 401
    # on the EventSource it is accepted (closeafter=no: the stream stays open)
    d = client.request("GET", f"/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token={token}",
                       headers={}, fired=False)
    response = result_of(d)
    assert response.code == 200
    assert header(response, "content-type") == "text/event-stream"


def test_app_token_is_not_a_push_token(client, store, clock):
    token = store.create_token("alice@example.org")
    d = client.request("GET", f"/jmap/eventsource/?types=*&closeafter=no&ping=0&access_token={token}",
                       headers={}, fired=False)
    clock.advance(1.0)
    client.stub.flush()
    assert client.finish(d).code == 401


def test_expired_push_token_refused(client, store, clock):
    token = store.create_token("alice@example.org", kind="push", ttl=1)
    assert store.verify_token(token, kind="push") is not None
    assert store.expire_tokens(time.time() + 10) == 1
    assert store.verify_token(token, kind="push") is None
