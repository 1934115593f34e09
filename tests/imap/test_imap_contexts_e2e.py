"""End to end: ESORT, PARTIAL and CONTEXT=SEARCH updates through the real listener with
imaplib (RFC 5267, RFC 9394); the change comes from a second connection."""

from __future__ import annotations

import imaplib

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from imap_util import message
from imap_e2e import logged_in_pair, running

pytestmark = pytest.mark.e2e


def _session(port: int) -> None:
    a, b = logged_in_pair(port)
    try:
        caps = a.capability()[1][0].split()
        for cap in (b"ESORT", b"CONTEXT=SEARCH", b"CONTEXT=SORT", b"PARTIAL", b"SORT=DISPLAY"):
            assert cap in caps, caps
        for i in range(1, 6):
            assert a.append("INBOX", None, None, message(f"s{i}"))[0] == "OK"
        assert a.select("INBOX") == ("OK", [b"5"])
        b.select("INBOX")
        typ, _ = a.sort("(REVERSE SUBJECT)", "US-ASCII", "ALL")
        assert typ == "OK"
        typ, _ = a._simple_command("SORT", "RETURN", "(MIN MAX ALL)", "(REVERSE SUBJECT)",
                                   "US-ASCII", "ALL")
        assert typ == "OK"
        [es] = a.untagged_responses.pop("ESEARCH")
        assert es.endswith(b"MIN 5 MAX 1 ALL 5,4,3,2,1"), es
        typ, _ = a._simple_command("UID", "SEARCH", "RETURN", "(PARTIAL -1:-2)", "ALL")
        [es] = a.untagged_responses.pop("ESEARCH")
        assert es.endswith(b"UID PARTIAL (-1:-2 4:5)"), es
        assert a._simple_command("UID", "SEARCH", "RETURN", "(UPDATE)", "FLAGGED")[0] == "OK"
        [es] = a.untagged_responses.pop("ESEARCH")
        tag = es.split(b'"')[1].decode()
        assert es == f'(TAG "{tag}") UID'.encode(), es
        assert b.uid("STORE", "3", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert a.noop()[0] == "OK"
        assert a.untagged_responses.pop("ESEARCH") == [f'(TAG "{tag}") UID ADDTO (0 3)'.encode()]
        imaplib.Commands.setdefault("CANCELUPDATE", ("SELECTED",))
        typ, _ = a._simple_command("CANCELUPDATE", f'"{tag}"')
        assert typ == "OK"
        assert b.uid("STORE", "4", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert a.noop()[0] == "OK"
        assert "ESEARCH" not in a.untagged_responses
    finally:
        a.logout()
        b.logout()


@pytest_twisted.ensureDeferred
async def test_contexts_over_the_listener(tmp_path) -> None:
    async with running(tmp_path) as srv:
        await deferToThread(_session, srv.imap_port)
