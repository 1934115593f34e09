"""Failed-login backoff shared by IMAP and JMAP: per-IP and per-account failure counters
with exponential delays (a delayed NO / 401, never a lock-out: a right password is answered
at once whatever the counters say, so an attacker cannot lock a user out), and the one log
line per failure that fail2ban matches (docs/security.md).

A failure counts against the client's IP and the account name tried; its delay is
``base * 2 ** (n - 1)`` seconds for the larger of the two counts ``n``, capped at ``cap``.
A counter is forgotten ``window`` seconds after its last failure; a success clears the
account's counter (not the IP's: one good login must not wash a scanner's record).  At
most ``max_entries`` keys per table (the oldest go first).  Imports nothing from twisted
but the logger; the clock is injected.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from twisted.logger import Logger

DEFAULT_BASE = 1.0
DEFAULT_CAP = 30.0
DEFAULT_WINDOW = 15 * 60.0

# The line fail2ban matches (docs/security.md gives the failregex); ``user`` is the name
# the client sent, escaped (never a password or token), always last.
FAILURE_FORMAT = ("auth failure: ip={ip} protocol={protocol} mechanism={mechanism} "
                  "failures={failures} delay={delay:.1f} user={user}")


def is_loopback(host: str) -> bool:
    """A loopback peer (a local client or proxy): counts as protected, not capped per IP."""
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def log_safe(text: str, limit: int = 128) -> str:
    """A client-supplied name as one printable token: no spaces, newlines or controls
    (no log injection), at most ``limit`` characters."""
    out = []
    for ch in text[:limit]:
        out.append(ch if ch.isprintable() and not ch.isspace() and ch != "\\" else
                   ch.encode("unicode_escape").decode("ascii") if ch != " " else "\\x20")
    return "".join(out) or "-"


class _Counter:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def count(self, key: str, now: float, window: float) -> int:
        entry = self.entries.get(key)
        if entry is None or now - entry[1] > window:
            return 0
        return entry[0]

    def bump(self, key: str, now: float, window: float) -> int:
        n = self.count(key, now, window) + 1
        self.entries.pop(key, None)
        self.entries[key] = (n, now)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return n

    def clear(self, key: str) -> None:
        self.entries.pop(key, None)


class AuthGuard:
    log = Logger(namespace="dualmail.auth")

    def __init__(self, now: Callable[[], float], *, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP,
                 window: float = DEFAULT_WINDOW, max_entries: int = 100_000) -> None:
        self.now = now
        self.base = base
        self.cap = cap
        self.window = window
        self._ip = _Counter(max_entries)
        self._account = _Counter(max_entries)

    def delay_for(self, n: int) -> float:
        if n <= 0 or self.base <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(n - 1, 32)))

    def failure(self, ip: str, user: str | None, protocol: str, mechanism: str) -> float:
        """Count a failed attempt, log it, and return the delay before its NO / 401."""
        now = self.now()
        n = self._ip.bump(ip, now, self.window)
        if user:
            n = max(n, self._account.bump(user.lower(), now, self.window))
        delay = self.delay_for(n)
        self.log.warn(FAILURE_FORMAT, ip=log_safe(ip), protocol=protocol, mechanism=log_safe(mechanism),
                      failures=n, delay=delay, user=log_safe(user or ""))
        return delay

    def success(self, user: str) -> None:
        self._account.clear(user.lower())
