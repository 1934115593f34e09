"""APPEND's MIME parsing in child processes (``dualmail.mail.parsers``, ``--parsers``).

Unit: a child's answer is exactly ``parse_for_store``'s; a killed child is replaced and
the message it had is parsed in the caller; ``n = 0`` and a closed pool parse in place.
End to end over the real IMAP listener: concurrent APPENDs parsed in children store the
same ENVELOPE, BODYSTRUCTURE, header fields and full-text terms as a server parsing in
its own process, and APPEND goes on after the children are killed.
"""

from __future__ import annotations

import imaplib
import os
import signal
import threading
from email.message import EmailMessage

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.mail import parsers as P
from imap_e2e import PASSWORD, USER, running


def _messages() -> list[bytes]:
    out = []
    for i in range(12):
        m = EmailMessage()
        m["From"] = f"Zoë Sender {i} <z{i}@example.org>"
        m["To"] = "alice@example.org"
        m["Subject"] = f"Réunion numéro {i} quokka{chr(97 + i)}z"
        m["Message-ID"] = f"<m{i}@example.org>"
        m.set_content(f"Bonjour, corps du message {i}: pelican{chr(97 + i)}z ünïcode.\n" * (1 + i * 40))
        if i % 3 == 0:
            m.add_attachment(b"\x01\x02" * 300, maintype="application", subtype="octet-stream",
                             filename=f"a{i}.bin")
        out.append(m.as_bytes().replace(b"\n", b"\r\n"))
    return out


# -- the pool, sans server -----------------------------------------------------------------


def test_a_child_answers_what_parse_for_store_makes() -> None:
    pool = P.Parsers(2)
    try:
        for raw in _messages():
            assert pool._in_child(raw) == P.parse_for_store(raw)
        assert pool.in_children == 12 and len(pool.pids()) == 2
    finally:
        pool.close()
    assert pool.pids() == []


def test_concurrent_callers_share_the_children() -> None:
    pool = P.Parsers(2)
    msgs = _messages()
    got: dict[int, object] = {}
    try:
        threads = [threading.Thread(target=lambda k=k: got.__setitem__(k, pool._in_child(msgs[k])))
                   for k in range(len(msgs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(got[k] == P.parse_for_store(msgs[k]) for k in range(len(msgs)))
    finally:
        pool.close()


def test_a_killed_child_is_replaced_and_its_message_parsed_here() -> None:
    pool = P.Parsers(1)
    raw = _messages()[1]
    try:
        assert pool._in_child(raw) == P.parse_for_store(raw)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert pool._in_child(raw) == P.parse_for_store(raw)  # parsed in this thread
        [new] = pool.pids()
        assert new != pid
        assert pool._in_child(raw) == P.parse_for_store(raw)  # and the new child works
        assert pool.in_children == 2
    finally:
        pool.close()


def test_parse_many_spreads_one_multiappend_over_the_children() -> None:
    """RFC 3502 MULTIAPPEND: one command's messages are parsed by every free child at once,
    answered in order, each exactly ``parse_for_store``'s."""
    pool = P.Parsers(2)
    msgs = _messages()
    try:
        assert pool.parse_many(msgs) == [P.parse_for_store(raw) for raw in msgs]
        assert pool.in_children == len(msgs) and len(pool.pids()) == 2
        assert pool.parse_many(msgs[:3]) == [P.parse_for_store(raw) for raw in msgs[:3]]
        assert pool.in_children == len(msgs) + 3
    finally:
        pool.close()


def test_parse_many_with_a_killed_child_parses_its_messages_here() -> None:
    pool = P.Parsers(2)
    msgs = _messages()
    try:
        assert pool.parse_many(msgs[:2]) == [P.parse_for_store(raw) for raw in msgs[:2]]
        dead = pool.pids()[0]
        os.kill(dead, signal.SIGKILL)
        os.waitpid(dead, 0)
        assert pool.parse_many(msgs) == [P.parse_for_store(raw) for raw in msgs]
        assert dead not in pool.pids() and len(pool.pids()) == 2  # replaced
        assert pool.parse_many(msgs[:4]) == [P.parse_for_store(raw) for raw in msgs[:4]]
    finally:
        pool.close()


def test_parse_many_without_children_parses_in_place() -> None:
    msgs = _messages()[:3]
    assert P.Parsers(0).parse_many(msgs) == [P.parse_for_store(raw) for raw in msgs]


def test_no_children_and_a_closed_pool_parse_in_place() -> None:
    raw = _messages()[0]
    none = P.Parsers(0)
    assert none.parse(raw) == P.parse_for_store(raw) and none.pids() == []
    pool = P.Parsers(2)
    pool.close()
    assert pool.parse(raw) == P.parse_for_store(raw) and pool.pids() == [] and pool.in_children == 0


def test_a_parse_alone_runs_in_the_caller() -> None:
    """Nothing else parsing and a small message: no round trip (and no child started)."""
    pool = P.Parsers(2)
    try:
        raw = _messages()[0]
        assert pool.parse(raw) == P.parse_for_store(raw)
        assert pool.pids() == [] and pool.in_children == 0
        big = raw + b"x" * (P.LOCAL_MAX + 1)
        assert pool.parse(big) == P.parse_for_store(big)
        assert pool.in_children == 1
    finally:
        pool.close()


def test_a_parse_while_another_append_is_under_way_goes_to_a_child() -> None:
    """Inside ``job``: alone (this caller's job only) it parses here; while another
    caller is between its parse and its write, in a child (the GIL is theirs)."""
    pool = P.Parsers(2)
    try:
        raw = _messages()[1]
        with pool.job():
            assert pool.parse(raw) == P.parse_for_store(raw)
            assert pool.in_children == 0
            other = threading.Event()
            done = threading.Event()

            def another() -> None:
                with pool.job():
                    other.set()
                    done.wait(10)

            t = threading.Thread(target=another)
            t.start()
            assert other.wait(10)
            assert pool.parse(raw) == P.parse_for_store(raw)
            assert pool.in_children == 1
            done.set()
            t.join()
            assert pool.parse(raw) == P.parse_for_store(raw)
            assert pool.in_children == 1
    finally:
        pool.close()


def test_the_stored_header_fields_made_ahead_are_what_the_transaction_makes() -> None:
    """``encode(summary, raw)`` (in a parser) carries the ``imaph`` value that
    ``create_email`` would cut out itself; without a registered splitter, None (the
    transaction then makes it)."""
    from dualmail.mime import summarize
    from dualmail.mime.jmap_listing import encode
    from dualmail.store import listing

    for raw in _messages() + [b"Subject: a\x00b\r\nFrom: x@y\r\n\r\nbody\r\n", b"no header at all"]:
        assert encode(summarize(raw), raw).headers == listing.header_record(raw)
        assert encode(summarize(raw)).headers is None
    saved = listing._splitter
    listing._splitter = None
    try:
        assert encode(summarize(raw), raw).headers is None
    finally:
        listing._splitter = saved


# -- end to end ------------------------------------------------------------------------------

FETCH = "(ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)])"


def _append_all(port: int, msgs: list[bytes]) -> None:
    errors: list[BaseException] = []
    go = threading.Barrier(len(msgs))

    def one(raw: bytes) -> None:
        try:
            c = imaplib.IMAP4("127.0.0.1", port)
            c.login(USER, PASSWORD)
            go.wait(30)
            typ, _ = c.append("INBOX", None, None, raw)
            assert typ == "OK"
            c.logout()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(raw,)) for raw in msgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def _view(port: int, n: int, twice: int = -1) -> dict[bytes, object]:
    """Message-ID -> what FETCH and SEARCH say of it."""
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(USER, PASSWORD)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1:*", FETCH)
    assert typ == "OK"
    items = [d for d in data if isinstance(d, tuple)]
    assert len(items) == n
    out: dict[bytes, object] = {}
    for head, fields in items:
        mid = [line for line in fields.split(b"\r\n") if line.lower().startswith(b"message-id")][0]
        # the part of the FETCH response that does not name the UID (which differs by order)
        out[mid] = (head.split(b" ", 3)[3].split(b"BODY[HEADER")[0].replace(b"UID ", b""), fields)
    for i in range(12):
        for key in (f"pelican{chr(97 + i)}z", f"quokka{chr(97 + i)}z"):
            typ, hits = c.uid("SEARCH", "TEXT", key)
            assert typ == "OK" and len(hits[0].split()) == (2 if i == twice else 1), (key, hits)
    c.logout()
    return out


@pytest_twisted.ensureDeferred
async def test_concurrent_appends_parsed_in_children_store_what_in_process_parsing_stores(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(P, "LOCAL_MAX", -1)  # every parse in a child
    msgs = _messages()
    async with running(tmp_path / "kids", "--parsers", "2") as srv:
        assert srv.store.parsers is not None
        await deferToThread(_append_all, srv.imap_port, msgs)
        assert srv.store.parsers.in_children == len(msgs)
        assert len(srv.store.parsers.pids()) == 2
        kids = await deferToThread(_view, srv.imap_port, len(msgs))
        # killed children: the next APPEND is parsed anyway and new children take over
        for pid in srv.store.parsers.pids():
            os.kill(pid, signal.SIGKILL)
        await deferToThread(_append_all, srv.imap_port, [_messages()[5].replace(b"<m5@", b"<again@")])
        extra = await deferToThread(_view, srv.imap_port, len(msgs) + 1, 5)
        assert len(srv.store.parsers.pids()) == 2
        pids = srv.store.parsers.pids()
        parsers = srv.store.parsers
    assert srv.store.parsers is None and parsers.pids() == []  # ended with the service
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, 0)  # reaped: no zombie left behind
    async with running(tmp_path / "here", "--parsers", "0") as srv:
        assert srv.store.parsers is None
        await deferToThread(_append_all, srv.imap_port, msgs)
        here = await deferToThread(_view, srv.imap_port, len(msgs))
    assert kids == here
    assert {k: v for k, v in extra.items() if b"again@" not in k} == here


def _multiappend(port: int, msgs: list[bytes]) -> None:
    """One APPEND command carrying every message (RFC 3502), over a raw socket."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    while not f.readline().startswith(b"a "):
        pass
    parts = [b"b APPEND INBOX"] + [b" (\\Seen) {%d+}\r\n" % len(raw) + raw for raw in msgs]
    sock.sendall(b"".join(parts) + b"\r\n")
    while not (line := f.readline()).startswith(b"b "):
        pass
    assert line.startswith(b"b OK [APPENDUID "), line
    sock.close()


@pytest_twisted.ensureDeferred
async def test_multiappend_is_parsed_in_children_and_stores_what_in_process_parsing_stores(
        tmp_path) -> None:
    msgs = _messages()
    async with running(tmp_path / "kids", "--parsers", "2") as srv:
        await deferToThread(_multiappend, srv.imap_port, msgs)
        assert srv.store.parsers.in_children == len(msgs)
        kids = await deferToThread(_view, srv.imap_port, len(msgs))
    async with running(tmp_path / "here", "--parsers", "0") as srv:
        await deferToThread(_multiappend, srv.imap_port, msgs)
        here = await deferToThread(_view, srv.imap_port, len(msgs))
    assert kids == here


def test_parsers_option() -> None:
    from twisted.python import usage

    from dualmail.tap import Options

    o = Options()
    o.parseOptions([])
    assert o["parsers"] == min(4, os.cpu_count() or 1)
    o = Options()
    o.parseOptions(["--parsers", "0"])
    assert o["parsers"] == 0
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--parsers", "many"])
