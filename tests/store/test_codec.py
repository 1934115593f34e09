"""JSON through orjson where it agrees with the standard library, else the library.

The record codec: the stored bytes must be exactly what ``json`` (compact,
ensure_ascii=False, UTF-8 with surrogatepass) writes, so stores stay readable whichever
path wrote them, and every value must read back equal.  JMAP response bodies likewise.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualmail.store import codec

_STD = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

texts = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))  # surrogates too
ints = st.one_of(st.integers(-(2**53), 2**53), st.integers(-(2**80), 2**80),
                 st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]))
values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.one_of(texts, st.integers(-5, 5)), inner, max_size=5)),
    max_leaves=30)


def _std(v: object) -> bytes:
    return _STD.encode(v).encode("utf-8", "surrogatepass")


@settings(max_examples=2000, deadline=None)
@given(values)
def test_same_bytes_as_the_standard_library_and_reads_back(v: object) -> None:
    data = codec.dumps(v)
    assert data == _std(v)
    assert codec.loads(data) == json.loads(data.decode("utf-8", "surrogatepass"))
    assert codec.loads(memoryview(data)) == codec.loads(data)


def test_the_cases_orjson_would_get_wrong() -> None:
    for v in (2**64, -(2**63) - 1, 10**30, {"n": 12345678901234567890123}, "\ud800", {1: "x"}):
        data = codec.dumps(v)
        assert data == _std(v)
        assert codec.loads(data) == json.loads(data.decode("utf-8", "surrogatepass"))
    assert codec.loads(b'{"id":"1234567890123456789012@x"}') == {"id": "1234567890123456789012@x"}


@settings(max_examples=500, deadline=None)
@given(values)
def test_jmap_response_bodies_are_the_stdlib_bytes(v: object) -> None:
    """RFC 8620 §3.4 responses: orjson's bytes, or the stdlib's where orjson refuses."""
    from dualmail.jmap.app import _json

    try:
        expected = json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: U+FFFD instead (never a 500, RFC 7493 §2.1)
        text = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        assert _json(v) == text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
        return
    assert _json(v) == expected
