"""Differential test: the same mail in dualmail and in Debian's Dovecot gives the same answers.

Both servers run on loopback: Dovecot as a child process with a throwaway configuration
(``tests/dovecot_util.py``), dualmail as the real service (``makeService`` on tcp:0).
The same messages are APPENDed to both with the same flags and INTERNALDATEs, then
compared message by message (FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY and
BODYSTRUCTURE, BODY[], HEADER, TEXT, HEADER.FIELDS[.NOT], and every part's BODY[n],
BODY[n.MIME], BINARY[n], BINARY.SIZE[n], n.HEADER and n.TEXT), and over a table of SEARCH
and SORT queries.  The same messages written as mbox files (Python's ``mailbox`` module
and a mutt-style file with X-Keywords/X-UID/Content-Length/X-IMAPbase) are imported with
``dualmail import`` and read by Dovecot's mbox driver, and compared the same way.

Every difference must be listed, with the RFC section that makes dualmail's answer the
right one, in ``deviations.py``; an unlisted difference fails, and so does a listed one
that no longer happens (the list stays true).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

import differential as d
import dovecot_util
from deviations import stale, unlisted

pytestmark = pytest.mark.e2e

if dovecot_util.dovecot_binary() is None:
    if os.environ.get("CI"):
        raise RuntimeError(dovecot_util.skip_reason())
    pytest.skip(dovecot_util.skip_reason(), allow_module_level=True)

USER, PASSWORD = dovecot_util.USER, dovecot_util.PASSWORD


async def _dualmail(data: Path):
    from twisted.internet import reactor

    from dualmail.tap import Options, makeService

    options = Options()
    options.parseOptions(["--data", str(data), "--imap", "tcp:0:interface=127.0.0.1",
                          "--jmap", "tcp:0:interface=127.0.0.1", "--no-first-account"])
    service = makeService(options, reactor)
    service.startService()
    [port] = await service.bound_ports("imap")
    return service, port.getHost().port


def _account(data: Path) -> None:
    from dualmail.store.store import open_store

    s = open_store(str(data), sync=False)
    s.create_account(USER, PASSWORD)
    s.close()


def _import(data: Path, path: Path, mailbox: str) -> None:
    code = ("import sys; from dualmail.cli import main; sys.exit(main(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, "--data", str(data), "import", USER, str(path),
                    "--mailbox", mailbox, "--workers", "0", "--quiet"],
                   check=True, capture_output=True, timeout=120)


def _check(diffs: list[d.Diff], scope: str) -> None:
    bad = unlisted(diffs)
    gone = stale(diffs, scope)
    report = "\n".join(str(x) for x in bad)
    assert not bad, f"{len(bad)} difference(s) from Dovecot not in deviations.py:\n{report}"
    assert not gone, "listed deviations that no longer happen: " + ", ".join(map(str, gone))


MSGS = d.corpus()


def _queries() -> list[tuple[str, tuple[bytes, ...]]]:
    q: list[tuple[str, tuple[bytes, ...]]] = []
    for key in [
        "ALL", "1:5", "3,7:9,*", "2:*", "SEEN", "UNSEEN", "FLAGGED", "ANSWERED", "DRAFT", "DELETED",
        "UNDELETED", "KEYWORD $Forwarded", "KEYWORD $forwarded", "KEYWORD Custom", "KEYWORD custom",
        "UNKEYWORD $Junk", "KEYWORD NonJunk", "KEYWORD $MailFlagBit0",
        "NOT SEEN", "OR FLAGGED DRAFT", "OR SEEN NOT FLAGGED", "NOT OR SEEN ANSWERED",
        "LARGER 2000", "SMALLER 600", "LARGER 100000", "NOT LARGER 1200",
        "BEFORE 1-Jun-2020", "SINCE 1-Jun-2020", "ON 08-Jun-2019", "BEFORE 15-Mar-2021 SINCE 1-Feb-2020",
        "SENTBEFORE 1-Jan-2003", "SENTSINCE 1-Jan-2010", "SENTON 3-Mar-2020",
        "SENTSINCE 1-Jan-2019 SENTBEFORE 1-Jan-2022", "SENTBEFORE 1-Jan-1980",
        "FROM example.com", "FROM anne", "TO bob@example.net", "CC carol", "BCC dave",
        "SUBJECT parameters", "SUBJECT Fwd", "HEADER Message-ID reuse", "HEADER X-Empty \"\"",
        "HEADER Content-Type multipart", "HEADER MIME-Version 1.0",
        "BODY zebraword", "BODY quaggaword", "BODY giraffeword", "BODY okapiword", "BODY wombatword",
        "BODY \"plain alternative\"", "BODY antelope", "TEXT zebraword", "TEXT parameters",
        "BODY deepest", "TEXT inner", "BODY hello", "TEXT Subject", "NOT BODY the",
        "1:10 UNSEEN", "OR 1:3 KEYWORD $Junk",
    ]:
        q.append(("SEARCH " + key, ()))
    for word in ["Grüße", "café", "crème", "Привет", "ünïcode", "méssage", "wörds"]:
        q.append(("SEARCH CHARSET UTF-8 BODY {}", (word.encode(),)))
        q.append(("SEARCH CHARSET UTF-8 TEXT {}", (word.encode(),)))
    q.append(("SEARCH CHARSET UTF-8 SUBJECT {}", ("méssage".encode(),)))
    for key in ["ARRIVAL", "DATE", "REVERSE DATE", "SIZE", "REVERSE SIZE", "SUBJECT", "FROM", "TO", "CC",
                "DATE SUBJECT", "REVERSE ARRIVAL"]:
        q.append((f"SORT ({key}) UTF-8 ALL", ()))
    q.append(("SORT (DATE) UTF-8 UNSEEN", ()))
    return q


def _run_inbox(dport: int, mport: int) -> list[d.Diff]:
    with d.login(dport, USER, PASSWORD) as dc, d.login(mport, USER, PASSWORD) as dm:
        d.append_all(dc, MSGS)
        d.append_all(dm, MSGS)
        diffs = d.compare_messages(dc, dm, MSGS)
        diffs += d.compare_queries(dc, dm, _queries())
    return diffs


async def _compare(tmp_path, run, setup=None) -> list[d.Diff]:
    """Dovecot and dualmail side by side: ``setup(dovecot, data)`` (in a thread) before
    dualmail starts, then ``run(dovecot, dualmail_port)`` (in a thread) -> differences."""
    data = tmp_path / "dualmail"
    _account(data)
    dc = await deferToThread(dovecot_util.start_dovecot)
    service = None
    try:
        if setup is not None:
            await deferToThread(setup, dc, data)
        service, port = await _dualmail(data)
        return await deferToThread(run, dc, port)
    finally:
        if service is not None:
            await service.stopService()
        dc.stop()


@pytest_twisted.ensureDeferred
async def test_same_answers_as_dovecot(tmp_path):
    diffs = await _compare(tmp_path, lambda dc, port: _run_inbox(dc.port, port))
    _check(diffs, "inbox")


# Every other message: the import path is what is compared here (the MIME answers are
# compared in full above), and the test stays well inside its time budget.
MBOX_MSGS = [m for m in MSGS if d.mbox_safe(m)][::2]


def _run_mbox(dc: dovecot_util.Dovecot, mport: int) -> list[d.Diff]:
    diffs: list[d.Diff] = []
    with d.login(dc.port, USER, PASSWORD) as a, d.login(mport, USER, PASSWORD) as b:
        for name in ("python", "mutt"):
            diffs += [d.Diff(x.subject, f"[{name} mbox] {x.item}", x.dovecot, x.dualmail)
                      for x in d.compare_messages(a, b, MBOX_MSGS, mailbox="mbox/" + name)]
    return diffs


@pytest_twisted.ensureDeferred
async def test_mbox_import_same_as_dovecot(tmp_path):
    def setup(dc: dovecot_util.Dovecot, data: Path) -> None:
        py = tmp_path / "python.mbox"
        d.python_mbox(str(py), MBOX_MSGS)
        mutt = tmp_path / "mutt.mbox"
        mutt.write_bytes(d.mutt_mbox(MBOX_MSGS))
        for path, name in ((py, "python"), (mutt, "mutt")):
            dc.put_mbox(name, path.read_bytes())
            _import(data, path, "mbox/" + name)

    diffs = await _compare(tmp_path, _run_mbox, setup)
    _check(diffs, "mbox")
