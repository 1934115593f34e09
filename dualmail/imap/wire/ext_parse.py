"""Parsing of the RFC 5464 METADATA and RFC 5465 NOTIFY commands.

One job: the grammar of GETMETADATA, SETMETADATA (RFC 5464 §5) and NOTIFY (RFC 5465 §8)
over the parser's ``_Reader`` (passed in; its ``error()`` makes the syntax errors, which
the session answers with BAD).  What is syntax here and answered BAD:

* an entry name that is not ``/private/...`` or ``/shared/...``, holds ``*``, ``%``, a
  byte outside 0x20-0x7E, ``//`` or a trailing ``/`` (RFC 5464 §3.2: "Invalid entry
  names result in a BAD response"), or is longer than the configured limit;
* an unknown GETMETADATA option, a DEPTH other than 0, 1, infinity;
* NOTIFY: two SELECTED/SELECTED-DELAYED groups, a non-message event or a missing
  MessageNew/MessageExpunge pair with SELECTED (RFC 5465 §5, §6.1), fetch-atts outside
  SELECTED, an empty event list.

An event name that is well-formed but unsupported is not syntax: the handler answers NO
[BADEVENT] (§3.1).  Imports only the wire vocabulary.
"""

from __future__ import annotations

from typing import Any

from dualmail.imap.wire import commands as c

MESSAGE_EVENTS = ("MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange")
MAILBOX_EVENTS = ("MailboxName", "SubscriptionChange", "MailboxMetadataChange")
USER_EVENTS = ("ServerMetadataChange",)
_CANON = {e.upper(): e for e in MESSAGE_EVENTS + MAILBOX_EVENTS + USER_EVENTS}
_FILTERS = ("SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE",
            "MAILBOXES")
MAX_ENTRY_NAME = 1024


def entry_name(rd: Any, *, prefix_only: bool = False, limit: int = MAX_ENTRY_NAME) -> str:
    """An entry (astring), validated and lower-cased (RFC 5464 §3.2)."""
    raw = rd.astring()
    if len(raw) > limit:
        raise rd.error("Entry name too long")
    if any(b < 0x20 or b > 0x7E or b in (0x2A, 0x25) for b in raw):
        raise rd.error("Invalid entry name")
    name = raw.decode("ascii").lower()
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "" or parts[1] not in ("private", "shared") or \
            any(p == "" for p in parts[1:]):
        raise rd.error("Entry names are /private/... or /shared/..., without // or a trailing /")
    if len(parts) < 3 and not prefix_only:
        raise rd.error("An entry name needs a name below /private or /shared")
    return name


def getmetadata(rd: Any, tag: str) -> c.Command:
    rd.sp()
    maxsize: int | None = None
    depth: int | None = 0
    if rd.take(0x28):
        while True:
            opt = rd.keyword()
            rd.sp()
            if opt == "MAXSIZE":
                maxsize = rd.number()
            elif opt == "DEPTH":
                if rd.at_keyword(b"INFINITY"):
                    depth = None
                else:
                    start = rd.pos
                    depth = rd.number()
                    if depth > 1:
                        rd.pos = start
                        raise rd.error("DEPTH is 0, 1 or infinity")
            else:
                raise rd.error(f"Unknown GETMETADATA option {opt}")
            if rd.take(0x29):
                break
            rd.sp()
        rd.sp()
    mailbox = _metadata_mailbox(rd)
    rd.sp()
    if rd.take(0x28):
        names = [entry_name(rd, prefix_only=True)]
        while not rd.take(0x29):
            rd.sp()
            names.append(entry_name(rd, prefix_only=True))
    else:  # RFC 5464 §4.4.1's examples list several entries without parentheses
        names = [entry_name(rd, prefix_only=True)]
        while rd.take(0x20):
            names.append(entry_name(rd, prefix_only=True))
    return c.GetMetadata(tag, mailbox, tuple(names), maxsize, depth)


def _metadata_mailbox(rd: Any) -> str:
    raw = rd.astring()
    if raw == b"":
        return ""
    name = rd.text(raw, "Mailbox name")
    return "INBOX" if name.upper() == "INBOX" else name


def setmetadata(rd: Any, tag: str) -> c.Command:
    rd.sp()
    mailbox = _metadata_mailbox(rd)
    rd.sp()
    rd.expect(0x28)
    pairs: list[tuple[str, bytes | None]] = []
    while True:
        name = entry_name(rd)
        rd.sp()
        value = rd.literal(eight=True) if rd.peek() == 0x7E else rd.nstring()
        pairs.append((name, value))
        if rd.take(0x29):
            break
        rd.sp()
    return c.SetMetadata(tag, mailbox, tuple(pairs))


def notify(rd: Any, tag: str) -> c.Command:
    rd.sp()
    word = rd.keyword()
    if word == "NONE":
        return c.Notify(tag, None)
    if word != "SET":
        raise rd.error("Expected SET or NONE")
    rd.sp()
    status = rd.at_keyword(b"STATUS")
    if status:
        rd.sp()
    groups = [_event_group(rd)]
    while rd.take(0x20):
        groups.append(_event_group(rd))
    if sum(1 for g in groups if g.filter.startswith("SELECTED")) > 1:
        raise rd.error("Only one SELECTED or SELECTED-DELAYED group is allowed")
    return c.Notify(tag, tuple(groups), status)


def _event_group(rd: Any) -> c.NotifyGroup:
    rd.expect(0x28)
    filt = rd.keyword()
    if filt not in _FILTERS:
        raise rd.error(f"Unknown mailbox filter {filt}")
    mailboxes: tuple[str, ...] = ()
    if filt in ("SUBTREE", "MAILBOXES"):
        rd.sp()
        mailboxes = rd.paren_list(rd.mailbox) if rd.peek() == 0x28 else (rd.mailbox(),)
    rd.sp()
    events: list[str] = []
    atts: tuple[c.FetchAtt, ...] = ()
    selected = filt.startswith("SELECTED")
    if rd.peek() != 0x28 and not rd.at_keyword(b"NONE"):
        # one bare event, as in RFC 5465 §3.1's example "(subtree Lists MessageNew)"
        name = rd.atom()
        events.append(_CANON.get(name.upper(), name))
    elif rd.take(0x28):
        while True:
            name = rd.atom()
            event = _CANON.get(name.upper(), name)
            if event == "MessageNew" and rd.peek() == 0x20 and rd.line[rd.pos + 1:rd.pos + 2] == b"(":
                if not selected:
                    raise rd.error("fetch-att is only allowed with SELECTED or SELECTED-DELAYED")
                rd.sp()
                rd.expect(0x28)
                got = [rd.fetch_att()]
                while not rd.take(0x29):
                    rd.sp()
                    got.append(rd.fetch_att())
                atts = tuple(got)
            events.append(event)
            if rd.take(0x29):
                break
            rd.sp()
    rd.expect(0x29)
    if selected:
        if any(e in _CANON.values() and e not in MESSAGE_EVENTS for e in events):
            raise rd.error("Only message events are allowed with SELECTED")
        _pairing(rd, events)
    return c.NotifyGroup(filt, mailboxes, tuple(events), atts)


def _pairing(rd: Any, events: list[str]) -> None:
    """RFC 5465 §5: MessageNew and MessageExpunge together; FlagChange and
    AnnotationChange need both.  Enforced for the selected mailbox, where they keep the
    message numbers right (see docs/protocols.md for the other filters)."""
    have = set(events)
    if ("MessageNew" in have) != ("MessageExpunge" in have):
        raise rd.error("MessageNew and MessageExpunge must be given together")
    if have & {"FlagChange", "AnnotationChange"} and "MessageNew" not in have:
        raise rd.error("FlagChange needs MessageNew and MessageExpunge")
