"""LMTP delivery policy: recipient address -> (account, mailbox), and the delivery itself.

This is the ``Handler`` the sans-I/O core (``core.py``) asks.  It imports no twisted.

Recipient lookup (RCPT, RFC 5321 §4.1.1.3) - nothing here can reach another account:

- The local part must be a Dot-string once any quoting is removed (``"alice"@x`` is
  ``alice@x``; a quoted local part holding spaces, ``@``, ``"`` and the like names no
  account), the domain a domain name (an address literal names no account).  Local part
  and domain are compared case-insensitively, as account addresses are stored lower-case;
  nothing else is rewritten (no trailing dot, no source route - that is ignored by the
  parser, RFC 5321 §C - no Unicode folding: SMTPUTF8 is not offered).
- An account whose address is exactly the recipient gets it.  Otherwise, plus-addressing:
  ``user+tag@domain`` goes to the account ``user@domain`` (split at the first ``+``).
  The tag names a mailbox when it equals, case-insensitively, the full name of one of the
  account's mailboxes (``/`` between levels, e.g. ``alice+lists/ietf@x``) that is not the
  Drafts or Sent mailbox (mail from others must not pose as the user's own); otherwise
  the message goes to INBOX.
- Anything else: 550 5.1.1 at RCPT.

Delivery (after the final ".", RFC 2033 §4.2): the accepted recipients are grouped by
account, in the order of their first RCPT.  Each account's group is one Email and one
write transaction (``store.transact``: synced LMDB commit, counters, threading, change
log; IMAP IDLE and JMAP push are told by the store's commit publication, as for IMAP
APPEND and Email/import, through the same ``mail.ops.prepare`` / ``store_prepared``).
Two addresses of one user thus make one Email (in the union of the mailboxes they name),
each with its own 250 reply.  The stored bytes start with ``Return-Path:`` (RFC 5321
§4.4), one ``Delivered-To:`` per recipient address of that account, and a ``Received:``
trace field, then the message as received.  The accounts' Emails are written in one synced
store transaction (``Store.transact_many``: group commit, one fsync for all, one modseq per
account); a failure in one account's part makes each account's part run alone, so a failed
transaction answers 451 4.3.0 for that account's recipients only (the MTA retries them);
the others are unaffected.  An
account over its quota (RFC 9208, ``dualmail user quota``) gets 552 5.2.2 "mailbox full"
(RFC 3463 §3.3: permanent, the message bounces - Dovecot's default too), or 452 4.2.2
(the MTA keeps retrying) with ``--quota-tempfail``; nothing is written for it.

The seam for what happens after a delivery (vacation replies, RFC 3834): once an account's
transaction has committed, and before its replies are sent,
``after_delivery(account, email_id, raw_bytes, mail_from)`` is called, with the account
number, the new Email's number (``model.ids.format_id(EMAIL, n)`` is its JMAP id), the
stored bytes (trace fields included) and the envelope sender (``""`` for ``<>``).  The
service supplies it (``DualmailService.after_delivery``, a no-op by default).  An exception
in it is logged; the delivery stands and its 250 is sent.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from twisted.logger import Logger

from ..mail.ops import prepare, stage, store_prepared
from ..model import errors
from ..store.store import Store
from ..store.txn import MailTxn
from .core import Address, Envelope, Recipient, Reply

AfterDelivery = Callable[[int, int, bytes, str], None]

# Roles a plus-address tag may not select (RFC 8621 §2 role names).
_NOT_BY_TAG = frozenset({"drafts", "sent"})


def no_after_delivery(account: int, email_id: int, raw: bytes, mail_from: str) -> None:
    """The default hook: nothing happens after a delivery."""


@dataclass(frozen=True, slots=True)
class Target:
    """What an accepted RCPT resolved to."""

    account: int
    mailbox: int  # 0: INBOX, looked up in the delivery transaction
    address: str  # the recipient as given, local part kept, domain lower-cased


def find_tagged_mailbox(mailboxes: Sequence[dict[str, Any]], tag: str) -> int:
    """The mailbox a plus-address tag names (case-insensitive full name), else 0 (INBOX)."""
    by_id = {int(m["id"]): m for m in mailboxes}
    want = tag.lower()
    found = []
    for m in mailboxes:
        names: list[str] = []
        cur: dict[str, Any] | None = m
        hops = 0
        while cur is not None and hops < 1000:
            names.append(cur["name"])
            cur = by_id.get(int(cur["parent"])) if cur["parent"] else None
            hops += 1
        if "/".join(reversed(names)).lower() == want and m.get("role") not in _NOT_BY_TAG:
            found.append(int(m["id"]))
    return found[0] if len(found) == 1 else 0


class StoreDelivery:
    """The Handler over one Store (one per connection: it knows the peer for Received:)."""

    log = Logger()

    def __init__(self, store: Store, *, hostname: str = "localhost", peer: str = "",
                 after_delivery: AfterDelivery = no_after_delivery,
                 now: Callable[[], float] = time.time, quota_tempfail: bool = False) -> None:
        self.store = store
        self.quota_tempfail = quota_tempfail
        self.hostname = hostname
        self.peer = peer
        self.after_delivery = after_delivery
        self.now = now

    # -- RCPT --------------------------------------------------------------------------

    def resolve(self, address: Address) -> Target | None:
        if address.null or not address.dot_string or address.domain.startswith("["):
            return None
        local, domain = address.local, address.domain.lower()
        account = self.store.account_id(f"{local}@{domain}")
        if account is not None:
            return Target(account, 0, f"{local}@{domain}")
        user, plus, tag = local.partition("+")
        if not plus or not user:
            return None
        account = self.store.account_id(f"{user}@{domain}")
        if account is None:
            return None
        mailbox = 0
        if tag:
            with self.store.read(account) as view:
                mailbox = find_tagged_mailbox(view.mailboxes(), tag)
        return Target(account, mailbox, f"{local}@{domain}")

    def rcpt(self, address: Address) -> Reply | Recipient:
        target = self.resolve(address)
        if target is None:
            return Reply(550, "5.1.1", f"<{address}>: no such user here")
        return Recipient(address, target)

    # -- after the final "." -------------------------------------------------------------

    def trace(self, env: Envelope, addresses: Sequence[str]) -> bytes:
        sender = str(env.sender) if env.sender is not None else ""
        peer = f" ({self.peer})" if self.peer else ""
        date = email.utils.formatdate(self.now(), localtime=False)
        lines = [f"Return-Path: <{sender}>"]
        lines += [f"Delivered-To: {a}" for a in dict.fromkeys(addresses)]
        lines.append(f"Received: from {env.lhlo}{peer}\r\n\tby {self.hostname} (dualmail) with LMTP;\r\n\t{date}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")

    def deliver(self, envelope: Envelope, data: bytes) -> list[Reply]:
        groups: dict[int, list[int]] = {}
        targets: list[Target] = []
        for i, rcpt in enumerate(envelope.recipients):
            t: Target = rcpt.token
            targets.append(t)
            groups.setdefault(t.account, []).append(i)
        replies: list[Reply | None] = [None] * len(targets)
        sender = str(envelope.sender) if envelope.sender is not None else ""
        # every account's Email in ONE synced transaction (group commit): a message to
        # 100 accounts costs one fsync, not 100; each 250 only after that commit returned
        raws = {account: self.trace(envelope, [targets[i].address for i in indexes]) + data
                for account, indexes in groups.items()}
        outcomes = self._deliver_all([(account, raws[account], [targets[i].mailbox for i in indexes])
                                      for account, indexes in groups.items()])
        for (account, indexes), outcome in zip(groups.items(), outcomes):
            raw = raws[account]
            if isinstance(outcome, errors.OverQuotaError):
                exc = outcome
                self.log.info("LMTP refused from <{sender}> to account {account}: {why}",
                              sender=sender, account=account, why=exc.message)
                reply = (Reply(452, "4.2.2", "Mailbox full (over quota); try again later") if self.quota_tempfail
                         else Reply(552, "5.2.2", "Mailbox full (over quota)"))
                for i in indexes:
                    replies[i] = reply
                continue
            if isinstance(outcome, BaseException):
                self.log.error("LMTP delivery to account {account} failed: {error!r}", account=account,
                               error=outcome)
                for i in indexes:
                    replies[i] = Reply(451, "4.3.0", "Local error in processing; try again later")
                continue
            email_id = outcome
            self.log.info("LMTP delivered from <{sender}> to {rcpts} (account {account}, email {email}, "
                          "{size} octets)", sender=sender, rcpts=", ".join(targets[i].address for i in indexes),
                          account=account, email=email_id, size=len(raw))
            for i in indexes:
                replies[i] = Reply(250, "2.0.0", f"<{targets[i].address}> delivered")
            try:
                self.after_delivery(account, email_id, raw, sender)
            except Exception:
                self.log.failure("after_delivery failed for account {account}, email {email}",
                                 account=account, email=email_id)
        return [r for r in replies if r is not None]

    def _deliver_all(self, deliveries: Sequence[tuple[int, bytes, Sequence[int]]]) -> list[Any]:
        """(account, raw, mailboxes named at RCPT) each: the new Email's id or the exception
        its delivery raised; one store transaction for all (``Store.transact_many``)."""
        calls = []
        for account, raw, wanted in deliveries:
            try:
                calls.append((account, self._write_for(account, raw, wanted)))
            except Exception as exc:  # the message itself could not be prepared
                calls.append((account, _raiser(exc)))
        many = getattr(self.store, "transact_many", None)
        if many is None:
            out: list[Any] = []
            for account, write in calls:
                try:
                    out.append(self.store.transact(account, write))
                except Exception as exc:
                    out.append(exc)
            return out
        return list(many(calls))

    def _write_for(self, account: int, raw: bytes, wanted: Sequence[int]) -> Callable[[MailTxn], int]:
        # parsed (and with S3 blobs uploaded) before the transaction
        prepared = stage(self.store, account, prepare(raw, (), int(self.now())))

        def write(tx: MailTxn) -> int:
            inbox = tx.child(0, "INBOX")
            assert inbox is not None, "every account has an INBOX (CONTRACT §3)"
            # a mailbox named at RCPT may have been deleted since: INBOX then
            boxes = sorted({m if m and tx.mailbox(m) is not None else inbox for m in wanted})
            e, _uids = store_prepared(tx, prepared, boxes)
            return e

        return write


def _raiser(exc: Exception) -> Callable[[MailTxn], int]:
    def fail(_tx: MailTxn) -> int:
        raise exc

    return fail
