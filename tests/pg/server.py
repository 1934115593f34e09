"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a fresh
cluster (``initdb``) in a temporary directory, listening only on a unix socket there.

``initdb`` and the server refuse to run as root: as root the directory is given to the
``postgres`` user and the commands run through ``runuser``.  The cluster runs with
``fsync=off`` (like the LMDB tests' ``sync=False``): the tests check behaviour, not
durability against power loss.  Each test store is its own database (``fresh_url``).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile

_counter = itertools.count(1)


def pg_bindir() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class PgServer:
    """One PostgreSQL cluster in its own temporary directory."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync  # benchmarks: on, as in production
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="dmpg")  # short: a unix socket path has ~107 bytes
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "log")
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.started = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> "PgServer":
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self.pg_ctl_start()
        return self

    def pg_ctl_start(self) -> None:
        durability = "" if self.fsync else "-c fsync=off -c full_page_writes=off "
        opts = (f"-k {self.dir} -c listen_addresses='' {durability}"
                "-c max_connections=300 -c shared_buffers=32MB")
        r = self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o", opts, "start",
                      check=False)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}{self.tail()}")
        self.started = True

    def pg_ctl_stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)
        self.started = False

    def restart(self) -> None:
        self.pg_ctl_stop("fast")
        self.pg_ctl_start()

    def tail(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.dir}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def fresh_database(self, prefix: str = "db") -> str:
        """A new, empty database (its own NOTIFY channel: for tests of several nodes)."""
        return self.create_database(f"{prefix}{os.getpid()}_{next(_counter)}")

    def fresh_url(self, prefix: str = "t") -> str:
        """A new, empty store: its own schema in one shared database (the engine creates
        its tables there), which is ~5x cheaper than a database per test."""
        import psycopg

        if not getattr(self, "_db", False):
            self.create_database("dmtests")
            self._db = True
        name = f"{prefix}{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url("dmtests"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return self.url("dmtests") + f"&options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self.started:
            self.pg_ctl_stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
