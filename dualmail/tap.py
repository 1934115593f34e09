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


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Serve IMAP4 and JMAP from one LMDB mail store."
    optParameters = [
        ["data", "d", None, "Data directory (default: $DUALMAIL_DATA or ./dualmail-data)."],
        ["tls-cert", None, None, "PEM certificate file (enables STARTTLS and --imaps)."],
        ["tls-key", None, None, "PEM private key file for --tls-cert."],
        ["base-url", None, None, "Public base URL of the JMAP service (behind a proxy)."],
        ["store", None, None, "Mail store: postgresql://USER@HOST/DB for a shared PostgreSQL "
                              "(several nodes); default $DUALMAIL_STORE, else LMDB in --data."],
    ]
    optFlags = [
        ["allow-plaintext", None, "Allow LOGIN/PLAIN without TLS on non-loopback connections."],
        ["no-first-account", None, "Do not create the demo account on an empty store."],
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

    def postOptions(self) -> None:
        if not self["data"]:
            self["data"] = os.environ.get("DUALMAIL_DATA") or DEFAULT_DATA
        if not self["store"]:
            self["store"] = os.environ.get("DUALMAIL_STORE") or None
        if self["store"]:
            from .store.store import is_database_url

            if not is_database_url(self["store"]):
                raise usage.UsageError("--store takes a postgresql:// URL (LMDB is chosen with --data)")
        if not self["imap"] and not self["imaps"]:
            self["imap"] = [DEFAULT_IMAP]
        if not self["jmap"]:
            self["jmap"] = [DEFAULT_JMAP]
        if bool(self["tls-cert"]) != bool(self["tls-key"]):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        if self["imaps"] and not self["tls-cert"]:
            raise usage.UsageError("--imaps needs --tls-cert and --tls-key")
        for desc in self["imaps"]:
            if desc.startswith("ssl:"):
                raise usage.UsageError(
                    "--imaps takes a tcp: endpoint (e.g. tcp:993); its TLS comes from --tls-cert/--tls-key")


def makeService(options: Options, reactor: Any = None) -> IService:
    from .service import DualmailService

    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    return DualmailService(options, reactor)
