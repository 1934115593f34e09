"""A short-lived, in-memory cache of credentials argon2 has verified.

HTTP Basic sends the password with every JMAP request and IMAP clients log in again and
again; argon2 costs ~30 ms of CPU each time (by design).  After one successful check the
same address and password are accepted for ``ttl`` seconds without argon2:

* entries are keyed by HMAC-SHA256 of address and password under a random per-process key:
  the password is never kept, and the key never leaves memory;
* an entry remembers the stored hash read *before* the check, and a hit needs the account
  record to hold that very hash still.  A changed password (``dualmail user passwd``, in
  this process or another: the record is read from the store, which sees every process's
  commits) or a deleted account makes every entry for it a miss at once;
* failures are not cached (every wrong password costs argon2 and the login delay);
* at most ``max_entries`` entries (the oldest go first).

``lookup`` is cheap (one small read) and may run on the reactor thread; ``verify`` runs
argon2 and must not.  Imports nothing from twisted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any, Callable

DEFAULT_TTL = 300.0


class CredentialCache:
    def __init__(self, store: Any, *, ttl: float = DEFAULT_TTL, max_entries: int = 10_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.now = now
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[int, str, float]] = {}  # digest -> account, hash, expiry
        self._lock = threading.Lock()  # verify() remembers on a worker thread

    def _digest(self, address: str, password: str) -> bytes:
        data = address.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def _stored_hash(self, account: int | None) -> str | None:
        rec = self.store.account_record(account) if account is not None else None
        return rec.get("pw") if rec else None

    def lookup(self, address: str, password: str) -> int | None:
        """The account if these credentials were verified lately and the password has not
        changed since; else None (then call ``verify``).  No argon2."""
        digest = self._digest(address, password)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        account, stored, expires = entry
        if self.now() >= expires or self._stored_hash(account) != stored:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return account

    def verify(self, address: str, password: str) -> int | None:
        """``store.authenticate`` (argon2: blocking, run it in a thread), remembering a
        success.  The hash is read before the check, so an entry can never outlive it."""
        stored = self._stored_hash(self.store.account_id(address))
        account = self.store.authenticate(address, password)
        if account is not None and stored is not None:
            self._remember(self._digest(address, password), account, stored)
        return account

    def _remember(self, digest: bytes, account: int, stored: str) -> None:
        with self._lock:
            entries = self._entries
            entries.pop(digest, None)
            while len(entries) >= self.max_entries:
                entries.pop(next(iter(entries)), None)
            entries[digest] = (account, stored, self.now() + self.ttl)

    def __len__(self) -> int:
        return len(self._entries)
