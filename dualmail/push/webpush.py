"""Web Push messages, sans I/O: what the server POSTs to a push subscription.

- RFC 8030 §5: every push has ``TTL``; StateChanges also ``Urgency`` and a
  ``Topic`` (one per subscription), so a push service replaces an undelivered
  StateChange by the newer one (safe: each carries every state, see
  ``store/pushsubs.py``).
- RFC 8291: with the subscription's ``keys`` the body is encrypted,
  ``Content-Encoding: aes128gcm`` (one record, an ephemeral ECDH key per
  message), by ``http_ece``.
- RFC 8292 / RFC 9749 §4: every POST carries ``Authorization: vapid t=JWT,
  k=KEY``, signed with the server's key (``py_vapid``), which the Session
  advertises as ``applicationServerKey`` (RFC 9749 §3).

Imports no twisted and no store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from ..model import ids

VAPID_CAPABILITY = "urn:ietf:params:jmap:webpush-vapid"
TTL_SECONDS = 86400  # RFC 8030 §5.2: a day; an older StateChange is worth nothing
URGENCY = "normal"  # RFC 8030 §5.3
TOPIC = "jmapStateChange"  # RFC 8030 §5.4: <= 32 characters of the base64url alphabet
JWT_LIFETIME = 12 * 3600  # RFC 8292 §2: "exp" no more than 24 hours ahead
RECORD_SIZE = 4096  # RFC 8291 §4: one record of at most 4096 octets
MAX_URL = 2048
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
PUSH_ID = "P"  # wire ids of PushSubscription objects: "P" + number, in the style of ``model.ids``


def subscription_id(p: int) -> str:
    return ids.format_id(PUSH_ID, p)


def b64url_decode(text: str) -> bytes:
    """RFC 4648 §5 (padding optional); ValueError on anything else."""
    if not isinstance(text, str) or not text or any(c in text for c in "+/ \n\r\t"):
        raise ValueError("not URL-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not URL-safe base64") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object, allow_http_loopback: bool = False) -> str | None:
    """Why ``url`` cannot be a push URL (RFC 8620 §7.2: "MUST begin with
    https://"), or None. ``allow_http_loopback`` (a test/development server
    option) also admits ``http://`` to a loopback address."""
    if not isinstance(url, str):
        return "url must be a String"
    if len(url) > MAX_URL:
        return f"url is longer than {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "url is not a valid URL"
    del port
    host = parts.hostname or ""
    if not host or parts.username is not None or parts.password is not None or any(
            ord(c) < 0x21 or ord(c) > 0x7E for c in url):
        return "url must be an absolute https URL with a host and no user information"
    if parts.scheme == "https" and url.startswith("https://"):
        return None
    if parts.scheme == "http" and url.startswith("http://") and allow_http_loopback and is_loopback(host):
        return None
    return "url must begin with https:// (RFC 8620 §7.2)"


@dataclass(frozen=True, slots=True)
class Keys:
    """A subscription's RFC 8291 keys: the user agent's P-256 public key
    (uncompressed point) and its 16-octet authentication secret."""

    p256dh: bytes
    auth: bytes


def parse_keys(value: object) -> Keys | str:
    """``keys`` of a PushSubscription checked (RFC 8620 §7.2, RFC 8291 §3),
    or why not."""
    if not isinstance(value, dict) or set(value) != {"p256dh", "auth"}:
        return "keys must be an object with exactly p256dh and auth"
    try:
        point = b64url_decode(value["p256dh"])
        auth = b64url_decode(value["auth"])
    except ValueError:
        return "keys.p256dh and keys.auth must be URL-safe base64 (RFC 4648 §5)"
    if len(point) != 65 or point[0] != 4:
        return "keys.p256dh must be an uncompressed P-256 point (65 octets, RFC 8291 §3.1)"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return "keys.p256dh is not a point on P-256"
    if len(auth) != 16:
        return "keys.auth must be 16 octets (RFC 8291 §3.2)"
    return Keys(point, auth)


def encrypt(payload: bytes, keys: Keys, *, ephemeral: ec.EllipticCurvePrivateKey | None = None,
            salt: bytes | None = None) -> bytes:
    """RFC 8291 §3.4 / RFC 8188 aes128gcm: salt, rs, the ephemeral public key
    as keyid, one record. A fresh key and salt per message (the arguments are
    for RFC 8291 §5's test vector)."""
    if len(payload) > RECORD_SIZE - 17:  # RFC 8291 §4: one record (16-octet tag, 1 delimiter)
        raise ValueError("push message too large for one record")
    ephemeral = ephemeral or ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(payload, salt=salt or os.urandom(16), private_key=ephemeral, dh=keys.p256dh,
                                   auth_secret=keys.auth, version="aes128gcm", rs=RECORD_SIZE)
    return body


class VapidKey:
    """The server's VAPID key pair (P-256), kept as a PEM file (mode 0600) in
    the data directory; made on first use."""

    def __init__(self, vapid: Vapid02, contact: str):
        self._vapid = vapid
        self.contact = contact
        raw = vapid.public_key.public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
        self.application_server_key = b64url(raw)  # RFC 9749 §3
        self.fingerprint = hashlib.sha256(raw).hexdigest()[:16]
        self._jwts: dict[str, tuple[int, str]] = {}

    @staticmethod
    def new_pem() -> bytes:
        vapid = Vapid02()
        vapid.generate_keys()
        pem: bytes = vapid.private_pem()
        return pem

    @classmethod
    def from_pem(cls, pem: bytes, contact: str) -> VapidKey:
        return cls(Vapid02.from_pem(pem), contact)

    @classmethod
    def load_or_create(cls, path: str, contact: str) -> VapidKey:
        if not os.path.exists(path):
            pem = cls.new_pem()
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(path + ".tmp", path)  # another process made one first: theirs wins
            except FileExistsError:
                pass
            os.unlink(path + ".tmp")
        with open(path, "rb") as f:
            return cls(Vapid02.from_pem(f.read()), contact)

    def authorization(self, url: str, now: float) -> str:
        """``vapid t=..., k=...`` (RFC 8292 §3) for the push service of
        ``url``; one JWT per origin, re-signed when less than an hour is left."""
        parts = urlsplit(url)
        audience = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        cached = self._jwts.get(audience)
        if cached is not None and cached[0] - now > 3600:
            return cached[1]
        exp = int(now) + JWT_LIFETIME
        header = self._vapid.sign({"aud": audience, "exp": exp, "sub": self.contact})["Authorization"]
        if len(self._jwts) > 1000:
            self._jwts.clear()
        self._jwts[audience] = (exp, header)
        return str(header)


def verification_body(subscription_id: str, code: str) -> dict[str, Any]:
    """RFC 8620 §7.2.2 PushVerification."""
    return {"@type": "PushVerification", "pushSubscriptionId": subscription_id, "verificationCode": code}


def state_change_body(states: Mapping[str, Mapping[str, str]], types: list[str] | None) -> dict[str, Any] | None:
    """The StateChange (RFC 8620 §7.1) for a subscription's ``types`` filter
    (None: all types); None when nothing is left to say."""
    changed = {}
    for account, per_type in states.items():
        kept = {t: s for t, s in per_type.items() if types is None or t in types}
        if kept:
            changed[account] = dict(sorted(kept.items()))
    if not changed:
        return None
    return {"@type": "StateChange", "changed": changed}


def push_request(url: str, body: Mapping[str, Any], keys: Keys | None, vapid: VapidKey | None, now: float,
                 state_change: bool) -> tuple[dict[str, str], bytes]:
    """The headers and body of one POST to ``url`` (RFC 8620 §7.2, RFC 8030 §5)."""
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # application/json also when encrypted: Content-Encoding names the coding over it
    headers = {"TTL": str(TTL_SECONDS), "Urgency": URGENCY, "Content-Type": "application/json"}
    if state_change:
        headers["Topic"] = TOPIC
    if keys is not None:
        data = encrypt(payload, keys)
        headers["Content-Encoding"] = "aes128gcm"
    else:
        data = payload
    if vapid is not None:
        headers["Authorization"] = vapid.authorization(url, now)
    return headers, data
