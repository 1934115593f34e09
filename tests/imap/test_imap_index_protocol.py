"""The IMAP indexes seen from the protocol: listing FETCH, ``BODY.PEEK[HEADER.FIELDS
(...)]``, SEARCH and SORT answer byte-identically whether they read the per-membership
indexes and stored header fields (``store.imapidx``, table ``imaph``) or, for a store
written before those existed, the email records and message bytes (RFC 9051 §6.4.4,
§6.4.5; RFC 5256 §3 SORT; RFC 4731 ESEARCH)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.imap.ops import fetch as fetch_op
from dualmail.store import imapidx
from dualmail.store.check import upgrade, verify

from imap_util import PASSWORD, USER, Client, logged_in
from test_imap_listing_record import _fill
from tests.old_store import make_old


HF = "BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID References)]"
TB = ("BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
      "Newsgroups In-Reply-To Content-Type Reply-To)]")
COMMANDS = [
    "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
    "FETCH 1:* (FLAGS MODSEQ BODYSTRUCTURE)",
    "UID FETCH 3,7,20:25 (FLAGS RFC822.SIZE BODY)",
    f"UID FETCH 1:* ({HF})",
    "FETCH 2:9 (BODY.PEEK[HEADER.FIELDS (subject FROM)]<4.20>)",
    "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject X-Not-Stored)])",  # not stored: the message
    "UID FETCH 1:5 (BODY.PEEK[HEADER.FIELDS.NOT (Subject)])",
    "UID FETCH 1:5 (BODY.PEEK[HEADER.FIELDS (Subject)] FLAGS)",
    f"UID FETCH 1:* (UID RFC822.SIZE FLAGS {TB})",  # Thunderbird's new-mail fetch
    "FETCH 2:9 (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)]<2.5> MODSEQ ENVELOPE BODY.PEEK[HEADER.FIELDS (From)])",
    "UID SEARCH UNSEEN",
    "SEARCH UNSEEN",
    "UID SEARCH FLAGGED UNDELETED",
    "UID SEARCH OR DELETED LARGER 3000",
    "UID SEARCH ALL",
    "UID SEARCH RETURN (MIN MAX COUNT) UNSEEN",
    "UID SORT (REVERSE DATE) UTF-8 ALL",
    "UID SORT (DATE) UTF-8 ALL",
    "SORT (ARRIVAL) UTF-8 UNSEEN",
    "UID SORT (REVERSE SIZE) UTF-8 ALL",
    "UID SORT RETURN (ALL COUNT) (SIZE) UTF-8 FLAGGED",
    "UID SORT (SUBJECT) UTF-8 ALL",
]


def _answers(store: Any) -> list[str]:
    c, other = logged_in(store)
    c.ok("s1 ENABLE CONDSTORE")
    c.ok("s2 SELECT INBOX")
    other.ok("o1 SELECT INBOX")
    other.ok("o2 STORE 5:9 +FLAGS (\\Deleted NewKeyword)")
    other.ok("o3 STORE 10:12 -FLAGS (\\Seen)")
    other.ok("o4 STORE 13 +FLAGS (\\Flagged)")
    out = [c.ok(f"f{i + 1} {cmd}") for i, cmd in enumerate(COMMANDS)]
    other.ok("o5 EXPUNGE")  # ghosts in c's view: answered NO [EXPUNGEISSUED] / left out
    # RFC 2180 §4.1.2: no EXPUNGE is sent during FETCH, so these meet the ghosts
    out += [c.cmd("x1 FETCH 1:* (FLAGS ENVELOPE)"), c.cmd(f"x2 FETCH 1:* ({HF})")]
    out += [c.cmd(f"g{i + 1} {cmd}") for i, cmd in enumerate(COMMANDS)]
    return out


def _inbox_answers(store: Any, cmds: list[str]) -> list[str]:
    """The answers to ``cmds`` in a new session with INBOX selected."""
    c = Client(store)
    c.login()
    c.ok("s SELECT INBOX")
    return [c.ok(f"h{i} {x}") for i, x in enumerate(cmds)]


def _twin(tmp_path: Any, name: str) -> tuple[Any, int]:
    from dualmail.store.store import open_store

    s = open_store(str(tmp_path / name), sync=False)
    a = s.create_account(USER, PASSWORD)
    _fill(s, a)
    return s, a


def test_indexed_and_old_stores_answer_byte_identically(store: Any, account: int, tmp_path: Any) -> None:
    _fill(store, account)
    old, a2 = _twin(tmp_path, "old")
    try:
        make_old(old, a2)
        fast = _answers(store)
        assert _answers(old) == fast
        with old.read(a2) as v:
            assert verify(v) == []
        upgrade(old, a2)  # dualmail check --upgrade
        with old.read(a2) as v:
            assert verify(v) == []
            assert imapidx.ready(v.mailbox(v.mailbox_by_path(["INBOX"])))
        assert _answers(old)[:len(COMMANDS)] == _answers(store)[:len(COMMANDS)]
    finally:
        old.close()
    assert fast[0].count("ENVELOPE (") == 40
    assert all("NO [EXPUNGEISSUED]" in x for x in fast[len(COMMANDS):len(COMMANDS) + 2])
    assert " 10 11 12" in fast[COMMANDS.index("UID SEARCH UNSEEN")].split("\r\n")[-3]


def test_header_fields_from_the_stored_fields_equal_the_message(store: Any, account: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Odd header blocks: folded and repeated fields, bare LF, no blank line, a message
    ending inside a field, 8-bit values, a field name in another case."""
    from dualmail.mail.ops import deliver

    raws = [
        b"From: a@x\r\nSubject: one\r\n two\r\nSUBJECT: again\r\nX-Other: 1\r\n\r\nbody\r\n",
        b"From: a@x\nTo: b@y\nSubject: bare LF\n\nbody\n",
        b"Subject: no blank line\r\nFrom: c@z\r\n",
        b"From: d@w\r\nSubject: ends inside",
        "Subject: caf\u00e9 \u00fcber\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nx".encode(),
        b"Received: from x\r\n\tby y\r\nMessage-ID: <1@x>\r\nReferences: <0@x>\r\n  <00@x>\r\n\r\n",
        b"not a header line\r\nSubject: after garbage\r\n\r\n",
    ]
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
    for raw in raws:
        deliver(store, account, raw, inbox, ())
    cmds = [f"UID FETCH 1:* ({HF})", "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)]<2.9>)"]

    def answers() -> list[str]:
        return _inbox_answers(store, cmds)

    fast = answers()
    monkeypatch.setattr(fetch_op, "_stored_headers", lambda atts: None)  # through the message
    assert answers() == fast
    assert "SUBJECT: again" in fast[1]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["From", "to", "Subject", "X-A", "References", "Date"]),
                          st.text(alphabet="ab \t:\u00e9", max_size=8),
                          st.sampled_from(["\r\n", "\n", "\r\n ", "\r\n\t"])), max_size=6),
       st.sampled_from(["\r\n\r\nbody", "\r\n", "", "\n\nb"]))
def test_stored_header_fields_equal_section_bytes(fields: list[tuple[str, str, str]], tail: str) -> None:
    """The ``imaph`` value gives exactly ``imap_body.section_bytes`` for HEADER.FIELDS."""
    from dualmail.mail import listing as ml  # noqa: F401  (registers the splitter)
    from dualmail.mime import imap_body
    from dualmail.mime.parse import summarize
    from dualmail.store import listing

    raw = "".join(f"{n}: {v}{e}" for n, v, e in fields).encode() + tail.encode()
    structure = summarize(raw)["structure"]
    value = listing.header_record(raw)
    # versions 1 and 2, as older stores hold them, and their rewrites by ``check --upgrade``
    entries = _v2_entries(value)
    v1, v2 = listing.record_v1(*entries), listing.record_v2(*entries)
    assert (value[0], v1[0], v2[0]) == (3, 1, 2)
    assert value.endswith(v2) and listing.upgraded(v1) == listing.upgraded(v2) == value
    assert listing.upgraded(value) is None
    # version 3 as a later dualmail with one more preset would read it: the same answers
    fewer = b"\x03\x01" + value[2:6] + value[10:10 + int.from_bytes(value[2:6], "big")] + v2
    assert listing.upgraded(fewer) == value
    for names in (["From", "To", "Subject", "Date", "Message-ID", "References"],
                  ["references", "message-id", "date", "subject", "to", "from", "FROM"],  # the preset, reordered
                  TB[len("BODY.PEEK[HEADER.FIELDS ("):-2].split(),  # Thunderbird's: the other preset
                  ["From", "To", "Subject", "Date", "Message-ID"],  # one short of a preset
                  ["subject"], ["to", "TO"], ["X-B"]):
        want = imap_body.section_bytes(raw, structure, ["HEADER.FIELDS", names])
        ids = listing.header_ids(names) or frozenset()
        for stored in (value, v1, v2, fewer):
            assert listing.header_fields(stored, ids) == want


def _v2_entries(value: bytes) -> tuple[list[tuple[int, bytes]], bytes | None]:
    """(id, bytes) entries and blank line of a version 3 ``imaph`` value, parsed by hand:
    its version 2 tail is what follows the preset answers."""
    n = value[1]
    lens = [int.from_bytes(value[2 + 4 * i:6 + 4 * i], "big") for i in range(n)]
    v2 = value[2 + 4 * n + sum(lens):]
    assert v2[0] == 2
    end = v2.rfind(b"\x00\x00")
    parts = v2[1:end].split(b"\x00")[1:]
    blank = v2[end + 2:]
    return [(p[0] - 1, p[1:]) for p in parts], (blank or None)


def test_older_and_unreadable_header_rows_answer_as_the_message(store: Any, account: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows as a store of format 2 holds them (version 2, no stored answers) give the same
    bytes as version 3 rows; ``check --upgrade`` rewrites them as version 3; a row of a
    layout this version does not read is answered from the message, not with NO; ``check``
    names a row whose stored answers disagree with its fields (RFC 9051 §6.4.5)."""
    from dualmail.store import keys as K, listing
    from dualmail.store.txn import prefix_end

    _fill(store, account)
    with store.read(account) as v:
        es = [e for _u, e in v.uid_items(v.mailbox_by_path(["INBOX"]))]
    cmds = [f"UID FETCH 1:* ({HF})", f"UID FETCH 1:* (UID RFC822.SIZE FLAGS {TB})",
            "UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject From)])"]

    def answers() -> list[str]:
        return _inbox_answers(store, cmds)

    def rows() -> dict[bytes, bytes]:
        p = K.acct(account)
        with store.kv.read() as r:
            return dict(r.range("imaph", p, prefix_end(p)))

    answers()  # the first session takes \\Recent (RFC 3501 §2.3.2): the others see none
    new = answers()
    v3 = rows()
    assert {v[0] for v in v3.values()} == {3}
    with store.kv.write() as w:  # as format 2 wrote them
        for k, v in v3.items():
            w.put("imaph", k, listing.record_v2(*_v2_entries(v)))
    assert answers() == new
    assert upgrade(store, account) == [f"{len(v3)} emails: header fields stored"]
    assert rows() == v3 and upgrade(store, account) == []
    with store.kv.write() as w:  # two rows of a layout from a later dualmail
        for e in es[2:4]:
            w.put("imaph", K.email(account, e), b"\x09future")
    assert answers() == new
    make_old(store, account, header_fields=True)  # the same without the IMAP indexes
    assert answers() == new
    k = K.email(account, es[5])
    bad = v3[k].replace(b"Subject:", b"Subjekt:", 1)  # in the stored answer, not the fields
    assert bad != v3[k] and listing.header_fields(bad, listing.PRESETS[0]) != listing.header_fields(v3[k], listing.PRESETS[0])
    with store.kv.write() as w:
        w.put("imaph", k, bad)
    with store.read(account) as v:
        assert verify(v) == [f"stored header-field answers of email {es[5]} disagree with its fields"]


def test_version_3_rows_from_a_later_dualmail_and_cut_short() -> None:
    """A version 3 row with more stored answers than this version knows (``PRESETS`` is
    append-only) answers the known sets and any other from its fields; a row cut short is
    unreadable (None: FETCH answers from the message), never an exception."""
    from dualmail.mail import listing as ml  # noqa: F401  (registers the splitter)
    from dualmail.mime import imap_body
    from dualmail.mime.parse import summarize
    from dualmail.store import listing

    raw = b"From: a@x\r\nTo: b@y\r\nSubject: s\r\nX-Priority: 1\r\n\r\nbody"
    value = listing.header_record(raw)
    n = value[1]
    lens = [int.from_bytes(value[2 + 4 * i:6 + 4 * i], "big") for i in range(n)]
    answers, tail = value[2 + 4 * n:2 + 4 * n + sum(lens)], value[2 + 4 * n + sum(lens):]
    later = b"\x03" + bytes([n + 1]) + value[2:2 + 4 * n] + (3).to_bytes(4, "big") + answers + b"new" + tail
    for names in (["From", "To", "Subject", "Date", "Message-ID", "References"],
                  TB[len("BODY.PEEK[HEADER.FIELDS ("):-2].split(), ["x-priority", "subject"]):
        want = imap_body.section_bytes(raw, summarize(raw)["structure"], ["HEADER.FIELDS", names])
        assert listing.header_fields(later, listing.header_ids(names)) == want
    assert listing.presets_agree(later) and listing.upgraded(later) is None
    for cut in (b"\x03", b"\x03\x02", b"\x03\x02\x00\x00", value[:7]):
        for ids in (*listing.PRESETS, frozenset({4})):
            assert listing.header_fields(cut, ids) is None
        assert listing.upgraded(cut) is None and not listing.presets_agree(cut)


def test_header_fields_with_a_nul_byte_are_stored_as_version_1() -> None:
    """A NUL in a field would read as a version 2 marker: such a message keeps version 1,
    answered the same, and ``check --upgrade`` leaves it (RFC 9051 §6.4.5 HEADER.FIELDS)."""
    from dualmail.mail import listing as ml  # noqa: F401  (registers the splitter)
    from dualmail.mime import imap_body
    from dualmail.mime.parse import summarize
    from dualmail.store import listing

    for raw in (b"From: a\x00b@x\r\nSubject: s\r\n\r\nbody", b"Subject: s\r\nTo: a\r\n \x00b\r\n\r\n"):
        value = listing.header_record(raw)
        assert value[0] == 1 and listing.upgraded(value) is None
        names = ["From", "Subject", "To"]
        want = imap_body.section_bytes(raw, summarize(raw)["structure"], ["HEADER.FIELDS", names])
        assert listing.header_fields(value, listing.header_ids(names)) == want


def test_listing_with_header_fields_equals_the_renderer(store: Any, account: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing items beside stored header fields (what Thunderbird asks for new mail) come
    from the index rows and ``imaph``; an Email without stored fields (written before that
    table) is rendered from its message in the same answer.  Byte-identical to the general
    renderer (RFC 9051 §6.4.5: items in the order asked)."""
    from dualmail.store import keys as K

    _fill(store, account)
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
        es = [e for _u, e in v.uid_items(inbox)]
    with store.kv.write() as w:  # two Emails as an older store holds them
        for e in (es[3], es[10]):
            w.delete("imaph", K.email(account, e))
    cmds = [f"UID FETCH 1:* (UID RFC822.SIZE FLAGS {TB})",
            f"FETCH 1:12 ({HF} FLAGS INTERNALDATE)",
            "UID FETCH 2:30 (BODY.PEEK[HEADER.FIELDS (Subject)]<1.4> RFC822.SIZE)"]

    def answers() -> list[str]:
        c, other = logged_in(store)
        c.ok("s SELECT INBOX")
        other.ok("o1 SELECT INBOX")
        other.ok("o2 STORE 5:9 +FLAGS (\\Flagged NewKeyword)")
        return [c.ok(f"h{i} {x}") for i, x in enumerate(cmds)]

    answers()  # (the first session claims \\Recent)
    fast = answers()
    monkeypatch.setattr(fetch_op, "_stored_header", lambda a: None)  # the general renderer
    assert answers() == fast
    assert fast[0].count("RFC822.SIZE ") == 40 and "NewKeyword" in fast[0]


def test_search_unseen_from_memory_equals_the_index(store: Any, account: int, tmp_path: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SEARCH UNSEEN answered from ``Store.unseen_sets`` (kept up to date across another
    session's STORE, EXPUNGE and the ghosts it leaves) is byte-identical to the answer read
    from the ``unseen`` index each time (RFC 9051 §6.4.4; RFC 2180 §4.1.2 ghosts)."""
    from dualmail.search import imap_index
    from dualmail.store.uidmap import UnseenSets

    _fill(store, account)
    twin, _a2 = _twin(tmp_path, "twin")
    try:
        store.unseen_sets = UnseenSets(min_size=0)  # the test mailbox is small
        fast = _answers(store)
        assert store.unseen_sets.hits > 0
        monkeypatch.setattr(imap_index, "is_unseen", lambda cond: False)
        assert _answers(twin) == fast
    finally:
        twin.close()
