"""JMAP benchmark: request rates, EventSource fan-out, and a client's first screen,
Email/changes and text search on 1k / 10k / 100k-message accounts.

    python bench/jmap_bench.py [--sizes 1000,10000,100000] [--streams 1000] [--duration 10]

Not a test; prints figures (docs/benchmarks.md, "## JMAP", records a run).

The server is the real service (``dualmail.tap`` Options + ``makeService``, JMAP and IMAP
on ``tcp:0``) in a child process (this script with ``--serve``), so the client never
shares its reactor. The child prints ``JMAP listening on 127.0.0.1:PORT`` and takes
commands on stdin: ``commit`` (a store write in the server process: toggles ``$flagged``
on one Email; the child prints the monotonic time the commit was published), ``index``
(``search.fts.index_all``), ``quit``. The search indexer service is left out so the
unindexed figure is measured on a really unindexed account.

A request is timed from sending it until its whole response body has arrived; the
client decodes the JSON after the clock stops (since 2026-12-07: stdlib ``json`` took
~16 ms of the 20.7 ms recorded for Email/get of 500 at 100k).

Accounts are built straight through the store API in this process before the server
starts: ``store.transact`` + ``tx.create_email`` with the summaries of 200 ``mailgen``
messages (plus one "rare" message containing a word nothing else has, 10 copies per
account), each Email with its own Message-ID, in threads of 4, 2/3 of them ``$seen``.
Clients authenticate with a Bearer token (``store.create_token``).

Figures:

* requests/s over keep-alive connections with ``wrk`` (if installed; else a
  multiprocess ``http.client`` loop): ``Core/echo``, and a 10-call batch with
  back-references (Mailbox/query -> Mailbox/get #ids, Email/query -> Email/get #ids ->
  Thread/get #threadIds, Identity/get, Mailbox/changes, Email/changes, 2x Core/echo), on
  the 1k account;
* EventSource fan-out: ``--streams`` streams of one account (raw sockets, one selector,
  this process), one commit in the server, time from the commit's publication to the
  ``state`` event on each stream (median and max over streams, median of 5 commits);
* per account size: the first screen as ONE request (Mailbox/get + Email/query inMailbox
  INBOX receivedAt desc limit 50 collapseThreads calculateTotal + Email/get #ids with
  the list properties + Thread/get #threadIds), also without calculateTotal;
  Email/changes after 10 changes (Email/set, one keyword change each); Email/query
  ``{"text": <rare word>}`` before and after ``index_all``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Process, Queue
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]
ADDRESS = "bench@example.org"
RARE_WORD = "quetzalcoatlus"
RARE_COPIES = 10
TEMPLATES = 200
THREAD = 4
BATCH = 5000
LISTING_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "from", "to", "subject",
                      "preview", "hasAttachment"]
PREVIEW_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt",
                      "preview", "hasAttachment"]
RARE_MESSAGE = (b"From: Rare Bird <rare@example.net>\r\nTo: bench@example.org\r\nSubject: field notes\r\n"
                b"Date: Tue, 1 Mar 2022 10:00:00 +0000\r\nMessage-ID: <rare@example.net>\r\n"
                b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                b"Saw a " + RARE_WORD.encode() + b" near the budget office this morning.\r\n")


def raise_fd_limit(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


# -- building an account ----------------------------------------------------------------------


def build(data_dir: str, n: int) -> tuple[str, int, float]:
    """A store with one account of ``n`` Emails in INBOX: (token, an email id, seconds)."""
    from mailgen import generate

    from dualmail.mime.jmap_listing import encode as encode_summary
    from dualmail.mime.parse import summarize
    from dualmail.store.store import open_store

    templates = []
    for raw in [*generate(TEMPLATES, 1), RARE_MESSAGE]:
        s = summarize(raw)
        templates.append((raw, s, encode_summary(s)))
    rare_every = max(1, n // RARE_COPIES)
    store = open_store(data_dir, sync=False)
    try:
        account = store.create_account(ADDRESS, "pw")
        with store.read(account) as v:
            inbox = v.mailbox_by_path(["INBOX"])
        shas: dict[int, str] = {}
        t0 = time.perf_counter()
        made = 0
        while made < n:
            k = min(BATCH, n - made)

            def fill(tx: Any, start: int = made, k: int = k) -> None:
                for i in range(start, start + k):
                    t = TEMPLATES if i % rare_every == rare_every // 2 else i % TEMPLATES
                    raw, s, enc = templates[t]
                    root = i - i % THREAD
                    threading_fields = {
                        "message_id": [f"<{i}@bench.example.org>"],
                        "in_reply_to": [f"<{root}@bench.example.org>"] if i != root else [],
                        "references": [f"<{root}@bench.example.org>"] if i != root else [],
                        "subject": s.get("subject"),
                        "base_subject": f"thread {root}",
                    }
                    sha = shas.get(t)
                    _e, _ = tx.create_email(raw, threading_fields, [inbox], ["$seen"] if i % 3 else [],
                                            1_500_000_000 + 60 * i, blob_sha=sha, encoded=enc)
                    if sha is None:
                        shas[t] = tx.email(_e)["blob"]

            store.transact(account, fill)
            made += k
        seconds = time.perf_counter() - t0
        with store.read(account) as v:
            email = next(iter(v.uid_items(inbox)))[1]
        token = store.create_token(ADDRESS, kind="app", note="bench")
    finally:
        store.close()
    return token, email, seconds


# -- the server (child process) ------------------------------------------------------------------


def serve(data_dir: str, email: int) -> None:
    raise_fd_limit(65536)
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from dualmail.search.fts import index_all
    from dualmail.tap import Options, makeService

    options = Options()
    options.parseOptions(["--data", data_dir, "--jmap", "tcp:0:interface=127.0.0.1",
                          "--imap", "tcp:0:interface=127.0.0.1", "--lmtp", "tcp:0:interface=127.0.0.1",
                          "--no-first-account"])
    service = makeService(options, reactor)
    service.privilegedStartService()  # opens the store, binds the ports
    service.removeService(service.getServiceNamed("indexer"))  # unindexed until told
    store = service.store
    [(account, _address)] = store.list_accounts()

    class Control(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self) -> None:
            # first subscriber: runs before the JMAP fan-out of every commit
            store.subscribe(lambda commit: self.sendLine(f"COMMIT {time.monotonic():.6f}".encode()))

        def lineReceived(self, line: bytes) -> None:
            command = line.decode().strip()
            if command == "commit":
                with store.write(account) as tx:
                    keywords = set(tx.require_email(email)["kw"])
                    tx.set_keywords(email, keywords ^ {"$flagged"})
            elif command == "index":
                t0 = time.perf_counter()
                count = index_all(store, account)
                self.sendLine(f"INDEXED {count} {time.perf_counter() - t0:.3f}".encode())
            elif command == "quit":
                service.stopService().addBoth(lambda _: reactor.stop())

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:
                reactor.stop()

    control = Control()

    def announce(ports: list[Any]) -> None:
        host = ports[0].getHost()
        control.sendLine(f"JMAP listening on {host.host}:{host.port}".encode())

    def start() -> None:
        stdio.StandardIO(control)
        service.startService()
        service.bound_ports("jmap").addCallback(announce)

    reactor.callWhenRunning(start)
    reactor.run()


class Server:
    """The child process and its stdout lines."""

    def __init__(self, data_dir: str, email: int):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", data_dir, "--email", str(email)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(data_dir + ".server.log", "wb"), bufsize=0)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.expect("JMAP listening on ", 60)
        host, port = line.rsplit(" ", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    def drain(self) -> None:
        """Forget the lines so far (e.g. COMMIT lines of earlier writes)."""
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                return

    def expect(self, prefix: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def close(self) -> None:
        try:
            self.send("quit")
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# -- an HTTP client ------------------------------------------------------------------------------


class Client:
    def __init__(self, server: Server, token: str):
        self.conn = http.client.HTTPConnection(server.host, server.port)
        self.headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        session = self.get("/jmap/session")
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    def _exchange(self, method: str, path: str, body: bytes | None = None) -> bytes:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # twisted.web closes a keep-alive connection idle for 60 s (e.g. while
                # the server indexed): open a new one
                self.conn.close()
                if attempt == 2:
                    raise
        assert response.status == 200, data
        return data

    def get(self, path: str) -> Any:
        return json.loads(self._exchange("GET", path))

    def post(self, calls: list) -> bytes:
        """The raw response to a request of ``calls`` (timed: the answer has arrived)."""
        return self._exchange("POST", "/jmap/api", json.dumps({"using": USING, "methodCalls": calls}).encode())

    def api(self, calls: list) -> list:
        return self.decode(self.post(calls))

    @staticmethod
    def decode(data: bytes) -> list:
        """The method responses, checked (after the clock: stdlib ``json`` takes ~16 ms for
        the 340 KB answer to Email/get of 500, more than the server)."""
        out = json.loads(data)["methodResponses"]
        for name, args, _tag in out:
            assert name != "error", args
        return out


def timed(fn: Callable[[], Any], repeat: int, decode: Callable[[Any], Any] = lambda x: x) -> tuple[float, Any]:
    """The median time of ``fn`` and its last result, through ``decode`` (outside the clock,
    as ``vs_dovecot.py`` parses IMAP replies after the clock stops)."""
    t0 = time.perf_counter()
    out = fn()  # warm-up (LMDB pages, caches), as on a live server
    if time.perf_counter() - t0 > 2:
        repeat = min(repeat, 3)  # slow (an unindexed search of 100k): 3 runs are enough
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), decode(out)


# -- requests ------------------------------------------------------------------------------------


def echo_body() -> dict:
    return {"using": USING, "methodCalls": [["Core/echo", {"hello": "world", "n": 1}, "0"]]}


def batch_body(account: str, inbox: str) -> dict:
    """10 calls, 4 of them taking their ids from an earlier result."""
    a = {"accountId": account}
    return {"using": USING, "methodCalls": [
        ["Mailbox/query", {**a, "sort": [{"property": "name"}]}, "0"],
        ["Mailbox/get", {**a, "#ids": {"resultOf": "0", "name": "Mailbox/query", "path": "/ids"},
                         "properties": ["name", "role", "totalEmails", "unreadEmails"]}, "1"],
        ["Email/query", {**a, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 10}, "2"],
        ["Email/get", {**a, "#ids": {"resultOf": "2", "name": "Email/query", "path": "/ids"},
                       "properties": ["threadId", "subject", "from", "receivedAt"]}, "3"],
        ["Thread/get", {**a, "#ids": {"resultOf": "3", "name": "Email/get", "path": "/list/*/threadId"}}, "4"],
        ["Identity/get", {**a}, "5"],
        ["Core/echo", {"ping": 1}, "6"],
        ["Mailbox/get", {**a, "ids": [inbox], "properties": ["unreadEmails"]}, "7"],
        ["Thread/get", {**a, "#ids": {"resultOf": "2", "name": "Email/query", "path": "/ids"}}, "8"],
        ["Core/echo", {"ping": 2}, "9"],
    ]}


def first_screen(account: str, inbox: str, total: bool = True) -> list:
    a = {"accountId": account}
    return [
        ["Mailbox/get", {**a, "ids": None}, "0"],
        ["Email/query", {**a, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}],
                         "collapseThreads": True, "position": 0, "limit": 50, "calculateTotal": total}, "1"],
        ["Email/get", {**a, "#ids": {"resultOf": "1", "name": "Email/query", "path": "/ids"},
                       "properties": PREVIEW_PROPERTIES}, "2"],
        ["Thread/get", {**a, "#ids": {"resultOf": "2", "name": "Email/get", "path": "/list/*/threadId"}}, "3"],
    ]


# -- request rates ---------------------------------------------------------------------------------


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = [==[%s]==]
"""


def rate_wrk(server: Server, token: str, body: dict, duration: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (token, json.dumps(body)))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name,
             f"http://{server.host}:{server.port}/jmap/api"], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    fields: dict[str, Any] = {"tool": f"wrk -t1 -c{connections} -d{duration}s", "errors": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            fields["rps"] = float(parts[1])
        elif line.strip().startswith("50%"):
            fields["p50"] = parts[1]
        elif line.strip().startswith("99%"):
            fields["p99"] = parts[1]
        elif line.startswith("  Non-2xx") or line.startswith("  Socket errors"):
            fields["errors"] = line.strip()
    return fields


def _worker(host: str, port: int, token: str, body: bytes, until: float, out: Queue) -> None:
    conn = http.client.HTTPConnection(host, port)
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    done = bad = 0
    while time.monotonic() < until:
        conn.request("POST", "/jmap/api", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        done += 1
        bad += response.status != 200
    out.put((done, bad))


def rate_python(server: Server, token: str, body: dict, duration: int, connections: int) -> dict[str, Any]:
    out: Queue = Queue()
    until = time.monotonic() + duration
    procs = [Process(target=_worker, args=(server.host, server.port, token, json.dumps(body).encode(), until, out))
             for _ in range(connections)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return {"tool": f"http.client x{connections} processes, {duration}s", "rps": sum(r[0] for r in results) / duration,
            "errors": sum(r[1] for r in results)}


# -- EventSource fan-out ----------------------------------------------------------------------------


def fan_out(server: Server, token: str, streams: int, rounds: int) -> dict[str, Any]:
    raise_fd_limit(streams + 256)
    request = (f"GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: {server.host}\r\n"
               f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    buffers: dict[int, bytes] = {}
    t_open = time.perf_counter()
    while len(socks) < streams:
        batch = []
        for _ in range(min(40, streams - len(socks))):  # Twisted's listen backlog is 50
            s = socket.create_connection((server.host, server.port))
            s.sendall(request)
            batch.append(s)
        for s in batch:  # wait for the headers and the opening comment
            data = b""
            while b": jmap event stream" not in data:
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:200]
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, len(socks))
            buffers[len(socks)] = b""
            socks.append(s)
    open_seconds = time.perf_counter() - t_open
    medians, maxima = [], []
    for _ in range(rounds):
        for k in buffers:
            buffers[k] = b""
        arrived: dict[int, float] = {}
        server.drain()
        server.send("commit")
        while len(arrived) < streams:
            for key, _mask in sel.select(timeout=10):
                chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                now = time.monotonic()
                i = key.data
                buffers[i] += chunk
                if i not in arrived and b"event: state" in buffers[i]:
                    arrived[i] = now
        committed = float(server.expect("COMMIT ", 10).split()[1])
        latencies = sorted(t - committed for t in arrived.values())
        medians.append(statistics.median(latencies))
        maxima.append(latencies[-1])
        time.sleep(0.2)
    for s in socks:
        sel.unregister(s)
        s.close()
    return {"streams": streams, "open_seconds": open_seconds, "median": statistics.median(medians),
            "max": statistics.median(maxima), "worst": max(maxima), "rounds": rounds}


# -- per account size ---------------------------------------------------------------------------------


def size_figures(server: Server, token: str, repeat: int) -> dict[str, Any]:
    c = Client(server, token)
    [[_, mailboxes, _]] = c.api([["Mailbox/get", {"accountId": c.account, "properties": ["role"]}, "0"]])
    inbox = next(m["id"] for m in mailboxes["list"] if m["role"] == "inbox")
    fig: dict[str, Any] = {}

    fig["first_screen"], out = timed(lambda: c.post(first_screen(c.account, inbox)), repeat, c.decode)
    fig["first_screen_total"] = out[1][1].get("total")
    fig["first_screen_emails"] = len(out[2][1]["list"])
    fig["first_screen_no_total"], _ = timed(lambda: c.post(first_screen(c.account, inbox, total=False)),
                                            repeat, c.decode)

    [[_, newest500, _]] = c.api([["Email/query", {"accountId": c.account, "filter": {"inMailbox": inbox},
                                                  "sort": [{"property": "receivedAt", "isAscending": False}],
                                                  "limit": 500}, "0"]])
    get500 = [["Email/get", {"accountId": c.account, "ids": newest500["ids"], "properties": LISTING_PROPERTIES}, "0"]]
    fig["get500"], out = timed(lambda: c.post(get500), repeat, c.decode)
    assert len(out[0][1]["list"]) == min(500, len(newest500["ids"]))

    search = [["Email/query", {"accountId": c.account, "filter": {"text": RARE_WORD},
                               "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "0"]]
    fig["search_unindexed"], out = timed(lambda: c.post(search), repeat, c.decode)
    fig["search_hits"] = len(out[0][1]["ids"])

    # 10 changes (one Email/set each, like a client marking messages read), then /changes
    [[_, state, _]] = c.api([["Email/get", {"accountId": c.account, "ids": [], "properties": ["id"]}, "0"]])
    since = state["state"]
    [[_, newest, _]] = c.api([["Email/query", {"accountId": c.account, "filter": {"inMailbox": inbox},
                                               "limit": 10}, "0"]])
    for email_id in newest["ids"]:
        c.api([["Email/set", {"accountId": c.account, "update": {email_id: {"keywords/$flagged": True}}}, "0"]])
    changes = [["Email/changes", {"accountId": c.account, "sinceState": since}, "0"]]
    fig["changes"], out = timed(lambda: c.post(changes), repeat, c.decode)
    assert len(out[0][1]["updated"]) == 10, out

    server.send("index")
    line = server.expect("INDEXED ")
    fig["indexed_count"], fig["index_seconds"] = int(line.split()[1]), float(line.split()[2])
    fig["search_indexed"], out = timed(lambda: c.post(search), repeat, c.decode)
    assert len(out[0][1]["ids"]) == fig["search_hits"]
    return fig


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per request-rate run")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections for the rates")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--email", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.email)
        return

    out = sys.stdout
    sizes = [int(x) for x in args.sizes.split(",")]
    out.write(f"jmap_bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}, sizes {sizes}\n")
    rates: dict[str, dict[str, Any]] = {}
    push: dict[str, Any] | None = None
    per_size: dict[int, dict[str, Any]] = {}
    for index, n in enumerate(sizes):
        tmp = tempfile.mkdtemp(prefix="dualmail-jmap-bench-")
        try:
            token, email, build_seconds = build(os.path.join(tmp, "data"), n)
            out.write(f"== {n} messages: built in {build_seconds:.1f} s\n")
            out.flush()
            server = Server(os.path.join(tmp, "data"), email)
            try:
                if index == 0:
                    c = Client(server, token)
                    [[_, mb, _]] = c.api([["Mailbox/get", {"accountId": c.account, "properties": ["role"]}, "0"]])
                    inbox = next(m["id"] for m in mb["list"] if m["role"] == "inbox")
                    c.api(batch_body(c.account, inbox)["methodCalls"])  # every call answers, none is an error
                    rate = rate_wrk if shutil.which("wrk") else rate_python
                    for name, body in (("Core/echo", echo_body()), ("10-call batch", batch_body(c.account, inbox))):
                        rates[name] = rate(server, token, body, args.duration, args.connections)
                        out.write(f"{name:16s} {rates[name]['rps']:8.0f} req/s  {rates[name]}\n")
                        out.flush()
                    if args.streams:
                        push = fan_out(server, token, args.streams, 5)
                        out.write(f"EventSource fan-out {push}\n")
                        out.flush()
                per_size[n] = fig = size_figures(server, token, args.repeat)
                out.write(f"   {fig}\n")
                out.flush()
            finally:
                server.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    out.write("\nrequests/s (1k account, keep-alive)\n")
    out.write("| request | req/s | p50 | p99 | errors | client |\n|---|---:|---:|---:|---|---|\n")
    for name, r in rates.items():
        out.write(f"| {name} | {r['rps']:.0f} | {r.get('p50', '')} | {r.get('p99', '')} | {r['errors']} "
                  f"| {r['tool']} |\n")
    if push:
        out.write(f"\nEventSource fan-out: {push['streams']} streams (opened in {push['open_seconds']:.1f} s), "
                  f"commit -> state event, median of {push['rounds']} commits: median {ms(push['median'])} ms, "
                  f"all streams {ms(push['max'])} ms (worst {ms(push['worst'])} ms)\n")
    out.write("\nper account, ms (median)\n")
    out.write("| messages | first screen | … no calculateTotal | Email/get 500 | Email/changes (10) "
              "| text search unindexed | text search indexed | hits | index_all s |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for n, f in per_size.items():
        out.write(f"| {n:,} | {ms(f['first_screen'])} | {ms(f['first_screen_no_total'])} | {ms(f['get500'])} "
                  f"| {ms(f['changes'])} "
                  f"| {ms(f['search_unindexed'])} | {ms(f['search_indexed'])} | {f['search_hits']} "
                  f"| {f['index_seconds']:.1f} |\n")
    if len(per_size) > 1:
        lo, hi = per_size[min(per_size)], per_size[max(per_size)]
        label = f"{max(per_size) // 1000}k / {min(per_size) // 1000}k"
        out.write(f"| **{label}** | {hi['first_screen'] / lo['first_screen']:.1f} "
                  f"| {hi['first_screen_no_total'] / lo['first_screen_no_total']:.1f} "
                  f"| {hi['get500'] / lo['get500']:.1f} "
                  f"| **{hi['changes'] / lo['changes']:.2f}** | {hi['search_unindexed'] / lo['search_unindexed']:.1f} "
                  f"| {hi['search_indexed'] / lo['search_indexed']:.1f} | | |\n")
    out.flush()


if __name__ == "__main__":
    main()
