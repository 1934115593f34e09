"""Push subscriptions (RFC 8620 §7.2) and their durable delivery queue, on the
key-value interface (tables ``pushsub``, ``pushq``, ``pushdue`` in ``keys.py``).

A subscription belongs to the user of account ``A`` (the principal that made
it) and is not part of any JMAP type state: writing one takes no modseq and
publishes no commit. Each write here is one transaction of the caller's.

The queue holds at most one pending delivery per subscription
(``{"verify", "change", "gen", "due", "tries"}``): a PushVerification still to
send, and/or "a StateChange is due". The StateChange itself is built at
sending time from the subscription's ``states`` -- the latest state of every
type pushed so far -- so changes that pile up while a push is in flight or
backing off coalesce into one message, and a push service that replaces an
undelivered message by a newer one with the same Topic (RFC 8030 §5.4) loses
nothing. ``gen`` grows with every change, so an answer to an older push never
clears a newer one. Times are epoch milliseconds in the queue.

Speaks only to ``kv.KVRead``/``kv.KVWrite``; imports no lmdb and no twisted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from . import codec, keys as K
from .kv import KVRead, KVWrite, prefix_end


def create(w: KVWrite, a: int, record: dict[str, Any], now_ms: int) -> int:
    """Store a new subscription and queue its PushVerification, due now."""
    raw = w.get("meta", b"next_pushsub")
    p = (K.un64(raw) if raw else 0) + 1
    w.put("meta", b"next_pushsub", K.u64(p))
    w.put("pushsub", K.pushsub(a, p), codec.dumps(record))
    _put_entry(w, a, p, {"verify": True, "change": False, "gen": 1, "due": now_ms, "tries": 0}, None)
    return p


def credential_mark(r: KVRead, a: int) -> str | None:
    """A mark of the account's password as it is now (a hash of its hash): a
    subscription made under another one outlived its credentials, which RFC
    8620 §7.2 says destroys it. None: no such account."""
    raw = r.get("account", K.acct(a))
    if raw is None:
        return None
    return hashlib.sha256(str(codec.loads(raw).get("pw", "")).encode()).hexdigest()[:16]


def get(r: KVRead, a: int, p: int) -> dict[str, Any] | None:
    raw = r.get("pushsub", K.pushsub(a, p))
    return None if raw is None else codec.loads(raw)


def put(w: KVWrite, a: int, p: int, record: Mapping[str, Any]) -> None:
    w.put("pushsub", K.pushsub(a, p), codec.dumps(dict(record)))


def listing(r: KVRead, a: int) -> list[tuple[int, dict[str, Any]]]:
    """Every subscription of account ``a`` (a user has a handful: capped at creation)."""
    pre = K.pushsub(a)
    return [(K.un64(k, 4), codec.loads(v)) for k, v in r.range("pushsub", pre, prefix_end(pre))]


def count(r: KVRead, a: int) -> int:
    pre = K.pushsub(a)
    return sum(1 for _ in r.range("pushsub", pre, prefix_end(pre)))


def all_subscriptions(r: KVRead) -> Iterable[tuple[int, int, dict[str, Any]]]:
    """(account, number, record) of every subscription: the hourly expiry sweep only."""
    for k, v in r.range("pushsub", b"", None):
        yield K.un32(k), K.un64(k, 4), codec.loads(v)


def destroy(w: KVWrite, a: int, p: int) -> bool:
    """Remove the subscription (its URL and keys go with the record, RFC 8620
    §7.2) and whatever was queued for it."""
    if w.get("pushsub", K.pushsub(a, p)) is None:
        return False
    w.delete("pushsub", K.pushsub(a, p))
    entry = entry_of(w, a, p)
    if entry is not None:
        w.delete("pushdue", K.pushdue(int(entry["due"]), a, p))
        w.delete("pushq", K.pushsub(a, p))
    return True


# -- the queue --------------------------------------------------------------------------


def entry_of(r: KVRead, a: int, p: int) -> dict[str, Any] | None:
    raw = r.get("pushq", K.pushsub(a, p))
    return None if raw is None else codec.loads(raw)


def _put_entry(w: KVWrite, a: int, p: int, entry: dict[str, Any], old: Mapping[str, Any] | None) -> None:
    if old is not None and int(old["due"]) != int(entry["due"]):
        w.delete("pushdue", K.pushdue(int(old["due"]), a, p))
    w.put("pushq", K.pushsub(a, p), codec.dumps(entry))
    w.put("pushdue", K.pushdue(int(entry["due"]), a, p), b"")


def merge_states(states: Mapping[str, Mapping[str, str]], changed: Mapping[str, Mapping[str, str]]
                 ) -> dict[str, dict[str, str]]:
    """``states`` with ``changed`` laid over it; a state never goes back (state
    strings are decimal modseqs, CONTRACT §4), so a commit seen twice is a no-op."""
    out = {acc: dict(types) for acc, types in states.items()}
    for acc, types in changed.items():
        mine = out.setdefault(acc, {})
        for name, state in types.items():
            old = mine.get(name)
            if old is None or _newer(state, old):
                mine[name] = state
    return out


def _newer(a: str, b: str) -> bool:
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


def note_change(w: KVWrite, a: int, p: int, record: dict[str, Any], changed: Mapping[str, Mapping[str, str]],
                now_ms: int) -> bool:
    """Merge ``changed`` into the subscription's states and make a StateChange
    due (now, unless it is backing off: then the pending one carries it).
    False when nothing was new."""
    states = merge_states(record.get("states") or {}, changed)
    if states == (record.get("states") or {}):
        return False
    put(w, a, p, {**record, "states": states})
    old = entry_of(w, a, p)
    if old is None:
        entry = {"verify": False, "change": True, "gen": 1, "due": now_ms, "tries": 0}
    else:
        entry = {**old, "change": True, "gen": int(old["gen"]) + 1}
    _put_entry(w, a, p, entry, old)
    return True


def delivered(w: KVWrite, a: int, p: int, what: str, gen: int) -> None:
    """A push of ``gen`` was accepted: clear what it carried ("verify" or
    "change"); the entry goes when nothing else is pending."""
    old = entry_of(w, a, p)
    if old is None:
        return
    entry = dict(old)
    if what == "verify":
        entry["verify"] = False
    elif int(old["gen"]) == gen:
        entry["change"] = False
    entry["tries"] = 0
    if not entry["verify"] and not entry["change"]:
        w.delete("pushdue", K.pushdue(int(old["due"]), a, p))
        w.delete("pushq", K.pushsub(a, p))
    else:
        _put_entry(w, a, p, entry, old)


def retry(w: KVWrite, a: int, p: int, due_ms: int) -> int:
    """The attempt failed for now: try again at ``due_ms``. Returns the tries so far."""
    old = entry_of(w, a, p)
    if old is None:
        return 0
    entry = {**old, "due": due_ms, "tries": int(old.get("tries", 0)) + 1}
    _put_entry(w, a, p, entry, old)
    return int(entry["tries"])


def give_up(w: KVWrite, a: int, p: int, what: str) -> None:
    """Stop trying what failed for good (the subscription stays: a later
    change is pushed afresh; a verification is not retried, RFC 9749 §6)."""
    old = entry_of(w, a, p)
    if old is not None:
        delivered(w, a, p, what, int(old["gen"]))


def due(r: KVRead, now_ms: int, limit: int = 1000) -> list[tuple[int, int, int]]:
    """(due, account, number) of the entries due at ``now_ms``, earliest first."""
    out = []
    for k, _v in r.range("pushdue", K.pushdue(), K.pushdue() + K.u64(now_ms + 1)):
        out.append((K.un64(k, 4), K.un32(k, 12), K.un64(k, 16)))
        if len(out) >= limit:
            break
    return out


def next_due(r: KVRead, after_ms: int) -> int | None:
    """The earliest due time later than ``after_ms`` (None: nothing queued)."""
    for k, _v in r.range("pushdue", K.pushdue() + K.u64(after_ms + 1), prefix_end(K.pushdue())):
        return K.un64(k, 4)
    return None


def drop_stale(w: KVWrite, due_ms: int, a: int, p: int) -> None:
    """An index key whose entry is gone (with its account)."""
    w.delete("pushdue", K.pushdue(due_ms, a, p))
