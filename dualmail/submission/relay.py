"""Relay to the smarthost: the SMTP client and the queue runner.

``OutboxRunner`` (a Twisted service) drains the store's outbound queue
(``store/outbox.py``): whatever is due is sent, at most ``parallel`` messages
at a time, each over its own connection to ``--smarthost`` (a Twisted client
endpoint string). The smarthost's reply to each recipient is written to the
store right after the transaction ends -- for a 250 to DATA, before anything
else happens -- so a message is handed over once, and a smarthost that is
down loses nothing: the entry stays, is tried again after the backoff of
``SubmissionConfig`` (60 s doubling to an hour) and fails for good after the
queue lifetime (5 days). A restart resumes the queue from the store. The
runner wakes on store commits, on ``wake()`` and at the next due time.

``RelaySender`` is twisted.mail's ``ESMTPSender`` plus: XCLIENT (Postfix,
https://www.postfix.org/XCLIENT_README.html) after EHLO when the smarthost
offers it, naming the JMAP client's address and login; STARTTLS when offered
(or required); AUTH when credentials are configured; a lost connection
reported as a failed attempt; dot-stuffing done once on the whole message.

Glue with I/O: may import twisted.internet.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.endpoints import clientFromString
from twisted.logger import Logger
from twisted.mail import smtp

from ..mail.ops import prepare, store_prepared
from ..model import ids
from ..store import outbox
from ..store.store import Store
from ..store.txn import Commit
from .config import SubmissionConfig
from .message import Attempt, apply_attempt, bounce_message, delivery_status, smtp_data, smtp_reply

KIND = "EmailSubmission"


def _xtext(value: str) -> bytes:
    """RFC 3461 §4 xtext, as XCLIENT attribute values are encoded."""
    out = []
    for b in value.encode("utf-8"):
        out.append(chr(b) if 0x21 <= b <= 0x7E and b not in (0x2B, 0x3D) else f"+{b:02X}")
    return "".join(out).encode("ascii")


class RelaySender(smtp.ESMTPSender):
    """One mail transaction with the smarthost; the outcome goes to
    ``factory.finished(Attempt)`` exactly once."""

    _xclient_done = False

    def authenticate(self, code: int, resp: bytes, items: dict[bytes, Any]) -> None:
        attrs = self.factory.xclient
        offered = items.get(b"XCLIENT")
        if attrs and offered is not None and not self._xclient_done:
            names = {n.upper() for n in (offered or b"").split()}
            sent = [b"%s=%s" % (k.encode(), _xtext(v)) for k, v in attrs if k.encode() in names and v]
            if sent:
                self._xclient_done = True
                self._expected = [220]
                self._okresponse = self.esmtpState_ehlo  # a new greeting: EHLO again

                def refused(code: int, resp: bytes) -> None:
                    self.factory.log.warn("smarthost refused XCLIENT: {code} {resp}", code=code, resp=resp)
                    smtp.ESMTPSender.authenticate(self, code, resp, items)

                self._failresponse = refused
                self.sendLine(b"XCLIENT " + b" ".join(sent))
                return
        super().authenticate(code, resp, items)

    def getMailFrom(self) -> str | None:
        if self.done:
            return None
        self.done = 1
        return self.factory.mail_from

    def getMailTo(self) -> list[bytes]:
        return self.factory.rcpts

    def getMailData(self) -> io.BytesIO:
        return self.factory.data

    def transformChunk(self, chunk: bytes) -> bytes:
        self.resetTimeout()
        return chunk  # smtp_data() has made the line ends and dot-stuffing

    def sentMail(self, code: int, resp: bytes, numOk: int, addresses: list[Any], log: Any) -> None:
        # code/resp: DATA's reply; MAIL's when it failed; the last RCPT's when all were refused
        rcpt = {a.decode("ascii", "replace").lower(): (c, smtp_reply(c, r)) for a, c, r in addresses}
        self.factory.finished(Attempt(True, code, smtp_reply(code, resp), rcpt))

    def sendError(self, exc: Exception) -> None:
        smtp.SMTPClient.sendError(self, exc)
        code = getattr(exc, "code", -1)
        text = getattr(exc, "resp", None) or str(exc)
        if isinstance(code, int) and 400 <= code < 600:
            reply = smtp_reply(code, text)
        else:
            reply = "451 4.4.1 smarthost: " + smtp_reply(-1, text)
        self.factory.finished(Attempt(False, code if isinstance(code, int) else -1, reply, {}))

    def connectionLost(self, reason: Any = protocol.connectionDone) -> None:
        super().connectionLost(reason)
        self.factory.finished(Attempt(False, -1, "451 4.4.2 smarthost: connection lost: "
                                      + smtp_reply(-1, reason.getErrorMessage()), {}))


class RelayFactory(protocol.Factory):
    """Builds the ``RelaySender`` of one attempt; ``result`` fires with the
    ``Attempt`` (never errbacks)."""

    protocol = RelaySender  # type: ignore[assignment]
    log = Logger()

    def __init__(self, config: SubmissionConfig, mail_from: str, rcpts: list[str], data: bytes,
                 xclient: list[tuple[str, str]], context: Any = None) -> None:
        self.config = config
        self.mail_from = mail_from
        self.rcpts = [r.encode("ascii") for r in rcpts]
        self.data = io.BytesIO(smtp_data(data))
        self.xclient = xclient
        self.context = context
        self.result: defer.Deferred[Attempt] = defer.Deferred()
        self.sendFinished = False

    def finished(self, attempt: Attempt) -> None:
        if not self.sendFinished:
            self.sendFinished = True
            self.result.callback(attempt)

    def buildProtocol(self, addr: Any) -> RelaySender:
        c = self.config
        user = c.username.encode("utf-8") if c.username else None
        secret = c.password.encode("utf-8") if c.password else None
        p = RelaySender(user, secret, self.context, c.hostname.encode("ascii", "replace"), len(self.rcpts) * 2 + 8)
        p.heloFallback = not (user or c.starttls == "require")
        p.requireAuthentication = bool(user)
        p.requireTransportSecurity = c.starttls == "require"
        p.factory = self
        p.timeout = c.timeout
        return p


def endpoint_host(desc: str) -> str | None:
    """The host of a ``tcp:`` / ``tls:`` client endpoint string (None: another kind)."""
    parts = [p for p in desc.replace("\\:", "\0").split(":")]
    if not parts or parts[0] not in ("tcp", "tls"):
        return None
    for p in parts[1:]:
        if p.startswith("host="):
            return p[5:].replace("\0", ":")
    positional = [p for p in parts[1:] if "=" not in p]
    return positional[0].replace("\0", ":") if positional else None


def default_tls_context(config: SubmissionConfig) -> Callable[[], Any] | None:
    """STARTTLS options verifying the smarthost's certificate against
    ``--smarthost-tls-name`` or the endpoint's host (None: no STARTTLS)."""
    if config.starttls == "no" or not config.smarthost:
        return None
    name = config.tls_hostname or endpoint_host(config.smarthost)
    if not name:
        return None

    def make() -> Any:
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(name)

    return make


class OutboxRunner(Service):
    """Sends what is due in the outbound queue (see the module docstring).

    ``reactor`` makes the connections; ``clock`` (default: the reactor) times
    the retries, so tests can advance it."""

    log = Logger()

    def __init__(self, store: Store, config: SubmissionConfig, reactor: Any, clock: Any = None,
                 tls_context: Callable[[], Any] | None = None) -> None:
        self.store = store
        self.config = config
        self.reactor = reactor
        self.clock = clock or reactor
        self.tls_context = tls_context or default_tls_context(config)
        self.inflight: set[tuple[int, int]] = set()
        self._call: Any = None
        self._unsubscribe: Any = None
        self._idle: list[defer.Deferred[None]] = []

    # -- service --

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self.store.subscribe(self._committed)
        self.wake()

    def stopService(self) -> Any:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        super().stopService()
        # an answer on its way is recorded before the store closes (else it is sent again)
        return self.idle()

    def _committed(self, commit: Commit) -> None:
        if KIND in commit.kinds or "Email" in commit.kinds:
            self.wake()

    def wake(self) -> None:
        """Look at the queue now (soon: on the next reactor turn)."""
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._call is not None and self._call.active():
            if self._call.getTime() <= self.clock.seconds() + delay:
                return
            self._call.cancel()
        self._call = self.clock.callLater(max(delay, 0), self._run)

    def drain(self) -> defer.Deferred[None]:
        """Start whatever is due now; fires when nothing is being sent (tests,
        and an admin's "flush the queue")."""
        self._run()
        return self.idle()

    def idle(self) -> defer.Deferred[None]:
        """Fires when nothing is being sent (tests)."""
        d: defer.Deferred[None] = defer.Deferred()
        if not self.inflight:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    # -- the queue --

    def _run(self) -> None:
        self._call = None
        now = self.clock.seconds()
        with self.store.kv.read() as r:
            due = outbox.due(r, now, limit=self.config.parallel + len(self.inflight))
            later = outbox.next_due(r, int(now))
        for due_at, a, q in due:
            if len(self.inflight) >= self.config.parallel:
                break
            if (a, q) not in self.inflight:
                self._start(due_at, a, q)
        if later is not None:
            self._schedule(later - now)

    def _start(self, due_at: int, a: int, q: int) -> None:
        with self.store.read(a) as v:
            try:
                loaded = outbox.load(v, q)
            except Exception:
                loaded = None
        if loaded is None:
            try:
                with self.store.kv.write() as w:
                    outbox.drop_stale(w, due_at, a, q)
            except Exception:
                self.log.failure("dropping stale queue key {q} failed", q=q)
            return
        entry, data = loaded
        pending = [r["email"] for r in entry["rcpt"] if r["state"] == "queued"]
        self.inflight.add((a, q))
        if not pending:
            self._record(a, q, Attempt(True, 250, "", {}))
            return
        factory = RelayFactory(self.config, entry.get("from") or "", pending, data, self._xclient(entry),
                               self.tls_context() if self.tls_context else None)
        factory.result.addCallback(lambda attempt: self._record(a, q, attempt))
        factory.result.addErrback(lambda f: self.log.failure("queue entry {q} failed", f, q=q))
        try:
            endpoint = clientFromString(self.reactor, self.config.smarthost)
        except Exception as e:
            factory.finished(Attempt(False, -1, f"451 4.3.5 bad smarthost endpoint: {e}", {}))
            return
        d = endpoint.connect(factory)
        d.addErrback(lambda f: factory.finished(
            Attempt(False, -1, "451 4.4.1 smarthost not reachable: " + f.getErrorMessage(), {})))

    def _xclient(self, entry: dict[str, Any]) -> list[tuple[str, str]]:
        client = entry.get("client") or ""
        if ":" in client:
            client = "IPV6:" + client
        # NAME unknown: else Postfix would keep the name of the connection's own address
        return [("NAME", "[UNAVAILABLE]"), ("ADDR", client), ("LOGIN", entry.get("login") or "")]

    def _record(self, a: int, q: int, attempt: Attempt) -> None:
        """The attempt's outcome, in one transaction: recipients' states, the
        submission's deliveryStatus, the entry rescheduled or removed."""
        try:
            now = int(self.clock.seconds())
            bounce = None
            with self.store.write(a) as tx:
                loaded = outbox.load(tx, q)
                if loaded is not None:
                    entry = loaded[0]
                    queued = {r["email"] for r in entry["rcpt"] if r["state"] == "queued"}
                    tries = int(entry.get("tries", 0)) + 1
                    done = apply_attempt(entry, attempt, now, lifetime=self.config.lifetime,
                                         backoff=self.config.backoff(tries))
                    if done:
                        outbox.finish(tx, q, entry)
                    else:
                        outbox.reschedule(tx, q, entry, int(entry["next"]))
                    sub = entry.get("sub")
                    rec = tx.get_object(KIND, sub) if sub is not None else None
                    if rec is not None:
                        status = {**(rec.get("deliveryStatus") or {}), **delivery_status(entry["rcpt"])}
                        if status != rec.get("deliveryStatus"):
                            tx.put_object(KIND, sub, {**rec, "deliveryStatus": status})
                    self._log(a, q, entry, attempt, done)
                    failed = [r for r in entry["rcpt"] if r["state"] == "failed" and r["email"] in queued]
                    if failed and entry.get("kind") == "submission":
                        bounce = (entry, failed, loaded[1])
            if bounce is not None:
                self._bounce(a, *bounce, now)
        except Exception:
            self.log.failure("recording the outcome of queue entry {q} failed", q=q)
        finally:
            self.inflight.discard((a, q))
            if not self.inflight:
                waiting, self._idle = self._idle, []
                for d in waiting:
                    d.callback(None)
            self.wake()

    def _bounce(self, a: int, entry: dict[str, Any], failed: list[dict[str, Any]], original: bytes,
                now: int) -> None:
        """Recipients that failed for good: a DSN into the sender's INBOX (an
        IMAP user learns of it too), listed in the submission's dsnBlobIds."""
        raw = bounce_message(to=entry.get("login") or "", hostname=self.config.hostname, failed=failed,
                             original=original, now=now, boundary=uuid.uuid4().hex)
        prepared = prepare(raw, (), now)
        with self.store.write(a) as tx:
            inbox = tx.role_mailbox("inbox")
            if inbox is None:
                return
            e, _uids = store_prepared(tx, prepared, [inbox])
            sub = entry.get("sub")
            rec = tx.get_object(KIND, sub) if sub is not None else None
            blob = (tx.email(e) or {}).get("blob")
            if rec is not None and blob:
                tx.put_object(KIND, sub, {**rec, "dsnBlobIds": [*(rec.get("dsnBlobIds") or []), ids.blob_id(blob)]})
        self.log.info("queue: bounce for {n} recipients put into the INBOX of account {account}", n=len(failed),
                      account=a)

    def _log(self, a: int, q: int, entry: dict[str, Any], attempt: Attempt, done: bool) -> None:
        for r in entry["rcpt"]:
            self.log.info("queue {q} to {rcpt}: {state} ({reply})", q=q, rcpt=r["email"], state=r["state"],
                          reply=r.get("reply", ""), account=a)
        if not done:
            self.log.info("queue {q}: {n} recipients tried again at {at}", q=q,
                          n=sum(1 for r in entry["rcpt"] if r["state"] == "queued"), at=entry["next"])
