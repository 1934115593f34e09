"""Fuzz target: the JMAP request layer end to end in memory: request bytes -> I-JSON
parsing -> method calls (every method of the dispatcher's registry) -> result references
(JSON pointers) -> /set patch objects -> the store -> the response. A crash is a 5xx, a
response that is not I-JSON, or a ``serverFail`` (an exception a handler did not turn
into the error the spec names).

The first input byte chooses raw bytes (odd) or a request built from the input
(even): method names from the registry, arguments from a vocabulary of the argument
names and values JMAP uses (ids of this account, of another account, of nothing),
``#`` references, patch paths."""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile

from dualmail.jmap.dispatch import core_methods
from dualmail.jmap.types import store_methods
from dualmail.model import ids
from dualmail.store.store import open_store

_WORLD: dict = {}
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission",
         "urn:ietf:params:jmap:vacationresponse"]
_KEYS = ["accountId", "ids", "properties", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
         "calculateTotal", "collapseThreads", "sinceState", "sinceQueryState", "maxChanges", "upToId",
         "create", "update", "destroy", "ifInState", "fromAccountId", "ifFromInState", "onSuccessDestroyOriginal",
         "destroyFromIfInState", "blobIds", "emails", "emailIds", "fetchAllBodyValues", "fetchHTMLBodyValues",
         "fetchTextBodyValues", "maxBodyValueBytes", "bodyProperties", "onDestroyRemoveEmails",
         "sortAsTree", "filterAsTree", "onSuccessUpdateEmail", "onSuccessDestroyEmail", "hello", "#ids",
         "#emailIds", "#blobIds", "#properties", "#filter"]
_STRINGS = ["", "Mx", "Ex", "Tx", "Ax", "A1", "A2", "A999", "M1", "M2", "M999", "E1", "E2", "E999", "T1",
            "Gdeadbeef", "#c0", "#k1", "inbox", "INBOX", "keywords/$seen", "mailboxIds/M1", "mailboxIds/M2",
            "name", "role", "parentId", "subject", "from", "receivedAt", "preview", "bodyValues", "text",
            "inMailbox", "operator", "AND", "OR", "NOT", "conditions", "property", "isAscending", "/ids",
            "/list/*/id", "/created/k1/id", "/list/0/threadId", "/ids/-1", "/~1", "~", "0", "-1", "$seen",
            "$draft", "header:Subject:asText", "header:x:asDate:all", "1970-01-01T00:00:00Z", "k1", "c0",
            "Email/get", "Mailbox/get", "resultOf", "name", "path", "a/b~0c", "threadId", "emailIds"]


def _world() -> dict:
    if not _WORLD:
        from tests.jmap.jmap_store_util import Client
        from tests.jmap_mail.jmap_mail_util import add, message

        directory = tempfile.mkdtemp(prefix="dualmail-fuzz-")
        atexit.register(shutil.rmtree, directory, True)
        store = open_store(directory, sync=False)
        alice = store.create_account("alice@example.org", "secret")
        bob = store.create_account("bob@example.org", "hunter2")
        for account in (alice, bob):
            for i in range(3):
                add(store, account, message(f"s{i}", f"body {i}"))
        client = Client(store)
        client.headers = {"Authorization": "Bearer " + store.create_token("alice@example.org")}
        methods = sorted({**core_methods(), **store_methods(store, lambda: 1_700_000_000.0)})
        _WORLD.update(store=store, client=client, methods=methods,
                      accounts=[ids.format_id(ids.ACCOUNT, alice), ids.format_id(ids.ACCOUNT, bob), "Anope"])
    return _WORLD


def _value(fdp, depth: int = 0):
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeIntInRange(-2**53, 2**53) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(-2, 20)
    if kind in (3, 4):
        return _STRINGS[fdp.ConsumeIntInRange(0, len(_STRINGS) - 1)]
    if kind == 5:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 20))
    if kind in (6, 7):
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 8:  # a result reference
        return {"resultOf": _STRINGS[fdp.ConsumeIntInRange(0, len(_STRINGS) - 1)],
                "name": _WORLD["methods"][fdp.ConsumeIntInRange(0, len(_WORLD["methods"]) - 1)],
                "path": _STRINGS[fdp.ConsumeIntInRange(0, len(_STRINGS) - 1)]}
    return {(_STRINGS + _KEYS)[fdp.ConsumeIntInRange(0, len(_STRINGS) + len(_KEYS) - 1)]: _value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _request(data: bytes) -> bytes:
    import atheris

    fdp = atheris.FuzzedDataProvider(data)
    w = _WORLD
    calls = []
    for n in range(fdp.ConsumeIntInRange(1, 4)):
        args = {"accountId": w["accounts"][fdp.ConsumeIntInRange(0, 2)]}
        for _ in range(fdp.ConsumeIntInRange(0, 5)):
            args[_KEYS[fdp.ConsumeIntInRange(0, len(_KEYS) - 1)]] = _value(fdp)
        calls.append([w["methods"][fdp.ConsumeIntInRange(0, len(w["methods"]) - 1)], args, f"c{n}"])
    body = {"using": USING, "methodCalls": calls}
    if fdp.ConsumeBool():
        body["createdIds"] = {"k1": "M1"}
    return json.dumps(body).encode()


def TestOneInput(data: bytes) -> None:
    w = _world()
    body = data[1:] if data[:1] and data[0] & 1 else _request(data[1:])
    response = w["client"].request("POST", "/jmap/api", body=body,
                                   headers={**w["client"].headers, "Content-Type": "application/json"})
    assert response.code < 500, (response.code, body[:300], response.body[:300])
    text = response.body.decode("utf-8")
    answer = json.loads(text)
    if response.code == 200:
        for name, result, _call_id in answer["methodResponses"]:
            assert not (name == "error" and result.get("type") == "serverFail"), (body[:500], result)


if __name__ == "__main__":
    from tests.fuzz.harness import main

    main(TestOneInput, [b"\x00" + bytes(range(256)) * 2, b"\x01" + json.dumps(
        {"using": USING, "methodCalls": [["Email/get", {"accountId": "A1", "ids": None}, "0"]]}).encode()],
        ["dualmail.jmap"])
    sys.exit(0)
