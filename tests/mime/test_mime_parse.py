"""summarize(): the stored summary of each fixture message."""

from __future__ import annotations

import json
import time

import pytest

from mime_helpers import DATA, check_offsets, load
from dualmail.mime import summarize
from dualmail.mime.structure import MAX_DEPTH, iter_nodes

KEYS = {
    "message_id", "in_reply_to", "references", "subject", "base_subject", "sent_at", "sent_at_offset",
    "from", "sender", "reply_to", "to", "cc", "bcc", "preview", "has_attachment", "envelope",
    "structure", "header_text", "body_text",
}
FIXTURES = sorted(p.name for p in DATA.glob("*.eml"))


def _plain_json(value):
    """Only dict/list/str/int/bool/None, as the store requires."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            _plain_json(v)
    elif isinstance(value, list):
        for v in value:
            _plain_json(v)
    else:
        assert value is None or isinstance(value, (str, int, bool)), type(value)


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_has_all_keys_plain_json_and_sane_offsets(name):
    raw = load(name)
    s = summarize(raw)
    assert KEYS <= set(s)
    _plain_json(s)
    assert json.loads(json.dumps(s)) == s
    check_offsets(s["structure"], 0, len(raw))
    assert s["structure"]["hdr_start"] == 0 and s["structure"]["body_end"] == len(raw)
    assert len(s["preview"]) <= 256


def test_simple():
    s = summarize(load("simple.eml"))
    assert s["subject"] == "Lunch tomorrow?"
    assert s["from"] == [{"name": "Alice Example", "email": "alice@example.com"}]
    assert s["to"] == [{"name": "Bob", "email": "bob@example.net"}]
    assert s["cc"] == [] and s["sender"] == []
    assert s["message_id"] == ["B27397-0100000@example.com"]
    # Mon, 7 Feb 1994 21:52:25 -0800 == 1994-02-08T05:52:25Z
    assert s["sent_at"] == 760686745 and s["sent_at_offset"] == -480
    assert s["preview"] == "Hi Bob, Are you free for lunch tomorrow? Alice"
    assert s["body_text"] == "Hi Bob,\n\nAre you free for lunch tomorrow?\n\nAlice\n"
    assert s["has_attachment"] is False
    assert "Subject: Lunch tomorrow?" in s["header_text"]
    assert s["header_names"][:3] == ["return-path", "from", "to"]


def test_lf_only_and_crlf_give_the_same_summary_except_sizes():
    crlf, lf = summarize(load("simple.eml")), summarize(load("lf_only.eml"))
    for key in KEYS - {"structure", "body_text"}:
        assert crlf[key] == lf[key], key
    assert crlf["body_text"].replace("\r\n", "\n") == lf["body_text"]
    assert lf["structure"]["lines"] == crlf["structure"]["lines"] == 5


def test_alternative_inside_mixed():
    s = summarize(load("alternative_in_mixed.eml"))
    st = s["structure"]
    assert (st["type"], st["subtype"]) == ("multipart", "mixed")
    alt, pdf = st["parts"]
    assert [(p["type"], p["subtype"], p["part"]) for p in alt["parts"]] == [
        ("text", "plain", "1.1"),
        ("text", "html", "1.2"),
    ]
    assert pdf["name"] == "report.pdf" and pdf["disposition"] == ["attachment", [["filename", "report.pdf"]]]
    assert s["preview"] == "Status: all green. Café opens at 9."
    assert s["has_attachment"] is True
    # RFC 5256 §2.1: "Re: Fwd: [proj] Status report (fwd)" -> "Status report"
    assert s["base_subject"] == "Status report"
    assert s["references"] == ["root@example.com", "orig@example.com"]
    assert s["in_reply_to"] == ["orig@example.com"]
    # textBody prefers text/plain; the HTML alternative is not indexed twice
    assert s["body_text"] == "Status: all green. Café opens at 9."


def test_related_inline_images_are_not_attachments():
    """RFC 8621 §4.1.4 hasAttachment: inline / cid-referenced parts are ignored."""
    s = summarize(load("related_inline.eml"))
    html, logo, spacer = s["structure"]["parts"]
    assert logo["cid"] == "logo@example.org" and logo["id"] == "<logo@example.org>"
    assert spacer["cid"] == "spacer@example.org"
    assert s["has_attachment"] is False
    assert s["preview"] == "Café news"  # iso-8859-1 QP HTML decoded and converted


def test_message_rfc822_attachment():
    raw = load("rfc822_attachment.eml")
    s = summarize(raw)
    msg_part = s["structure"]["parts"][1]
    inner = msg_part["message"]
    assert inner["envelope"]["subject"] == "original"
    assert inner["envelope"]["from"] == [["Original Sender", None, "orig", "example.org"]]
    sub = inner["structure"]
    assert sub["part"] == "2" and [p["part"] for p in sub["parts"]] == ["2.1", "2.2"]
    assert raw[sub["parts"][0]["body_start"] : sub["parts"][0]["body_end"]] == b"Original text."
    assert s["has_attachment"] is True
    # the attached message's header and text are indexed too (RFC 9051 §6.4.4 BODY)
    assert s["body_text"] == (
        "See the attached message.\nFrom: Original Sender <orig@example.org>\nTo: forwarder@example.com\n"
        "Subject: original\nDate: Wed, 2 Jul 2003 09:00:00 +0000\nMessage-ID: <orig-1@example.org>\n"
        'Content-Type: multipart/alternative; boundary="oalt"\nOriginal text.')


def test_missing_content_type_defaults_to_text_plain_us_ascii():
    """RFC 2045 §5.2."""
    st = summarize(load("no_content_type.eml"))["structure"]
    assert (st["type"], st["subtype"], st["params"], st["charset"]) == ("text", "plain", [["charset", "us-ascii"]], "us-ascii")


def test_digest_default_is_message_rfc822():
    """RFC 2046 §5.1.5: in multipart/digest the default type is message/rfc822."""
    st = summarize(load("digest.eml"))["structure"]
    first, second = st["parts"]
    assert (first["type"], first["subtype"]) == ("message", "rfc822")
    assert first["message"]["envelope"]["subject"] == "first"
    assert (second["type"], second["subtype"]) == ("text", "plain")


def test_bad_charsets_are_best_effort():
    s = summarize(load("bad_charset.eml"))
    assert "café unknown charset" in s["body_text"]
    assert "café 8-bit in us-ascii" in s["body_text"]


def test_rfc2047_and_rfc2231_headers():
    s = summarize(load("encoded_headers.eml"))
    # RFC 2047 §8 example: two encoded-words in different charsets, space dropped
    assert s["subject"] == "If you can read this you understand the example."
    assert s["from"] == [{"name": "Keld Jørn Simonsen", "email": "keld@example.dk"}]
    assert s["to"][1] == {"name": "Jörg", "email": "joerg@example.de"}
    _text, jp, resume = s["structure"]["parts"]
    # RFC 2231 §3/§4: continuations with charset; filename wins over name
    assert dict(map(tuple, jp["params"]))["name"] == "日本語.txt"
    assert jp["name"] == "£ rates.txt"
    assert resume["name"] == "longname.doc"  # RFC 2231 §3 plain continuations
    assert dict(map(tuple, resume["params"]))["name"] == "=?utf-8?q?r=C3=A9sum=C3=A9.doc?="
    # 23:59:60 (leap second) read as :59
    assert s["sent_at"] == 1057359599 and s["sent_at_offset"] == 60


def test_raw_utf8_headers():
    """RFC 6532: raw UTF-8 in header fields."""
    s = summarize(load("utf8_headers.eml"))
    assert s["subject"] == "Grüße aus München"
    assert s["from"] == [{"name": "Jörg Müller", "email": "jörg@example.de"}]
    assert s["to"] == [{"name": "田中", "email": "tanaka@example.jp"}]
    assert s["envelope"]["subject"] == "Grüße aus München"


def test_broken_boundary_is_best_effort():
    raw = load("broken_boundary.eml")
    s = summarize(raw)
    first, second = s["structure"]["parts"]
    assert raw[first["body_start"] : first["body_end"]] == b"first part\r\n--rightnot a delimiter\r\nstill first part"
    assert raw[second["body_start"] : second["body_end"]] == b"second part, never closed\r\n"
    assert "no_close_delimiter" in s["defects"]


def test_no_body_and_no_blank_line():
    raw = load("no_body.eml")
    st = summarize(raw)["structure"]
    assert st["hdr_end"] == st["body_start"] == st["body_end"] == len(raw)
    assert st["lines"] == 0


def test_empty_bytes():
    s = summarize(b"")
    assert KEYS <= set(s)
    assert s["structure"]["body_end"] == 0 and s["subject"] is None and s["from"] == []


def test_multipart_without_delimiters_gets_one_synthetic_part():
    raw = b"Content-Type: multipart/mixed; boundary=nope\r\n\r\njust text\r\n"
    st = summarize(raw)["structure"]
    (only,) = st["parts"]
    assert raw[only["body_start"] : only["body_end"]] == b"just text\r\n"
    assert only["hdr_start"] == only["hdr_end"] == st["body_start"]


def _nested(depth: int, kind: str) -> bytes:
    head, tail = [], []
    for i in range(depth):
        if kind == "multipart":
            head.append(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i))
            tail.append(b"\r\n--b%d--\r\n" % i)
        else:
            head.append(b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % i)
    return b"".join(head) + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + b"".join(reversed(tail))


@pytest.mark.parametrize("kind", ["multipart", "message"])
def test_deep_nesting_is_capped_not_a_crash(kind):
    raw = _nested(200, kind)
    s = summarize(raw)
    assert "unparseable" not in s["defects"]
    assert "max_depth" in s["defects"]
    check_offsets(s["structure"], 0, len(raw))
    depth, node = 0, s["structure"]
    while True:
        nxt = (node.get("parts") or [None])[0] or (node.get("message") or {}).get("structure")
        if nxt is None:
            break
        node, depth = nxt, depth + 1
    assert depth <= MAX_DEPTH + 1


def test_many_parts_are_capped():
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\na\r\n" * 20000 + b"--x--\r\n"
    s = summarize(raw)
    assert "too_many_parts" in s["defects"]
    assert len(iter_nodes(s["structure"])) <= 5001
    check_offsets(s["structure"], 0, len(raw))


def test_huge_header():
    to = b"To: " + b",\r\n ".join(b"User %d <user%d@example.com>" % (i, i) for i in range(20000)) + b"\r\n"
    received = b"".join(b"Received: from host%d by relay; Tue, 1 Jul 2003 10:52:37 +0200\r\n" % i for i in range(5000))
    raw = received + b"From: a@example.com\r\n" + to + b"Subject: big\r\n\r\nbody\r\n"
    start = time.perf_counter()
    s = summarize(raw)
    elapsed = time.perf_counter() - start
    assert len(s["to"]) == 20000 and s["to"][-1] == {"name": "User 19999", "email": "user19999@example.com"}
    assert len(s["envelope"]["to"]) == 20000
    assert s["subject"] == "big" and s["body_text"] == "body\n"
    assert len(s["header_text"]) <= 64 * 1024
    assert elapsed < 5.0


def test_large_attachment_is_not_decoded_and_fast():
    payload = b"QUFB" * 19 + b"\r\n"
    raw = (
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nhi\r\n--z\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + payload * 26000
        + b"--z--\r\n"
    )
    assert len(raw) > 2_000_000
    summarize(raw)
    start = time.perf_counter()
    s = summarize(raw)
    assert time.perf_counter() - start < 0.25
    assert s["has_attachment"] and s["body_text"] == "hi"


def test_typical_message_parses_quickly():
    raw = load("alternative_in_mixed.eml") * 1
    summarize(raw)
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        summarize(raw)
    assert (time.perf_counter() - start) / n < 0.005  # generous bound for CI; ~0.3 ms measured
