"""``twistd dualmail``: command-line options and ``makeService``.

Listeners are Twisted endpoint strings (repeatable options); the defaults bind loopback
only, on unprivileged ports, so a fresh machine needs no configuration.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

DEFAULT_DATA = "./dualmail-data"
DEFAULT_IMAP = "tcp:1143:interface=127.0.0.1"
DEFAULT_JMAP = "tcp:8080:interface=127.0.0.1"
DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024  # IMAP APPENDLIMIT and JMAP maxSizeUpload
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """``52428800``, ``50M``, ``512K``, ``1G`` (binary units) -> octets."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _SIZE_UNITS and not t[-1:].isdigit() else ""
    digits = t[: len(t) - len(unit)]
    if not digits.isdigit() or int(digits) <= 0:
        raise usage.UsageError(f"--max-message-size: expected a size like 52428800 or 50M, not {text!r}")
    return int(digits) * _SIZE_UNITS[unit]
DEFAULT_LMTP = "tcp:2424:interface=127.0.0.1"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve IMAP4 and JMAP from one LMDB mail store."
    optParameters = [
        ["data", "d", None, "Data directory (default: $DUALMAIL_DATA or ./dualmail-data)."],
        ["tls-cert", None, None, "PEM certificate file (enables STARTTLS and --imaps)."],
        ["tls-key", None, None, "PEM private key file for --tls-cert."],
        ["base-url", None, None, "Public base URL of the JMAP service (behind a proxy)."],
        ["max-message-size", None, None,
         "Largest message accepted, in octets or with K/M/G: IMAP APPENDLIMIT and JMAP "
         "maxSizeUpload (default 50M)."],
        # Sending mail (dualmail.submission; docs/operating.md "Sending mail")
        ["smarthost", None, None, "SMTP relay for JMAP EmailSubmission and vacation replies "
                                  "(client endpoint, e.g. tcp:127.0.0.1:25)."],
        ["smarthost-auth", None, None, "File holding 'username:password' for AUTH at the smarthost."],
        ["smarthost-starttls", None, "if-offered", "STARTTLS to the smarthost: no, if-offered or require."],
        ["smarthost-tls-name", None, None, "Name the smarthost's certificate must carry (default: its host)."],
        ["smarthost-helo", None, None, "Name used in EHLO and Received fields (default: this host's name)."],
        ["max-recipients", None, None, "Recipients per message (default 100)."],
        ["max-messages-per-hour", None, None, "Messages an account may send per hour (default 100)."],
        ["max-recipients-per-day", None, None, "Recipients an account may send to per day (default 1000)."],
        ["max-send-size", None, None, "Largest message that may be sent, octets (default 26214400)."],
        ["queue-lifetime", None, None, "Seconds a message is retried before it fails (default 432000)."],
        ["max-connections-per-ip", None, None, "IMAP connections, and JMAP HTTP connections, one "
                                               "non-loopback address may hold (default 200 each; 0: no limit)."],
        ["max-connections-per-account", None, None, "IMAP sessions one account may hold (default 1000; 0: no limit)."],
        ["store", None, None, "Mail store: postgresql://USER@HOST/DB for a shared PostgreSQL "
                              "(several nodes); default $DUALMAIL_STORE, else LMDB in --data."],
        ["blobs", None, None, "Where message bytes live: kv (in the store, the default) or "
                              "s3://BUCKET?endpoint=URL&region=R&prefix=P (credentials: the AWS_* "
                              "variables / boto3 chain); default $DUALMAIL_BLOBS."],
        ["parsers", None, None, "Processes that MIME-parse IMAP APPENDs beside "
                                "the serving process (default: the number of CPUs, at most 4; 0: parse "
                                "in the serving process)."],
        # JMAP Web Push (dualmail.push; docs/jmap.md "Push subscriptions")
        ["push-contact", None, None, "VAPID contact (RFC 8292 'sub'), mailto: or https: "
                                     "(default mailto:postmaster@ this host's name)."],
    ]
    optFlags = [
        ["allow-plaintext", None, "Allow LOGIN/PLAIN/OAUTHBEARER (IMAP) and HTTP Basic (JMAP) without TLS "
                                  "on non-loopback connections."],
        ["no-first-account", None, "Do not create the demo account on an empty store."],
        ["quota-tempfail", None, "LMTP answers 452 4.2.2 (retry) instead of 552 5.2.2 (bounce) "
                                 "to mail for an account over its quota."],
        ["literal-minus", None, "IMAP: advertise LITERAL- (RFC 7888 §5: non-synchronising "
                                "literals of at most 4096 octets) instead of LITERAL+."],
        ["no-html-sanitize", None, "Serve text/html JMAP bodyValues as sent, not cleaned "
                                   "(for clients that sanitise HTML themselves; docs/security.md)."],
        ["push-allow-http-loopback", None, "Tests/development: accept http:// PushSubscription URLs "
                                           "to loopback addresses (otherwise https only)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["imap"] = []
        self["imaps"] = []
        self["jmap"] = []
        self["lmtp"] = []

    def opt_imap(self, endpoint: str) -> None:
        """IMAP listener endpoint (repeatable; default tcp:1143:interface=127.0.0.1)."""
        self["imap"].append(endpoint)

    def opt_imaps(self, endpoint: str) -> None:
        """Implicit-TLS IMAP listener endpoint (repeatable; RFC 8314; needs --tls-cert)."""
        self["imaps"].append(endpoint)

    def opt_jmap(self, endpoint: str) -> None:
        """JMAP HTTP listener endpoint (repeatable; default tcp:8080:interface=127.0.0.1)."""
        self["jmap"].append(endpoint)

    def opt_lmtp(self, endpoint: str) -> None:
        """LMTP delivery listener endpoint (repeatable; RFC 2033; tcp: or unix:;
        default tcp:2424:interface=127.0.0.1)."""
        self["lmtp"].append(endpoint)

    def postOptions(self) -> None:
        if not self["data"]:
            self["data"] = os.environ.get("DUALMAIL_DATA") or DEFAULT_DATA
        if not self["store"]:
            self["store"] = os.environ.get("DUALMAIL_STORE") or None
        if self["store"]:
            from .store.store import is_database_url

            if not is_database_url(self["store"]):
                raise usage.UsageError("--store takes a postgresql:// URL (LMDB is chosen with --data)")
        if not self["blobs"]:
            self["blobs"] = os.environ.get("DUALMAIL_BLOBS") or None
        if self["blobs"] and self["blobs"] != "kv" and not self["blobs"].startswith("s3://"):
            raise usage.UsageError("--blobs takes kv or an s3://BUCKET?endpoint=... URL")
        if not self["imap"] and not self["imaps"]:
            self["imap"] = [DEFAULT_IMAP]
        if not self["jmap"]:
            self["jmap"] = [DEFAULT_JMAP]
        self["max-message-size"] = parse_size(self["max-message-size"] or str(DEFAULT_MAX_MESSAGE_SIZE))
        if not self["lmtp"]:
            self["lmtp"] = [DEFAULT_LMTP]
        if bool(self["tls-cert"]) != bool(self["tls-key"]):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        if self["imaps"] and not self["tls-cert"]:
            raise usage.UsageError("--imaps needs --tls-cert and --tls-key")
        for desc in self["imaps"]:
            if desc.startswith("ssl:"):
                raise usage.UsageError(
                    "--imaps takes a tcp: endpoint (e.g. tcp:993); its TLS comes from --tls-cert/--tls-key")
        if self["parsers"] is None:
            self["parsers"] = min(4, os.cpu_count() or 1)
        elif not str(self["parsers"]).isdigit():
            raise usage.UsageError("--parsers takes a number (0: parse in the serving process)")
        self["parsers"] = int(self["parsers"])
        for name in ("max-connections-per-ip", "max-connections-per-account"):
            if self[name] is not None and not str(self[name]).isdigit():
                raise usage.UsageError(f"--{name} takes a number (0: no limit)")
        self._submission_options()

    def _submission_options(self) -> None:
        from .submission.config import ConfigError, from_options

        for name in ("max-recipients", "max-messages-per-hour", "max-recipients-per-day", "max-send-size",
                     "queue-lifetime"):
            value = self[name]
            if value is not None and (not str(value).isdigit() or int(value) < 1):
                raise usage.UsageError(f"--{name} takes a positive number")
        if self["smarthost-starttls"] not in ("no", "if-offered", "require"):
            raise usage.UsageError("--smarthost-starttls is no, if-offered or require")
        try:
            self["submission"] = from_options(self)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    from .service import DualmailService

    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    return DualmailService(options, reactor)
