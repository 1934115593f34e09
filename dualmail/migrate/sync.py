"""One account from a source IMAP server into dualmail, keeping UIDs (docs/operating.md).

A run is: the mailbox tree (one transaction: create with the source's UIDVALIDITY,
rename, delete, roles, subscriptions), then per mailbox its expunges and flag changes
(one transaction) and its new messages (one transaction per group of messages, so each
message is all or nothing and a rerun resumes at the first UID not yet copied), then
its UIDNEXT and bookkeeping.  With CONDSTORE on the source, MODSEQs and HIGHESTMODSEQ
are carried (store/txn.py, "migration"): a change found on a rerun is stamped with
max(source MODSEQ, dualmail's HIGHESTMODSEQ before the run + 1), so neither a client
whose state came from the source nor one whose state came from dualmail misses it.

The safety rule: a mailbox changed in dualmail since the last run (HIGHESTMODSEQ moved,
renamed or deleted there) is not touched; the run reports it and exits non-zero.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from queue import Empty, Full, Queue
from typing import Any, Callable

from ..importer_run import BATCH_BYTES, MAX_MESSAGE, _parsed, _Writer
from ..mail.ops import flags_to_keywords, prepare
from ..model import errors
from ..store.store import Store
from ..store.txn import MailTxn
from .names import assign_roles, selected
from .source import Meta, Source, SourceMailbox, Status

Progress = Callable[[int], None]
BATCH_MESSAGES = 500  # messages per transaction (a rerun resumes after the last one committed)
PARALLEL_FROM = 200  # fewer new messages in a mailbox: parsed in this process


@dataclass(frozen=True, slots=True)
class _Fetched:
    meta: Meta
    raw: bytes


@dataclass
class MigrationResult:
    address: str = ""
    mailboxes: int = 0
    created: int = 0
    renamed: int = 0
    deleted: int = 0
    unchanged: int = 0  # mailboxes found equal to the last run without reading them
    messages: int = 0  # copied
    bytes: int = 0
    flags: int = 0  # messages whose flags changed
    expunges: int = 0
    merged: int = 0  # copies that joined an Email already in another mailbox
    failures: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        who = f"{self.address}: " if self.address else ""
        return (f"{who}mailboxes {self.mailboxes} (created {self.created}, renamed {self.renamed}, "
                f"deleted {self.deleted}, unchanged {self.unchanged}), messages {self.messages} "
                f"({self.bytes} bytes, merged {self.merged}), flags changed {self.flags}, "
                f"expunged {self.expunges}, errors {len(self.failures)}")


def _kw(keywords: Any) -> list[str]:
    return sorted({str(k).lower() for k in keywords})


def _begin(tx: MailTxn, floor: int) -> None:
    """First thing in a migrating transaction that will write: its modseq above every
    modseq the source has shown (store/txn.py ``raise_modseq``)."""
    tx.raise_modseq(max(0, floor))


class _Run:
    def __init__(self, store: Store, account: int, src: Source, *, patterns: list[str],
                 dry_run: bool, progress: Progress | None, merge: bool, workers: int) -> None:
        self.store, self.a, self.src = store, account, src
        self.workers = workers
        self.patterns, self.dry_run, self.progress, self.merge = patterns, dry_run, progress, merge
        self.res = MigrationResult()

    def fail(self, what: str) -> None:
        self.res.failures.append(what)

    # -- the mailbox tree -----------------------------------------------------------

    def tree(self, boxes: list[SourceMailbox], statuses: dict[str, Status]) -> dict[str, int]:
        """Make dualmail's tree follow the source's; the mailboxes to sync (name -> id)."""
        roles = assign_roles([(list(b.path), list(b.flags)) for b in boxes])
        floor = max((s.hms for s in statuses.values()), default=0)
        plan: dict[str, int] = {}
        with self.store.write(self.a) as tx:
            if floor >= tx.highest_modseq:
                _begin(tx, floor)  # the account counter starts above the source's
            amap: dict[str, int] = dict((tx.account().get("migrated") or {}))
            known: dict[int, dict[str, Any]] = {}
            paths: dict[int, list[str]] = {}
            for rec in tx.mailboxes():
                m = int(rec["id"])
                paths[m] = tx.mailbox_path(m)
                st = rec.get("migrated")
                if isinstance(st, dict):
                    known[m] = st
            by_uv = {int(st["uv"]): m for m, st in known.items() if int(st["uv"])}
            by_src = {str(st["src"]): m for m, st in known.items()}
            matched: dict[str, int] = {}
            used: set[int] = set()
            for b in boxes:
                uv = statuses[b.name].uidvalidity if b.name in statuses else 0
                m = by_src.get(b.name)
                if m is not None and int(known[m]["uv"]) == uv and m not in used:
                    matched[b.name] = m
                    used.add(m)
            for b in boxes:
                uv = statuses[b.name].uidvalidity if b.name in statuses else 0
                if b.name not in matched and uv and uv in by_uv and by_uv[uv] not in used:
                    matched[b.name] = by_uv[uv]  # renamed on the source (UIDVALIDITY stays)
                    used.add(by_uv[uv])

            def safe(m: int, what: str) -> bool:
                st = known[m]
                rec = tx.require_mailbox(m)
                if list(st.get("path") or []) != paths[m]:
                    self.fail(f"{'/'.join(paths[m])}: renamed in dualmail since the last run "
                              f"(was {'/'.join(st.get('path') or [])}); not {what}")
                    return False
                if int(rec["hms"]) != int(st.get("dhms", rec["hms"])):
                    self.fail(f"{'/'.join(paths[m])}: changed in dualmail since the last run "
                              f"(HIGHESTMODSEQ {st.get('dhms')} -> {rec['hms']}); not {what}")
                    return False
                return True

            # mailboxes a previous run created and dualmail's users deleted since
            source_names = {b.name for b in boxes}
            for name, m in sorted(amap.items()):
                if name in source_names and tx.mailbox(m) is None and name not in matched:
                    self.fail(f"{name}: deleted in dualmail since the last run; not re-created")
                    source_names.discard(name)
            # gone from the source: deleted here too (children first)
            gone = [m for m in known if m not in used and selected(list(known[m].get("path") or []), self.patterns)]
            for m in sorted(gone, key=lambda x: -len(paths[x])):
                if not safe(m, "deleted"):
                    continue
                if tx.children(m):
                    self.fail(f"{'/'.join(paths[m])}: deleted on the source but has mailboxes below it in dualmail; kept")
                    continue
                if not self.dry_run:
                    amap.pop(str(known[m]["src"]), None)
                    tx.delete_mailbox(m, remove_emails=True)
                self.res.deleted += 1
            for b, role in zip(boxes, roles):
                if b.name not in source_names:
                    continue
                st_src = statuses.get(b.name)
                uv = st_src.uidvalidity if st_src else 0
                m = matched.get(b.name)
                self.res.mailboxes += 1
                if m is not None:
                    if not safe(m, "synced"):
                        continue
                    if tuple(tx.mailbox_path(m)) != b.path:
                        target = tx.mailbox_by_path(list(b.path))
                        if target is not None and target != m:
                            self.fail(f"{b.name}: renamed on the source to a name dualmail already has; not renamed")
                            continue
                        if not self.dry_run:
                            parent = self._parents(tx, list(b.path[:-1]))
                            tx.update_mailbox(m, name=b.path[-1], parent=parent)
                        self.res.renamed += 1
                else:
                    existing = tx.mailbox_by_path(list(b.path))
                    if existing is not None:
                        rec = tx.require_mailbox(existing)
                        if existing in known or int(rec["uidnext"]) != 1:
                            self.fail(f"{b.name}: dualmail already has {'/'.join(b.path)} with other messages; not copied")
                            continue
                        if self.dry_run:
                            self.res.created += 1
                            continue
                        if uv:
                            tx.adopt_uidvalidity(existing, uv)
                        m = existing
                    else:
                        self.res.created += 1
                        if self.dry_run:
                            continue
                        parent = self._parents(tx, list(b.path[:-1]))
                        if uv:
                            m = tx.create_mailbox_as(b.path[-1], parent, uidvalidity=uv, subscribed=b.subscribed)
                        else:
                            m = tx.create_mailbox(b.path[-1], parent, subscribed=b.subscribed)
                    if st_src is not None and self.src.condstore:
                        before = int(tx.require_mailbox(m)["hms"])
                        tx.carry_highest_modseq(m, max(before if existing is not None else 1, st_src.hms, 1))
                    amap[b.name] = m
                    tx.set_migration_state(m, {"src": b.name, "uv": uv, "path": list(b.path), "shms": 0,
                                               "done": False, "dhms": 0})
                if self.dry_run:
                    if m is not None and b.selectable:
                        plan[b.name] = m
                    continue
                self._role(tx, m, role, set(amap.values()), {b2.path for b2 in boxes})
                if tx.require_mailbox(m)["sub"] != b.subscribed:
                    tx.update_mailbox(m, subscribed=b.subscribed)
                st = tx.migration_state(m) or {}
                st.update(src=b.name, uv=uv, path=tx.mailbox_path(m))
                tx.set_migration_state(m, st)
                if b.selectable:
                    plan[b.name] = m
            if not self.dry_run and amap != (tx.account().get("migrated") or {}):
                tx.set_migration_state(0, amap)
            for m in tx.touched_mailboxes:
                st = tx.migration_state(m) if tx.mailbox(m) is not None else None
                if st is not None:
                    st["dhms"] = int(tx.require_mailbox(m)["hms"])
                    tx.set_migration_state(m, st)
            if self.dry_run:
                raise _DryRun(plan)
        return plan

    def _parents(self, tx: MailTxn, path: list[str]) -> int:
        parent = 0
        for name in path:
            c = tx.child(parent, name)
            parent = c if c is not None else tx.create_mailbox(name, parent)
        return parent

    def _role(self, tx: MailTxn, m: int, role: str | None, migrated: set[int],
              source_paths: set[tuple[str, ...]]) -> None:
        rec = tx.require_mailbox(m)
        if role is None or rec.get("role") == role or rec.get("role") == "inbox":
            return
        holder = tx.role_mailbox(role)
        if holder is not None and holder != m:
            hrec = tx.require_mailbox(holder)
            # a new account's empty default mailbox (Sent...) gives way to the source's
            if holder not in migrated and int(hrec["uidnext"]) == 1 and not tx.children(holder) \
                    and tuple(tx.mailbox_path(holder)) not in source_paths:
                tx.delete_mailbox(holder, remove_emails=False)
            else:
                return
        tx.update_mailbox(m, role=role)

    # -- one mailbox ------------------------------------------------------------------

    def mailbox(self, b: SourceMailbox, m: int, listed: Status) -> None:
        """``listed``: the STATUS taken before the tree was synced; when it equals what
        the last run left, the mailbox is not even selected (a SELECT of a large
        mailbox costs the source time)."""
        src = self.src
        with self.store.read(self.a) as r:
            rec = r.require_mailbox(m)
            st = r.migration_state(m) or {}
            local_next = int(rec["uidnext"])
            local_msgs = int(rec["counts"]["msgs"])
            hms_before = int(rec["hms"])
        done = bool(st.get("done"))
        prev = int(st.get("shms", 0))

        def unchanged(s: Status) -> bool:
            return done and src.condstore and s.hms > 0 and s.hms == prev and s.uidnext <= local_next \
                and s.messages == local_msgs and s.uidvalidity == int(st.get("uv", 0))

        if unchanged(listed):
            self.res.unchanged += 1
            return
        status = src.examine(b.name)
        if status.uidvalidity != int(st.get("uv", 0)):
            self.fail(f"{b.name}: UIDVALIDITY changed on the source during the run; rerun")
            return
        condstore = src.condstore and status.hms > 0
        if unchanged(status):
            self.res.unchanged += 1
            return
        floor = hms_before + 1 if done else 0
        new_uids = src.uids_from(local_next) if status.uidnext > local_next else []
        self._existing(b, m, status, condstore, prev, floor, local_next, local_msgs, len(new_uids))
        self._copy(b, m, status, condstore, floor, new_uids)
        with self.store.write(self.a) as tx:
            rec = tx.require_mailbox(m)
            if status.uidnext > int(rec["uidnext"]):
                _begin(tx, status.hms)
                before = int(rec["hms"])
                tx.raise_uidnext(m, status.uidnext)
                if condstore:
                    tx.carry_highest_modseq(m, max(before, status.hms))
            st = tx.migration_state(m) or {}
            st.update(shms=status.hms, done=True, dhms=int(tx.require_mailbox(m)["hms"]))
            tx.set_migration_state(m, st)

    def _existing(self, b: SourceMailbox, m: int, status: Status, condstore: bool, prev: int,
                  floor: int, local_next: int, local_msgs: int, new: int) -> None:
        """Expunges and flag changes of the messages already copied: one transaction."""
        if not local_msgs:
            return
        src = self.src
        gone: list[int] = []
        if condstore and src.qresync and prev:
            # one command: what changed and what vanished since the last run
            metas, vanished = src.changes_since(prev)
            metas = [x for x in metas if x.uid < local_next]
            with self.store.read(self.a) as r:
                gone = [u for u in vanished if u < local_next and r.email_at(m, u) is not None]
        else:
            if status.messages - new != local_msgs:
                present = set(src.all_uids())
                with self.store.read(self.a) as r:
                    gone = [u for u in r.uids(m) if u not in present]
            if condstore:
                changed = [u for u in src.changed_since(prev) if u < local_next]
            else:
                with self.store.read(self.a) as r:
                    changed = list(r.uids(m))
            metas = list(src.meta(changed, with_date=False)) if changed else []
        if not gone and not metas:
            return
        carried = [max(x.modseq, floor) for x in metas] + [max(status.hms, floor)]

        def write(tx: MailTxn) -> tuple[int, int]:
            flags = expunges = 0
            _begin(tx, max(carried))
            before = int(tx.require_mailbox(m)["hms"])
            top = 0
            for meta in metas:
                e = tx.email_at(m, meta.uid)
                if e is None:
                    continue
                keywords, deleted = flags_to_keywords(meta.flags)
                rec = tx.require_email(e)
                kws = _kw(keywords)
                changed_here = False
                if _kw(rec["kw"]) != kws:
                    if len(rec["mbx"]) > 1:
                        e = tx.split_membership(e, m, kws)
                    else:
                        tx.set_keywords(e, kws)
                    changed_here = True
                if tx.set_deleted(e, m, deleted):
                    changed_here = True
                if changed_here:
                    flags += 1
                    if condstore:
                        s = max(meta.modseq, floor)
                        tx.carry_modseq(e, m, s)
                        top = max(top, s)
            for u in gone:
                e = tx.email_at(m, u)
                if e is None:
                    continue
                if condstore:
                    s = max(status.hms, floor)
                    tx.carry_expunge(e, m, s)
                    top = max(top, s)
                else:
                    tx.remove_membership(e, m)
                expunges += 1
            if condstore and m in tx.touched_mailboxes:
                tx.carry_highest_modseq(m, max(before, top, status.hms))
            self._mark(tx)
            return flags, expunges

        flags, expunges = self.store.transact(self.a, write)
        self.res.flags += flags
        self.res.expunges += expunges

    def _copy(self, b: SourceMailbox, m: int, status: Status, condstore: bool, floor: int,
              uids: list[int]) -> None:
        """New messages in UID order: fetched here, parsed in the importer's parsing
        processes (importer_run), committed a group per transaction by its writer thread
        while the next ones are fetched.  A group is all or nothing; a failed group
        stops the mailbox there, and a rerun resumes at its first UID."""
        if not uids:
            return
        metas = sorted(self.src.meta(uids), key=lambda x: x.uid)
        workers = self.workers if len(metas) >= PARALLEL_FROM else 0

        def fetched() -> Any:
            for group in _prefetched(self.src.bodies(metas)):
                for meta, raw in group:
                    yield _Fetched(meta, raw), None

        writer = _Writer(self.store, self.a)
        batch: list[tuple[Meta, Any]] = []
        nbytes = 0

        def collect() -> None:
            for items, (merged, _skipped, _keys, _failed) in writer.completed():
                self.res.merged += merged
                self.res.messages += len(items)
                self.res.bytes += sum(len(p.raw) for _meta, p in items)
                if self.progress is not None:
                    self.progress(len(items))

        def flush() -> None:
            nonlocal batch, nbytes
            items, batch, nbytes = batch, [], 0
            writer.submit(self._group_writer(m, items, status, condstore, floor), items)
            collect()

        try:
            for (f, _key), parsed in _parsed(fetched(), workers, collect):
                if writer.error is not None:
                    break
                if parsed is None:
                    self.fail(f"{b.name} UID {f.meta.uid}: larger than {MAX_MESSAGE} bytes; not copied")
                    continue
                fields, enc, digest = parsed
                p = prepare(f.raw, f.meta.flags, f.meta.received, summary=fields, encoded=enc, digest=digest)
                batch.append((f.meta, p))
                nbytes += len(f.raw)
                if len(batch) >= BATCH_MESSAGES or nbytes >= BATCH_BYTES:
                    flush()
            if batch and writer.error is None:
                flush()
        finally:
            writer.close()
        collect()
        if writer.error is not None:
            if isinstance(writer.error, errors.DomainError):
                self.fail(f"{b.name}: {writer.error.message or type(writer.error).__name__}; "
                          "the rest of this mailbox is not copied (a rerun retries)")
            else:
                raise writer.error

    def _group_writer(self, m: int, group: list[tuple[Meta, Any]], status: Status,
                      condstore: bool, floor: int) -> Callable[[MailTxn, Any], tuple[int, int, list[bytes]]]:
        def write(tx: MailTxn, _items: Any) -> tuple[int, int, list[bytes]]:
            """One group in one transaction (the importer's writer-thread form: the
            result is (merged, 0, []); nothing here fails a single message on its own)."""
            merged = 0
            _begin(tx, max([status.hms] + [meta.modseq for meta, _p in group]))
            before = int(tx.require_mailbox(m)["hms"])
            top = 0
            for meta, p in group:
                e = self._merge_target(tx, m, p) if self.merge else None
                if e is not None:
                    tx.add_membership_as(e, m, meta.uid, deleted=p.deleted)
                    merged += 1
                else:
                    e, _ = tx.create_email(p.raw, p.summary, [m], p.keywords, p.received,
                                           deleted=p.deleted, at_uids={m: meta.uid},
                                           encoded=p.encoded, digest=p.digest)
                if condstore:
                    s = max(meta.modseq, floor) or 1
                    tx.carry_modseq(e, m, s)
                    top = max(top, s)
            if condstore:
                tx.carry_highest_modseq(m, max(before, top, status.hms))
            self._mark(tx)
            return merged, 0, []

        return write

    def _merge_target(self, tx: MailTxn, m: int, p: Any) -> int | None:
        """An Email with the same Message-ID and bytes in another mailbox and the same
        keywords: this copy becomes one more membership of it (CONTRACT §2)."""
        mids = p.summary.get("message_id") or []
        if not isinstance(mids, list) or not mids or not isinstance(mids[0], str):
            return None
        sha = p.digest.hex() if p.digest is not None else hashlib.sha256(p.raw).hexdigest()
        kws = _kw(p.keywords)
        for e in tx.emails_by_message_id(mids[0]):
            rec = tx.email(e)
            if rec is not None and rec["blob"] == sha and str(m) not in rec["mbx"] \
                    and _kw(rec["kw"]) == kws:
                return e
        return None

    def _mark(self, tx: MailTxn) -> None:
        """Every migrated mailbox this transaction touched: remember its HIGHESTMODSEQ,
        so the next run can tell dualmail's own changes from ours (the safety rule)."""
        for mm in tx.touched_mailboxes:
            if tx.mailbox(mm) is None:
                continue
            st = tx.migration_state(mm)
            if st is not None:
                st["dhms"] = int(tx.require_mailbox(mm)["hms"])
                tx.set_migration_state(mm, st)


def _prefetched(groups: Any, depth: int = 2) -> Any:
    """The source's groups of bodies read on a thread of its own, ``depth`` ahead: the
    wait for the source (its disk, the network) overlaps the parsing and writing.  Only
    that thread uses the connection until the groups are all read (or one failed: its
    error is raised here, in order)."""
    q: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for g in groups:
                while not stop.is_set():
                    try:
                        q.put(("g", g), timeout=0.5)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # handed to the consumer
            q.put(("err", e))

    t = threading.Thread(target=run, name="dualmail-migrate-fetch", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "err":
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get(timeout=0.1)
            except Empty:
                pass
        t.join()


class _DryRun(Exception):
    def __init__(self, plan: dict[str, int]) -> None:
        super().__init__("dry run")
        self.plan = plan


def migrate_account(store: Store, account: int, src: Source, *, patterns: list[str] | None = None,
                    dry_run: bool = False, progress: Progress | None = None,
                    merge: bool = True, workers: int | None = None) -> MigrationResult:
    """Bring ``account`` up to date with the source; see the module docstring.
    ``workers``: parsing processes (default: one per CPU, at most 4; 0: parse here)."""
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, 4))
    run = _Run(store, account, src, patterns=list(patterns or []), dry_run=dry_run,
               progress=progress, merge=merge, workers=workers)
    boxes = [b for b in src.mailboxes() if selected(list(b.path), run.patterns)]
    statuses = {b.name: src.status(b.name) for b in boxes if b.selectable}
    try:
        plan = run.tree(boxes, statuses)
    except _DryRun as d:  # the tree transaction was rolled back
        with store.read(account) as r:
            for b in boxes:
                m = d.plan.get(b.name)
                st = statuses.get(b.name)
                if st is None:
                    continue
                nxt = int(r.require_mailbox(m)["uidnext"]) if m is not None else 1
                if st.uidnext > nxt and st.messages:
                    src.examine(b.name)
                    run.res.messages += len(src.uids_from(nxt))
        return run.res
    for b in boxes:
        m = plan.get(b.name)
        if m is not None:
            run.mailbox(b, m, statuses[b.name])
    return run.res
