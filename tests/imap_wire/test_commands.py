"""Command value helpers: FETCH attribute names as echoed in responses (RFC 9051 §7.5.2)."""

from __future__ import annotations

import dataclasses

import pytest

from dualmail.imap.wire import commands as c
from wire_util import feed_whole


@pytest.mark.parametrize(
    ("att", "sent", "echoed"),
    [
        ("BODY.PEEK[HEADER.FIELDS (DATE FROM)]", "BODY.PEEK[HEADER.FIELDS (DATE FROM)]", "BODY[HEADER.FIELDS (DATE FROM)]"),
        ("BODY[]<0.2048>", "BODY[]<0.2048>", "BODY[]<0>"),
        ("body[1.2.mime]", "BODY[1.2.MIME]", "BODY[1.2.MIME]"),
        ("BINARY.PEEK[1]<10.5>", "BINARY.PEEK[1]<10.5>", "BINARY[1]<10>"),
        ("BINARY.SIZE[2]", "BINARY.SIZE[2]", "BINARY.SIZE[2]"),
        ("rfc822.size", "RFC822.SIZE", "RFC822.SIZE"),
        ("PREVIEW (LAZY)", "PREVIEW (LAZY)", "PREVIEW"),
    ],
)
def test_fetch_att_names(att: str, sent: str, echoed: str) -> None:
    (cmd,) = feed_whole(b"a FETCH 1 (" + att.encode() + b")\r\n")
    (fa,) = cmd.attributes
    assert fa.format() == sent
    assert fa.response_name() == echoed
    (again,) = feed_whole(b"a FETCH 1 (" + fa.format().encode() + b")\r\n")
    assert again.attributes == (fa,)


def test_commands_are_frozen_and_slotted() -> None:
    for name in dir(c):
        cls = getattr(c, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            assert cls.__dataclass_params__.frozen, name
            assert hasattr(cls, "__slots__"), name
            if issubclass(cls, c.Command):
                assert dataclasses.fields(cls)[0].name == "tag", name
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.Noop("a").tag = "b"  # type: ignore[misc]
