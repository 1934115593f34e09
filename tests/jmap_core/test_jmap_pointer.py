"""JSON Pointer (RFC 6901) and the JMAP '*' extension (RFC 8620 §3.7)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualmail.jmap.pointer import PointerError, escape, evaluate, parse, unescape

# RFC 6901 §5 example document and results
DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    "pointer, expected",
    [
        ("", DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_rfc6901_examples(pointer, expected):
    assert evaluate(DOC, pointer) == expected


@pytest.mark.parametrize(
    "pointer",
    ["foo", "/nope", "/foo/2", "/foo/-", "/foo/01", "/foo/bar", "/foo/0/x", "/m~2n", "/m~", "/foo/-1"],
)
def test_errors(pointer):
    with pytest.raises(PointerError):
        evaluate(DOC, pointer)


def test_unescape_order():
    # RFC 6901 §4: ~01 is ~1 (not /)
    assert unescape("~01") == "~1"
    assert parse("/a~1b/~0") == ["a/b", "~"]


def test_wildcard_maps_and_flattens():
    doc = {"list": [{"id": "a", "ids": ["1", "2"]}, {"id": "b", "ids": ["3"]}, {"id": "c", "ids": []}]}
    assert evaluate(doc, "/list/*/id") == ["a", "b", "c"]
    assert evaluate(doc, "/list/*/ids") == ["1", "2", "3"]
    assert evaluate({"x": [[1, 2], [3]]}, "/x/*") == [1, 2, 3]
    assert evaluate({"x": []}, "/x/*/id") == []


def test_wildcard_only_on_arrays_and_only_when_enabled():
    with pytest.raises(PointerError):
        evaluate({"a": {"*": 1, "b": 2}}, "/a/*/b")
    assert evaluate({"a": {"*": 1}}, "/a/*") == 1  # '*' is an ordinary member name on objects
    with pytest.raises(PointerError):
        evaluate({"a": [1]}, "/a/*", wildcard=False)


def test_wildcard_missing_member_fails():
    with pytest.raises(PointerError):
        evaluate({"list": [{"id": "a"}, {}]}, "/list/*/id")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(st.text())
def test_escape_roundtrip(token):
    assert unescape(escape(token)) == token
    assert parse("/" + escape(token)) == [token]


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_every_member_is_reachable(doc):
    for key, value in doc.items():
        assert evaluate(doc, "/" + escape(key)) == value


@given(json_values, st.text(max_size=30))
def test_junk_pointers_raise_only_pointer_error(doc, pointer):
    try:
        evaluate(doc, pointer)
    except PointerError:
        pass


@given(st.lists(st.dictionaries(st.just("v"), st.integers(), min_size=1), max_size=6))
def test_wildcard_equals_comprehension(items):
    assert evaluate({"l": items}, "/l/*/v") == [item["v"] for item in items]


@given(st.lists(st.lists(st.integers(), max_size=4), max_size=4))
def test_wildcard_flattens_one_level(lists):
    doc = {"l": [{"ids": x} for x in lists]}
    assert evaluate(doc, "/l/*/ids") == [i for x in lists for i in x]
