"""Request parsing (RFC 8620 §3.3, §3.6.1), result references (§3.7),
state strings, errors and argument reading."""

import json

import pytest

from dualmail.jmap.args import ArgReader
from dualmail.jmap.errors import MethodError, RequestError, SetError
from dualmail.jmap.request import Invocation, parse_request, resolve_references
from dualmail.jmap.state import StatePosition, parse_position, parse_state, to_state

CAPS = ("urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail")


def parse(body, **kw):
    kw.setdefault("capabilities", CAPS)
    kw.setdefault("max_size_request", 10_000)
    kw.setdefault("max_calls_in_request", 4)
    return parse_request(body if isinstance(body, bytes) else json.dumps(body).encode(), **kw)


def test_rfc_example_request():
    # RFC 8620 §3.3.1
    request = parse(
        {
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
            "methodCalls": [
                ["method1", {"arg1": "arg1data", "arg2": "arg2data"}, "c1"],
                ["method2", {"arg1": "arg1data"}, "c2"],
                ["method3", {}, "c3"],
            ],
        }
    )
    assert request.using == frozenset(CAPS)
    assert [c.call_id for c in request.method_calls] == ["c1", "c2", "c3"]
    assert request.created_ids is None


def test_created_ids_and_unknown_properties():
    request = parse({"using": [], "methodCalls": [], "createdIds": {"k1": "f1"}, "future": 1})
    assert request.created_ids == {"k1": "f1"}


@pytest.mark.parametrize(
    "body",
    [b"{", b"\xff\xfe", b'{"using": [], "using": [], "methodCalls": []}', b'{"using": [NaN], "methodCalls": []}',
     b"[" * 100_000],
)
def test_not_json(body):
    with pytest.raises(RequestError) as e:
        parse(body, max_size_request=10**6)
    assert e.value.type == "urn:ietf:params:jmap:error:notJSON" and e.value.status == 400


@pytest.mark.parametrize("body, why", [
    # RFC 7493 §2.1: no string may hold a surrogate that is not part of a pair
    (rb'{"using": [], "methodCalls": [["Core/echo", {"x": "\ud800"}, "c"]]}', "lone surrogate"),
    (rb'{"using": [], "methodCalls": [["Core/echo", {}, "\udfff"]]}', "lone surrogate"),
    (rb'{"using": [], "methodCalls": [["Core/echo", {"\uD83D": 1}, "c"]]}', "lone surrogate"),
    (rb'{"using": [], "methodCalls": [["Core/echo", {"x": "a\ude00\ud83d"}, "c"]]}', "lone surrogate"),
    # RFC 7493 §2.2: no number beyond an IEEE 754 double's range
    (b'{"using": [], "methodCalls": [["Core/echo", {"x": ' + b"9" * 5000 + b'}, "c"]]}', "5000 digits"),
    (b'{"using": [], "methodCalls": [["Core/echo", {"x": -' + b"1" * 400 + b'}, "c"]]}', "400 digits"),
    (b'{"using": [], "methodCalls": [["Core/echo", {"x": 1e400}, "c"]]}', "1e400"),
])
def test_not_i_json(body, why):
    with pytest.raises(RequestError) as e:
        parse(body, max_size_request=10**6)
    assert e.value.type == "urn:ietf:params:jmap:error:notJSON" and e.value.status == 400
    assert why in e.value.detail and "RFC 7493" in e.value.detail
    assert "sys.set_int_max_str_digits" not in e.value.detail  # no message from Python's internals


def test_i_json_strings_and_numbers_that_are_fine():
    body = (rb'{"using": [], "methodCalls": [["Core/echo", {"pair": "\ud83d\ude00", "slash": "\\ud800",'
            rb' "big": ' + b"9" * 300 + rb', "x": 1.5e300}, "c"]]}')
    [call] = parse(body).method_calls
    assert call.arguments == {"pair": "\U0001f600", "slash": "\\ud800", "big": int("9" * 300), "x": 1.5e300}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"methodCalls": []},
        {"using": "x", "methodCalls": []},
        {"using": [1], "methodCalls": []},
        {"using": [], "methodCalls": {}},
        {"using": [], "methodCalls": [["a", {}]]},
        {"using": [], "methodCalls": [["a", [], "c"]]},
        {"using": [], "methodCalls": [[1, {}, "c"]]},
        {"using": [], "methodCalls": [["a", {}, 1]]},
        {"using": [], "methodCalls": [], "createdIds": []},
        {"using": [], "methodCalls": [], "createdIds": {"a": 1}},
    ],
)
def test_not_request(body):
    with pytest.raises(RequestError) as e:
        parse(body)
    assert e.value.type.endswith(":notRequest") and e.value.status == 400


def test_unknown_capability():
    with pytest.raises(RequestError) as e:
        parse({"using": ["https://example.com/apis/foobar"], "methodCalls": []})
    assert e.value.to_problem() == {
        "type": "urn:ietf:params:jmap:error:unknownCapability",
        "status": 400,
        "detail": "the request used capability 'https://example.com/apis/foobar', which is not supported by this server",
    }


def test_limits():
    with pytest.raises(RequestError) as e:
        parse({"using": [], "methodCalls": [["Core/echo", {}, str(i)] for i in range(5)]})
    assert e.value.limit == "maxCallsInRequest" and e.value.to_problem()["limit"] == "maxCallsInRequest"
    with pytest.raises(RequestError) as e:
        parse({"using": [], "methodCalls": [], "pad": "x" * 100}, max_size_request=50)
    assert e.value.limit == "maxSizeRequest" and e.value.status == 413


def test_request_error_requires_limit_name():
    with pytest.raises(ValueError):
        RequestError("limit", 400, "x")
    assert RequestError("about:blank", 404, "x").type == "about:blank"


# -- §3.7 result references ---------------------------------------------------

CHANGES = Invocation(
    "Foo/changes",
    {"accountId": "A1", "oldState": "abcdef", "newState": "123456", "hasMoreChanges": False,
     "created": ["f1", "f4"], "updated": [], "destroyed": []},
    "t0",
)


def test_simple_reference():
    args = {"accountId": "A1", "#ids": {"resultOf": "t0", "name": "Foo/changes", "path": "/created"}}
    assert resolve_references(args, [CHANGES]) == {"accountId": "A1", "ids": ["f1", "f4"]}


def test_mail_example_references():
    responses = [
        Invocation("Email/get", {"list": [{"id": "msg1023", "threadId": "trd194"},
                                          {"id": "msg223", "threadId": "trd114"}]}, "t1"),
        Invocation("Thread/get", {"list": [{"id": "trd194", "emailIds": ["msg1020", "msg1021", "msg1023"]},
                                           {"id": "trd114", "emailIds": ["msg201", "msg223"]}]}, "t2"),
    ]
    t2 = resolve_references({"#ids": {"resultOf": "t1", "name": "Email/get", "path": "/list/*/threadId"}}, responses)
    assert t2 == {"ids": ["trd194", "trd114"]}
    t3 = resolve_references({"#ids": {"resultOf": "t2", "name": "Thread/get", "path": "/list/*/emailIds"}}, responses)
    assert t3 == {"ids": ["msg1020", "msg1021", "msg1023", "msg201", "msg223"]}


def test_first_response_with_the_call_id_is_used():
    responses = [CHANGES, Invocation("Foo/set", {"x": 1}, "t0")]
    with pytest.raises(MethodError) as e:
        resolve_references({"#x": {"resultOf": "t0", "name": "Foo/set", "path": "/x"}}, responses)
    assert e.value.type == "invalidResultReference"


@pytest.mark.parametrize(
    "ref",
    [
        {"resultOf": "t9", "name": "Foo/changes", "path": "/created"},
        {"resultOf": "t0", "name": "Foo/get", "path": "/created"},
        {"resultOf": "t0", "name": "Foo/changes", "path": "/nope"},
        {"resultOf": "t0", "name": "Foo/changes", "path": "created"},
        {"resultOf": "t0", "name": "Foo/changes"},
        "t0",
    ],
)
def test_bad_references(ref):
    with pytest.raises(MethodError) as e:
        resolve_references({"#ids": ref}, [CHANGES])
    assert e.value.type == "invalidResultReference"


def test_both_plain_and_reference_is_invalid_arguments():
    with pytest.raises(MethodError) as e:
        resolve_references({"ids": [], "#ids": {"resultOf": "t0", "name": "Foo/changes", "path": "/created"}}, [CHANGES])
    assert e.value.type == "invalidArguments"


def test_resolved_values_are_copies():
    args = resolve_references({"#l": {"resultOf": "t0", "name": "Foo/changes", "path": "/created"}}, [CHANGES])
    args["l"].append("zzz")
    assert CHANGES.arguments["created"] == ["f1", "f4"]


# -- state strings (CONTRACT §4) ----------------------------------------------


def test_state_strings():
    assert to_state(4512) == "4512"
    assert parse_state("4512") == 4512
    assert to_state(StatePosition(4512, 37)) == "4512.37"
    assert parse_position("4512.37") == StatePosition(4512, 37)
    assert parse_position("4512") == StatePosition(4512, 0)
    with pytest.raises(ValueError):
        to_state(2**53)
    with pytest.raises(ValueError):
        to_state(True)


@pytest.mark.parametrize("junk", ["", "abc", "01", "-1", "1.0", "1.", " 1", "1e3", str(2**53), None, 7])
def test_junk_states(junk):
    with pytest.raises(MethodError) as e:
        parse_position(junk, "stateMismatch")
    assert e.value.type == "stateMismatch"
    with pytest.raises(MethodError) as e:
        parse_state(junk)
    assert e.value.type == "cannotCalculateChanges"


def test_parse_state_rejects_intermediate():
    with pytest.raises(MethodError):
        parse_state("5.2")


# -- errors and arguments ----------------------------------------------------


def test_error_json():
    assert MethodError("unknownMethod").to_json() == {"type": "unknownMethod"}
    assert MethodError("invalidArguments", "bad", extra=1).to_json() == {
        "type": "invalidArguments", "description": "bad", "extra": 1}
    assert SetError("invalidProperties", properties=["a"]).to_json() == {"type": "invalidProperties", "properties": ["a"]}
    assert SetError("alreadyExists", existingId="x").to_json() == {"type": "alreadyExists", "existingId": "x"}


def test_arg_reader():
    r = ArgReader({"accountId": "A1", "limit": 5, "flag": True, "ids": None})
    assert r.id("accountId") == "A1"
    assert r.unsigned("limit") == 5
    assert r.boolean("flag") is True
    assert r.id_list("ids", None, nullable=True) is None
    assert r.int("position", 0) == 0
    r.finish()


@pytest.mark.parametrize(
    "args, read, name",
    [
        ({}, lambda r: r.id("accountId"), "accountId"),
        ({"accountId": "a b"}, lambda r: r.id("accountId"), "accountId"),
        ({"limit": -1}, lambda r: r.unsigned("limit"), "limit"),
        ({"limit": True}, lambda r: r.unsigned("limit"), "limit"),
        ({"maxChanges": 0}, lambda r: r.unsigned("maxChanges", positive=True), "maxChanges"),
        ({"flag": "yes"}, lambda r: r.boolean("flag", False), "flag"),
        ({"flag": None}, lambda r: r.boolean("flag", False), "flag"),
        ({"ids": ["ok", 3]}, lambda r: r.id_list("ids"), "ids"),
        ({"bogus": 1}, lambda r: r.finish(), "bogus"),
    ],
)
def test_arg_reader_errors_name_the_argument(args, read, name):
    with pytest.raises(MethodError) as e:
        read(ArgReader(args))
    assert e.value.type == "invalidArguments" and repr(name) in e.value.description
