"""The chunked mbox reader against the original line-by-line reader.

``_reference_messages`` below is the line-based implementation that
``_mbox_messages`` replaced, kept verbatim (with the header helpers it
used) as the definition of the expected output: same messages, raw bytes,
flags, dates, origins and errors, for any input.
"""

import email.utils
import os
import re
from itertools import islice
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dualmail.importer import sources
from dualmail.importer.sources import (
    ImportSourceError,
    SourceMessage,
    _from_line_epoch,
    _header,
    _header_block,
    _mbox_meta,
    iter_mbox,
)

# -- the reference: the original line-based reader ----------------------------

_REF_HEADER_RE_CACHE: dict[bytes, re.Pattern[bytes]] = {}


def _ref_header(block: bytes, name: bytes) -> bytes | None:
    rx = _REF_HEADER_RE_CACHE.get(name)
    if rx is None:
        rx = re.compile(
            rb"^" + re.escape(name) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
            re.I | re.M,
        )
        _REF_HEADER_RE_CACHE[name] = rx
    m = rx.search(block)
    if m is None:
        return None
    return re.sub(rb"\r?\n", b"", m.group(1)).strip()


def _ref_date_header_epoch(block: bytes) -> int | None:
    value = _ref_header(block, b"Date")
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return None
    try:
        return int(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


_STATUS_FLAGS = {ord("R"): "\\Seen"}
_XSTATUS_FLAGS = {
    ord("A"): "\\Answered",
    ord("F"): "\\Flagged",
    ord("D"): "\\Deleted",
    ord("T"): "\\Draft",
}


_ESCAPED_FROM = re.compile(rb">+From ")


def _reference_messages(f, p, mtime):
    lines: list[bytes] = []
    from_date: int | None = None
    start = -1  # byte offset of the current From_ line; -1: none yet
    held_blank: bytes | None = None  # empty line that may be framing
    offset = 0
    number = 0

    def finish() -> SourceMessage:
        # The metadata fields are stripped the same way (tested in test_mbox_meta.py).
        raw, flags = _mbox_meta(b"".join(lines))
        block = _header_block(raw)
        date = from_date
        if date is None:
            date = _ref_date_header_epoch(block)
        if date is None:
            date = mtime
        return SourceMessage(
            mailbox=(),
            raw=raw,
            flags=flags,
            internal_date=date,
            origin=f"{p}: message {number} at byte {start}",
        )

    for line in f:
        here = offset
        offset += len(line)
        if line[:5] == b"From " and (
            start < 0 or held_blank is not None
            or _from_line_epoch(line) is not None
        ):
            if start >= 0:
                yield finish()
            lines = []
            held_blank = None
            start = here
            number += 1
            from_date = _from_line_epoch(line)
            continue
        if start < 0:
            if line.strip(b"\r\n"):
                raise ImportSourceError(
                    f"{p}: not an mbox (does not start with a 'From ' line)"
                )
            continue  # tolerate empty lines in front of the first From_
        if line[:1] == b">" and _ESCAPED_FROM.match(line):
            line = line[1:]
        if line[-1:] == b"\n" and line[-2:] != b"\r\n":
            line = line[:-1] + b"\r\n"
        if held_blank is not None:
            lines.append(held_blank)
            held_blank = None
        if line == b"\r\n":
            held_blank = line
        else:
            lines.append(line)
    if start >= 0:
        # One trailing empty line is the terminator of the last message.
        yield finish()


def reference_mbox(path, limit=None):
    """(messages as tuples, error message or None), the reference way."""
    p = os.fspath(path)
    with open(p, "rb", buffering=1 << 20) as f:
        mtime = int(os.fstat(f.fileno()).st_mtime)
        return _collect(_reference_messages(f, p, mtime), limit)


def fast_mbox(path, limit=None):
    return _collect(iter_mbox(path), limit)


def _collect(it, limit):
    out = []
    try:
        for m in islice(it, limit):
            out.append((m.mailbox, m.raw, m.flags, m.internal_date, m.origin))
    except ImportSourceError as e:
        return out, str(e)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return out, None


def assert_same(path, limit=None):
    expected = reference_mbox(path, limit)
    got = fast_mbox(path, limit)
    assert got == expected
    return got


# -- differential tests -------------------------------------------------------

_PIECES = [
    b"From ", b"From a@b Mon Jan  1 00:00:00 2024\n", b"From a@b Mon Jan  1 00:00:00 2024",
    b"From x Tue, 2 Jan 2024 10:00:00 +0100\r\n", b"From nodate\n", b"From\n",
    b">From ", b">>From x\n", b">From\n", b">", b"From",
    b"\n", b"\n", b"\n", b"\r\n", b"\r\n", b"\r", b"\r\r\n", b"\n\n",
    b"Status: RO\n", b"X-Status: AF\n", b"status: r\r\n", b"X-Status:\n D\n",
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n", b"Date: garbage\n",
    b"Subject: x\n", b"text", b" ", b"\t", b"x", b"\xff",
]


def _write(tmp_path, data: bytes, name="d.mbox"):
    p = Path(tmp_path) / name
    p.write_bytes(data)
    os.utime(p, (1_600_000_000, 1_600_000_321))
    return p


@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(_PIECES), max_size=40))
@example(parts=[])
@example(parts=[b"\n", b"\r", b"\r\n"])
@example(parts=[b"From "])
@example(parts=[b"\r", b"From "])
@example(parts=[b"\n", b"\r\r\n", b"From ", b"\n", b"\n", b"\n"])
@example(parts=[b"From ", b"\n", b"From ", b"\n", b"\r\n", b"From "])
@example(parts=[b"From \r\n", b"From a@b Mon Jan  1 00:00:00 2024"])
def test_same_as_reference(tmp_path, parts):
    assert_same(_write(tmp_path, b"".join(parts)))


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200).map(
    lambda b: b.translate(bytes.maketrans(b"\x00\x01\x02\x03\x04", b"\n\r>F ")))
    | st.binary(max_size=60).map(lambda b: b"From " + b))
def test_same_as_reference_random_bytes(tmp_path, data):
    assert_same(_write(tmp_path, data))


@settings(max_examples=800, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.sampled_from([1, 2, 3, 5, 7, 64]),
       parts=st.lists(st.sampled_from(_PIECES), max_size=40))
def test_same_as_reference_tiny_chunks(tmp_path, chunk, parts):
    # Messages, From_ lines and blank runs that straddle read boundaries.
    with mock.patch.object(sources, "_MBOX_CHUNK", chunk):
        assert_same(_write(tmp_path, b"".join(parts)))


def test_leading_blank_lines_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_MBOX_CHUNK", 4)
    for lead in (b"", b"\n" * 9, b"\r\n" * 7, b"\r" * 10 + b"\n", b"\r" * 11):
        for rest in (b"", b"From a\nx\n", b"Frox\n", b"\rFrom a\n", b"Fro"):
            messages, err = assert_same(_write(tmp_path, lead + rest))
            if not rest:
                assert messages == [] and err is None
            elif rest.startswith(b"From ") and lead[-1:] in (b"", b"\n"):
                assert err is None and len(messages) == 1
            else:  # "\r\rFrom a" is not an empty line, and not a From_ line
                assert messages == [] and err is not None


_HEADER_PIECES = [
    b"Status", b"status", b"X-Status", b"x-STATUS", b"Date", b"Message-ID", b"X-",
    b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"R", b"O", b"A F", b"DT",
    b"Mon, 1 Jan 2024 00:00:00 +0000", b"<a@B.example>", b"x", b"\x0b",
]


@settings(max_examples=1000, deadline=None)
@given(parts=st.lists(st.sampled_from(_HEADER_PIECES), max_size=30),
       name=st.sampled_from([b"Status", b"X-Status", b"Date", b"Message-ID"]))
def test_header_lookup_same_as_reference(parts, name):
    block = b"".join(parts)
    assert _header(block, name) == _ref_header(block, name)


def test_large_message_and_many_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_MBOX_CHUNK", 1000)
    big = b"".join(b"line %d >From x\n" % i for i in range(20000))
    data = b""
    for i in range(30):
        data += (b"From a@b Mon Jan  1 00:00:%02d 2024\nStatus: R\nSubject: %d\n\n" % (i, i)
                 + (big if i % 7 == 3 else b"body\n>From here\nFrom nodate\n") + b"\n")
    got = assert_same(_write(tmp_path, data))
    assert len(got[0]) == 30 and got[1] is None


def test_generator_closes_file(tmp_path):
    p = _write(tmp_path, b"From a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n\n" * 3)
    it = iter_mbox(p)
    next(it)
    f = it.gi_frame.f_locals["f"]
    assert not f.closed
    it.close()
    assert f.closed
    it = iter_mbox(p)
    assert len(list(it)) == 3
    assert it.gi_frame is None  # finished, file closed by the with block


def test_reads_from_a_pipe(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    import threading

    data = b"\nFrom a Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n\nFrom b\nc\n" * 50
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as w:
            w.write(data)

    t = threading.Thread(target=writer)
    t.start()
    got = [m.raw for m in iter_mbox(fifo)]
    t.join()
    p = _write(tmp_path, data)
    assert got == [m.raw for m in iter_mbox(p)]
    assert len(got) == 100


_BENCH = Path(__file__).resolve().parents[2] / "bench" / "out" / "mail-10000.mbox"


@pytest.mark.skipif(not _BENCH.exists(), reason="bench/out/mail-10000.mbox not generated")
def test_same_as_reference_on_bench_file():
    got, err = assert_same(_BENCH, limit=2000)
    assert err is None and len(got) == 2000
