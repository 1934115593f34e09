"""SCRAM-SHA-256 (RFC 5802, RFC 7677): the stored keys and the server side of one exchange.

Stored per account when a password is set: salt, iteration count, StoredKey and ServerKey
(RFC 5802 §3), never the password; an account whose password was set before this existed
has none, and SCRAM fails for it (PLAIN/LOGIN still work) until the next password change.

``ScramServer`` is sans-I/O: ``first(client_first)`` returns server-first, ``final(
client_final)`` returns server-final (``v=...``) or raises ``ScramError``.  Channel binding
``tls-server-end-point`` (RFC 5929 §4) is checked when the caller passes the binding data
(the hash of the server certificate); with none, a client asking for binding ("p=") fails
and a client saying "y" (it could bind but thinks we cannot) is refused when we advertise
-PLUS (RFC 5802 §6, downgrade protection).  hashlib/hmac only: nothing here is bespoke
crypto, only the message format.  Imports nothing from twisted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

ITERATIONS = 4096  # RFC 7677 §4: at least 4096
_HASH = "sha256"


class ScramError(Exception):
    """The exchange failed; ``args[0]`` is the RFC 5802 server-error value."""


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def scram_keys(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> dict[str, Any]:
    """The record stored for an account: {"salt", "i", "stored", "server"} (base64 text).
    The password is used as given (SASLprep of ASCII and most text is the identity)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac(_HASH, password.encode("utf-8"), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    stored = hashlib.sha256(client_key).digest()
    server = _hmac(salted, b"Server Key")
    b64 = base64.b64encode
    return {"salt": b64(salt).decode(), "i": iterations, "stored": b64(stored).decode(),
            "server": b64(server).decode()}


def _attrs(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError("invalid-encoding")
        out.append((part[0], part[2:]))
    return out


def _saslname(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ScramError("invalid-username-encoding")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    def __init__(self, *, channel_binding: bytes | None = None, plus: bool = False,
                 advertised_plus: bool = False) -> None:
        self.channel_binding = channel_binding  # tls-server-end-point data, when TLS is on
        self.plus = plus  # the client chose SCRAM-SHA-256-PLUS
        self.advertised_plus = advertised_plus
        self.user = ""
        self.authzid = ""
        self._gs2 = b""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._keys: dict[str, Any] | None = None

    def first(self, data: bytes) -> str:
        """Parse client-first; return ``user`` is then set: the caller fetches the keys and
        calls ``challenge(keys)``."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("invalid-encoding") from None
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise ScramError("invalid-encoding")
        cbflag, authz, bare = parts
        if cbflag.startswith("p="):
            if not self.plus or self.channel_binding is None or cbflag[2:] != "tls-server-end-point":
                raise ScramError("unsupported-channel-binding-type")
        elif cbflag == "y":
            if self.advertised_plus:  # RFC 5802 §6: the client thinks we cannot bind: a downgrade
                raise ScramError("server-does-support-channel-binding")
        elif cbflag != "n":
            raise ScramError("invalid-encoding")
        if self.plus and not cbflag.startswith("p="):
            raise ScramError("channel-bindings-dont-match")
        if authz and not authz.startswith("a="):
            raise ScramError("invalid-encoding")
        self.authzid = _saslname(authz[2:]) if authz else ""
        attrs = _attrs(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise ScramError("invalid-encoding")
        if attrs[0][1].startswith("m="):
            raise ScramError("extensions-not-supported")
        self.user = _saslname(attrs[0][1])
        self._gs2 = (cbflag + "," + authz + ",").encode()
        self._client_first_bare = bare
        self._nonce = attrs[1][1] + base64.b64encode(secrets.token_bytes(18)).decode()
        return self.user

    def challenge(self, keys: dict[str, Any] | None) -> str:
        """server-first; with no keys (unknown user, or no SCRAM keys stored yet) a fake but
        plausible challenge, so the exchange fails only at the end (no user oracle)."""
        self._keys = keys
        if keys is None:
            salt = base64.b64encode(hmac.new(b"dualmail", self.user.encode(), hashlib.sha256).digest()[:16]).decode()
            iterations = ITERATIONS
        else:
            salt, iterations = keys["salt"], keys["i"]
        self._server_first = f"r={self._nonce},s={salt},i={iterations}"
        return self._server_first

    def final(self, data: bytes) -> str:
        """Check client-final; return server-final (``v=`` ServerSignature)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("invalid-encoding") from None
        attrs = _attrs(text)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise ScramError("invalid-encoding")
        try:
            cbind = base64.b64decode(attrs[0][1], validate=True)
            proof = base64.b64decode(attrs[-1][1], validate=True)
        except ValueError:
            raise ScramError("invalid-encoding") from None
        expected_cb = self._gs2 + (self.channel_binding or b"") if self._gs2.startswith(b"p=") else self._gs2
        if not hmac.compare_digest(cbind, expected_cb):
            raise ScramError("channel-bindings-dont-match")
        if attrs[1][1] != self._nonce:
            raise ScramError("other-error")
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        keys = self._keys
        if keys is None or len(proof) != 32:
            raise ScramError("invalid-proof")
        stored = base64.b64decode(keys["stored"])
        signature = _hmac(stored, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), stored):
            raise ScramError("invalid-proof")
        server_sig = _hmac(base64.b64decode(keys["server"]), auth_message)
        return "v=" + base64.b64encode(server_sig).decode()


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 §4.1: the certificate's hash, SHA-256 for MD5/SHA-1 signatures, else the
    signature's own hash (SHA-256 for the usual RSA/ECDSA-SHA256 certificates)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(cert_der)
    algo = cert.signature_hash_algorithm
    if algo is None or isinstance(algo, (hashes.MD5, hashes.SHA1)):
        algo = hashes.SHA256()
    h = hashes.Hash(algo)
    h.update(cert_der)
    return h.finalize()
