"""Running migrations: one account from a URL, or many from a CSV mapping file at once.

The mapping file has one account a line: ``address,source login,password file`` (a
header line naming ``address`` is skipped; ``#`` lines are comments).  Each account
gets its own connection to the source and runs on a thread of its own, at most
``parallel`` at a time; their writes are ordinary store transactions (LMDB takes one
writer at a time, the network waits overlap).  A failing account does not stop the
others: its failures are in its result.
"""

from __future__ import annotations

import csv
import os
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from ..store.store import Store
from .names import SourceURL, SourceURLError, parse_url
from .source import Source
from .sync import MigrationResult, Progress, migrate_account


class MappingError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Job:
    address: str
    url: SourceURL
    password: str


def read_password_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        pw = f.readline().rstrip("\r\n")
    if not pw:
        raise MappingError(f"{path}: the password file is empty")
    return pw


def parse_server(url: str) -> SourceURL:
    """``imap[s]://HOST[:PORT]`` for a mapping file (each line names its LOGIN)."""
    if "@" not in url.partition("://")[2].split("/", 1)[0]:
        scheme, sep, rest = url.partition("://")
        url = f"{scheme}{sep}-@{rest}"
    return parse_url(url)


def read_mapping(path: str, server: SourceURL) -> list[Job]:
    """The accounts of a mapping file; password files are relative to the file."""
    base = os.path.dirname(os.path.abspath(path))
    jobs = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if n == 1 and row[0].strip().lower() == "address":
                continue
            if len(row) != 3:
                raise MappingError(f"{path} line {n}: expected address,source login,password file")
            address, login, pwfile = (x.strip() for x in row)
            if not address or not login or not pwfile:
                raise MappingError(f"{path} line {n}: an empty field")
            pw = read_password_file(os.path.join(base, pwfile))
            jobs.append(Job(address, replace(server, login=login), pw))
    if not jobs:
        raise MappingError(f"{path}: no accounts")
    return jobs


def run_job(store: Store, job: Job, *, starttls: bool = False, ssl_context: ssl.SSLContext | None = None,
            patterns: list[str] | None = None, dry_run: bool = False,
            progress: Progress | None = None, merge: bool = True,
            workers: int | None = None) -> MigrationResult:
    """One account; a connection or protocol failure becomes the result's failure."""
    res = MigrationResult(address=job.address)
    try:
        a = store.require_account(job.address)
        src = Source(job.url, job.password, starttls=starttls, ssl_context=ssl_context)
    except Exception as e:  # an unknown account, an unreachable server, a refused login
        res.failures.append(f"{job.address}: {_why(e)}")
        return res
    try:
        res = migrate_account(store, a, src, patterns=patterns, dry_run=dry_run,
                              progress=progress, merge=merge, workers=workers)
        res.address = job.address
    except Exception as e:  # the source went away mid-run: what is committed stays
        res.failures.append(f"{job.address}: {_why(e)} (committed messages stay; rerun to resume)")
    finally:
        src.close()
    return res


def run_jobs(store: Store, jobs: list[Job], *, parallel: int = 4,
             progress: Progress | None = None, **kw: object) -> list[MigrationResult]:
    lock = threading.Lock()

    def tick(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    if len(jobs) == 1 or parallel <= 1:  # on this thread: the parsers can be forked
        return [run_job(store, j, progress=progress, **kw) for j in jobs]  # type: ignore[arg-type]
    workers = max(1, (os.cpu_count() or 1) // parallel)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="dualmail-migrate") as pool:
        futures = [pool.submit(run_job, store, j, progress=tick, workers=workers, **kw)  # type: ignore[arg-type]
                   for j in jobs]
        return [f.result() for f in futures]


def _why(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return str(msg)


__all__ = ["Job", "MappingError", "SourceURLError", "parse_server", "read_mapping", "read_password_file",
           "run_job", "run_jobs"]
