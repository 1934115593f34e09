"""PushRunner: turns commits into Web Push deliveries and drains the store's
push queue (``store/pushsubs.py``) over HTTP.

- A commit (any process, any protocol: ``Store.subscribe``) is noted after it
  committed, on the next reactor turn, in one store transaction per account
  (with the other commits of that turn): every *verified*, unexpired
  subscription of the account whose ``types`` match gets the new states and a
  StateChange due. Nothing here runs inside a commit, and a commit never waits
  for a push.
- Whatever is due is POSTed (``webpush.push_request``), at most ``parallel``
  at a time, by a ``twisted.web.client.Agent`` with persistent connections.
  A 2xx clears it; 404/410 deletes the subscription (RFC 8030 §7.3); 429,
  5xx and network errors retry with exponential backoff (``backoff_base``
  doubling to ``backoff_max``, ``Retry-After`` honoured) and give up after
  ``max_tries``; any other answer gives up at once (a PushVerification is
  never retried after a 4xx, RFC 9749 §6). Outcomes are written back in one
  transaction per account per reactor turn.
- A subscription past its ``expires`` is never pushed to and is deleted
  (at sending time and by an hourly sweep); one made under another VAPID key
  is deleted (RFC 9749 §5, no transitional period).

The runner is started and stopped with the JMAP listener (``jmap/service.py``).
Glue with I/O: may import twisted.internet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.logger import Logger
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, UNKNOWN_LENGTH
from zope.interface import implementer

from ..model import ids
from ..store import pushsubs
from ..store.store import Store
from ..store.txn import Commit
from . import webpush
from .webpush import subscription_id

SWEEP_INTERVAL = 3600.0
CACHE_SIZE = 10_000  # parsed keys and checked URLs remembered
RECORD_DELAY = 0.05  # seconds an answer may wait to be written with others
MAX_RESPONSE = 64 * 1024  # what is read of a push service's answer (then dropped)


@implementer(IBodyProducer)
class _Body:
    """The whole body at once (a push message is small)."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data) if data else UNKNOWN_LENGTH

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Discard(protocol.Protocol):
    def __init__(self, done: defer.Deferred[None], transport_stop: Callable[[], None] | None = None):
        self.done = done
        self.seen = 0

    def dataReceived(self, data: bytes) -> None:
        self.seen += len(data)
        if self.seen > MAX_RESPONSE and self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class PushRunner:
    """See the module docstring. ``clock`` times retries and the sweep (a
    ``task.Clock`` in tests); ``agent`` makes the requests (default: an
    ``Agent`` on ``reactor`` verifying certificates like a browser)."""

    log = Logger()

    def __init__(self, store: Store, reactor: Any, vapid: webpush.VapidKey | None, *,
                 clock: Any = None, agent: Any = None, allow_http_loopback: bool = False,
                 parallel: int = 64, backoff_base: float = 5.0, backoff_max: float = 1800.0,
                 max_tries: int = 10, timeout: float = 30.0, https_policy: Any = None) -> None:
        self.store = store
        self.reactor = reactor
        self.clock = clock or reactor
        self.vapid = vapid
        self.allow_http_loopback = allow_http_loopback
        self.parallel = parallel
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_tries = max_tries
        self.timeout = timeout
        self._agent = agent
        self.https_policy = https_policy  # certificate checks (default: the system's roots, like a browser)
        self._pool: HTTPConnectionPool | None = None
        self.running = False
        self.inflight: set[tuple[int, int]] = set()
        self._commits: list[Commit] = []
        self._outcomes: dict[int, list[tuple[int, str, Any]]] = defaultdict(list)
        self._flush_call: Any = None
        self._record_call: Any = None
        self._key_cache: dict[tuple[Any, Any], webpush.Keys | str] = {}
        self._url_cache: dict[str, bool] = {}
        self._answers = 0
        self._call: Any = None
        self._unsubscribe: Any = None
        self._sweep: task.LoopingCall | None = None
        self._idle: list[defer.Deferred[None]] = []
        self.delivered_hook: Callable[[int, int, str], None] | None = None  # benchmarks, tests

    # -- life --

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        if self._agent is None:
            self._pool = HTTPConnectionPool(self.reactor, persistent=True)
            self._pool.maxPersistentPerHost = 16
            self._agent = Agent(self.reactor, self.https_policy or BrowserLikePolicyForHTTPS(), connectTimeout=10,
                                pool=self._pool)
        self._unsubscribe = self.store.subscribe(self._committed)
        self._sweep = task.LoopingCall(self.sweep)
        self._sweep.clock = self.clock
        self._sweep.start(SWEEP_INTERVAL, now=False)
        self.wake()

    def stop(self) -> defer.Deferred[None]:
        """Stop noting and sending; an answer still on its way is not recorded
        (that push is sent again after a restart: at least once)."""
        self.running = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for call in (self._call, self._flush_call, self._record_call):
            if call is not None and call.active():
                call.cancel()
        self._call = self._flush_call = self._record_call = None
        self.inflight.clear()
        self._outcomes.clear()
        self._answers = 0
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            return pool.closeCachedConnections()
        return defer.succeed(None)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- commits -> the queue --

    def _committed(self, commit: Commit) -> None:
        if not commit.kinds or not self.running:
            return
        self._commits.append(commit)
        self._soon()

    def _soon(self) -> None:
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """One reactor turn's work: note the commits seen since the last turn
        (one transaction per account that has subscriptions), record the
        answers that came (one transaction per account), send what is due."""
        self._flush_call = None
        commits, self._commits = self._commits, []
        by_account: dict[int, dict[str, str]] = defaultdict(dict)
        for c in commits:
            state = str(c.modseq)  # a type's state is the modseq of its last change (CONTRACT §4)
            for kind in c.kinds:
                old = by_account[c.account].get(kind)
                if old is None or int(old) < c.modseq:
                    by_account[c.account][kind] = state
        for a, types in by_account.items():
            try:
                self._note(a, types)
            except Exception:
                self.log.failure("noting a change for push subscriptions of account {account} failed", account=a)
        outcomes, self._outcomes = self._outcomes, defaultdict(list)
        self._answers = 0
        if self._record_call is not None:
            if self._record_call.active():
                self._record_call.cancel()
            self._record_call = None
        now_ms = self.now_ms()
        for a, items in outcomes.items():
            self._write(a, lambda w, a=a, items=items: [self._apply(w, a, p, what, *res, now_ms=now_ms)
                                                        for p, what, res in items])
            for p, _what, _res in items:
                self.inflight.discard((a, p))
        if not self.inflight:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)
        if self.running:
            self._run()

    def _note(self, a: int, types: dict[str, str]) -> bool:
        with self.store.kv.read() as r:
            if not pushsubs.count(r, a):
                return False
        account_id = ids.format_id(ids.ACCOUNT, a)
        now_ms = self.now_ms()
        noted = False
        with self.store.kv.write(a) as w:
            for p, rec in pushsubs.listing(w, a):
                if not rec.get("verified") or _expired(rec, now_ms):
                    continue
                wanted = rec.get("types")
                kept = {t: s for t, s in types.items() if wanted is None or t in wanted}
                if kept and pushsubs.note_change(w, a, p, rec, {account_id: kept}, now_ms):
                    noted = True
        return noted

    # -- the queue -> HTTP --

    def wake(self) -> None:
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._call is not None and self._call.active():
            if self._call.getTime() <= self.clock.seconds() + delay:
                return
            self._call.cancel()
        self._call = self.clock.callLater(max(delay, 0), self._run)

    def _run(self) -> None:
        if self._call is not None and self._call.active() and self._call.getTime() <= self.clock.seconds():
            self._call.cancel()
        self._call = None
        if not self.running:
            return
        now_ms = self.now_ms()
        with self.store.kv.read() as r:
            due = pushsubs.due(r, now_ms, limit=self.parallel + len(self.inflight))
            later = pushsubs.next_due(r, now_ms)
        for due_ms, a, p in due:
            if len(self.inflight) >= self.parallel:
                later = now_ms  # more is due: look again when a slot frees
                break
            if (a, p) not in self.inflight:
                self._start(due_ms, a, p, now_ms)
        if later is not None and len(self.inflight) < self.parallel:
            self._schedule((later - now_ms) / 1000.0)

    def _start(self, due_ms: int, a: int, p: int, now_ms: int) -> None:
        with self.store.kv.read() as r:
            rec = pushsubs.get(r, a, p)
            entry = pushsubs.entry_of(r, a, p)
            cred = pushsubs.credential_mark(r, a)
        if rec is None or entry is None or int(entry["due"]) != due_ms:
            self._write(a, lambda w: _drop_index(w, due_ms, a, p, entry))
            return
        why = None
        if _expired(rec, now_ms):
            why = "expired"
        elif rec.get("cred") not in (None, cred):
            why = "the password it was made under has changed (RFC 8620 §7.2)"
        elif self.vapid is not None and rec.get("vapid") not in (None, self.vapid.fingerprint):
            why = "made under an older VAPID key"
        if why is not None:
            self.log.info("push subscription {id} of account {account} deleted: {why}", id=subscription_id(p),
                          account=a, why=why)
            self._write(a, lambda w: pushsubs.destroy(w, a, p))
            return
        if entry.get("verify"):
            what, gen = "verify", int(entry["gen"])
            body: dict[str, Any] | None = webpush.verification_body(subscription_id(p), rec["code"])
        elif entry.get("change") and rec.get("verified"):
            what, gen = "change", int(entry["gen"])
            body = webpush.state_change_body(rec.get("states") or {}, rec.get("types"))
        else:
            body, what, gen = None, "change", int(entry["gen"])
        if body is None:
            self._write(a, lambda w: pushsubs.delivered(w, a, p, what, gen))
            return
        keys = self._keys(rec["keys"]) if rec.get("keys") else None
        if isinstance(keys, str):  # checked at creation; a damaged record is not pushed to
            self._write(a, lambda w: pushsubs.destroy(w, a, p))
            return
        url = rec["url"]
        if not self._url_ok(url):
            self._write(a, lambda w: pushsubs.give_up(w, a, p, what))
            return
        headers, data = webpush.push_request(url, body, keys, self.vapid, self.clock.seconds(),
                                             state_change=what == "change")
        self.inflight.add((a, p))
        d = self._agent.request(b"POST", url.encode("ascii"),
                                Headers({k: [v] for k, v in headers.items()}), _Body(data))
        d.addTimeout(self.timeout, self.reactor)
        d.addCallback(self._answered)
        d.addCallbacks(lambda result: self._outcome(a, p, what, gen, result),
                       lambda f: self._outcome(a, p, what, gen, (None, None, f.getErrorMessage())))
        d.addErrback(lambda f: self.log.failure("push to subscription {id} failed", f, id=subscription_id(p)))

    def _keys(self, value: dict[str, str]) -> webpush.Keys | str:
        """``webpush.parse_keys``, remembered (keys are immutable; checking the point costs)."""
        k = (value.get("p256dh"), value.get("auth"))
        keys = self._key_cache.get(k)
        if keys is None:
            if len(self._key_cache) > CACHE_SIZE:
                self._key_cache.clear()
            keys = self._key_cache[k] = webpush.parse_keys(value)
        return keys

    def _url_ok(self, url: str) -> bool:
        ok = self._url_cache.get(url)
        if ok is None:
            if len(self._url_cache) > CACHE_SIZE:
                self._url_cache.clear()
            ok = self._url_cache[url] = webpush.check_url(url, self.allow_http_loopback) is None
        return ok

    def _answered(self, response: Any) -> defer.Deferred[tuple[int, str | None, str]]:
        done: defer.Deferred[None] = defer.Deferred()
        response.deliverBody(_Discard(done))
        retry_after = response.headers.getRawHeaders(b"retry-after")
        value = retry_after[0].decode("latin-1") if retry_after else None
        return done.addCallback(lambda _: (response.code, value, response.phrase.decode("latin-1", "replace")))

    def _outcome(self, a: int, p: int, what: str, gen: int, result: tuple[Any, Any, str]) -> None:
        if not self.running:
            self.inflight.discard((a, p))
            return
        self._outcomes[a].append((p, what, (gen, *result)))
        self._answers += 1
        # Answers are written in batches: when every push in flight has its answer, else
        # within RECORD_DELAY -- a write (an fsync) per answer would hold up the pushes
        # still going out. Until written, the subscription counts as in flight.
        if self._answers >= len(self.inflight):
            self._soon()
        elif self._record_call is None:
            self._record_call = self.reactor.callLater(RECORD_DELAY, self._soon)
        if self.delivered_hook is not None:
            self.delivered_hook(a, p, what)

    def _apply(self, w: Any, a: int, p: int, what: str, gen: int, code: int | None, retry_after: str | None,
               reason: str, *, now_ms: int) -> None:
        sid = subscription_id(p)
        if code is not None and 200 <= code < 300:
            pushsubs.delivered(w, a, p, what, gen)
            self.log.debug("push {what} to {id}: {code}", what=what, id=sid, code=code)
            return
        if code in (404, 410):  # RFC 8030 §7.3: the push subscription is gone
            pushsubs.destroy(w, a, p)
            self.log.info("push subscription {id} of account {account} deleted: the push service answered "
                          "{code}", id=sid, account=a, code=code)
            return
        if code is None or code == 429 or code >= 500:
            entry = pushsubs.entry_of(w, a, p)
            tries = int(entry.get("tries", 0)) + 1 if entry else 1
            if tries < self.max_tries:
                delay = min(self.backoff_base * 2 ** (tries - 1), self.backoff_max)
                if retry_after and retry_after.strip().isdigit():
                    delay = min(max(delay, float(retry_after.strip())), self.backoff_max)
                pushsubs.retry(w, a, p, now_ms + int(delay * 1000))
                self.log.info("push {what} to {id}: {why}; tried again in {delay}s", what=what, id=sid,
                              why=code or reason, delay=delay)
                return
        pushsubs.give_up(w, a, p, what)
        self.log.warn("push {what} to {id} given up: {why}", what=what, id=sid, why=code or reason)

    def _write(self, a: int, fn: Callable[[Any], Any]) -> None:
        try:
            with self.store.kv.write(a) as w:
                fn(w)
        except Exception:
            self.log.failure("push queue write for account {account} failed", account=a)

    def idle(self) -> defer.Deferred[None]:
        """Fires when nothing is being sent (tests)."""
        d: defer.Deferred[None] = defer.Deferred()
        if not self.inflight and self._flush_call is None:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    # -- expiry --

    def sweep(self) -> int:
        """Delete every expired subscription; returns how many."""
        now_ms = self.now_ms()
        try:
            with self.store.kv.read() as r:
                gone = [(a, p) for a, p, rec in pushsubs.all_subscriptions(r) if _expired(rec, now_ms)]
            for a, p in gone:
                self._write(a, lambda w, a=a, p=p: pushsubs.destroy(w, a, p))
        except Exception:
            self.log.failure("push subscription sweep failed")
            return 0
        if gone:
            self.log.info("deleted {n} expired push subscriptions", n=len(gone))
        return len(gone)


def _expired(rec: dict[str, Any], now_ms: int) -> bool:
    expires = rec.get("expires")
    return expires is not None and int(expires) * 1000 <= now_ms


def _drop_index(w: Any, due_ms: int, a: int, p: int, entry: dict[str, Any] | None) -> None:
    pushsubs.drop_stale(w, due_ms, a, p)
    if entry is not None and pushsubs.get(w, a, p) is None:
        w.delete("pushq", pushsubs.K.pushsub(a, p))
    elif entry is not None:  # the entry moved: keep its own index key
        w.put("pushdue", pushsubs.K.pushdue(int(entry["due"]), a, p), b"")


__all__ = ["PushRunner", "ResponseDone", "subscription_id"]
