"""The vacation responder (RFC 8621 §8, RFC 3834): ``after_delivery`` is
called after each delivery into an account has committed (LMTP).

When the account's VacationResponse is enabled and now is within its
``fromDate``/``toDate``, one reply goes to the envelope sender (RFC 3834 §4:
the Return-Path) per period (7 days, remembered in the store; a changed
VacationResponse starts a new period), but never (RFC 3834 §2):

- to an empty, ``MAILER-DAEMON``, ``owner-*`` or ``*-request`` sender, or one
  of the account's own addresses;
- for a message with ``Auto-Submitted`` other than ``no``, ``Precedence:
  bulk/list/junk``, or any ``List-*`` field (RFC 2369, RFC 2919);
- for a message that does not name one of the account's addresses in
  To/Cc/Bcc/Resent-To/Resent-Cc/Resent-Bcc ("explicitly addressed");
- when the account's sending limits are used up (``limits.py``; logged).

The reply has ``In-Reply-To``/``References``, ``Auto-Submitted:
auto-replied`` (RFC 3834 §5), the VacationResponse's subject (default ``Auto:
`` + the original's, §3.1.5) and text/html bodies, the account's default
Identity as From, and goes into the same outbound queue as submissions with
the null envelope sender ``<>`` (RFC 3834 §3.3), so nothing answers it back.

No I/O beyond store transactions; imports no twisted.internet.
"""

from __future__ import annotations

import email.policy
import time
import uuid
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from twisted.logger import Logger

from ..mime.headers import split_header_block
from ..model.dates import parse_utc_date
from ..mime.parse import header_text_form
from ..store import outbox
from ..store.store import Store
from ..store.txn import ReadView
from .config import SubmissionConfig
from .limits import refusal
from .message import header_addresses, header_values, valid_mailbox

log = Logger(namespace="dualmail.submission.vacation")

DEFAULT_TEXT = "I am away and will read your message when I am back."
_NOT_TO = ("mailer-daemon", "postmaster")


def after_delivery(store_or_service: Any, account: int, email_id: int | str, raw_bytes: bytes,
                   mail_from: str | None, *, now: float | None = None) -> bool:
    """Send the vacation reply for one delivered message, if one is due.

    ``store_or_service``: the ``Store``, or anything with a ``store``
    attribute (the ``DualmailService``); if it also has ``outbox`` (the
    ``OutboxRunner``), that is woken to send at once and its config (limits,
    hostname, period) is used. ``account``: the account number;
    ``email_id``: the delivered Email (number or JMAP id; logged);
    ``raw_bytes``: the message as delivered; ``mail_from``: the SMTP
    envelope sender (``""``/None for ``<>``). Returns True if a reply was
    queued. Never raises (a failure is logged): delivery has succeeded.
    """
    store: Store = getattr(store_or_service, "store", None) or store_or_service
    runner = getattr(store_or_service, "outbox", None)
    config: SubmissionConfig = getattr(runner, "config", None) or SubmissionConfig()
    when = int(time.time() if now is None else now)
    try:
        queued = _respond(store, config, account, raw_bytes, (mail_from or "").strip().strip("<>"), when)
    except Exception:
        log.failure("vacation reply for email {email} of account {account} failed", email=email_id, account=account)
        return False
    if queued:
        log.info("vacation reply to {sender} for email {email} of account {account} queued", sender=mail_from,
                 email=email_id, account=account)
        if runner is not None:
            runner.wake()
    return queued


def _respond(store: Store, config: SubmissionConfig, a: int, raw: bytes, sender: str, now: int) -> bool:
    with store.read(a) as r:
        vacation, state = _active(r, now)
        if vacation is None or not _should_reply(r, raw, sender):
            return False
        seen = outbox.replied(r, sender)
        if seen is not None and seen.get("v") == state and now - int(seen["t"]) < config.vacation_period:
            return False
    with store.write(a) as tx:
        seen = outbox.replied(tx, sender)  # again, in the writing transaction
        if seen is not None and seen.get("v") == state and now - int(seen["t"]) < config.vacation_period:
            return False
        if refusal(tx, config.limits, 1, now, what="vacation reply") is not None:
            return False
        reply = build_reply(tx, vacation, raw, sender, config.hostname, now)
        outbox.enqueue(tx, {"kind": "vacation", "sub": None, "from": "",
                            "rcpt": [{"email": sender, "state": "queued", "reply": ""}],
                            "login": str(tx.account()["address"]), "client": ""}, reply, now)
        outbox.remember_reply(tx, sender, now, state)
    return True


def _active(r: ReadView, now: int) -> tuple[dict[str, Any] | None, int]:
    """The enabled VacationResponse whose dates include ``now``, and its state."""
    rec = r.get_object("VacationResponse", 1)
    if not rec or not rec.get("isEnabled"):
        return None, 0
    start, end = parse_utc_date(rec.get("fromDate")), parse_utc_date(rec.get("toDate"))
    if (start is not None and now < start) or (end is not None and now >= end):
        return None, 0
    return rec, r.state("VacationResponse")


def own_addresses(r: ReadView) -> set[str]:
    owned = {str(r.account()["address"]).lower()}
    owned.update(str(rec.get("email", "")).lower() for _n, rec in r.objects("Identity"))
    return owned


def _base(address: str) -> str:
    """``user+tag@domain`` -> ``user@domain`` (plus-addressing)."""
    local, _, domain = address.lower().rpartition("@")
    return local.split("+", 1)[0] + "@" + domain


def _should_reply(r: ReadView, raw: bytes, sender: str) -> bool:
    """RFC 3834 §2 and §4: whether this message may be answered at all."""
    if not sender or not valid_mailbox(sender):
        return False
    local = sender.rpartition("@")[0].lower()
    if local in _NOT_TO or local.startswith("owner-") or local.endswith("-request"):
        return False
    owned = own_addresses(r)
    if sender.lower() in owned or _base(sender) in owned:
        return False
    for value in header_values(raw, "auto-submitted"):
        if value.split(";")[0].strip().lower() != "no":
            return False
    for value in header_values(raw, "precedence"):
        if value.lower() in ("bulk", "list", "junk"):
            return False
    names = {f.name.lower() for f in split_header_block(raw, 0, len(raw)).fields}
    if any(n.startswith("list-") for n in names):
        return False
    named = set()
    for field in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"):
        for addresses in header_addresses(raw, field):
            named.update(_base(a) for a in addresses if a)
    return bool(named & {_base(a) for a in owned})


def build_reply(r: ReadView, vacation: dict[str, Any], raw: bytes, sender: str, hostname: str, now: int) -> bytes:
    """The RFC 3834 §3 reply message (headers folded at 78 by the stdlib's SMTP policy)."""
    identity = None
    for _n, rec in r.objects("Identity"):
        if rec.get("default") or identity is None:
            identity = rec
    address = str((identity or {}).get("email") or r.account()["address"])
    name = str((identity or {}).get("name") or "")
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((name, address)) if name else address
    msg["To"] = sender
    subjects = header_values(raw, "subject")
    original = _decoded_subject(raw)
    msg["Subject"] = vacation.get("subject") or ("Auto: " + original if subjects else "Auto: away")
    msg["Date"] = formatdate(now, usegmt=True)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{hostname}>"
    msg_ids = header_values(raw, "message-id")
    if msg_ids:
        msg["In-Reply-To"] = msg_ids[0]
        refs = " ".join(header_values(raw, "references") + [msg_ids[0]])
        msg["References"] = refs
    msg["Auto-Submitted"] = "auto-replied"
    text, html = vacation.get("textBody"), vacation.get("htmlBody")
    if text is None and html is None:
        text = DEFAULT_TEXT
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html, subtype="html")
    return msg.as_bytes()


def _decoded_subject(raw: bytes) -> str:
    for f in reversed(split_header_block(raw, 0, len(raw)).fields):
        if f.name.lower() == "subject":
            return " ".join(header_text_form(f.value).split())
    return ""


__all__ = ["after_delivery", "build_reply"]
