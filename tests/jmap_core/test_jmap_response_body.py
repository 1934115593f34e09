"""Response bodies (``jmap.app._json``): orjson's bytes, the stdlib for what orjson
refuses, and never an exception.  A lone surrogate can only come from data stored
before decoded text was made valid (issue 10); it is answered as U+FFFD, since a JMAP
response is I-JSON (RFC 8620 §3.1, RFC 7493 §2.1: no lone surrogates)."""

import json

from hypothesis import given, strategies as st

from dualmail.jmap.app import _json


def test_a_lone_surrogate_becomes_u_fffd():
    assert json.loads(_json({"subject": "a\ud800b"})) == {"subject": "a\ufffdb"}


def test_a_split_pair_is_joined_and_big_integers_stay_exact():
    assert json.loads(_json({"s": "\ud83d\ude00", "n": 2**70})) == {"s": "\U0001F600", "n": 2**70}


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                    max_leaves=20))
def test_any_value_is_valid_utf8_json(value):
    body = _json(value)
    body.decode("utf-8")  # strict: valid UTF-8
    json.loads(body)
