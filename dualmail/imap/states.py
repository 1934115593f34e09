"""Which IMAP commands are legal in which connection state: one table (RFC 9051 §3).

Rules:

* NOT_AUTHENTICATED: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, AUTHENTICATE, LOGIN.
* AUTHENTICATED: the "any state" commands, ENABLE (RFC 5161: only here), and the mailbox
  commands (SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB,
  NAMESPACE, STATUS, APPEND, IDLE, GETJMAPACCESS, GENURLAUTH, RESETKEY, URLFETCH,
  UNAUTHENTICATE).
* SELECTED: everything legal in AUTHENTICATED except ENABLE, plus the message commands
  (CHECK, CLOSE, UNSELECT, EXPUNGE, SEARCH, FETCH, STORE, COPY, MOVE, SORT, THREAD,
  REPLACE).
* LOGOUT: nothing; the connection is closing.

A command outside its states gets ``tag BAD`` and changes nothing.  Imports only the wire
command vocabulary.
"""

from __future__ import annotations

from enum import Enum

from dualmail.imap.wire import commands as c


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_N, _A, _S = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
_ANY = frozenset({_N, _A, _S})
_AUTH = frozenset({_A, _S})

LEGAL: dict[type[c.Command], frozenset[State]] = {
    c.Capability: _ANY,
    c.Noop: _ANY,
    c.Logout: _ANY,
    c.Id: _ANY,
    c.StartTLS: frozenset({_N}),
    c.Authenticate: frozenset({_N}),
    c.Login: frozenset({_N}),
    c.Enable: frozenset({_A}),
    c.Select: _AUTH,
    c.Examine: _AUTH,
    c.Create: _AUTH,
    c.Delete: _AUTH,
    c.Rename: _AUTH,
    c.Subscribe: _AUTH,
    c.Unsubscribe: _AUTH,
    c.List: _AUTH,
    c.Lsub: _AUTH,
    c.Namespace: _AUTH,
    c.Status: _AUTH,
    c.GetQuota: _AUTH,
    c.GetQuotaRoot: _AUTH,
    c.SetQuota: _AUTH,
    c.Append: _AUTH,
    c.Idle: _AUTH,
    c.GetJmapAccess: _AUTH,
    c.GenUrlAuth: _AUTH,  # RFC 4467 §9: command-auth
    c.ResetKey: _AUTH,
    c.UrlFetch: _AUTH,
    c.Unauthenticate: _AUTH,  # RFC 8437 §5: command-auth, command-select
    c.Check: frozenset({_S}),
    c.Close: frozenset({_S}),
    c.Unselect: frozenset({_S}),
    c.Expunge: frozenset({_S}),
    c.Search: frozenset({_S}),
    c.CancelUpdate: frozenset({_S}),
    c.Compress: frozenset({_A, _S}),
    c.Fetch: frozenset({_S}),
    c.Store: frozenset({_S}),
    c.Copy: frozenset({_S}),
    c.Move: frozenset({_S}),
    c.Sort: frozenset({_S}),
    c.Thread: frozenset({_S}),
    c.GetMetadata: _AUTH,  # RFC 5464 §4.2, §4.3
    c.SetMetadata: _AUTH,
    c.Notify: _AUTH,  # RFC 5465 §8: command-auth
    c.Replace: frozenset({_S}),  # RFC 8508 §3.5: selected state only
}


def legal(command: c.Command, state: State) -> bool:
    """True if ``command`` may run in ``state``; unknown command types never may."""
    return state in LEGAL.get(type(command), frozenset())


def refusal(command: c.Command, state: State) -> str:
    """The text of the BAD answer for a command outside its states."""
    if state is State.NOT_AUTHENTICATED:
        return "Log in first"
    if state is State.AUTHENTICATED and _S in LEGAL.get(type(command), frozenset()):
        return "No mailbox selected"
    return "Command not valid in this state"
