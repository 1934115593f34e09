"""dualmail beside Debian's Dovecot, the same corpus in both, timed round by round.

    python bench/vs_dovecot.py [--sizes 1000,10000] [--big] [--rounds 5] [--append 1000]

Needs Debian's ``dovecot-imapd`` (``apt-get install dovecot-imapd``; run as root the script
installs it when missing, as ``.ci/run`` does).  For each size a throwaway Dovecot
(``tests/dovecot_util.py``: maildir, plaintext LOGIN on 127.0.0.1 only, CONDSTORE/QRESYNC,
``mail_fsync = optimized``, its default) and a fresh ``twistd -n dualmail`` (synced LMDB,
every listener on port 0) are started and **the same** corpus is loaded into both over IMAP
APPEND (``bench/mailgen.py`` with seed 12, INTERNALDATE and flags set, plus three short
messages carrying a word no other message has and one 1 MB message).  Then every
operation is timed on both servers alternately, round after round, so the machine's noise
falls on both alike:

* ``SELECT INBOX (CONDSTORE)`` on a fresh logged-in connection;
* ``UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)`` and
  ``UID FETCH 1:* (BODYSTRUCTURE)`` (messages/s);
* ``UID FETCH <the newest 500> (BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID
  References)])``, the same 500 as Thunderbird asks for new mail (``UID RFC822.SIZE FLAGS
  BODY.PEEK[HEADER.FIELDS (...its 14 fields)]``) and ``UID FETCH <the 1 MB message> BODY.PEEK[]``;
* ``UID SEARCH SUBJECT w`` (w in ~1 % of subjects), ``UID SEARCH BODY w`` (3 messages),
  ``UID SEARCH UNSEEN``, ``UID SORT (REVERSE DATE) UTF-8 ALL``;
* after 10 keyword changes (one no message had): ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m)`` and, on a fresh
  connection with QRESYNC enabled, ``SELECT INBOX (QRESYNC (v m))``;
* APPEND of ``--append`` messages into a new mailbox from 1 connection and from 10
  connections at once (messages/s; once per size).

The corpus is loaded with one APPEND per message, or with ``--load-batch`` messages per
MULTIAPPEND (RFC 3502; the default from 50,000 messages on, 100 per command): Dovecot's
maildir rewrites ``dovecot-uidlist`` per command and slows to ~25 msg/s near 40k
messages over single APPENDs, so 100k would take hours to load.

The clock runs from writing the command to reading its tagged reply (TCP_NODELAY): while
it runs, the client only tests whether the last line read is the tagged one; the reply is
framed (literals skipped, the tagged line checked to be its end) and checked after the
clock stops.  Each timed command starts once neither server has run for 5 ms (``quiet``:
what a server does after its tagged reply must not fall on the other's next command), and
which server goes first alternates from round to round.  Figures are medians of the
rounds; ratio = dualmail speed / Dovecot speed (> 1: dualmail faster).  Resident memory
of each server (Dovecot: all its processes) is printed after the load.  Dualmail is timed
once its full-text index has caught up.
"""

from __future__ import annotations

import argparse
import email.header
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import mailgen  # noqa: E402

USER, PASSWORD = "bench@example.org", "bench-password"
RARE = "quokkafishery"
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


# -- the corpus ------------------------------------------------------------------------


def internal_date(epoch: int) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def corpus(n: int) -> list[tuple[bytes, list[str], int]]:
    """(raw, flags, internal date): n mailgen messages, 3 with ``RARE`` in the body, one of 1 MB."""
    out = [(m.raw, sorted(f for f in m.flags if f != "\\Recent"), m.date)
           for m in mailgen.generate_records(n, seed=12)]
    last = out[-1][2] if out else 1_700_000_000
    for i in range(3):
        raw = (f"From: Rare Sender <rare{i}@example.net>\r\nTo: {USER}\r\n"
               f"Subject: note {i}\r\nDate: Mon, 1 Dec 2025 10:0{i}:00 +0000\r\n"
               f"Message-ID: <rare{i}@example.net>\r\n\r\n"
               f"Hello,\r\nthe word is {RARE} today.\r\n").encode()
        out.append((raw, [], last + 60 + i))
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/0123456789ab\r\n"
    body = line * (1_000_000 // len(line))
    big = (b"From: Big <big@example.net>\r\nTo: " + USER.encode() + b"\r\nSubject: one megabyte\r\n"
           b"Date: Mon, 1 Dec 2025 11:00:00 +0000\r\nMessage-ID: <big@example.net>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body)
    out.append((big, ["\\Seen"], last + 120))
    return out


def subject_word(messages: list[tuple[bytes, list[str], int]]) -> str:
    """A word in the subjects of about 1 % of the messages."""
    counts: Counter[str] = Counter()
    for raw, _f, _d in messages:
        head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        m = re.search(r"^Subject:(.*(?:\r\n[ \t].*)*)", head, re.M | re.I)
        if not m:
            continue
        try:
            text = str(email.header.make_header(email.header.decode_header(m.group(1).replace("\r\n", ""))))
        except Exception:
            text = m.group(1)
        counts.update({w for w in re.findall(r"[a-z]{5,}", text.lower())})
    goal = max(1, len(messages) // 100)
    return min(counts, key=lambda w: (abs(counts[w] - goal), w)) if counts else "quarterly"


# -- a minimal timing client -------------------------------------------------------------


class Client:
    """A raw IMAP client: ``run(command)`` sends one command and returns (seconds, reply)."""

    def __init__(self, port: int, login: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.n = 0
        self._line()  # greeting
        if login:
            self.run(f'LOGIN "{USER}" "{PASSWORD}"')

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:i + 2])
        del self.buf[:i + 2]
        return line

    def _arrived(self, tag: bytes) -> int:
        """Read until the buffer ends with a line that starts with ``tag``: a test of the
        last line after each read, no walk of the reply while the clock runs (walking it
        costs ~6 ms per 10k lines here, on both servers' figures).  ``_frame`` checks
        afterwards that this line is the tagged reply and not inside a literal."""
        head = tag + b" "
        buf = self.buf
        while True:
            n = len(buf)
            if n >= 2 and buf[n - 1] == 0x0A and buf[n - 2] == 0x0D:
                if buf.startswith(head, buf.rfind(b"\n", 0, n - 1) + 1):
                    return n
            self._fill()
            buf = self.buf

    def _until_tagged(self, tag: bytes) -> bytes:
        self._arrived(tag)
        return self._frame(tag)

    def _frame(self, tag: bytes) -> bytes:
        """Everything up to and including the tagged line, walked line by line; literals
        are skipped whole."""
        start = 0
        want = tag + b" "
        buf = self.buf
        while True:
            i = buf.find(b"\r\n", start)
            if i < 0:
                self._fill()
                buf = self.buf
                continue
            if buf.startswith(want, start):
                out = bytes(buf[:i + 2])
                del buf[:i + 2]
                return out
            if i > start and buf[i - 1] == 0x7D:  # "}": a literal follows
                j = buf.rfind(b"{", start, i)
                size = int(buf[j + 1:i - 1].rstrip(b"+"))
                end = i + 2 + size
                while len(buf) < end:
                    self._fill()
                    buf = self.buf
                start = end
            else:
                start = i + 2

    def run(self, command: str | bytes) -> tuple[float, bytes]:
        self.n += 1
        tag = b"t%d" % self.n
        cmd = command.encode() if isinstance(command, str) else command
        t0 = time.perf_counter()
        self.sock.sendall(tag + b" " + cmd + b"\r\n")
        got = self._arrived(tag)
        dt = time.perf_counter() - t0
        reply = self._frame(tag)  # (the parse, after the clock: issue 12)
        if len(reply) != got:
            raise RuntimeError(f"{cmd[:80]!r}: the line taken for the tagged reply was not its end")
        status = reply.rsplit(b"\r\n", 2)[-2].split(b" ", 2)[1]
        if status != b"OK":
            raise RuntimeError(f"{cmd[:80]!r}: {reply[-300:]!r}")
        return dt, reply

    def append(self, mailbox: str, raw: bytes, flags: list[str], date: int) -> None:
        """APPEND with a synchronizing literal (both servers also take LITERAL+)."""
        self.n += 1
        tag = b"t%d" % self.n
        head = f'{tag.decode()} APPEND "{mailbox}" ({" ".join(flags)}) "{internal_date(date)}" {{{len(raw)}+}}\r\n'
        self.sock.sendall(head.encode() + raw + b"\r\n")
        reply = self._until_tagged(tag)
        if not reply.rsplit(b"\r\n", 2)[-2].split(b" ", 2)[1] == b"OK":
            raise RuntimeError(f"APPEND: {reply[-300:]!r}")

    def multiappend(self, mailbox: str, batch: list[tuple[bytes, list[str], int]]) -> None:
        """One APPEND of several messages (RFC 3502 MULTIAPPEND; both servers have it)."""
        self.n += 1
        tag = b"t%d" % self.n
        parts = [f'{tag.decode()} APPEND "{mailbox}"'.encode()]
        for raw, flags, date in batch:
            parts.append(f' ({" ".join(flags)}) "{internal_date(date)}" {{{len(raw)}+}}\r\n'.encode() + raw)
        self.sock.sendall(b"".join(parts) + b"\r\n")
        reply = self._until_tagged(tag)
        if not reply.rsplit(b"\r\n", 2)[-2].split(b" ", 2)[1] == b"OK":
            raise RuntimeError(f"APPEND: {reply[-300:]!r}")

    def close(self) -> None:
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


# -- the servers -----------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except OSError:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _tree_rss_kb(pid: int, field: str = "VmRSS:") -> int:
    """Resident memory of ``pid`` and all its descendants (``field``: "RssAnon:" leaves out
    mapped files, e.g. LMDB's pages, which the page cache holds for Dovecot's mail too)."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def _run_ns(pids: list[int]) -> int:
    """CPU time the threads of ``pids`` have run, in ns (``/proc/.../schedstat``)."""
    total = 0
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def quiet(servers: list[Any], window: float = 0.005, limit: float = 0.5) -> None:
    """Wait (up to ``limit``) until no process of any server has run more than 2 % of a
    ``window``: work a server goes on with after its tagged reply (Dovecot's index and
    cache writes, dualmail's indexer) then cannot fall on the other server's next command
    on this 2-core machine.  Not timed."""
    pids = [p for srv in servers for p in _tree(srv.pid)]
    deadline = time.monotonic() + limit
    last = _run_ns(pids)
    QUIET[0] += 1
    while time.monotonic() < deadline:
        time.sleep(window)
        now = _run_ns(pids)
        if now - last < window * 1e9 * 0.02:
            return
        last = now
    QUIET[1] += 1


QUIET = [0, 0]  # waits, and waits that reached their limit


class DualmailServer:
    name = "dualmail"

    def __init__(self, root: str) -> None:
        from imap_bench import Server

        from dualmail.store.store import open_store

        self.data = data = os.path.join(root, "data")
        store = open_store(data)
        store.create_account(USER, PASSWORD)
        store.close()
        self.srv = Server(data, wait_index=False)
        self.port = self.srv.port
        self.proc = self.srv.proc
        self.pid = self.proc.pid

    def settle(self, n: int, limit: float = 900.0) -> None:
        """Let the full-text index catch up with the load, so its slices do not run (and
        hold the GIL) during the timed rounds: read the store beside the server (as the
        ``dualmail`` commands do) until the index's watermark and the subject postings'
        have reached the last Email; then the indexer's last commit.  Not a timing."""
        from dualmail.search import fts
        from dualmail.store import keys as K
        from dualmail.store.kv import prefix_end
        from dualmail.store.store import open_store

        store = open_store(self.data)
        try:
            a = store.require_account(USER)
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                with store.read(a) as r:
                    last = next(iter(r.kv.range("email", K.acct(a), prefix_end(K.acct(a)), reverse=True)), None)
                    top = K.un64(last[0], 4) if last else 0
                    if fts.watermark(r.kv, a) >= top and fts.subject_watermark(r.kv, a) >= top:
                        break
                time.sleep(0.5)
            else:
                print(f"  dualmail: the full-text index had not caught up after {limit:.0f} s", flush=True)
        finally:
            store.close()
        time.sleep(1)  # the indexer's last commit published; not a timing

    def rss_kb(self, field: str = "VmRSS:") -> int:
        return _tree_rss_kb(self.proc.pid, field)

    def stop(self) -> None:
        self.srv.stop()


class DovecotServer:
    name = "dovecot"

    def __init__(self, root: str) -> None:
        from dovecot_util import Dovecot

        self.dc = Dovecot(root, {USER: PASSWORD}, special_use=False, fsync="optimized")
        self.port = self.dc.port
        assert self.dc.proc is not None
        self.pid = self.dc.proc.pid

    def settle(self, n: int) -> None:
        pass

    def rss_kb(self, field: str = "VmRSS:") -> int:
        assert self.dc.proc is not None
        return _tree_rss_kb(self.dc.proc.pid, field)

    def stop(self) -> None:
        self.dc.stop()


def ensure_dovecot() -> None:
    if shutil.which("dovecot") or os.path.exists("/usr/sbin/dovecot"):
        return
    if os.getuid() != 0:
        sys.exit("Debian's dovecot-imapd is needed: apt-get install dovecot-imapd")
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "dovecot-imapd"], check=True)


# -- the run --------------------------------------------------------------------------------


def load(server: Any, messages: list[tuple[bytes, list[str], int]], batch: int = 1) -> float:
    """Seconds to APPEND ``messages`` into INBOX over one connection, ``batch`` messages per
    command (more than 1: MULTIAPPEND, which lets Dovecot's maildir write its
    ``dovecot-uidlist`` once per command rather than once per message, the cost that makes
    a 100k load over single APPENDs take hours)."""
    c = Client(server.port)
    t0 = time.perf_counter()
    if batch > 1:
        for i in range(0, len(messages), batch):
            c.multiappend("INBOX", messages[i:i + batch])
    else:
        for raw, flags, date in messages:
            c.append("INBOX", raw, flags, date)
    dt = time.perf_counter() - t0
    c.close()
    return dt


def append_rate(server: Any, messages: list[tuple[bytes, list[str], int]], conns: int, box: str) -> float:
    c = Client(server.port)
    c.run(f'CREATE "{box}"')
    c.close()
    clients = [Client(server.port) for _ in range(conns)]
    errors: list[BaseException] = []
    go = threading.Barrier(conns + 1)

    def work(k: int) -> None:
        try:
            go.wait()
            for raw, flags, date in messages[k::conns]:
                clients[k].append(box, raw, flags, date)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    for cl in clients:
        cl.close()
    if errors:
        raise errors[0]
    return len(messages) / dt


def modseq_of(reply: bytes) -> int:
    m = re.search(rb"HIGHESTMODSEQ (\d+)", reply)
    assert m, reply[-300:]
    return int(m.group(1))


def uidvalidity_of(reply: bytes) -> int:
    m = re.search(rb"UIDVALIDITY (\d+)", reply)
    assert m, reply[-300:]
    return int(m.group(1))


Op = tuple[str, str, Callable[[Any, dict[str, Any]], tuple[float, bytes]], Callable[[bytes, dict[str, Any]], None]]


def _fresh(server: Any, command: str, enable: str | None = None) -> tuple[float, bytes]:
    c = Client(server.port)
    if enable:
        c.run(enable)
    try:
        return c.run(command)
    finally:
        c.close()


def operations(word: str, total: int) -> list[Op]:
    listing = "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)"
    newest = f"{max(1, total - 500)}:{total}"

    def count_fetch(expect: int) -> Callable[[bytes, dict[str, Any]], None]:
        def check(reply: bytes, _st: dict[str, Any]) -> None:
            got = reply.count(b" FETCH (")
            assert got == expect, f"{got} FETCH responses, expected {expect}"
        return check

    def hits(expect: int | None) -> Callable[[bytes, dict[str, Any]], None]:
        def check(reply: bytes, st: dict[str, Any]) -> None:
            line = next(x for x in reply.split(b"\r\n") if x.startswith((b"* SEARCH", b"* SORT")))
            n = len(line.split()) - 2
            if expect is not None:
                assert n == expect, f"{n} hits, expected {expect}"
            st.setdefault("hits", {})[line.split()[1]] = n
        return check

    def nocheck(_reply: bytes, _st: dict[str, Any]) -> None:
        pass

    return [
        ("SELECT (CONDSTORE), fresh connection", "ms",
         lambda srv, st: _fresh(srv, "SELECT INBOX (CONDSTORE)"), nocheck),
        ("UID FETCH 1:* listing (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)", "msg/s",
         lambda srv, st: st["c"].run(listing), count_fetch(total)),
        ("UID FETCH 1:* (BODYSTRUCTURE)", "msg/s",
         lambda srv, st: st["c"].run("UID FETCH 1:* (BODYSTRUCTURE)"), count_fetch(total)),
        ("UID FETCH <500> BODY.PEEK[HEADER.FIELDS (...)]", "ms",
         lambda srv, st: st["c"].run(f"UID FETCH {newest} (BODY.PEEK[HEADER.FIELDS (From To Subject "
                                     f"Date Message-ID References)])"),
         count_fetch(min(total, 501))),
        ("UID FETCH <500> (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (Thunderbird's 14)])", "ms",
         lambda srv, st: st["c"].run(f"UID FETCH {newest} (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
                                     f"(From To Cc Bcc Subject Date Message-ID Priority X-Priority References "
                                     f"Newsgroups In-Reply-To Content-Type Reply-To)])"),
         count_fetch(min(total, 501))),
        ("UID FETCH <1 MB message> BODY.PEEK[]", "ms",
         lambda srv, st: st["c"].run(f"UID FETCH {total} BODY.PEEK[]"), count_fetch(1)),
        (f"UID SEARCH SUBJECT {word}", "ms",
         lambda srv, st: st["c"].run(f"UID SEARCH SUBJECT {word}"), hits(None)),
        (f"UID SEARCH BODY {RARE} (3 hits)", "ms",
         lambda srv, st: st["c"].run(f"UID SEARCH BODY {RARE}"), hits(3)),
        ("UID SEARCH UNSEEN", "ms", lambda srv, st: st["c"].run("UID SEARCH UNSEEN"), hits(None)),
        ("UID SORT (REVERSE DATE) UTF-8 ALL", "ms",
         lambda srv, st: st["c"].run("UID SORT (REVERSE DATE) UTF-8 ALL"), hits(total)),
        ("UID FETCH 1:* (FLAGS) (CHANGEDSINCE m), 10 changes", "ms",
         lambda srv, st: st["c"].run(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {st['m']})"), count_fetch(10)),
        ("SELECT INBOX (QRESYNC (v m)), 10 changes, fresh connection", "ms",
         lambda srv, st: _fresh(srv, f"SELECT INBOX (QRESYNC ({st['v']} {st['m']}))", "ENABLE QRESYNC"),
         count_fetch(10)),
    ]


def per_size(n: int, rounds: int, appends: int, out: Any,
             load_batch: int = 1) -> list[tuple[str, str, float, float]]:
    messages = corpus(n)
    total = len(messages)
    word = subject_word(messages)
    dirs = [tempfile.mkdtemp(prefix="vsdovecot-"), tempfile.mkdtemp(prefix="vsdovecot-")]
    os.chmod(dirs[1], 0o755)
    servers: list[Any] = []
    rows: list[tuple[str, str, float, float]] = []
    how = "APPEND" if load_batch <= 1 else f"MULTIAPPEND of {load_batch}"
    try:
        servers = [DovecotServer(dirs[1]), DualmailServer(dirs[0])]
        loads = {}
        for srv in servers:
            loads[srv.name] = load(srv, messages, load_batch)
            out.write(f"  {n}: loaded {total} messages into {srv.name} over {how} in "
                      f"{loads[srv.name]:.1f} s ({total / loads[srv.name]:.0f} msg/s)\n")
            out.flush()
        for srv in servers:
            srv.settle(n)
        rss = {srv.name: srv.rss_kb() for srv in servers}
        anon = {srv.name: srv.rss_kb("RssAnon:") for srv in servers}
        ops = operations(word, total)
        state: dict[str, dict[str, Any]] = {}
        for srv in servers:
            c = Client(srv.port)
            c.run("ENABLE CONDSTORE")
            _dt, reply = c.run("SELECT INBOX (CONDSTORE)")
            state[srv.name] = {"c": c, "v": uidvalidity_of(reply), "m": modseq_of(reply)}
            for u in range(1, 11):
                c.run(f"UID STORE {u * (total // 11)} +FLAGS.SILENT ($BenchChanged)")  # (no message has it)
            for op in ops:  # warm-up: caches, and the checks of every reply
                _dt, reply = op[2](srv, state[srv.name])
                op[3](reply, state[srv.name])
        times: dict[tuple[str, str], list[float]] = {}
        for _r in range(rounds):
            for op in ops:
                for srv in (servers if _r % 2 == 0 else servers[::-1]):  # who goes first alternates
                    quiet(servers)
                    dt, _reply = op[2](srv, state[srv.name])
                    times.setdefault((op[0], srv.name), []).append(dt)
        for name, unit, _f, _chk in ops:
            d = statistics.median(times[(name, "dovecot")])
            m = statistics.median(times[(name, "dualmail")])
            rows.append((name, unit, d, m))
        if QUIET[1]:
            out.write(f"  note: {QUIET[1]} of {QUIET[0]} waits for both servers to be idle timed out\n")
        hd, hm = state["dovecot"].get("hits", {}), state["dualmail"].get("hits", {})
        if hd != hm:
            out.write(f"  note: hit counts differ: dovecot {hd}, dualmail {hm}\n")
        for srv in servers:
            state[srv.name]["c"].close()
        if appends:
            batch = (messages[:-1] * (appends // max(1, total - 1) + 1))[:appends]
            for conns in (1, 10):
                rates = {}
                for srv in servers:
                    rates[srv.name] = append_rate(srv, batch, conns, f"Append{conns}")
                rows.append((f"APPEND {appends} messages, {conns} connection{'s' if conns > 1 else ''}",
                             "msg/s!", 1 / rates["dovecot"], 1 / rates["dualmail"]))
        rows.append(("server RSS after the load", "MB", rss["dovecot"] / 1024, rss["dualmail"] / 1024))
        rows.append(("server RSS without mapped files (RssAnon)", "MB", anon["dovecot"] / 1024,
                     anon["dualmail"] / 1024))
        rows.append((f"load of {total} messages over {how} (1 connection)", "msg/s!",
                     loads["dovecot"] / total, loads["dualmail"] / total))
    finally:
        for srv in servers:
            srv.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    return rows


def fmt(unit: str, seconds: float, n: int) -> str:
    if unit == "msg/s":
        return f"{n / seconds:,.0f} msg/s"
    if unit == "msg/s!":
        return f"{1 / seconds:,.0f} msg/s"
    if unit == "MB":
        return f"{seconds:,.1f} MB"
    return f"{seconds * 1e3:,.2f} ms"


def table(out: Any, results: list[tuple[int, list[tuple[str, str, float, float]]]]) -> None:
    out.write("\n| operation | messages | dovecot | dualmail | ratio (speed dualmail/dovecot) |\n")
    out.write("| --- | ---: | ---: | ---: | ---: |\n")
    for n, rows in results:
        total = n + 4
        for name, unit, d, m in rows:
            ratio = "(memory)" if unit == "MB" else f"{d / m:.2f}"
            out.write(f"| {name} | {n:,} | {fmt(unit, d, total)} | {fmt(unit, m, total)} | {ratio} |\n")
    out.write("\n")
    out.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="mailbox sizes (default 1000,10000)")
    ap.add_argument("--big", action="store_true", help="add 100,000 (slow: the load alone takes long)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--append", type=int, default=1000, help="messages per APPEND run (0: skip)")
    ap.add_argument("--load-batch", type=int, default=0,
                    help="messages per APPEND command when loading the corpus (MULTIAPPEND above 1; "
                         "default: 1, or 100 for sizes of 50,000 and more)")
    args = ap.parse_args()
    ensure_dovecot()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.big and 100000 not in sizes:
        sizes.append(100000)
    out = sys.stdout
    out.write(f"vs_dovecot: sizes {sizes}, {args.rounds} rounds, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} at start ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    out.flush()
    results = []
    for n in sizes:
        batch = args.load_batch or (100 if n >= 50000 else 1)
        rows = per_size(n, args.rounds, args.append, out, batch)
        results.append((n, rows))
        table(out, [(n, rows)])  # each size as soon as it is done
        out.write(f"  {n}: done, load average {os.getloadavg()[0]:.1f}\n")
        out.flush()
    table(out, results)
    out.write(f"(load average {os.getloadavg()[0]:.1f} at the end)\n")


if __name__ == "__main__":
    main()
