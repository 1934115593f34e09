"""MIME parsing in worker processes, for the serving process.

Parsing a message and making its stored forms (``mime.summarize`` + ``encode``: the
summary, search text and record, IMAP listing parts, full-text terms, JMAP listing
record) is pure CPU in Python: about 0.9 ms for an 8 KB message here, the larger part of
an APPEND's cost.  In the serving process it holds the GIL, so ten connections appending
at once use one core.  ``Parsers`` runs it in ``n`` child processes
(``python -m dualmail.mail.parsers``) instead: a worker thread of the serving process
(the one that then writes the message) sends the raw bytes down a pipe and blocks,
without the GIL, until the child answers, so parsing runs beside the reactor and the
store writes, on the other cores.

The protocol on the pipes is a length-prefixed frame each way: the raw message in, a
pickle of ``(threading fields, EncodedSummary, SHA-256)`` or of an error string out.
Only the serving process's own child reads what it sends, and the pickle goes the other
way (child to parent), from a child that ran our own code on bytes it only parsed.

A child that dies or breaks the protocol is dropped and replaced; the message it had is
parsed in the calling thread, as without children, so a parse never fails for want of
a child.  With ``n = 0`` (and in tests that build a Store without the service) every
parse runs in the calling thread.  Imports no twisted.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import IO, Any, Iterator

from dualmail.mime.jmap_listing import encode
from dualmail.mime.parse import summarize
from dualmail.store.txn import THREADING_FIELDS, EncodedSummary

__all__ = ["Parsed", "Parsers", "parse_for_store"]

Parsed = tuple[dict[str, Any], EncodedSummary, bytes]  # threading fields, stored forms, SHA-256

_LEN = struct.Struct("<Q")
#: A parse that would run alone runs in the calling thread when the message is at most
#: this large: the round trip to a child costs more than the GIL it would hold.
LOCAL_MAX = 64 << 10  # (and when no other ``job`` is under way)


def parse_for_store(raw: bytes) -> Parsed:
    """What the write transaction needs of a message: its threading fields (the part of
    the summary ``MailTxn.create_email`` reads when the stored forms are given), its
    stored forms and the SHA-256 of its bytes.  Pure; raises what the parser raises."""
    summary = summarize(raw)
    return ({k: summary.get(k) for k in THREADING_FIELDS}, encode(summary, raw), hashlib.sha256(raw).digest())


class _Child:
    __slots__ = ("proc", "w", "r")

    def __init__(self) -> None:
        env = dict(os.environ)
        # the child imports the same dualmail as this process, wherever it was found
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "dualmail.mail.parsers"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     close_fds=True, bufsize=1 << 16)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.w: IO[bytes] = self.proc.stdin
        self.r: IO[bytes] = self.proc.stdout

    def parse(self, raw: bytes) -> Parsed | str:
        self.send(raw)
        return self.receive()

    def send(self, raw: bytes) -> None:
        self.w.write(_LEN.pack(len(raw)))
        self.w.write(raw)
        self.w.flush()

    def receive(self) -> Parsed | str:
        head = self.r.read(_LEN.size)
        if len(head) != _LEN.size:
            raise EOFError("parser ended")
        (n,) = _LEN.unpack(head)
        body = self.r.read(n)
        if len(body) != n:
            raise EOFError("parser ended")
        result = pickle.loads(body)
        if not (isinstance(result, str) or (isinstance(result, tuple) and len(result) == 3)):
            raise EOFError("parser answered something else")
        return result

    def close(self, timeout: float = 5.0) -> None:
        for f in (self.w, self.r):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Parsers:
    """``n`` parsing processes shared by every thread of the serving process.

    ``parse(raw)`` blocks the calling thread (never the reactor: call it where the write
    that follows runs) until a child is free and has answered; at most ``n`` parses run
    at once, the other callers wait for a child.  The children start at the first parse
    (a server that never receives mail never pays their ~0.2 s of imports each).
    ``close()`` ends them."""

    def __init__(self, n: int) -> None:
        self.n = max(0, int(n))
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._children: list[_Child] = []
        self._started = False
        self._closed = False
        self._busy = 0  # parses under way
        self._jobs = 0  # callers between parse and durable write (``job``)
        self.in_children = 0  # parses a child answered (the figures of tests and benchmarks)

    def _start_all(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for _ in range(self.n):
            self._start()

    def _start(self) -> None:
        child = _Child()
        with self._lock:
            self._children.append(child)
        self._idle.put(child)

    def _drop(self, child: _Child) -> None:
        with self._lock:
            if child in self._children:
                self._children.remove(child)
            closed = self._closed
        child.close(0.1)
        if not closed:
            self._start()

    def parse(self, raw: bytes) -> Parsed:
        """``parse_for_store(raw)``, in a child when there are any; raises what the
        parser raises (a message the parser rejects fails alike in and out of a child)."""
        if self.n == 0 or self._closed:
            return parse_for_store(raw)
        with self._lock:
            alone = self._busy == 0 and self._jobs <= 1 and len(raw) <= LOCAL_MAX
            self._busy += 1
        try:
            if alone:  # nothing else parsing: here, without the round trip to a child
                return parse_for_store(raw)
            return self._in_child(raw)
        finally:
            with self._lock:
                self._busy -= 1

    @contextmanager
    def job(self) -> Iterator[None]:
        """Around a caller's parse *and* the write that follows (an APPEND): while other
        callers are in theirs, a parse goes to a child even when no other parse is under
        way, since their writes and the reactor want the GIL it would hold."""
        with self._lock:
            self._jobs += 1
        try:
            yield
        finally:
            with self._lock:
                self._jobs -= 1

    def _in_child(self, raw: bytes) -> Parsed:
        if not self._started:
            self._start_all()
        child = self._idle.get()
        try:
            result = child.parse(raw)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):
            self._drop(child)  # died (killed, out of memory) or talked nonsense
            return parse_for_store(raw)
        self._idle.put(child)
        with self._lock:
            self.in_children += 1
        if isinstance(result, str):  # the parser raised in the child: raise it here
            return parse_for_store(raw)
        return result

    def parse_many(self, raws: list[bytes]) -> list[Parsed]:
        """``parse`` of each of ``raws``, in order, spread over the children at once (the
        messages of one MULTIAPPEND): each free child (at least one, waited for) takes
        one message, the answers are read in turn, then the next round.  A child holds
        one message at a time, so neither side can block the other on a full pipe.  A
        child that fails is dropped and its message parsed here, after the round (so
        no child is left with an answer unread); raises what the parser raises."""
        if self.n == 0 or self._closed or len(raws) <= 1:
            return [self.parse(raw) for raw in raws]
        if not self._started:
            self._start_all()
        with self._lock:
            self._busy += 1
        try:
            held = [self._idle.get()]
            while len(held) < min(self.n, len(raws)):
                try:
                    held.append(self._idle.get_nowait())
                except queue.Empty:
                    break
            got: list[Parsed | str | None] = [None] * len(raws)
            for start in range(0, len(raws), len(held) or 1):
                if not held:  # every child failed: the rest here
                    break
                turn = list(zip(held, range(start, min(start + len(held), len(raws)))))
                failed: list[_Child] = []
                for child, i in turn:
                    try:
                        child.send(raws[i])
                    except (OSError, ValueError):
                        failed.append(child)
                for child, i in turn:
                    if child in failed:
                        continue
                    try:
                        got[i] = child.receive()
                    except (OSError, EOFError, ValueError, pickle.UnpicklingError):
                        failed.append(child)
                for child in failed:
                    held.remove(child)
                    self._drop(child)
            for child in held:
                self._idle.put(child)
            with self._lock:
                self.in_children += sum(1 for g in got if g is not None)
            # what no child parsed, or a child's parser raised on: here (raises alike)
            return [g if isinstance(g, tuple) else parse_for_store(raw) for g, raw in zip(got, raws)]
        finally:
            with self._lock:
                self._busy -= 1

    def pids(self) -> list[int]:
        with self._lock:
            return [c.proc.pid for c in self._children]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children, self._children = self._children, []
        for child in children:
            child.close()


def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """The child: frames in, frames out, until the parent closes the pipe."""
    while True:
        head = inp.read(_LEN.size)
        if len(head) != _LEN.size:
            return
        (n,) = _LEN.unpack(head)
        raw = inp.read(n)
        if len(raw) != n:
            return
        try:
            result: Parsed | str = parse_for_store(raw)
        except Exception as e:  # answered; the parent parses it itself and sees the error
            result = type(e).__name__
        body = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LEN.pack(len(body)))
        out.write(body)
        out.flush()


if __name__ == "__main__":
    # the frames get a descriptor of their own; anything else written to stdout goes to stderr
    _frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, _frames)
