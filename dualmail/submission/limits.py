"""Per-account sending limits (RFC 8621 §9, RFC 6409 §5-§8 policy): messages
per hour and recipients per day, counted from the store's ``sendlog`` (what
was queued, JMAP submissions and vacation replies alike), and recipients per
message. A refusal is logged for the admin.

No I/O beyond a store read view; imports no twisted.internet.
"""

from __future__ import annotations

from twisted.logger import Logger

from ..store import outbox
from ..store.txn import ReadView
from .config import Limits

log = Logger(namespace="dualmail.submission.limits")


def refusal(view: ReadView, limits: Limits, recipients: int, now: int, *, what: str = "submission") -> str | None:
    """Why the account may not send a message to ``recipients`` more
    recipients now (None: it may). Per-message recipient counts are checked by
    the caller (``tooManyRecipients`` has its own error)."""
    messages, sent_to = outbox.sent_recently(view, now)
    reason = None
    if messages >= limits.max_messages_per_hour:
        reason = f"sending limit reached: {limits.max_messages_per_hour} messages per hour"
    elif sent_to + recipients > limits.max_recipients_per_day:
        reason = f"sending limit reached: {limits.max_recipients_per_day} recipients per day"
    if reason is not None:
        address = view.account().get("address")
        log.warn("{what} refused for {address}: {reason} ({messages} messages in the last hour, "
                 "{sent_to} recipients in the last day)", what=what, address=address, reason=reason,
                 messages=messages, sent_to=sent_to, send_limit=True)
    return reason
