"""The mail model on the key-value interface: a read view and the one write transaction.

``ReadView`` answers every read the protocols need; ``MailTxn`` (a ``ReadView`` that
writes) carries every mutation.  A ``MailTxn`` takes the account's next modseq lazily, at
its first change, exactly once (CONTRACT §4); every record it touches is stamped with that
modseq, and counters, indexes, the change log and the expunge log change in the same
transaction.  Nothing here scans a whole mailbox except operations whose result is the
whole mailbox (IMAP SELECT's UID list, mailbox delete, RENAME INBOX).

Speaks only to ``kv.KVRead``/``kv.KVWrite``; imports no lmdb and no twisted.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from ..model import errors, keywords as kwmod, terms
from . import imapidx, codec, keys as K, listing
from .kv import KVRead, KVWrite, prefix_end
from .blobs import BlobStore, KvBlobs

ROLES = frozenset(
    {"inbox", "drafts", "sent", "trash", "junk", "archive", "all", "flagged", "important",
     "scheduled", "snoozed", "memos"}
)
DEFAULT_MAILBOXES = (
    ("INBOX", "inbox", 1),
    ("Drafts", "drafts", 2),
    ("Sent", "sent", 3),
    ("Trash", "trash", 4),
    ("Junk", "junk", 5),
    ("Archive", "archive", 6),
)
MAX_NAME = 255
SEPARATOR = "/"

KINDS = {
    "Mailbox": K.KIND_MAILBOX,
    "Email": K.KIND_EMAIL,
    "Thread": K.KIND_THREAD,
    "Identity": K.KIND_IDENTITY,
    "EmailSubmission": K.KIND_SUBMISSION,
    "VacationResponse": K.KIND_VACATION,
    "Quota": K.KIND_QUOTA,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}

# The account's quota resources (RFC 9425 resourceType; RFC 9208 STORAGE and MESSAGE) and
# the number of the Quota object of each.  Usage counts every Email once, however many
# mailboxes it is in (IMAP COPY shares the Email, CONTRACT §2), in the account record.
QUOTA_RESOURCES = {"octets": 1, "count": 2}

_ZERO_COUNTS = {"msgs": 0, "unseen": 0, "deleted": 0, "size": 0,
                "total": 0, "unread": 0, "threads": 0, "unreadThreads": 0}
# The JMAP-visible counters: a change to one of them is a Mailbox change (CONTRACT §4).
JMAP_COUNTS = ("total", "unread", "threads", "unreadThreads")


@dataclass(frozen=True, slots=True)
class Changes:
    """The answer to "what changed since state S" for one kind."""

    created: list[int]
    updated: list[int]
    destroyed: list[int]
    new_state: int  # modseq reached
    new_after: int  # 0: all of new_state; else only its objects numbered <= new_after
    has_more: bool
    only_counts: bool  # every update was a counts-only Mailbox change


@dataclass(frozen=True, slots=True)
class Commit:
    """What one committed write changed, published to IMAP sessions and JMAP push."""

    account: int
    modseq: int
    kinds: frozenset[str]
    mailboxes: frozenset[int]
    # IMAP METADATA entries changed ((mailbox, entry); mailbox 0 = server): a METADATA
    # write has no kinds and no mailboxes, so JMAP push and IDLE ignore it
    metadata: tuple[tuple[int, str], ...] = ()


class CannotCalculateChangesError(errors.DomainError):
    """The state is unknown, in the future, or older than the compacted log."""


def _contrib(rec: dict[str, Any], mkey: str) -> tuple[int, int, int, int, bool, bool]:
    """(msgs, unseen, deleted, size, jmap-visible, unread) of one membership."""
    uid, deleted, _ms = rec["mbx"][mkey]
    kw = rec["kw"]
    return (1, 0 if "$seen" in kw else 1, 1 if deleted else 0, rec["size"], not deleted,
            kwmod.unread(kw))


def visible(rec: dict[str, Any]) -> bool:
    """CONTRACT §2: an Email is JMAP-visible while one of its memberships is not \\Deleted."""
    return any(not v[1] for v in rec["mbx"].values())


def jmap_mailbox_ids(rec: dict[str, Any]) -> list[int]:
    return sorted(int(m) for m, v in rec["mbx"].items() if not v[1])


class ReadView:
    """Reads of one account at one consistent point in time."""

    def __init__(self, kv: KVRead, account: int, blobs: "BlobStore | None" = None,
                 paths: "PathIds | None" = None) -> None:
        self.kv = kv
        self.a = account
        self._paths = paths  # (mailbox_by_path: remembered ids, checked against this view)
        # where the message bytes are (store.blobs): the KV table by default
        self.blobs: BlobStore = blobs if blobs is not None else KvBlobs(kv)
        # mailbox records as read in this view (one snapshot: read once; a round trip each
        # on a networked engine), decoded afresh for each caller
        self._mbx_raw: dict[int, bytes] = {}

    # -- IMAP-only per-mailbox data (keys.py: urlauthkey, savedate) -------------------

    def urlauth_key(self, m: int) -> bytes | None:
        """The mailbox access key of RFC 4467 §3, if one was made."""
        return self.kv.get("urlauthkey", K.mailbox(self.a, m))

    def urlauth_mailboxes(self) -> list[int]:
        """The mailboxes that have an access key."""
        start = K.acct(self.a)
        return [K.un32(k, 4) for k, _v in self.kv.range("urlauthkey", start, prefix_end(start))]

    def save_date(self, m: int, u: int) -> int | None:
        """When message ``u`` entered mailbox ``m`` (RFC 8514), if recorded."""
        raw = self.kv.get("savedate", K.uid(self.a, m, u))
        return K.un64(raw) if raw is not None else None

    # -- account ---------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        raw = self.kv.get("account", K.acct(self.a))
        if raw is None:
            raise errors.NotFoundError("no such account")
        rec: dict[str, Any] = codec.loads(raw)
        return rec

    def keyword_spellings(self) -> dict[str, str]:
        """{lowercase keyword: IMAP spelling} of the account (see ``remember_spellings``)."""
        return dict(self.account().get("kwspell") or {})

    def usage(self) -> dict[str, int]:
        """{"octets": sum of Email sizes, "count": number of Emails}, each Email once.

        Kept in the account record by every write that creates or destroys an Email; a
        store written before quotas existed has none until its next such write, and is
        recounted here meanwhile (once per read, an upgrade path only)."""
        use = self.account().get("use")
        if use is None:
            return recount_usage(self)
        return {"octets": int(use[0]), "count": int(use[1])}

    def quota_limits(self) -> dict[str, int]:
        """The hard limits set on this account ({} = none): resource -> limit."""
        return {k: int(v) for k, v in (self.account().get("quota") or {}).items()}

    @property
    def highest_modseq(self) -> int:
        return int(self.account()["modseq"])

    def orphan_subscriptions(self) -> list[str]:
        """IMAP subscriptions of names that are no mailbox ("/"-separated full names):
        RFC 9051 §6.3.7 lets SUBSCRIBE name a missing mailbox and forbids dropping a
        subscription when its mailbox goes.  A mailbox's own flag is its record's "sub"."""
        return [str(n) for n in self.account().get("subs") or []]

    def state(self, kind: str) -> int:
        """The JMAP state (a modseq) of ``kind``: the last transaction that changed one."""
        raw = self.kv.get("state", K.state(self.a, KINDS[kind]))
        if raw is None:
            return int(self.account()["created"])
        return K.un64(raw)

    # -- mailboxes ---------------------------------------------------------------

    def mailbox(self, m: int) -> dict[str, Any] | None:
        raw = self._mbx_raw.get(m)
        if raw is None:
            raw = self.kv.get("mailbox", K.mailbox(self.a, m))
            if raw is None:
                return None
            self._mbx_raw[m] = raw
        return codec.loads(raw)

    def mailbox_scan(self, m: int) -> tuple[str, bytes, bytes, int]:
        """Mailbox ``m``'s record as a ``scan_many`` scan, for a caller that reads other
        things in the same round trip; ``took_mailbox`` keeps what it read."""
        key = K.mailbox(self.a, m)
        return ("mailbox", key, key + b"\x00", 1)

    def took_mailbox(self, m: int, rows: list[tuple[bytes, bytes]]) -> None:
        if rows and rows[0][0] == K.mailbox(self.a, m):
            self._mbx_raw.setdefault(m, bytes(rows[0][1]))

    def require_mailbox(self, m: int) -> dict[str, Any]:
        rec = self.mailbox(m)
        if rec is None:
            raise errors.NotFoundError("no such mailbox", mailbox=m)
        return rec

    def mailboxes(self) -> list[dict[str, Any]]:
        p = K.acct(self.a)
        return [codec.loads(v) for _k, v in self.kv.range("mailbox", p, prefix_end(p))]

    def child(self, parent: int, name: str) -> int | None:
        if parent == 0 and name.upper() == "INBOX":
            name = "INBOX"
        raw = self.kv.get("mbxname", K.mbxname(self.a, parent, name))
        return None if raw is None else K.un32(raw)

    def children(self, parent: int) -> list[int]:
        p = K.acct(self.a) + K.u32(parent)
        return [K.un32(v) for _k, v in self.kv.range("mbxname", p, prefix_end(p))]

    def mailbox_path(self, m: int) -> list[str]:
        """The names from the top down to ``m`` (IMAP hierarchy, separator ``/``)."""
        out: list[str] = []
        seen = 0
        while m and seen < 1000:
            rec = self.require_mailbox(m)
            out.append(rec["name"])
            m = rec["parent"]
            seen += 1
        return list(reversed(out))

    def mailbox_by_path(self, path: list[str]) -> int | None:
        cache = self._paths
        if cache is not None and path:
            ids = cache.get(self.a, path)
            if ids is not None:
                raws = self.kv.get_many("mailbox", [K.mailbox(self.a, m) for m in ids])
                if _path_holds(path, ids, raws):
                    self._mbx_raw.update(zip(ids, raws))  # (their records: read once)
                    return ids[-1]
        m = 0
        found_ids = []
        for name in path:
            found = self.child(m, name)
            if found is None:
                return None
            m = found
            found_ids.append(m)
        if cache is not None and m:
            cache.put(self.a, path, found_ids)
        return m or None

    def role_mailbox(self, role: str) -> int | None:
        for rec in self.mailboxes():
            if rec.get("role") == role:
                return int(rec["id"])
        return None

    # -- emails ------------------------------------------------------------------

    def email(self, e: int) -> dict[str, Any] | None:
        raw = self.kv.get("email", K.email(self.a, e))
        return None if raw is None else codec.loads(raw)

    def summary(self, e: int) -> dict[str, Any] | None:
        raw = self.kv.get("summary", K.email(self.a, e))
        return None if raw is None else codec.loads(raw)

    def emails(self, es: Sequence[int | None]) -> list[dict[str, Any] | None]:
        """``email(e)`` for each of ``es`` (None stays None), in one KV ``get_many``."""
        raws = self.kv.get_many("email", [K.email(self.a, e) for e in es if e is not None])
        it = iter(raws)
        return [None if e is None or (raw := next(it)) is None else codec.loads(raw) for e in es]

    def emails_with(self, es: Sequence[int], table: str) -> tuple[list[dict[str, Any] | None], list[bytes | None]]:
        """``emails(es)`` and the raw ``table`` rows of the same Emails (key A E), in one KV
        ``get_many_each`` (one round trip on PostgreSQL)."""
        keys = [K.email(self.a, e) for e in es]
        raws, other = self.kv.get_many_each([("email", keys), (table, keys)])
        return [None if raw is None else codec.loads(raw) for raw in raws], other

    def summaries(self, es: Sequence[int]) -> list[dict[str, Any] | None]:
        """``summary(e)`` for each of ``es``, in one KV ``get_many``."""
        raws = self.kv.get_many("summary", [K.email(self.a, e) for e in es])
        return [None if raw is None else codec.loads(raw) for raw in raws]

    def texts(self, es: Sequence[int]) -> list[tuple[str, str]]:
        """``text(e)`` for each of ``es``, in one KV ``get_many``."""
        return [_text(raw) for raw in self.kv.get_many("text", [K.email(self.a, e) for e in es])]

    def listings(self, es: "Sequence[int | None]",
                 recs: "Sequence[dict[str, Any] | None]") -> "list[listing.Listing | None]":
        """``listing(e, rec)`` for each pair (None where either is None), the stored
        listings read in one KV ``get_many``."""
        want = [e for e, rec in zip(es, recs) if e is not None and rec is not None]
        it = iter(self.kv.get_many("imapw", [K.email(self.a, e) for e in want]))
        out: "list[listing.Listing | None]" = []
        for e, rec in zip(es, recs):
            if e is None or rec is None:
                out.append(None)
                continue
            raw = next(it)
            got = listing.parse(raw) if raw is not None else None
            out.append(got if got is not None and got.recv == int(rec["recv"])
                       else self.listing(e, rec))
        return out

    def listing(self, e: int, rec: dict[str, Any]) -> "listing.Listing | None":
        """The IMAP listing bytes of ``e`` (``store.listing``); rendered from the summary
        when the Email was stored before the ``imapw`` table existed.  None: no summary."""
        raw = self.kv.get("imapw", K.email(self.a, e))
        got = listing.parse(raw) if raw is not None else None
        if got is not None and got.recv == int(rec["recv"]):
            return got
        summary = self.summary(e)
        return None if summary is None else listing.render(summary, int(rec["recv"]))

    def jmap_listing(self, e: int) -> dict[str, Any] | None:
        """The JMAP listing record of ``e`` (``mime.jmap_listing``; None: not stored)."""
        raw = self.kv.get("jmapw", K.email(self.a, e))
        return None if raw is None else codec.loads_small_ints(raw)  # strings, lists, booleans

    def jmap_listings(self, es: Sequence[int]) -> list[dict[str, Any] | None]:
        """``jmap_listing(e)`` for each of ``es``, in one KV ``get_many``."""
        raws = self.kv.get_many("jmapw", [K.email(self.a, e) for e in es])
        return [None if raw is None else codec.loads_small_ints(raw) for raw in raws]

    def blob(self, sha_hex: str) -> bytes | None:
        try:
            sha = bytes.fromhex(sha_hex)
        except ValueError:
            return None
        return self.blobs.get(self.a, sha)

    def blob_range(self, sha_hex: str, start: int, length: int) -> bytes | None:
        """``length`` octets of the blob from ``start`` (IMAP ``BODY[]<partial>``, JMAP
        Range downloads): from S3 only those octets are fetched."""
        try:
            sha = bytes.fromhex(sha_hex)
        except ValueError:
            return None
        return self.blobs.get_range(self.a, sha, start, length)

    def blob_info(self, sha_hex: str) -> dict[str, Any] | None:
        try:
            sha = bytes.fromhex(sha_hex)
        except ValueError:
            return None
        raw = self.kv.get("blobref", K.blob(self.a, sha))
        return None if raw is None else codec.loads(raw)

    def text(self, e: int) -> tuple[str, str]:
        """(header text, body text) decoded at ingest, for search without re-parsing."""
        return _text(self.kv.get("text", K.email(self.a, e)))

    def imported(self, m: int, key: bytes) -> int | None:
        """The Email a previous import stored under ``key`` in ``m``, if still there."""
        raw = self.kv.get("dedup", K.dedup(self.a, m, key))
        if raw is None:
            return None
        e = K.un64(raw)
        rec = self.email(e)
        if rec is None or str(m) not in rec["mbx"]:
            return None
        return e

    def emails_by_message_id(self, message_id: str) -> list[int]:
        """Emails whose Message-ID, In-Reply-To or References name ``message_id`` (the
        threading index); the caller compares what it needs (migration de-duplication)."""
        p = K.msgref(self.a, message_id)
        return [K.un64(k, len(p)) for k, _v in self.kv.range("msgref", p, prefix_end(p))]

    def migration_state(self, m: int) -> dict[str, Any] | None:
        """What ``dualmail migrate`` recorded about mailbox ``m`` (None: not migrated)."""
        rec = self.mailbox(m)
        st = rec.get("migrated") if rec else None
        return dict(st) if isinstance(st, dict) else None

    def raw_message(self, e: int) -> bytes | None:
        rec = self.email(e)
        return None if rec is None else self.blob(rec["blob"])

    def thread(self, t: int) -> dict[str, Any] | None:
        raw = self.kv.get("thread", K.thread(self.a, t))
        return None if raw is None else codec.loads(raw)

    def threads(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` JMAP-visible threads (number, record), by number."""
        p = K.acct(self.a)
        out = []
        for k, v in self.kv.range("thread", p, prefix_end(p)):
            rec = codec.loads(v)
            if any(x[2] for x in rec["emails"]):
                out.append((K.un64(k, 4), rec))
                if len(out) >= limit:
                    break
        return out

    # -- IMAP views ----------------------------------------------------------------

    def deleted_uids(self, m: int) -> list[int]:
        """UIDs of ``m`` whose membership is ``\\Deleted``, ascending; O(those)."""
        p = K.mailbox(self.a, m)
        return [K.un32(k, 8) for k, _v in self.kv.range("deleted", p, prefix_end(p))]

    def deleted_size(self, m: int) -> int:
        """Sum of RFC822.SIZE of the ``\\Deleted`` messages of ``m`` (RFC 9208 §4.1.4
        DELETED-STORAGE); reads the ``deleted`` index, so costs the number of them."""
        p = K.mailbox(self.a, m)
        total = 0
        for _k, v in self.kv.range("deleted", p, prefix_end(p)):
            rec = self.email(K.un64(v))
            if rec is not None:
                total += int(rec["size"])
        return total

    def uids(self, m: int, expect: int | None = None) -> array:
        """Every UID in mailbox ``m``, ascending (IMAP SELECT builds its seq<->UID map;
        ``expect``: the mailbox's message count, if the caller has it)."""
        p = K.mailbox(self.a, m)
        out = array("I")
        for k, _v in self.kv.range("uid", p, prefix_end(p), expect=expect):
            out.append(K.un32(k, 8))
        return out

    def uid_items(self, m: int, lo: int = 1, hi: int = 0xFFFFFFFF) -> Iterator[tuple[int, int]]:
        """(uid, email) pairs with lo <= uid <= hi, ascending."""
        start = K.uid(self.a, m, lo)
        stop = K.uid(self.a, m, hi) + b"\x00"
        for k, v in self.kv.range("uid", start, stop):
            yield K.un32(k, 8), K.un64(v)

    def email_at(self, m: int, u: int) -> int | None:
        raw = self.kv.get("uid", K.uid(self.a, m, u))
        return None if raw is None else K.un64(raw)

    def emails_at(self, m: int, uids: Sequence[int]) -> list[int | None]:
        """``email_at(m, u)`` for each of ``uids``, in one KV ``get_many``."""
        raws = self.kv.get_many("uid", [K.uid(self.a, m, u) for u in uids])
        return [None if raw is None else K.un64(raw) for raw in raws]

    def changed_since(self, m: int, modseq: int) -> list[tuple[int, int]]:
        """(uid, modseq) of memberships of ``m`` changed after ``modseq``; O(changes)."""
        start = K.mbx_seq(self.a, m, modseq + 1, 0)
        p = K.mailbox(self.a, m)
        out = [(K.un32(k, 16), K.un64(k, 8)) for k, _v in self.kv.range("mbxmod", start, prefix_end(p))]
        out.sort()
        return out

    def expunged_since(self, m: int, modseq: int) -> list[int]:
        """UIDs expunged from ``m`` after ``modseq`` (VANISHED), ascending; O(expunges)."""
        start = K.mbx_seq(self.a, m, modseq + 1, 0)
        p = K.mailbox(self.a, m)
        return sorted(K.un32(k, 16) for k, _v in self.kv.range("expunged", start, prefix_end(p)))

    def expunge_floor(self, m: int) -> int:
        """Expunges at or below this modseq may have been compacted away."""
        rec = self.mailbox(m)
        return int(rec.get("expfloor", 0)) if rec else 0

    # -- JMAP views ----------------------------------------------------------------

    def received_order(self, m: int | None, *, reverse: bool = True) -> Iterator[int]:
        """JMAP-visible emails (of mailbox ``m``, or the account) by receivedAt."""
        if m is None:
            p = K.acct(self.a)
            table = "recvall"
        else:
            p = K.mailbox(self.a, m)
            table = "recv"
        for k, _v in self.kv.range(table, p, prefix_end(p), reverse=reverse):
            yield K.un64(k, len(k) - 8)

    def received_threads(self, m: int | None, *, reverse: bool = True,
                         expect: int | None = None) -> Iterator[tuple[int, int, int]]:
        """(receivedAt, email, thread) of ``received_order``, lazily, in index order
        (``reverse``: receivedAt and email both descending).  The thread comes from the
        index value, or from the Email record when the value is empty (an older store).
        ``expect``: about how many the caller will read (``kv.range``)."""
        if m is None:
            p = K.acct(self.a)
            table = "recvall"
        else:
            p = K.mailbox(self.a, m)
            table = "recv"
        n = len(p)
        for k, v in self.kv.range(table, p, prefix_end(p), reverse=reverse, expect=expect):
            e = K.un64(k, n + 8)
            if len(v) == 8:
                t = K.un64(v)
            else:
                rec = self.email(e)
                if rec is None:
                    continue
                t = int(rec["thread"])
            yield K.un64(k, n), e, t

    def changes(self, kind: str, since: int, limit: int | None = None, *, after: int = 0) -> Changes:
        """Objects of ``kind`` changed since modseq ``since`` (RFC 8620 §5.2); O(changes).

        A page may end inside one transaction: then ``new_state``/``new_after`` say "all
        of modseq new_state - 1 plus the objects of new_state numbered up to new_after",
        and the next page passes them back as ``since``/``after``.  Positions are integers
        here; ``dualmail.jmap.state`` is the one place that renders them as state strings.
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0 \
                or isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise CannotCalculateChangesError("malformed state")
        since_ms = since
        after = after if after > 0 else -1
        kb = KINDS[kind]
        current = self.state(kind)
        acct_rec = self.account()
        floor = int(acct_rec.get("floor", {}).get(kind, 0))
        if since_ms > current:
            raise CannotCalculateChangesError("state is newer than the server's")
        if since_ms < floor:
            raise CannotCalculateChangesError("the change log no longer reaches that state")
        if after >= 0:
            start = K.changelog(self.a, kb, since_ms, after + 1)
        else:
            start = K.changelog(self.a, kb, since_ms + 1)
        stop = prefix_end(K.acct(self.a) + kb)
        created: list[int] = []
        updated: list[int] = []
        destroyed: list[int] = []
        only_counts = True
        n = 0
        last: tuple[int, int] | None = None
        has_more = False
        for k, v in self.kv.range("changelog", start, stop):
            s = K.un64(k, 5)
            obj = K.un64(k, 13)
            if limit is not None and n >= limit:
                has_more = True
                break
            ent = codec.loads(v)
            op = ent["op"]
            c = ent.get("c")
            last = (s, obj)

            def unseen(at: int | None) -> bool:
                # Did the change at modseq ``at`` happen after the client's state?  Inside
                # a paged transaction ("S.obj") objects after ``obj`` are still unseen.
                if at is None:
                    return False
                return at > since_ms or (after >= 0 and at == since_ms and obj > after)

            if op == "d":
                if unseen(ent.get("c0", c)):
                    continue  # created and destroyed since: the client never saw it
                destroyed.append(obj)
            elif unseen(c):
                created.append(obj)
            else:
                updated.append(obj)
                if unseen(int(ent.get("p", 0))):
                    only_counts = False
            n += 1
        if has_more and last is not None:
            new_state, new_after = last
        else:
            new_state, new_after = current, 0
        return Changes(created, updated, destroyed, new_state, new_after, has_more,
                       only_counts and bool(updated))

    # -- data types kept outside the mail model (Identity, VacationResponse) ------------

    def objects(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        """Every stored object of ``kind`` as (number, record), by number."""
        p = K.obj(self.a, KINDS[kind])
        return [(K.un64(k, 5), codec.loads(v)) for k, v in self.kv.range("object", p, prefix_end(p))]

    def get_object(self, kind: str, n: int) -> dict[str, Any] | None:
        raw = self.kv.get("object", K.obj(self.a, KINDS[kind], n))
        return None if raw is None else codec.loads(raw)

    def objects_created(self, kind: str) -> int:
        """How many objects of ``kind`` were ever created (0: none yet)."""
        return int(self.account().get("next", {}).get(KINDS[kind].decode(), 0))

    # -- uploads ------------------------------------------------------------------

    def uploads_before(self, cutoff: int, limit: int = 1000) -> list[str]:
        """Blobs (sha hex) whose upload mark is older than ``cutoff`` (epoch seconds);
        reads only those (the ``upload`` index), never every blob."""
        start = K.upload(self.a, 0)
        stop = K.upload(self.a, cutoff)
        out = []
        for k, _v in self.kv.range("upload", start, stop):
            out.append(k[12:].hex())
            if len(out) >= limit:
                break
        return out


@dataclass(slots=True)
class _Pending:
    kinds: set[str] = field(default_factory=set)
    mailboxes: set[int] = field(default_factory=set)
    log: dict[tuple[bytes, int], str] = field(default_factory=dict)
    counts_touched: set[int] = field(default_factory=set)
    freed: list[bytes] = field(default_factory=list)  # external blobs to delete after commit
    stored: list[bytes] = field(default_factory=list)  # external blobs referenced here


class PathIds:
    """Mailbox paths and the ids of the mailboxes along them, as last found (per Store,
    any thread).  Only a hint: ``ReadView.mailbox_by_path`` reads those mailboxes'
    records (one ``get_many``, where walking the path is one lookup per level and then a
    read of the record) and uses the ids only if each record still has that name under
    that parent in its own read view, so a rename or a delete is never missed."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._ids: dict[tuple[int, tuple[str, ...]], list[int]] = {}

    def get(self, account: int, path: list[str]) -> list[int] | None:
        return self._ids.get((account, tuple(path)))

    def put(self, account: int, path: list[str], ids: list[int]) -> None:
        if len(self._ids) >= self.max_entries:
            self._ids.clear()  # (rarely: the working set is a few paths per account)
        self._ids[(account, tuple(path))] = ids


def _path_holds(path: list[str], ids: list[int], raws: list[bytes | None]) -> bool:
    """Each record exists and is named ``path[i]`` under ``ids[i - 1]`` (0 at the top;
    INBOX in any case, as ``child`` finds it)."""
    parent = 0
    for name, m, raw in zip(path, ids, raws):
        if raw is None:
            return False
        rec = codec.loads(raw)
        want = "INBOX" if parent == 0 and name.upper() == "INBOX" else name
        if rec.get("name") != want or int(rec.get("parent", 0)) != parent or int(rec.get("id", m)) != m:
            return False
        parent = m
    return len(ids) == len(path)


class MailTxn(ReadView):
    """The one write transaction of an account (CONTRACT §4)."""

    def __init__(self, kv: KVWrite, account: int, blobs: "BlobStore | None" = None) -> None:
        super().__init__(kv, account, blobs)
        self.w: KVWrite = kv
        self._acct = self.account()
        self._modseq: int | None = None
        self._floor = 0  # raise_modseq: the modseq taken is above this
        self._p = _Pending()
        self._mbx_cache: dict[int, dict[str, Any]] = {}
        self._mbx_orig: dict[int, bytes] = {}
        # Thread records read or changed here (None: deleted); written once, at finish.
        self._thr_cache: dict[int, dict[str, Any] | None] = {}
        self._thr_dirty: set[int] = set()

    # -- the modseq ------------------------------------------------------------------

    @property
    def modseq(self) -> int:
        """This transaction's modseq, taken at first use: exactly the next value."""
        if self._modseq is None:
            self._modseq = max(int(self._acct["modseq"]), self._floor) + 1
            if self._modseq >= 2**53:
                raise errors.LimitError("modseq space exhausted")
        return self._modseq

    @property
    def changed(self) -> bool:
        return self._modseq is not None

    @property
    def changed_kinds(self) -> frozenset[str]:
        """The JMAP types this transaction changed (complete after commit)."""
        return frozenset(self._p.kinds)

    def _next(self, kind: str) -> int:
        nxt = self._acct.setdefault("next", {})
        n = int(nxt.get(kind, 0)) + 1
        nxt[kind] = n
        return n

    def account(self) -> dict[str, Any]:
        a = getattr(self, "_acct", None)
        return a if a is not None else ReadView.account(self)

    def remember_spellings(self, flags: Iterable[str]) -> None:
        """Keep the IMAP spelling of keywords used for the first time (model/keywords.py).

        Stored in the account record (``kwspell``: lowercase -> spelling), which is
        written back only by a changing transaction: the first use of a keyword changes
        a message, so its spelling is committed with it, in the same transaction.
        """
        known = self._acct.get("kwspell") or {}
        new = kwmod.new_spellings(flags, known)
        if new:
            self._acct["kwspell"] = {**known, **new}

    def set_orphan_subscriptions(self, names: Iterable[str]) -> None:
        """Replace the subscriptions of missing names (see ``orphan_subscriptions``)."""
        new = sorted(set(names))
        if new == self.orphan_subscriptions():
            return
        self.modseq  # the account record is written back only by a changing transaction
        if new:
            self._acct["subs"] = new
        else:
            self._acct.pop("subs", None)

    # -- quota (RFC 9425, RFC 9208) ----------------------------------------------------

    def _usage_list(self) -> list[int]:
        """The account's usage record, recounted first if the store predates quotas: call
        before the Email being added or removed touches the email table."""
        use = self._acct.get("use")
        if use is None:
            u = recount_usage(self)
            use = self._acct["use"] = [u["octets"], u["count"]]
        return use

    def check_quota(self, octets: int, count: int) -> None:
        """Refuse (OverQuotaError) an addition that would take usage over a hard limit;
        nothing is written before this check, so a refused Email leaves no trace."""
        limits = self.quota_limits()
        if not limits:
            return
        use = self._usage_list()
        if octets > 0 and "octets" in limits and use[0] + octets > limits["octets"]:
            raise errors.OverQuotaError(
                f"storage quota exceeded ({use[0] + octets} of {limits['octets']} octets)")
        if count > 0 and "count" in limits and use[1] + count > limits["count"]:
            raise errors.OverQuotaError(f"message quota exceeded ({limits['count']} messages)")

    def _use(self, octets: int, count: int) -> None:
        use = self._usage_list()
        use[0] += octets
        use[1] += count
        self.modseq  # the account record is written back only by a changing transaction
        for resource in self.quota_limits():
            self._log("Quota", QUOTA_RESOURCES[resource], "k")  # "used" only (RFC 9425 §4.3)

    def set_quota(self, resource: str, limit: int | None) -> bool:
        """Set (or with None remove) the hard limit of ``resource`` ("octets" or "count").
        The Quota object exists while its limit does.  True if anything changed."""
        if resource not in QUOTA_RESOURCES:
            raise errors.CannotError(f"unknown quota resource {resource!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or not 0 <= limit < 2**53):
            raise errors.CannotError("a quota limit is an integer from 0 to 2^53-1")
        limits = self.quota_limits()
        if limits.get(resource) == limit:
            return False
        n = QUOTA_RESOURCES[resource]
        self._usage_list()  # usage is exact from here on
        op = "c" if resource not in limits else ("d" if limit is None else "u")
        if limit is None:
            del limits[resource]
        else:
            limits[resource] = limit
        if limits:
            self._acct["quota"] = limits
        else:
            self._acct.pop("quota", None)
        self._log("Quota", n, op)
        return True

    def _log(self, kind: str, obj: int, op: str) -> None:
        """Record one object change; several changes of one object in a transaction merge.

        Ops: c created, u updated, k counts-only update, d destroyed; x = created and
        destroyed within this transaction (nobody can have seen it).
        """
        self.modseq
        self._p.kinds.add(kind)
        key = (KINDS[kind], obj)
        prev = self._p.log.get(key)
        if prev is None:
            new = op
        elif op == "d":
            new = "x" if prev in ("c", "x") else "d"
        elif op == "c":
            new = "u" if prev == "d" else "c"
        elif op == "u":
            new = prev if prev in ("c", "x", "d") else "u"
        else:  # "k"
            new = prev
        self._p.log[key] = new

    def _flush_log(self) -> None:
        """One log entry per object, at its last change: {op, c: created-at, c0: first
        created-at if different, p: last property change}; the object's older entry is
        removed (keys.py)."""
        s = self.modseq
        for (kb, obj), op in self._p.log.items():
            lk = K.chlast(self.a, kb, obj)
            old = self.w.get("chlast", lk)
            prev: dict[str, Any] = {}
            if old is not None:
                ok = K.changelog(self.a, kb, K.un64(old), obj)
                raw = self.w.get("changelog", ok)
                if raw is not None:
                    prev = codec.loads(raw)
                    self.w.delete("changelog", ok)
            prev_op = prev.get("op")
            ent: dict[str, Any] = {}
            if op == "x":
                if prev_op is None:  # created and destroyed here: nobody saw it
                    self.w.delete("chlast", lk)
                    continue
                op = "d"
            # c: the latest (re)creation; c0: the first one (an Email or Thread that
            # becomes invisible and visible again is destroyed and re-created for JMAP).
            first = prev.get("c0", prev.get("c", 0)) if prev else None
            if op == "c":
                ent = {"op": "c", "c": s, "p": s}
            elif op == "u":
                ent = {"op": "c" if prev_op == "c" else "u", "p": s}
            elif op == "k":
                ent = {"op": prev_op if prev_op in ("c", "u") else "k"}
                if "p" in prev:
                    ent["p"] = prev["p"]
            else:
                ent = {"op": "d"}
            if op != "c" and "c" in prev:
                ent["c"] = prev["c"]
            if first is not None and first != ent.get("c"):
                ent["c0"] = first
            self.w.put("changelog", K.changelog(self.a, kb, s, obj), codec.dumps(ent))
            self.w.put("chlast", lk, K.u64(s))
        for kind in self._p.kinds:
            self.w.put("state", K.state(self.a, KINDS[kind]), K.u64(s))

    def finish(self) -> Commit | None:
        """Write the account record, log and caches; the caller commits the KV transaction."""
        self._flush_threads()
        for m, rec in self._mbx_cache.items():
            data = codec.dumps(rec)
            if data != self._mbx_orig.get(m):
                self.w.put("mailbox", K.mailbox(self.a, m), data)
        if self._modseq is None:
            return None
        for m in self._p.counts_touched:
            self._log("Mailbox", m, "k")
        self._flush_log()
        self._acct["modseq"] = self._modseq
        self.w.put("account", K.acct(self.a), codec.dumps(self._acct))
        return Commit(self.a, self._modseq, frozenset(self._p.kinds), frozenset(self._p.mailboxes))

    # -- thread records (cached for the transaction) -------------------------------------

    def thread(self, t: int) -> dict[str, Any] | None:
        if t in self._thr_cache:
            return self._thr_cache[t]
        rec = ReadView.thread(self, t)
        self._thr_cache[t] = rec
        return rec

    def threads(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        self._flush_threads()
        return ReadView.threads(self, limit)

    def _put_thread(self, t: int, rec: dict[str, Any] | None) -> None:
        self._thr_cache[t] = rec
        self._thr_dirty.add(t)

    def _flush_threads(self) -> None:
        for t in sorted(self._thr_dirty):
            rec = self._thr_cache[t]
            if rec is None:
                self.w.delete("thread", K.thread(self.a, t))
            else:
                self.w.put("thread", K.thread(self.a, t), codec.dumps(rec))
        self._thr_dirty.clear()

    # -- mailbox records (cached for the transaction) ------------------------------------

    def mailbox(self, m: int) -> dict[str, Any] | None:
        rec = self._mbx_cache.get(m)
        if rec is None:
            raw = self.kv.get("mailbox", K.mailbox(self.a, m))
            if raw is not None:
                rec = codec.loads(raw)
                self._mbx_cache[m] = rec
                self._mbx_orig[m] = bytes(raw)
        return rec

    def mailboxes(self) -> list[dict[str, Any]]:
        out = []
        for rec in ReadView.mailboxes(self):
            out.append(self._mbx_cache.get(int(rec["id"]), rec))
        return out

    def _touch_mailbox(self, m: int) -> dict[str, Any]:
        """Something visible in ``m`` changed: its HIGHESTMODSEQ moves to this modseq."""
        rec = self.require_mailbox(m)
        rec["hms"] = self.modseq
        self._p.mailboxes.add(m)
        return rec

    # -- mailboxes -------------------------------------------------------------------

    def _check_name(self, name: object) -> str:
        if not isinstance(name, str) or not name or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise errors.InvalidNameError("mailbox name must be 1-255 octets")
        if SEPARATOR in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            raise errors.InvalidNameError("mailbox name contains the separator or a control character")
        return name

    def _check_role(self, role: str | None, m: int | None) -> None:
        if role is None:
            return
        if role not in ROLES:
            raise errors.RoleError(f"unknown role {role!r}")
        other = self.role_mailbox(role)
        if other is not None and other != m:
            raise errors.RoleError(f"role {role!r} is already used by another mailbox")

    def create_mailbox(self, name: str, parent: int = 0, *, role: str | None = None,
                       subscribed: bool = True, sort_order: int = 0) -> int:
        name = self._check_name(name)
        if parent:
            self.require_mailbox(parent)
        if self.child(parent, name) is not None:
            raise errors.AlreadyExistsError("a mailbox of that name exists", name=name)
        if parent == 0 and name.upper() == "INBOX":
            name = "INBOX"
            role = role or "inbox"
        self._check_role(role, None)
        m = self._next("M")
        s = self.modseq
        rec = {
            "id": m, "name": name, "parent": parent, "role": role, "sub": bool(subscribed),
            "sort": int(sort_order), "uidvalidity": (s % 0xFFFFFFFF) or 1, "uidnext": 1,
            "hms": s, "created": s, "counts": dict(_ZERO_COUNTS), "ix": 1,
        }
        self._mbx_cache[m] = rec
        self.w.put("mbxname", K.mbxname(self.a, parent, name), K.u32(m))
        self._log("Mailbox", m, "c")
        self._p.mailboxes.add(m)
        return m

    def update_mailbox(self, m: int, *, name: str | None = None, parent: int | None = None,
                       role: Any = ..., subscribed: bool | None = None,
                       sort_order: int | None = None) -> None:
        """Rename / move / change role, subscription or order.  The id and UIDVALIDITY stay."""
        rec = self.require_mailbox(m)
        changed = False
        new_name = rec["name"] if name is None else self._check_name(name)
        new_parent = rec["parent"] if parent is None else parent
        if (new_name, new_parent) != (rec["name"], rec["parent"]):
            if rec.get("role") == "inbox" and rec["parent"] == 0:
                raise errors.CannotError("INBOX cannot be renamed this way")
            if new_parent:
                self.require_mailbox(new_parent)
                anc = new_parent
                depth = 0
                while anc and depth < 1000:
                    if anc == m:
                        raise errors.CycleError("a mailbox cannot be moved under itself")
                    anc = self.require_mailbox(anc)["parent"]
                    depth += 1
            if new_parent == 0 and new_name.upper() == "INBOX":
                raise errors.AlreadyExistsError("INBOX exists")
            other = self.child(new_parent, new_name)
            if other is not None and other != m:
                raise errors.AlreadyExistsError("a mailbox of that name exists", name=new_name)
            self.w.delete("mbxname", K.mbxname(self.a, rec["parent"], rec["name"]))
            self.w.put("mbxname", K.mbxname(self.a, new_parent, new_name), K.u32(m))
            rec["name"], rec["parent"] = new_name, new_parent
            changed = True
        if role is not ... and role != rec.get("role"):
            if rec.get("role") == "inbox":
                raise errors.RoleError("the inbox role cannot be changed")
            self._check_role(role, m)
            rec["role"] = role
            changed = True
        if subscribed is not None and bool(subscribed) != rec["sub"]:
            rec["sub"] = bool(subscribed)
            changed = True
        if sort_order is not None and int(sort_order) != rec["sort"]:
            rec["sort"] = int(sort_order)
            changed = True
        if changed:
            self._log("Mailbox", m, "u")
            self._p.mailboxes.add(m)

    def delete_mailbox(self, m: int, *, remove_emails: bool) -> None:
        """Delete ``m``; its memberships are expunged (emails left in no mailbox are destroyed)."""
        rec = self.require_mailbox(m)
        if rec.get("role") == "inbox" and rec["parent"] == 0:
            raise errors.CannotError("INBOX cannot be deleted")
        if self.children(m):
            raise errors.HasChildrenError("the mailbox has child mailboxes")
        if rec["counts"]["msgs"] and not remove_emails:
            raise errors.HasEmailError("the mailbox holds emails")
        for u, e in list(self.uid_items(m)):
            self.remove_membership(e, m, tombstone=False)
        p = K.mailbox(self.a, m)
        for table in ("expunged", "mbxmod", "dedup", "metadata"):
            for k, _v in list(self.w.range(table, p, prefix_end(p))):
                self.w.delete(table, k)
        self.w.delete("mbxname", K.mbxname(self.a, rec["parent"], rec["name"]))
        self.w.delete("urlauthkey", p)
        self.w.delete("mailbox", p)
        self._mbx_cache.pop(m, None)
        self._mbx_orig.pop(m, None)
        self._p.counts_touched.discard(m)
        self._log("Mailbox", m, "d")
        self._p.mailboxes.add(m)

    # -- blobs -------------------------------------------------------------------------

    def put_blob(self, data: bytes, *, content_type: str | None = None, uploaded: int | None = None,
                 digest: bytes | None = None) -> str:
        """Store ``data`` content-addressed; one more reference (or an upload mark).

        ``digest``: SHA-256 of ``data`` computed ahead (by the importer's parsers)."""
        sha = digest if digest is not None else hashlib.sha256(data).digest()
        bk = K.blob(self.a, sha)
        raw = self.w.get("blobref", bk)
        info = codec.loads(raw) if raw is not None else {"refs": 0, "size": len(data)}
        if self.blobs.external:
            self._p.stored.append(sha)
        if raw is None:  # S3: uploaded now unless staged ahead (before this commit, either way)
            self.blobs.put(self.a, sha, data)
        if uploaded is not None:
            if info.get("uploaded") is not None:
                self.w.delete("upload", K.upload(self.a, int(info["uploaded"]), sha))
            info["uploaded"] = int(uploaded)
            self.w.put("upload", K.upload(self.a, int(uploaded), sha), b"")
            if content_type:
                info["type"] = content_type
        else:
            info["refs"] = int(info["refs"]) + 1
        self.w.put("blobref", bk, codec.dumps(info))
        return sha.hex()

    def ref_blob(self, sha_hex: str) -> None:
        bk = K.blob(self.a, bytes.fromhex(sha_hex))
        raw = self.w.get("blobref", bk)
        if raw is None:
            raise errors.NotFoundError("no such blob")
        info = codec.loads(raw)
        info["refs"] = int(info["refs"]) + 1
        self.w.put("blobref", bk, codec.dumps(info))

    def unref_blob(self, sha_hex: str) -> None:
        bk = K.blob(self.a, bytes.fromhex(sha_hex))
        raw = self.w.get("blobref", bk)
        if raw is None:
            return
        info = codec.loads(raw)
        info["refs"] = max(0, int(info["refs"]) - 1)
        if info["refs"] == 0 and not info.get("uploaded"):
            self._free_blob(bk)
        else:
            self.w.put("blobref", bk, codec.dumps(info))

    def _free_blob(self, bk: bytes) -> None:
        """The last reference went: the KV blob row goes in this transaction; an external
        (S3) object only after it commits (``freed_blobs``, ``Store``)."""
        self.w.delete("blobref", bk)
        sha = bytes(bk[4:])
        if self.blobs.external:
            self._p.freed.append(sha)
        else:
            self.blobs.delete(self.a, sha)

    @property
    def freed_blobs(self) -> list[bytes]:
        """External blobs whose last reference this transaction dropped."""
        return self._p.freed

    @property
    def stored_blobs(self) -> list[bytes]:
        """External blobs this transaction stored or referenced (``put_blob``)."""
        return self._p.stored

    def make_upload_room(self, size: int, limit: int, keep: str | None = None,
                         max_count: int = 1000) -> int:
        """RFC 8620 §6.1: when an upload would take the account's pending uploads (blobs
        with an upload mark that no Email references) over ``limit`` octets, drop them in
        upload order, oldest first, until ``size`` more fits.  Reads only the upload index
        (at most ``max_count`` pending uploads are kept, so it stays short), never every
        blob.  ``keep``: the blob being uploaded (a re-upload is not counted twice).
        Returns how many were dropped."""
        pending: list[tuple[str, int]] = []
        total = 0
        for k, _v in self.kv.range("upload", K.upload(self.a, 0), prefix_end(K.acct(self.a))):
            sha_hex = bytes(k[12:]).hex()
            raw = self.w.get("blobref", K.blob(self.a, bytes.fromhex(sha_hex)))
            info = codec.loads(raw) if raw is not None else None
            if sha_hex == keep or info is None or int(info.get("refs", 0)) > 0:
                continue
            n = int(info.get("size") or len(self.blob(sha_hex) or b""))
            pending.append((sha_hex, n))
            total += n
        dropped = 0
        for i, (sha_hex, n) in enumerate(pending):
            if total + size <= limit and len(pending) - i < max_count:
                break
            self.drop_upload(sha_hex)
            total -= n
            dropped += 1
        return dropped

    def drop_upload(self, sha_hex: str) -> bool:
        """Forget an upload mark; the blob goes when no Email references it."""
        bk = K.blob(self.a, bytes.fromhex(sha_hex))
        raw = self.w.get("blobref", bk)
        if raw is None:
            return False
        info = codec.loads(raw)
        when = info.pop("uploaded", None)
        if when is not None:
            self.w.delete("upload", K.upload(self.a, int(when), bytes.fromhex(sha_hex)))
        info.pop("type", None)
        if int(info["refs"]) == 0:
            self._free_blob(bk)
        else:
            self.w.put("blobref", bk, codec.dumps(info))
        return True

    # -- counters ----------------------------------------------------------------------

    def _apply(self, m: int, thread: int, before: tuple | None, after: tuple | None) -> None:
        """Move mailbox ``m``'s counters from one membership contribution to another."""
        if before == after:
            return
        rec = self.require_mailbox(m)
        c = rec["counts"]
        jmap_before = (c["total"], c["unread"], c["threads"], c["unreadThreads"])
        for sign, con in ((-1, before), (1, after)):
            if con is None:
                continue
            msgs, unseen, deleted, size, vis, unread = con
            c["msgs"] += sign * msgs
            c["unseen"] += sign * unseen
            c["deleted"] += sign * deleted
            c["size"] += sign * size
            if vis:
                c["total"] += sign
                c["unread"] += sign * (1 if unread else 0)
        # per (mailbox, thread) counts drive totalThreads / unreadThreads
        tb = (1 if before and before[4] else 0, 1 if before and before[4] and before[5] else 0)
        ta = (1 if after and after[4] else 0, 1 if after and after[4] and after[5] else 0)
        if tb != ta:
            tk = K.mbxthread(self.a, m, thread)
            raw = self.w.get("mbxthread", tk)
            cnt, unr = codec.loads(raw) if raw is not None else (0, 0)
            ncnt, nunr = cnt - tb[0] + ta[0], unr - tb[1] + ta[1]
            c["threads"] += (ncnt > 0) - (cnt > 0)
            c["unreadThreads"] += (nunr > 0) - (unr > 0)
            if ncnt <= 0:
                self.w.delete("mbxthread", tk)
            else:
                self.w.put("mbxthread", tk, codec.dumps([ncnt, nunr]))
        if (c["total"], c["unread"], c["threads"], c["unreadThreads"]) != jmap_before:
            self._p.counts_touched.add(m)

    def _set_recv_index(self, e: int, rec: dict[str, Any], before: list[int], after: list[int]) -> None:
        r = int(rec["recv"])
        for m in set(before) - set(after):
            self.w.delete("recv", K.recv(self.a, m, r, e))
        t = K.u64(int(rec["thread"]))  # index values carry the thread (collapseThreads)
        for m in set(after) - set(before):
            self.w.put("recv", K.recv(self.a, m, r, e), t)
        if before and not after:
            self.w.delete("recvall", K.recvall(self.a, r, e))
        elif after and not before:
            self.w.put("recvall", K.recvall(self.a, r, e), t)

    def _visibility_changed(self, e: int, rec: dict[str, Any], was: list[int], now: list[int]) -> None:
        """Log the Email and its Thread after a change of JMAP-visible mailboxIds."""
        self._set_recv_index(e, rec, was, now)
        if was and not now:
            self._log("Email", e, "d")
        elif now and not was:
            self._log("Email", e, "c")
        elif was != now:
            self._log("Email", e, "u")
        if bool(was) != bool(now):
            self._thread_visibility(int(rec["thread"]), e, bool(now))

    # -- IMAP-only per-mailbox data ------------------------------------------------------

    def set_urlauth_key(self, m: int, key: bytes | None) -> None:
        """Store (None: delete) the URLAUTH access key of mailbox ``m``.  Not JMAP-visible:
        takes no modseq and logs nothing, so no state string moves (RFC 4467 §3)."""
        if key is None:
            self.w.delete("urlauthkey", K.mailbox(self.a, m))
        else:
            self.w.put("urlauthkey", K.mailbox(self.a, m), key)

    def _stamp_saved(self, m: int, u: int) -> None:
        """RFC 8514 save date of a new membership, in the transaction that makes it."""
        self.w.put("savedate", K.uid(self.a, m, u), K.u64(int(time.time())))

    # -- emails ------------------------------------------------------------------------

    def _put_email(self, e: int, rec: dict[str, Any]) -> None:
        rec["modseq"] = self.modseq
        self.w.put("email", K.email(self.a, e), codec.dumps(rec))
        self._imapidx_put(e, rec)

    def _set_membership_modseq(self, m: int, u: int, old: int | None) -> int:
        s = self.modseq
        if old is not None and old != s:
            self.w.delete("mbxmod", K.mbx_seq(self.a, m, old, u))
        self.w.put("mbxmod", K.mbx_seq(self.a, m, s, u), b"")
        return s

    def _allocate_uid(self, m: int) -> int:
        rec = self._touch_mailbox(m)
        u = int(rec["uidnext"])
        if u >= 0xFFFFFFFF:
            raise errors.LimitError("UID space of the mailbox exhausted")
        rec["uidnext"] = u + 1
        return u

    def create_email(self, raw: bytes, summary: dict[str, Any], mailboxes: Iterable[int],
                     keywords: Iterable[str] = (), received: int = 0,
                     deleted: bool = False, blob_sha: str | None = None,
                     encoded: "EncodedSummary | None" = None,
                     digest: bytes | None = None,
                     at_uids: dict[int, int] | None = None) -> tuple[int, dict[int, int]]:
        """A new Email (APPEND, import, delivery, Email/set create): (email, {mailbox: uid}).

        ``encoded`` is ``encode_summary(summary)`` made ahead of time (the importer makes it
        in its parsing processes); then ``summary`` needs only the threading fields.
        ``digest`` is the SHA-256 of ``raw`` when already computed (there too).
        ``at_uids``: the UID to give in each mailbox instead of its UIDNEXT (migration
        only, see ``place_uid``).
        """
        mbxs = sorted(set(mailboxes))
        if not mbxs:
            raise errors.CannotError("an email must be in at least one mailbox")
        for m in mbxs:
            self.require_mailbox(m)
        kws = sorted({k.lower() for k in keywords})
        for k in kws:
            if not kwmod.is_valid_keyword(k):
                raise errors.InvalidKeywordError(f"invalid keyword {k!r}")
        self.check_quota(len(raw), 1)
        self._usage_list()
        e = self._next("E")
        if blob_sha is None:
            blob_sha = self.put_blob(raw, digest=digest)
        else:
            self.ref_blob(blob_sha)
        t = self._assign_thread(e, summary, int(received))
        rec: dict[str, Any] = {
            "blob": blob_sha, "size": len(raw), "recv": int(received), "kw": kws,
            "mbx": {}, "thread": t, "created": self.modseq,
        }
        uids: dict[int, int] = {}
        for m in mbxs:
            u = self._allocate_uid(m) if at_uids is None else self.place_uid(m, at_uids[m])
            uids[m] = u
            rec["mbx"][str(m)] = [u, 1 if deleted else 0, self.modseq]
            self.w.put("uid", K.uid(self.a, m, u), K.u64(e))
            if deleted:
                self.w.put("deleted", K.uid(self.a, m, u), K.u64(e))
            self._set_membership_modseq(m, u, None)
            self._stamp_saved(m, u)
            self._apply(m, t, None, _contrib(rec, str(m)))
        enc = encoded if encoded is not None else encode_summary(summary)
        self.w.put("summary", K.email(self.a, e), enc.summary)
        self.w.put("text", K.email(self.a, e), enc.text)
        self.w.put("srch", K.email(self.a, e), enc.search)  # dualmail.search (keys.py "srch")
        if enc.listing:
            self.w.put("imapw", K.email(self.a, e), listing.record(int(received), enc.listing))
            self.w.put("imapb", K.email(self.a, e), listing.bodystructure_of(enc.listing))
        if enc.headers is None:
            self._imaph_put(e, raw)
        elif enc.headers:
            self.w.put("imaph", K.email(self.a, e), enc.headers)
        if enc.terms:
            self.w.put("ftstok", K.email(self.a, e), enc.terms)  # dualmail.search.fts
        if enc.jmap:
            self.w.put("jmapw", K.email(self.a, e), enc.jmap)  # mime.jmap_listing
        self._put_email(e, rec)
        self._visibility_changed(e, rec, [], jmap_mailbox_ids(rec))
        self._use(len(raw), 1)
        return e, uids

    def require_email(self, e: int) -> dict[str, Any]:
        rec = self.email(e)
        if rec is None:
            raise errors.NotFoundError("no such email", email=e)
        return rec

    def set_keywords(self, e: int, keywords: Iterable[str]) -> bool:
        """Replace an Email's keywords (shared by all its memberships).  True if changed."""
        rec = self.require_email(e)
        kws = sorted({k.lower() for k in keywords})
        for k in kws:
            if not kwmod.is_valid_keyword(k):
                raise errors.InvalidKeywordError(f"invalid keyword {k!r}")
        if kws == rec["kw"]:
            return False
        before = {m: _contrib(rec, m) for m in rec["mbx"]}
        rec["kw"] = kws
        t = int(rec["thread"])
        for mk, ms in rec["mbx"].items():
            m = int(mk)
            self._touch_mailbox(m)
            ms[2] = self._set_membership_modseq(m, ms[0], ms[2])
            self._apply(m, t, before[mk], _contrib(rec, mk))
        self._put_email(e, rec)
        if visible(rec):
            self._log("Email", e, "u")
        return True

    def set_deleted(self, e: int, m: int, flag: bool) -> bool:
        """Set or clear the per-membership ``\\Deleted`` flag (CONTRACT §2)."""
        rec = self.require_email(e)
        mk = str(m)
        ms = rec["mbx"].get(mk)
        if ms is None:
            raise errors.NotFoundError("the email is not in that mailbox")
        if bool(ms[1]) == bool(flag):
            return False
        was = jmap_mailbox_ids(rec)
        before = _contrib(rec, mk)
        ms[1] = 1 if flag else 0
        if flag:
            self.w.put("deleted", K.uid(self.a, m, ms[0]), K.u64(e))
        else:
            self.w.delete("deleted", K.uid(self.a, m, ms[0]))
        self._touch_mailbox(m)
        ms[2] = self._set_membership_modseq(m, ms[0], ms[2])
        self._apply(m, int(rec["thread"]), before, _contrib(rec, mk))
        self._put_email(e, rec)
        self._visibility_changed(e, rec, was, jmap_mailbox_ids(rec))
        return True

    def add_membership(self, e: int, m: int, *, at_uid: int | None = None, deleted: bool = False) -> int:
        """Put Email ``e`` into mailbox ``m`` with a new UID (IMAP COPY/MOVE, JMAP mailboxIds).

        Migration (``add_membership_as``): ``at_uid`` is the source's UID (``place_uid``)
        and ``deleted`` this membership's own ``\\Deleted``."""
        rec = self.require_email(e)
        self.require_mailbox(m)
        mk = str(m)
        if mk in rec["mbx"]:
            raise errors.AlreadyExistsError("the email is already in that mailbox")
        was = jmap_mailbox_ids(rec)
        u = self._allocate_uid(m) if at_uid is None else self.place_uid(m, at_uid)
        self._insert_membership(e, rec, m, u, deleted)
        self._put_email(e, rec)
        self._visibility_changed(e, rec, was, jmap_mailbox_ids(rec))
        return u

    def remove_membership(self, e: int, m: int, *, tombstone: bool = True) -> int:
        """Expunge Email ``e`` from mailbox ``m``; destroys the Email if none is left."""
        rec = self.require_email(e)
        mk = str(m)
        ms = rec["mbx"].get(mk)
        if ms is None:
            raise errors.NotFoundError("the email is not in that mailbox")
        was = jmap_mailbox_ids(rec)
        u = int(ms[0])
        self._apply(m, int(rec["thread"]), _contrib(rec, mk), None)
        self._touch_mailbox(m)
        self.w.delete("uid", K.uid(self.a, m, u))
        if ms[1]:
            self.w.delete("deleted", K.uid(self.a, m, u))
        self.w.delete("savedate", K.uid(self.a, m, u))
        self.w.delete("mbxmod", K.mbx_seq(self.a, m, ms[2], u))
        self._imapidx_drop(m, u)
        if tombstone:
            self.w.put("expunged", K.mbx_seq(self.a, m, self.modseq, u), b"")
        del rec["mbx"][mk]
        if not rec["mbx"]:
            self._visibility_changed(e, rec, was, [])
            self._destroy_record(e, rec)
        else:
            self._put_email(e, rec)
            self._visibility_changed(e, rec, was, jmap_mailbox_ids(rec))
        return u

    def duplicate_email(self, e: int, m: int) -> tuple[int, int]:
        """A new Email with the same bytes and keywords in ``m`` (COPY onto itself, CONTRACT §2)."""
        rec = self.require_email(e)
        summary = self.summary(e) or {}
        raw = self.blob(rec["blob"]) or b""
        e2, uids = self.create_email(raw, summary, [m], rec["kw"], int(rec["recv"]), blob_sha=rec["blob"])
        self._copy_search_data(e, e2)  # the stored summary has no text: copy it (search)
        return e2, uids[m]

    def destroy_email(self, e: int) -> None:
        """Remove every membership (each mailbox sees an expunge) and the Email itself."""
        rec = self.require_email(e)
        for mk in list(rec["mbx"]):
            self.remove_membership(e, int(mk))

    def _destroy_record(self, e: int, rec: dict[str, Any]) -> None:
        self._usage_list()
        self.w.delete("email", K.email(self.a, e))
        summary = self.summary(e) or {}
        self.w.delete("summary", K.email(self.a, e))
        self.w.delete("text", K.email(self.a, e))
        self.w.delete("srch", K.email(self.a, e))  # dualmail.search record
        self.w.delete("ftstok", K.email(self.a, e))  # its index terms
        self.w.delete("jmapw", K.email(self.a, e))  # its JMAP listing record
        self.w.delete("imapw", K.email(self.a, e))
        self.w.delete("imaph", K.email(self.a, e))
        self.w.delete("imapb", K.email(self.a, e))
        for mid in _ref_ids(summary):
            self.w.delete("msgref", K.msgref(self.a, mid, e))
        self.unref_blob(rec["blob"])
        t = int(rec["thread"])
        th = self.thread(t)
        if th is not None:
            th["emails"] = [x for x in th["emails"] if x[1] != e]
            self._put_thread(t, th if th["emails"] else None)
        self._use(-int(rec["size"]), -1)

    def expunge(self, m: int, uids: Iterable[int] | None = None) -> list[int]:
        """Remove the ``\\Deleted`` memberships of ``m`` (only among ``uids`` if given)."""
        rec = self.require_mailbox(m)
        if not rec["counts"]["deleted"]:
            return []
        wanted = None if uids is None else set(uids)
        out: list[int] = []
        p = K.mailbox(self.a, m)
        # the \Deleted index: O(deleted messages), not O(mailbox)
        for k, v in list(self.w.range("deleted", p, prefix_end(p))):
            u = K.un32(k, 8)
            if wanted is not None and u not in wanted:
                continue
            self.remove_membership(K.un64(v), m)
            out.append(u)
        return out

    def compact_expunges(self, m: int, upto: int) -> int:
        """Forget the expunge tombstones of ``m`` at or below modseq ``upto`` and raise its
        ``expunge_floor`` to it; how many were dropped.  Maintenance (an admin or cron path):
        takes no modseq, nothing visible changes.  A QRESYNC client whose modseq is below the
        floor then gets the RFC 7162 §3.2.5.2 fallback (every missing UID it knows of)."""
        rec = self.require_mailbox(m)
        upto = min(int(upto), int(rec["hms"]))
        if upto <= int(rec.get("expfloor", 0)):
            return 0
        start = K.mailbox(self.a, m)
        stop = K.mbx_seq(self.a, m, upto + 1, 0)
        dropped = 0
        for k, _v in list(self.w.range("expunged", start, stop)):
            self.w.delete("expunged", k)
            dropped += 1
        rec["expfloor"] = upto
        return dropped

    # -- IMAP per-membership indexes and header fields (store/imapidx.py) -------------

    def _imapidx_put(self, e: int, rec: dict[str, Any]) -> None:
        """Bring the ``imapm``/``unseen``/``imaps`` rows of every membership of ``e`` to
        ``rec`` (in this transaction: the same modseq as the record)."""
        srch: list[Any] = []

        def date_of() -> int:
            if not srch:
                raw = self.w.get("srch", K.email(self.a, e))
                srch.append(codec.loads(raw) if raw is not None else search_record(self.summary(e) or {}))
            return imapidx.sent_date(srch[0], int(rec["recv"]))
        for mk in rec["mbx"]:
            imapidx.put(self.w, self.a, e, rec, int(mk), date_of)

    def _imapidx_drop(self, m: int, u: int) -> None:
        imapidx.drop(self.w, self.a, m, u)

    def _imaph_put(self, e: int, raw: bytes) -> None:
        """The header fields clients ask for in HEADER.FIELDS, cut out once (write-once)."""
        value = listing.header_record(raw)
        if value:
            self.w.put("imaph", K.email(self.a, e), value)

    def upgrade_imap_index(self, m: int) -> bool:
        """Build the IMAP indexes of a mailbox stored before they existed and mark it
        indexed (``dualmail check --upgrade``).  Derived data: takes no modseq, nothing
        visible changes.  False if it was indexed already."""
        box = self.require_mailbox(m)
        if imapidx.ready(box):
            return False
        for u, e in list(self.uid_items(m)):
            rec = self.email(e)
            if rec is None or str(m) not in rec["mbx"]:
                continue
            raw = self.w.get("srch", K.email(self.a, e))
            srch = codec.loads(raw) if raw is not None else search_record(self.summary(e) or {})
            date = imapidx.sent_date(srch, int(rec["recv"]))
            imapidx.put(self.w, self.a, e, rec, m, lambda d=date: d)
        box["ix"] = 1
        return True

    def upgrade_header_fields(self) -> int:
        """Give the Emails stored before ``imaph`` existed their header-fields row, and
        rewrite version 1 rows as version 2 (``store.listing``; ``dualmail check
        --upgrade``); how many were written.  No modseq."""
        p = K.acct(self.a)
        done = 0
        for k, v in list(self.w.range("email", p, prefix_end(p))):
            cur = self.w.get("imaph", k)
            if cur is not None:
                new = listing.upgraded(cur)
                if new is not None:
                    self.w.put("imaph", k, new)
                    done += 1
                continue
            raw = self.blob(codec.loads(v)["blob"])
            value = listing.header_record(raw) if raw is not None else b""
            if value:
                self.w.put("imaph", k, value)
                done += 1
        return done

    def upgrade_bodystructures(self) -> int:
        """Give the Emails stored before ``imapb`` existed their BODYSTRUCTURE row, cut from
        their ``imapw`` record (``dualmail check --upgrade``); how many were written.  An
        Email without a readable ``imapw`` record keeps none: FETCH renders it.  No modseq."""
        p = K.acct(self.a)
        have = {k for k, _v in self.w.range("imapb", p, prefix_end(p))}
        done = 0
        for k, v in list(self.w.range("imapw", p, prefix_end(p))):
            if k in have:
                continue
            bs = listing.bodystructure_of_record(v)
            if bs is not None:
                self.w.put("imapb", k, bs)
                done += 1
        return done

    # -- search records (dualmail.search) ---------------------------------------------

    def _copy_search_data(self, src: int, dst: int) -> None:
        """Give a duplicated Email (COPY onto itself) the source's text and search record."""
        for table in ("text", "srch", "ftstok", "jmapw"):
            raw = self.w.get(table, K.email(self.a, src))
            if raw is not None:
                self.w.put(table, K.email(self.a, dst), raw)

    # -- threads (RFC 8621 §3) ----------------------------------------------------------

    def _assign_thread(self, e: int, summary: dict[str, Any], received: int) -> int:
        """Join the thread of a message this one references or that references it (either
        direction) when the base subjects (RFC 5256 §2.1) match; else start a thread."""
        base = _subject_hash(summary)
        refs = _ref_ids(summary)
        chosen: int | None = None
        for mid in refs:
            p = K.msgref(self.a, mid)
            for _k, v in self.w.range("msgref", p, prefix_end(p)):
                if v[8:16] == base:
                    t = K.un64(v)
                    if chosen is None or t < chosen:
                        chosen = t
                    break
        if chosen is None or self.thread(chosen) is None:
            chosen = self._next("T")
            th: dict[str, Any] = {"emails": []}
        else:
            th = self.thread(chosen) or {"emails": []}
        th["emails"].append([received, e, 0])
        th["emails"].sort()
        self._put_thread(chosen, th)
        val = K.u64(chosen) + base
        for mid in refs:
            self.w.put("msgref", K.msgref(self.a, mid, e), val)
        return chosen

    def _thread_visibility(self, t: int, e: int, vis: bool) -> None:
        th = self.thread(t)
        if th is None:
            return
        was = any(x[2] for x in th["emails"])
        for x in th["emails"]:
            if x[1] == e:
                x[2] = 1 if vis else 0
        now = any(x[2] for x in th["emails"])
        self._put_thread(t, th)
        if was and not now:
            self._log("Thread", t, "d")
        elif now and not was:
            self._log("Thread", t, "c")
        else:
            self._log("Thread", t, "u")

    # -- IMAP \\Recent (RFC 3501 §2.3.2) ---------------------------------------------------

    def claim_recent(self, m: int, upto: int | None = None) -> int:
        """The first UID that is \\Recent for the session claiming it; later sessions
        see none of those.  The claim covers the UIDs below ``upto`` (the session's known
        UIDs + 1; default: UIDNEXT), never more than exist: a message that arrives after
        the session looked is left for whichever session is told of it first (RFC 3501
        §2.3.2: \\Recent in one session only).  Session metadata: no modseq, no JMAP
        change."""
        rec = self.require_mailbox(m)
        first = int(rec.get("recent", 1))
        uidnext = int(rec["uidnext"])
        rec["recent"] = uidnext if upto is None else max(first, min(int(upto), uidnext))
        return first

    # -- migration from another IMAP server (dualmail.migrate) -------------------------
    #
    # An IMAP client moved from the old server keeps its cache only if each mailbox keeps
    # its UIDVALIDITY and every message its UID, and (CONDSTORE/QRESYNC) if no MODSEQ it
    # saw goes backwards.  The rule (docs/operating.md "Migration", CONTRACT §4 note):
    # a migrating transaction first raises the account counter above every modseq the
    # source has shown (``raise_modseq``), so it and every later write take modseqs above
    # all carried ones; it then stamps messages with their source MODSEQ (``carry_modseq``)
    # and the mailbox with the source's HIGHESTMODSEQ (``carry_highest_modseq``), which
    # never goes below the mailbox's value before the transaction.  JMAP states stay the
    # transactions' own modseqs.  UIDs stay strictly ascending and are never reused:
    # ``place_uid`` refuses a UID below UIDNEXT.

    def raise_modseq(self, floor: int) -> None:
        """This transaction's modseq, when it takes one, is above ``floor`` (the source's
        highest modseq): the account counter jumps there, so every later write is above
        it too.  Must come before the transaction's first change (refused after one
        whose modseq is not above ``floor``); a transaction that then changes nothing
        still takes no modseq."""
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0 or floor + 1 >= 2**53:
            raise errors.LimitError("modseq out of range")
        if self._modseq is not None:
            if self._modseq > floor:
                return
            raise errors.CannotError("the modseq of this transaction is already taken")
        self._floor = max(self._floor, floor)

    def create_mailbox_as(self, name: str, parent: int = 0, *, uidvalidity: int,
                          role: str | None = None, subscribed: bool = True) -> int:
        """``create_mailbox`` with the source server's UIDVALIDITY (RFC 3501 §2.3.1.1)."""
        if isinstance(uidvalidity, bool) or not isinstance(uidvalidity, int) \
                or not 0 < uidvalidity <= 0xFFFFFFFF:
            raise errors.LimitError("UIDVALIDITY must be 1..2^32-1")
        m = self.create_mailbox(name, parent, role=role, subscribed=subscribed)
        self._mbx_cache[m]["uidvalidity"] = uidvalidity
        return m

    def place_uid(self, m: int, u: int) -> int:
        """Use UID ``u`` for the next message of ``m``: at or above its UIDNEXT (so UIDs
        stay ascending and are never reused); UIDNEXT becomes ``u + 1``."""
        rec = self._touch_mailbox(m)
        if isinstance(u, bool) or not isinstance(u, int) or u < int(rec["uidnext"]):
            raise errors.CannotError("the UID is not above every UID the mailbox has had",
                                     mailbox=m, uid=u)
        if u >= 0xFFFFFFFF:
            raise errors.LimitError("UID space of the mailbox exhausted")
        rec["uidnext"] = u + 1
        return u

    def raise_uidnext(self, m: int, uidnext: int) -> bool:
        """Raise ``m``'s UIDNEXT to the source's (UIDs expunged there before copying are
        never handed out here either).  Never lowers it; True if it moved."""
        rec = self.require_mailbox(m)
        if isinstance(uidnext, bool) or not isinstance(uidnext, int) or uidnext > 0xFFFFFFFF:
            raise errors.LimitError("UIDNEXT out of range")
        if uidnext <= int(rec["uidnext"]):
            return False
        self._touch_mailbox(m)["uidnext"] = uidnext
        return True

    def add_membership_as(self, e: int, m: int, u: int, *, deleted: bool = False) -> int:
        """``add_membership`` at the source's UID ``u`` (see ``place_uid``), with this
        membership's own ``\\Deleted`` (one source message found in several mailboxes)."""
        return self.add_membership(e, m, at_uid=u, deleted=deleted)

    def _insert_membership(self, e: int, rec: dict[str, Any], m: int, u: int, deleted: bool) -> None:
        mk = str(m)
        rec["mbx"][mk] = [u, 1 if deleted else 0, self.modseq]
        self.w.put("uid", K.uid(self.a, m, u), K.u64(e))
        if deleted:
            self.w.put("deleted", K.uid(self.a, m, u), K.u64(e))
        self._set_membership_modseq(m, u, None)
        self._stamp_saved(m, u)
        self._apply(m, int(rec["thread"]), None, _contrib(rec, mk))

    def split_membership(self, e: int, m: int, keywords: Iterable[str]) -> int:
        """Give the membership of ``e`` in ``m`` an Email of its own (same bytes, same
        UID, ``keywords``): the source changed the flags of a message that was merged
        with a copy in another mailbox (keywords are one set per Email, CONTRACT §2).
        IMAP sees a flag change; JMAP sees ``m`` leave ``e`` and a new Email in ``m``."""
        rec = self.require_email(e)
        ms = rec["mbx"].get(str(m))
        if ms is None:
            raise errors.NotFoundError("the email is not in that mailbox")
        if len(rec["mbx"]) < 2:
            raise errors.CannotError("the email has one membership")
        u, deleted = int(ms[0]), bool(ms[1])
        summary = self.summary(e) or {}
        self.remove_membership(e, m, tombstone=False)
        self._usage_list()  # a second Email of the same bytes: counted, never refused
        e2 = self._next("E")
        self.ref_blob(rec["blob"])
        t = int(rec["thread"])
        kws = sorted({k.lower() for k in keywords})
        for k in kws:
            if not kwmod.is_valid_keyword(k):
                raise errors.InvalidKeywordError(f"invalid keyword {k!r}")
        rec2: dict[str, Any] = {"blob": rec["blob"], "size": rec["size"], "recv": rec["recv"],
                                "kw": kws, "mbx": {}, "thread": t, "created": self.modseq}
        th = self.thread(t) or {"emails": []}
        th["emails"].append([int(rec["recv"]), e2, 0])
        th["emails"].sort()
        self._put_thread(t, th)
        for mid in _ref_ids(summary):
            val = self.w.get("msgref", K.msgref(self.a, mid, e))
            if val is not None:
                self.w.put("msgref", K.msgref(self.a, mid, e2), val)
        for table in ("summary", "text", "srch", "imapw", "imaph", "imapb", "ftstok", "jmapw"):
            raw_t = self.w.get(table, K.email(self.a, e))
            if raw_t is not None:
                self.w.put(table, K.email(self.a, e2), raw_t)
        self._insert_membership(e2, rec2, m, u, deleted)
        self._put_email(e2, rec2)
        self._visibility_changed(e2, rec2, [], jmap_mailbox_ids(rec2))
        self._use(int(rec2["size"]), 1)
        return e2

    def carry_modseq(self, e: int, m: int, modseq: int) -> None:
        """Stamp the membership of ``e`` in ``m`` with the source's MODSEQ instead of this
        transaction's (which is above it: ``raise_modseq``)."""
        rec = self.require_email(e)
        ms = rec["mbx"].get(str(m))
        if ms is None:
            raise errors.NotFoundError("the email is not in that mailbox")
        if isinstance(modseq, bool) or not isinstance(modseq, int) or not 0 < modseq <= self.modseq:
            raise errors.CannotError("a carried modseq must be in 1..this transaction's modseq")
        if int(ms[2]) == modseq:
            return
        self.w.delete("mbxmod", K.mbx_seq(self.a, m, int(ms[2]), int(ms[0])))
        self.w.put("mbxmod", K.mbx_seq(self.a, m, modseq, int(ms[0])), b"")
        ms[2] = modseq
        self._put_email(e, rec)

    def carry_expunge(self, e: int, m: int, modseq: int) -> int:
        """Expunge ``e`` from ``m`` (``remove_membership``) with the tombstone at the
        source's modseq (VANISHED (EARLIER) for clients whose state is below it)."""
        if isinstance(modseq, bool) or not isinstance(modseq, int) or not 0 < modseq <= self.modseq:
            raise errors.CannotError("a carried modseq must be in 1..this transaction's modseq")
        u = self.remove_membership(e, m, tombstone=False)
        self.w.put("expunged", K.mbx_seq(self.a, m, modseq, u), b"")
        return u

    def adopt_uidvalidity(self, m: int, uidvalidity: int) -> None:
        """Give a mailbox that never held a message (UIDNEXT 1: a new account's INBOX,
        Sent...) the source's UIDVALIDITY.  No client can hold a UID of it, so nothing
        it cached is invalidated (RFC 3501 §2.3.1.1); a Mailbox change for JMAP."""
        rec = self.require_mailbox(m)
        if isinstance(uidvalidity, bool) or not isinstance(uidvalidity, int) \
                or not 0 < uidvalidity <= 0xFFFFFFFF:
            raise errors.LimitError("UIDVALIDITY must be 1..2^32-1")
        if int(rec["uidnext"]) != 1:
            raise errors.CannotError("the mailbox has held messages: its UIDVALIDITY stays", mailbox=m)
        if int(rec["uidvalidity"]) == uidvalidity:
            return
        rec["uidvalidity"] = uidvalidity
        self._log("Mailbox", m, "u")
        self._p.mailboxes.add(m)

    def set_migration_state(self, m: int, state: dict[str, Any] | None) -> None:
        """Record ``dualmail migrate``'s bookkeeping for ``m`` in its record (same
        transaction as the data it describes).  Not visible to clients: no modseq.
        ``m`` 0: the account's map of migrated source mailboxes (written with the
        account record, so only by a transaction that changes something)."""
        if m == 0:
            self.modseq
            if state:
                self._acct["migrated"] = dict(state)
            else:
                self._acct.pop("migrated", None)
            return
        rec = self.require_mailbox(m)
        if state is None:
            rec.pop("migrated", None)
        else:
            rec["migrated"] = dict(state)

    @property
    def touched_mailboxes(self) -> frozenset[int]:
        """Mailboxes this transaction changed so far (what its Commit will name)."""
        return frozenset(self._p.mailboxes)

    def carry_highest_modseq(self, m: int, hms: int) -> None:
        """Set ``m``'s HIGHESTMODSEQ to the source's.  It never goes below the value the
        mailbox had before this transaction, nor above this transaction's modseq."""
        rec = self.require_mailbox(m)
        orig = self._mbx_orig.get(m)
        before = int(codec.loads(orig)["hms"]) if orig is not None else 1
        if isinstance(hms, bool) or not isinstance(hms, int) or not before <= hms <= self.modseq:
            raise errors.CannotError("HIGHESTMODSEQ would go backwards", mailbox=m, hms=hms)
        rec["hms"] = hms
        self._p.mailboxes.add(m)

    # -- import de-duplication ---------------------------------------------------------

    def mark_imported(self, m: int, key: bytes, e: int) -> None:
        self.w.put("dedup", K.dedup(self.a, m, key), K.u64(e))

    # -- other JMAP objects ---------------------------------------------------------------

    def log_change(self, kind: str, obj: int, op: str) -> None:
        """For data types kept outside this module (Identity, VacationResponse...)."""
        self._log(kind, obj, op)

    def create_object(self, kind: str, record: dict[str, Any]) -> int:
        """Store a new object of ``kind`` under the next number (never reused); logged."""
        n = self._next(KINDS[kind].decode())
        self.w.put("object", K.obj(self.a, KINDS[kind], n), codec.dumps(record))
        self._log(kind, n, "c")
        return n

    def put_object(self, kind: str, n: int, record: dict[str, Any]) -> None:
        """Replace (or first store, for a singleton with a fixed number) object ``n``."""
        key = K.obj(self.a, KINDS[kind], n)
        existed = self.w.get("object", key) is not None
        self.w.put("object", key, codec.dumps(record))
        self._log(kind, n, "u" if existed else "c")

    def delete_object(self, kind: str, n: int) -> bool:
        if not self.w.delete("object", K.obj(self.a, KINDS[kind], n)):
            return False
        self._log(kind, n, "d")
        return True


def recount_usage(view: ReadView) -> dict[str, int]:
    """Usage by reading every Email record of the account (``dualmail check``, and the
    one-time upgrade of a store written before quotas existed)."""
    p = K.acct(view.a)
    octets = count = 0
    for _k, v in view.kv.range("email", p, prefix_end(p)):
        octets += int(codec.loads(v)["size"])
        count += 1
    return {"octets": octets, "count": count}


def _ref_ids(summary: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for key in ("message_id", "in_reply_to", "references"):
        v = summary.get(key) or []
        if isinstance(v, str):
            v = [v]
        for x in v[-100:]:
            if isinstance(x, str) and x and x not in ids:
                ids.append(x)
    return ids


def _subject_hash(summary: dict[str, Any]) -> bytes:
    base = summary.get("base_subject")
    if not isinstance(base, str):
        base = summary.get("subject") or ""
    return K.h16(base.casefold())[:8]


# -- the search record (table "srch"; read by dualmail.search) ---------------------------

#: the header fields whose decoded lines the search record keeps (``search_record``)
SEARCH_FIELDS = ("from", "to", "cc", "bcc", "subject")


def _first_address(summary: dict[str, Any], key: str) -> list[str]:
    v = summary.get(key) or []
    if not isinstance(v, list) or not v or not isinstance(v[0], dict):
        return ["", ""]
    return [str(v[0].get("name") or ""), str(v[0].get("email") or "")]


@dataclass(frozen=True, slots=True)
class EncodedSummary:
    """The stored forms of a parsed message: made once, possibly in another process."""

    summary: bytes  # JSON summary without the search text
    text: bytes  # zlib(header text NUL body text)
    search: bytes  # JSON search record (search_record)
    listing: bytes = b""  # listing.static_parts: ENVELOPE, BODYSTRUCTURE, BODY in IMAP wire form
    terms: bytes = b""  # model.terms.pack_terms: the Email's full-text index terms (table ftstok)
    jmap: bytes = b""  # mime.jmap_listing.record: JMAP convenience properties (table jmapw)
    headers: bytes | None = None  # listing.header_record of the message (table imaph); None: not made ahead


THREADING_FIELDS = ("message_id", "in_reply_to", "references", "base_subject", "subject")


def encode_summary(summary: dict[str, Any]) -> EncodedSummary:
    """Pure: no store access, so the importer runs it in its parsing processes."""
    stored = {k: v for k, v in summary.items() if k not in ("header_text", "body_text")}
    header, body = str(summary.get("header_text") or ""), str(summary.get("body_text") or "")
    text = header + "\x00" + body
    return EncodedSummary(codec.dumps(stored), zlib.compress(text.encode("utf-8", "replace"), 1),
                          codec.dumps(search_record(summary)), listing.static_parts(summary),
                          terms.pack_terms(terms.email_terms(header, body)))


def search_record(summary: dict[str, Any]) -> dict[str, Any]:
    """What search and sort need of one Email, from its parsed summary (dualmail.mime).

    ``h``: decoded text of the From/To/Cc/Bcc/Subject fields (instances joined by a
    newline), taken from the summary's ``header_text``; ``a``: [name, email] of the first
    From/To/Cc address; ``s``/``subj``: base and decoded subject; ``d``/``o``: sent_at
    and its zone offset (minutes); ``att``: hasAttachment; ``mid``/``irt``/``refs``:
    Message-ID, first In-Reply-To id and References ids (THREAD=REFERENCES).  The
    semantics live in ``dualmail.search``; this only gathers the fields.
    """
    fields: dict[str, list[str]] = {}
    for line in str(summary.get("header_text") or "").split("\n"):
        name, sep, value = line.partition(":")
        key = name.strip().lower()
        if sep and key in SEARCH_FIELDS:
            fields.setdefault(key, []).append(value.strip(" "))
    mid = summary.get("message_id") or []
    irt = summary.get("in_reply_to") or []
    refs = summary.get("references") or []
    return {
        "h": {k: "\n".join(v) for k, v in fields.items()},
        "a": {k: _first_address(summary, k) for k in ("from", "to", "cc")},
        "s": str(summary.get("base_subject") or ""),
        "subj": str(summary.get("subject") or ""),
        "d": summary.get("sent_at"),
        "o": summary.get("sent_at_offset"),
        "att": 1 if summary.get("has_attachment") else 0,
        "mid": str(mid[0]) if isinstance(mid, list) and mid else "",
        "irt": str(irt[0]) if isinstance(irt, list) and irt else "",
        "refs": [str(x) for x in refs[-100:]] if isinstance(refs, list) else [],
    }


def _text(raw: bytes | None) -> tuple[str, str]:
    """A stored ``text`` row as (header text, body text)."""
    if raw is None:
        return "", ""
    h, _, b = zlib.decompress(raw).decode("utf-8", "replace").partition("\x00")
    return h, b
