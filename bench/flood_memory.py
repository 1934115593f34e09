"""Memory under a flood (issue 17): N idle IMAP connections, M idle HTTP keep-alives and one
client streaming a huge APPEND literal at full speed, against a real ``twistd dualmail``
in a subprocess; prints the server's RSS before, at each stage and at the end.

    .venv/bin/python bench/flood_memory.py [--imap 2000] [--http 500] [--literal-mb 1024]

The literal is non-synchronising (``{n+}``, LITERAL+) and over APPENDLIMIT: the server must
answer BAD [TOOBIG] + BYE and close at once instead of buffering it (RFC 7888 §4).  A
second stream announces a synchronising literal of the same size and sends it anyway
without waiting for "+": refused before reading, the bytes are parsed as (bad) commands
and the line limit closes the connection.  Neither may grow RSS by more than a few MB.  Last, a 48 MB APPEND within the limit at full
speed: held once while it arrives (bounded by APPENDLIMIT), then stored.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER, PASSWORD = "flood@example.org", "flood-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server did not listen on {port}")


def read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def stream_literal(port: int, size: int, sync: bool, pid: int) -> tuple[int, int, float, bytes]:
    """Log in, announce a ``size`` literal and send it at full speed until the server
    closes; return (RSS after the login, octets sent, seconds, what the server said).
    (The first login's argon2 check takes its 19 MiB on a worker thread: measured apart.)"""
    s = socket.create_connection(("127.0.0.1", port))
    read_line(s)
    s.sendall(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
    while not read_line(s).startswith(b"a "):
        pass
    logged_in = rss_kb(pid)
    s.sendall(f"b APPEND INBOX {{{size}{'' if sync else '+'}}}\r\n".encode())
    chunk = b"x" * (1 << 20)
    sent, t0 = 0, time.monotonic()
    s.settimeout(30)
    try:
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    elapsed = time.monotonic() - t0
    said = b""
    try:
        s.settimeout(2)
        said = s.recv(4096)
    except OSError:
        pass
    s.close()
    return logged_in, sent, elapsed, said


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--imap", type=int, default=2000)
    ap.add_argument("--http", type=int, default=500)
    ap.add_argument("--literal-mb", type=int, default=1024)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.imap + args.http + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    data = tempfile.mkdtemp(prefix="dualmail-flood-")
    env = {**os.environ, "PYTHONPATH": ROOT}
    py = sys.executable
    subprocess.run([py, "-m", "dualmail.cli", "--data", data, "user", "add", USER], input=PASSWORD + "\n",
                   text=True, check=True, env=env, capture_output=True)
    imap_port, jmap_port = free_port(), free_port()
    twistd = os.path.join(os.path.dirname(py), "twistd")
    server = subprocess.Popen(
        [*([twistd] if os.path.exists(twistd) else [py, "-m", "twisted"]), "--nodaemon", "--pidfile=", "--logfile", os.path.join(data, "server.log"),
         "dualmail", "--data", data, "--no-first-account",
         "--imap", f"tcp:{imap_port}:interface=127.0.0.1", "--jmap", f"tcp:{jmap_port}:interface=127.0.0.1",
         "--lmtp", "tcp:0:interface=127.0.0.1", "--max-connections-per-ip", "0"],
        env=env, cwd=ROOT)
    try:
        wait_port(imap_port)
        wait_port(jmap_port)
        base = rss_kb(server.pid)
        print(f"server RSS at start: {base / 1024:.1f} MB (empty mailbox, 1 account)")
        idle = []
        for _ in range(args.imap):
            s = socket.create_connection(("127.0.0.1", imap_port))
            idle.append(s)
        for s in idle:
            read_line(s)  # the greeting: each connection is fully set up
        after_imap = rss_kb(server.pid)
        print(f"+ {args.imap} idle IMAP connections: {after_imap / 1024:.1f} MB "
              f"(+{(after_imap - base) / 1024:.1f} MB, {(after_imap - base) / max(args.imap, 1):.1f} KB each)")
        keep = []
        for _ in range(args.http):
            s = socket.create_connection(("127.0.0.1", jmap_port))
            s.sendall(b"GET /.well-known/jmap HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # 401, kept alive
            keep.append(s)
        for s in keep:
            s.settimeout(30)
            s.recv(65536)
        after_http = rss_kb(server.pid)
        print(f"+ {args.http} idle HTTP keep-alives: {after_http / 1024:.1f} MB "
              f"(+{(after_http - after_imap) / 1024:.1f} MB)")
        size = args.literal_mb << 20
        for sync in (False, True):
            before, sent, secs, said = stream_literal(imap_port, size, sync, server.pid)
            now = rss_kb(server.pid)
            kind = "synchronising" if sync else "LITERAL+"
            print(f"+ a {args.literal_mb} MB {kind} APPEND streamed after a login (RSS then {before / 1024:.1f} MB):"
                  f" {sent >> 20} MB sent in {secs:.1f} s before the server closed; RSS {now / 1024:.1f} MB "
                  f"(+{(now - before) / 1024:.1f} MB); server said {said[:60]!r}")
        # within APPENDLIMIT (50 MiB): accepted; the parser holds at most the one literal
        s = socket.create_connection(("127.0.0.1", imap_port))
        read_line(s)
        s.sendall(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
        while not read_line(s).startswith(b"a "):
            pass
        ok_size = 48 << 20
        before = rss_kb(server.pid)
        s.sendall(f"c APPEND INBOX {{{ok_size}}}\r\n".encode())
        assert read_line(s).startswith(b"+")
        t0 = time.monotonic()
        block = (b"x" * 998 + b"\r\n") * 1024
        left = ok_size
        while left:
            piece = block[:left]
            s.sendall(piece)
            left -= len(piece)
        s.sendall(b"\r\n")
        s.settimeout(120)
        while not (line := read_line(s)).startswith(b"c "):
            pass
        secs = time.monotonic() - t0
        now = rss_kb(server.pid)
        print(f"+ a 48 MB APPEND within APPENDLIMIT at full speed: {line.strip()[:40]!r} in {secs:.1f} s; "
              f"RSS {now / 1024:.1f} MB (+{(now - before) / 1024:.1f} MB: the one literal, bounded by APPENDLIMIT)")
        s.close()
        end = rss_kb(server.pid)
        print(f"total RSS growth: {(end - base) / 1024:.1f} MB; peak connections {args.imap + args.http + 1}")
        for s in idle + keep:
            s.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
