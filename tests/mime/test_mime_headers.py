"""Header-level pieces: RFC 5256 base subject, RFC 2047 words, RFC 2231 params, dates, header blocks."""

from __future__ import annotations

import pytest

from dualmail.mime import base_subject
from dualmail.mime.headers import parse_content_type, parse_date, parse_disposition, split_header_block
from dualmail.mime.rfc2047 import decode_words


@pytest.mark.parametrize(
    "subject, base",
    [
        ("Re: hello", "hello"),
        ("RE:  Fwd:\thello", "hello"),  # step 1 collapses whitespace, step 3 repeats
        ("Re[2]: hello", "Re[2]: hello"),  # "[2]" must follow "re" then ":" -- it does: see next
        ("re [2]: hello", "hello"),
        ("[PATCH] Re: fix", "fix"),  # subj-blob before subj-refwd
        ("[PATCH v2] fix bug", "fix bug"),  # step 4: blob removed, non-empty remains
        ("[PATCH]", "[PATCH]"),  # step 4: removing would leave nothing
        ("hello (fwd)", "hello"),  # step 2 trailer
        ("hello (FWD) (fwd)  ", "hello"),
        ("[Fwd: Re: hello]", "hello"),  # step 6 then back to step 2/3
        ("Re: [fwd: [list] hi (fwd)]", "hi"),
        ("Fw: x", "x"),
        ("Fwd : x", "Fwd : x"),  # no WSP allowed between "fwd" and ":"? *WSP is allowed: see next
        ("Reply: x", "Reply: x"),
        ("", ""),
        ("Re:", ""),
        ("Café RE: x", "Café RE: x"),
    ],
)
def test_base_subject(subject, base):
    """RFC 5256 §2.1 steps (1)-(7) and the §5 ABNF."""
    if subject == "Re[2]: hello":
        base = "hello"  # subj-refwd = "re" *WSP [subj-blob] ":" matches "Re[2]:"
    if subject == "Fwd : x":
        base = "x"  # *WSP between "fwd" and ":" is allowed
    assert base_subject(subject) == base


def test_base_subject_is_not_case_folded():
    assert base_subject("Re: Hello World") == "Hello World"


def test_rfc2047_examples():
    """RFC 2047 §8 examples of whitespace handling between encoded-words."""
    assert decode_words("(=?ISO-8859-1?Q?a?=)", strict=False) == "(a)"
    assert decode_words("(=?ISO-8859-1?Q?a?= b)", strict=False) == "(a b)"
    assert decode_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", strict=False) == "(ab)"
    assert decode_words("(=?ISO-8859-1?Q?a?=  \t =?ISO-8859-1?Q?b?=)", strict=False) == "(ab)"
    assert decode_words("(=?ISO-8859-1?Q?a_b?=)", strict=False) == "(a b)"
    assert decode_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", strict=False) == "(a b)"
    # a multi-octet character split across two words
    assert decode_words("=?utf-8?b?w6k=?= =?utf-8?q?=C3?= =?utf-8?q?=A9?=") == "éé"
    # RFC 2231 §5 language suffix
    assert decode_words("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore"
    # malformed base64 is left alone
    assert decode_words("=?utf-8?b?#?=") == "=?utf-8?b?#?="


def test_rfc2231_params():
    """RFC 2231 §3 (continuations), §4 (charset/language), and both combined."""
    ctype = parse_content_type(
        "message/external-body; access-type=URL;\r\n"
        ' URL*0="ftp://";\r\n URL*1="cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"'
    )
    assert ctype == (
        "message",
        "external-body",
        [["access-type", "URL"], ["url", "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"]],
    )
    ctype = parse_content_type("application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A")
    assert ctype is not None and ctype[2] == [["title", "This is ***fun***"]]
    ctype = parse_content_type(
        "application/x-stuff; title*0*=us-ascii'en'This%20is%20even%20more%20;"
        " title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\""
    )
    assert ctype is not None and ctype[2] == [["title", "This is even more ***fun*** isn't it!"]]


def test_params_leniency():
    assert parse_content_type("Text/HTML;Charset=\"UTF-8\" ; Name=My File.htm") == (
        "text",
        "html",
        [["charset", "UTF-8"], ["name", "My File.htm"]],
    )
    assert parse_content_type("text") is None  # invalid -> caller uses the default
    assert parse_content_type("(comment) text/plain; charset=us-ascii (Plain text)") == (
        "text",
        "plain",
        [["charset", "us-ascii"]],
    )
    assert parse_disposition('attachment; filename="a \\"b\\".txt"; size=12') == (
        "attachment",
        [["filename", 'a "b".txt'], ["size", "12"]],
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Tue, 1 Jul 2003 10:52:37 +0200", (1057049557, 120)),
        ("1 Jul 2003 10:52:37 -0330", (1057069357, -210)),  # 14:22:37Z
        ("Tue, 1 Jul 03 10:52:37 GMT", (1057056757, 0)),
        ("Tue, 1 Jul 2003 10:52:37", (1057056757, 0)),  # no zone: -0000
        ("Tue, 31 Feb 2003 10:52:37 +0000", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_dates(text, expected):
    """RFC 5322 §3.3 (and §4.3 obsolete forms)."""
    assert parse_date(text) == expected


def test_header_block_offsets():
    raw = b"From sender Tue\r\nA: 1\r\n\tcontinued\r\nB:2\r\n\r\nbody"
    block = split_header_block(raw, 0, len(raw))
    assert [(f.name, f.value) for f in block.fields] == [("A", b" 1\r\n\tcontinued"), ("B", b"2")]
    assert raw[block.fields[0].start : block.fields[0].end] == b"A: 1\r\n\tcontinued\r\n"
    assert raw[block.body_start :] == b"body" and block.blank_start == raw.index(b"\r\n\r\n") + 2
    # a non-header line ends the block without a blank line (stdlib feedparser rule)
    raw = b"A: 1\nnot a header\nB: 2\n"
    block = split_header_block(raw, 0, len(raw))
    assert [f.name for f in block.fields] == ["A"] and raw[block.body_start :] == b"not a header\nB: 2\n"
    assert block.blank_start is None
