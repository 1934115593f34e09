"""One session's NOTIFY registration (RFC 5465) and the unsolicited responses it earns.

One job: turn the commits of the account (the store's one change stream, the same that
feeds IDLE and JMAP push) into what RFC 5465 §5 says a client that ran ``NOTIFY SET``
hears about mailboxes other than the selected one:

* MessageNew / MessageExpunge / FlagChange in a watched mailbox: ``* STATUS name (MESSAGES
  UIDNEXT UNSEEN ...)`` with HIGHESTMODSEQ once CONDSTORE is on (§5.1-§5.3); a flag
  change without CONDSTORE is told only when UNSEEN moved (§5.1 allows no more);
* MailboxName: ``* LIST`` for a created mailbox (and its parent), ``\\NonExistent`` for a
  deleted one, ``("OLDNAME" (old))`` for a renamed one, children not repeated (§5.4);
* SubscriptionChange: ``* LIST`` with ``\\Subscribed`` iff subscribed now (§5.5);
* MailboxMetadataChange / ServerMetadataChange: ``* METADATA name entry...`` (§5.6, §5.7).

How: ``note(commit, own)`` only records what a commit touched (mailbox numbers, metadata
entries): O(1) per commit, nothing read.  ``updates(view, ...)`` then reads the records
of the touched mailboxes (never a mailbox's messages) and compares them with what this
registration last saw (``_Box``: counters; ``tree``: names, parents, subscriptions), so
several commits between two looks make one STATUS.  The whole mailbox list is re-read only
when a name, parent or subscription changed.  Changes this session made itself are
absorbed silently (§5: the server SHOULD NOT notify a client of its own changes).  A
client that does not read while changes pile up past ``notify_max_pending`` gets ``* OK
[NOTIFICATIONOVERFLOW]`` and its registration dropped, as NOTIFY NONE (§5.8).

Filters (§6): INBOXES is INBOX (the only mailbox mail is delivered to, CONTRACT §6);
PERSONAL every mailbox; SUBSCRIBED evaluated against the subscriptions of the moment;
SUBTREE a name and everything under it; MAILBOXES names exactly (no wildcards).  The
selected mailbox's message events come from SELECTED / SELECTED-DELAYED only (§3.1); the
session handles those with its ``SelectedMailbox``.  Imports no twisted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from dualmail.imap.errors import ImapNo
from dualmail.imap.ops import names
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r

SUPPORTED = ("MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange",
             "MailboxMetadataChange", "ServerMetadataChange")
MESSAGE = frozenset({"MessageNew", "MessageExpunge", "FlagChange"})


@dataclass(frozen=True, slots=True)
class _Box:
    """What a non-selected mailbox's STATUS was when this registration last looked."""

    msgs: int
    uidnext: int
    unseen: int
    hms: int
    uidvalidity: int

    @classmethod
    def of(cls, rec: dict[str, Any]) -> _Box:
        counts = rec["counts"]
        return cls(int(counts["msgs"]), int(rec["uidnext"]), int(counts["unseen"]),
                   int(rec["hms"]), int(rec["uidvalidity"]))


def unsupported(cmd: c.Notify) -> list[str]:
    """Event names of ``cmd`` this server does not support (NO [BADEVENT], §3.1)."""
    return [e for g in cmd.groups or () for e in g.events if e not in SUPPORTED]


class NotifyState:
    def __init__(self, cmd: c.Notify, utf8: bool, max_pending: int) -> None:
        assert cmd.groups is not None
        sel = next((g for g in cmd.groups if g.filter.startswith("SELECTED")), None)
        self.selected_filter: str | None = sel.filter if sel else None
        self.selected_events = frozenset(sel.events) if sel else frozenset()
        self.fetch_atts: tuple[c.FetchAtt, ...] = sel.fetch_atts if sel else ()
        self.groups: list[tuple[str, frozenset[str], frozenset[str]]] = []
        for g in cmd.groups:
            if g is sel:
                continue
            decoded = set()
            for raw in g.mailboxes:
                try:
                    decoded.add(names.SEP.join(names.components(names.decode(utf8, raw))))
                except ImapNo:
                    pass  # §3.1: a name that is no mailbox is ignored
            self.groups.append((g.filter, frozenset(decoded), frozenset(g.events)))
        self.all_events = frozenset(e for _f, _n, ev in self.groups for e in ev)
        self.max_pending = max_pending
        self.tree: dict[int, tuple[str, int, str, bool]] = {}  # m -> (path, parent, name, sub)
        self.boxes: dict[int, _Box] = {}
        self.orphans: set[str] = set()
        self.touched: set[int] = set()
        self.own: set[int] = set()
        self.meta: dict[int, list[str]] = {}
        self.orphans_dirty: bool = False
        self.pending = 0
        self.overflowed = False

    # -- which events a mailbox has ----------------------------------------------------

    def events_for(self, path: str, subscribed: bool) -> frozenset[str]:
        out: set[str] = set()
        for filt, wanted, events in self.groups:
            if filt == "PERSONAL" or (filt == "INBOXES" and path == "INBOX") or \
                    (filt == "SUBSCRIBED" and subscribed) or \
                    (filt == "MAILBOXES" and path in wanted) or \
                    (filt == "SUBTREE" and _in_subtree(path, wanted)):
                out |= events
        return frozenset(out)

    def _events_of(self, m: int) -> frozenset[str]:
        t = self.tree.get(m)
        return self.events_for(t[0], t[3]) if t is not None else frozenset()

    # -- registering -------------------------------------------------------------------

    def start(self, view: Any, *, status: bool, selected: int | None, utf8: bool,
              max_mailboxes: int) -> list[r.Response]:
        """Take the snapshot; the STATUS responses of ``NOTIFY SET STATUS`` (§3.1)."""
        recs = self._take_tree(view)
        self.orphans = set(view.orphan_subscriptions())
        watched = [m for m in sorted(self.tree, key=lambda m: self.tree[m][0])
                   if self._events_of(m) & MESSAGE]
        if len(watched) > max_mailboxes:
            raise ImapNo(f"NOTIFY may watch at most {max_mailboxes} mailboxes",
                         "NOTIFICATIONOVERFLOW")
        # every mailbox's counters, watched or not: one that becomes watched later (a
        # subscription, a rename into a subtree) is compared with what it was, not with
        # what it is by the time this registration looks
        self.boxes = {m: _Box.of(rec) for m, rec in recs.items()}
        out: list[r.Response] = []
        for m in watched:
            box = self.boxes[m]
            if not status or m == selected:
                continue
            ev = self._events_of(m)
            items: list[tuple[str, int | str]] = []
            if ev & {"MessageNew", "MessageExpunge"}:
                items.append(("MESSAGES", box.msgs))
            if "MessageNew" in ev:
                items += [("UIDNEXT", box.uidnext), ("UIDVALIDITY", box.uidvalidity),
                          ("UNSEEN", box.unseen)]
            if "FlagChange" in ev:  # this server has CONDSTORE (§3.1)
                if "MessageNew" not in ev:
                    items.append(("UIDVALIDITY", box.uidvalidity))
                items.append(("HIGHESTMODSEQ", box.hms))
            out.append(r.status(self.tree[m][0], items, utf8=utf8))
        return out

    def _take_tree(self, view: Any) -> dict[int, dict[str, Any]]:
        """Re-read the mailbox list; the records, by number."""
        full = names.tree(view)
        self.tree = {m: (path, int(rec["parent"]), str(rec["name"]), bool(rec.get("sub")))
                     for m, (path, rec) in full.items()}
        return {m: rec for m, (_path, rec) in full.items()}

    # -- hearing of commits ------------------------------------------------------------

    def note(self, commit: Any, own: bool) -> None:
        """A commit of this account: remember what it touched (reads nothing)."""
        for m in commit.mailboxes:
            self.touched.add(m)
            if own:
                self.own.add(m)
        if not commit.metadata:
            self.orphans_dirty = "SubscriptionChange" in self.all_events
        elif not own:
            for m, entry in commit.metadata:
                entries = self.meta.setdefault(m, [])
                if entry not in entries:
                    entries.append(entry)
        self.pending += len(commit.mailboxes) + len(commit.metadata)
        if self.pending > self.max_pending:
            self.overflowed = True

    @property
    def has_pending(self) -> bool:
        return bool(self.touched or self.meta or self.orphans_dirty or self.overflowed)

    # -- telling -----------------------------------------------------------------------

    def updates(self, view: Any, *, selected: int | None, condstore: bool,
                utf8: bool) -> list[r.Response]:
        out: list[r.Response] = []
        touched, own = self.touched, self.own
        self.touched, self.own, self.pending = set(), set(), 0
        told: set[str] = set()
        if self._structure_changed(view, touched):
            out += self._names(view, own, utf8, told)
        if self.orphans_dirty:
            self.orphans_dirty = False
            out += self._orphans(view, utf8, told)
        for m in sorted(touched):
            out += self._status(view, m, m in own or m == selected, condstore, utf8)
        meta, self.meta = self.meta, {}
        for m, entries in meta.items():
            if m == 0:
                if "ServerMetadataChange" in self.all_events:
                    out.append(_metadata("", entries, utf8))
            elif m in self.tree and "MailboxMetadataChange" in self._events_of(m):
                out.append(_metadata(self.tree[m][0], entries, utf8))
        return out

    def _structure_changed(self, view: Any, touched: Iterable[int]) -> bool:
        for m in touched:
            rec = view.mailbox(m)
            old = self.tree.get(m)
            if (rec is None) != (old is None):
                return True
            if rec is not None and old is not None and \
                    (int(rec["parent"]), str(rec["name"]), bool(rec.get("sub"))) != old[1:]:
                return True
        return False

    def _names(self, view: Any, own: set[int], utf8: bool, paths: set[str]) -> list[r.Response]:
        """LIST responses for created, deleted, renamed and (un)subscribed mailboxes."""
        old = self.tree
        recs = self._take_tree(view)
        new = self.tree
        kids = {p for _path, p, _n, _s in new.values()}
        out: list[r.Response] = []

        def listing(m: int, ext: tuple[tuple[str, Any], ...] = ()) -> r.Response:
            path, _p, _n, sub = new[m]
            attrs = names.attributes(recs[m], m in kids) + (["\\Subscribed"] if sub else [])
            return r.list_response(attrs, names.SEP, path, utf8=utf8, extended=ext)

        told: set[int] = set()
        for m in sorted(set(old) | set(new)):
            if m in own:
                continue
            before, after = old.get(m), new.get(m)
            if after is None and before is not None:  # deleted
                if "MailboxName" in self.events_for(before[0], before[3]):
                    # a subscribed one stays subscribed (RFC 9051 §6.3.7): one LIST says both
                    sub = before[0] in view.orphan_subscriptions()
                    out.append(r.list_response(["\\NonExistent"] + (["\\Subscribed"] if sub else []),
                                               names.SEP, before[0], utf8=utf8))
                    paths.add(before[0])
                    if before[1] in new and before[1] not in told:
                        told.add(before[1])
                        out.append(listing(before[1]))
                self.boxes.pop(m, None)
            elif before is None and after is not None:  # created
                if "MailboxName" in self._events_of(m):
                    out.append(listing(m))
                    told.add(m)
                    if after[1] in new and after[1] not in told:
                        told.add(after[1])
                        out.append(listing(after[1]))
            elif before is not None and after is not None:
                if before[1:3] != after[1:3] and "MailboxName" in (
                        self._events_of(m) | self.events_for(before[0], before[3])):
                    out.append(listing(m, (("OLDNAME", [before[0]]),)))
                    told.add(m)
                elif before[3] != after[3] and "SubscriptionChange" in (
                        self._events_of(m) | self.events_for(before[0], True)):
                    out.append(listing(m))
        for m in new:  # a new mailbox started empty: what came since is news
            if m not in self.boxes:
                self.boxes[m] = _Box(0, 1, 0, 0, int(recs[m]["uidvalidity"]))
        return out

    def _orphans(self, view: Any, utf8: bool, told: set[str]) -> list[r.Response]:
        """Subscriptions of names that are no mailbox changed (SUBSCRIBE of a missing
        name, or a subscribed mailbox deleted: §5.5)."""
        now = set(view.orphan_subscriptions())
        before, self.orphans = self.orphans, now
        out: list[r.Response] = []
        existing = {t[0] for t in self.tree.values()}
        for path in sorted(now ^ before):
            if path in existing or path in told:
                continue
            if "SubscriptionChange" in self.events_for(path, True):
                attrs = ["\\NonExistent"] + (["\\Subscribed"] if path in now else [])
                out.append(r.list_response(attrs, names.SEP, path, utf8=utf8))
        return out

    def _status(self, view: Any, m: int, quiet: bool, condstore: bool,
                utf8: bool) -> list[r.Response]:
        old = self.boxes.get(m)
        if old is None:
            return []
        rec = view.mailbox(m)
        if rec is None:
            self.boxes.pop(m, None)
            return []
        new = self.boxes[m] = _Box.of(rec)
        ev = self._events_of(m)
        if quiet or not ev & MESSAGE or new == old:
            return []
        arrived = max(0, new.uidnext - old.uidnext)
        is_new = arrived > 0 and "MessageNew" in ev
        is_gone = new.msgs < old.msgs + arrived and "MessageExpunge" in ev
        items: list[tuple[str, int | str]] = []
        if is_new or is_gone:
            items += [("MESSAGES", new.msgs), ("UIDNEXT", new.uidnext), ("UNSEEN", new.unseen)]
        elif "FlagChange" in ev and (condstore or new.unseen != old.unseen):
            items.append(("UNSEEN", new.unseen))
        else:
            return []
        if new.uidvalidity != old.uidvalidity or (condstore and "FlagChange" in ev):
            items.append(("UIDVALIDITY", new.uidvalidity))
        if condstore:
            items.append(("HIGHESTMODSEQ", new.hms))
        return [r.status(self.tree[m][0] if m in self.tree else "", items, utf8=utf8)]


def _in_subtree(path: str, roots: frozenset[str]) -> bool:
    """``path`` is one of ``roots`` or below one: O(depth) set lookups, not O(roots)."""
    i = len(path)
    while i > 0:
        if path[:i] in roots:
            return True
        i = path.rfind(names.SEP, 0, i)
    return False


def _metadata(path: str, entries: list[str], utf8: bool) -> r.Data:
    """The unsolicited ``* METADATA mailbox entry ...`` (RFC 5464 §4.4.2): names only."""
    return r.Data((r.Atom("METADATA"), r.Raw(r.mailbox(path, utf8=utf8)),
                   *(r.Raw(r.astring(e)) for e in entries)))
