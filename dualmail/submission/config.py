"""The submission settings: smarthost, its credentials, the sending limits and
the queue's retry policy, as one frozen value built from the ``twistd
dualmail`` options (``from_options``). Defaults are documented in
docs/operating.md ("Sending mail").

Imports no twisted.internet.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Sending limits (RFC 8621 §9: a hijacked account must not become a spam cannon).
MAX_RECIPIENTS = 100  # per message (tooManyRecipients, maxRecipients)
MAX_MESSAGES_PER_HOUR = 100  # per account (forbiddenToSend)
MAX_RECIPIENTS_PER_DAY = 1000  # per account (forbiddenToSend)
MAX_SIZE = 25 * 1024 * 1024  # octets of one message (tooLarge, maxSize)

# The queue: first retry after RETRY_FIRST seconds, doubling up to RETRY_MAX; a
# recipient still not accepted QUEUE_LIFETIME after submission has failed.
RETRY_FIRST = 60
RETRY_MAX = 3600
QUEUE_LIFETIME = 5 * 86400
PARALLEL = 4  # smarthost connections at a time
SMTP_TIMEOUT = 300  # seconds per reply (RFC 5321 §4.5.3.2)

VACATION_PERIOD = 7 * 86400  # one reply per sender per period (RFC 3834 §2)


@dataclass(frozen=True, slots=True)
class Limits:
    max_recipients: int = MAX_RECIPIENTS
    max_messages_per_hour: int = MAX_MESSAGES_PER_HOUR
    max_recipients_per_day: int = MAX_RECIPIENTS_PER_DAY
    max_size: int = MAX_SIZE


@dataclass(frozen=True, slots=True)
class SubmissionConfig:
    smarthost: str | None = None  # Twisted client endpoint string; None: no sending
    username: str | None = None  # AUTH credentials (from --smarthost-auth)
    password: str | None = None
    starttls: str = "if-offered"  # "no" | "if-offered" | "require"
    tls_hostname: str | None = None  # the name the smarthost's certificate must carry
    hostname: str = field(default_factory=socket.gethostname)  # EHLO and the Received field
    limits: Limits = field(default_factory=Limits)
    retry_first: int = RETRY_FIRST
    retry_max: int = RETRY_MAX
    lifetime: int = QUEUE_LIFETIME
    parallel: int = PARALLEL
    timeout: int = SMTP_TIMEOUT
    vacation_period: int = VACATION_PERIOD

    def backoff(self, tries: int) -> int:
        """Seconds before attempt ``tries + 1`` (``tries`` >= 1 attempts made)."""
        return int(min(self.retry_max, self.retry_first * 2 ** max(tries - 1, 0)))


class ConfigError(ValueError):
    pass


def read_auth_file(path: str) -> tuple[str, str]:
    """``--smarthost-auth FILE``: one line ``username:password`` (or the user
    on the first line and the password on the second). Keep it mode 0600."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f if line.strip()]
    except OSError as e:
        raise ConfigError(f"cannot read --smarthost-auth file {path!r}: {e.strerror}") from None
    if len(lines) == 1 and ":" in lines[0]:
        user, _, password = lines[0].partition(":")
    elif len(lines) == 2:
        user, password = lines
    else:
        raise ConfigError(f"--smarthost-auth file {path!r}: expected 'username:password'")
    if not user or not password:
        raise ConfigError(f"--smarthost-auth file {path!r}: empty username or password")
    return user, password


def from_options(options: Mapping[str, Any]) -> SubmissionConfig:
    """The config of ``twistd dualmail`` options (``tap.Options``); missing
    options take the defaults."""
    user = password = None
    if options.get("smarthost-auth"):
        user, password = read_auth_file(options["smarthost-auth"])

    def number(name: str, default: int) -> int:
        value = options.get(name)
        return default if value is None else int(value)

    limits = Limits(
        max_recipients=number("max-recipients", MAX_RECIPIENTS),
        max_messages_per_hour=number("max-messages-per-hour", MAX_MESSAGES_PER_HOUR),
        max_recipients_per_day=number("max-recipients-per-day", MAX_RECIPIENTS_PER_DAY),
        max_size=number("max-send-size", MAX_SIZE),
    )
    extra: dict[str, Any] = {}
    if options.get("smarthost-helo"):
        extra["hostname"] = options["smarthost-helo"]
    return SubmissionConfig(
        smarthost=options.get("smarthost") or None,
        username=user,
        password=password,
        starttls=options.get("smarthost-starttls") or "if-offered",
        tls_hostname=options.get("smarthost-tls-name") or None,
        limits=limits,
        lifetime=number("queue-lifetime", QUEUE_LIFETIME),
        **extra,
    )
