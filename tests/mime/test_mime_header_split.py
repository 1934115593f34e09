"""``split_header_block`` (one regex per field) against the line-by-line definition.

RFC 5322 §2.2: a field is a name, a colon and a value; lines starting with WSP continue
it (§2.2.3 folding); the header ends at the first empty line.  The reference below is
the implementation the regex version replaced, kept as the definition.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from dualmail.mime.headers import HeaderBlock, HeaderField, split_header_block

_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def _reference(raw: bytes, start: int, end: int) -> HeaderBlock:
    fields: list[HeaderField] = []
    cur_name: str | None = None
    cur_start = cur_vstart = cur_vend = cur_end = 0

    def close() -> None:
        if cur_name is not None:
            fields.append(HeaderField(cur_name, raw[cur_vstart:cur_vend], cur_start, cur_end))

    pos = start
    while pos < end:
        nl = raw.find(b"\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        content_end = line_end
        if nl >= 0:
            content_end = nl - 1 if nl > pos and raw[nl - 1] == 0x0D else nl
        if content_end == pos and nl >= 0:
            close()
            return HeaderBlock(tuple(fields), line_end, pos)
        first = raw[pos]
        if first in (0x20, 0x09):
            if cur_name is not None:
                cur_vend, cur_end = content_end, line_end
            pos = line_end
            continue
        m = _NAME.match(raw, pos, content_end)
        if m is not None:
            close()
            cur_name = m.group(1).decode("ascii")
            cur_start, cur_vstart, cur_vend, cur_end = pos, m.end(), content_end, line_end
        elif pos == start and raw.startswith(b"From ", pos):
            pass
        else:
            close()
            return HeaderBlock(tuple(fields), pos, None)
        pos = line_end
    close()
    return HeaderBlock(tuple(fields), end, None)


_PIECES = [b"Subject", b"X-A", b":", b" ", b"\t", b"value", b"\r\n", b"\n", b"\r", b"From ",
           b"From: a@b", b"=?utf-8?q?x?=", b"\xe9", b"(", b"a:b", b"\x00", b"  :", b"To :x"]
headers = st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(headers, st.integers(0, 4), st.integers(0, 4))
def test_same_as_line_by_line(raw: bytes, cut_front: int, cut_back: int) -> None:
    start = min(cut_front, len(raw))
    end = max(start, len(raw) - cut_back)
    assert split_header_block(raw, start, end) == _reference(raw, start, end)


def test_examples() -> None:
    for raw in (b"A: 1\r\n b\r\nB:2\r\n\r\nbody", b"From x\r\nA: 1\r\n\r\n", b" lead\r\nA: 1\n\nb",
                b"A: 1\r\nnot a field\r\nB: 2", b"A:", b"A: x\r", b"A: x\r\r\n\r\n", b""):
        assert split_header_block(raw, 0, len(raw)) == _reference(raw, 0, len(raw)), raw
