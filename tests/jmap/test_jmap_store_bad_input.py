"""Bad input against the real store (issue 5): each gets the error type RFC
8620 names, and the store is unchanged (CONTRACT §7)."""

from __future__ import annotations

import json

import pytest

from dualmail.jmap.session import CORE, CoreLimits
from tests.jmap.jmap_store_util import JSON, MAIL, Client, aid

ERR = "urn:ietf:params:jmap:error:"


def modseq(store, account):
    with store.read(account) as r:
        return r.highest_modseq


@pytest.fixture
def small(store, alice, clock):
    return Client(store, clock, limits=CoreLimits(max_calls_in_request=3, max_size_request=2048))


@pytest.mark.parametrize("body, status, problem", [
    (b"{not json", 400, ERR + "notJSON"),
    (b'{"using": [], "methodCalls": {}}', 400, ERR + "notRequest"),
    (b'[1, 2]', 400, ERR + "notRequest"),
    (json.dumps({"using": ["urn:example:nope"], "methodCalls": []}).encode(), 400, ERR + "unknownCapability"),
    (json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {}, str(i)] for i in range(4)]}).encode(),
     400, ERR + "limit"),
    (json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"x": "y" * 4000}, "0"]]}).encode(),
     413, ERR + "limit"),
])
def test_request_level_errors(small, store, alice, body, status, problem):
    before = modseq(store, alice)
    response = small.request("POST", "/jmap/api", body=body, headers={**small.headers, **JSON})
    assert response.code == status
    assert json.loads(response.body)["type"] == problem
    assert modseq(store, alice) == before


@pytest.mark.parametrize("call, error", [
    (["Mailbox/set", {"accountId": "A99", "create": {"k": {"name": "x"}}}, "0"], "accountNotFound"),
    (["Mailbox/set", {"accountId": "{acct}", "create": []}, "0"], "invalidArguments"),
    (["Mailbox/set", {"accountId": "{acct}", "destroy": "M1"}, "0"], "invalidArguments"),
    (["Mailbox/set", {"accountId": "{acct}", "ifInState": 5}, "0"], "invalidArguments"),
    (["Mailbox/set", {"accountId": "{acct}", "onDestroyRemoveEmails": True, "bogus": 1}, "0"], "invalidArguments"),
    (["Mailbox/get", {"accountId": "{acct}", "ids": "M1"}, "0"], "invalidArguments"),
    (["Mailbox/get", {"accountId": "{acct}", "properties": ["nope"]}, "0"], "invalidArguments"),
    (["Mailbox/changes", {"accountId": "{acct}", "sinceState": 1}, "0"], "invalidArguments"),
    (["Mailbox/changes", {"accountId": "{acct}", "sinceState": "1", "maxChanges": 0}, "0"], "invalidArguments"),
    (["Mailbox/query", {"accountId": "{acct}", "limit": -1}, "0"], "invalidArguments"),
    (["Mailbox/query", {"accountId": "{acct}", "filter": [1]}, "0"], "invalidArguments"),
    (["Mailbox/get", {"accountId": "{acct}", "#ids": {"resultOf": "nope", "name": "Mailbox/query",
                                                       "path": "/ids"}}, "0"], "invalidResultReference"),
    (["Mailbox/frobnicate", {"accountId": "{acct}"}, "0"], "unknownMethod"),
])
def test_method_level_errors(client, store, alice, call, error):
    call = json.loads(json.dumps(call).replace("{acct}", aid(alice)))
    before = modseq(store, alice)
    [[name, result, call_id]] = client.api([call], using=[CORE, MAIL])
    assert (name, result["type"], call_id) == ("error", error, "0")
    assert modseq(store, alice) == before


def _raw_request(calls: str) -> bytes:
    """A request body written by hand, so it can hold what json.dumps would not write."""
    return ('{"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": ['
            + calls + ']}').encode()


@pytest.mark.parametrize("calls", [
    r'["Core/echo", {"x": "\ud800"}, "0"]',
    r'["Core/echo", {}, "\ud800"]',
    r'["Mailbox/set", {"accountId": "{acct}", "create": {"k": {"name": "a\udc00b"}}}, "0"]',
    r'["Email/set", {"accountId": "{acct}", "create": {"k": {"mailboxIds": {"M1": true}, '
    r'"subject": "\ud83d"}}}, "0"]',
    '["Email/query", {"accountId": "{acct}", "limit": ' + "9" * 5000 + '}, "0"]',
    '["Mailbox/query", {"accountId": "{acct}", "position": -' + "9" * 4301 + '}, "0"]',
    '["Email/query", {"accountId": "{acct}", "limit": 1e999}, "0"]',
])
def test_not_i_json_is_refused_before_any_method_runs(client, store, alice, calls):
    """RFC 7493 §2.1 (lone surrogates) and §2.2 (numbers beyond a double): the request
    is not I-JSON, so ``notJSON`` (RFC 8620 §3.6.1), never a 500, a serverFail or a
    message from Python's internals; nothing is changed."""
    before = modseq(store, alice)
    body = _raw_request(calls.replace("{acct}", aid(alice)))
    response = client.request("POST", "/jmap/api", body=body, headers={**client.headers, **JSON})
    assert response.code == 400, response.body
    problem = json.loads(response.body)
    assert problem["type"] == ERR + "notJSON" and problem["status"] == 400
    assert "RFC 7493" in problem["detail"] and "sys." not in problem["detail"]
    assert modseq(store, alice) == before
