"""UIDONLY (RFC 9586): what a session that ENABLEd it may no longer send.

Once enabled, message sequence numbers are gone from the session both ways (§3): commands
that take them (FETCH, STORE, SEARCH, COPY, MOVE, SORT, THREAD, REPLACE without UID), a
``sequence-set`` search key and QRESYNC's message sequence match data (§3.7) are refused
with ``BAD [UIDREQUIRED]``; responses carry UIDs only (``* uid UIDFETCH``, VANISHED instead
of EXPUNGE, no ``[UNSEEN n]``), which ``SelectedMailbox`` and the FETCH paths do.  Imports
no twisted.
"""

from __future__ import annotations

from dualmail.imap.wire import commands as c

#: commands whose non-UID form names messages by sequence number (RFC 9586 §3, §3.2)
_NUMBERED = (c.Fetch, c.Store, c.Search, c.Copy, c.Move, c.Sort, c.Thread, c.Replace)
#: the same, as the parser names them before a synchronising literal (REPLACE has one)
LITERAL_COMMANDS = frozenset({"REPLACE"})


def has_sequence_numbers(key: c.SearchKey) -> bool:
    """The search program uses the bare ``sequence-set`` key anywhere (RFC 9586 §3.5)."""
    if isinstance(key, c.Key):
        return key.name == "SEQSET"
    if isinstance(key, c.And):
        return any(has_sequence_numbers(k) for k in key.keys)
    if isinstance(key, c.Or):
        return has_sequence_numbers(key.left) or has_sequence_numbers(key.right)
    return has_sequence_numbers(key.key)


def refusal(cmd: c.Command) -> str | None:
    """Why ``cmd`` is not allowed in a UIDONLY session (answer BAD [UIDREQUIRED]), or None."""
    if isinstance(cmd, _NUMBERED) and not cmd.uid:
        name = type(cmd).__name__.upper()
        return f"{name} uses message sequence numbers; use UID {name} once UIDONLY is enabled"
    if isinstance(cmd, (c.Search, c.Sort, c.Thread)) and has_sequence_numbers(cmd.keys):
        return "Message sequence numbers in search criteria are not allowed once UIDONLY " \
               "is enabled; use UID <set>"
    if isinstance(cmd, (c.Select, c.Examine)) and cmd.qresync is not None \
            and cmd.qresync.seq_match is not None:
        return "QRESYNC message sequence match data is not allowed once UIDONLY is enabled"
    return None
