"""STARTTLS (RFC 9051 §6.2.1), LOGIN, AUTHENTICATE (RFC 9051 §6.2.2) with SASL-IR
(RFC 4959): PLAIN (RFC 4616), SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802;
channel binding tls-server-end-point, RFC 5929), OAUTHBEARER (RFC 7628) with dualmail's
own app tokens of scope "imap";
UNAUTHENTICATE (RFC 8437).

Passwords are checked by the protocol off the reactor thread (``CheckPassword`` effect);
SCRAM proofs and tokens are checked here (HMACs and one read) and handed over already
verified, so every outcome goes through the same logging and failure backoff.  Over
cleartext off loopback LOGIN, PLAIN and OAUTHBEARER (which carry the secret itself) are
refused with [PRIVACYREQUIRED] (LOGINDISABLED, RFC 2595 §3.2) unless configured otherwise;
SCRAM never reveals the password and stays offered.  Imports no twisted.internet.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Callable, Generator

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


Step = Callable[["Session", str, bytes], Gen]


def mechanisms(s: Session) -> list[str]:
    """The SASL mechanisms offered now (CAPABILITY AUTH=...)."""
    out = ["PLAIN"] if s.login_allowed else []
    out.append("SCRAM-SHA-256")
    if s.secure and s.config.tls_channel_binding:
        out.append("SCRAM-SHA-256-PLUS")
    if s.login_allowed:
        out.append("OAUTHBEARER")
    return out


def authenticate(s: Session, cmd: c.Authenticate) -> Gen:
    mech = cmd.mechanism.upper()
    first: Step
    if mech == "PLAIN":
        first = _plain
    elif mech in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"):
        first = _scram_first
    elif mech == "OAUTHBEARER":
        first = _oauthbearer
    else:
        return r.Tagged(cmd.tag, "NO", "Unsupported authentication mechanism", r.code("CANNOT"))
    if mech not in mechanisms(s):
        if mech in ("PLAIN", "OAUTHBEARER"):
            return r.Tagged(cmd.tag, "NO", "Use STARTTLS first", r.code("PRIVACYREQUIRED"))
        return r.Tagged(cmd.tag, "NO", "Channel binding needs TLS", r.code("CANNOT"))
    s.sasl_mechanism = mech
    if cmd.initial_response is None:
        return (yield from _challenge(s, cmd.tag, "", first))
    return (yield from first(s, cmd.tag, cmd.initial_response))


def _challenge(s: Session, tag: str, text: str, step: Step) -> Gen:
    """Send "+ <base64 text>" and read the client's next line into ``step``."""
    s.sasl_tag = tag
    s.sasl_step = step
    s.parser.expect_line()
    yield r.Continuation(base64.b64encode(text.encode()).decode() if text else "")
    return None


def sasl_response(s: Session, line: bytes) -> Gen:
    """The client's line after our "+" challenge (RFC 9051 §6.2.2)."""
    tag, s.sasl_tag = s.sasl_tag, None
    step, s.sasl_step = s.sasl_step, None
    if tag is None or step is None:
        return r.Tagged("*", "BAD", "Unexpected line")
    if line.strip() == b"*":
        s.sasl_scram = None
        return r.Tagged(tag, "BAD", "Authentication cancelled")
    try:
        data = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        s.sasl_scram = None
        return r.Tagged(tag, "BAD", "Invalid base64")
    return (yield from step(s, tag, data))


def _scram_first(s: Session, tag: str, data: bytes) -> Gen:
    from dualmail.store.scram import ScramError, ScramServer

    plus = s.sasl_mechanism == "SCRAM-SHA-256-PLUS"
    binding = s.config.tls_channel_binding if s.secure else None
    server = ScramServer(channel_binding=binding, plus=plus,
                         advertised_plus="SCRAM-SHA-256-PLUS" in mechanisms(s))
    try:
        user = server.first(data)
    except ScramError as e:
        return r.Tagged(tag, "BAD", f"SCRAM: {e.args[0]}")
    if server.authzid and server.authzid.lower() != user.lower():
        return r.Tagged(tag, "NO", "Cannot act as another user", r.code("AUTHORIZATIONFAILED"))
    s.sasl_scram = server
    return (yield from _challenge(s, tag, server.challenge(s.store.scram_keys(user)), _scram_final))


def _scram_final(s: Session, tag: str, data: bytes) -> Gen:
    from dualmail.imap.session import CheckPassword
    from dualmail.store.scram import ScramError

    server, s.sasl_scram = s.sasl_scram, None
    assert server is not None
    try:
        server_final = server.final(data)
    except ScramError:
        yield CheckPassword(tag, server.user, "", s.sasl_mechanism or "SCRAM-SHA-256",
                            preverified=True, account=None)
        return None
    account = s.store.account_id(server.user)

    def done(s2: Session, tag2: str, data2: bytes) -> Gen:
        # RFC 9051 §6.2.2: the server-final message went in a continuation; the client
        # answers it with an empty line
        if data2:
            return r.Tagged(tag2, "BAD", "Expected an empty response")
        yield CheckPassword(tag2, server.user, "", s2.sasl_mechanism or "SCRAM-SHA-256",
                            preverified=True, account=account)
        return None

    return (yield from _challenge(s, tag, server_final, done))


def _oauthbearer(s: Session, tag: str, data: bytes) -> Gen:
    """RFC 7628 §3.1: ``gs2-header kvsep *(kvpair) kvsep``; the token is dualmail's own app
    token of scope "imap" (``dualmail token create --scope imap``)."""
    from dualmail.imap.session import CheckPassword
    from dualmail.store.store import SCOPE_IMAP

    try:
        text = data.decode("utf-8")
        gs2, _, rest = text.partition("\x01")
        cbflag, authz = gs2.split(",")[:2]
    except (UnicodeDecodeError, ValueError):
        return r.Tagged(tag, "BAD", "Malformed OAUTHBEARER response")
    if cbflag not in ("n", "y") or (authz and not authz.startswith("a=")):
        return r.Tagged(tag, "BAD", "Malformed OAUTHBEARER response")
    fields = dict(kv.partition("=")[::2] for kv in rest.split("\x01") if kv)
    auth = fields.get("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return r.Tagged(tag, "BAD", "Malformed OAUTHBEARER response")
    token = token.strip()
    account = s.store.verify_token(token, kind="app", scopes=(SCOPE_IMAP,))
    record = s.store.account_record(account) if account is not None else None
    address = str(record["address"]) if record else ""
    claimed = authz[2:].replace("=2C", ",").replace("=3D", "=") if authz else ""
    if record is None or (claimed and claimed.lower() != address.lower()):
        # RFC 7628 §3.2.2: the error JSON in a challenge; the client answers %x01, then NO
        s.sasl_failed_user = claimed
        return (yield from _challenge(s, tag, '{"status":"invalid_token","scope":"imap"}', _oauth_failed))
    yield CheckPassword(tag, address, token, "OAUTHBEARER", preverified=True, account=account)
    return None


def _oauth_failed(s: Session, tag: str, data: bytes) -> Gen:
    from dualmail.imap.session import CheckPassword

    yield CheckPassword(tag, s.sasl_failed_user or "", "", "OAUTHBEARER", preverified=True, account=None)
    return None


def _plain(s: Session, tag: str, data: bytes) -> Gen:  # RFC 4616 §2
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
