"""The durable outbound queue, the per-account sending record and the vacation
memory, on the key-value interface (tables ``outq``, ``outmsg``, ``outdue``,
``sendlog``, ``vacsent`` in ``keys.py``).

A message to relay is enqueued in the same write transaction as the
EmailSubmission that asks for it (or, for a vacation reply, with the memory
that it was sent), so a crash never loses one nor sends one twice by itself.
The queue is global (one ``outdue`` index ordered by due time, for the one
runner of the process) but every entry lives under its account.

An entry: ``{"kind": "submission"|"vacation", "sub": n|None, "from": addr,
"rcpt": [{"email", "state": queued|sent|failed, "reply"}], "created": t,
"due": t, "tries": n, "login", "client"}``; times are epoch seconds.

Speaks only to ``kv.KVRead``/``kv.KVWrite`` (through a ``MailTxn`` or a
``ReadView`` for account data); imports no lmdb and no twisted.
"""

from __future__ import annotations

from typing import Any

from . import codec, keys as K
from .kv import KVRead, KVWrite, prefix_end
from .txn import MailTxn, ReadView

DAY = 86400
HOUR = 3600


# -- the queue -------------------------------------------------------------------


def enqueue(tx: MailTxn, entry: dict[str, Any], data: bytes, now: int) -> int:
    """Queue ``data`` for the smarthost, due now; records the send for the rate
    limits. Returns the queue number."""
    raw = tx.w.get("meta", b"next_outq")
    q = (K.un64(raw) if raw else 0) + 1
    tx.w.put("meta", b"next_outq", K.u64(q))
    entry = {**entry, "created": now, "due": now, "tries": 0}
    tx.w.put("outq", K.outq(tx.a, q), codec.dumps(entry))
    tx.w.put("outmsg", K.outq(tx.a, q), bytes(data))
    tx.w.put("outdue", K.outdue(now, tx.a, q), b"")
    record_send(tx, q, len(entry["rcpt"]), now)
    return q


def load(view: ReadView, q: int) -> tuple[dict[str, Any], bytes] | None:
    raw = view.kv.get("outq", K.outq(view.a, q))
    data = view.kv.get("outmsg", K.outq(view.a, q))
    if raw is None or data is None:
        return None
    return codec.loads(raw), bytes(data)


def entries(view: ReadView) -> list[tuple[int, dict[str, Any]]]:
    """Every queued entry of the account (admin view, tests)."""
    p = K.outq(view.a)
    return [(K.un64(k, 4), codec.loads(v)) for k, v in view.kv.range("outq", p, prefix_end(p))]


def reschedule(tx: MailTxn, q: int, entry: dict[str, Any], due: int) -> None:
    """Write back an entry still to be tried, due at ``due``."""
    old = int(entry["due"])
    tx.w.delete("outdue", K.outdue(old, tx.a, q))
    entry["due"] = due
    tx.w.put("outq", K.outq(tx.a, q), codec.dumps(entry))
    tx.w.put("outdue", K.outdue(due, tx.a, q), b"")


def finish(tx: MailTxn, q: int, entry: dict[str, Any]) -> None:
    """Remove a finished entry (every recipient sent or failed)."""
    tx.w.delete("outdue", K.outdue(int(entry["due"]), tx.a, q))
    tx.w.delete("outq", K.outq(tx.a, q))
    tx.w.delete("outmsg", K.outq(tx.a, q))


def due(kv: KVRead, now: float, limit: int = 100) -> list[tuple[int, int, int]]:
    """(due, account, queue number) of the entries due at ``now``, earliest first."""
    out = []
    for k, _v in kv.range("outdue", K.outdue(), K.outdue() + K.u64(int(now) + 1)):
        out.append((K.un64(k, 4), K.un32(k, 12), K.un64(k, 16)))
        if len(out) >= limit:
            break
    return out


def next_due(kv: KVRead, after: int = -1) -> int | None:
    """The earliest due time later than ``after`` (None: nothing queued)."""
    for k, _v in kv.range("outdue", K.outdue() + K.u64(after + 1), prefix_end(K.outdue())):
        return K.un64(k, 4)
    return None


def drop_stale(w: KVWrite, due_at: int, a: int, q: int) -> None:
    """An index key whose entry went with its account (so no ``MailTxn``:
    the account may be gone)."""
    w.delete("outdue", K.outdue(due_at, a, q))


# -- the sending record (RFC 8621 §9: limits per account) ----------------------------


def record_send(tx: MailTxn, q: int, recipients: int, now: int) -> None:
    """One message to ``recipients`` sent now; entries older than a day go."""
    p = K.acct(tx.a)
    for k, _v in list(tx.w.range("sendlog", p + K.u64(0), p + K.u64(max(now - DAY, 0)))):
        tx.w.delete("sendlog", k)
    tx.w.put("sendlog", K.sendlog(tx.a, now, q), K.u32(recipients))


def sent_recently(view: ReadView, now: int) -> tuple[int, int]:
    """(messages in the last hour, recipients in the last day); reads only the
    last day's records."""
    p = K.acct(view.a)
    messages = recipients = 0
    for k, v in view.kv.range("sendlog", K.sendlog(view.a, now - DAY + 1), prefix_end(p)):
        recipients += K.un32(v)
        if K.un64(k, 4) > now - HOUR:
            messages += 1
    return messages, recipients


# -- vacation memory (RFC 3834 §2) --------------------------------------------------


def replied(view: ReadView, sender: str) -> dict[str, Any] | None:
    raw = view.kv.get("vacsent", K.vacsent(view.a, sender))
    return None if raw is None else codec.loads(raw)


def remember_reply(tx: MailTxn, sender: str, now: int, vacation_state: int) -> None:
    tx.w.put("vacsent", K.vacsent(tx.a, sender), codec.dumps({"t": now, "v": vacation_state}))
