"""CAPABILITY, NOOP/CHECK, LOGOUT, ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342),
IDLE (RFC 2177) and GETJMAPACCESS (RFC 9698).  Imports no twisted.internet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapBad
from dualmail.imap.states import State
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

# What ENABLE can switch on (RFC 5161 §3.1): anything else is ignored silently.
ENABLEABLE = ("IMAP4REV2", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC")


def capability(s: Session, cmd: c.Capability) -> Gen:
    yield r.capability(s.capabilities())
    return r.Tagged(cmd.tag, "OK", "CAPABILITY completed")


def noop(s: Session, cmd: c.Noop | c.Check) -> Gen:
    return r.Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")
    yield  # pragma: no cover


def logout(s: Session, cmd: c.Logout) -> Gen:
    from dualmail.imap.session import Disconnect

    s.state = State.LOGOUT
    s.selected = None
    yield r.UntaggedStatus("BYE", "Logging out")
    yield r.Tagged(cmd.tag, "OK", "LOGOUT completed")
    yield Disconnect()
    return None


def id_(s: Session, cmd: c.Id) -> Gen:
    s.client_id = cmd.params
    yield r.id_response([("name", s.config.server_name), ("version", s.config.server_version)])
    return r.Tagged(cmd.tag, "OK", "ID completed")


def enable(s: Session, cmd: c.Enable) -> Gen:
    """RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).  ENABLED lists what this
    command switched on, in the order asked."""
    before = {"CONDSTORE": s.condstore, "QRESYNC": s.qresync}
    done: list[str] = []
    for cap in cmd.capabilities:
        name = cap.upper()
        if name == "IMAP4REV2" and not s.rev2:
            s.rev2 = True
            done.append("IMAP4rev2")
        elif name == "UTF8=ACCEPT" and not s.utf8:
            s.utf8 = True
            done.append("UTF8=ACCEPT")
        elif name == "UIDONLY" and not s.uidonly:
            s.uidonly = True  # RFC 9586 §3.1 (ENABLE runs unselected: SELECT takes it on)
            done.append("UIDONLY")
        elif name == "QRESYNC":
            s.enable_qresync()
        elif name == "CONDSTORE":
            s.enable_condstore()  # ENABLE runs unselected: no HIGHESTMODSEQ to report
    for name in ("CONDSTORE", "QRESYNC"):
        if not before[name] and any(cap.upper() == name for cap in cmd.capabilities):
            done.append(name)
    done.sort(key=lambda n: [cap.upper() for cap in cmd.capabilities].index(n.upper()))
    yield r.enabled(done)
    return r.Tagged(cmd.tag, "OK", "ENABLE completed")


def namespace(s: Session, cmd: c.Namespace) -> Gen:
    yield r.namespace([("", "/")], None, None, utf8=s.utf8)
    return r.Tagged(cmd.tag, "OK", "NAMESPACE completed")


def idle(s: Session, cmd: c.Idle) -> Gen:
    s.idle_tag = cmd.tag
    s.parser.expect_done()
    yield r.Continuation("idling")
    if s.selected is not None:
        yield from s.pending_updates()
    return None


def getjmapaccess(s: Session, cmd: c.GetJmapAccess) -> Gen:
    if not s.config.jmap_url:
        return r.Tagged(cmd.tag, "NO", "JMAP is not available", r.code("UNAVAILABLE"))
    yield r.Data((r.Atom("JMAPACCESS"), s.config.jmap_url))
    return r.Tagged(cmd.tag, "OK", "GETJMAPACCESS completed")


def compress(s: Session, cmd: c.Compress) -> Gen:
    """RFC 4978 §3: after the tagged OK every byte each way is raw DEFLATE (the protocol
    carries out ``StartCompress``).  Only after authentication (the command is not legal
    before), so it never precedes STARTTLS: compression then sits inside TLS (§3's order)."""
    from dualmail.imap.session import StartCompress

    if cmd.mechanism != "DEFLATE":
        raise ImapBad(f"Unknown compression mechanism {cmd.mechanism}")
    if s.compressed:  # as Dovecot: the earlier COMPRESS is the layer already compressing
        return r.Tagged(cmd.tag, "NO", "DEFLATE is already active", r.code("COMPRESSIONACTIVE"))
    s.compressed = True
    yield r.Tagged(cmd.tag, "OK", "DEFLATE active")
    yield StartCompress()
    return None
