"""SIGKILL at random points of every write path (issue 17; docs/security.md "Crash
safety"): a real ``twistd dualmail`` is driven through IMAP APPEND, STORE, COPY, MOVE,
EXPUNGE, JMAP Email/set, Email/import (after an upload), Mailbox/set, LMTP delivery and
the CLI's ``import``, ``token create``, ``token revoke`` and ``user add``; a seeded random point in that
stream (right after a request went out, before its answer) gets the server SIGKILLed.
After each kill, with the server down:

* every acknowledged write is there (a tagged OK, a JMAP response, an LMTP 250, a CLI
  exit 0: each is only sent after its commit, docs/architecture.md "Durability");
* the one write that was in flight is all there or not there at all: a message is
  present with exactly the bytes sent, in exactly the mailboxes of one side of the
  operation, or absent;
* ``dualmail check`` (every counter and index recounted) is clean;

then the server is started again on the same data and the next round goes on.

``DUALMAIL_CRASH_KILLS`` (default 10) rounds, ``DUALMAIL_CRASH_SEED`` (default 17)
chooses the kill points; e.g. ``DUALMAIL_CRASH_KILLS=200 pytest
tests/crash/test_crash_sigkill.py`` for a longer run."""

from __future__ import annotations

import base64
import imaplib
import json
import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import threading
import traceback
import urllib.request
from dataclasses import dataclass, field

import pytest

from dualmail.store.store import open_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
KILLS = int(os.environ.get("DUALMAIL_CRASH_KILLS", "10"))
SEED = int(os.environ.get("DUALMAIL_CRASH_SEED", "17"))
USER, PASSWORD = "alice@example.org", "secret"
TIMEOUT = 60
ENV = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
INBOX, ARCHIVE, TRASH = "INBOX", "Archive", "Trash"


def _twistd() -> list[str]:
    script = os.path.join(BIN, "twistd")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "twisted"]


def _cli(data: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from dualmail.cli import main; sys.exit(main())",
                           "--data", data, *args], input=stdin, capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=TIMEOUT)


def _message(mid: str, body: str = "crash test body") -> bytes:
    return (f"From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: {mid}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nContent-Type: text/plain\r\n\r\n{body}\r\n").encode()


class Server:
    def __init__(self, data: str) -> None:
        args = [*_twistd(), "-n", "--pidfile=", "--logfile=-", "dualmail", "--data", data, "--no-first-account",
                "--imap", "tcp:0:interface=127.0.0.1", "--jmap", "tcp:0:interface=127.0.0.1",
                "--lmtp", "tcp:0:interface=127.0.0.1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                     env=ENV)
        self.ports: dict[str, int] = {}
        self.log: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.log.append(line)
                m = re.search(r"(IMAP|JMAP|LMTP) listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.ports[m.group(1)] = int(m.group(2))
                if len(self.ports) == 3:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(TIMEOUT) and len(self.ports) == 3, "".join(self.log)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)


@dataclass
class Op:
    """One write path: its steps run in order; ``acked`` counts the steps answered."""

    kind: str
    name: str
    acked: int = 0
    steps: int = 1
    info: dict = field(default_factory=dict)


class Driver:
    """Runs random write operations against the server until it dies; calls
    ``about_to_send(op)`` right before each request leaves."""

    def __init__(self, server: Server, data: str, round_: int, rng: random.Random, about_to_send) -> None:
        self.server, self.data, self.round, self.rng = server, data, round_, rng
        self.about_to_send = about_to_send
        self.ops: list[Op] = []
        self.n = 0
        self.trace = ""
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": "Basic " + auth, "Content-Type": "application/json"}
        self.base = f"http://127.0.0.1:{server.ports['JMAP']}"
        self.account = "A1"

    def mid(self) -> str:
        self.n += 1
        return f"r{self.round}-{self.n}@crash.example"

    def step(self, op: Op, fn, *args):
        self.about_to_send(op)
        result = fn(*args)
        op.acked += 1
        return result

    # -- protocols --

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.server.ports["IMAP"], timeout=TIMEOUT)
        client.login(USER, PASSWORD)
        return client

    def _ok(self, typ_data) -> list:
        typ, data = typ_data
        assert typ == "OK", typ_data
        return data

    def _append(self, client: imaplib.IMAP4, raw: bytes) -> int:
        data = self._ok(client.append(INBOX, "", None, raw))
        return int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))

    def jmap(self, calls: list) -> list:
        body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                           "methodCalls": calls}).encode()
        request = urllib.request.Request(self.base + "/jmap/api", data=body, headers=self.headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())["methodResponses"]

    # -- operations --

    def run(self) -> None:
        kinds = ["append", "store", "copy", "move", "expunge", "email_set", "email_import", "mailbox_set",
                 "lmtp", "cli_import", "cli_token", "cli_revoke", "cli_user"]
        try:
            while True:
                kind = self.rng.choice(kinds)
                op = Op(kind, self.mid())
                self.ops.append(op)
                getattr(self, "op_" + kind)(op)
        except Exception as e:  # the server died under us
            self.error = e
            self.trace = traceback.format_exc()

    def _imap_op(self, op: Op, after_append) -> None:
        raw = _message(op.name)
        op.info["raw"] = raw
        client = self.imap()
        try:
            client.select(INBOX)
            op.steps = 1 + len(after_append)
            uid = self.step(op, self._append, client, raw)
            for command, args in after_append:
                self.step(op, lambda c=command, a=args: self._ok(client.uid(c, str(uid), *a)))
        finally:
            try:
                client.logout()
            except Exception:
                pass

    def op_append(self, op: Op) -> None:
        self._imap_op(op, [])

    def op_store(self, op: Op) -> None:
        self._imap_op(op, [("STORE", ("+FLAGS", r"(\Flagged)"))])

    def op_copy(self, op: Op) -> None:
        self._imap_op(op, [("COPY", (ARCHIVE,))])

    def op_move(self, op: Op) -> None:
        self._imap_op(op, [("MOVE", (TRASH,))])

    def op_expunge(self, op: Op) -> None:
        self._imap_op(op, [("STORE", ("+FLAGS", r"(\Deleted)")), ("EXPUNGE", ())])

    def op_email_set(self, op: Op) -> None:
        [[name, result, _]] = self.step(op, self.jmap, [["Email/set", {"accountId": self.account, "create": {"k": {
            "mailboxIds": {"M2": True}, "messageId": [op.name], "subject": op.name, "keywords": {"$draft": True},
            "bodyStructure": {"type": "text/plain", "partId": "1"},
            "bodyValues": {"1": {"value": "draft"}}}}}, "0"]])
        assert name == "Email/set" and result["created"], result

    def op_email_import(self, op: Op) -> None:
        raw = _message(op.name)
        op.info["raw"] = raw
        op.steps = 2
        request = urllib.request.Request(f"{self.base}/jmap/upload/{self.account}/", data=raw,
                                         headers={**self.headers, "Content-Type": "message/rfc822"})

        def upload() -> str:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())["blobId"]

        blob = self.step(op, upload)
        [[name, result, _]] = self.step(op, self.jmap, [["Email/import", {"accountId": self.account, "emails": {
            "k": {"blobId": blob, "mailboxIds": {"M1": True}}}}, "0"]])
        assert name == "Email/import" and result["created"], result

    def op_mailbox_set(self, op: Op) -> None:
        [[name, result, _]] = self.step(op, self.jmap, [["Mailbox/set", {"accountId": self.account, "create": {
            "k": {"name": op.name}}}, "0"]])
        assert name == "Mailbox/set" and result["created"], result

    def op_lmtp(self, op: Op) -> None:
        raw = _message(op.name)
        op.info["raw"] = raw

        def deliver() -> None:
            with smtplib.LMTP("127.0.0.1", self.server.ports["LMTP"], timeout=TIMEOUT) as lmtp:
                refused = lmtp.sendmail("bob@example.org", [USER], raw)
                assert not refused, refused

        self.step(op, deliver)

    def op_cli_import(self, op: Op) -> None:
        raws = [_message(op.name + f"-{i}") for i in range(2)]
        op.info["raws"] = raws
        path = os.path.join(self.data, "..", f"{op.name}.mbox")
        with open(path, "wb") as f:
            for raw in raws:
                f.write(b"From bob@example.org Mon Feb  7 21:52:25 1994\n" + raw.replace(b"\r\n", b"\n") + b"\n")
        op.info["raws"] = [raw.replace(b"\r\n", b"\n") for raw in raws]

        def run() -> None:
            done = _cli(self.data, "import", USER, path, "--quiet", "--workers", "0")
            assert done.returncode == 0, done.stderr

        self.step(op, run)

    def op_cli_token(self, op: Op) -> None:
        def run() -> None:
            done = _cli(self.data, "token", "create", USER, "--note", op.name)
            assert done.returncode == 0, done.stderr
            op.info["token"] = done.stdout.strip().split()[-1]

        self.step(op, run)

    def op_cli_revoke(self, op: Op) -> None:
        op.steps = 2
        self.op_cli_token(op)

        def run() -> None:
            done = _cli(self.data, "token", "revoke", USER, op.info["token"])
            assert done.returncode == 0, done.stderr

        self.step(op, run)

    def op_cli_user(self, op: Op) -> None:
        address = "u" + op.name.replace("@crash.example", "").replace("-", "x") + "@example.org"
        op.info["address"] = address

        def run() -> None:
            done = _cli(self.data, "user", "add", address, stdin="pw-" + address + "\n")
            assert done.returncode == 0, done.stderr

        self.step(op, run)


def _messages(store) -> dict[str, tuple[bytes, set[str], list[str]]]:
    """Message-ID -> (bytes, names of the mailboxes holding it, keywords) of every visible email."""
    a = store.require_account(USER)
    out: dict[str, tuple[bytes, set[str], list[str]]] = {}
    with store.read(a) as r:
        names = {m["id"]: m["name"] for m in r.mailboxes()}
        for e in r.received_order(None):
            rec = r.email(e)
            boxes = {names[int(m)] for m, v in rec["mbx"].items() if not v[1]}
            if not boxes:
                continue
            raw = r.raw_message(e) or b""
            m = re.search(rb"^Message-ID: <([^>]+)>", raw, re.M | re.I)
            key = m.group(1).decode() if m else f"?{e}"
            assert key not in out or key.startswith("?"), f"{key} stored twice"
            out[key] = (raw, boxes, list(rec["kw"]))
    return out


def _check(data: str, ops: list[Op], in_flight: set[int]) -> None:
    """``in_flight``: ids of the ops a kill interrupted (this round's and earlier ones')."""
    store = open_store(data)
    try:
        msgs = _messages(store)
        boxes = {m["name"] for m in store_mailboxes(store)}
        for op in ops:
            maybe = id(op) in in_flight and op.acked < op.steps  # a write the kill may have cut
            done = op.acked == op.steps
            got = msgs.get(op.name)
            if op.kind in ("append", "store", "copy", "move", "expunge", "lmtp", "email_import"):
                expected_raw = op.info.get("raw")
                if got is not None:  # LMTP puts Return-Path (and trace fields) on top
                    stored = got[0] if op.kind != "lmtp" else got[0][len(got[0]) - len(expected_raw):]
                    assert stored == expected_raw, f"{op.kind} {op.name}: stored bytes differ (half a message?)"
                if op.acked == 0:
                    assert got is None or maybe, f"{op.kind} {op.name} unacknowledged but visible"
                    continue
                if op.kind == "email_import":
                    assert got is not None or op.acked < 2, f"acknowledged import {op.name} missing"
                    if got:
                        assert got[1] == {INBOX}
                    continue
                # the APPEND (or delivery) was acknowledged
                if op.kind == "expunge":
                    if done:
                        assert got is None, f"expunged {op.name} still there"
                    elif got is None:  # only the EXPUNGE in flight may have committed
                        assert maybe and op.acked == 2, f"{op.name} lost"
                    else:
                        assert got[1] == {INBOX}, got
                    continue
                assert got is not None, f"acknowledged {op.kind} {op.name} missing"
                if op.kind == "copy":
                    assert got[1] == ({INBOX, ARCHIVE} if done else got[1]) and got[1] in ({INBOX}, {INBOX, ARCHIVE})
                elif op.kind == "move":
                    assert got[1] == ({TRASH} if done else got[1]) and got[1] in ({INBOX}, {TRASH})
                elif op.kind == "store":
                    assert got[1] == {INBOX}
                    if done:
                        assert "$flagged" in got[2], got
                else:
                    assert got[1] == {INBOX}
            elif op.kind == "email_set":
                assert got is not None or not done, f"acknowledged Email/set {op.name} missing"
                if got:
                    assert got[1] == {"Drafts"}
            elif op.kind == "mailbox_set":
                assert op.name in boxes or not done, f"acknowledged Mailbox/set {op.name} missing"
            elif op.kind == "cli_import":
                present = [r for r in op.info["raws"] if msgs.get(re.search(rb"Message-ID: <([^>]+)>", r).group(1).decode())]
                if done:
                    assert len(present) == 2, f"acknowledged import {op.name} incomplete"
            elif op.kind == "cli_token" and done:
                assert store.verify_token(op.info["token"], kind="app") is not None
            elif op.kind == "cli_revoke" and done:
                assert store.verify_token(op.info["token"], kind="app") is None, "revoked token still valid"
            elif op.kind == "cli_user" and done:
                assert store.authenticate(op.info["address"], "pw-" + op.info["address"]) is not None
    finally:
        store.close()
    checked = _cli(data, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def store_mailboxes(store) -> list[dict]:
    with store.read(store.require_account(USER)) as r:
        return r.mailboxes()


def test_sigkill_every_write_path(tmp_path):
    data = str(tmp_path / "data")
    setup = open_store(data)
    setup.create_account(USER, PASSWORD)
    setup.close()
    rng = random.Random(SEED)
    all_ops: list[Op] = []
    kinds_killed: set[str] = set()
    in_flight: set[int] = set()
    for round_ in range(KILLS):
        server = Server(data)
        target = rng.randint(1, 14)  # the request after which the kill comes
        sent = [0]
        state: dict = {}
        fire, killed = threading.Event(), threading.Event()

        def about_to_send(op: Op) -> None:
            sent[0] += 1
            if sent[0] == target:
                state["op"] = op
                fire.set()
            if sent[0] > target:
                killed.wait(TIMEOUT)  # the kill is on its way: nothing else leaves before it

        driver = Driver(server, data, round_, random.Random(rng.random()), about_to_send)
        thread = threading.Thread(target=driver.run, daemon=True)
        thread.start()
        if not fire.wait(TIMEOUT):
            server.kill()  # (a failed round leaves no server behind)
            killed.set()
            raise AssertionError((repr(getattr(driver, "error", None)), driver.trace, "".join(server.log)))
        # the request is being written now: kill while it is in flight
        server.kill()
        killed.set()
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        kinds_killed.add(state["op"].kind)
        in_flight.add(id(state["op"]))
        _check(data, all_ops + driver.ops, in_flight)
        all_ops += driver.ops
    # one final restart: the server starts on what every kill left
    server = Server(data)
    server.kill()
    _check(data, all_ops, in_flight)
    assert len(all_ops) > KILLS
