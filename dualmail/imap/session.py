"""The sans-I/O IMAP session: bytes in, response bytes and effects out.

One job: own the parser and the connection's state (RFC 9051 §3), run each command through
``states.py`` and its handler in ``ops/``, map failures once (``errors.py``), and place the
untagged updates of ``selected.py`` where RFC 9051 §7 allows them.  No sockets, no reactor,
no threads: the protocol adapter calls ``feed``/``step`` and carries out the effects
(``CheckPassword`` and ``Offload`` off the reactor thread, ``StartTLS``, ``Disconnect``).  Must not import
twisted.internet (``twisted.logger`` is fine).

Usage::

    s = Session(store, config, secure=False, loopback=True)
    send(s.greeting())
    s.feed(data)
    while (out := s.step()) is not None:
        for item in out:          # bytes or an effect, in order; iterate lazily
            ...                   # (big FETCHes are produced batch by batch)

A handler is a generator yielding ``Response`` values (or effects) and returning the
tagged response (``None`` when the command ends later: IDLE, AUTHENTICATE, LOGIN).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator, Union

from twisted.logger import Logger

from dualmail.imap import contexts
from dualmail.imap import errors as ie
from dualmail.imap import uidonly
from dualmail.imap.config import ImapConfig
from dualmail.imap.selected import MailboxGoneError, SelectedMailbox
from dualmail.imap.states import State, legal, refusal
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.parser import (CommandParser, Done, LiteralTooLarge, NeedContinuation,
                                       ParseError, RawLine)
from dualmail.imap.wire.sequence import ResolvedSet
from dualmail.model.errors import DomainError, UnavailableError

if TYPE_CHECKING:
    from dualmail.imap.notify import NotifyState


# -- effects the protocol carries out -------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckPassword:
    """Verify ``user``/``password`` (blocking: argon2) and call ``Session.login_result``."""

    tag: str
    user: str
    password: str
    mechanism: str
    preverified: bool = False  # SCRAM, OAUTHBEARER: checked by the session; ``account`` is the result
    account: int | None = None


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Start TLS now: everything before this was written in the clear."""


@dataclass(frozen=True, slots=True)
class StartCompress:
    """RFC 4978: from the next byte on, DEFLATE what is written and inflate what is read."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection after writing what came before."""


class Offload:
    """Run ``work`` where it does not hold up other connections (the protocol runs it on a
    worker thread; the reactor goes on meanwhile); the handler that yielded it continues
    once it is done and takes ``result()``.  ``work`` opens its own read view (a view never
    crosses threads) and only reads session state, which nothing changes while the command
    runs.  A caller that never runs it (a sans-I/O test driver) gets it run by ``result()``.
    Long SEARCH, SORT and THREAD work goes this way (issue 10: a 7.4k-message THREAD held
    every other client for ~0.9 s)."""

    __slots__ = ("work", "tag", "_done", "_value", "_error")

    def __init__(self, work: Callable[[], Any], tag: str | None = None) -> None:
        self.work = work
        self.tag = tag  # the command's: progress responses name it (RFC 9585)
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        """Do the work (on whatever thread calls this); never raises."""
        try:
            self._value = self.work()
        except BaseException as e:  # handed to the handler by result()
            self._error = e
        self._done = True

    def result(self) -> Any:
        if not self._done:
            self.run()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._value


Effect = Union[CheckPassword, StartTLS, Disconnect, Offload, StartCompress]
Output = Union[bytes, Effect]
Handler = Callable[["Session", Any], Generator[Any, None, "r.Tagged | None"]]

# Commands during which EXPUNGE must not be sent (RFC 9051 §7.5.1); their UID forms allow it.
_NO_EXPUNGE = (c.Fetch, c.Store, c.Search, c.Sort, c.Thread)
# Commands that never write: the mailbox is not checked for changes before them, but
# after, from the record their own read view holds (``view_record``: no read of its
# own); they answer among the messages the session knows (``search._known``), and what
# their view showed arrived is told after them.  Dovecot, too, syncs the mailbox at the
# end of a command.  RFC 9051 §7: the server sends untagged updates when it chooses.
_READ_ONLY = (c.Search, c.Sort, c.Thread)
# NOOP and CHECK only poll: the check after them (``_updates``) is the one read they need.
_NO_CHECK_BEFORE = (*_READ_ONLY, c.Noop, c.Check)


class Session:
    log = Logger()

    def __init__(self, store: Any, config: ImapConfig | None = None, *, secure: bool = False,
                 loopback: bool = False, now: Callable[[], float] = time.time,
                 peer: str = "") -> None:
        self.store = store
        self.config = config or ImapConfig()
        self.secure = secure
        self.loopback = loopback
        self.now = now
        self.peer = peer
        self.parser = self._new_parser()
        self.state = State.NOT_AUTHENTICATED
        self.account: int | None = None
        self.user: str | None = None
        self.selected: SelectedMailbox | None = None
        self.rev2 = False
        self.utf8 = False
        self.condstore = False  # RFC 7162 §3.1: a CONDSTORE enabling command was seen
        self.qresync = False  # RFC 7162 §3.2.3: ENABLE QRESYNC
        self.uidonly = False  # RFC 9586: ENABLE UIDONLY (no sequence numbers either way)
        self.hms_on_tagged = False  # EXPUNGE with QRESYNC: tagged OK [HIGHESTMODSEQ n]
        self.idle_tag: str | None = None
        self.sasl_tag: str | None = None
        self.sasl_step: Any = None  # the mechanism's next step (ops/auth.py)
        self.sasl_mechanism: str | None = None
        self.sasl_scram: Any = None  # the SCRAM exchange under way
        self.sasl_failed_user: str | None = None
        # set by the protocol: does this account have its maximum of sessions already?
        self.account_full: Callable[[int], bool] | None = None
        self.token: str | None = None  # the app token this session logged in with (revocation)
        self._claimed: int | None = None  # the last \Recent claim's answer (idle_updates)
        # the selected mailbox's record as a read-only command's own view read it (the
        # check after that command: ``_updates``); None: read it then
        self.view_record: dict[str, Any] | None = None
        self.saved: ResolvedSet | None = None  # SEARCHRES result, as UIDs (RFC 5182)
        self.client_id: tuple[tuple[str, str | None], ...] | None = None
        self.notify: NotifyState | None = None  # RFC 5465 NOTIFY SET registration
        self._running = False  # a command's handler is running: its commits are its own
        self.compressed = False  # COMPRESS=DEFLATE is on (RFC 4978)
        self._progress_at = 0.0  # when the running command last said how far it got
        # the last ``write_long`` committed alone (not in a group with other writers of
        # this account, whose changes share its modseq): ``own_write`` may skip its effects
        self.wrote_alone = True

    def _new_parser(self) -> CommandParser:
        # before login a non-synchronising literal may not be larger than a synchronising
        # one would be allowed (LOGIN, AUTHENTICATE): a stranger cannot make us hold 50 MB
        return CommandParser(max_line=self.config.max_line, max_literal=self.config.appendlimit,
                             max_nonsync_literal=self._nonsync_limit(False),
                             max_search_depth=self.config.max_search_depth,
                             max_command_literals=self.config.max_append_total)

    def _nonsync_limit(self, authenticated: bool) -> int | None:
        """LITERAL- (RFC 7888 §5): 4096 octets everywhere; LITERAL+: up to APPENDLIMIT
        once logged in, ``max_literal_unauthenticated`` before."""
        limit = None if authenticated else self.config.max_literal_unauthenticated
        if self.config.literal_minus:
            return 4096 if limit is None else min(limit, 4096)
        return limit

    # -- capabilities ---------------------------------------------------------------

    @property
    def login_allowed(self) -> bool:
        """LOGIN and AUTHENTICATE PLAIN: over TLS, on loopback, or when configured."""
        return self.secure or self.loopback or self.config.allow_plaintext

    def capabilities(self) -> list[str]:
        # RFC 7888 §5: LITERAL- or LITERAL+, never both
        literal = "LITERAL-" if self.config.literal_minus else "LITERAL+"
        caps = ["IMAP4rev1", "IMAP4rev2", literal, "SASL-IR", "ENABLE", "ID", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.config.tls_available and not self.secure:
                caps.append("STARTTLS")
            from dualmail.imap.ops.auth import mechanisms

            if not self.login_allowed:
                caps.append("LOGINDISABLED")
            caps += [f"AUTH={m}" for m in mechanisms(self)]
            return caps
        caps += [
            "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "LIST-EXTENDED",
            "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "STATUS=SIZE", "BINARY",
            "UTF8=ACCEPT", f"APPENDLIMIT={self.config.appendlimit}", "PREVIEW",
            "ESEARCH", "SEARCHRES", "WITHIN", "SORT", "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT", "CONDSTORE", "QRESYNC", "OBJECTID",
        ]
        caps += ["QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"]  # RFC 9208
        caps += ["ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT", "PARTIAL", "SORT=DISPLAY",
                 "COMPRESS=DEFLATE", "I18NLEVEL=1"]
        if self.config.jmap_url:
            caps.append("JMAPACCESS")
        caps += ["METADATA", "METADATA-SERVER", "NOTIFY"]  # RFC 5464, RFC 5465
        caps += ["MULTIAPPEND", "CATENATE", "URLAUTH", "REPLACE",
                 "UNAUTHENTICATE", "SAVEDATE", "UIDONLY"]
        return caps

    def enable_condstore(self) -> list[r.Response]:
        """A CONDSTORE enabling command (RFC 7162 §3.1): from now on untagged FETCH carries
        MODSEQ.  The first one with a mailbox selected reports its HIGHESTMODSEQ."""
        if self.condstore:
            return []
        self.condstore = True
        if self.selected is None:
            return []
        self.selected.condstore = True
        return [self.selected.highestmodseq_response()]

    def enable_qresync(self) -> None:
        self.qresync = True
        self.condstore = True
        if self.selected is not None:
            self.selected.condstore = self.selected.qresync = True

    # -- the byte stream ---------------------------------------------------------------

    def greeting(self) -> bytes:
        return self.encode(r.UntaggedStatus("OK", f"{self.config.server_name} ready",
                                            r.code_capability(self.capabilities())))

    def feed(self, data: bytes) -> None:
        self.parser.feed(data)

    def step(self) -> Iterator[Output] | None:
        """Handle the next complete event; None when more bytes are needed."""
        if self.state is State.LOGOUT:
            return None
        ev = self.parser.next_event()
        if ev is None:
            return None
        return self._event(ev)

    def write_long(self, tag: str, count: int, fn: Callable[[Any], Any]) -> Generator[Any, None, Any]:
        """``fn(tx)`` in one write transaction; its result.  The write runs on a worker
        thread (as an ``Offload``) in the group commit, so the synced commits of many
        sessions' small writes (STORE, COPY, MOVE, EXPUNGE) share one fsync and the reactor
        goes on meanwhile; a long one hears ``* OK [INPROGRESS]`` every few seconds
        (RFC 9585).  With ``group_writes`` off, a write on fewer than
        ``offload_min_messages`` messages commits inline on the reactor.  ``wrote_alone``
        tells afterwards whether the modseq taken covers only this write.  ``fn`` touches
        only ``tx`` (it may run again)."""
        assert self.account is not None
        if count < self.config.offload_min_messages and not self.config.group_writes:
            self.wrote_alone = True
            with self.store.write(self.account) as tx:
                return fn(tx)
        account = self.account
        job = Offload(lambda: self.store.write_grouped_alone(account, fn), tag)
        yield job
        try:
            result, self.wrote_alone = job.result()
            return result
        finally:
            self.store.poll_external()  # publish the commit here, on the session's thread

    def progress_start(self) -> None:
        """A long command begins: its first INPROGRESS comes one interval from now."""
        self._progress_at = self.now()

    def progress(self, tag: str, done: int, goal: int) -> r.UntaggedStatus | None:
        """RFC 9585: ``* OK [INPROGRESS ("tag" done goal)]`` if an interval has passed since
        the command began or last said so; else None."""
        now = self.now()
        if now - self._progress_at < self.config.inprogress_interval:
            return None
        self._progress_at = now
        return r.UntaggedStatus("OK", "Still working", r.code_inprogress(tag, done, goal))

    @property
    def idling(self) -> bool:
        return self.idle_tag is not None

    def encode(self, resp: r.Response) -> bytes:
        return r.serialize(resp, utf8=self.utf8)

    def _event(self, ev: Any) -> Iterator[Output]:
        if isinstance(ev, NeedContinuation):
            yield from self._continuation(ev)
        elif isinstance(ev, LiteralTooLarge) and not ev.sync and self.config.literal_minus \
                and self.state is not State.NOT_AUTHENTICATED and ev.size <= self.config.appendlimit:
            # RFC 7888 §5, §4 choice 1: the parser reads and drops the octets; for APPEND
            # the tagged BAD MUST carry TOOBIG
            text = "Non-synchronizing literal over 4096 octets (LITERAL-)"
            yield self.encode(r.Tagged(ev.tag, "BAD", text, r.code("TOOBIG")) if ev.tag
                              else r.UntaggedStatus("BAD", text, r.code("TOOBIG")))
        elif isinstance(ev, ParseError) and ev.code == "TOOBIG" or \
                isinstance(ev, LiteralTooLarge) and not ev.sync:
            yield from self._too_big(ev.tag, getattr(ev, "text", "Literal too large"))
        elif isinstance(ev, ParseError) and self.idle_tag is not None:
            # RFC 9051 §6.3.13: IDLE ends with the continuation "DONE"; anything else is a
            # bad continuation of the IDLE command (the client MUST NOT send a command while
            # the server waits for DONE), so IDLE ends with its own tag and BAD.
            tag, self.idle_tag = self.idle_tag, None
            yield self.encode(r.Tagged(tag, "BAD", "Expected DONE; IDLE terminated"))
        elif isinstance(ev, ParseError):
            code = r.code(ev.code) if ev.code else None
            if ev.tag is None:
                yield self.encode(r.UntaggedStatus("BAD", ev.text, code))
            else:
                yield self.encode(r.Tagged(ev.tag, "BAD", ev.text, code))
            if self.idle_tag is not None:  # anything but DONE during IDLE ends it badly
                self.parser.expect_done()
        elif isinstance(ev, LiteralTooLarge):
            text = "Literal too large"
            yield self.encode(r.Tagged(ev.tag, "NO", text, r.code("TOOBIG")) if ev.tag
                              else r.UntaggedStatus("BAD", text, r.code("TOOBIG")))
        elif isinstance(ev, Done):
            yield from self._idle_done()
        elif isinstance(ev, RawLine):
            from dualmail.imap.ops import auth

            yield from self._drive_tagged(auth.sasl_response(self, ev.data), self.sasl_tag or "*")
        else:
            yield from self._command(ev)

    def _too_big(self, tag: str | None, text: str) -> Iterator[Output]:
        """A line over ``max_line`` or a non-synchronising literal over the limit: the client
        is sending more than it may and will not stop.  Answer BAD [TOOBIG] at once and close
        instead of reading and discarding it (RFC 7888 §4, choice 2)."""
        code = r.code("TOOBIG")
        self.log.info("IMAP {peer}: {text}; closing the connection", peer=self.peer, text=text)
        yield self.encode(r.Tagged(tag, "BAD", text, code) if tag else r.UntaggedStatus("BAD", text, code))
        self.state = State.LOGOUT
        self.idle_tag = None
        yield self.encode(r.UntaggedStatus("BYE", "Too much data sent; closing the connection"))
        yield Disconnect()

    def _continuation(self, ev: NeedContinuation) -> Iterator[Output]:
        limit = (self.config.max_literal_unauthenticated
                 if self.state is State.NOT_AUTHENTICATED else self.config.appendlimit)
        if self.uidonly and ev.tag is not None and ev.command in uidonly.LITERAL_COMMANDS:
            # RFC 9586 §3: REPLACE by sequence number is refused before its message is sent
            self.parser.reject_literal()
            yield self.encode(r.Tagged(ev.tag, "BAD", "REPLACE uses a message sequence number; "
                                       "use UID REPLACE once UIDONLY is enabled",
                                       r.code("UIDREQUIRED")))
            return
        if ev.size > limit:
            self.parser.reject_literal()
            if ev.tag is None:
                yield self.encode(r.UntaggedStatus("BAD", "Literal too large", r.code("TOOBIG")))
            elif ev.command == "APPEND" and self.state is not State.NOT_AUTHENTICATED:
                yield self.encode(r.Tagged(ev.tag, "NO", "Message exceeds APPENDLIMIT",
                                           r.code("TOOBIG")))
            else:
                yield self.encode(r.Tagged(ev.tag, "BAD", "Literal too large", r.code("TOOBIG")))
            return
        yield self.encode(r.Continuation("Ready for literal data"))

    # -- running commands ------------------------------------------------------------

    def _command(self, cmd: c.Command) -> Iterator[Output]:
        from dualmail.imap.ops import HANDLERS

        if not legal(cmd, self.state):
            yield self.encode(r.Tagged(cmd.tag, "BAD", refusal(cmd, self.state)))
            return
        if self.rev2 and isinstance(cmd, c.Lsub):
            yield self.encode(r.Tagged(cmd.tag, "BAD", "LSUB is not part of IMAP4rev2"))
            return
        if self.uidonly and (why := uidonly.refusal(cmd)) is not None:
            yield self.encode(r.Tagged(cmd.tag, "BAD", why, r.code("UIDREQUIRED")))  # RFC 9586 §3
            return
        handler = HANDLERS[type(cmd)]
        if self.token is not None and self.state is not State.NOT_AUTHENTICATED and \
                not isinstance(cmd, c.Logout) and not self._token_live():
            yield from self._revoked()
            return
        try:
            # (SELECT and EXAMINE close the selected mailbox without telling its changes,
            # RFC 9051 §6.3.2: nothing to read first)
            if self.selected is not None and not isinstance(cmd, (c.Select, c.Examine, *_NO_CHECK_BEFORE)):
                self._absorb()
        except MailboxGoneError:
            yield from self._mailbox_gone()
            return
        except UnavailableError as e:
            if not isinstance(cmd, c.Logout):  # LOGOUT needs no store
                yield self.encode(self._unavailable(cmd.tag, e))
                return
        allow = not (isinstance(cmd, _NO_EXPUNGE) and not getattr(cmd, "uid", False))
        self.view_record = None
        yield from self._drive_tagged(handler(self, cmd), cmd.tag, allow_expunge=allow,
                                      updates=not isinstance(cmd, c.Logout))

    def _token_live(self) -> bool:
        """The app token of this session is still valid (one read per command): a revoked
        or expired one ends the session at its next command."""
        from dualmail.store.store import SCOPE_IMAP

        assert self.token is not None
        try:
            return bool(self.store.verify_token(self.token, kind="app", scopes=(SCOPE_IMAP,)) == self.account)
        except UnavailableError:
            return True  # the store is away: the command itself answers UNAVAILABLE

    def _revoked(self) -> Iterator[Output]:
        self.log.info("IMAP {peer}: the app token of {user} was revoked; closing", peer=self.peer,
                      user=self.user)
        self.state = State.LOGOUT
        self.selected = None
        yield self.encode(r.UntaggedStatus("BYE", "The credentials of this session were revoked",
                                           r.code("AUTHENTICATIONFAILED")))
        yield Disconnect()

    def _unavailable(self, tag: str, e: UnavailableError) -> r.Tagged:
        """RFC 5530 UNAVAILABLE: the shared database is away; the command was rolled back."""
        self.log.warn("IMAP command {tag} for {user}: {err}", tag=tag, user=self.user, err=e.message)
        return r.Tagged(tag, "NO", "The mail store is temporarily unavailable; nothing was changed",
                        r.code("UNAVAILABLE"))

    def _drive_tagged(self, gen: Generator[Any, None, r.Tagged | None], tag: str, *,
                      allow_expunge: bool = True, updates: bool = True) -> Iterator[Output]:
        tagged: r.Tagged | None
        before = self.selected
        try:
            while True:
                self._running = True
                try:
                    item = next(gen)
                except StopIteration as stop:
                    tagged = stop.value
                    break
                finally:
                    self._running = False
                yield self.encode(item) if isinstance(item, (r.Tagged, r.UntaggedStatus, r.Data,
                                                             r.Continuation)) else item
        except ie.ImapNo as e:
            tagged = r.Tagged(tag, "NO", e.text, e.code)
        except ie.ImapBad as e:
            tagged = r.Tagged(tag, "BAD", e.text, e.code)
        except DomainError as e:
            tagged = ie.domain_response(tag, e)
        except MailboxGoneError:
            yield from self._mailbox_gone()
            return
        except UnavailableError as e:  # the shared database is away: rolled back, retry later
            tagged = self._unavailable(tag, e)
        except Exception:
            self.log.failure("IMAP command failed: {tag} for {user}", tag=tag, user=self.user)
            tagged = r.Tagged(tag, "NO", "Internal server error; nothing was changed",
                              r.code("SERVERBUG"))
        if tagged is None:
            return
        # A mailbox this command selected was built from a read view of its own, with nothing
        # absorbed since: its updates wait for the next command (one read view less)
        if updates and self.selected is not None and self.selected is before and tagged.status != "BAD":
            try:
                yield from self._updates(allow_expunge)
            except MailboxGoneError:
                yield from self._mailbox_gone()
                return
            except UnavailableError:
                pass  # the updates are told after a later command
        if updates and self.notify is not None and tagged.status != "BAD":
            yield from self._notify_updates()
        if self.hms_on_tagged:
            # RFC 7162 §3.2.7, §3.2.9: EXPUNGE with QRESYNC ends OK [HIGHESTMODSEQ n]
            self.hms_on_tagged = False
            sel = self.selected
            if sel is not None and tagged.status == "OK" and not sel.gone:
                sel.hms_told = sel.reported
                tagged = r.Tagged(tagged.tag, tagged.status, tagged.text,
                                  r.code_highestmodseq(sel.reported))
        yield self.encode(tagged)

    # -- selected-mailbox updates --------------------------------------------------------

    def _absorb(self) -> None:
        assert self.selected is not None and self.account is not None
        if self._unchanged(self.selected):
            return
        with self.store.read(self.account) as view:
            self.selected.absorb(view)

    def _unchanged(self, sel: SelectedMailbox, rec: dict[str, Any] | None = None) -> bool:
        """Nothing for ``sel.absorb`` to read: the mailbox's latest record (or ``rec``, a
        command's view of it) has neither a higher modseq nor a higher UIDNEXT than the
        session has seen (one key read, no read view: one round trip on PostgreSQL where
        a view costs two)."""
        if rec is None:
            rec = self.store.mailbox_record(self.account, sel.mailbox)
        return rec is not None and int(rec["hms"]) <= sel.seen and int(rec["uidnext"]) <= sel.last_uid + 1

    def _claim_recent(self) -> int | None:
        sel = self.selected
        if sel is None or sel.readonly or self.account is None or not sel.pending_new:
            return None
        # only what this session is about to announce: a message committed since its
        # read is claimed by the session told of it first
        self._claimed = first = self._claim(self.account, sel.mailbox, sel.pending_new[-1] + 1)
        return first

    def _claim(self, account: int, mailbox: int, upto: int) -> int:
        shared = getattr(self.store, "claim_recent", None)  # a fan-out's shared claim
        if shared is not None:
            return int(shared(account, mailbox, upto))
        with self.store.write(account) as tx:
            return int(tx.claim_recent(mailbox, upto))

    def _updates(self, allow_expunge: bool) -> Iterator[bytes]:
        sel = self.selected
        assert sel is not None and self.account is not None
        rec, self.view_record = self.view_record, None
        if not self._unchanged(sel, rec):
            with self.store.read(self.account) as view:
                sel.absorb(view)
        if not sel.has_pending() and not sel.touched:
            sel.settle()
            return
        first = self._claim_recent() if sel.pending_new and not self.rev2 else None
        arrived = list(sel.pending_new) if self.notify is not None and self.notify.fetch_atts else []
        with self.store.read(self.account) as view:
            out = contexts.before_emit(sel, allow_expunge)  # RFC 5267 §4.3.4: before EXPUNGE
            out += sel.emit(view, allow_expunge=allow_expunge, rev2=self.rev2, recent_first=first,
                            announce_hms=not self.hms_on_tagged)
            if arrived:  # RFC 5465 §7: the NOTIFY FETCH before any ESEARCH ADDTO
                out += self._message_new(view, arrived)
            out += contexts.after_emit(sel, view)
        for resp in out:
            yield self.encode(resp)

    def _message_new(self, view: Any, uids: list[int]) -> list[r.Response]:
        """RFC 5465 §5.2: after EXISTS, a FETCH of the NOTIFY fetch-atts for each new
        message of the selected mailbox (BODY[...] is read as BODY.PEEK: nothing is set)."""
        from dualmail.imap.ops.fetch import _render

        sel, spec = self.selected, self.notify
        assert sel is not None and spec is not None
        atts = [c.FetchAtt(a.name, a.section, a.partial, True, a.lazy) for a in spec.fetch_atts]
        out: list[r.Response] = []
        for u in uids:
            seq = sel.seq_of(u)
            e = view.email_at(sel.mailbox, u) if seq is not None else None
            rec = view.email(e) if e is not None else None
            if seq is None or e is None or rec is None:
                continue
            try:
                out += sel.fetch(seq, _render(self, sel, view, e, rec, u, atts), u,
                                 keep_uid=any(a.name == "UID" for a in atts))
            except (ie.ImapBad, ie.ImapNo):
                continue  # e.g. a section this message does not have
        return out

    # -- NOTIFY (RFC 5465) ------------------------------------------------------------------

    def note_commit(self, commit: Any) -> None:
        """Every commit of the store (the protocol passes them on): a NOTIFY registration
        remembers what one of its account touched.  A commit made while this session's
        own command runs is its own (§5: not to be told back)."""
        if self.notify is not None and commit.account == self.account:
            self.notify.note(commit, self._running)

    def _notify_updates(self) -> Iterator[bytes]:
        spec = self.notify
        if spec is None or self.account is None or not spec.has_pending:
            return
        if spec.overflowed:
            self.notify = None
            self.log.info("IMAP {peer}: NOTIFY overflow for {user}; notifications off",
                          peer=self.peer, user=self.user)
            yield self.encode(r.UntaggedStatus(
                "OK", "Too many changes to tell; NOTIFY is off now (NOTIFY NONE)",
                r.code("NOTIFICATIONOVERFLOW")))
            return
        try:
            with self.store.read(self.account) as view:
                out = spec.updates(view, selected=self.selected.mailbox if self.selected else None,
                                   condstore=self.condstore, utf8=self.utf8)
        except UnavailableError:
            return  # told later
        for resp in out:
            yield self.encode(resp)

    def _selected_notify(self, idle: bool) -> Iterator[Output]:
        """The selected mailbox's changes as NOTIFY SELECTED / SELECTED-DELAYED asked for
        them: expunges at once with SELECTED (or in IDLE), held with SELECTED-DELAYED
        (§6.1.2); flag changes only with FlagChange; nothing without a SELECTED group."""
        spec, sel = self.notify, self.selected
        if spec is None or sel is None or not spec.selected_events:
            return
        allow = idle or spec.selected_filter == "SELECTED"
        keep: set[int] = set()
        try:
            if "FlagChange" not in spec.selected_events:  # told at the next command's end
                with self.store.read(self.account) as view:  # type: ignore[arg-type]
                    sel.absorb(view)
                keep, sel.pending_flags = sel.pending_flags, set()
            yield from self._updates(allow)
        except MailboxGoneError:
            yield from self._mailbox_gone()
        finally:
            sel.pending_flags |= keep

    def between_commands(self) -> Iterator[Output]:
        """What a NOTIFY client is told while no command runs (RFC 5465 §3.1: "even
        when no command is in progress")."""
        if self.notify is None or self.state is State.LOGOUT:
            return
        yield from self._selected_notify(idle=False)
        yield from self._notify_updates()

    def _mailbox_gone(self) -> Iterator[Output]:
        name = self.selected.name if self.selected else ""
        self.selected = None
        self.state = State.LOGOUT
        yield self.encode(r.UntaggedStatus("BYE", f"Mailbox {name} was deleted"))
        yield Disconnect()

    def pending_updates(self) -> Iterator[Output]:
        """Untagged updates now (IDLE, RFC 2177): EXISTS, EXPUNGE and FETCH at once.  With
        NOTIFY, exactly what it asked for (RFC 5465 §4)."""
        if self.notify is not None:
            yield from self._selected_notify(idle=True)
            yield from self._notify_updates()
            return
        if self.selected is None or self.account is None:
            return
        try:
            yield from self._updates(True)
        except MailboxGoneError:
            yield from self._mailbox_gone()

    def idle_updates(self, fanout: Any) -> Iterator[Output]:
        """``pending_updates`` for one of many IDLE sessions updated in one fan-out
        (``fanout``: its shared reads, ``outcomes`` and ``claimed``).  What the first
        session in a given state was told, and the state it was left in, is kept; a
        session in the same state (same selected-mailbox state and UID map, same
        enabled extensions, same \\Recent claim) is told the same bytes in one write
        and takes the same state, without reading or rendering again."""
        sel = self.selected
        key = None
        if self.notify is None and sel is not None and self.account is not None:
            k = sel.fanout_key()
            if k is not None:
                key = (self.account, self.rev2, self.utf8, self.hms_on_tagged, k)
        if key is None:
            yield from self.pending_updates()
            return
        assert sel is not None
        known = fanout.outcomes.setdefault(key, [])
        for uids, claimed, data, state in known:
            if sel.same_map(uids) and (claimed is None or claimed == fanout.claimed(self.account, sel.mailbox)):
                sel.adopt(state)
                if data:
                    yield data
                return
        before = sel.map_before_update()
        self._claimed = None
        out = list(self.pending_updates())
        if self.selected is sel and all(isinstance(item, bytes) for item in out):
            data = b"".join(out)
            known.append((before, self._claimed, data, sel.outcome()))
            out = [data] if data else []
        yield from out

    def _idle_done(self) -> Iterator[Output]:
        tag, self.idle_tag = self.idle_tag, None
        if tag is None:
            yield self.encode(r.UntaggedStatus("BAD", "DONE without IDLE"))
            return
        yield from self.pending_updates()
        yield self.encode(r.Tagged(tag, "OK", "IDLE terminated"))

    # -- effects' results --------------------------------------------------------------

    def login_result(self, check: CheckPassword, account: int | None) -> Iterator[Output]:
        """The protocol's answer to ``CheckPassword``."""
        if self.state is not State.NOT_AUTHENTICATED:
            return
        if account is None:
            yield self.encode(r.Tagged(check.tag, "NO", "Authentication failed",
                                       r.code("AUTHENTICATIONFAILED")))
            return
        if self.account_full is not None and self.account_full(account):
            # RFC 5530 UNAVAILABLE: a temporary refusal; the session stays not authenticated
            yield self.encode(r.Tagged(check.tag, "NO", "Too many connections for this account",
                                       r.code("UNAVAILABLE")))
            return
        self.account = account
        self.user = check.user
        self.token = self._app_token(check, account)
        self.state = State.AUTHENTICATED
        self.parser.max_nonsync_literal = self._nonsync_limit(True)  # LITERAL+: APPENDLIMIT
        yield self.encode(r.Tagged(check.tag, "OK", "Logged in",
                                   r.code_capability(self.capabilities())))

    def unauthenticate(self) -> None:
        """RFC 8437 §3, §4.1: back to the not-authenticated state with every piece of
        per-login state dropped (the selected mailbox without expunging, ENABLEd
        extensions, CONDSTORE, the SEARCHRES result); TLS and ID survive."""
        self.account = None
        self.user = None
        self.selected = None
        self.state = State.NOT_AUTHENTICATED
        self.rev2 = self.utf8 = self.condstore = self.qresync = self.hms_on_tagged = False
        self.uidonly = False
        self.saved = None
        self.notify = None  # RFC 5465 registration (per login)
        self.token = None  # the app token of the login that ended
        self.sasl_step = self.sasl_mechanism = self.sasl_scram = self.sasl_failed_user = None
        self.parser.max_nonsync_literal = self._nonsync_limit(False)
    def _app_token(self, check: CheckPassword, account: int) -> str | None:
        """The password was an app token (LOGIN, PLAIN, OAUTHBEARER): remember it, so its
        revocation ends this session."""
        from dualmail.store.store import SCOPE_IMAP

        if len(check.password) < 40:  # tokens are 43 characters; passwords rarely so long
            return None
        if self.store.verify_token(check.password, kind="app", scopes=(SCOPE_IMAP,)) != account:
            return None
        return check.password

    def tls_started(self) -> None:
        self.secure = True

    def timed_out(self) -> Iterator[Output]:
        self.state = State.LOGOUT
        yield self.encode(r.UntaggedStatus("BYE", "Autologout; idle for too long"))
        yield Disconnect()

    def shutting_down(self) -> Iterator[Output]:
        self.state = State.LOGOUT
        yield self.encode(r.UntaggedStatus("BYE", "Server shutting down"))
        yield Disconnect()

    def wants_commit(self, account: int, mailboxes: frozenset[int]) -> bool:
        """Should a commit be pushed to this session now (it is in IDLE on an affected
        mailbox)?"""
        if self.notify is not None:  # RFC 5465: other mailboxes, and outside IDLE too
            return account == self.account
        return (self.idle_tag is not None and self.selected is not None
                and account == self.account and self.selected.mailbox in mailboxes)
