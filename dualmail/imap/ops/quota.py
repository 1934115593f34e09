"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA; STATUS DELETED and DELETED-STORAGE
live with STATUS (``mailboxes.py``).

Every mailbox of an account is under one quota root, ``""``, whose resources are the
account's JMAP Quotas (RFC 9425, ``dualmail.jmap.types.quota``): STORAGE is the size of the
account's messages in units of 1024 octets (rounded up; the limit rounded down), each
message counted once however many mailboxes share it (CONTRACT §2), and MESSAGE their
number.  A resource without a limit is left out of the QUOTA response (RFC 9208 §4.2.1:
"Resources not named in the list are not limited").  Limits are the admin's
(``dualmail user quota``): SETQUOTA is refused with NOPERM and QUOTASET is not advertised
(RFC 9208 §4.1.3).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[r.Response, None, r.Tagged]

ROOT = ""


def quota_response(view: Any) -> r.Data:
    """``* QUOTA "" (STORAGE used limit MESSAGE used limit)`` from one read view."""
    limits = view.quota_limits()
    used = view.usage()
    resources: list[r.Value] = []
    if "octets" in limits:
        resources += [r.Atom("STORAGE"), -(-used["octets"] // 1024), limits["octets"] // 1024]
    if "count" in limits:
        resources += [r.Atom("MESSAGE"), used["count"], limits["count"]]
    return r.Data((r.Atom("QUOTA"), ROOT, resources))


def getquota(s: Session, cmd: c.GetQuota) -> Gen:
    if cmd.root != ROOT:
        raise ImapNo("No such quota root", "NONEXISTENT")
    assert s.account is not None
    with s.store.read(s.account) as view:
        response = quota_response(view)
    yield response
    return r.Tagged(cmd.tag, "OK", "GETQUOTA completed")


def getquotaroot(s: Session, cmd: c.GetQuotaRoot) -> Gen:
    """RFC 9208 §4.1.2: the mailbox need not exist; every name is under root ``""``."""
    names.decode(s.utf8, cmd.mailbox)  # NO [CANNOT] for broken modified UTF-7
    assert s.account is not None
    with s.store.read(s.account) as view:
        response = quota_response(view)
    yield r.Data((r.Atom("QUOTAROOT"), r.Raw(r.astring(cmd.mailbox, utf8=s.utf8)), ROOT))
    yield response
    return r.Tagged(cmd.tag, "OK", "GETQUOTAROOT completed")


def setquota(s: Session, cmd: c.SetQuota) -> Gen:
    """Limits are set by the administrator (``dualmail user quota``), not by the user."""
    raise ImapNo("Quota limits are set by the administrator", "NOPERM")
    yield  # pragma: no cover - a generator like every handler
