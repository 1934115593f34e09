"""Header fields dualmail writes are folded (RFC 5322 §2.1.1, §2.2.3): lines at most
78 characters where whitespace allows, never over 998 — one function,
``email_build.fold_header``, for Email/set create, vacation replies and submissions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualmail.jmap.types.email_build import HeaderTooLongError, fold_header
from dualmail.mime.headers import unfold
from tests.jmap.jmap_store_util import aid
from tests.jmap_mail.jmap_mail_util import DRAFTS, eid, mid


def _lines(text: str) -> list[str]:
    return text.split("\r\n")


def test_fold_at_whitespace():
    ids = " ".join(f"<{i}.{'x' * 20}@example.org>" for i in range(10))
    text = fold_header("References", ids)
    assert all(len(line) <= 78 for line in _lines(text))
    assert all(line.startswith(" ") for line in _lines(text)[1:])  # each fold is CRLF + WSP
    assert unfold(text.encode()) == "References: " + ids  # unfolding gives the value back


def test_short_values_and_whitespace_kept():
    assert fold_header("Subject", "Re:  two  spaces") == "Subject: Re:  two  spaces"
    assert fold_header("X", "") == "X:"


def test_a_line_break_in_the_value_is_a_space():
    """No header injection: a bare CR or LF cannot end the field."""
    assert fold_header("Subject", "a\r\nBcc: x@y\rz\nw") == "Subject: a Bcc: x@y z w"


def test_long_words_stay_whole_up_to_998():
    word = "<" + "a" * 900 + "@b>"
    assert fold_header("In-Reply-To", word) == "In-Reply-To: " + word
    with pytest.raises(HeaderTooLongError):
        fold_header("In-Reply-To", "<" + "a" * 1000 + "@b>")


def test_non_ascii_is_encoded_and_folded():
    text = fold_header("Subject", "Auto: " + "Ünïcode " * 30)
    assert text.isascii() and "=?utf-8?" in text
    assert all(len(line) <= 78 for line in _lines(text))


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(st.characters(codec="utf-8"), max_size=600) | st.lists(
    st.text("abcdefghij<>@.", min_size=1, max_size=90), max_size=30).map(" ".join))
def test_any_value_folds_within_the_limits(value):
    try:
        text = fold_header("X-Any", value)
    except HeaderTooLongError:
        assert any(len(w) > 900 for w in value.split())
        return
    lines = _lines(text)
    assert all(len(line.encode()) <= 998 for line in lines)
    assert all(line.strip(" \t") for line in lines)  # no line of only whitespace
    if value.isascii():
        assert all(len(line) <= 78 or " " not in line.strip() for line in lines)
        got = unfold(text.encode()).split(None, 1)[1:]
        if any(c in value for c in "\r\n"):
            # RFC 5322 §2.2: a header body holds no CR or LF but a fold's; a line break in the
            # value becomes whitespace, the words stay
            assert " ".join(" ".join(got).split()) == " ".join(value.split())
        else:
            # RFC 5322 §2.2.3: unfolding gives the value back; only WSP (space, tab) around
            # it is not kept -- not Python's wider whitespace (\x1c-\x1f, \v, \f are text)
            body = unfold(text.encode()).partition(":")[2]
            assert body.strip(" \t") == value.strip(" \t")


def test_email_set_create_writes_folded_headers(client, store, alice):
    urls = [f"https://lists.example.org/{'p' * 20}/{i}" for i in range(6)]
    ids = [f"{i}.{'m' * 30}@example.org" for i in range(6)]
    result = client.call("Email/set", {"create": {"c": {
        "mailboxIds": {mid(DRAFTS): True}, "references": ids, "header:List-Post:asURLs": urls,
        "subject": " ".join(["word"] * 40), "to": [{"name": f"Person {i}", "email": f"p{i}@example.org"} for i in range(8)],
    }}}, alice)
    email = result["created"]["c"]
    with store.read(alice) as r:
        raw = r.raw_message(eid(email["id"]))
    header = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in header) <= 78, [line for line in header if len(line) > 78]
    got = client.call("Email/get", {"ids": [email["id"]], "properties": [
        "references", "header:List-Post:asURLs", "subject"]}, alice)["list"][0]
    assert got["references"] == ids and got["header:List-Post:asURLs"] == urls
    assert got["subject"] == " ".join(["word"] * 40)
