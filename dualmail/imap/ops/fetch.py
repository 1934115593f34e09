"""FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 8970 PREVIEW).

Messages are rendered in batches of ``config.fetch_batch``, each from its own short read
view, and yielded as they are made, so the protocol can stream a big FETCH under
backpressure without holding a read transaction or the whole answer.  Reading a body
section without .PEEK sets \\Seen first, in one write (RFC 9051 §6.4.5).  Ghosts (messages
expunged elsewhere, not yet reported) are skipped and the command ends NO [EXPUNGEISSUED]
(RFC 2180 §4.1.2).

CONDSTORE (RFC 7162 §3.1.4): MODSEQ and CHANGEDSINCE enable CONDSTORE; CHANGEDSINCE reads
the mailbox's modseq index (O(changes), the requested set is never expanded) and adds
MODSEQ.  ``UID FETCH ... (CHANGEDSINCE m VANISHED)`` (§3.2.6, QRESYNC only) first sends
``VANISHED (EARLIER)`` from the expunge log.  FLAGS set implicitly by a body fetch carry UID
and MODSEQ once CONDSTORE is on (§3.2.4).  Imports no twisted.internet.
"""

from __future__ import annotations

import struct
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapBad, ImapNo
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.sequence import ResolvedSet
from dualmail.imap.selected import SYSTEM_FLAGS
from dualmail.mail.ops import membership_modseq
from dualmail.mime import imap_body
from dualmail.model import ids
from dualmail.store import imapidx, keys as K, listing as wire

if TYPE_CHECKING:
    from dualmail.imap.selected import SelectedMailbox
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]

_NEEDS_SUMMARY = frozenset({"ENVELOPE", "BODYSTRUCTURE", "PREVIEW", "BODY", "BINARY",
                            "BINARY.SIZE", "RFC822.HEADER", "RFC822.TEXT"})
_NEEDS_RAW = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BINARY", "BINARY.SIZE"})


internal_date = wire.internal_date
# attributes the listing fast path renders from the email record and its stored listing
_LISTING = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
                      "BODY", "MODSEQ"})


def sets_seen(att: c.FetchAtt) -> bool:
    if att.name in ("RFC822", "RFC822.TEXT"):
        return True
    return att.name in ("BODY", "BINARY") and att.section is not None and not att.peek


def resolve(s: Session, seqset: Any, uid: bool) -> list[tuple[int, int]]:
    assert s.selected is not None
    try:
        return s.selected.resolve(seqset, uid, s.saved)
    except ValueError as e:
        raise ImapBad(str(e)) from None


def changed(s: Session, seqset: Any, uid: bool, since: int) -> tuple[list[tuple[int, int]], int]:
    """(seq, uid) of the messages in ``seqset`` whose MODSEQ is above ``since``, ascending,
    and the mailbox's UIDNEXT - 1; read from the modseq index, O(changes)."""
    sel = s.selected
    assert sel is not None and s.account is not None
    n = sel.exists
    if uid:
        want = seqset.resolve(sel.uids[-1] if n else 0, s.saved if s.saved is not None else None)
    else:
        saved = None
        if s.saved is not None:
            saved = ResolvedSet.from_ints(q for q in (sel.seq_of(u) for u in s.saved) if q)
        if n == 0 and not (seqset.uses_saved and all(i == "$" for i in seqset.items)):
            raise ImapBad("No messages")
        want = seqset.resolve(n, saved, clip=False)
        if want.max is not None and want.max > n:
            raise ImapBad("Invalid message sequence number")
    out: list[tuple[int, int]] = []
    with s.store.read(s.account) as view:
        top = int(view.require_mailbox(sel.mailbox)["uidnext"]) - 1
        for u, _ms in view.changed_since(sel.mailbox, since):
            seq = sel.seq_of(u)
            if seq is not None and (u if uid else seq) in want:
                out.append((seq, u))
    return out, top


def fetch(s: Session, cmd: c.Fetch) -> Gen:
    sel = s.selected
    assert sel is not None and s.account is not None
    mods = cmd.modifiers
    if mods.vanished and not s.qresync:
        raise ImapBad("VANISHED needs ENABLE QRESYNC")  # RFC 7162 §3.2.6
    atts = list(cmd.attributes)
    keep_uid = any(a.name == "UID" for a in atts)  # UIDONLY: only if asked (RFC 9586 §3.3)
    if mods.changed_since is not None:
        msgs, top = changed(s, cmd.sequence_set, cmd.uid, mods.changed_since)
    else:
        msgs = resolve(s, cmd.sequence_set, cmd.uid)
    if mods.partial is not None:
        # RFC 9394 §3.3: the given range of the set's messages first, then CHANGEDSINCE
        from dualmail.imap.ops.search import _partial

        page = {u for _q, u in _partial(resolve(s, cmd.sequence_set, cmd.uid), mods.partial)}
        msgs = [(q, u) for q, u in msgs if u in page]
    if mods.changed_since is not None or any(a.name == "MODSEQ" for a in atts):
        yield from s.enable_condstore()
        if mods.changed_since is not None and not any(a.name == "MODSEQ" for a in atts):
            atts.append(c.FetchAtt("MODSEQ"))  # RFC 7162 §3.1.4.1
    if cmd.uid and not any(a.name == "UID" for a in atts):
        atts.insert(0, c.FetchAtt("UID"))
    if mods.changed_since is not None:
        if mods.vanished:
            from dualmail.imap.ops.select import vanished_since

            want = cmd.sequence_set.resolve(max(top, sel.last_uid), s.saved)
            with s.store.read(s.account) as view:
                gone = vanished_since(view, sel, mods.changed_since, want, top)
            if gone:
                yield r.vanished(gone, earlier=True)
    s.progress_start()
    flagged_now: set[int] = set()
    if not sel.readonly and any(sets_seen(a) for a in atts):
        flagged_now = _mark_seen(s, sel, [u for _s, u in msgs])
    want_flags = any(a.name == "FLAGS" for a in atts)
    batch = max(1, s.config.fetch_batch)
    hdr_ids = _stored_headers(atts)
    if not flagged_now and hdr_ids is not None and not sel.index_ready:
        missing = yield from _headers(s, sel, msgs, atts, hdr_ids, batch, keep_uid, cmd.tag)
        if missing:
            return r.Tagged(cmd.tag, "NO", "Some of the requested messages no longer exist",
                            r.code("EXPUNGEISSUED"))
        return r.Tagged(cmd.tag, "OK", "FETCH completed")
    if not flagged_now and all((a.name in _LISTING and a.section is None) or _stored_header(a) is not None
                               for a in atts):  # (Thunderbird: UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS])
        missing = yield from _listing(s, sel, msgs, atts, batch, keep_uid, cmd.tag)
        if missing:
            return r.Tagged(cmd.tag, "NO", "Some of the requested messages no longer exist",
                            r.code("EXPUNGEISSUED"))
        return r.Tagged(cmd.tag, "OK", "FETCH completed")
    missing = False
    for i in range(0, len(msgs), batch):
        out: list[r.Response] = []
        with s.store.read(s.account) as view:
            part = msgs[i:i + batch]
            es = _emails_of(view, sel, part)
            for (seq, uid), e, rec in zip(part, es, view.emails(es)):
                if rec is None or e is None:
                    missing = True
                    continue
                items = _render(s, sel, view, e, rec, uid, atts)
                if uid in flagged_now:
                    names = {n for n, _v in items}
                    if not want_flags:
                        items.append(("FLAGS", r.flag_list(sel.flags_of(rec, uid, s.rev2))))
                    if s.condstore:  # RFC 7162 §3.2.4: UID and MODSEQ with implicit \Seen
                        if "UID" not in names:
                            items.insert(0, ("UID", r.number(uid)))
                        if "MODSEQ" not in names:
                            items.append(("MODSEQ", _modseq(rec, sel.mailbox)))
                if (want_flags or uid in flagged_now) and (
                        not s.condstore or any(n == "MODSEQ" for n, _v in items)):
                    sel.pending_flags.discard(uid)  # the client has just been told
                out.extend(sel.fetch(seq, items, uid, keep_uid))
        if out:  # one write per batch, not one per message
            yield b"".join(s.encode(x) for x in out)
        if i + batch < len(msgs) and (tick := s.progress(cmd.tag, i + batch, len(msgs))):
            yield tick  # RFC 9585
    if missing:
        return r.Tagged(cmd.tag, "NO", "Some of the requested messages no longer exist",
                        r.code("EXPUNGEISSUED"))
    return r.Tagged(cmd.tag, "OK", "FETCH completed")


def _emails_of(view: Any, sel: SelectedMailbox, part: list[tuple[int, int]]) -> list[int | None]:
    """The Email of each (seq, uid) of ``part`` in the selected mailbox, from one batched
    read of its UID map (a range read when the UIDs are close together); None where the
    message is gone (or expunged for this session)."""
    lo, hi = part[0][1], part[-1][1]  # (ascending: ``resolve``, ``changed``)
    if 0 <= hi - lo < 2 * len(part):
        a, m = view.a, sel.mailbox
        raws = _get_ascending(view.kv, "uid", [K.uid(a, m, uid) for _seq, uid in part])
        u64 = _U64.unpack_from
        es: list[int | None] = [None if raw is None else u64(raw)[0] for raw in raws]
    else:
        es = view.emails_at(sel.mailbox, [uid for _seq, uid in part])
    gone = sel.gone
    if not gone:
        return es
    return [None if uid in gone else e for (_seq, uid), e in zip(part, es)]


def _get_ascending(kv: Any, table: str, keys: list[bytes]) -> list[bytes | None]:
    """``kv.get_many`` of ``keys`` that lie close together (a run of UIDs, Emails stored
    one after another): one range read from the lowest to the highest."""
    got = dict(kv.range(table, min(keys), max(keys) + b"\x00", expect=len(keys)))
    return [got.get(k) for k in keys]


def _listing(s: Session, sel: SelectedMailbox, msgs: list[tuple[int, int]],
             atts: list[c.FetchAtt], batch: int, keep_uid: bool = True,
             tag: str = "*") -> Generator[Any, None, bool]:
    """The listing FETCH (no body section): each batch is answered from the mailbox's packed
    IMAP index rows (``_listing_indexed``) or, before that index is built, from the records
    and stored listings read in one ``get_many`` each (``_listing_records``), and sent as
    ONE write of the joined response lines.  Byte-identical to ``_render``; True if some
    message no longer exists."""
    m = sel.mailbox
    # stored header fields (``_stored_header``) go by a key of their own: H0, H1, ...
    hdrs: dict[str, tuple[bytes, frozenset[int], Any]] = {}
    names = []
    for a in atts:
        if a.section is None:
            names.append(a.name)
            continue
        key = "H%d" % len(hdrs)
        ids_ = _stored_header(a)
        assert ids_ is not None
        hdrs[key] = (a.response_name().encode("ascii"), ids_, a.partial)
        names.append(key)
    if sel.uidonly and not keep_uid and len(names) > 1:
        names = [n for n in names if n != "UID"]  # RFC 9586 §3.3: the number is the UID
        atts = [a for a in atts if a.name != "UID"]
    want_flags = "FLAGS" in names
    if want_flags and s.condstore and "MODSEQ" not in names:
        want_flags = False  # pending flag reports stay pending (as in ``fetch``)
    flag_cache: dict[tuple[Any, ...], bytes] = {}
    missing = False
    for i in range(0, len(msgs), batch):
        part = msgs[i:i + batch]
        with s.store.read(s.account) as view:
            if not sel.index_ready:  # (once built, an index stays built: no read per batch)
                sel.index_ready = imapidx.ready(view.mailbox(m))
            if sel.index_ready:
                out, gone = _listing_indexed(s, sel, view, part, names, flag_cache, want_flags, hdrs, atts)
            elif hdrs:  # (a store from before the IMAP index: until ``check --upgrade``)
                out, gone = _render_batch(s, sel, view, part, _emails_of(view, sel, part), atts, want_flags)
            else:
                out, gone = _listing_records(s, sel, view, part, names, flag_cache, want_flags)
            missing = missing or gone
        if out:
            yield b"".join(out)
        if i + batch < len(msgs) and (tick := s.progress(tag, i + batch, len(msgs))):
            yield tick  # RFC 9585
    return missing


def _listing_records(s: Session, sel: SelectedMailbox, view: Any, part: list[tuple[int, int]],
                     names: list[str], flag_cache: dict[tuple[Any, ...], bytes],
                     want_flags: bool) -> tuple[list[bytes], bool]:
    """One batch of ``_listing`` from the Email records and stored listing rows (a mailbox
    whose IMAP index is not built yet).  The lines, and True if a message no longer exists."""
    m = sel.mailbox
    rev2 = s.rev2
    uidonly = sel.uidonly
    key = str(m)
    lo, hi = part[0][1], part[-1][1]
    out: list[bytes] = []
    missing = False
    if hi - lo < 2 * len(part):  # dense (1:*): one ordered range read
        emails = dict(view.uid_items(m, lo, hi))
        es = [None if uid in sel.gone else emails.get(uid) for _seq, uid in part]
    else:
        es = _emails_of(view, sel, part)
    recs = view.emails(es)  # one batched read each (one round trip on PostgreSQL)
    lsts = view.listings(es, recs)
    for (seq, uid), rec, lst in zip(part, recs, lsts):
        if rec is None or lst is None:
            missing = True
            continue
        items: list[bytes] = []
        for name in names:
            if name == "UID":
                items.append(b"UID %d" % uid)
            elif name == "FLAGS":
                ms = rec["mbx"].get(key)
                fk = (tuple(rec["kw"]), bool(ms and ms[1]))
                flags = flag_cache.get(fk)
                if flags is None:
                    flags = flag_cache[fk] = r.flag_list(sel.flags_of(rec, uid, True))
                    if sel._new_keywords:  # RFC 9051 §7.3.5: * FLAGS first
                        sel._new_keywords = False
                        out.append(s.encode(r.flags(SYSTEM_FLAGS + sorted(sel.keywords))))
                if not rev2 and sel.is_recent(uid):
                    flags = flags[:-1] + (b" \\Recent)" if len(flags) > 2 else b"\\Recent)")
                items.append(b"FLAGS " + flags)
            elif name == "INTERNALDATE":
                items.append(b"INTERNALDATE " + lst.internaldate)
            elif name == "RFC822.SIZE":
                items.append(b"RFC822.SIZE %d" % int(rec["size"]))
            elif name == "ENVELOPE":
                items.append(b"ENVELOPE " + lst.envelope)
            elif name == "BODYSTRUCTURE":
                items.append(b"BODYSTRUCTURE " + lst.bodystructure)
            elif name == "BODY":
                items.append(b"BODY " + lst.body)
            else:  # MODSEQ
                items.append(b"MODSEQ " + _modseq(rec, m))
        if want_flags:
            sel.pending_flags.discard(uid)  # the client has just been told
        if uidonly:
            out.append(b"* %d UIDFETCH (" % uid + b" ".join(items) + b")\r\n")
        else:
            out.append(b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n")
    return out, missing


def _index_rows(kv: Any, a: int, m: int, part: list[tuple[int, int]],
                gone: set[int]) -> tuple[list[tuple[int, int, bytes]], bool]:
    """(seq, UID, packed ``imapm`` row) of each message of ``part`` still stored, and True
    if some message no longer exists.  A dense ``part`` (1:*) is one ordered range read;
    when it holds one row per message asked (a run of sequence numbers, every UID up to
    the session's last one is in its map, see ``search._known``) the rows are zipped in
    step with ``part``, with no lookup per message."""
    lo, hi = part[0][1], part[-1][1]
    n = len(part)
    if hi - lo < 2 * n:
        got = list(imapidx.row_items(kv, a, m, lo, hi, expect=n))
        if (len(got) == n and part[-1][0] - part[0][0] == n - 1 and not gone
                and K.un32(got[0][0], 8) == lo and K.un32(got[-1][0], 8) == hi):
            return [(seq, uid, v) for (seq, uid), (_k, v) in zip(part, got)], False
        rows = {K.un32(k, 8): v for k, v in got}
        vals = [None if uid in gone else rows.get(uid) for _seq, uid in part]
    else:
        want = [(seq, uid) for seq, uid in part if uid not in gone]
        fetched = iter(kv.get_many("imapm", [K.uid(a, m, uid) for _seq, uid in want]))
        vals = [None if uid in gone else next(fetched) for _seq, uid in part]
    found = [(seq, uid, v) for (seq, uid), v in zip(part, vals) if v is not None]
    return found, len(found) < n


def _render_batch(s: Session, sel: SelectedMailbox, view: Any, part: list[tuple[int, int]],
                  es: list[int | None], atts: list[c.FetchAtt], want_flags: bool) -> tuple[list[bytes], bool]:
    """``part`` through the general renderer (no \\Seen is set: every att is a PEEK or a
    listing item).  The lines, and True if a message no longer exists."""
    out: list[bytes] = []
    missing = False
    for (seq, uid), e, rec in zip(part, es, view.emails(es)):
        if rec is None or e is None:
            missing = True
            continue
        if want_flags:
            sel.pending_flags.discard(uid)  # the client is being told
        out.extend(s.encode(x) for x in sel.fetch(seq, _render(s, sel, view, e, rec, uid, atts), uid, True))
    return out, missing


def _listing_indexed(s: Session, sel: SelectedMailbox, view: Any, part: list[tuple[int, int]],
                     names: list[str], flag_cache: dict[tuple[Any, ...], bytes],
                     want_flags: bool, hdrs: dict[str, tuple[bytes, frozenset[int], Any]] | None = None,
                     atts: list[c.FetchAtt] | None = None) -> tuple[list[bytes], bool]:
    """One batch of ``_listing`` from the mailbox's ``imapm`` rows (``store.imapidx``): the
    flags, size and modseq come from the packed row, no email record is decoded; the
    listing row is sliced in place; header fields (``hdrs``) are cut from the stored
    ``imaph`` value (an Email stored before that table goes through ``_render``, with
    ``atts``).  The lines, and True if a message no longer exists."""
    m = sel.mailbox
    kv, a = view.kv, view.a
    need_listing = any(n in ("INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE", "BODY") for n in names)
    recent = bool(sel.recent) and not s.rev2
    one_range = len(sel.recent) == 1  # the usual case: one test, not a scan of the ranges
    rlo, rhi = sel.recent[0] if one_range else (0, 0)
    key = str(m)
    uidonly = sel.uidonly
    out: list[bytes] = []
    row_unpack = imapidx.ROW.unpack_from
    row_size = imapidx.ROW.size
    head_unpack = wire.HEAD.unpack_from
    head_size = wire.HEAD.size
    found, missing = _index_rows(kv, a, m, part, sel.gone)
    want_flags_item = "FLAGS" in names
    # The listing rows (``imapw``, key A E): Emails are usually stored in UID order, so
    # one range read holds exactly the batch's, in step with ``found`` (each checked in the
    # loop); otherwise, or where a row is out of step, they are looked up by Email.
    got: list[tuple[bytes, bytes]] = []
    stored: dict[bytes, bytes] | None = None  # by the Email's u64
    acct = K.acct(a)
    want_env, want_bs, want_body, want_idate = ("ENVELOPE" in names, "BODYSTRUCTURE" in names,
                                                "BODY" in names, "INTERNALDATE" in names)
    # BODYSTRUCTURE without the other listing parts: the ``imapb`` rows, the BODYSTRUCTURE
    # alone (a quarter of the bytes of ``imapw``); a batch of Emails stored before that
    # table (fewer rows than messages) reads ``imapw`` as before
    bs_only = want_bs and not (want_env or want_body or want_idate) and not hdrs
    if need_listing and found:
        first, last = K.un64(found[0][2]), K.un64(found[-1][2])
        dense = 0 <= last - first < 2 * len(found)
        if bs_only:
            if dense:
                got = list(kv.range("imapb", acct + K.u64(first), acct + K.u64(last + 1),
                                    expect=len(found)))
            if len(got) != len(found) or K.un64(got[0][0], 4) != first or K.un64(got[-1][0], 4) != last:
                bs_only, got = False, []
        if not bs_only:
            if dense:  # one range read
                got = list(kv.range("imapw", acct + K.u64(first), acct + K.u64(last + 1),
                                    expect=len(found)))
            if len(got) != len(found):
                stored = _by_email(got) if got else dict(zip(
                    [v[:8] for _q, _u, v in found],
                    kv.get_many("imapw", [acct + v[:8] for _q, _u, v in found])))
                got = []
    line = _LINE_UIDONLY if uidonly else _LINE
    hdrs = hdrs or {}
    hkeys = list(hdrs)
    fields = [_FIELD[n] if n not in hdrs else hdrs[n][0].replace(b"%", b"%%") + b" %b" for n in names]
    fmt = line + b" ".join(fields) + b")\r\n"
    slots = {**_SLOT, **{k: len(_SLOT) + 1 + j for j, k in enumerate(hkeys)}}
    pick = itemgetter(0, *[slots[n] for n in names])  # names is never empty
    hvs: Any = repeat(None)
    hwant = [hdrs[k] for k in hkeys]
    if hkeys and found:
        hvals = _by_email_rows(kv, "imaph", acct, found)
        if names in (["UID", "H0"], ["H0"]) and hwant[0][2] is None:
            lines = _header_lines(found, hvals, fmt, hwant[0][1], uidonly, len(names) == 2)
            if lines is not None:
                return lines, missing
        hvs = iter(hvals)
    if bs_only and got and names in (["UID", "BODYSTRUCTURE"], ["BODYSTRUCTURE"]):
        lines = _bodystructure_lines(found, got, fmt, uidonly, len(names) == 2)
        if lines is not None:
            return lines, missing
    header_fields, body_value = wire.header_fields, _body_value
    flags = b""
    # one HEADER.FIELDS, whole (Thunderbird's new-mail FETCH): its value made in place
    one_ids = hwant[0][1] if len(hwant) == 1 and hwant[0][2] is None else None
    hfs: Any
    for (seq, uid, v), (wk, lv), hv in zip(found, got or repeat((b"", None)), hvs):
        e, modseq, size, recv, _date, deleted = row_unpack(v)
        hfs = ()
        data: bytes | None = b""
        if one_ids is not None:
            data = header_fields(hv, one_ids) if hv else None
            if data is not None:  # (fields and the blank line end in CRLF: a literal)
                hfs = (b"{%d}\r\n%b" % (len(data), data) if data else body_value(data),)
        elif hkeys:
            hfs = []
            for _name, ids_, partial in hwant:
                data = header_fields(hv, ids_) if hv else None
                if data is None:
                    break
                hfs.append(body_value(data if partial is None else _partial(data, partial)))
        if data is None:  # stored before ``imaph``
            more, gone = _render_batch(s, sel, view, [(seq, uid)], [e], atts or [], want_flags)
            out += more
            missing = missing or gone
            continue
        idate = env = bs = body = b""
        if bs_only:
            if wk[4:] == v[:8]:  # in step
                bs = lv
            else:  # not in step: this Email's row of the batch's, or rendered
                if stored is None:
                    stored = _by_email(got)
                bs = stored.get(v[:8])
                if bs is None:
                    lst = view.listing(e, {"recv": recv})
                    if lst is None:
                        missing = True
                        continue
                    bs = lst.bodystructure
        elif need_listing:
            if wk[4:] != v[:8]:  # not in step (or no range read): by Email
                if stored is None:
                    stored = _by_email(got)
                lv = stored.get(v[:8])
            if lv is not None:
                version, stored_recv, li, le, lb = head_unpack(lv)
            if lv is None or version != wire.VERSION or stored_recv != recv:
                lst = view.listing(e, {"recv": recv})  # stored before imapw: rendered
                if lst is None:
                    missing = True
                    continue
                lv = wire.record_of(lst)
                _v, _r, li, le, lb = head_unpack(lv)
            b = head_size + li
            c_ = b + le
            d = c_ + lb
            if want_idate:
                idate = lv[head_size:b]
            if want_env:
                env = lv[b:c_]
            if want_bs:
                bs = lv[c_:d]
            if want_body:
                body = lv[d:]
        if want_flags_item:
            kwb = v[row_size:]
            fk = (kwb, deleted)
            flags = flag_cache.get(fk)
            if flags is None:
                kws = kwb.decode("utf-8", "surrogateescape").split(" ") if kwb else []
                fake = {"kw": kws, "mbx": {key: [uid, deleted, modseq]}}
                flags = flag_cache[fk] = r.flag_list(sel.flags_of(fake, uid, True))
                if sel._new_keywords:  # RFC 9051 §7.3.5: * FLAGS first
                    sel._new_keywords = False
                    out.append(s.encode(r.flags(SYSTEM_FLAGS + sorted(sel.keywords))))
            if recent and (rlo <= uid < rhi if one_range else sel.is_recent(uid)):
                flags = flags[:-1] + (b" \\Recent)" if len(flags) > 2 else b"\\Recent)")
            if want_flags:
                sel.pending_flags.discard(uid)  # the client has just been told
        out.append(fmt % pick((uid if uidonly else seq, uid, flags, size, idate, env, bs, body, modseq, *hfs)))
    return out, missing


def _bodystructure_lines(found: list[tuple[int, int, bytes]], got: list[tuple[bytes, bytes]],
                         fmt: bytes, uidonly: bool, with_uid: bool) -> list[bytes] | None:
    """``UID FETCH ... (BODYSTRUCTURE)`` (what clients that read structure first send for
    a whole mailbox): each line straight from the batch's ``imapb`` rows, in step with its
    ``imapm`` rows.  None when a row is out of step: the general loop then answers."""
    out: list[bytes] = []
    ap = out.append
    for (seq, uid, v), (wk, bs) in zip(found, got):
        if wk[4:] != v[:8]:
            return None
        if with_uid:
            ap(fmt % (uid if uidonly else seq, uid, bs))
        else:
            ap(fmt % (uid if uidonly else seq, bs))
    return out


def _header_lines(found: list[tuple[int, int, bytes]], hvals: list[bytes | None], fmt: bytes,
                  ids: frozenset[int], uidonly: bool, with_uid: bool) -> list[bytes] | None:
    """``UID FETCH ... (BODY.PEEK[HEADER.FIELDS (...)])`` of stored fields (what mail
    clients send for new mail): each line from the message's ``imaph`` row.  None when a
    row is missing (an Email stored before the table): the general loop then answers."""
    header_fields, body_value = wire.header_fields, _body_value
    out: list[bytes] = []
    ap = out.append
    for (seq, uid, _v), hv in zip(found, hvals):
        data = header_fields(hv, ids) if hv else None
        if data is None:
            return None
        # (fields and the blank line end in CRLF: a literal, as ``_body_value`` makes)
        value = b"{%d}\r\n%b" % (len(data), data) if data else body_value(data)
        if with_uid:
            ap(fmt % (uid if uidonly else seq, uid, value))
        else:
            ap(fmt % (uid if uidonly else seq, value))
    return out


def _by_email_rows(kv: Any, table: str, acct: bytes, found: list[tuple[int, int, bytes]]) -> list[bytes | None]:
    """The ``table`` row (key A E) of each Email of ``found`` (its ``imapm`` rows), None
    where there is none: Emails stored one after another are one range read, zipped in
    step with ``found`` (each checked); out of step, by Email; far apart, one get each."""
    n = len(found)
    first, last = K.un64(found[0][2]), K.un64(found[-1][2])
    if 0 <= last - first < 2 * n:
        rows = list(kv.range(table, acct + K.u64(first), acct + K.u64(last + 1), expect=n))
        if len(rows) == n:
            vals = [hv if hk[4:] == v[:8] else None for (hk, hv), (_q, _u, v) in zip(rows, found)]
            if None not in vals:
                return vals
        by = _by_email(rows)
        vals = [by.get(v[:8]) for _q, _u, v in found]
        lost = [i for i, hv in enumerate(vals) if hv is None]  # (outside the range read)
        for i, hv in zip(lost, kv.get_many(table, [acct + found[i][2][:8] for i in lost])):
            vals[i] = hv
        return vals
    return kv.get_many(table, [acct + v[:8] for _q, _u, v in found])


def _by_email(items: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """``imapw`` rows (key A E) by the Email's u64 (the key without the account)."""
    return {k[4:]: v for k, v in items}


# The listing FETCH's line: one %-template per request, filled from one tuple per message
# (``_SLOT`` indexes it); RFC 9586 §3.3 numbers UIDFETCH lines by UID.
_LINE = b"* %d FETCH ("
_LINE_UIDONLY = b"* %d UIDFETCH ("
_FIELD = {"UID": b"UID %d", "FLAGS": b"FLAGS %b", "RFC822.SIZE": b"RFC822.SIZE %d",
          "INTERNALDATE": b"INTERNALDATE %b", "ENVELOPE": b"ENVELOPE %b",
          "BODYSTRUCTURE": b"BODYSTRUCTURE %b", "BODY": b"BODY %b", "MODSEQ": b"MODSEQ (%d)"}
_U64 = struct.Struct(">Q")
_SLOT = {"UID": 1, "FLAGS": 2, "RFC822.SIZE": 3, "INTERNALDATE": 4, "ENVELOPE": 5,
         "BODYSTRUCTURE": 6, "BODY": 7, "MODSEQ": 8}


def _stored_headers(atts: list[c.FetchAtt]) -> frozenset[int] | None:
    """The ``imaph`` field ids a FETCH of UID and top-level BODY.PEEK[HEADER.FIELDS (...)]
    only needs (``store.listing.HEADER_FIELDS``); None when it asks for anything else."""
    ids: set[int] = set()
    found = False
    for a in atts:
        if a.name == "UID":
            continue
        got = _stored_header(a)
        if got is None:
            return None
        ids |= got
        found = True
    return frozenset(ids) if found else None


def _stored_header(a: c.FetchAtt) -> frozenset[int] | None:
    """The ``imaph`` field ids of ``a`` when it is a top-level BODY.PEEK[HEADER.FIELDS (...)]
    of stored fields only; else None."""
    sec = a.section
    if a.name != "BODY" or sec is None or not a.peek or sec.part or sec.text != "HEADER.FIELDS" \
            or not sec.fields:
        return None
    return wire.header_ids(sec.fields)


def _headers(s: Session, sel: SelectedMailbox, msgs: list[tuple[int, int]], atts: list[c.FetchAtt],
             ids: frozenset[int], batch: int, keep_uid: bool = True,
             tag: str = "*") -> Generator[Any, None, bool]:
    """``UID FETCH ... (BODY.PEEK[HEADER.FIELDS (...)])`` from the header fields stored at
    ingest (``imaph``): no message bytes are read and nothing is parsed; each batch reads
    its UID map entries and its header rows in one ``get_many`` each.  An Email stored
    before that table existed is answered by the general renderer (byte-identical).  True
    if some message no longer exists."""
    m = sel.mailbox
    uidonly = sel.uidonly
    if uidonly and not keep_uid:
        atts = [a for a in atts if a.name != "UID"]  # RFC 9586 §3.3: the number is the UID
    wants = [(a, wire.header_ids(a.section.fields)) if a.section is not None else (a, None) for a in atts]
    names = [a.response_name().encode("ascii") if a.name != "UID" else b"UID" for a in atts]
    header_fields, body_value = wire.header_fields, _body_value
    missing = False
    for i in range(0, len(msgs), batch):
        part = msgs[i:i + batch]
        out: list[bytes] = []
        with s.store.read(s.account) as view:
            kv, a = view.kv, view.a
            es = _emails_of(view, sel, part)
            present = [e for e in es if e is not None]
            hkeys = [K.email(a, e) for e in present]
            if present and 0 <= present[-1] - present[0] < 2 * len(present) and present == sorted(present):
                hvs = iter(_get_ascending(kv, "imaph", hkeys))  # stored one after another
            else:
                hvs = iter(kv.get_many("imaph", hkeys))
            for (seq, uid), e in zip(part, es):
                if e is None:
                    missing = True
                    continue
                hv = next(hvs)
                items: list[bytes] | None = [] if hv is not None else None
                for (att, want), name in zip(wants, names):
                    if items is None:
                        break
                    if want is None:
                        items.append(b"UID %d" % uid)
                        continue
                    data = header_fields(hv, want)
                    if data is None:  # a layout this version does not read: as without
                        items = None
                        break
                    if att.partial is not None:
                        data = _partial(data, att.partial)
                    items.append(name + b" " + body_value(data))
                if items is None:  # stored before ``imaph``, or unreadable: from the message
                    rec = view.email(e)
                    if rec is None:
                        missing = True
                        continue
                    rendered = _render(s, sel, view, e, rec, uid, atts)
                    out.extend(s.encode(x) for x in sel.fetch(seq, rendered, uid, True))
                    continue
                if uidonly:  # RFC 9586 §3.3
                    out.append(b"* %d UIDFETCH (" % uid + b" ".join(items) + b")\r\n")
                else:
                    out.append(b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n")
        if out:
            yield b"".join(out)
        if i + batch < len(msgs) and (tick := s.progress(tag, i + batch, len(msgs))):
            yield tick  # RFC 9585
    return missing


def _mark_seen(s: Session, sel: SelectedMailbox, uids: list[int]) -> set[int]:
    assert s.account is not None
    changed: set[int] = set()
    with s.store.write(s.account) as tx:
        before = int(tx.require_mailbox(sel.mailbox)["hms"])
        for u in uids:
            if u in sel.gone:
                continue
            e = tx.email_at(sel.mailbox, u)
            rec = tx.email(e) if e is not None else None
            if rec is None or "$seen" in rec["kw"]:
                continue
            tx.set_keywords(e, list(rec["kw"]) + ["$seen"])
            changed.add(u)
        modseq = tx.modseq if tx.changed else None
    sel.own_write(before, modseq)
    sel.touch(changed)
    return changed


def _modseq(rec: dict[str, Any], mailbox: int) -> bytes:
    return b"(" + r.number(membership_modseq(rec, mailbox)) + b")"


def _section_spec(section: c.Section) -> list[Any]:
    spec: list[Any] = list(section.part)
    if section.text:
        spec.append(section.text)
    if section.fields:
        spec.append(list(section.fields))
    return spec


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    start, length = partial
    return data[start:start + length]


def _whole(section: c.Section | None) -> bool:
    """``[]``: the whole message, no part, text or header fields."""
    return section is not None and not section.part and not section.text and not section.fields


def _body_value(data: bytes) -> bytes:
    """BODY[...] contents: a literal unless it is short, 7-bit and single-line."""
    if b"\n" in data or b"\r" in data or len(data) > r.MAX_QUOTED:  # (header fields, bodies)
        return b"{%d}\r\n" % len(data) + data
    return r.string(data)


def _render(s: Session, sel: SelectedMailbox, view: Any, e: int, rec: dict[str, Any],
            uid: int, atts: list[c.FetchAtt]) -> list[tuple[str, bytes]]:
    summary: dict[str, Any] | None = None
    raw: bytes | None = None

    def get_summary() -> dict[str, Any]:
        nonlocal summary
        if summary is None:
            summary = view.summary(e) or {}
        return summary

    def get_raw() -> bytes:
        nonlocal raw
        if raw is None:
            raw = view.blob(rec["blob"]) or b""
        return raw

    items: list[tuple[str, bytes]] = []
    for att in atts:
        name = att.name
        if name == "UID":
            items.append(("UID", r.number(uid)))
        elif name == "FLAGS":
            items.append(("FLAGS", r.flag_list(sel.flags_of(rec, uid, s.rev2))))
        elif name == "INTERNALDATE":
            items.append(("INTERNALDATE", r.quoted(internal_date(rec["recv"]))))
        elif name == "SAVEDATE":  # RFC 8514 §4.2; older memberships: the internal date
            saved = view.save_date(sel.mailbox, uid)
            items.append(("SAVEDATE", r.quoted(internal_date(rec["recv"] if saved is None else saved))))
        elif name == "RFC822.SIZE":
            items.append(("RFC822.SIZE", r.number(int(rec["size"]))))
        elif name == "ENVELOPE":
            items.append(("ENVELOPE", imap_body.envelope_bytes(get_summary()["envelope"])))
        elif name == "BODYSTRUCTURE":
            items.append(("BODYSTRUCTURE", imap_body.bodystructure_bytes(get_summary()["structure"], True)))
        elif name == "BODY" and att.section is None:
            items.append(("BODY", imap_body.bodystructure_bytes(get_summary()["structure"], False)))
        elif name in ("BODY", "BINARY") and att.partial is not None and raw is None \
                and _whole(att.section):
            # BODY[]<o.n> / BINARY[]<o.n> (RFC 9051 §6.4.5): the octets of the stored message
            # itself, so only those are read (with S3 blobs, one ranged GET)
            start, length = att.partial
            data = view.blob_range(rec["blob"], start, length) or b""
            if name == "BODY":
                items.append((att.response_name(), _body_value(data)))
            else:
                items.append((att.response_name(), r.literal(data, binary=b"\x00" in data)))
        elif name == "BODY":
            assert att.section is not None
            try:
                data = imap_body.section_bytes(get_raw(), get_summary()["structure"],
                                               _section_spec(att.section))
            except imap_body.SectionError as exc:
                raise ImapBad(f"Bad section: {exc}") from None
            items.append((att.response_name(), _body_value(_partial(data, att.partial))))
        elif name == "RFC822":
            items.append(("RFC822", _body_value(get_raw())))
        elif name == "RFC822.HEADER":
            data = imap_body.section_bytes(get_raw(), get_summary()["structure"], ["HEADER"])
            items.append(("RFC822.HEADER", _body_value(data)))
        elif name == "RFC822.TEXT":
            data = imap_body.section_bytes(get_raw(), get_summary()["structure"], ["TEXT"])
            items.append(("RFC822.TEXT", _body_value(data)))
        elif name in ("BINARY", "BINARY.SIZE"):
            assert att.section is not None
            try:
                data = imap_body.binary_section(get_raw(), get_summary()["structure"],
                                                list(att.section.part))
            except imap_body.UnknownCTEError:
                raise ImapNo("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
            except imap_body.SectionError as exc:
                raise ImapBad(f"Bad section: {exc}") from None
            if name == "BINARY.SIZE":
                items.append((att.response_name(), r.number(len(data))))
            else:
                data = _partial(data, att.partial)
                value = r.literal(data, binary=b"\x00" in data)
                items.append((att.response_name(), value))
        elif name == "PREVIEW":
            preview = get_summary().get("preview")
            items.append(("PREVIEW", r.nstring(preview or None, utf8=s.utf8) if preview else b"NIL"))
        elif name == "MODSEQ":
            items.append(("MODSEQ", _modseq(rec, sel.mailbox)))
        elif name == "EMAILID":
            items.append(("EMAILID", b"(" + ids.format_id(ids.EMAIL, e).encode() + b")"))
        elif name == "THREADID":
            items.append(("THREADID", b"(" + ids.format_id(ids.THREAD, int(rec["thread"])).encode() + b")"))
        else:
            raise ImapBad(f"Unknown FETCH attribute {name}")
    return items
