"""Sans-I/O: the migration URL, source names -> dualmail paths, roles (RFC 6154 §2)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from dualmail.migrate.names import (SLASH_STANDIN, SourceURL, SourceURLError, assign_roles, parse_url,
                                    selected, source_path)


@pytest.mark.parametrize("url,want", [
    ("imap://bob@mail.example:1143", SourceURL(False, "bob", "mail.example", 1143)),
    ("imaps://bob%40example.org@mail.example", SourceURL(True, "bob@example.org", "mail.example", 993)),
    ("imap://bob@example.org@mail.example", SourceURL(False, "bob@example.org", "mail.example", 143)),
    ("IMAP://bob;AUTH=*@[::1]:10143/", SourceURL(False, "bob", "::1", 10143)),
])
def test_parse_url(url, want):
    assert parse_url(url) == want


@pytest.mark.parametrize("url", ["http://bob@x", "imap://x", "imap://@x", "imap://bob@", "imap://bob@x:0",
                                 "imap://bob@x:99999", "imap://bob@x:abc", "bob@x"])
def test_parse_url_refuses(url):
    with pytest.raises(SourceURLError):
        parse_url(url)


@given(st.text(max_size=60))
def test_parse_url_raises_only_its_error(url):
    try:
        parse_url(url)
    except SourceURLError:
        pass


def test_source_path_translates_the_separator():
    assert source_path("Archive.2023.Q1", ".") == ["Archive", "2023", "Q1"]
    assert source_path("inbox.Sent", ".") == ["INBOX", "Sent"]
    assert source_path("a/b.c", ".") == [f"a{SLASH_STANDIN}b", "c"]
    assert source_path("Früchte/日本語", "/") == ["Früchte", "日本語"]
    assert source_path("flat", None) == ["flat"]
    assert source_path("a..b", ".") == ["a", "_", "b"]


@given(st.text(min_size=1, max_size=40), st.sampled_from([".", "/", None]))
def test_source_path_components_are_valid_dualmail_names(name, sep):
    for part in source_path(name, sep):
        assert part and "/" not in part and all(ord(c) >= 0x20 and ord(c) != 0x7F for c in part)


def test_roles_special_use_first_then_well_known_names():
    boxes = [(["INBOX"], []), (["Sent"], []), (["Sent Items"], ["\\Sent"]), (["Deleted Items"], []),
             (["INBOX", "Junk E-mail"], []), (["Archive", "Drafts"], []), (["Spam"], []), (["Junk"], [])]
    assert assign_roles(boxes) == ["inbox", None, "sent", "trash", None, None, None, "junk"]
    # "Junk" outranks "Junk E-mail"; nested names below another folder are no role
    assert assign_roles([(["INBOX", "Junk E-mail"], [])]) == ["junk"]
    assert assign_roles([(["All Mail"], ["\\All"]), (["Flagged"], ["\\Flagged"])]) == ["all", "flagged"]


def test_mailbox_patterns():
    assert selected(["Archive", "2023"], ["Archive"])
    assert selected(["Archive", "2023"], ["Arch*"])
    assert not selected(["INBOX"], ["Archive"])
    assert selected(["INBOX"], [])
