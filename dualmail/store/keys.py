"""THE key schema: every table and the byte layout of every key, in one place.

Integers in keys are big-endian so byte order is numeric order.  ``A`` = account number
(u32), ``M`` = mailbox number (u32), ``E`` = email number (u64), ``T`` = thread number
(u64), ``S`` = modseq (u64), ``U`` = IMAP UID (u32), ``R`` = receivedAt (u64, epoch
seconds), ``G`` = global commit number (u64), ``H(x)`` = 16-byte BLAKE2b of x.

Values are JSON documents (``codec``) unless noted.

=============  =====================================  ===========================================
table          key                                    value
=============  =====================================  ===========================================
meta           b"format"                              format version (ascii int)
meta           b"gseq"                                last global commit number (u64)
meta           b"next_account"                        last account number (u64)
account        A                                      {address, pw, modseq, next: {M,E,T,I}, kwspell:
                                                      {lowercase keyword: IMAP spelling}, use:
                                                      [octets, messages] (each Email once), quota:
                                                      {octets: N, count: N} (limits), ...}
login          address (lowercase utf-8)              A
token          H(token)                               {account, kind, created, expires, note}
mailbox        A M                                    mailbox record (name, parent, role, counters...)
mbxname        A M(parent, 0=top) name(utf-8)         M     (sibling name uniqueness)
email          A E                                    email record (blob, size, received, keywords,
                                                      memberships {M: [uid, deleted, modseq]}, thread)
summary        A E                                    parsed MIME summary (dualmail.mime), write-once
text           A E                                    zlib(header text + NUL + body text): decoded
                                                      text for search, so no query re-parses MIME
uid            A M U                                  E (u64)  -- (mailbox, UID) -> email
deleted        A M U                                  E (u64)  -- the \\Deleted memberships (EXPUNGE)
mbxmod         A M S U                                b""   -- CHANGEDSINCE index: membership modseqs
expunged       A M S U                                b""   -- expunge tombstones (VANISHED)
recv           A M R E                                T (u64) -- (mailbox, receivedAt) order, JMAP-visible
recvall        A R E                                  T (u64) -- account-wide receivedAt order, JMAP-visible;
                                                      the thread lets Email/query collapse threads
                                                      without decoding records (b"": read the record)
thread         A T                                    {emails: [E...] ordered by (receivedAt, E)}
mbxthread      A M T                                  [count, unread] of JMAP-visible emails
msgref         A H(message-id) E                      T(u64) H(base subject)[:8] -- every Message-ID,
                                                      In-Reply-To and References id of E
blob           A sha256(32)                           raw bytes (byte-exact message or upload)
blobref        A sha256(32)                           {refs, uploaded, type} reference count
upload         A R(upload time) sha256(32)            b""   -- blobs carrying an upload mark, by time:
                                                      the expiry sweep reads only old uploads
object         A kind(1) id(u64)                      JSON record of a data type kept outside the
                                                      mail model (Identity, VacationResponse ...)
changelog      A kind(1) S id(u64)                    {op, c: created-at modseq}
chlast         A kind(1) id(u64)                      S  -- where the object's one log entry is
state          A kind(1)                              S  -- JMAP state of the type
dedup          A M H(import key)                      E  -- re-import guard (``dualmail import``)
srch           A E                                    search record (``txn.search_record``): decoded
                                                      From/To/Cc/Bcc/Subject, first addresses, base
                                                      subject, sentAt, ids -- dualmail.search
fts            A token(utf-8) 0x00 E(first)           postings chunk: little-endian u64 email numbers,
                                                      ascending (full-text index, dualmail.search.fts)
ftsmeta        A                                      E(u64): full-text watermark, every email <= E
                                                      is indexed (or destroyed)
ftss           A token(utf-8) 0x00 E(first)           postings chunk as in ``fts``, of the terms of the
                                                      decoded Subject alone (SUBJECT searches)
ftsmeta        A b"s"                                 E(u64): every email <= E is in ``ftss``; equal to
                                                      the watermark once complete (older indexes:
                                                      ``fts.upgrade_subjects``)
ftsmeta        A b"g"                                 b"1": ``ftsgram`` holds every term of ``fts``
ftsmeta        A b"G"                                 the last term given its grams so far (the
                                                      upgrade of an index older than ``ftsgram``)
ftstok         A E                                    term record: zlib of the Email's index terms,
                                                      sorted, one per line (made at ingest; the
                                                      indexer and queries of unindexed mail read it)
ftsgram        A gram(utf-8, 3 chars) 0x00 term       b""  -- term dictionary by trigram: a substring
                                                      query finds its terms without a dictionary
                                                      scan; gram b"" lists the cut (64-char) terms
imapw          A E                                    IMAP listing record (``store.listing``): INTERNALDATE,
                                                      ENVELOPE, BODYSTRUCTURE, BODY in wire form, write-once
jmapw          A E                                    JMAP listing record (``mime.jmap_listing``): the
                                                      convenience properties, preview, hasAttachment
                                                      in JMAP form, write-once
commits        G                                      {a: A, s: S, k: kinds, m: [M...]} for other processes
=============  =====================================  ===========================================

The change log keeps one entry per object, at the modseq of its last change: the op is
``c`` (created, ``c`` field = its creation modseq), ``u`` (updated), ``k`` (only counts
changed, Mailbox), ``d`` (destroyed).  "Changes since S" is a range scan from S+1: its
cost is the number of objects changed since S.
"""

from __future__ import annotations

import hashlib
import struct

TABLES = (
    "meta", "account", "login", "token", "mailbox", "mbxname", "email", "summary", "text", "uid", "deleted",
    "mbxmod", "expunged", "recv", "recvall", "thread", "mbxthread", "msgref", "blob",
    "blobref", "changelog", "chlast", "state", "commits", "dedup", "upload", "object",
    "srch", "fts", "ftsmeta", "imapw", "ftstok", "ftsgram", "jmapw", "ftss",
)

# 1: the first; 2 (2026-12-07): ``imaph`` values of version 2 (``store.listing``), which a
# dualmail of format 1 cannot read.  A store of format 1 is marked 2 when this version
# opens it (``Store._check_format``): an older dualmail then refuses it plainly instead of
# answering HEADER.FIELDS with NO.  3 (2026-12-08): ``imaph`` values of version 3 (the
# answers to the common HEADER.FIELDS sets stored ahead), marked the same way.
FORMAT_VERSION = 3

# Change-log kinds (one byte each).
KIND_MAILBOX = b"M"
KIND_EMAIL = b"E"
KIND_THREAD = b"T"
KIND_IDENTITY = b"I"
KIND_SUBMISSION = b"S"
KIND_VACATION = b"V"
KIND_QUOTA = b"Q"

_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")

u32 = _u32.pack
u64 = _u64.pack


def un32(b: bytes, off: int = 0) -> int:
    return _u32.unpack_from(b, off)[0]


def un64(b: bytes, off: int = 0) -> int:
    return _u64.unpack_from(b, off)[0]


def h16(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


def acct(a: int) -> bytes:
    return _u32.pack(a)


def mailbox(a: int, m: int) -> bytes:
    return _u32.pack(a) + _u32.pack(m)


def mbxname(a: int, parent: int, name: str) -> bytes:
    """Sibling names are unique exactly (IMAP names are case-sensitive); INBOX is special-cased."""
    return _u32.pack(a) + _u32.pack(parent) + name.encode("utf-8", "surrogateescape")


def email(a: int, e: int) -> bytes:
    return _u32.pack(a) + _u64.pack(e)


def uid(a: int, m: int, u: int) -> bytes:
    return _u32.pack(a) + _u32.pack(m) + _u32.pack(u)


def mbx_seq(a: int, m: int, s: int, u: int) -> bytes:
    """Key of ``mbxmod`` and ``expunged``: account, mailbox, modseq, uid."""
    return _u32.pack(a) + _u32.pack(m) + _u64.pack(s) + _u32.pack(u)


def recv(a: int, m: int, r: int, e: int) -> bytes:
    return _u32.pack(a) + _u32.pack(m) + _u64.pack(max(r, 0)) + _u64.pack(e)


def recvall(a: int, r: int, e: int) -> bytes:
    return _u32.pack(a) + _u64.pack(max(r, 0)) + _u64.pack(e)


def thread(a: int, t: int) -> bytes:
    return _u32.pack(a) + _u64.pack(t)


def mbxthread(a: int, m: int, t: int) -> bytes:
    return _u32.pack(a) + _u32.pack(m) + _u64.pack(t)


def msgref(a: int, message_id: str, e: int | None = None) -> bytes:
    k = _u32.pack(a) + h16(message_id)
    return k if e is None else k + _u64.pack(e)


def dedup(a: int, m: int, key: bytes) -> bytes:
    return _u32.pack(a) + _u32.pack(m) + hashlib.blake2b(key, digest_size=16).digest()


def blob(a: int, sha: bytes) -> bytes:
    return _u32.pack(a) + sha


def upload(a: int, when: int, sha: bytes | None = None) -> bytes:
    k = _u32.pack(a) + _u64.pack(max(when, 0))
    return k if sha is None else k + sha


def obj(a: int, kind: bytes, n: int | None = None) -> bytes:
    k = _u32.pack(a) + kind
    return k if n is None else k + _u64.pack(n)


def changelog(a: int, kind: bytes, s: int, obj: int | None = None) -> bytes:
    k = _u32.pack(a) + kind + _u64.pack(s)
    return k if obj is None else k + _u64.pack(obj)


def chlast(a: int, kind: bytes, obj: int) -> bytes:
    return _u32.pack(a) + kind + _u64.pack(obj)


def state(a: int, kind: bytes) -> bytes:
    return _u32.pack(a) + kind


def ftsgram(a: int, gram: bytes, term: bytes = b"") -> bytes:
    """Key of ``ftsgram``: account, trigram (b"": the cut terms), NUL, term."""
    return _u32.pack(a) + gram + b"\x00" + term


def fts(a: int, token: bytes, first: int | None = None) -> bytes:
    """Key of ``fts``: account, token, NUL, first email number of the postings chunk."""
    k = _u32.pack(a) + token + b"\x00"
    return k if first is None else k + _u64.pack(first)


# -- the outbound queue and sending limits (``store/outbox.py``, ``dualmail.submission``) --
#
# =============  =====================================  ===========================================
# table          key                                    value
# =============  =====================================  ===========================================
# outq           A Q(u64)                               queue entry: {sub, kind, from, rcpt: {addr:
#                                                       {state, reply}}, created, due, tries, ...}
# outmsg         A Q                                    the bytes for the smarthost (Received added,
#                                                       Bcc removed); the stored Email stays exact
# outdue         u32(0) R(due) A Q                      b""  -- the one global "what is due" index;
#                                                       account 0 is never allocated, so deleting an
#                                                       account never touches it (stale keys whose
#                                                       entry is gone are dropped by the runner)
# sendlog        A R(time) Q                            u32 recipients -- what the account sent in
#                                                       the last day (RFC 8621 §9 sending limits)
# vacsent        A H(sender, lowercase)                 {t: time replied, v: VacationResponse state}
#                                                       -- RFC 3834 §2 "once per sender per period"
# meta           b"next_outq"                           last queue number (u64)
# =============  =====================================  ===========================================

TABLES = TABLES + ("outq", "outmsg", "outdue", "sendlog", "vacsent")


# -- IMAP-only per-mailbox data (not JMAP-visible: writing them takes no modseq) -----------
#
# =============  =====================================  ===========================================
# table          key                                    value
# =============  =====================================  ===========================================
# urlauthkey     A M                                    the mailbox access key of RFC 4467 §3 (32
#                                                       random octets); RESETKEY replaces/deletes it
# savedate       A M U                                  u64 epoch seconds: when the message entered
#                                                       that mailbox (RFC 8514), written with the
#                                                       membership; absent for older memberships
# =============  =====================================  ===========================================

TABLES = TABLES + ("urlauthkey", "savedate")


def outq(a: int, q: int | None = None) -> bytes:
    k = _u32.pack(a)
    return k if q is None else k + _u64.pack(q)


def outdue(due: int | None = None, a: int = 0, q: int = 0) -> bytes:
    k = _u32.pack(0)
    return k if due is None else k + _u64.pack(max(due, 0)) + _u32.pack(a) + _u64.pack(q)


def sendlog(a: int, when: int, q: int | None = None) -> bytes:
    k = _u32.pack(a) + _u64.pack(max(when, 0))
    return k if q is None else k + _u64.pack(q)


def vacsent(a: int, sender: str) -> bytes:
    return _u32.pack(a) + h16(sender.strip().lower())


# -- IMAP METADATA (RFC 5464, ``store/metadata.py``) --
#
# =============  =====================================  ===========================================
# metadata       A M(0 = server) entry (lowercase)      the entry's value (raw octets)
# =============  =====================================  ===========================================
#
# A METADATA write takes no modseq (it is invisible to JMAP and to CONDSTORE); its commit
# log record carries ``md: [[M, entry], ...]`` so other sessions hear of it.

TABLES = TABLES + ("metadata",)


# -- push subscriptions and their delivery queue (``store/pushsubs.py``, ``dualmail.push``) --
#
# =============  =====================================  ===========================================
# table          key                                    value
# =============  =====================================  ===========================================
# pushsub        A P(u64)                               {deviceClientId, url, keys, code, verified,
#                                                       expires, types, states, vapid, created}
#                                                       -- RFC 8620 §7.2, owned by the user of A;
#                                                       not part of any JMAP type state
# pushq          A P                                    {verify, change, gen, due, tries} -- at most
#                                                       one pending delivery per subscription
# pushdue        u32(0) R(due, ms) A P                  b""  -- the global "what is due" index
#                                                       (stale keys are dropped by the runner)
# meta           b"next_pushsub"                        last subscription number (u64)
# =============  =====================================  ===========================================

TABLES = TABLES + ("pushsub", "pushq", "pushdue")


def pushsub(a: int, p: int | None = None) -> bytes:
    k = _u32.pack(a)
    return k if p is None else k + _u64.pack(p)


def pushdue(due: int | None = None, a: int = 0, p: int = 0) -> bytes:
    k = _u32.pack(0)
    return k if due is None else k + _u64.pack(max(due, 0)) + _u32.pack(a) + _u64.pack(p)


# -- IMAP per-membership indexes and stored header fields (``store/imapidx.py``) --
#
# =============  =====================================  ===========================================
# table          key                                    value
# =============  =====================================  ===========================================
# imapm          A M U                                  E, modseq, size, recv, sent date, deleted,
#                                                       keywords (packed, ``imapidx._ROW``): what a
#                                                       listing FETCH needs without the JSON record
# unseen         A M U                                  E (u64) -- memberships without $seen
# imaps          A M kind(1) value(u64, +2**63) U       E (u64) -- SORT orders: D sent date,
#                                                       A arrival, Z size
# imaph          A E                                    the header fields clients ask for in
#                                                       HEADER.FIELDS, cut out at ingest, with the
#                                                       answers to the common sets
#                                                       (``store.listing.header_record``), write-once
# imapb          A E                                    the BODYSTRUCTURE in wire form alone (the
#                                                       same bytes as in ``imapw``), write-once: a
#                                                       FETCH of BODYSTRUCTURE without ENVELOPE reads
#                                                       ~180 bytes a message, not the ~800 of imapw
# =============  =====================================  ===========================================
#
# Written in the membership's (the Email's) transaction; a mailbox record with "ix": 1 has
# complete imapm/unseen/imaps rows (older ones: ``dualmail check --upgrade``, which also
# gives older Emails their imaph and imapb rows).

TABLES = TABLES + ("imapm", "unseen", "imaps", "imaph", "imapb")
