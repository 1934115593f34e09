"""IMAP AUTHENTICATE end to end: SCRAM-SHA-256 (RFC 7677, RFC 5802), SCRAM-SHA-256-PLUS with
tls-server-end-point (RFC 5929 §4), OAUTHBEARER (RFC 7628) and app tokens with scopes,
revocation at the next command, LOGINDISABLED off loopback (RFC 9051 §6.2.3, RFC 2595 §3.2).

The SCRAM client side is written here from RFC 5802 §3 (no library speaks it for imaplib)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import imaplib
import secrets
import ssl

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from dualmail.imap.session import Session
from dualmail.store.scram import ScramError, ScramServer, scram_keys, tls_server_end_point
from imap_e2e import PASSWORD, USER, running
from test_imap_e2e_clients import _tls_files

pytestmark = pytest.mark.e2e


class ScramClient:
    """The client side of RFC 5802 as an imaplib ``authobject``."""

    def __init__(self, user: str, password: str, *, cbind: bytes | None = None,
                 cbflag: str | None = None) -> None:
        self.user, self.password, self.cbind = user, password, cbind
        self.gs2 = (cbflag or ("p=tls-server-end-point" if cbind is not None else "n")) + ",,"
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.step = 0
        self.server_signature = b""
        self.verified = False

    def __call__(self, challenge: bytes) -> bytes:
        self.step += 1
        if self.step == 1:
            self.first_bare = f"n={self.user},r={self.nonce}"
            return (self.gs2 + self.first_bare).encode()
        if self.step == 2:
            server_first = challenge.decode()
            attrs = dict(a.split("=", 1) for a in server_first.split(","))
            assert attrs["r"].startswith(self.nonce)
            salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(attrs["s"]),
                                         int(attrs["i"]))
            client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            stored = hashlib.sha256(client_key).digest()
            cb = base64.b64encode(self.gs2.encode() + (self.cbind or b"")).decode()
            without_proof = f"c={cb},r={attrs['r']}"
            auth = f"{self.first_bare},{server_first},{without_proof}".encode()
            sig = hmac.new(stored, auth, hashlib.sha256).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, sig))
            server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
            self.server_signature = hmac.new(server_key, auth, hashlib.sha256).digest()
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        # server-final: the client checks the server knew the key too (mutual auth)
        assert challenge == b"v=" + base64.b64encode(self.server_signature)
        self.verified = True
        return b""


def oauthbearer(user: str, token: str) -> bytes:
    return f"n,a={user},\x01host=127.0.0.1\x01port=143\x01auth=Bearer {token}\x01\x01".encode()


def test_rfc7677_vector() -> None:
    """RFC 7677 §3: the example exchange, server side, byte for byte."""
    keys = scram_keys("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    s = ScramServer()
    assert s.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == "user"
    s._nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    assert s.challenge(keys) == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
                                "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    assert s.final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") == \
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_downgrade_and_binding_refused() -> None:
    """RFC 5802 §6: "y" while the server offers -PLUS is a downgrade; "p=" without -PLUS or
    with another binding type is refused."""
    with pytest.raises(ScramError, match="server-does-support-channel-binding"):
        ScramServer(channel_binding=b"x", advertised_plus=True).first(b"y,,n=u,r=abc")
    with pytest.raises(ScramError, match="unsupported-channel-binding-type"):
        ScramServer().first(b"p=tls-server-end-point,,n=u,r=abc")
    with pytest.raises(ScramError, match="unsupported-channel-binding-type"):
        ScramServer(channel_binding=b"x", plus=True).first(b"p=tls-unique,,n=u,r=abc")
    with pytest.raises(ScramError, match="invalid-encoding"):
        ScramServer().first(b"n,,garbage")


def test_capabilities_off_loopback_without_tls(store) -> None:
    """Off loopback in the clear: LOGINDISABLED, no PLAIN/OAUTHBEARER; SCRAM stays."""
    s = Session(store, loopback=False, secure=False)
    caps = s.capabilities()
    assert "LOGINDISABLED" in caps and "AUTH=SCRAM-SHA-256" in caps
    assert "AUTH=PLAIN" not in caps and "AUTH=OAUTHBEARER" not in caps
    assert "AUTH=SCRAM-SHA-256-PLUS" not in caps
    s.feed(b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb AUTHENTICATE OAUTHBEARER\r\n"
           b"c AUTHENTICATE SCRAM-SHA-256-PLUS\r\n")
    out = b"".join(x for _ in range(3) for x in s.step() if isinstance(x, bytes))
    assert b"a NO [PRIVACYREQUIRED]" in out and b"b NO [PRIVACYREQUIRED]" in out
    assert b"c NO [CANNOT]" in out
    assert s.account is None


def _authenticate(port: int, mechanism: str, authobject) -> str:
    """AUTHENTICATE with ``authobject`` on a new connection; SELECT after an OK; the
    tagged status (or the error text)."""
    M = imaplib.IMAP4("127.0.0.1", port)
    try:
        assert f"AUTH={mechanism}" in M.capabilities
        try:
            typ, _ = M.authenticate(mechanism, authobject)
        except imaplib.IMAP4.error as e:
            return str(e)
        M.select("INBOX")
        return typ
    finally:
        try:
            M.logout()
        except Exception:
            pass


def _scram_login(port: int, user: str, password: str) -> tuple[str, bool]:
    client = ScramClient(user, password)
    return _authenticate(port, "SCRAM-SHA-256", client), client.verified


@pytest_twisted.ensureDeferred
async def test_scram_sha256_login(tmp_path) -> None:
    async with running(tmp_path) as srv:
        typ, verified = await deferToThread(_scram_login, srv.imap_port, USER, PASSWORD)
        assert typ == "OK" and verified
        text, _ = await deferToThread(_scram_login, srv.imap_port, USER, "wrong")
        assert "AUTHENTICATIONFAILED" in text
        text, _ = await deferToThread(_scram_login, srv.imap_port, "nobody@example.org", PASSWORD)
        assert "AUTHENTICATIONFAILED" in text


@pytest_twisted.ensureDeferred
async def test_scram_needs_keys_from_a_password_change(tmp_path) -> None:
    """An account whose password predates the SCRAM keys (only an argon2 hash) cannot use
    SCRAM; PLAIN still works, and the next password change makes SCRAM work."""
    from dualmail.store import codec, keys as K

    async with running(tmp_path) as srv:
        with srv.store.kv.write(srv.account) as w:
            rec = codec.loads(w.get("account", K.acct(srv.account)))
            del rec["scram"]
            w.put("account", K.acct(srv.account), codec.dumps(rec))
        text, _ = await deferToThread(_scram_login, srv.imap_port, USER, PASSWORD)
        assert "AUTHENTICATIONFAILED" in text
        srv.store.set_password(USER, "new password")
        typ, verified = await deferToThread(_scram_login, srv.imap_port, USER, "new password")
        assert typ == "OK" and verified


def _scram_plus(port: int, ctx: ssl.SSLContext) -> list[str]:
    out = []
    M = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    try:
        assert "AUTH=SCRAM-SHA-256-PLUS" in M.capabilities
        binding = tls_server_end_point(M.sock.getpeercert(binary_form=True))
        try:  # a wrong binding (a man in the middle would present another certificate)
            M.authenticate("SCRAM-SHA-256-PLUS", ScramClient(USER, PASSWORD, cbind=b"\0" * 32))
        except imaplib.IMAP4.error as e:
            out.append(str(e))
        try:  # "y": the client believes the server cannot bind, but it advertised -PLUS
            M.authenticate("SCRAM-SHA-256", ScramClient(USER, PASSWORD, cbflag="y"))
        except imaplib.IMAP4.error as e:
            out.append(str(e))
        client = ScramClient(USER, PASSWORD, cbind=binding)
        typ, _ = M.authenticate("SCRAM-SHA-256-PLUS", client)
        out.append(typ + str(client.verified))
    finally:
        M.logout()
    return out


@pytest_twisted.ensureDeferred
async def test_scram_sha256_plus_channel_binding(tmp_path) -> None:
    cert, key, ctx = _tls_files(tmp_path)
    async with running(tmp_path, "--tls-cert", cert, "--tls-key", key, imaps=True) as srv:
        wrong, downgrade, ok = await deferToThread(_scram_plus, srv.imaps_port, ctx)
        assert "AUTHENTICATIONFAILED" in wrong
        assert "server-does-support-channel-binding" in downgrade
        assert ok == "OKTrue"


def _oauth(port: int, user: str, token: str) -> str:
    answers = iter([oauthbearer(user, token), b"\x01"])
    return _authenticate(port, "OAUTHBEARER", lambda _challenge: next(answers))


@pytest_twisted.ensureDeferred
async def test_oauthbearer_takes_imap_scoped_tokens_only(tmp_path) -> None:
    async with running(tmp_path) as srv:
        imap_token = srv.store.create_token(USER, scope="imap")
        jmap_token = srv.store.create_token(USER, scope="jmap")
        assert await deferToThread(_oauth, srv.imap_port, USER, imap_token) == "OK"
        assert "AUTHENTICATIONFAILED" in await deferToThread(_oauth, srv.imap_port, USER, jmap_token)
        other = await deferToThread(_oauth, srv.imap_port, "bob@example.org", imap_token)
        assert "AUTHENTICATIONFAILED" in other
        expired = srv.store.create_token(USER, scope="imap", ttl=-10)
        assert "AUTHENTICATIONFAILED" in await deferToThread(_oauth, srv.imap_port, USER, expired)


def _revoked_at_next_command(port: int, token: str, revoke) -> list:
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login(USER, token)  # an app token is an app password for LOGIN/PLAIN
    typ, _ = M.select("INBOX")
    assert typ == "OK"
    revoke()
    try:
        M.noop()
    except imaplib.IMAP4.abort as e:
        return ["abort", str(e)]
    return ["no abort", M.untagged_responses]


@pytest_twisted.ensureDeferred
async def test_revocation_ends_open_sessions(tmp_path) -> None:
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    async with running(tmp_path) as srv:
        token = srv.store.create_token(USER, scope="imap", note="phone")
        [rec] = srv.store.list_tokens(USER)

        def revoke() -> None:
            assert blockingCallFromThread(reactor, srv.store.revoke_tokens, USER, rec["id"]) == 1

        out = await deferToThread(_revoked_at_next_command, srv.imap_port, token, revoke)
        assert out[0] == "abort" and "revoked" in out[1], out
        # and the token no longer logs in; the password still does
        with pytest.raises(imaplib.IMAP4.error):
            await deferToThread(lambda: imaplib.IMAP4("127.0.0.1", srv.imap_port).login(USER, token))
