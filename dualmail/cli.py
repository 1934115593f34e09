"""The ``dualmail`` command: users, tokens and imports, safe while the server runs.

LMDB is multi-process: every command here is an ordinary store transaction, and the
running server notices it at once (``notify.ExternalCommitWatcher``).  Errors are one line
on stderr naming the problem, with a non-zero exit and nothing half-written.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from .model.errors import DomainError, UnavailableError

EXIT_USAGE = 2
EXIT_FAIL = 1


class CliError(Exception):
    pass


def _data_dir(args: argparse.Namespace) -> str:
    return args.data or os.environ.get("DUALMAIL_DATA") or "./dualmail-data"


def _store_target(args: argparse.Namespace) -> str:
    """``--store`` (a postgresql:// URL), else $DUALMAIL_STORE, else the LMDB ``--data``."""
    return getattr(args, "store", None) or os.environ.get("DUALMAIL_STORE") or _data_dir(args)


def _blobs(args: argparse.Namespace) -> str | None:
    """``--blobs`` (kv or s3://BUCKET?endpoint=...), else $DUALMAIL_BLOBS, else the KV store."""
    return getattr(args, "blobs", None) or os.environ.get("DUALMAIL_BLOBS") or None


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Any]:
    """The store of ``--data``, closed however the command ends."""
    from .store.store import open_store

    store = open_store(_store_target(args), blobs=_blobs(args))
    try:
        yield store
    finally:
        store.close()


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        pw = line.rstrip("\r\n")
    else:
        pw = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat password: ") != pw:
            raise CliError("the passwords do not match")
    if not pw:
        raise CliError("the password is empty")
    return pw


def cmd_user(args: argparse.Namespace) -> int:
    with _opened(args) as store:
        if args.action == "add":
            if store.account_id(args.address) is not None:
                raise CliError(f"user {args.address.lower()} already exists")
            store.create_account(args.address, _read_password())
            print(f"added {args.address.lower()}")
        elif args.action == "passwd":
            store.require_account(args.address)
            store.set_password(args.address, _read_password())
            print(f"password changed for {args.address.lower()}")
        elif args.action == "list":
            for _a, address in store.list_accounts():
                print(address)
        elif args.action == "quota":
            _user_quota(store, args)
        elif args.action == "delete":
            if not args.yes:
                raise CliError("deleting a user removes all their mail: add --yes to confirm")
            store.delete_account(args.address)
            print(f"deleted {args.address.lower()}")
    return 0


def _quota_limit(text: str | None, what: str, sized: bool) -> int | None:
    """``none`` removes the limit; sizes take K/M/G/T (binary units)."""
    assert text is not None
    t = text.strip().upper()
    if t in ("NONE", "UNLIMITED"):
        return None
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4} if sized else {}
    mult = 1
    if t[-1:] in units:
        t, mult = t[:-1], units[t[-1]]
    if not t.isdigit():
        raise CliError(f"--{what}: expected a number{' with K/M/G/T' if sized else ''} or 'none', not {text!r}")
    return int(t) * mult


def _user_quota(store: Any, args: argparse.Namespace) -> None:
    a = store.require_account(args.address)
    limits: dict[str, int | None] = {}
    if args.storage is not None:
        limits["octets"] = _quota_limit(args.storage, "storage", True)
    if args.messages is not None:
        limits["count"] = _quota_limit(args.messages, "messages", False)
    if limits:
        store.set_quota(args.address, limits)
    with store.read(a) as view:
        have, used = view.quota_limits(), view.usage()
    for resource, label in (("octets", "storage"), ("count", "messages")):
        limit = have.get(resource)
        print(f"{label}: {used[resource]} of {limit if limit is not None else 'unlimited'}"
              f"{' octets' if resource == 'octets' else ''}")


def cmd_token(args: argparse.Namespace) -> int:
    with _opened(args) as store:
        if args.action == "create":
            ttl = _duration(args.expires) if args.expires else None
            print(store.create_token(args.address, note=args.note or "", scope=args.scope, ttl=ttl))
        elif args.action == "list":
            for rec in store.list_tokens(args.address):
                if rec.get("kind") != "app":
                    continue  # push tokens (EventSource URLs) are short-lived and internal
                expires = rec.get("expires")
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)) if expires else "never"
                created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.get("created", 0)))
                print(f"{rec['id']}  {rec['scope']:<9}  created {created}  expires {when}  {rec.get('note', '')}")
        elif args.action == "revoke":
            n = store.revoke_tokens(args.address, args.token)
            if args.token and not n:
                raise CliError("no such token for that user")
            print(f"revoked {n} token(s)")
    return 0


def _duration(text: str) -> int:
    """``3600``, ``90m``, ``12h``, ``30d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    unit = units.get(t[-1:], 0)
    digits = t[:-1] if unit else t
    if not digits.isdigit() or int(digits) <= 0:
        raise CliError(f"--expires: expected a duration like 3600, 90m, 12h or 30d, not {text!r}")
    return int(digits) * (unit or 1)


def upgrade_account(store: Any, a: int, batch: int = 1000) -> tuple[int, int]:
    """Bring derived records of an older store up to date: the full-text index's gram
    dictionary (``search.fts.upgrade_grams``), its subject postings (``upgrade_subjects``)
    and the JMAP listing record of every Email
    stored without one (``mime.jmap_listing``, from its summary).  Each step is its own
    write transaction of ``batch`` Emails; no modseq changes (nothing a client sees).
    Returns (fts keys given grams, listing records written)."""
    from .mime.jmap_listing import record
    from .search.fts import upgrade_grams, upgrade_subjects
    from .store import keys as K
    from .store.kv import prefix_end

    grams = 0
    while True:
        n = upgrade_grams(store, a)
        if not n:
            break
        grams += n
    while upgrade_subjects(store, a):
        pass
    written = 0
    after = 0
    while True:
        with store.read(a) as r:
            todo = []
            last = after
            for k, _v in r.kv.range("email", K.email(a, after + 1), prefix_end(K.acct(a))):
                last = K.un64(k, 4)
                if r.kv.get("jmapw", k) is None:
                    summary = r.summary(last)
                    if summary is not None:
                        todo.append((k, record(summary)))
                if last - after >= batch:
                    break
        if todo:
            def run(w: Any, todo: list = todo) -> None:
                for k, value in todo:
                    if w.get("email", k) is not None:
                        w.put("jmapw", k, value)
            store.kv.run_write(run, a)
            written += len(todo)
        if last == after:
            return grams, written
        after = last


def cmd_check(args: argparse.Namespace) -> int:
    from .store.check import upgrade, verify

    bad = 0
    with _opened(args) as store:
        targets = [(store.require_account(args.address), args.address.lower())] if args.address \
            else store.list_accounts()
        for a, address in targets:
            if args.upgrade:
                import dualmail.mail  # noqa: F401  (registers the header-field splitter)

                for line in upgrade(store, a):
                    print(f"{address}: {line}")
                grams, written = upgrade_account(store, a)
                if grams or written:
                    print(f"{address}: upgraded (search index terms {grams}, JMAP listing records {written})")
            with store.read(a) as view:
                problems = verify(view)
            for p in problems:
                print(f"{address}: {p}")
            bad += len(problems)
            if not problems:
                print(f"{address}: ok")
        bad += _check_blobs(store, targets if args.address else None, args)
    return EXIT_FAIL if bad else 0


def _check_blobs(store: Any, targets: list[tuple[int, str]] | None, args: argparse.Namespace) -> int:
    """Blobs nothing references (a crash between an S3 upload and its commit): listed, and
    with ``--repair`` removed once older than ``--grace``.  The number of problems left."""
    from .store.check import repair_blobs, unreferenced_blobs

    found = []
    for a in [a for a, _address in targets] if targets is not None else [None]:
        found += unreferenced_blobs(store, a)
    now = time.time()
    for k in found:
        age = f", {int(now - k.modified)} s old" if k.modified is not None else ""
        print(f"unreferenced blob a{k.account}/{k.sha.hex()} ({k.size} octets{age})")
    if not args.repair:
        return len(found)
    removed, kept = repair_blobs(store, found, args.grace, now)
    print(f"removed {removed} unreferenced blobs" +
          (f"; kept {kept} younger than {args.grace} s" if kept else ""))
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Drop IMAP expunge tombstones older than the last ``--keep`` modseqs of each account."""
    with _opened(args) as store:
        targets = [(store.require_account(args.address), args.address.lower())] if args.address \
            else store.list_accounts()
        for a, address in targets:
            def run(tx: Any) -> int:
                upto = tx.highest_modseq - args.keep
                return sum(tx.compact_expunges(int(m["id"]), upto) for m in tx.mailboxes()) if upto > 0 else 0

            print(f"{address}: dropped {store.transact(a, run)} expunge tombstones")
    return 0


def _progress(total: int | None, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="msg", file=sys.stderr, dynamic_ncols=True)


def cmd_import(args: argparse.Namespace) -> int:
    from .importer_run import run_import

    with _opened(args) as store:
        a = store.require_account(args.address)
        bar = _progress(None, sys.stderr.isatty() and not args.quiet)
        try:
            result = run_import(store, a, args.path, mailbox=args.mailbox,
                                progress=(bar.update if bar is not None else None),
                                workers=args.workers)
        finally:
            if bar is not None:
                bar.close()
    print(result.summary_line())
    return 0 if not result.failed else EXIT_FAIL


def cmd_migrate(args: argparse.Namespace) -> int:
    """Copy accounts from a live IMAP server, keeping UIDs (docs/operating.md)."""
    from .migrate.mapping import Job, MappingError, parse_server, read_mapping, read_password_file, run_jobs
    from .migrate.names import SourceURLError, parse_url

    try:
        if args.mapping:
            if len(args.target) != 1:
                raise CliError("with --mapping give only the server: imap[s]://HOST[:PORT]")
            jobs = read_mapping(args.mapping, parse_server(args.target[0]))
        else:
            if len(args.target) != 2:
                raise CliError("usage: dualmail migrate ADDRESS imap[s]://LOGIN@HOST[:PORT]")
            url = parse_url(args.target[1])
            pw = read_password_file(args.password_file) if args.password_file else _read_password(confirm=False)
            jobs = [Job(args.target[0], url, pw)]
    except (SourceURLError, MappingError, OSError) as e:
        raise CliError(str(e)) from None
    ctx = None
    if args.tls_ca:
        import ssl

        try:
            ctx = ssl.create_default_context(cafile=args.tls_ca)
        except (OSError, ssl.SSLError) as e:
            raise CliError(f"{args.tls_ca}: {e}") from None
    with _opened(args) as store:
        for j in jobs:
            store.require_account(j.address)
        bar = _progress(None, sys.stderr.isatty() and not args.quiet)
        try:
            results = run_jobs(store, jobs, parallel=args.parallel,
                               progress=(bar.update if bar is not None else None),
                               starttls=args.starttls, ssl_context=ctx, patterns=args.mailbox or [],
                               dry_run=args.dry_run, merge=not args.no_merge)
        finally:
            if bar is not None:
                bar.close()
    failed = 0
    for res in results:
        print(("would copy: " if args.dry_run else "") + res.summary_line())
        for f in res.failures:
            print(f"  failed: {f}")
        failed += len(res.failures)
    return EXIT_FAIL if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from .migrate.export import ExportError, export_account

    with _opened(args) as store:
        a = store.require_account(args.address)
        try:
            res = export_account(store, a, args.dir)
        except (ExportError, OSError) as e:
            raise CliError(str(e)) from None
    print(res.summary_line())
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """``store copy --from A --to B``: every row, from one snapshot of A into an empty B."""
    from .store.blobs import open_blobs
    from .store.copy import copy_store
    from .store.store import open_kv

    src_blobs, dst_blobs = open_blobs(args.from_blobs), open_blobs(args.to_blobs)
    for b in (src_blobs, dst_blobs):
        if b is not None:
            b.check_bucket()
    src = open_kv(getattr(args, "from"))
    try:
        dst = open_kv(args.to)
        try:
            counts = copy_store(src, dst, src_blobs=src_blobs, dst_blobs=dst_blobs)
        finally:
            dst.close()
    finally:
        src.close()
    print(f"copied {sum(counts.values())} rows ({counts.get('email', 0)} emails, "
          f"{counts.get('account', 0)} accounts)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dualmail", description="Manage a dualmail store.")
    p.add_argument("--data", help="data directory (default: $DUALMAIL_DATA or ./dualmail-data)")
    p.add_argument("--store", help="a postgresql://USER@HOST/DB store instead of LMDB in --data "
                                   "(default: $DUALMAIL_STORE)")
    p.add_argument("--blobs", help="where message bytes live: kv (in the store) or "
                                   "s3://BUCKET?endpoint=URL&region=R (default: $DUALMAIL_BLOBS, else kv)")
    sub = p.add_subparsers(dest="command", required=True)

    u = sub.add_parser("user", help="manage users")
    usub = u.add_subparsers(dest="action", required=True)
    for name in ("add", "passwd"):
        x = usub.add_parser(name, help=f"{name} a user (password from stdin or prompt)")
        x.add_argument("address")
    usub.add_parser("list", help="list users")
    q = usub.add_parser("quota", help="show or set a user's quota (RFC 9425 / RFC 9208)")
    q.add_argument("address")
    q.add_argument("--storage", help="limit on the size of the user's mail, e.g. 2G ('none' removes it)")
    q.add_argument("--messages", help="limit on the number of messages ('none' removes it)")
    d = usub.add_parser("delete", help="delete a user and all their mail")
    d.add_argument("address")
    d.add_argument("--yes", action="store_true", help="confirm")
    u.set_defaults(func=cmd_user)

    t = sub.add_parser("token", help="bearer tokens for JMAP apps")
    tsub = t.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create", help="print a new token")
    tc.add_argument("address")
    tc.add_argument("--note", default="")
    tc.add_argument("--scope", choices=("imap", "jmap-read", "jmap"), default="jmap",
                    help="imap: an app password for IMAP (LOGIN, PLAIN, OAUTHBEARER); "
                         "jmap-read: JMAP without changes; jmap: full JMAP (default)")
    tc.add_argument("--expires", help="lifetime: seconds or 90m, 12h, 30d (default: none)")
    tl = tsub.add_parser("list", help="list a user's tokens (id, scope, expiry; never the token)")
    tl.add_argument("address")
    tr = tsub.add_parser("revoke", help="revoke one token (the token or its id), or all of a user's")
    tr.add_argument("address")
    tr.add_argument("token", nargs="?")
    t.set_defaults(func=cmd_token)

    c = sub.add_parser("check", help="verify counters and indexes against a recount")
    c.add_argument("address", nargs="?")
    c.add_argument("--upgrade", action="store_true",
                   help="first build what an older store lacks (IMAP indexes, stored header fields, "
                   "search grams, JMAP listing records)")
    c.add_argument("--repair", action="store_true",
                   help="remove blobs no message or upload references (older than --grace)")
    c.add_argument("--grace", type=int, default=3600, metavar="SECONDS",
                   help="with --repair: leave unreferenced blobs younger than this, which may be "
                        "an upload whose transaction is still running (default 3600)")
    c.set_defaults(func=cmd_check)

    k = sub.add_parser("compact", help="drop old IMAP expunge tombstones (QRESYNC falls back below them)")
    k.add_argument("address", nargs="?")
    k.add_argument("--keep", type=int, default=100_000,
                   help="keep the tombstones of the last N modseqs (default 100000)")
    k.set_defaults(func=cmd_compact)

    i = sub.add_parser("import", help="import an mbox file or a Maildir")
    i.add_argument("address")
    i.add_argument("path")
    i.add_argument("--mailbox", help="target mailbox (default INBOX; Maildir subfolders keep their names below it)")
    i.add_argument("--workers", type=int, default=None, help="parsing processes besides the writer (default: one per CPU, at most 4; 0: parse in the writer)")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=cmd_import)

    g = sub.add_parser("migrate", help="copy accounts from a live IMAP server, keeping UIDs (rerun to update)")
    g.add_argument("target", nargs="+", metavar="ADDRESS URL",
                   help="ADDRESS imap[s]://LOGIN@HOST[:PORT], or with --mapping only imap[s]://HOST[:PORT]")
    g.add_argument("--password-file", help="the source password's file (first line; default: stdin or prompt)")
    g.add_argument("--starttls", action="store_true", help="STARTTLS on imap://")
    g.add_argument("--tls-ca", metavar="FILE", help="CA certificates (PEM) to verify the source with (default: the system's)")
    g.add_argument("--mailbox", action="append", metavar="PATTERN",
                   help="only source mailboxes matching (shell pattern on the /-separated name; repeatable)")
    g.add_argument("--dry-run", action="store_true", help="report what would be copied; write nothing")
    g.add_argument("--mapping", metavar="CSV", help="many accounts: lines of address,source login,password file")
    g.add_argument("--parallel", type=int, default=4, help="accounts at once with --mapping (default 4)")
    g.add_argument("--no-merge", action="store_true",
                   help="keep copies of one message in several mailboxes as separate Emails")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_migrate)

    x = sub.add_parser("export", help="write an account as a Maildir++ tree (with dovecot-uidlist UIDs)")
    x.add_argument("address")
    x.add_argument("dir")
    x.set_defaults(func=cmd_export)

    st = sub.add_parser("store", help="move an installation between engines")
    stsub = st.add_subparsers(dest="action", required=True)
    sc = stsub.add_parser("copy", help="copy every record (ids, UIDs, modseqs, states kept) into an empty store")
    sc.add_argument("--from", required=True, metavar="DIR_OR_URL", help="source: an LMDB data directory or a postgresql:// URL")
    sc.add_argument("--to", required=True, metavar="DIR_OR_URL", help="destination (must be empty; nothing may serve it meanwhile)")
    sc.add_argument("--from-blobs", metavar="BLOBS", help="where the source keeps message bytes: kv (default) or s3://BUCKET?endpoint=...")
    sc.add_argument("--to-blobs", metavar="BLOBS", help="where the destination will keep them: kv (default) or s3://BUCKET?endpoint=... (an empty bucket)")
    st.set_defaults(func=cmd_store)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, DomainError, UnavailableError) as e:
        msg = e.message if isinstance(e, (DomainError, UnavailableError)) else str(e)
        print(f"dualmail: {msg}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("dualmail: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
