"""summarize() never raises, on random bytes, on mutated real messages and on
CPython's own email test corpus; offsets always stay in bounds and nested."""

from __future__ import annotations

import json
import pathlib
import sysconfig

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mime_helpers import DATA, check_offsets
from dualmail.mime import summarize
from dualmail.mime.bodylists import body_lists
from dualmail.mime.imap_body import bodystructure_bytes, envelope_bytes, section_bytes
from dualmail.mime.jmap_body import body_part, body_value
from dualmail.mime.structure import iter_nodes

SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
TOKENS = [
    b"\r\n", b"\n", b"\r", b"--", b"--b\r\n", b"--outer--", b"--inner\r\n", b"\r\n\r\n", b":", b";",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"=?utf-8?q?=C3?=", b"=?", b"?=", b"*0*=utf-8''%",
    b'"', b"(", b")", b"<", b">", b"@", b",", b"\x00", b"\xff", b"\xc3", b" ", b"\t", b"[fwd:", b"Re:",
]


def _exercise(raw: bytes) -> None:
    s = summarize(raw)
    json.dumps(s)
    st_ = s["structure"]
    check_offsets(st_, 0, len(raw))
    assert st_["hdr_start"] == 0 and st_["body_end"] == len(raw)
    assert isinstance(s["preview"], str) and len(s["preview"]) <= 256
    bodystructure_bytes(st_, True)
    bodystructure_bytes(st_, False)
    envelope_bytes(s["envelope"])
    section_bytes(raw, st_, "HEADER.FIELDS (From Subject)")
    body_part(raw, st_)
    for node in body_lists(st_)[0]:
        body_value(raw, node, 100)
    for node in iter_nodes(st_):
        if node["type"] == "multipart":
            assert node["parts"], "a multipart always has a part 1"


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes(raw):
    _exercise(raw)


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 12))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_messages(raw):
    _exercise(raw)


def _cpython_corpus() -> list[pathlib.Path]:
    base = pathlib.Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
    return sorted(base.glob("msg_*.txt"))


@pytest.mark.skipif(not _cpython_corpus(), reason="CPython email test corpus not installed")
def test_cpython_email_corpus_sweep():
    """Every message of Lib/test/test_email/data parses, serialises and keeps offsets."""
    files = _cpython_corpus()
    for path in files:
        raw = path.read_bytes()
        _exercise(raw)
        _exercise(raw.replace(b"\n", b"\r\n"))
    assert len(files) > 40
