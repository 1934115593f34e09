"""Properties: every (state, command) pair is handled or refused with BAD, and arbitrary
bytes never make the session raise or hang (h2's state-machine tests, h11's fuzzing)."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings, strategies as st

from imap_util import USER, PASSWORD, Client
from dualmail.imap.states import LEGAL, State, legal
from dualmail.imap.wire import commands as c

COMMAND_LINES = {
    c.Capability: "CAPABILITY", c.Noop: "NOOP", c.Id: "ID NIL", c.StartTLS: "STARTTLS",
    c.Enable: "ENABLE IMAP4rev2", c.Select: "SELECT INBOX", c.Examine: "EXAMINE INBOX",
    c.Create: "CREATE x", c.Delete: "DELETE nope", c.Rename: "RENAME nope other",
    c.Subscribe: "SUBSCRIBE INBOX", c.Unsubscribe: "UNSUBSCRIBE INBOX",
    c.List: 'LIST "" *', c.Lsub: 'LSUB "" *', c.Namespace: "NAMESPACE",
    c.Status: "STATUS INBOX (MESSAGES)", c.GetJmapAccess: "GETJMAPACCESS", c.Check: "CHECK",
    c.Expunge: "EXPUNGE", c.Search: "SEARCH ALL", c.Fetch: "UID FETCH 1:* FLAGS",
    c.Store: "UID STORE 1:* +FLAGS (\\Seen)", c.Copy: "UID COPY 1:* Trash",
    c.Move: "UID MOVE 1:* Trash", c.Sort: "SORT (DATE) UTF-8 ALL",
    c.Thread: "THREAD REFERENCES UTF-8 ALL", c.Unselect: "UNSELECT", c.Close: "CLOSE",
    c.GetMetadata: 'GETMETADATA "" /shared/comment', c.SetMetadata: 'SETMETADATA "" (/shared/c NIL)',
    c.Notify: "NOTIFY NONE",
    c.GenUrlAuth: 'GENURLAUTH "imap://u@h/INBOX/;uid=1;urlauth=anonymous" INTERNAL',
    c.ResetKey: "RESETKEY", c.UrlFetch: 'URLFETCH "imap://u@h/INBOX/;uid=1"',
    c.Replace: 'UID REPLACE 1 INBOX CATENATE (URL "/INBOX/;uid=1")', c.Unauthenticate: "UNAUTHENTICATE",
    c.CancelUpdate: "CANCELUPDATE \"t\"", c.Compress: "COMPRESS DEFLATE",
}
COMMAND_LINES.update({c.GetQuota: 'GETQUOTA ""', c.GetQuotaRoot: "GETQUOTAROOT INBOX",
                      c.SetQuota: 'SETQUOTA "" (STORAGE 1)'})


def test_every_state_command_pair(store, account) -> None:
    skip = {c.Logout, c.Idle, c.Login, c.Authenticate, c.Append}
    for cmd_type in LEGAL:
        if cmd_type in skip:
            continue
        line = COMMAND_LINES[cmd_type]
        for state in (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED):
            cl = Client(store)
            if state is not State.NOT_AUTHENTICATED:
                cl.ok(f"l LOGIN {USER} {PASSWORD}")
            if state is State.SELECTED:
                cl.ok("s SELECT INBOX")
            out = cl.cmd("t " + line)
            status = re.search(r"^t (OK|NO|BAD)", out, re.M)
            assert status, (cmd_type, state, out)
            if not legal(_dummy(cmd_type), state):
                assert status.group(1) == "BAD", (cmd_type, state, out)
            elif cmd_type is c.CancelUpdate:  # no context "t": BAD, as Dovecot (RFC 5267 §4.3.5)
                assert "t BAD No updating context with tag t" in out, out
            else:
                assert status.group(1) in ("OK", "NO"), (cmd_type, state, out)


def _dummy(cmd_type: type) -> c.Command:
    """An instance only for the type check in ``legal``."""
    obj = object.__new__(cmd_type)
    return obj  # type: ignore[no-any-return]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"a SELECT INBOX\r\n", b"b FETCH 1:* (FLAGS BODY[])\r\n", b"c IDLE\r\n",
                     b"DONE\r\n", b"d APPEND INBOX {5}\r\n", b"hello\r\n", b"e LOGOUT\r\n",
                     b"f UID SEARCH RETURN (SAVE) ALL\r\n", b"g STORE $ +FLAGS (x)\r\n",
                     b"h AUTHENTICATE PLAIN\r\n", b"{3+}\r\n", b"\r\n", b"i EXPUNGE\r\n"])),
    max_size=12))
def test_any_bytes_never_raise(store, account, chunks) -> None:
    cl = Client(store)
    cl.ok(f"l LOGIN {USER} {PASSWORD}")
    for chunk in chunks:
        out = cl.send(chunk)
        assert "SERVERBUG" not in out, out
        if cl.closed:
            break
