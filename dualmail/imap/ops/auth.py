"""STARTTLS (RFC 9051 §6.2.1), LOGIN, AUTHENTICATE PLAIN (RFC 4616) with SASL-IR (RFC 4959),
UNAUTHENTICATE (RFC 8437).

Passwords are checked by the protocol off the reactor thread (``CheckPassword`` effect);
over cleartext off loopback both are refused with [PRIVACYREQUIRED] (LOGINDISABLED,
RFC 2595 §3.2) unless configured otherwise.  Imports no twisted.internet.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def starttls(s: Session, cmd: c.StartTLS) -> Gen:
    from dualmail.imap.session import StartTLS

    if s.secure:
        return r.Tagged(cmd.tag, "BAD", "TLS is already active")
    if not s.config.tls_available:
        return r.Tagged(cmd.tag, "NO", "TLS is not configured", r.code("UNAVAILABLE"))
    # Plaintext command injection (RFC 9051 §11.1): nothing received before TLS survives.
    s.parser = s._new_parser()
    yield r.Tagged(cmd.tag, "OK", "Begin TLS negotiation now")
    yield StartTLS()
    return None


def login(s: Session, cmd: c.Login) -> Gen:
    from dualmail.imap.session import CheckPassword

    if not s.login_allowed:
        return r.Tagged(cmd.tag, "NO", "Use STARTTLS first", r.code("PRIVACYREQUIRED"))
    yield CheckPassword(cmd.tag, cmd.userid, cmd.password, "LOGIN")
    return None


def authenticate(s: Session, cmd: c.Authenticate) -> Gen:
    if cmd.mechanism != "PLAIN":
        return r.Tagged(cmd.tag, "NO", "Unsupported authentication mechanism", r.code("CANNOT"))
    if not s.login_allowed:
        return r.Tagged(cmd.tag, "NO", "Use STARTTLS first", r.code("PRIVACYREQUIRED"))
    if cmd.initial_response is None:
        s.sasl_tag = cmd.tag
        s.parser.expect_line()
        yield r.Continuation("")
        return None
    return (yield from _plain(s, cmd.tag, cmd.initial_response))


def sasl_response(s: Session, line: bytes) -> Gen:
    """The client's line after our "+" challenge (RFC 9051 §6.2.2)."""
    tag, s.sasl_tag = s.sasl_tag, None
    if tag is None:
        return r.Tagged("*", "BAD", "Unexpected line")
    if line.strip() == b"*":
        return r.Tagged(tag, "BAD", "Authentication cancelled")
    try:
        data = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        return r.Tagged(tag, "BAD", "Invalid base64")
    return (yield from _plain(s, tag, data))


def _plain(s: Session, tag: str, data: bytes) -> Gen:
    from dualmail.imap.session import CheckPassword

    parts = data.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        return r.Tagged(tag, "BAD", "Malformed PLAIN response")
    authz, authc, password = (p.decode("utf-8", "surrogateescape") for p in parts)
    if authz and authz.lower() != authc.lower():
        return r.Tagged(tag, "NO", "Cannot act as another user", r.code("AUTHORIZATIONFAILED"))
    yield CheckPassword(tag, authc, password, "PLAIN")
    return None


def unauthenticate(s: Session, cmd: c.Unauthenticate) -> Gen:
    """RFC 8437 §3: never NO; the state is reset before the OK is sent, so a pipelined
    AUTHENTICATE or LOGIN after it runs in the not-authenticated state."""
    s.log.info("IMAP {peer}: {user} unauthenticated", peer=s.peer, user=s.user)
    s.unauthenticate()
    return r.Tagged(cmd.tag, "OK", "UNAUTHENTICATE completed")
    yield  # pragma: no cover
