"""Consistency check of one account: every counter and index against a recount.

Used by the tests (after crashes, after random operation sequences) and by
``dualmail check``.  Reads the whole account: an admin tool, never on a hot path.
"""

from __future__ import annotations

import time
from typing import Any

from ..model.keywords import unread
from . import codec, imapidx, keys as K, listing
from .blobs import BlobKey, KvBlobs
from .kv import prefix_end
from .txn import ReadView, jmap_mailbox_ids, search_record


def all_emails(view: ReadView) -> dict[int, dict[str, Any]]:
    p = K.acct(view.a)
    return {K.un64(k, 4): codec.loads(v) for k, v in view.kv.range("email", p, prefix_end(p))}


def verify(view: ReadView) -> list[str]:
    """Problems found (empty when consistent)."""
    problems: list[str] = []
    emails = all_emails(view)
    acct = view.account()
    top = int(acct["modseq"])
    boxes = {int(m["id"]): m for m in view.mailboxes()}
    for e, rec in emails.items():
        if not rec["mbx"]:
            problems.append(f"email {e} is in no mailbox")
        if not view.blobs.exists(view.a, bytes.fromhex(rec["blob"])):
            problems.append(f"email {e} lost its blob")
        if int(rec.get("modseq", 0)) > top:
            problems.append(f"email {e} has a modseq above the account's")
        for mk, (u, _d, ms) in rec["mbx"].items():
            m = int(mk)
            if m not in boxes:
                problems.append(f"email {e} is in missing mailbox {m}")
                continue
            if view.email_at(m, u) != e:
                problems.append(f"uid index of mailbox {m} uid {u} does not point at email {e}")
            if u >= int(boxes[m]["uidnext"]):
                problems.append(f"mailbox {m} uid {u} is not below uidnext")
            if view.kv.get("mbxmod", K.mbx_seq(view.a, m, ms, u)) is None:
                problems.append(f"mailbox {m} uid {u} is missing from the modseq index")
    for m, box in boxes.items():
        members = [(e, r) for e, r in emails.items() if str(m) in r["mbx"]]
        vis = [(e, r) for e, r in members if not r["mbx"][str(m)][1]]
        want = {
            "msgs": len(members),
            "unseen": sum(1 for _e, r in members if "$seen" not in r["kw"]),
            "deleted": len(members) - len(vis),
            "size": sum(int(r["size"]) for _e, r in members),
            "total": len(vis),
            "unread": sum(1 for _e, r in vis if unread(r["kw"])),
            "threads": len({r["thread"] for _e, r in vis}),
            "unreadThreads": len({r["thread"] for _e, r in vis if unread(r["kw"])}),
        }
        if box["counts"] != want:
            problems.append(f"mailbox {m} counters {box['counts']} != recount {want}")
        if len(view.uids(m)) != len(members):
            problems.append(f"mailbox {m} uid index has {len(view.uids(m))} entries, expected {len(members)}")
        if int(box["hms"]) > top:
            problems.append(f"mailbox {m} HIGHESTMODSEQ above the account's modseq")
        if view.deleted_uids(m) != sorted(r["mbx"][str(m)][0] for _e, r in members if r["mbx"][str(m)][1]):
            problems.append(f"mailbox {m} \\Deleted index disagrees with memberships")
        recv = set(view.received_order(m))
        if recv != {e for e, _r in vis}:
            problems.append(f"mailbox {m} receivedAt index disagrees with memberships")
        problems += _recv_values(view, "recv", K.mailbox(view.a, m), emails, f"mailbox {m}")
    use = acct.get("use")  # absent: a store from before quotas, recounted on read
    want_use = [sum(int(r["size"]) for r in emails.values()), len(emails)]
    if use is not None and [int(x) for x in use] != want_use:
        problems.append(f"account quota usage {use} != recount {want_use}")
    visible_all = {e for e, r in emails.items() if jmap_mailbox_ids(r)}
    if set(view.received_order(None)) != visible_all:
        problems.append("account receivedAt index disagrees with visible emails")
    problems += _recv_values(view, "recvall", K.acct(view.a), emails, "account")
    # IMAP METADATA entries belong to the server (0) or to a mailbox that exists
    p = K.acct(view.a)
    for m in sorted({K.un32(k, 4) for k, _v in view.kv.range("metadata", p, prefix_end(p))}):
        if m and m not in boxes:
            problems.append(f"metadata of missing mailbox {m}")
    problems += _listing_rows(view, emails)
    problems += _imap_index(view, emails, boxes)
    return problems


def _imap_index(view: ReadView, emails: dict[int, dict[str, Any]], boxes: dict[int, dict[str, Any]]) -> list[str]:
    """The IMAP per-membership rows (``store.imapidx``) of every indexed mailbox against a
    recount from the email records; none for a missing mailbox; the stored header fields
    (``imaph``) only for existing Emails."""
    out = []
    dates = {}
    for e, rec in emails.items():
        raw = view.kv.get("srch", K.email(view.a, e))
        srch = codec.loads(raw) if raw is not None else search_record(view.summary(e) or {})
        dates[e] = imapidx.sent_date(srch, int(rec["recv"]))
    for m, box in boxes.items():
        if not imapidx.ready(box):
            continue
        want = imapidx.expected(view.a, m, emails, dates)
        got = imapidx.stored(view.kv, view.a, m)
        for table, w, g in zip(imapidx.TABLES, want, got):
            if w != g:
                extra, lost = len(set(g) - set(w)), len(set(w) - set(g))
                wrong = sum(1 for k in set(w) & set(g) if w[k] != g[k])
                out.append(f"mailbox {m} IMAP index {table} disagrees with a recount "
                           f"({extra} extra, {lost} missing, {wrong} wrong)")
    p = K.acct(view.a)
    for table in imapidx.TABLES:
        for m in sorted({K.un32(k, 4) for k, _v in view.kv.range(table, p, prefix_end(p))} - set(boxes)):
            out.append(f"IMAP index {table} has rows of missing mailbox {m}")
    for k, v in view.kv.range("imaph", p, prefix_end(p)):
        if K.un64(k, 4) not in emails:
            out.append(f"stored header fields of missing email {K.un64(k, 4)}")
        elif not listing.presets_agree(v):
            out.append(f"stored header-field answers of email {K.un64(k, 4)} disagree with its fields")
    for k, v in view.kv.range("imapb", p, prefix_end(p)):
        e = K.un64(k, 4)
        if e not in emails:
            out.append(f"stored BODYSTRUCTURE of missing email {e}")
        elif v != listing.bodystructure_of_record(view.kv.get("imapw", k) or b""):
            out.append(f"stored BODYSTRUCTURE of email {e} is not its listing record's")
    return out


def upgrade(store: Any, a: int) -> list[str]:
    """``dualmail check --upgrade``: build what an older store lacks -- the IMAP indexes of
    each mailbox not yet indexed (one transaction per mailbox) and the stored header
    fields of older Emails.  Derived data: no modseq is taken.  What was done, as lines."""
    done = []
    with store.read(a) as view:
        todo = [int(b["id"]) for b in view.mailboxes() if not imapidx.ready(b)]
    for m in todo:
        if store.transact(a, lambda tx, m=m: tx.upgrade_imap_index(m)):
            done.append(f"mailbox {m}: IMAP indexes built")
    n = store.transact(a, lambda tx: tx.upgrade_header_fields())
    if n:
        done.append(f"{n} emails: header fields stored")
    n = store.transact(a, lambda tx: tx.upgrade_bodystructures())
    if n:
        done.append(f"{n} emails: BODYSTRUCTURE stored")
    return done


def _listing_rows(view: ReadView, emails: dict[int, dict[str, Any]]) -> list[str]:
    """IMAP listing records (``imapw``): none without its Email, each one readable and
    rendered for the Email's receivedAt.  An Email without one (stored before the table
    existed) is fine: FETCH renders it from the summary."""
    out = []
    p = K.acct(view.a)
    for k, v in view.kv.range("imapw", p, prefix_end(p)):
        e = K.un64(k, 4)
        rec = emails.get(e)
        got = listing.parse(v)
        if rec is None:
            out.append(f"IMAP listing record of missing email {e}")
        elif got is None or got.recv != int(rec["recv"]):
            out.append(f"IMAP listing record of email {e} is unreadable or not for its receivedAt")
    return out


def _recv_values(view: ReadView, table: str, p: bytes, emails: dict[int, dict[str, Any]],
                 what: str) -> list[str]:
    """Each receivedAt index entry's key holds the Email's receivedAt and its value the
    Email's thread (u64)."""
    out = []
    n = len(p)
    for k, v in view.kv.range(table, p, prefix_end(p)):
        e = K.un64(k, n + 8)
        rec = emails.get(e)
        if rec is None:
            continue  # reported above as an index/membership disagreement
        if K.un64(k, n) != max(int(rec["recv"]), 0):
            out.append(f"{what} receivedAt index has email {e} at the wrong receivedAt")
        if v != K.u64(int(rec["thread"])):
            out.append(f"{what} receivedAt index value of email {e} is not its thread")
    return out


# -- unreferenced blobs (a crash between an S3 upload and its commit) ---------------------


def unreferenced_blobs(store: Any, account: int | None = None) -> list[BlobKey]:
    """Stored blobs (of ``account``) that no ``blobref`` row names: no Email and no upload
    mark references them.  With S3 blobs these are what a crash between the upload and
    the commit leaves (store.blobs); the KV store removes blob rows in the same
    transaction, so there they mean damage."""
    with store.kv.read() as r:
        source = store.blobs if store.blobs is not None else KvBlobs(r)
        return [k for k in source.keys(account)
                if r.get("blobref", K.blob(k.account, k.sha)) is None]


def repair_blobs(store: Any, found: list[BlobKey], grace: float,
                 now: float | None = None) -> tuple[int, int]:
    """Remove the unreferenced blobs ``found`` that are at least ``grace`` seconds old
    (younger ones may belong to a transaction still running); each is checked again
    against a fresh read first, so a blob referenced meanwhile is never removed.
    Returns (removed, kept as too young)."""
    now = time.time() if now is None else now
    removed = kept = 0
    if store.blobs is None:
        def run(w: Any) -> int:
            n = 0
            for k in found:
                if w.get("blobref", K.blob(k.account, k.sha)) is None:
                    w.delete("blob", K.blob(k.account, k.sha))
                    n += 1
            return n

        return (store.kv.run_write(run) if found else 0), 0
    for k in found:
        if k.modified is not None and now - k.modified < grace:
            kept += 1
            continue
        if store.blobs.delete_unreferenced(k.account, k.sha,
                                           lambda k=k: store._blob_referenced(k.account, k.sha)):
            removed += 1
    return removed, kept
