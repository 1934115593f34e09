"""The mixed-fleet model-based test (issue 14, CONTRACT.md): a seeded random walk of
operations through real IMAP, JMAP (HTTP + EventSource) and LMTP connections against one
running dualmail service, checking after every step that every client's view is the
server's one truth.

Everything here is blocking client code, run off the reactor thread (``in_thread``) while
the reactor serves the real listeners.  An operation is ``(kind, seed)``: its choices are
drawn at run time from ``random.Random(seed)`` over the current state, so any subsequence
of a failing walk replays meaningfully, which is what ``shrink`` relies on."""

from __future__ import annotations

import base64
import http.client
import json
import random
import smtplib
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from dualmail.imap.wire.sequence import SequenceSet

USER = "alice@example.org"
PASSWORD = "secret"
TIMEOUT = 10
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
FIXED = {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}  # never renamed or deleted
IMAP_FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "$Work", "$Label1", "\\Deleted"]
JMAP_KEYWORDS = ["$seen", "$flagged", "$answered", "$work", "$label1", "$label2"]
SYSTEM = {"\\seen": "$seen", "\\flagged": "$flagged", "\\answered": "$answered", "\\draft": "$draft"}

OPS = ["deliver", "append", "import", "draft", "imap_store", "jmap_keywords", "race", "copy",
       "move", "jmap_patch", "delete_expunge", "uid_expunge", "destroy", "imap_create",
       "jmap_create", "imap_rename", "jmap_rename", "imap_delete", "jmap_delete",
       "jmap_move_selected", "rename_queried", "delete_shared"]
WEIGHTS = [4, 3, 2, 2, 4, 4, 2, 3, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1]


class FleetFailure(AssertionError):
    pass


def walk(seed: int, steps: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(rng.choices(OPS, WEIGHTS)[0], rng.randrange(2**31)) for _ in range(steps)]


def to_jmap(flags: Any) -> set[str]:
    """IMAP flags -> JMAP keywords (CONTRACT §2): system flags mapped, others lowercased,
    \\Deleted and \\Recent not exposed."""
    out = set()
    for f in flags:
        f = f.decode() if isinstance(f, bytes) else f
        low = f.lower()
        if low in ("\\deleted", "\\recent"):
            continue
        out.add(SYSTEM.get(low, low))
    return out


def _s(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        [v] = v
    return (v.decode() if isinstance(v, bytes) else str(v)).strip("()")


def message(n: int, subject: str) -> bytes:
    return (f"From: Bob <bob@example.org>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <fleet{n}@example.org>\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\nbody {n}\r\n").encode()


# -- JMAP over real HTTP, blocking ----------------------------------------------------------


class JMAP:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.session = json.loads(self._http("GET", self.base + "/.well-known/jmap"))
        self.account = self.session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

    def _http(self, method: str, url: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
        req = urllib.request.Request(url, data=body, method=method,
                                     headers={"Authorization": self.auth, "Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.read()

    def request(self, calls: list) -> list:
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        return json.loads(self._http("POST", self.session["apiUrl"], body))["methodResponses"]

    def call(self, name: str, args: dict, ok_errors: tuple = ()) -> dict:
        [[got, result, _]] = self.request([[name, {"accountId": self.account, **args}, "0"]])
        if got == "error":
            if result.get("type") in ok_errors:
                return {"error": result["type"]}
            raise FleetFailure(f"{name} {args} -> {result}")
        return result

    def upload(self, data: bytes) -> str:
        url = self.session["uploadUrl"].replace("{accountId}", self.account)
        return json.loads(self._http("POST", url, data, "message/rfc822"))["blobId"]

    def mailboxes(self) -> dict[str, dict]:
        return {m["id"]: m for m in self.call("Mailbox/get", {"ids": None})["list"]}

    def emails(self) -> tuple[str, dict[str, dict]]:
        ids = self.call("Email/query", {})["ids"]
        got = self.call("Email/get", {"ids": ids, "properties": ["keywords", "mailboxIds"]})
        return got["state"], {e["id"]: e for e in got["list"]}


class EventSource:
    """An EventSource stream (RFC 8620 §7.3) read by a daemon thread."""

    def __init__(self, jmap: JMAP) -> None:
        url = jmap.session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
        path = url.split("127.0.0.1:", 1)[1].split("/", 1)[1]
        self.conn = http.client.HTTPConnection("127.0.0.1", int(jmap.base.rsplit(":", 1)[1]), timeout=60)
        self.conn.request("GET", "/" + path, headers={"Authorization": jmap.auth})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.states: list[int] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        data: dict[str, str] = {}
        try:
            while True:
                line = self.response.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line and not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    data[key] = value
                elif not line and data:
                    if data.get("event") == "state":
                        change = json.loads(data["data"])
                        for types in change.get("changed", {}).values():
                            if "Email" in types:
                                with self.cond:
                                    self.states.append(int(types["Email"]))
                                    self.cond.notify_all()
                    data = {}
        except (OSError, ValueError):
            return

    def wait_for(self, state: int) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: state in self.states, timeout=TIMEOUT):
                raise FleetFailure(f"EventSource never pushed Email state {state}: {self.states[-5:]}")

    def close(self) -> None:
        self.conn.sock.close() if self.conn.sock else None


# -- the fleet -------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    mailbox_id: str
    uidvalidity: int
    modseq: int
    view: dict[int, tuple[str, frozenset]]


@dataclass
class Fleet:
    imap_port: int
    jmap_port: int
    lmtp_port: int
    log: list[str] = field(default_factory=list)
    n: int = 0

    def imap(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=TIMEOUT)
        c.login(USER, PASSWORD)
        return c

    def start(self) -> None:
        self.writer, self.writer2, self.checker = self.imap(), self.imap(), self.imap()
        assert self.checker.enable("QRESYNC") == [b"QRESYNC"]
        self.jmap, self.jmap2 = JMAP(self.jmap_port), JMAP(self.jmap_port)
        self.events = EventSource(self.jmap2)
        self.first_state = int(self.jmap.call("Email/get", {"ids": []})["state"])
        # the QRESYNC session IDLE-ing in INBOX, holding (uid -> (emailid, flags))
        self.idler = self.imap()
        assert self.idler.enable("QRESYNC") == [b"QRESYNC"]
        self.idler.select_folder("INBOX")
        self.idle_view = self._uid_view(self.idler, "1:*")
        self.idler.idle()
        # the plain IMAP4rev1 EXAMINE-only session on Archive, holding [(uid, flags)] by seq
        self.examiner = self.imap()
        self.examiner.select_folder("Archive", readonly=True)
        self.exam_view = [(u, frozenset(_s_all(d[b"FLAGS"]))) for u, d in
                          sorted(uid_fetch(self.examiner, "1:*", ["FLAGS"]).items())]
        # a JMAP client that follows /changes
        self.jmap_state = {"Email": "", "Mailbox": ""}
        self.jmap_emails: dict[str, dict] = {}
        self.jmap_boxes: dict[str, dict] = {}
        st, self.jmap_emails = self.jmap2.emails()
        self.jmap_state["Email"] = st
        mb = self.jmap2.call("Mailbox/get", {"ids": None})
        self.jmap_state["Mailbox"] = mb["state"]
        self.jmap_boxes = {m["id"]: _box(m) for m in mb["list"]}
        self.checkpoints: list[Checkpoint] = []

    def figures(self) -> dict:
        _, emails = self.jmap.emails()
        return {"emails": len(emails), "mailboxes": len(self.jmap.mailboxes()),
                "state": int(self.jmap.call("Email/get", {"ids": []})["state"]),
                "pushes": len(self.events.states), "checkpoints": len(self.checkpoints)}

    def close(self) -> None:
        self.result = self.figures()
        self.events.close()
        try:
            self.idler.idle_done()
        except Exception:
            pass
        for c in (self.writer, self.writer2, self.checker, self.idler, self.examiner):
            try:
                c.logout()
            except Exception:
                c.shutdown()

    # -- helpers -------------------------------------------------------------------------

    def _uid_view(self, c: IMAPClient, uids: str) -> dict[int, tuple[str, frozenset]]:
        got = uid_fetch(c, uids, ["FLAGS", "EMAILID", "MODSEQ"])
        return {u: (_s(d[b"EMAILID"]), frozenset(_s_all(d[b"FLAGS"]))) for u, d in got.items()}

    def names(self) -> dict[str, str]:
        """IMAP name -> JMAP id (top-level names only, so they are the JMAP names)."""
        return {m["name"]: i for i, m in self.jmap.mailboxes().items()}

    def server_imap(self) -> dict[str, dict[int, tuple[str, frozenset]]]:
        out = {}
        for _, _, name in self.checker.list_folders():
            self.checker.select_folder(name, readonly=True)
            out[name] = self._uid_view(self.checker, "1:*")
        self.checker.unselect_folder()  # the server may close a session whose mailbox goes
        return out

    def new_n(self) -> int:
        self.n += 1
        return self.n

    def pick_member(self, rng: random.Random, name: str | None = None, live: bool = False) -> tuple[str, int, str] | None:
        """(mailbox, uid, emailid) of a random IMAP message (``live``: not \\Deleted, so
        JMAP sees that membership)."""
        view = self.server_imap()
        pool = [(m, u, e) for m, v in view.items() if name in (None, m) for u, (e, f) in v.items()
                if not (live and "\\Deleted" in f)]
        return rng.choice(sorted(pool)) if pool else None

    def pick_email(self, rng: random.Random) -> tuple[str, dict] | None:
        _, emails = self.jmap.emails()
        return rng.choice(sorted(emails.items())) if emails else None

    def user_boxes(self) -> list[str]:
        return sorted(n for n in self.names() if n not in FIXED)

    # -- operations ----------------------------------------------------------------------

    def run(self, kind: str, seed: int) -> None:
        rng = random.Random(seed)
        getattr(self, "op_" + kind)(rng)
        # Leave no user mailbox selected: another session deleting a selected mailbox may
        # end this one with BYE (as Dovecot does), which the walk does not model.
        for c in (self.writer, self.writer2):
            if c._imap.state == "SELECTED":
                c.unselect_folder()

    def op_deliver(self, rng: random.Random) -> None:
        c = smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=TIMEOUT)
        c.ehlo("client.test")
        c.sendmail("bob@example.org", [USER], message(self.new_n(), "delivered"))
        c.quit()

    def op_append(self, rng: random.Random) -> None:
        box = rng.choice(sorted(self.names()))
        flags = rng.sample(IMAP_FLAGS[:5], rng.randrange(3))
        self.writer.append(box, message(self.new_n(), "appended"), flags)

    def op_import(self, rng: random.Random) -> None:
        ids = self.names()
        box = ids[rng.choice(sorted(ids))]
        blob = self.jmap.upload(message(self.new_n(), "imported"))
        kw = {k: True for k in rng.sample(JMAP_KEYWORDS, rng.randrange(3))}
        r = self.jmap.call("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {box: True},
                                                                "keywords": kw}}})
        assert "i" in (r.get("created") or {}), r

    def op_draft(self, rng: random.Random) -> None:
        drafts = self.names()["Drafts"]
        r = self.jmap.call("Email/set", {"create": {"d": {
            "mailboxIds": {drafts: True}, "keywords": {"$draft": True, "$seen": True},
            "from": [{"email": USER}], "subject": f"draft {self.new_n()}",
            "bodyValues": {"b": {"value": "draft body"}},
            "textBody": [{"partId": "b", "type": "text/plain"}]}}})
        assert "d" in (r.get("created") or {}), r

    def op_imap_store(self, rng: random.Random) -> None:
        got = self.pick_member(rng)
        if got:
            box, uid, _ = got
            self.writer.select_folder(box)
            flag = rng.choice(IMAP_FLAGS)
            (self.writer.add_flags if rng.random() < 0.6 else self.writer.remove_flags)([uid], [flag])

    def op_jmap_keywords(self, rng: random.Random) -> None:
        got = self.pick_email(rng)
        if got:
            eid, _ = got
            kw = rng.choice(JMAP_KEYWORDS)
            r = self.jmap.call("Email/set", {"update": {eid: {f"keywords/{kw}": rng.choice([True, None])}}})
            assert eid in (r.get("updated") or {}), r

    def op_race(self, rng: random.Random) -> None:
        """IMAP STORE UNCHANGEDSINCE (RFC 7162 §3.1.3) and JMAP Email/set ifInState (RFC 8620
        §5.3) on the same Email from the same pre-state, at once: exactly one wins."""
        got = self.pick_member(rng, live=True) or (self.op_deliver(rng), self.pick_member(rng, live=True))[1]
        box, uid, eid = got
        self.writer2.select_folder(box)
        modseq = self.writer2.fetch([uid], ["MODSEQ"])[uid][b"MODSEQ"][0]
        state = self.jmap.call("Email/get", {"ids": []})["state"]
        tag = self.new_n()
        results: dict[str, Any] = {}
        barrier = threading.Barrier(2, timeout=TIMEOUT)

        def imap_side() -> None:
            barrier.wait()
            typ, data = self.writer2._imap.uid("STORE", str(uid), f"(UNCHANGEDSINCE {modseq})",
                                                "+FLAGS.SILENT", f"($imap{tag})")
            results["imap"] = typ == "OK" and not any(b"MODIFIED" in (d or b"") for d in data)
            results["imap_raw"] = (typ, data)

        t = threading.Thread(target=imap_side)
        t.start()
        barrier.wait()
        r = self.jmap.call("Email/set", {"ifInState": state, "update": {eid: {f"keywords/$jmap{tag}": True}}},
                           ok_errors=("stateMismatch",))
        t.join(TIMEOUT)
        modified = self.writer2._imap.untagged_responses.pop("MODIFIED", None)
        imap_won = results["imap"] and not modified
        jmap_won = eid in (r.get("updated") or {})
        if imap_won == jmap_won:
            raise FleetFailure(f"race: imap {results['imap_raw']} modified={modified} jmap {r}")
        _, emails = self.jmap.emails()
        kws = set(emails.get(eid, {}).get("keywords", {}))
        want = f"$imap{tag}" if imap_won else f"$jmap{tag}"
        if emails.get(eid) is not None and (want not in kws or ({f"$imap{tag}", f"$jmap{tag}"} <= kws)):
            raise FleetFailure(f"race: winner {want}, keywords {kws}")

    def op_copy(self, rng: random.Random) -> None:
        got = self.pick_member(rng)
        if got:
            self.writer.select_folder(got[0])
            self.writer.copy([got[1]], rng.choice(sorted(self.names())))

    def op_move(self, rng: random.Random) -> None:
        got = self.pick_member(rng)
        if got:
            self.writer.select_folder(got[0])
            self.writer.move([got[1]], rng.choice(sorted(self.names())))

    def op_jmap_patch(self, rng: random.Random) -> None:
        got = self.pick_email(rng)
        if got:
            eid, email = got
            ids = self.names()
            add = ids[rng.choice(sorted(ids))]
            patch = {f"mailboxIds/{add}": True}
            if rng.random() < 0.5 and len(email["mailboxIds"]) > 0:
                drop = rng.choice(sorted(email["mailboxIds"]))
                if drop != add:
                    patch[f"mailboxIds/{drop}"] = None
            r = self.jmap.call("Email/set", {"update": {eid: patch}})
            assert eid in (r.get("updated") or {}), r

    def op_delete_expunge(self, rng: random.Random) -> None:
        got = self.pick_member(rng)
        if got:
            self.writer.select_folder(got[0])
            self.writer.add_flags([got[1]], ["\\Deleted"])
            self.writer.expunge()

    def op_uid_expunge(self, rng: random.Random) -> None:
        got = self.pick_member(rng)
        if got:
            self.writer.select_folder(got[0])
            self.writer.add_flags([got[1]], ["\\Deleted"])
            self.writer.uid_expunge([got[1]])

    def op_destroy(self, rng: random.Random) -> None:
        got = self.pick_email(rng)
        if got:
            r = self.jmap.call("Email/set", {"destroy": [got[0]]})
            assert r.get("destroyed") == [got[0]], r

    def op_imap_create(self, rng: random.Random) -> None:
        self.writer.create_folder(f"f{self.new_n()}")

    def op_jmap_create(self, rng: random.Random) -> None:
        r = self.jmap.call("Mailbox/set", {"create": {"m": {"name": f"j{self.new_n()}"}}})
        assert "m" in (r.get("created") or {}), r

    def op_imap_rename(self, rng: random.Random) -> None:
        boxes = self.user_boxes()
        if boxes:
            self.writer.select_folder("INBOX")
            self.writer.rename_folder(rng.choice(boxes), f"r{self.new_n()}")

    def op_jmap_rename(self, rng: random.Random) -> None:
        ids = self.names()
        boxes = self.user_boxes()
        if boxes:
            mid = ids[rng.choice(boxes)]
            r = self.jmap.call("Mailbox/set", {"update": {mid: {"name": f"s{self.new_n()}"}}})
            assert mid in (r.get("updated") or {}), r

    def op_imap_delete(self, rng: random.Random) -> None:
        """IMAP DELETE of a mailbox that may hold Emails also in other mailboxes: those keep
        their other memberships, the rest are destroyed (CONTRACT §2)."""
        boxes = self.user_boxes()
        if boxes:
            self.writer.select_folder("INBOX")
            self.writer.delete_folder(rng.choice(boxes))

    def op_jmap_delete(self, rng: random.Random) -> None:
        ids = self.names()
        boxes = self.user_boxes()
        if boxes:
            mid = ids[rng.choice(boxes)]
            r = self.jmap.call("Mailbox/set", {"destroy": [mid], "onDestroyRemoveEmails": True})
            assert r.get("destroyed") == [mid], r

    def _shared_box(self, rng: random.Random) -> str:
        """A user mailbox holding an Email that is in another mailbox too (made if need be)."""
        for name in self.user_boxes():
            view = self.server_imap()
            for eid, _ in view[name].values():
                if sum(any(e == eid for e, _ in v.values()) for v in view.values()) > 1:
                    return name
        name = f"b{self.new_n()}"
        self.writer.create_folder(name)
        self.op_deliver(rng)
        self.writer.select_folder("INBOX")
        uid = max(uid_fetch(self.writer, "1:*", ["FLAGS"]))
        self.writer.copy([uid], name)
        return name

    def op_delete_shared(self, rng: random.Random) -> None:
        """Deletion of a mailbox holding Emails also in other mailboxes, from either side:
        they keep their other memberships (CONTRACT §2, RFC 8621 §2.5)."""
        name = self._shared_box(rng)
        view = self.server_imap()
        others = {e for m, v in view.items() if m != name for e, _ in v.values()}
        shared = {e for e, _ in view[name].values()} & others
        if rng.random() < 0.5:
            self.writer.select_folder("INBOX")
            self.writer.delete_folder(name)
        else:
            mid = self.names()[name]
            r = self.jmap.call("Mailbox/set", {"destroy": [mid], "onDestroyRemoveEmails": True})
            assert r.get("destroyed") == [mid], r
        _, emails = self.jmap.emails()
        if not shared <= set(emails):
            raise FleetFailure(f"deleting {name} destroyed Emails still in other mailboxes: {shared - set(emails)}")

    def op_jmap_move_selected(self, rng: random.Random) -> None:
        """A JMAP move out of Archive, which the EXAMINE session has selected and has not
        yet been told about (its EXPUNGE is pending until its next command)."""
        ids = self.names()
        got = self.pick_member(rng, "Archive", live=True)
        if got is None:  # put one there first, and let the EXAMINE session learn of it
            if self.pick_email(rng) is None:
                self.op_deliver(rng)
            eid = self.pick_email(rng)[0]
            self.jmap.call("Email/set", {"update": {eid: {f"mailboxIds/{ids['Archive']}": True}}})
            self.check()
        else:
            eid = got[2]
        target = ids[rng.choice(sorted(set(ids) - {"Archive"}))]
        r = self.jmap.call("Email/set", {"update": {eid: {f"mailboxIds/{ids['Archive']}": None,
                                                          f"mailboxIds/{target}": True}}})
        assert eid in (r.get("updated") or {}), r

    def op_rename_queried(self, rng: random.Random) -> None:
        """IMAP RENAME of a mailbox a JMAP client is querying: the query keeps its results
        and queryChanges from the old queryState is exact (or cannotCalculateChanges)."""
        old = self._shared_box(rng)
        ids = self.names()
        q = self.jmap2.call("Email/query", {"filter": {"inMailbox": ids[old]}})
        self.writer.select_folder("INBOX")
        self.writer.rename_folder(old, f"q{self.new_n()}")
        q2 = self.jmap2.call("Email/query", {"filter": {"inMailbox": ids[old]}})
        if q2["ids"] != q["ids"]:
            raise FleetFailure(f"rename changed the query: {q['ids']} -> {q2['ids']}")
        qc = self.jmap2.call("Email/queryChanges", {"filter": {"inMailbox": ids[old]},
                                                     "sinceQueryState": q["queryState"]},
                             ok_errors=("cannotCalculateChanges",))
        if "error" not in qc and (qc["added"] or qc["removed"]):
            raise FleetFailure(f"rename gave queryChanges {qc}")

    # -- checks --------------------------------------------------------------------------

    def check(self) -> None:
        imap = self.server_imap()
        boxes = self.jmap.mailboxes()
        state, emails = self.jmap.emails()
        by_name = {m["name"]: (i, m) for i, m in boxes.items()}
        if set(by_name) != set(imap):
            raise FleetFailure(f"mailboxes: IMAP {sorted(imap)} JMAP {sorted(by_name)}")
        seen_emails: dict[str, dict] = {}
        for name, view in imap.items():
            mid, mbox = by_name[name]
            live = {e: to_jmap(f) for e, f in view.values() if "\\Deleted" not in _s_all(f)}
            if len(live) != len([1 for _, f in view.values() if "\\Deleted" not in _s_all(f)]):
                raise FleetFailure(f"{name}: one Email twice in a mailbox {view}")
            q = self.jmap.call("Email/query", {"filter": {"inMailbox": mid}})["ids"]
            if set(q) != set(live):
                raise FleetFailure(f"{name}: IMAP {sorted(live)} JMAP query {sorted(q)}")
            for e, kws in live.items():
                seen_emails.setdefault(e, {"mailboxIds": {}, "keywords": kws})["mailboxIds"][mid] = True
                if kws != set(emails[e]["keywords"]):
                    raise FleetFailure(f"{name}: {e} IMAP {kws} JMAP {emails[e]['keywords']}")
            # every spelling IMAP shows for one Email is the same in every mailbox
            # unreadEmails: neither $seen nor $draft (RFC 8621 §2); IMAP UNSEEN: no \\Seen
            unseen = sum(1 for k in live.values() if not {"$seen", "$draft"} & k)
            if (mbox["totalEmails"], mbox["unreadEmails"]) != (len(live), unseen):
                raise FleetFailure(f"{name}: Mailbox/get {mbox['totalEmails']}/{mbox['unreadEmails']}"
                                   f" recount {len(live)}/{unseen}")
            st = self.checker.folder_status(name, ["MESSAGES", "UNSEEN", "HIGHESTMODSEQ", "MAILBOXID"])
            imap_unseen = sum(1 for _, f in view.values() if "\\Seen" not in _s_all(f))
            if (st[b"MESSAGES"], st[b"UNSEEN"]) != (len(view), imap_unseen):
                raise FleetFailure(f"{name}: STATUS {st} recount {len(view)}/{imap_unseen}")
            # (HIGHESTMODSEQ may exceed the Email state: expunging memberships JMAP already
            # could not see, being \\Deleted, changes nothing JMAP shows; docs/consistency.md)
            if _s(st[b"MAILBOXID"]) != mid:
                raise FleetFailure(f"{name}: STATUS {st} vs JMAP id {mid}")
        for e, want in seen_emails.items():
            if emails[e]["mailboxIds"] != want["mailboxIds"]:
                raise FleetFailure(f"{e}: mailboxIds JMAP {emails[e]['mailboxIds']} IMAP {want['mailboxIds']}")
        if set(emails) != set(seen_emails):
            raise FleetFailure(f"JMAP Emails {sorted(emails)} not all visible in IMAP {sorted(seen_emails)}")
        self.check_idler(imap["INBOX"])
        self.check_examiner(imap["Archive"])
        self.check_changes(state, emails, boxes)
        self.check_qresync(imap, boxes)
        if int(state) != self.first_state:
            self.events.wait_for(int(state))
        if any(b > a for a, b in zip(self.events.states[1:], self.events.states)) or \
                any(s > int(state) for s in self.events.states):
            raise FleetFailure(f"EventSource states {self.events.states} (now {state})")

    def check_idler(self, server: dict) -> None:
        """Apply what the QRESYNC IDLE session received (RFC 7162 §3.2.10 VANISHED, §3.2.4
        FETCH with UID and MODSEQ, RFC 9051 §7.4.1 EXISTS), then compare."""
        _, responses = self.idler.idle_done()
        responses = list(responses) + list(self.idler.noop()[1])
        for r in responses:
            if r[0] == b"VANISHED":
                for uid in SequenceSet.parse(_s(r[-1]) if not isinstance(r[-1], int) else str(r[-1])).resolve(2**32 - 1):
                    self.idle_view.pop(uid, None)
            elif len(r) == 3 and r[1] == b"FETCH":
                data = dict(zip(r[2][::2], r[2][1::2]))
                uid = data.get(b"UID")
                if uid in self.idle_view and b"FLAGS" in data:
                    self.idle_view[uid] = (self.idle_view[uid][0], frozenset(_s_all(data[b"FLAGS"])))
            elif len(r) >= 2 and r[1] == b"EXPUNGE":
                raise FleetFailure(f"EXPUNGE sent to a QRESYNC session: {r}")
        top = max(self.idle_view, default=0)
        self.idler.unsolicited = []
        new = {u: v for u, v in self._uid_view(self.idler, f"{top + 1}:*").items() if u > top}
        for uid, data in self.idler.unsolicited:  # FETCH (UID FLAGS MODSEQ) among the answers
            if uid in self.idle_view and b"FLAGS" in data:
                self.idle_view[uid] = (self.idle_view[uid][0], frozenset(_s_all(data[b"FLAGS"])))
        self.idler.unsolicited = None
        self.idle_view.update(new)
        self.idler.idle()
        if _fold(self.idle_view) != _fold(server):
            raise FleetFailure(f"IDLE view {self.idle_view} server {server}")

    def check_examiner(self, server: dict) -> None:
        """Apply EXPUNGE / FETCH / EXISTS by sequence number (RFC 9051 §7.5.1, §7.5.2)."""
        for r in self.examiner.noop()[1]:
            if len(r) >= 2 and r[1] == b"EXPUNGE":
                del self.exam_view[r[0] - 1]
            elif len(r) == 3 and r[1] == b"FETCH" and r[0] <= len(self.exam_view):
                data = dict(zip(r[2][::2], r[2][1::2]))
                if b"FLAGS" in data:
                    uid = self.exam_view[r[0] - 1][0]
                    self.exam_view[r[0] - 1] = (uid, frozenset(_s_all(data[b"FLAGS"])))
        top = max((u for u, _ in self.exam_view), default=0)
        got = uid_fetch(self.examiner, f"{top + 1}:*", ["FLAGS"])
        self.exam_view += [(u, frozenset(_s_all(d[b"FLAGS"]))) for u, d in sorted(got.items()) if u > top]
        want = [(u, f) for u, (_, f) in sorted(server.items())]
        if [(u, _lower(f)) for u, f in self.exam_view] != [(u, _lower(f)) for u, f in want]:
            raise FleetFailure(f"EXAMINE view {self.exam_view} server {want}")

    def check_changes(self, state: str, emails: dict, boxes: dict) -> None:
        """The JMAP client applying Email/changes and Mailbox/changes (RFC 8620 §5.2)."""
        for kind, model, full in (("Email", self.jmap_emails, {e: v for e, v in emails.items()}),
                                  ("Mailbox", self.jmap_boxes, {i: _box(m) for i, m in boxes.items()})):
            more = True
            while more:
                ch = self.jmap2.call(f"{kind}/changes", {"sinceState": self.jmap_state[kind], "maxChanges": 7})
                for i in ch["destroyed"]:
                    model.pop(i, None)
                ids = ch["created"] + ch["updated"]
                if ids:
                    props = ["keywords", "mailboxIds"] if kind == "Email" else None
                    got = self.jmap2.call(f"{kind}/get", {"ids": ids, "properties": props})
                    for obj in got["list"]:
                        model[obj["id"]] = obj if kind == "Email" else _box(obj)
                self.jmap_state[kind] = ch["newState"]
                more = ch["hasMoreChanges"]
            if model != full:
                raise FleetFailure(f"{kind}/changes view differs: {model} vs {full}")

    def check_qresync(self, imap: dict, boxes: dict) -> None:
        """Resync from recorded checkpoints with UID FETCH ... (CHANGEDSINCE m VANISHED)
        (RFC 7162 §3.2.6), then record a new checkpoint."""
        names = {i: m["name"] for i, m in boxes.items()}
        keep = []
        for cp in self.checkpoints[-3:]:
            if cp.mailbox_id not in names:
                continue
            name = names[cp.mailbox_id]
            self.checker.select_folder(name, readonly=True)
            uv = self.checker.folder_status(name, ["UIDVALIDITY"])[b"UIDVALIDITY"]
            if uv != cp.uidvalidity:
                raise FleetFailure(f"{name}: UIDVALIDITY changed {cp.uidvalidity} -> {uv}")
            self.checker._imap.untagged_responses.pop("VANISHED", None)
            got = uid_fetch(self.checker, "1:*", ["FLAGS", "EMAILID", "MODSEQ"],
                            modifiers=[f"CHANGEDSINCE {cp.modseq}", "VANISHED"])
            view = dict(cp.view)
            for raw in self.checker._imap.untagged_responses.pop("VANISHED", []):
                text = raw.decode().replace("(EARLIER)", "").strip()
                for uid in SequenceSet.parse(text).resolve(2**32 - 1):
                    view.pop(uid, None)
            for u, d in got.items():
                view[u] = (_s(d[b"EMAILID"]), frozenset(_s_all(d[b"FLAGS"])))
            if _fold(view) != _fold(imap[name]):
                raise FleetFailure(f"{name}: QRESYNC from {cp.modseq} gave {view}, server {imap[name]}")
            keep.append(cp)
            self.checker.unselect_folder()
        rng = random.Random(len(self.checkpoints))
        name = rng.choice(sorted(imap))
        st = self.checker.folder_status(name, ["UIDVALIDITY", "HIGHESTMODSEQ"])
        keep.append(Checkpoint(next(i for i, n in names.items() if n == name), st[b"UIDVALIDITY"],
                               st[b"HIGHESTMODSEQ"], dict(imap[name])))
        self.checkpoints = keep


def uid_fetch(c: IMAPClient, uids: str, items: list[str], modifiers: list[str] | None = None) -> dict:
    """UID FETCH of a range (imapclient's fetch keeps only the UIDs it was given as a list):
    uid -> data, the responses for any UID in the range."""
    args = ["UID", "FETCH", uids, "(" + " ".join(items) + ")"]
    if modifiers:
        args.append("(" + " ".join(modifiers) + ")")
    tag = c._imap._command(*args)
    typ, data = c._imap._command_complete("FETCH", tag)
    c._checkok("fetch", typ, data)
    typ, data = c._imap._untagged_response(typ, data, "FETCH")
    if data == [None]:
        return {}
    want = {i.encode() for i in items}
    got = parse_fetch_response(data, False, True)
    unsolicited = getattr(c, "unsolicited", None)
    if unsolicited is not None:
        unsolicited.extend((u, d) for u, d in got.items() if not want <= set(d))
    return {u: d for u, d in got.items() if want <= set(d)}


def _s_all(flags: Any) -> set[str]:
    """Flags as str; \\Recent dropped: it is per session (RFC 3501 §2.3.2), so two
    sessions rightly differ on it, and JMAP never sees it (CONTRACT §2)."""
    return {f for f in (f.decode() if isinstance(f, bytes) else f for f in flags) if f.lower() != "\\recent"}


def _lower(flags: frozenset) -> frozenset:
    return frozenset(f.lower() for f in flags)


def _fold(view: dict) -> dict:
    """A session's view with keywords compared case-insensitively (RFC 9051 §2.3.2): a
    session that showed a keyword before any IMAP client spelt it keeps showing it
    lowercase (dualmail/model/keywords.py ``Spellings``), while later sessions show the
    first IMAP spelling, and a spelling first set later is no modseq change, so a QRESYNC
    client's cache keeps the old one; docs/consistency.md."""
    return {u: (e, _lower(f)) for u, (e, f) in view.items()}


def _box(m: dict) -> dict:
    return {k: m[k] for k in ("name", "parentId", "totalEmails", "unreadEmails", "totalThreads",
                              "unreadThreads")}


def execute(fleet: Fleet, ops: list[tuple[str, int]], check_every: bool = True) -> None:
    """Run ``ops`` against a started fleet, checking after every step and at the end;
    a failure names the step."""
    fleet.check()
    for i, (kind, seed) in enumerate(ops):
        try:
            fleet.run(kind, seed)
            if check_every or i == len(ops) - 1:
                fleet.check()
        except Exception as exc:
            raise FleetFailure(f"step {i} {kind}/{seed}: {type(exc).__name__}: {exc}") from exc


async def shrink(ops: list, fails: Callable[[list], Any], budget: int = 40) -> list:
    """Drop chunks of operations (halves, quarters, ... single ones) while the sequence
    still fails (``await fails(ops)``), at most ``budget`` replays."""
    size = max(1, len(ops) // 2)
    while budget > 0:
        i = 0
        while i < len(ops) and budget > 0:
            candidate = ops[:i] + ops[i + size:]
            budget -= 1
            if candidate and await fails(candidate):
                ops = candidate
            else:
                i += size
        if size == 1:
            break
        size = max(1, size // 2)
    return ops


async def replay(tmp_path: Any, ops: list, check_every: bool = True) -> "Fleet":
    """A fresh real service (IMAP, JMAP, LMTP on tcp:0) and the fleet running ``ops``."""
    from tests.cross.cross_util import in_thread
    from tests.lmtp.lmtp_util import running

    async with running(tmp_path) as srv:
        fleet = Fleet(srv.imap_port, srv.jmap_port, srv.lmtp_port)

        def go() -> None:
            fleet.start()
            try:
                execute(fleet, ops, check_every)
            finally:
                fleet.close()

        await in_thread(go)
        return fleet


async def run_seed(tmp_factory: Callable[[], Any], seed: int, steps: int, check_every: bool = True) -> "Fleet":
    """Run one seeded walk; on failure shrink it and raise with the seed and the shortest
    failing operation list (replay it with ``replay``)."""
    ops = walk(seed, steps)
    try:
        return await replay(tmp_factory(), ops, check_every)
    except FleetFailure as exc:
        first = exc

    last = [first]

    async def fails(candidate: list) -> bool:
        try:
            await replay(tmp_factory(), candidate, check_every)
        except FleetFailure as exc:
            last.append(exc)
            return True
        return False

    short = await shrink(ops, fails)
    if short != ops:
        await fails(short)
    raise FleetFailure(f"seed {seed} failed: {first}\nshortest failing ops ({len(short)}): {short!r}"
                       f"\nwhich fail with: {last[-1]}")
