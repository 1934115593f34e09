"""Several ``twistd dualmail`` processes on one PostgreSQL database (issue 18).

Each node is a real subprocess with IMAP and JMAP on ``tcp:0`` loopback; its ports are read
from its log ("IMAP listening on 127.0.0.1:N").  Every wait is bounded; nothing sleeps."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 90  # seconds a node may take to listen (2 shared cores under load)
_LISTEN = re.compile(r"(IMAP|JMAP) listening on 127\.0\.0\.1:(\d+)")


def _twistd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "twisted.scripts.twistd"]


def dualmail_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "dualmail.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                m = _LISTEN.search(line)
                if m:
                    self.ports[m.group(1).lower()] = int(m.group(2))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_listening(self) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: {"imap", "jmap"} <= self.ports.keys() or self.proc.poll() is not None,
                                    START_TIMEOUT)
        if not ok or not {"imap", "jmap"} <= self.ports.keys():
            raise AssertionError(f"node {self.name} did not start:\n{self.log()}")

    def log(self) -> str:
        with self.cond:
            return "".join(self.lines)

    @property
    def imap_port(self) -> int:
        return self.ports["imap"]

    @property
    def jmap_base(self) -> str:
        return f"http://127.0.0.1:{self.ports['jmap']}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def start_node(name: str, url: str, data_dir: str) -> Node:
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
    args = [*_twistd(), "-n", "--pidfile=", "--logfile=-", "dualmail", "--store", url, "--data", data_dir,
            "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
            "--lmtp", "tcp:0:interface=127.0.0.1", "--no-first-account"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=env)
    node = Node(name, proc)
    threading.Thread(target=node._read, daemon=True).start()
    return node


def start_nodes(url: str, tmp_path, n: int = 3) -> list[Node]:
    nodes = [start_node(f"node{i + 1}", url, str(tmp_path / f"node{i + 1}")) for i in range(n)]
    try:
        for node in nodes:
            node.wait_listening()
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


def database_with_account(pg_server, prefix: str, user: str, password: str) -> str:
    """A fresh database (its own NOTIFY channel) holding one account: its URL."""
    from dualmail.store.store import open_store

    url = pg_server.fresh_database(prefix)
    s = open_store(url)
    s.create_account(user, password)
    s.close()
    return url
