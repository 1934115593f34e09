"""Modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualmail.imap.wire import utf7

EXAMPLES = [
    ("INBOX", "INBOX"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 §5.1.3
    ("&", "&-"),
    ("a&b", "a&-b"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("Ma\u00f1ana&Co", "Ma&APE-ana&-Co"),
    ("\u00e9\u00e9", "&AOkA6Q-"),
    ("😀", "&2D3eAA-"),
    ("tab\there", "tab&AAk-here"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "wire"), EXAMPLES)
def test_examples(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text
    assert utf7.decode(wire.encode("ascii")) == text


@pytest.mark.parametrize(
    "bad",
    [
        "&",  # unterminated
        "&U,BTFw",  # unterminated
        "&AGE-",  # "a" must not be encoded
        "&ACY-",  # "&" must be "&-"
        "&U,BTFw-&ZeVnLIqe-",  # adjacent shifts must be merged
        "&A-",  # truncated
        "&AOk-x&AOl-",  # padding bits set (AOl)
        "&2D0-",  # lone high surrogate
        "&AO=-",  # "=" not allowed
        "&AO/-",  # "/" is "," in modified base64
        "caf\u00e9",  # 8-bit must be encoded
        "a\x01b",  # control must be encoded
    ],
)
def test_strict_decode_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        utf7.decode(bad)


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_roundtrip(text: str) -> None:
    wire = utf7.encode(text)
    assert wire.isascii()
    assert all(0x20 <= ord(ch) <= 0x7E for ch in wire)
    assert utf7.decode(wire) == text


@given(st.text(alphabet=st.sampled_from("&-AOkU,BTFw+/=a "), max_size=20))
def test_decode_is_canonical_or_raises(wire: str) -> None:
    try:
        text = utf7.decode(wire)
    except ValueError:
        return
    assert utf7.encode(text) == wire


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        utf7.encode("\ud800")
