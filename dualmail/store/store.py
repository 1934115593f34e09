"""Store(path): the data directory, accounts, and the door to read views and write transactions.

``with store.write(account) as tx`` is the one way to change mail: on a normal exit the
transaction's changes are finished (log, counters) and committed durably, and only then is
the ``Commit`` published to subscribers (IMAP sessions, JMAP push).  Commits made by other
processes (the CLI) are found by ``poll_external()``, which the service calls when the
data file changes (inotify); a global commit counter makes that exact and cheap.

Imports no twisted and no lmdb (the engine, ``kv_lmdb`` or ``kv_pg``, is chosen in ``open_store``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

from ..model import errors
from . import codec, keys as K
from .blobs import BlobStore, open_blobs
from .kv import KV, KVWrite, prefix_end
from .passwords import hash_password, needs_rehash, new_secret, verify_password
from .scram import scram_keys
from .txn import DEFAULT_MAILBOXES, Commit, MailTxn, PathIds, ReadView
from .uidmap import UidMaps, UnseenSets

# Scopes of app tokens (``dualmail token create --scope``): IMAP only (LOGIN, PLAIN and
# OAUTHBEARER), JMAP read-only (every /set-like call: forbidden), JMAP full.
SCOPE_IMAP, SCOPE_JMAP_READ, SCOPE_JMAP = "imap", "jmap-read", "jmap"
TOKEN_SCOPES = (SCOPE_IMAP, SCOPE_JMAP_READ, SCOPE_JMAP)

T = TypeVar("T")
Subscriber = Callable[[Commit], None]

# How many global commit records to keep for other processes to catch up on.
COMMIT_HISTORY = 100_000

_log = logging.getLogger("dualmail.store")


class _GroupJob:
    """One ``write_grouped`` call waiting for its group's commit."""

    __slots__ = ("account", "fn", "result", "error", "done", "alone")

    def __init__(self, account: int, fn: Callable[[MailTxn], Any]) -> None:
        self.account = account
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        # False when another job of the same account shared this job's MailTxn (and so
        # its modseq): the caller cannot tell its own changes from the other's
        self.alone = True


def normalize_address(address: str) -> str:
    return address.strip().lower()


def valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and len(address) <= 254 and not any(
        c.isspace() or ord(c) < 0x21 for c in address
    )


class Store:
    """The mail store of one data directory."""

    def __init__(self, kv: KV, blobs: BlobStore | None = None) -> None:
        self.kv = kv
        # None: message bytes in the KV table ``blob``; else an external store (S3)
        self.blobs = blobs
        # where new messages are MIME-parsed before their write (``mail.parsers.Parsers``,
        # child processes the service starts); None: in the calling thread
        self.parsers: Any = None
        self._subscribers: list[Subscriber] = []
        self._gseq_seen = 0
        self.uid_maps = UidMaps()
        self.unseen_sets = UnseenSets()
        self.path_ids = PathIds()  # (ReadView.mailbox_by_path)
        self._group = threading.Condition()  # group commit (write_grouped)
        self._group_queue: list[_GroupJob] = []
        self._group_busy = False
        self._check_format()
        with self.kv.read() as r:
            raw = r.get("meta", b"gseq")
            self._gseq_seen = K.un64(raw) if raw else 0

    # -- format ---------------------------------------------------------------------

    def _check_format(self) -> None:
        with self.kv.read() as r:
            raw = r.get("meta", b"format")
        if raw is None:
            with self.kv.write() as w:
                if w.get("meta", b"format") is None:
                    w.put("meta", b"format", str(K.FORMAT_VERSION).encode())
            return
        try:
            version = int(raw)
        except ValueError:
            raise errors.StoreFormatError("the store's format record is unreadable") from None
        if version > K.FORMAT_VERSION:
            raise errors.StoreFormatError(
                f"the store was written by a newer dualmail (format {version}; this version reads "
                f"up to {K.FORMAT_VERSION}): upgrade dualmail")
        if version < K.FORMAT_VERSION:  # every older format is read as it is: mark it ours
            with self.kv.write() as w:
                if int(w.get("meta", b"format") or b"0") < K.FORMAT_VERSION:
                    w.put("meta", b"format", str(K.FORMAT_VERSION).encode())

    def close(self) -> None:
        self.kv.close()

    # -- subscribers --------------------------------------------------------------------

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def _publish(self, commit: Commit) -> None:
        for fn in list(self._subscribers):
            try:
                fn(commit)
            except Exception:  # a broken subscriber must not break the writer
                import logging

                logging.getLogger("dualmail.store").exception("subscriber failed")

    def poll_external(self) -> list[Commit]:
        """Publish commits other processes made since we last looked; O(new commits)."""
        with self.kv.read() as r:
            raw = r.get("meta", b"gseq")
            top = K.un64(raw) if raw else 0
            if top <= self._gseq_seen:
                return []
            found = [(K.un64(k), codec.loads(v)) for k, v in
                     r.range("commits", K.u64(self._gseq_seen + 1), K.u64(top + 1))]
        self._gseq_seen = top
        out = []
        for _g, c in found:
            commit = Commit(c["a"], c["s"], frozenset(c["k"]), frozenset(c["m"]),
                            tuple((int(m), str(n)) for m, n in c.get("md", ())))
            out.append(commit)
            self._publish(commit)
        return out

    # -- transactions ---------------------------------------------------------------------

    def read(self, account: int) -> Any:
        """A context manager giving a ``ReadView`` of one account; keep it short."""
        return self._read(account)

    @contextmanager
    def _read(self, account: int) -> Iterator[ReadView]:
        with self.kv.read() as r:
            yield ReadView(r, account, self.blobs, self.path_ids)

    @contextmanager
    def write(self, account: int) -> Iterator[MailTxn]:
        """The one write transaction: commits on normal exit, then publishes."""
        with self.kv.write(account) as w:
            tx = MailTxn(w, account, self.blobs)
            yield tx
            commit = self._finish(w, tx)
        self._free_blobs([tx])
        self._after_commit(commit)

    def transact(self, account: int, fn: Callable[[MailTxn], T]) -> T:
        """Run ``fn(tx)`` in one write transaction (re-run if the map had to grow or the
        database connection was lost before the commit)."""
        box: list[Commit | None] = [None]
        last: list[MailTxn] = []

        def run(w: KVWrite) -> T:
            tx = MailTxn(w, account, self.blobs)
            last[:] = [tx]  # the attempt that committed is the last one
            result = fn(tx)
            box[0] = self._finish(w, tx)
            return result

        result = self.kv.run_write(run, account)
        self._free_blobs(last)
        self._after_commit(box[0])
        return result

    def write_grouped(self, account: int, fn: Callable[[MailTxn], T]) -> T:
        """``write_grouped_alone(account, fn)`` without the ``alone`` flag."""
        return self.write_grouped_alone(account, fn)[0]

    def write_grouped_alone(self, account: int, fn: Callable[[MailTxn], T]) -> tuple[T, bool]:
        """Group commit: ``fn(tx)`` in a write transaction shared with the calls other
        threads make at the same time (of this account and of others), committed (synced)
        once for all of them; returns once that commit is durable.  Call it from a worker
        thread (IMAP APPEND runs it as an ``Offload``): while one group commits, the calls
        arriving meanwhile queue up and go together in the next.

        Each account in a group gets one ``MailTxn``, so the group takes that account's
        modseq once (CONTRACT: one modseq per account per transaction).  ``fn`` must only
        touch the transaction (it may run again); if one ``fn`` of a group raises, the group
        is rolled back and each ``fn`` runs again in a transaction of its own, so one
        failure (a deleted mailbox, a quota) fails only its caller.  The commits are not
        published here (subscribers live on the reactor thread): the caller's thread
        publishes them with ``poll_external()``, as after another process's commit.
        An engine without one-transaction-for-several-accounts (PostgreSQL) runs each call
        in a transaction of its own.

        Returns ``(result, alone)``: ``alone`` is False when another call of the same
        account shared the transaction, so the modseq it took covers changes other than
        this call's (an IMAP session then reports the whole range, not only its own)."""
        job = _GroupJob(account, fn)
        if not getattr(self.kv, "group_commit", False):
            self._run_group_job(job)
        else:
            with self._group:
                self._group_queue.append(job)
                while not job.done:
                    if self._group_busy:
                        self._group.wait()
                        continue
                    self._group_busy = True
                    batch, self._group_queue = self._group_queue, []
                    self._group.release()
                    try:
                        self._commit_group(batch)
                    finally:
                        self._group.acquire()
                        self._group_busy = False
                        self._group.notify_all()
        if job.error is not None:
            raise job.error
        return job.result, job.alone

    def transact_many(self, calls: Sequence[tuple[int, Callable[[MailTxn], Any]]]) -> list[Any]:
        """Group commit from one caller: ``fn(tx)`` of every (account, fn) in ONE synced
        write transaction, one ``MailTxn`` (one modseq) per account, committed once;
        returns once that commit is durable, each call's result or the exception it
        raised (a failing call makes each run alone, as in ``write_grouped``, so only it
        fails).  The commits are published here, in commit order.  On an engine without
        one-transaction-for-several-accounts (PostgreSQL) each call is a transaction."""
        jobs = [_GroupJob(account, fn) for account, fn in calls]
        if not jobs:
            return []
        if getattr(self.kv, "group_commit", False) and len({j.account for j in jobs}) == len(jobs):
            self._commit_group(jobs)
        else:  # (an account twice would share one MailTxn: its calls stay apart)
            for job in jobs:
                self._run_group_job(job)
        self.poll_external()
        return [job.error if job.error is not None else job.result for job in jobs]

    def _commit_group(self, batch: list[_GroupJob]) -> None:
        txns: dict[int, MailTxn] = {}

        def run(w: KVWrite) -> list[Any]:
            txns.clear()
            results = []
            for job in batch:
                tx = txns.get(job.account)
                if tx is None:
                    tx = txns[job.account] = MailTxn(w, job.account, self.blobs)
                results.append(job.fn(tx))
            for tx in txns.values():
                self._finish(w, tx)
            return results

        try:
            if len(batch) == 1:
                self._run_group_job(batch[0])
                return
            try:
                results = self.kv.run_write(run, None)
            except Exception:
                for job in batch:  # one failed: each alone, so only it fails
                    self._run_group_job(job)
                return
            shared = Counter(job.account for job in batch)
            for job, res in zip(batch, results):
                job.result = res
                job.alone = shared[job.account] == 1
            self._free_blobs(list(txns.values()))
        finally:
            for job in batch:
                job.done = True

    def _run_group_job(self, job: _GroupJob) -> None:
        last: list[MailTxn] = []

        def run(w: KVWrite) -> Any:
            tx = MailTxn(w, job.account, self.blobs)
            last[:] = [tx]
            result = job.fn(tx)
            self._finish(w, tx)
            return result

        try:
            job.result = self.kv.run_write(run, job.account)
        except Exception as e:  # handed to its caller
            job.error = e
        else:
            self._free_blobs(last)
        job.done = True

    def _finish(self, w: KVWrite, tx: MailTxn) -> Commit | None:
        commit = tx.finish()
        if commit is None:
            return None
        g = self._log_commit(w, {"a": commit.account, "s": commit.modseq, "k": sorted(commit.kinds),
                                 "m": sorted(commit.mailboxes)})
        if g > COMMIT_HISTORY and g % 1000 == 0:
            for k, _v in list(w.range("commits", K.u64(0), K.u64(g - COMMIT_HISTORY))):
                w.delete("commits", k)
        object.__setattr__(tx, "_gseq", g)
        return commit

    def stage_blob(self, account: int, data: bytes, digest: bytes | None = None) -> bytes:
        """Before a write transaction that will store ``data``: its SHA-256, and with an
        external blob store (S3) the upload itself, so the transaction (and its lock) never
        waits on the network.  Raises ``UnavailableError`` when the store is unreachable:
        nothing is written then."""
        sha = digest if digest is not None else hashlib.sha256(data).digest()
        if self.blobs is not None:
            if not self._blob_referenced(account, sha):
                self.blobs.stage(account, sha, data)
        return sha

    def _free_blobs(self, txns: list[MailTxn]) -> None:
        """After the commit: unmark the blobs those transactions staged, and delete the
        external objects whose last reference they dropped, unless referenced again since
        (``S3Blobs.delete_unreferenced``).  A failure is logged and leaves an unreferenced
        object (``check --repair``)."""
        if self.blobs is None:
            return
        self.blobs.committed([(tx.a, sha) for tx in txns for sha in tx.stored_blobs])
        for tx in txns:
            for sha in tx.freed_blobs:
                try:
                    self.blobs.delete_unreferenced(tx.a, sha, lambda a=tx.a, h=sha: self._blob_referenced(a, h))
                except errors.UnavailableError:
                    _log.warning("blob %s of account %d not deleted (the blob store is away); "
                                 "'dualmail check --repair' removes it", sha.hex(), tx.a)

    def _blob_referenced(self, account: int, sha: bytes) -> bool:
        with self.kv.read() as r:
            return r.get("blobref", K.blob(account, sha)) is not None

    def _log_commit(self, w: KVWrite, record: dict[str, Any]) -> int:
        """Append ``record`` to the global commit log; its number."""
        raw = w.get("meta", b"gseq")
        g = (K.un64(raw) if raw else 0) + 1
        w.put("meta", b"gseq", K.u64(g))
        w.put("commits", K.u64(g), codec.dumps(record))
        return g

    def write_metadata(self, account: int, mailbox: int,
                       changes: list[tuple[str, bytes | None]], *, max_entries: int,
                       max_size: int, readonly: tuple[str, ...] = ()) -> list[str]:
        """IMAP SETMETADATA (RFC 5464): one KV transaction that checks the mailbox exists
        (``mailbox`` 0: the server), applies the limits and the changes, and logs them
        for the other sessions.  It takes no modseq: no JMAP state and no HIGHESTMODSEQ
        moves (docs/consistency.md).  Returns the entry names that changed."""
        from . import metadata as md

        def run(w: KVWrite) -> tuple[list[str], Commit | None]:
            if mailbox and w.get("mailbox", K.mailbox(account, mailbox)) is None:
                raise errors.NotFoundError("no such mailbox")
            changed = md.apply(w, account, mailbox, changes, max_entries=max_entries,
                               max_size=max_size, readonly=readonly)
            if not changed:
                return changed, None
            modseq = int(codec.loads(w.get("account", K.acct(account)))["modseq"])
            pairs = [[mailbox, n] for n in changed]
            self._log_commit(w, {"a": account, "s": modseq, "k": [], "m": [], "md": pairs})
            return changed, Commit(account, modseq, frozenset(), frozenset(),
                                   tuple((mailbox, n) for n in changed))

        changed, commit = self.kv.run_write(run, account)
        self._after_commit(commit)
        return changed

    def _after_commit(self, commit: Commit | None) -> None:
        if commit is None:
            return
        # Catch up on other processes' commits first, so subscribers see modseq order.
        self.poll_external()

    # -- accounts -----------------------------------------------------------------------------

    def create_account(self, address: str, password: str) -> int:
        """A new account with INBOX, Drafts, Sent, Trash, Junk and Archive (CONTRACT §3)."""
        address = normalize_address(address)
        if not valid_address(address):
            raise errors.InvalidNameError(f"not a valid address: {address!r}")
        pw = hash_password(password)
        with self.kv.write() as w:
            if w.get("login", address.encode()) is not None:
                raise errors.AlreadyExistsError(f"user {address} already exists")
            raw = w.get("meta", b"next_account")
            a = (K.un64(raw) if raw else 0) + 1
            w.put("meta", b"next_account", K.u64(a))
            w.put("login", address.encode(), K.u32(a))
            rec = {"address": address, "pw": pw, "modseq": 0, "created": 1, "next": {}, "use": [0, 0],
                   "ctime": int(time.time()), "scram": scram_keys(password)}
            w.put("account", K.acct(a), codec.dumps(rec))
            tx = MailTxn(w, a)
            for name, role, order in DEFAULT_MAILBOXES:
                tx.create_mailbox(name, 0, role=role, sort_order=order)
            commit = self._finish(w, tx)
        self._after_commit(commit)
        return a

    def set_quota(self, address: str, limits: dict[str, int | None]) -> int:
        """Set or remove (None) the account's hard limits, {"octets": N, "count": N}, in one
        transaction; the account's modseq (JMAP Quota state) moves if anything changed."""
        a = self.require_account(address)

        def run(tx: MailTxn) -> int:
            for resource, limit in limits.items():
                tx.set_quota(resource, limit)
            return a

        return self.transact(a, run)

    def account_id(self, address: str) -> int | None:
        with self.kv.read() as r:
            raw = r.get("login", normalize_address(address).encode())
        return None if raw is None else K.un32(raw)

    def require_account(self, address: str) -> int:
        a = self.account_id(address)
        if a is None:
            raise errors.NotFoundError(f"no such user: {normalize_address(address)}")
        return a

    def account_record(self, a: int) -> dict[str, Any] | None:
        raw = self.kv.get_latest("account", K.acct(a))
        return None if raw is None else codec.loads(raw)

    def mailbox_record(self, a: int, m: int) -> dict[str, Any] | None:
        """Mailbox ``m``'s latest committed record, outside any read view (one round trip
        on PostgreSQL): a cheap "did it change?" before opening a view."""
        raw = self.kv.get_latest("mailbox", K.mailbox(a, m))
        return None if raw is None else codec.loads(raw)

    def list_accounts(self) -> list[tuple[int, str]]:
        with self.kv.read() as r:
            return sorted((K.un32(v), k.decode()) for k, v in r.range("login", b"", None))

    def set_password(self, address: str, password: str) -> None:
        a = self.require_account(address)
        pw = hash_password(password)
        scram = scram_keys(password)
        with self.kv.write(a) as w:
            rec = codec.loads(w.get("account", K.acct(a)))
            rec["pw"] = pw
            rec["scram"] = scram  # RFC 5802 §3: StoredKey/ServerKey, never the password
            w.put("account", K.acct(a), codec.dumps(rec))

    def delete_account(self, address: str) -> None:
        """Remove the account and every record under it, in one transaction."""
        a = self.require_account(address)
        p = K.acct(a)
        end = prefix_end(p)

        def run(w: KVWrite) -> None:
            for table in K.TABLES:
                if table in ("meta", "login", "token", "commits"):
                    continue
                for k, _v in list(w.range(table, p, end)):
                    w.delete(table, k)
            w.delete("login", normalize_address(address).encode())
            for k, v in list(w.range("token", b"", None)):
                if codec.loads(v).get("account") == a:
                    w.delete("token", k)

        self.kv.run_write(run, a)
        self.uid_maps.forget(a)
        self.unseen_sets.forget(a)
        if self.blobs is not None:
            try:
                self.blobs.delete_account(a)
            except errors.UnavailableError:
                _log.warning("the objects of account %d were not deleted (the blob store is "
                             "away); 'dualmail check --repair' removes them", a)

    def authenticate(self, address: str, password: str) -> int | None:
        """The account number if the password is right, else None.  Blocking (argon2):
        protocol code runs it in a thread.  Unknown users cost the same as known ones."""
        a = self.account_id(address)
        rec = self.account_record(a) if a is not None else None
        stored = rec["pw"] if rec else None
        ok = verify_password(stored, password)
        if not ok or a is None or rec is None:
            return None
        if needs_rehash(stored):
            try:
                self.set_password(address, password)
            except errors.DomainError:
                pass
        return a

    def scram_keys(self, address: str) -> dict[str, Any] | None:
        """The SCRAM-SHA-256 keys of the account (None: unknown user, or a password set
        before dualmail stored them: SCRAM works after the next password change)."""
        a = self.account_id(address)
        rec = self.account_record(a) if a is not None else None
        return rec.get("scram") if rec else None

    def authenticate_token(self, address: str, token: str, scopes: tuple[str, ...]) -> int | None:
        """An app token used as the password of ``address`` (IMAP LOGIN/PLAIN, HTTP Basic):
        the account if the token is live, has one of ``scopes`` and belongs to that user.
        One read, no argon2 (tokens are 256-bit random, not guessable)."""
        a = self.account_id(address)
        if a is None or len(token) < 40:
            return None
        found = self.verify_token(token, kind="app", scopes=scopes)
        return a if found == a else None

    # -- uploads --------------------------------------------------------------------------

    def expire_uploads(self, cutoff: int, batch: int = 500) -> int:
        """Drop upload marks older than ``cutoff`` (epoch seconds) in every account; a blob
        no Email references goes with its mark.  Reads only the ``upload`` index, in
        batches of short write transactions.  Returns how many marks were dropped."""
        dropped = 0
        for a, _address in self.list_accounts():
            while True:
                with self.write(a) as tx:
                    old = tx.uploads_before(cutoff, batch)
                    for sha in old:
                        tx.drop_upload(sha)
                dropped += len(old)
                if len(old) < batch:
                    break
        return dropped

    # -- bearer tokens (JMAP apps) -----------------------------------------------------------

    def create_token(self, address: str, *, kind: str = "app", ttl: int | None = None,
                     note: str = "", scope: str = SCOPE_JMAP) -> str:
        """A new bearer token (only its hash is stored).  ``kind`` "app": an app password
        with ``scope`` (``TOKEN_SCOPES``); "push": the EventSource-only token."""
        if scope not in TOKEN_SCOPES:
            raise errors.CannotError(f"unknown token scope {scope!r}")
        a = self.require_account(address)
        token = new_secret(32)
        now = int(time.time())
        rec = {"account": a, "kind": kind, "created": now,
               "expires": now + ttl if ttl else None, "note": note, "scope": scope,
               "id": K.h16(token).hex()[:12]}
        with self.kv.write() as w:
            w.put("token", K.h16(token), codec.dumps(rec))
        return token

    def token_record(self, token: str) -> dict[str, Any] | None:
        """The live record of ``token`` (None: unknown, revoked or expired).  One read."""
        raw = self.kv.get_latest("token", K.h16(token))
        if raw is None:
            return None
        rec: dict[str, Any] = codec.loads(raw)
        if rec.get("expires") and rec["expires"] < time.time():
            return None
        rec.setdefault("scope", SCOPE_JMAP)  # tokens made before scopes were full JMAP ones
        return rec

    def verify_token(self, token: str, *, kind: str | None = None,
                     scopes: tuple[str, ...] | None = None) -> int | None:
        rec = self.token_record(token)
        if rec is None:
            return None
        if kind is not None and rec.get("kind") != kind:
            return None
        if scopes is not None and rec.get("scope") not in scopes:
            return None
        return int(rec["account"])

    def revoke_tokens(self, address: str, token: str | None = None) -> int:
        """Revoke ``token`` (the token itself or the id ``list_tokens`` shows), or every
        token of the user.  Open IMAP sessions and JMAP requests check at their next
        command/request."""
        a = self.require_account(address)
        n = 0
        with self.kv.write() as w:
            for k, v in list(w.range("token", b"", None)):
                rec = codec.loads(v)
                if rec.get("account") != a:
                    continue
                if token is not None and k != K.h16(token) and token != k.hex()[:12]:
                    continue
                w.delete("token", k)
                n += 1
        return n

    def expire_tokens(self, now: float | None = None) -> int:
        """Delete tokens past their expiry (push tokens are short-lived); returns how many."""
        now = time.time() if now is None else now
        n = 0
        with self.kv.write() as w:
            for k, v in list(w.range("token", b"", None)):
                expires = codec.loads(v).get("expires")
                if expires and expires < now:
                    w.delete("token", k)
                    n += 1
        return n

    def list_tokens(self, address: str) -> list[dict[str, Any]]:
        a = self.require_account(address)
        with self.kv.read() as r:
            out = []
            for k, v in r.range("token", b"", None):
                rec = codec.loads(v)
                if rec.get("account") == a:
                    # app tokens from before scopes are full JMAP; a push-only token (the
                    # EventSource/WebSocket URL's) is listed as what it is
                    kind = rec.get("kind", "app")
                    rec.setdefault("scope", SCOPE_JMAP)
                    if kind != "app":
                        rec["scope"] = kind
                    rec.setdefault("id", k.hex()[:12])
                    out.append(rec)
            return out


DATABASE_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(target: str) -> bool:
    """Whether a ``--store``/``--data`` value names a PostgreSQL database, not a directory."""
    return target.startswith(DATABASE_SCHEMES)


def open_store(path: str, *, sync: bool = True, blobs: str | None = None) -> Store:
    """Open (or create) the store in directory ``path`` on LMDB, or in the PostgreSQL
    database ``path`` names when it is a ``postgresql://`` URL (``kv_pg``).  ``blobs``:
    where message bytes live (``store.blobs.open_blobs``: None or ``kv`` for the KV
    store, ``s3://BUCKET?endpoint=...``)."""
    blob_store = open_blobs(blobs)
    if blob_store is not None:
        blob_store.check_bucket()  # type: ignore[attr-defined]
    return Store(open_kv(path, sync=sync), blob_store)


def open_kv(path: str, *, sync: bool = True) -> KV:
    """The bare engine of ``open_store`` (no format record written): ``store copy``."""
    from .keys import TABLES

    if is_database_url(path):
        from .kv_pg import PgKV

        return PgKV(path, TABLES)
    from .kv_lmdb import LmdbKV

    if os.path.exists(path) and not os.path.isdir(path):
        raise errors.StoreLockedError(f"{path} is not a directory")
    if os.path.isdir(path) and not os.access(path, os.W_OK):
        raise errors.StoreLockedError(f"the data directory {path} is not writable")
    return LmdbKV(path, TABLES, sync=sync)
