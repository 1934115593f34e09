"""Operations with protocol-neutral meaning, each inside one ``MailTxn`` (CONTRACT §2).

Parsing happens before the transaction (``prepare``), so a write transaction never waits
on MIME work.  Imports no twisted and no lmdb.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from ..mime.jmap_listing import encode
from ..mime.parse import summarize
from ..model import keywords as kwmod
from ..store.store import Store
from ..store.txn import EncodedSummary, MailTxn


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message parsed and ready to be stored."""

    raw: bytes
    summary: dict[str, Any]
    keywords: frozenset[str]
    received: int
    deleted: bool = False
    encoded: EncodedSummary | None = None  # stored forms, when made ahead (importer)
    digest: bytes | None = None  # SHA-256 of raw, when computed ahead (importer)
    spellings: tuple[str, ...] = ()  # the IMAP flags as given (keyword spellings)


def flags_to_keywords(flags: Iterable[str]) -> tuple[frozenset[str], bool]:
    """IMAP flags (or JMAP keywords) -> (keywords, \\Deleted?); ``\\Recent`` is dropped."""
    kws: set[str] = set()
    deleted = False
    for f in flags:
        low = f.lower()
        if low == "\\deleted":
            deleted = True
            continue
        k = kwmod.flag_to_keyword(f)
        if k and kwmod.is_valid_keyword(k):
            kws.add(k)
    return frozenset(kws), deleted


def prepare(raw: bytes, flags: Iterable[str] = (), received: int | None = None,
            summary: dict[str, Any] | None = None, encoded: EncodedSummary | None = None,
            digest: bytes | None = None) -> Prepared:
    """Parse once (outside any transaction); IMAP flags or JMAP keywords both accepted.

    A message parsed here also gets its stored forms (``encode_summary``: the summary's
    JSON, the search text, search record, listing parts, full-text terms and the JMAP
    listing record) here, so
    the write transaction only puts them."""
    flags = tuple(flags)
    kws, deleted = flags_to_keywords(flags)
    spellings = tuple(f for f in flags if not f.startswith("\\"))
    if summary is None:
        summary = summarize(raw)
        if encoded is None:
            encoded = encode(summary, raw)
    return Prepared(raw, summary, kws,
                    int(time.time()) if received is None else int(received), deleted, encoded, digest,
                    spellings)


def prepare_parsed(store: Store, raw: bytes, flags: Iterable[str] = (), received: int | None = None) -> Prepared:
    """``prepare``, parsed where ``store.parsers`` parses (child processes the service
    started; without them, here).  Blocking: call it on the thread that then writes
    (a worker thread), never on the reactor."""
    parsers = store.parsers
    if parsers is None:
        return prepare(raw, flags, received)
    fields, encoded, digest = parsers.parse(raw)
    return prepare(raw, flags, received, summary=fields, encoded=encoded, digest=digest)


def prepare_parsed_many(store: Store, items: Sequence[tuple[bytes, Iterable[str], int | None]]) -> list[Prepared]:
    """``prepare_parsed`` of each (raw, flags, received) of ``items``, the parses spread
    over the parser processes at once (``Parsers.parse_many``: a MULTIAPPEND).  Blocking,
    as ``prepare_parsed``."""
    parsers = store.parsers
    if parsers is None or len(items) <= 1:
        return [prepare_parsed(store, raw, flags, received) for raw, flags, received in items]
    parsed = parsers.parse_many([raw for raw, _f, _r in items])
    return [prepare(raw, flags, received, summary=fields, encoded=encoded, digest=digest)
            for (raw, flags, received), (fields, encoded, digest) in zip(items, parsed)]


def stage(store: Store, account: int, p: Prepared) -> Prepared:
    """Before the write transaction: hash the message and, with S3 blobs, upload it
    (``Store.stage_blob``), so the transaction only references it.  Blocking (network):
    call it where the transaction would run (a worker thread).  Raises
    ``UnavailableError`` when the blob store is away: nothing written."""
    digest = store.stage_blob(account, p.raw, p.digest)
    return p if p.digest == digest else replace(p, digest=digest)


def store_prepared(tx: MailTxn, p: Prepared, mailboxes: Sequence[int]) -> tuple[int, dict[int, int]]:
    if p.spellings:
        tx.remember_spellings(p.spellings)
    return tx.create_email(p.raw, p.summary, mailboxes, p.keywords, p.received, deleted=p.deleted,
                           encoded=p.encoded, digest=p.digest)


def deliver(store: Store, account: int, raw: bytes, mailbox: int, flags: Iterable[str] = (),
            received: int | None = None) -> tuple[int, int]:
    """Append one message (IMAP APPEND, LMTP): one transaction, one modseq."""
    p = stage(store, account, prepare(raw, flags, received))
    with store.write(account) as tx:
        e, uids = store_prepared(tx, p, [mailbox])
    return e, uids[mailbox]


def imap_flags(rec: dict[str, Any], mailbox: int, spell: kwmod.Spellings | None = None) -> list[str]:
    """The IMAP flags of one membership: the Email's keywords (with the account's
    spellings when ``spell`` is given) plus its own ``\\Deleted``."""
    flag = spell.flag if spell is not None else kwmod.keyword_to_flag
    out = [flag(k) for k in rec["kw"]]
    ms = rec["mbx"].get(str(mailbox))
    if ms and ms[1]:
        out.append(kwmod.DELETED)
    return out


def membership_modseq(rec: dict[str, Any], mailbox: int) -> int:
    ms = rec["mbx"].get(str(mailbox))
    return int(ms[2]) if ms else int(rec.get("modseq", 0))


def apply_flags(tx: MailTxn, mailbox: int, email: int, mode: str, flags: Iterable[str]) -> bool:
    """IMAP STORE on one membership: mode '+', '-' or '' (replace).  True if changed."""
    rec = tx.require_email(email)
    want_kw: set[str] = set()
    deleted: bool | None = None
    for f in flags:
        if f.lower() == "\\deleted":
            deleted = True
            continue
        if f.lower() == "\\recent":
            continue
        k = kwmod.flag_to_keyword(f)
        if k:
            want_kw.add(k)
    cur = set(rec["kw"])
    if mode == "+":
        new = cur | want_kw
        new_deleted = True if deleted else None
    elif mode == "-":
        new = cur - want_kw
        new_deleted = False if deleted else None
    else:
        new = want_kw
        new_deleted = bool(deleted)
    changed = False
    if new != cur:
        if new - cur:
            tx.remember_spellings(f for f in flags if f.lower() in new - cur)
        changed |= tx.set_keywords(email, new)
    if new_deleted is not None:
        changed |= tx.set_deleted(email, mailbox, new_deleted)
    return changed


def copy_messages(tx: MailTxn, src: int, uids: Iterable[int], dst: int, *, move: bool = False) -> list[tuple[int, int]]:
    """IMAP COPY/MOVE: (source uid, destination uid) pairs in source UID order.

    COPY adds a membership to the same Email; if the Email is already in ``dst`` a new
    Email with the same bytes and keywords is made there (CONTRACT §2).  MOVE also removes
    the source membership (an expunge in ``src``).
    """
    tx.require_mailbox(dst)
    pairs: list[tuple[int, int]] = []
    for u in sorted(uids):
        e = tx.email_at(src, u)
        if e is None:
            continue
        rec = tx.require_email(e)
        src_deleted = bool(rec["mbx"].get(str(src), [0, 0])[1])
        if src == dst and move:
            continue
        if str(dst) in rec["mbx"]:
            _e2, nu = tx.duplicate_email(e, dst)
            if src_deleted:
                tx.set_deleted(_e2, dst, True)
        else:
            nu = tx.add_membership(e, dst)
            if src_deleted:
                tx.set_deleted(e, dst, True)
        if move:
            tx.remove_membership(e, src)
        pairs.append((u, nu))
    return pairs
