"""The HTTP layer through StubTreq: Session (RFC 8620 §2), API (§3.1,
§3.6.1), auth (RFC 7617, RFC 6750), CORS, upload/download (§6), EventSource
(§7.3)."""

import base64
import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from jmap_fakes import FOO, FakeAuthenticator, FakeBackend, result_of
from dualmail.jmap.app import JMAPApp, content_disposition, parse_range
from dualmail.jmap.dispatch import Method, core_methods
from dualmail.jmap.session import CORE
from dualmail.jmap.standard import standard_methods

BASE = "https://jmap.example.com"
ALICE = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
JSON = {"Content-Type": "application/json"}


class Client:
    def __init__(self, app):
        self.app = app
        self.stub = StubTreq(app.app.resource())

    def request(self, method, path, *, body=None, headers=ALICE, fired=True, **kw):
        url = path if path.startswith("http") else BASE + path
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        d = self.stub.request(method, url, data=body, headers=headers, **kw)
        self.stub.flush()
        if not fired:
            return d
        return self.finish(d)

    def finish(self, d):
        response = result_of(d)
        d2 = self.stub.content(response)
        self.stub.flush()
        response.body = result_of(d2)
        return response

    def api(self, calls, using=(CORE, FOO), headers=None, **extra):
        return self.request("POST", "/jmap/api", body={"using": list(using), "methodCalls": calls, **extra},
                            headers={**ALICE, **JSON, **(headers or {})})


def has_result(d):
    box = []
    d.addBoth(lambda r: box.append(r) or r)
    return bool(box)


def header(response, name):
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def problem(response):
    assert header(response, "content-type") == "application/problem+json"
    return json.loads(response.body)


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def authenticator():
    return FakeAuthenticator()


@pytest.fixture
def make(authenticator, backend, limits, clock, foo):
    def make(**kw):
        kw.setdefault("methods", {**core_methods(), **standard_methods(foo)})
        kw.setdefault("limits", limits)
        kw.setdefault("clock", clock)
        kw.setdefault("failed_login_delay", 2.0)
        kw.setdefault("base_url", BASE)
        return Client(JMAPApp(authenticator, backend, **kw))

    return make


@pytest.fixture
def client(make):
    return make()


# -- session --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jmap/session", "/.well-known/jmap"])
def test_session(client, path, limits):
    response = client.request("GET", path)
    assert response.code == 200
    assert header(response, "content-type") == "application/json"
    assert header(response, "cache-control") == "no-cache, no-store, must-revalidate"
    session = json.loads(response.body)
    assert session["capabilities"][CORE] == {
        "maxSizeUpload": 64, "maxConcurrentUpload": 1, "maxSizeRequest": 4096, "maxConcurrentRequests": 2,
        "maxCallsInRequest": 8, "maxObjectsInGet": 5, "maxObjectsInSet": 5,
        "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
    }
    assert session["capabilities"][FOO] == {"maxFoosFinangled": 42}
    assert session["accounts"]["A2"] == {"name": "shared@example.com", "isPersonal": False, "isReadOnly": True,
                                         "accountCapabilities": {FOO: {}}}
    assert session["primaryAccounts"] == {FOO: "A1"}
    assert session["username"] == "alice"
    assert session["apiUrl"] == BASE + "/jmap/api"
    assert session["downloadUrl"] == BASE + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}"
    assert session["uploadUrl"] == BASE + "/jmap/upload/{accountId}/"
    assert session["eventSourceUrl"] == BASE + "/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}"
    assert isinstance(session["state"], str) and session["state"]


def test_session_state_tracks_content_and_api(make, backend):
    client = make()
    state = json.loads(client.request("GET", "/jmap/session").body)["state"]
    response = client.api([["Core/echo", {}, "0"]])
    assert json.loads(response.body)["sessionState"] == state
    backend.capabilities = lambda: {FOO: {"maxFoosFinangled": 43}}
    changed = json.loads(client.request("GET", "/jmap/session").body)["state"]
    assert changed != state
    # the API's remembered sessionState follows the change
    assert json.loads(client.api([["Core/echo", {}, "1"]]).body)["sessionState"] == changed


def test_base_url_from_request(make):
    client = make(base_url=None)
    session = json.loads(client.request("GET", "http://mail.example.org:8080/jmap/session").body)
    assert session["apiUrl"] == "http://mail.example.org:8080/jmap/api"


# -- authentication -------------------------------------------------------------


def check_401(response, bearer_error=False):
    assert response.code == 401
    challenges = response.headers.getRawHeaders("www-authenticate")
    assert challenges[0] == 'Basic realm="dualmail", charset="UTF-8"'
    assert challenges[1].startswith('Bearer realm="dualmail"')
    assert ('error="invalid_token"' in challenges[1]) == bearer_error
    assert header(response, "access-control-allow-origin") == "*"
    assert problem(response)["status"] == 401


@pytest.mark.parametrize("path, method", [("/jmap/session", "GET"), ("/jmap/api", "POST"),
                                          ("/jmap/download/A1/blob1/x", "GET"), ("/jmap/eventsource/", "GET"),
                                          ("/jmap/upload/A1/", "POST")])
def test_missing_credentials_401_at_once(client, path, method):
    check_401(client.request(method, path, headers={}))
    check_401(client.request(method, path, headers={"Authorization": "Digest x"}))


@pytest.mark.parametrize("authorization", [
    "Basic " + base64.b64encode(b"alice:wrong").decode(),
    "Basic " + base64.b64encode(b"nobody:secret").decode(),
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
])
def test_wrong_credentials_are_delayed(client, clock, authorization):
    d = client.request("GET", "/jmap/session", headers={"Authorization": authorization}, fired=False)
    assert not has_result(d)
    clock.advance(1.9)
    client.stub.flush()
    assert not has_result(d)
    clock.advance(0.1)
    client.stub.flush()
    check_401(client.finish(d))


def test_bearer(client, clock):
    assert client.request("GET", "/jmap/session", headers={"Authorization": "Bearer tok-alice"}).code == 200
    d = client.request("GET", "/jmap/session", headers={"Authorization": "Bearer bad"}, fired=False)
    clock.advance(2)
    client.stub.flush()
    check_401(client.finish(d), bearer_error=True)


def test_async_authenticator(client, authenticator):
    authenticator.async_results = True
    assert client.request("GET", "/jmap/session").code == 200


def test_utf8_basic_credentials(client, authenticator):
    authenticator.users["jürgen"] = "pässword:with:colons"
    creds = base64.b64encode("jürgen:pässword:with:colons".encode()).decode()
    response = client.request("GET", "/jmap/session", headers={"Authorization": "Basic " + creds})
    assert json.loads(response.body)["username"] == "jürgen"


# -- CORS -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jmap/api", "/jmap/session", "/jmap/upload/A1/", "/anything/else"])
def test_cors_preflight(client, path):
    response = client.request("OPTIONS", path, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.code == 204
    assert header(response, "access-control-allow-origin") == "*"
    assert "POST" in header(response, "access-control-allow-methods")
    assert "Authorization" in header(response, "access-control-allow-headers")
    assert "Content-Type" in header(response, "access-control-allow-headers")
    assert header(response, "access-control-max-age") == "86400"


def test_cors_on_every_response(client):
    for response in [client.request("GET", "/jmap/session"), client.api([["Core/echo", {}, "0"]]),
                     client.request("GET", "/nope"), client.request("GET", "/jmap/api")]:
        assert header(response, "access-control-allow-origin") == "*"
        assert "WWW-Authenticate" in header(response, "access-control-expose-headers")


def test_unknown_path_and_method_are_problems(client):
    assert problem(client.request("GET", "/nope"))["status"] == 404
    assert client.request("GET", "/jmap/api").code == 405


# -- API ------------------------------------------------------------------------


def test_api_echo(client):
    response = client.api([["Core/echo", {"hello": True, "high": 5}, "b3ff"]], createdIds={})
    assert response.code == 200 and header(response, "content-type") == "application/json"
    body = json.loads(response.body)
    assert body["methodResponses"] == [["Core/echo", {"hello": True, "high": 5}, "b3ff"]]
    assert body["createdIds"] == {}


def test_api_round_trip_with_standard_methods(client):
    body = json.loads(client.api([
        ["Foo/set", {"accountId": "A1", "create": {"k1": {"title": "Práctica"}}}, "0"],
        ["Foo/get", {"accountId": "A1", "ids": ["#k1"]}, "1"],
        ["Core/echo", {"#id": {"resultOf": "0", "name": "Foo/set", "path": "/created/k1/id"}}, "2"],
    ], createdIds={"x": "y"}).body)
    assert body["createdIds"] == {"x": "y", "k1": "f1"}
    assert body["methodResponses"][1][1]["list"][0]["title"] == "Práctica"
    assert body["methodResponses"][2][1] == {"id": "f1"}


@pytest.mark.parametrize("body, content_type, kind, status", [
    (b"{not json", "application/json", "notJSON", 400),
    (b'{"using":[],"methodCalls":[]}', "text/plain", "notJSON", 400),
    (b'{"using":[],"methodCalls":[]}', None, "notJSON", 400),
    (b'{"using":[]}', "application/json", "notRequest", 400),
    (b'{"using":["urn:x"],"methodCalls":[]}', "application/json; charset=utf-8", "unknownCapability", 400),
])
def test_request_level_errors(client, body, content_type, kind, status):
    headers = dict(ALICE)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.request("POST", "/jmap/api", body=body, headers=headers)
    assert response.code == status
    details = problem(response)
    assert details["type"] == "urn:ietf:params:jmap:error:" + kind and details["status"] == status
    assert details["detail"]


def test_limit_max_calls(client):
    response = client.api([["Core/echo", {}, str(i)] for i in range(9)])
    assert response.code == 400
    assert problem(response) == {"type": "urn:ietf:params:jmap:error:limit", "status": 400, "limit": "maxCallsInRequest",
                                 "detail": "the request has 9 method calls; the limit is 8"}


def test_limit_max_size_request(client):
    response = client.api([["Core/echo", {"pad": "x" * 5000}, "0"]])
    assert response.code == 413
    assert problem(response)["limit"] == "maxSizeRequest"


def test_limit_max_concurrent_requests(make, limits):
    gate = Deferred()

    def slow(ctx, args):
        return gate.addCallback(lambda _: [("X/slow", {})])

    client = make(methods={**core_methods(), "X/slow": Method(CORE, slow)})
    body = {"using": [CORE], "methodCalls": [["X/slow", {}, "0"]]}
    pending = [client.request("POST", "/jmap/api", body=body, headers={**ALICE, **JSON}, fired=False) for _ in range(2)]
    third = client.api([["Core/echo", {}, "0"]], using=[CORE])
    assert third.code == 429 and problem(third)["limit"] == "maxConcurrentRequests"
    other = client.request("POST", "/jmap/api", body={"using": [], "methodCalls": []},
                           headers={**JSON, "Authorization": "Basic " + base64.b64encode(b"bob:hunter2").decode()})
    assert other.code == 200  # per principal
    gate.callback(None)
    client.stub.flush()
    assert [client.finish(d).code for d in pending] == [200, 200]
    assert client.api([["Core/echo", {}, "0"]], using=[CORE]).code == 200


def test_method_errors_are_200(client):
    body = json.loads(client.api([["Nope/nope", {}, "0"], ["Foo/get", {"accountId": "zz"}, "1"]]).body)
    assert body["methodResponses"] == [["error", {"type": "unknownMethod"}, "0"],
                                       ["error", {"type": "accountNotFound", "description": "no account 'zz'"}, "1"]]


# -- download -------------------------------------------------------------------


def test_download(client):
    response = client.request("GET", "/jmap/download/A1/blob1/r%C3%A9sum%C3%A9%20final.txt?accept=text/plain")
    assert response.code == 200 and response.body == b"0123456789"
    assert header(response, "content-type") == "text/plain"
    assert header(response, "content-disposition") == (
        "attachment; filename=\"r_sum_ final.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.txt")
    assert header(response, "accept-ranges") == "bytes"
    assert "immutable" in header(response, "cache-control")


@pytest.mark.parametrize("range_header, body, content_range", [
    ("bytes=0-3", b"0123", "bytes 0-3/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-2", b"89", "bytes 8-9/10"),
    ("bytes=5-500", b"56789", "bytes 5-9/10"),
])
def test_download_range(client, range_header, body, content_range):
    response = client.request("GET", "/jmap/download/A1/blob1/x.bin", headers={**ALICE, "Range": range_header})
    assert response.code == 206 and response.body == body
    assert header(response, "content-range") == content_range
    assert header(response, "content-type") == "application/octet-stream"


@pytest.mark.parametrize("range_header", ["bytes=10-", "bytes=99-100", "bytes=-0"])
def test_download_range_unsatisfiable(client, range_header):
    response = client.request("GET", "/jmap/download/A1/blob1/x.bin", headers={**ALICE, "Range": range_header})
    assert response.code == 416
    assert header(response, "content-range") == "bytes */10"


def test_download_ignored_range_and_errors(client):
    response = client.request("GET", "/jmap/download/A1/blob1/x", headers={**ALICE, "Range": "bytes=0-1,4-5"})
    assert response.code == 200 and response.body == b"0123456789"
    assert problem(client.request("GET", "/jmap/download/A1/nope/x"))["status"] == 404
    assert problem(client.request("GET", "/jmap/download/ZZ/blob1/x"))["status"] == 404
    assert client.request("GET", "/jmap/download/A1/blob1/x?accept=text/html%0d%0aX-Evil:%201").code == 400


def test_parse_range_and_disposition_units():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=3-1", 10) is None
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=0-0", 0) == "unsatisfiable"
    assert parse_range("bytes=-5", 3) == (0, 2)
    assert content_disposition('a"b\\c.txt') == "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt"


# -- upload ---------------------------------------------------------------------


def test_upload(client, backend):
    response = client.request("POST", "/jmap/upload/A1/", body=b"hello", headers={**ALICE, "Content-Type": "text/plain"})
    assert response.code == 201
    assert json.loads(response.body) == {"accountId": "A1", "blobId": "up1", "type": "text/plain", "size": 5}
    assert backend.uploaded == [("A1", "text/plain", b"hello")]


def test_upload_errors(client, backend):
    too_big = client.request("POST", "/jmap/upload/A1/", body=b"x" * 65)
    assert too_big.code == 413 and problem(too_big)["limit"] == "maxSizeUpload"
    assert problem(client.request("POST", "/jmap/upload/A2/", body=b"x"))["status"] == 403
    assert problem(client.request("POST", "/jmap/upload/ZZ/", body=b"x"))["status"] == 404
    gate = Deferred()
    backend.pending_upload = gate
    first = client.request("POST", "/jmap/upload/A1/", body=b"a", fired=False)
    second = client.request("POST", "/jmap/upload/A1/", body=b"b")
    assert second.code == 429 and problem(second)["limit"] == "maxConcurrentUpload"
    gate.callback(None)
    client.stub.flush()
    assert client.finish(first).code == 201


# -- EventSource ------------------------------------------------------------------


def open_stream(client, query):
    d = client.request("GET", "/jmap/eventsource/?" + query, fired=False)
    response = result_of(d)
    chunks = []
    done = client.stub.collect(response, chunks.append)
    client.stub.flush()
    return response, chunks, done


def test_eventsource_state_event_and_ping(client, backend, clock):
    response, chunks, done = open_stream(client, "types=Foo&closeafter=no&ping=30")
    assert response.code == 200
    assert header(response, "content-type") == "text/event-stream"
    assert header(response, "cache-control") == "no-cache"
    (_, types, callback), = backend.subscribers
    assert types == frozenset({"Foo"})
    callback({"@type": "StateChange", "changed": {"A1": {"Foo": "12", "Bar": "7"}, "ZZ": {"Foo": "1"}}})
    callback({"@type": "StateChange", "changed": {"A1": {"Bar": "8"}}})  # filtered out entirely
    client.stub.flush()
    assert b"".join(chunks) == (
        b": jmap event stream\n\n"
        b'event: state\ndata: {"@type":"StateChange","changed":{"A1":{"Foo":"12"}}}\n\n'
    )
    del chunks[:]
    clock.advance(29)
    client.stub.flush()
    assert chunks == []
    clock.advance(1)
    client.stub.flush()
    assert b"".join(chunks) == b'event: ping\ndata: {"interval":30}\n\n'
    del chunks[:]
    clock.advance(15)
    callback({"@type": "StateChange", "changed": {"A1": {"Foo": "13"}}})  # an event resets the ping timer
    clock.advance(29)
    client.stub.flush()
    assert b"".join(chunks).count(b"event: ping") == 0
    clock.advance(1)
    client.stub.flush()
    assert b"".join(chunks).count(b"event: ping") == 1
    assert not has_result(done)


def test_eventsource_closeafter_state(client, backend, clock):
    response, chunks, done = open_stream(client, "types=*&closeafter=state&ping=0")
    (_, types, callback), = backend.subscribers
    assert types is None
    clock.advance(1000)
    client.stub.flush()
    assert b"ping" not in b"".join(chunks)
    callback({"@type": "StateChange", "changed": {"A1": {"Foo": "2"}}})
    client.stub.flush()
    assert has_result(done)
    assert b"".join(chunks).endswith(b'event: state\ndata: {"@type":"StateChange","changed":{"A1":{"Foo":"2"}}}\n\n')
    assert backend.subscribers == []


def test_eventsource_ping_clamped(client, backend, clock):
    response, chunks, done = open_stream(client, "types=*&closeafter=no&ping=1")
    clock.advance(14)
    client.stub.flush()
    assert b"ping" not in b"".join(chunks)
    clock.advance(1)
    client.stub.flush()
    assert b'event: ping\ndata: {"interval":15}\n\n' in b"".join(chunks)


@pytest.mark.parametrize("query", ["types=*&closeafter=maybe&ping=0", "types=*&closeafter=no&ping=-1",
                                   "types=*&closeafter=no&ping=soon"])
def test_eventsource_bad_arguments(client, query):
    assert problem(client.request("GET", "/jmap/eventsource/?" + query))["status"] == 400


def test_event_stream_cancel_unsubscribes(clock):
    from dualmail.jmap.app import EventStream

    written, unsubscribed = [], []
    stream = EventStream(written.append, clock, 30, False, None, frozenset({"A1"}))
    done = stream.start(lambda callback: lambda: unsubscribed.append(True))
    done.addErrback(lambda f: None)
    done.cancel()  # what Klein does when the client goes away
    assert unsubscribed == [True] and not clock.getDelayedCalls()
    stream.on_state_change({"changed": {"A1": {"Foo": "1"}}})
    assert written == [b": jmap event stream\n\n"]


def test_event_stream_immediate_catch_up_with_closeafter(clock):
    from dualmail.jmap.app import EventStream

    written, unsubscribed = [], []

    def subscribe(callback):
        callback({"@type": "StateChange", "changed": {"A1": {"Foo": "9"}}})  # current state at once
        return lambda: unsubscribed.append(True)

    stream = EventStream(written.append, clock, 0, True, None, frozenset({"A1"}))
    assert result_of(stream.start(subscribe)) == b""
    assert unsubscribed == [True] and written[-1].startswith(b"event: state\n")


def test_make_site_bounds_request_bodies(make):
    from twisted.web.test.requesthelper import DummyChannel

    from dualmail.jmap.app import make_site

    client = make()
    site = make_site(client.app)
    request = site.requestFactory(DummyChannel(), False)
    assert request.max_body == client.app.limits.max_size_request
    request.gotLength(None)
    request.handleContentChunk(b"x" * (request.max_body - 100))
    assert not request.body_too_large
    request.handleContentChunk(b"x" * 101)  # issue 10: cut off the moment it passes the limit
    assert request.body_too_large
    assert request.channel.transport.written.getvalue().startswith(b"HTTP/1.1 413 ")
    request.content.seek(0)
    assert request.content.read() == b""


# -- HTTP Basic needs TLS off loopback (issue 17; RFC 8620 §8.2, RFC 7617 §4) -------------


def test_basic_refused_in_the_clear_off_loopback(make, monkeypatch):
    import dualmail.jmap.app as app_module

    monkeypatch.setattr(app_module, "_peer", lambda request: "192.0.2.7")
    client = make(allow_plaintext=False)
    response = client.request("GET", "http://jmap.example.com/jmap/session")
    assert response.code == 403 and "TLS" in problem(response)["detail"]
    bearer = client.request("GET", "http://jmap.example.com/jmap/session",
                            headers={"Authorization": "Bearer tok-alice"})
    assert bearer.code == 200  # the rule is for Basic (a password in every request)
    assert client.request("GET", "/jmap/session").code == 200  # https: Basic is fine
    assert make(allow_plaintext=True).request("GET", "http://jmap.example.com/jmap/session").code == 200


def test_event_streams_of_one_token_ask_alive_once_per_change(clock):
    """RFC 8620 §7.3 streams on one token: its liveness is read once per StateChange for
    all of them, and a revoked token ends every one at the next change."""
    from dualmail.jmap.app import EventStream

    asked, live = [], [True]

    def alive() -> bool:
        asked.append(True)
        return live[0]

    written: list[list[bytes]] = [[], [], []]
    streams = [EventStream(w.append, clock, 0, False, None, frozenset({"A1"}), alive, alive_key="tok")
               for w in written]
    for s in streams:
        s.start(lambda callback: lambda: None).addErrback(lambda f: None)
    change = {"@type": "StateChange", "changed": {"A1": {"Email": "5"}}}
    for s in streams:
        s.on_state_change(change)
    assert len(asked) == 1 and all(w[-1] == written[0][-1] for w in written)
    assert written[0][-1].startswith(b"event: state\ndata: ")
    live[0] = False
    change = {"@type": "StateChange", "changed": {"A1": {"Email": "6"}}}
    for s in streams:
        s.on_state_change(change)
    assert len(asked) == 2 and all(len(w) == 2 for w in written)  # nothing more written
    assert all(s.done.called for s in streams)
