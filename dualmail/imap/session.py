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
from typing import Any, Callable, Generator, Iterator, Union

from twisted.logger import Logger

from dualmail.imap import errors as ie
from dualmail.imap.config import ImapConfig
from dualmail.imap.selected import MailboxGoneError, SelectedMailbox
from dualmail.imap.states import State, legal, refusal
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.imap.wire.parser import (CommandParser, Done, LiteralTooLarge, NeedContinuation,
                                       ParseError, RawLine)
from dualmail.imap.wire.sequence import ResolvedSet
from dualmail.model.errors import DomainError, UnavailableError


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

    __slots__ = ("work", "_done", "_value", "_error")

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
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


Effect = Union[CheckPassword, StartTLS, Disconnect, Offload]
Output = Union[bytes, Effect]
Handler = Callable[["Session", Any], Generator[Any, None, "r.Tagged | None"]]

# Commands during which EXPUNGE must not be sent (RFC 9051 §7.5.1); their UID forms allow it.
_NO_EXPUNGE = (c.Fetch, c.Store, c.Search, c.Sort, c.Thread)


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
        self.saved: ResolvedSet | None = None  # SEARCHRES result, as UIDs (RFC 5182)
        self.client_id: tuple[tuple[str, str | None], ...] | None = None

    def _new_parser(self) -> CommandParser:
        # before login a non-synchronising literal may not be larger than a synchronising
        # one would be allowed (LOGIN, AUTHENTICATE): a stranger cannot make us hold 50 MB
        return CommandParser(max_line=self.config.max_line, max_literal=self.config.appendlimit,
                             max_nonsync_literal=self.config.max_literal_unauthenticated,
                             max_search_depth=self.config.max_search_depth)

    # -- capabilities ---------------------------------------------------------------

    @property
    def login_allowed(self) -> bool:
        """LOGIN and AUTHENTICATE PLAIN: over TLS, on loopback, or when configured."""
        return self.secure or self.loopback or self.config.allow_plaintext

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ENABLE", "ID", "IDLE"]
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
        if self.config.jmap_url:
            caps.append("JMAPACCESS")
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

    @property
    def idling(self) -> bool:
        return self.idle_tag is not None

    def encode(self, resp: r.Response) -> bytes:
        return r.serialize(resp, utf8=self.utf8)

    def _event(self, ev: Any) -> Iterator[Output]:
        if isinstance(ev, NeedContinuation):
            yield from self._continuation(ev)
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
        handler = HANDLERS[type(cmd)]
        if self.token is not None and self.state is not State.NOT_AUTHENTICATED and \
                not isinstance(cmd, c.Logout) and not self._token_live():
            yield from self._revoked()
            return
        try:
            if self.selected is not None:
                self._absorb()
        except MailboxGoneError:
            yield from self._mailbox_gone()
            return
        except UnavailableError as e:
            if not isinstance(cmd, c.Logout):  # LOGOUT needs no store
                yield self.encode(self._unavailable(cmd.tag, e))
                return
        allow = not (isinstance(cmd, _NO_EXPUNGE) and not getattr(cmd, "uid", False))
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
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    tagged = stop.value
                    break
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
        if updates and self.selected is not None and tagged.status != "BAD":
            try:
                yield from self._updates(allow_expunge)
            except MailboxGoneError:
                yield from self._mailbox_gone()
                return
            except UnavailableError:
                pass  # the updates are told after a later command
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
        with self.store.read(self.account) as view:
            self.selected.absorb(view)

    def _claim_recent(self) -> int | None:
        sel = self.selected
        if sel is None or sel.readonly or self.account is None:
            return None
        with self.store.write(self.account) as tx:
            return int(tx.claim_recent(sel.mailbox))

    def _updates(self, allow_expunge: bool) -> Iterator[bytes]:
        sel = self.selected
        assert sel is not None and self.account is not None
        with self.store.read(self.account) as view:
            sel.absorb(view)
        if not sel.has_pending():
            sel.settle()
            return
        first = self._claim_recent() if sel.pending_new and not self.rev2 else None
        with self.store.read(self.account) as view:
            out = sel.emit(view, allow_expunge=allow_expunge, rev2=self.rev2, recent_first=first,
                           announce_hms=not self.hms_on_tagged)
        for resp in out:
            yield self.encode(resp)

    def _mailbox_gone(self) -> Iterator[Output]:
        name = self.selected.name if self.selected else ""
        self.selected = None
        self.state = State.LOGOUT
        yield self.encode(r.UntaggedStatus("BYE", f"Mailbox {name} was deleted"))
        yield Disconnect()

    def pending_updates(self) -> Iterator[Output]:
        """Untagged updates now (IDLE, RFC 2177): EXISTS, EXPUNGE and FETCH at once."""
        if self.selected is None or self.account is None:
            return
        try:
            yield from self._updates(True)
        except MailboxGoneError:
            yield from self._mailbox_gone()

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
        self.parser.max_nonsync_literal = None  # LITERAL+: up to APPENDLIMIT from now on
        yield self.encode(r.Tagged(check.tag, "OK", "Logged in",
                                   r.code_capability(self.capabilities())))

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
        return (self.idle_tag is not None and self.selected is not None
                and account == self.account and self.selected.mailbox in mailboxes)
