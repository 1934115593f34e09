"""Method dispatch (RFC 8620 §3.4, §3.6.2, §3.7, §4)."""

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import globalLogPublisher

from jmap_fakes import FOO, Runner, result_of
from dualmail.jmap.dispatch import CallContext, Dispatcher, Method, core_methods
from dualmail.jmap.errors import MethodError
from dualmail.jmap.request import parse_request
from dualmail.jmap.session import CORE


def example_methods():
    """Methods producing the RFC 8620 §3.4.1 example response."""

    def method1(ctx, args):
        return [("method1", {"arg1": 3, "arg2": "foo"})]

    def method2(ctx, args):
        return [("method2", {"isBlah": True}), ("anotherResponseFromMethod2", {"data": 10, "yetmoredata": "Hello"})]

    return {"method1": Method(CORE, method1), "method2": Method(CORE, method2)}


def test_rfc_example_response(limits):
    run = Runner(example_methods(), limits)
    response = run(
        [["method1", {"arg1": "arg1data", "arg2": "arg2data"}, "c1"], ["method2", {"arg1": "arg1data"}, "c2"],
         ["method3", {}, "c3"]],
        using=[CORE],
    )
    assert response == {
        "methodResponses": [
            ["method1", {"arg1": 3, "arg2": "foo"}, "c1"],
            ["method2", {"isBlah": True}, "c2"],
            ["anotherResponseFromMethod2", {"data": 10, "yetmoredata": "Hello"}, "c2"],
            ["error", {"type": "unknownMethod"}, "c3"],
        ],
        "sessionState": "s1",
    }


def test_core_echo(run):
    # RFC 8620 §4.1
    args = {"hello": True, "high": 5}
    assert run([["Core/echo", args, "b3ff"]])["methodResponses"] == [["Core/echo", args, "b3ff"]]


def test_method_needs_its_capability_in_using(run):
    response = run([["Foo/get", {"accountId": "A1", "ids": []}, "0"], ["Core/echo", {}, "1"]], using=[])
    assert response["methodResponses"] == [["error", {"type": "unknownMethod"}, "0"],
                                           ["error", {"type": "unknownMethod"}, "1"]]


def test_created_ids_round_trip(run):
    response = run(
        [["Foo/set", {"accountId": "A1", "create": {"k1": {"title": "x"}}}, "0"]],
        created_ids={"old": "f999"},
    )
    assert response["createdIds"] == {"old": "f999", "k1": "f1"}
    assert "createdIds" not in run([["Core/echo", {}, "0"]])


def test_initial_created_ids_resolve(run):
    run([["Foo/set", {"accountId": "A1", "create": {"k1": {"title": "x"}}}, "0"]])
    response = run([["Foo/get", {"accountId": "A1", "ids": ["#earlier"], "properties": ["title"]}, "0"]],
                   created_ids={"earlier": "f1"})
    assert response["methodResponses"][0][1]["list"] == [{"id": "f1", "title": "x"}]


def test_method_error_then_next_call_runs(limits):
    def bad(ctx, args):
        raise MethodError("forbidden", "no", hint="x")

    run = Runner({**core_methods(), "X/bad": Method(CORE, bad)}, limits)
    response = run([["X/bad", {}, "a"], ["Core/echo", {"ok": 1}, "b"]], using=[CORE])
    assert response["methodResponses"] == [
        ["error", {"type": "forbidden", "description": "no", "hint": "x"}, "a"],
        ["Core/echo", {"ok": 1}, "b"],
    ]


def test_unexpected_exception_is_server_fail_and_logged(limits):
    def boom(ctx, args):
        raise ZeroDivisionError("kaboom")

    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        run = Runner({**core_methods(), "X/boom": Method(CORE, boom)}, limits)
        response = run([["X/boom", {}, "a"], ["Core/echo", {}, "b"]], using=[CORE])
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert response["methodResponses"][0][0] == "error"
    assert response["methodResponses"][0][1]["type"] == "serverFail"
    assert "kaboom" not in str(response)
    assert response["methodResponses"][1][0] == "Core/echo"
    assert any("log_failure" in e and e["method"] == "X/boom" for e in events)


def test_async_handler(limits):
    pending = Deferred()

    def later(ctx, args):
        return pending.addCallback(lambda _: [("X/later", {"v": 1})])

    async def coro(ctx, args):
        return [("X/coro", {"v": await pending})]

    dispatcher = Dispatcher({"X/later": Method(CORE, later), "X/coro": Method(CORE, coro)}, limits)
    request = parse_request(
        b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["X/later",{},"a"],["X/coro",{},"b"]]}',
        capabilities=[CORE], max_size_request=1000, max_calls_in_request=4)
    d = ensureDeferred(dispatcher.run(request, principal="alice", accounts={}, session_state="s"))
    assert not d.called
    pending.callback(7)
    assert result_of(d)["methodResponses"] == [["X/later", {"v": 1}, "a"], ["X/coro", {"v": [("X/later", {"v": 1})]}, "b"]]


def test_result_reference_failure_and_duplicate_argument(run):
    response = run(
        [
            ["Core/echo", {"list": [{"id": "a"}]}, "e"],
            ["Core/echo", {"#ids": {"resultOf": "e", "name": "Core/echo", "path": "/list/*/id"}}, "ok"],
            ["Core/echo", {"#ids": {"resultOf": "e", "name": "Foo/get", "path": "/list"}}, "badname"],
            ["Core/echo", {"ids": [], "#ids": {"resultOf": "e", "name": "Core/echo", "path": "/list"}}, "dup"],
        ]
    )
    r = response["methodResponses"]
    assert r[1] == ["Core/echo", {"ids": ["a"]}, "ok"]
    assert r[2][1]["type"] == "invalidResultReference"
    assert r[3][1]["type"] == "invalidArguments"


def test_rfc_3_7_example_with_foo(run, foo):
    # RFC 8620 §3.7: Foo/changes then Foo/get with #ids -> /created
    state = run([["Foo/get", {"accountId": "A1", "ids": []}, "s"]])["methodResponses"][0][1]["state"]
    run([["Foo/set", {"accountId": "A1", "create": {"a": {"title": "one"}, "b": {"title": "four"}}}, "c"]])
    response = run(
        [
            ["Foo/changes", {"accountId": "A1", "sinceState": state}, "t0"],
            ["Foo/get", {"accountId": "A1", "#ids": {"resultOf": "t0", "name": "Foo/changes", "path": "/created"},
                         "properties": ["title"]}, "t1"],
        ]
    )
    changes, get = response["methodResponses"]
    assert changes[1]["created"] == ["f1", "f2"]
    assert sorted(x["title"] for x in get[1]["list"]) == ["four", "one"]


def test_account_checks(limits):
    seen = []

    def write(ctx: CallContext, args):
        seen.append(ctx.account(args, write=True))
        return [("X/write", {})]

    def copy(ctx, args):
        ctx.account(args, "fromAccountId")
        return [("X/copy", {})]

    run = Runner({"X/write": Method(FOO, write), "X/copy": Method(FOO, copy)}, limits)
    calls = [
        ["X/write", {"accountId": "A1"}, "ok"],
        ["X/write", {"accountId": "nope"}, "notfound"],
        ["X/write", {"accountId": "C1"}, "unsupported"],
        ["X/write", {"accountId": "A2"}, "readonly"],
        ["X/write", {}, "missing"],
        ["X/copy", {"fromAccountId": "nope"}, "fromnotfound"],
        ["X/copy", {"fromAccountId": "C1"}, "fromunsupported"],
    ]
    r = run(calls)["methodResponses"]
    assert [x[1].get("type") for x in r] == [
        None, "accountNotFound", "accountNotSupportedByMethod", "accountReadOnly", "invalidArguments",
        "fromAccountNotFound", "fromAccountNotSupportedByMethod",
    ]
    assert seen == ["A1"]


def test_implicit_call_through_context(run, foo):
    def both(ctx, args):
        responses = [("X/both", {})]
        responses.extend(ctx.call("Foo/set", {"accountId": "A1", "create": {"k": {"title": "implicit"}}}))
        return responses

    run.dispatcher.methods = {**run.dispatcher.methods, "X/both": Method(FOO, both)}
    r = run([["X/both", {}, "c"]], created_ids={})
    assert [x[0] for x in r["methodResponses"]] == ["X/both", "Foo/set"]
    assert all(x[2] == "c" for x in r["methodResponses"]) and r["createdIds"] == {"k": "f1"}
