"""CREATE (RFC 6154 USE), DELETE, RENAME (INBOX per RFC 9051 §6.3.6), SUBSCRIBE,
UNSUBSCRIBE, LIST (RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE,
RFC 3348 CHILDREN), LSUB (IMAP4rev1 only) and STATUS (RFC 8438 SIZE).

Each change is one store write; counts come from the mailbox record, never a scan.
OBJECTID (RFC 8474): CREATE answers ``OK [MAILBOXID (id)]``; STATUS and LIST RETURN
(STATUS ...) know MAILBOXID.  STATUS HIGHESTMODSEQ is a CONDSTORE enabling command (RFC 7162
§3.1).  Imports no twisted.internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from dualmail.imap.errors import ImapBad, ImapNo
from dualmail.imap.ops import names
from dualmail.imap.states import State
from dualmail.imap.wire import commands as c
from dualmail.imap.wire import responses as r
from dualmail.mail.ops import copy_messages
from dualmail.model import ids
from dualmail.store import metadata

if TYPE_CHECKING:
    from dualmail.imap.session import Session

Gen = Generator[Any, None, "r.Tagged | None"]


def _target(s: Session, raw: str) -> list[str]:
    name = names.decode(s.utf8, raw)
    if name.endswith(names.SEP) and len(name) > 1:
        name = name[:-1]
    comps = names.components(name)
    if not names.valid(comps):
        raise ImapNo("Invalid mailbox name", "CANNOT")
    return comps


def _ensure_parents(tx: Any, comps: list[str]) -> int:
    """Create missing superior names (RFC 9051 §6.3.4); the id of the last parent."""
    parent = 0
    for i, comp in enumerate(comps[:-1]):
        m = tx.child(parent, comp)
        parent = m if m is not None else _create(tx, comps[:i + 1], parent)
    return parent


def _create(tx: Any, comps: list[str], parent: int, role: str | None = None) -> int:
    """A new mailbox; IMAP CREATE does not subscribe it (as Dovecot), unless the name
    was already subscribed while it did not exist."""
    m = int(tx.create_mailbox(comps[-1], parent, role=role, subscribed=False))
    _adopt_subscription(tx, m, names.SEP.join(comps))
    return m


def _adopt_subscription(tx: Any, m: int, path: str) -> None:
    """A subscription kept for a missing name moves onto the mailbox now bearing it."""
    orphans = tx.orphan_subscriptions()
    if path in orphans:
        tx.update_mailbox(m, subscribed=True)
        tx.set_orphan_subscriptions(n for n in orphans if n != path)


def create(s: Session, cmd: c.Create) -> Gen:
    comps = _target(s, cmd.mailbox)
    if comps == ["INBOX"]:
        return r.Tagged(cmd.tag, "NO", "INBOX already exists", r.code("ALREADYEXISTS"))
    role = None
    if cmd.special_use:
        roles = [names.ATTR_ROLES.get(a.lower()) for a in cmd.special_use]
        if len(roles) > 1 or None in roles:
            return r.Tagged(cmd.tag, "NO", "Unsupported special-use attribute", r.code("USEATTR"))
        role = roles[0]
    assert s.account is not None
    with s.store.write(s.account) as tx:
        parent = _ensure_parents(tx, comps)
        if tx.child(parent, comps[-1]) is not None:
            raise ImapNo("Mailbox already exists", "ALREADYEXISTS")
        m = _create(tx, comps, parent, role)
    return r.Tagged(cmd.tag, "OK", "CREATE completed",
                    r.code_mailboxid(ids.format_id(ids.MAILBOX, m)))
    yield  # pragma: no cover


def delete(s: Session, cmd: c.Delete) -> Gen:
    name = names.decode(s.utf8, cmd.mailbox)
    assert s.account is not None
    with s.store.write(s.account) as tx:
        m = names.require(tx, name)
        if m == tx.child(0, "INBOX"):
            raise ImapNo("INBOX cannot be deleted", "CANNOT")
        if tx.children(m):
            raise ImapNo("Mailbox has children; delete them first", "CANNOT")
        rec = tx.require_mailbox(m)
        if rec.get("sub"):
            # RFC 9051 §6.3.7: the subscription outlives the mailbox (\NonExistent)
            tx.set_orphan_subscriptions([*tx.orphan_subscriptions(),
                                         names.SEP.join(names.components(name))])
        tx.delete_mailbox(m, remove_emails=True)
    if s.selected is not None and s.selected.mailbox == m:
        s.selected = None
        s.state = State.AUTHENTICATED
    return r.Tagged(cmd.tag, "OK", "DELETE completed")
    yield  # pragma: no cover


def rename(s: Session, cmd: c.Rename) -> Gen:
    old = names.decode(s.utf8, cmd.mailbox)
    comps = _target(s, cmd.new_name)
    assert s.account is not None
    with s.store.write(s.account) as tx:
        m = names.require(tx, old)
        if tx.mailbox_by_path(comps) is not None or comps == ["INBOX"]:
            raise ImapNo("Target mailbox already exists", "ALREADYEXISTS")
        inbox = tx.child(0, "INBOX")
        if m == inbox:
            # RFC 9051 §6.3.6: move every message to a new mailbox; INBOX stays, empty.
            parent = _ensure_parents(tx, comps)
            new = _create(tx, comps, parent)
            copy_messages(tx, m, list(tx.uids(m)), new, move=True)
            metadata.copy_all(tx.w, s.account, m, new)  # RFC 5464 §4.1: INBOX keeps its own
        else:
            parent = _ensure_parents(tx, comps)
            tx.update_mailbox(m, name=comps[-1], parent=parent)
            _adopt_subscription(tx, m, names.SEP.join(comps))
    if s.selected is not None and s.selected.mailbox == m and m != inbox:
        s.selected.name = "/".join(comps)
    return r.Tagged(cmd.tag, "OK", "RENAME completed")
    yield  # pragma: no cover


def subscribe(s: Session, cmd: c.Subscribe | c.Unsubscribe) -> Gen:
    """RFC 9051 §6.3.7/§6.3.8.  A name that is no mailbox may be subscribed (the MAY of
    §6.3.7, as Dovecot): it is kept in the account record and LIST (SUBSCRIBED) shows it
    ``\\NonExistent``; a later CREATE of that name takes the subscription over."""
    comps = _target(s, cmd.mailbox)
    path = names.SEP.join(comps)
    on = isinstance(cmd, c.Subscribe)
    assert s.account is not None
    with s.store.write(s.account) as tx:
        m = names.find(tx, path)
        orphans = set(tx.orphan_subscriptions())
        if m is not None:
            tx.update_mailbox(m, subscribed=on)
            orphans.discard(path)
        elif on:
            orphans.add(path)
        else:
            orphans.discard(path)
        tx.set_orphan_subscriptions(orphans)
    return r.Tagged(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")
    yield  # pragma: no cover


# -- LIST / LSUB ---------------------------------------------------------------------------


def list_(s: Session, cmd: c.List) -> Gen:
    assert s.account is not None
    if cmd.patterns == ("",) and not cmd.select_options:
        # RFC 9051 §6.3.9: the hierarchy delimiter and root name
        yield r.list_response(["\\Noselect"], names.SEP, "", utf8=s.utf8)
        return r.Tagged(cmd.tag, "OK", "LIST completed")
    ref = names.decode_pattern(s.utf8, cmd.reference)
    regexes = [names.pattern_regex(ref + names.decode_pattern(s.utf8, p))
               for p in cmd.patterns if p != ""]
    sel = set(cmd.select_options)
    want_subscribed = "SUBSCRIBED" in sel or "SUBSCRIBED" in cmd.return_options
    status_items = cmd.status_items
    if status_items:
        _check_status_items(s, status_items)
        yield from _enabling(s, status_items)
    with s.store.read(s.account) as view:
        tree = names.tree(view)
        orphans = view.orphan_subscriptions() if "SUBSCRIBED" in sel and "SPECIAL-USE" not in sel else []
        has_kids = {int(rec["parent"]) for _p, rec in tree.values()}
        rows: list[tuple[str, int, list[str], list[tuple[str, Any]]]] = []
        for m, (path, rec) in tree.items():
            if not any(rx.fullmatch(path) for rx in regexes):
                continue
            attrs = names.attributes(rec, m in has_kids)
            ok = True
            if "SUBSCRIBED" in sel and not rec["sub"]:
                ok = False
            if "SPECIAL-USE" in sel and rec.get("role") not in names.ROLE_ATTRS:
                ok = False
            ext: list[tuple[str, Any]] = []
            if not ok:
                if "RECURSIVEMATCH" in sel and _descendant_matches(tree, m, sel, orphans, regexes):
                    ext.append(("CHILDINFO", [b"SUBSCRIBED"]))
                    rows.append((path, m, attrs, ext))
                continue
            if want_subscribed and rec["sub"]:
                attrs.append("\\Subscribed")
            if "RECURSIVEMATCH" in sel and _descendant_matches(tree, m, sel, orphans, regexes):
                ext.append(("CHILDINFO", [b"SUBSCRIBED"]))  # RFC 5258 example 9 ("eps2")
            rows.append((path, m, attrs, ext))
        # RFC 5258 §3: subscribed names with no mailbox are \NonExistent (which implies
        # \Noselect, so that is not sent); with RECURSIVEMATCH a missing parent of a
        # subscribed name is listed \NonExistent with CHILDINFO.
        existing = {path for path, _rec in tree.values()}
        extra: dict[str, tuple[list[str], list[tuple[str, Any]]]] = {}
        for path in orphans:
            if any(rx.fullmatch(path) for rx in regexes):
                extra[path] = (["\\NonExistent", "\\Subscribed"], [])
        if "RECURSIVEMATCH" in sel:
            for path in orphans:  # a mailbox's parents always exist
                if path in extra:
                    continue  # listed itself: CHILDINFO on its parents would be redundant
                parts = path.split(names.SEP)
                for i in range(1, len(parts)):
                    anc = names.SEP.join(parts[:i])
                    if anc not in existing and anc not in orphans and \
                            any(rx.fullmatch(anc) for rx in regexes):
                        extra.setdefault(anc, (["\\NonExistent"], [("CHILDINFO", [b"SUBSCRIBED"])]))
        for path, (attrs, ext) in extra.items():
            rows.append((path, 0, attrs, ext))
        rows.sort(key=lambda row: (row[0] != "INBOX", row[0]))
        for path, m, attrs, ext in rows:
            yield r.list_response(attrs, names.SEP, path, utf8=s.utf8, extended=ext)
            if status_items and m:
                yield r.status(path, status_values(s, view, m, status_items), utf8=s.utf8)
    return r.Tagged(cmd.tag, "OK", "LIST completed")


def _descendant_matches(tree: dict[int, tuple[str, dict[str, Any]]], m: int, sel: set[str],
                        orphans: list[str], regexes: list[Any]) -> bool:
    """RECURSIVEMATCH CHILDINFO (RFC 5258 §3.5): a descendant meets the selection
    criteria and is not itself listed (the patterns miss it); when every such
    descendant is listed anyway, CHILDINFO would be redundant (SHOULD NOT, example 9)."""
    prefix = tree[m][0] + names.SEP

    def unlisted(path: str) -> bool:
        return path.startswith(prefix) and not any(rx.fullmatch(path) for rx in regexes)

    if any(unlisted(p) for p in orphans):
        return True
    for path, rec in tree.values():
        if unlisted(path):
            if ("SUBSCRIBED" not in sel or rec["sub"]) and \
                    ("SPECIAL-USE" not in sel or rec.get("role") in names.ROLE_ATTRS):
                return True
    return False


def lsub(s: Session, cmd: c.Lsub) -> Gen:
    assert s.account is not None
    if cmd.pattern == "":
        yield r.list_response(["\\Noselect"], names.SEP, "", utf8=s.utf8, command="LSUB")
        return r.Tagged(cmd.tag, "OK", "LSUB completed")
    ref = names.decode_pattern(s.utf8, cmd.reference)
    rx = names.pattern_regex(ref + names.decode_pattern(s.utf8, cmd.pattern))
    with s.store.read(s.account) as view:
        tree = names.tree(view)
        orphans = view.orphan_subscriptions()
    subscribed = {path for path, rec in tree.values() if rec["sub"]} | set(orphans)
    out: dict[str, list[str]] = {}
    for path in subscribed:
        if rx.fullmatch(path):
            out[path] = []
        else:
            # RFC 3501 §6.3.9: a "%" may match an unsubscribed parent of a subscribed name
            parts = path.split(names.SEP)
            for i in range(1, len(parts)):
                anc = names.SEP.join(parts[:i])
                if rx.fullmatch(anc) and anc not in subscribed:
                    out.setdefault(anc, ["\\Noselect"])
    for path in sorted(out, key=lambda p: (p != "INBOX", p)):
        yield r.list_response(out[path], names.SEP, path, utf8=s.utf8, command="LSUB")
    return r.Tagged(cmd.tag, "OK", "LSUB completed")


# -- STATUS ----------------------------------------------------------------------------------


def _check_status_items(s: Session, items: tuple[str, ...]) -> None:
    if s.rev2 and "RECENT" in items:
        raise ImapBad("RECENT is not a STATUS item in IMAP4rev2")


def _enabling(s: Session, items: tuple[str, ...] | None) -> list[r.Response]:
    return s.enable_condstore() if items and "HIGHESTMODSEQ" in items else []


def status_values(s: Session, view: Any, m: int, items: tuple[str, ...]) -> list[tuple[str, int | str]]:
    rec = view.require_mailbox(m)
    counts = rec["counts"]
    out: list[tuple[str, int | str]] = []
    for item in items:
        if item == "MESSAGES":
            out.append((item, int(counts["msgs"])))
        elif item == "UIDNEXT":
            out.append((item, int(rec["uidnext"])))
        elif item == "UIDVALIDITY":
            out.append((item, int(rec["uidvalidity"])))
        elif item == "UNSEEN":
            out.append((item, int(counts["unseen"])))
        elif item == "DELETED":
            out.append((item, int(counts["deleted"])))
        elif item == "SIZE":
            out.append((item, int(counts["size"])))
        elif item == "DELETED-STORAGE":  # RFC 9208 §4.1.4: octets an EXPUNGE would remove
            out.append((item, view.deleted_size(m)))
        elif item == "RECENT":
            first = int(rec.get("recent", 1))
            out.append((item, sum(1 for _ in view.uid_items(m, first))))
        elif item == "HIGHESTMODSEQ":
            out.append((item, int(rec["hms"])))
        elif item == "MAILBOXID":
            out.append((item, ids.format_id(ids.MAILBOX, m)))
        elif item == "APPENDLIMIT":
            out.append((item, s.config.appendlimit))
    return out


def status(s: Session, cmd: c.Status) -> Gen:
    _check_status_items(s, cmd.items)
    name = names.decode(s.utf8, cmd.mailbox)
    assert s.account is not None
    with s.store.read(s.account) as view:
        m = names.require(view, name)
        values = status_values(s, view, m, cmd.items)
        path = names.tree(view)[m][0]
    yield from _enabling(s, cmd.items)
    yield r.status(path, values, utf8=s.utf8)
    return r.Tagged(cmd.tag, "OK", "STATUS completed")
