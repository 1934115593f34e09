"""End to end: Debian's Dovecot as the source, ``dualmail migrate`` (the CLI, another
process) into a running dualmail, compared over IMAP and JMAP, then changes on Dovecot
and a rerun, then a change on dualmail's side and the safety rule.

RFC 7162 §3.2.5 / §3.1: a QRESYNC client that kept (UIDVALIDITY, HIGHESTMODSEQ) from
Dovecot selects the mailbox on dualmail and is told of no change (no VANISHED, no FETCH);
after changes on Dovecot and a rerun it is told of exactly those.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import pytest_twisted

from tests.cross.cross_util import PASSWORD, USER, close, in_thread, running
from tests.dovecot_util import Dovecot
from tests.migrate import seed
from tests.migrate.compare import diff, norm_flags, qresync_select, snapshot

SRC_USER, SRC_PW = "bob@example.org", "source-secret"
COUNT = 1000


def migrate(data: str, url: str, pwfile: str, *extra: str) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", data, "migrate", USER, url,
                        "--password-file", pwfile, *extra], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def counts(stdout: str) -> dict[str, int]:
    out = {}
    for key in ("created", "renamed", "deleted", "unchanged", "messages", "merged", "flags changed",
                "expunged", "errors"):
        m = re.search(rf"{key} (\d+)", stdout)
        out[key] = int(m.group(1)) if m else -1
    return out


@pytest.fixture
def dovecot(tmp_path):
    dv = Dovecot(str(tmp_path / "dovecot"), {SRC_USER: SRC_PW})
    yield dv
    dv.stop()


def _dualmail_client(port):
    import imapclient

    c = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    c.normalise_times = False
    c.login(USER, PASSWORD)
    return c


@pytest_twisted.ensureDeferred
async def test_migrate_from_dovecot_keeps_uids_modseqs_and_reruns(tmp_path, dovecot):
    pwfile = str(tmp_path / "pw")
    with open(pwfile, "w") as f:
        f.write(SRC_PW + "\n")
    src = dovecot.client()
    seeded = await in_thread(seed.seed, src, COUNT)
    assert sum(seeded.values()) >= COUNT
    # a client syncs against Dovecot and keeps its QRESYNC state
    before = await in_thread(snapshot, src, ".")
    async with running(tmp_path) as svc:
        data = str(tmp_path / "data")
        rc, out, err = await in_thread(migrate, data, dovecot.url(), pwfile)
        assert rc == 0, out + err
        n = counts(out)
        assert n["messages"] == sum(len(b.messages) for b in before.values())
        assert n["merged"] > 0 and n["errors"] == 0

        # 1. IMAP: every mailbox's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and every
        # UID -> (bytes, flags, INTERNALDATE, MODSEQ) equal to Dovecot's
        dm = await in_thread(_dualmail_client, svc.imap_port)
        after = await in_thread(snapshot, dm, "/")
        ours = {p: b for p, b in after.items() if p in before}
        assert diff(before, ours) == []
        # dualmail's default Sent/Trash gave way to the source's special-use ones; the
        # source's \Noselect parents are (empty) mailboxes here
        assert set(after) == set(before) | {"Lists", "日本語"}, set(after) ^ set(before)
        assert not after["Lists"].messages and not after["日本語"].messages

        # 2. JMAP: the same messages, keywords and mailboxIds; roles from SPECIAL-USE
        await _check_jmap(svc, dm, before)

        # 3. a QRESYNC client with Dovecot's state is told of no change
        for name in ("INBOX", "Archive.2023", "Junk"):
            path = name.replace(".", "/")
            v, fetches, hms = await in_thread(qresync_select, "127.0.0.1", svc.imap_port, USER, PASSWORD,
                                              path, before[path].uidvalidity, before[path].hms)
            assert (v, fetches, hms) == ([], [], before[path].hms)

        # 4. change things on Dovecot, rerun: equal again, only the changes transferred
        changes = await in_thread(_change_source, src, before)
        rc, out, err = await in_thread(migrate, data, dovecot.url(), pwfile)
        assert rc == 0, out + err
        n = counts(out)
        assert n["messages"] == changes["new"], out
        assert n["flags changed"] == changes["flags"], out
        assert n["expunged"] == changes["expunged"], out
        # deleted: Lists/python-dev and its \Noselect parent, which Dovecot drops with it
        assert (n["renamed"], n["created"], n["deleted"]) == (1, 1, 2), out
        source_now = await in_thread(snapshot, src, ".")
        after2 = await in_thread(snapshot, dm, "/")
        assert set(after2) - set(source_now) == {"日本語"}  # the \Noselect parent
        assert diff(source_now, {p: b for p, b in after2.items() if p in source_now}) == []
        # the client that kept Dovecot's old state now hears of exactly those changes
        v, fetches, _hms = await in_thread(qresync_select, "127.0.0.1", svc.imap_port, USER, PASSWORD,
                                           "Junk", before["Junk"].uidvalidity, before["Junk"].hms)
        gone = sorted(set(before["Junk"].messages) - set(source_now["Junk"].messages))
        assert len(gone) == changes["expunged"] and fetches == []
        told = set()
        for part in b"".join(v).decode().replace("(EARLIER)", "").strip().split(","):
            lo, _, hi = part.partition(":")
            told |= set(range(int(lo), int(hi or lo) + 1))
        assert told == set(gone)
        _v, fetches, _hms = await in_thread(qresync_select, "127.0.0.1", svc.imap_port, USER, PASSWORD,
                                            "Archive/2023", before["Archive/2023"].uidvalidity,
                                            before["Archive/2023"].hms)
        told = sorted(int(re.search(rb"UID (\d+)", f).group(1)) for f in fetches)
        assert told == sorted(changes["flagged_uids"])

        # 5. a third run with nothing changed reads no mailbox
        rc, out, err = await in_thread(migrate, data, dovecot.url(), pwfile)
        assert rc == 0 and counts(out)["messages"] == 0 and counts(out)["flags changed"] == 0, out

        # 6. a client of dualmail changes Drafts; Dovecot gets new mail there: the rerun
        # leaves Drafts alone, says so, and exits non-zero (the safety rule)
        def dualmail_change():
            dm.select_folder("Drafts")
            uid = dm.search(["ALL"])[0]
            hms = dm.folder_status("Drafts", [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
            dm.add_flags([uid], [b"\\Flagged"])
            # it sees its own change and nothing else
            assert set(dm.fetch(dm.search(["ALL"]), ["FLAGS"], modifiers=[f"CHANGEDSINCE {hms}"])) == {uid}
            src.append("Drafts", seed.corpus()[0], [], datetime.now(timezone.utc))
            return dm.folder_status("Drafts", [b"UIDNEXT", b"MESSAGES"])

        drafts = await in_thread(dualmail_change)
        rc, out, err = await in_thread(migrate, data, dovecot.url(), pwfile)
        assert rc == 1 and "Drafts: changed in dualmail since the last run" in out, out
        assert await in_thread(dm.folder_status, "Drafts", [b"UIDNEXT", b"MESSAGES"]) == drafts
        await in_thread(close, dm)
    await in_thread(close, src)
    r = subprocess.run([sys.executable, "-m", "dualmail.cli", "--data", data, "check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def _change_source(src, before):
    """New mail, flag changes, expunges, a rename, a new and a deleted mailbox."""
    from datetime import timedelta

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    new = 0
    for i in range(5):
        src.append("INBOX", f"Subject: new {i}\r\nMessage-ID: <new{i}@x>\r\n\r\nbody {i}\r\n".encode(),
                   [b"$Label1"] if i % 2 else [], now + timedelta(minutes=i))
        new += 1
    src.select_folder("Archive.2023")
    uids = sorted(before["Archive/2023"].messages)[:3]
    src.add_flags(uids, [b"\\Flagged", b"Later"])
    src.select_folder("Junk")
    junk = sorted(before["Junk"].messages)[-2:]
    src.add_flags(junk, [b"\\Deleted"])
    src.expunge()
    src.rename_folder("Archive.2023.Q1", "Archive.2023.First")
    src.create_folder("Projects")
    src.subscribe_folder("Projects")
    for i in range(2):
        src.append("Projects", f"Subject: p{i}\r\n\r\nx\r\n".encode(), [b"\\Seen"], now)
        new += 1
    src.delete_folder("Lists.python-dev")
    flagged = [u for u in uids if "\\flagged" not in before["Archive/2023"].messages[u][1]
               or "later" not in before["Archive/2023"].messages[u][1]]
    expunged = set(junk) | {u for u, m in before["Junk"].messages.items() if "\\deleted" in m[1]}
    return {"new": new, "flags": len(flagged), "expunged": len(expunged), "flagged_uids": flagged}


async def _check_jmap(svc, dm, before):
    jmap = svc.jmap
    boxes = (await jmap.call("Mailbox/get", {"ids": None}))["list"]
    by_id = {b["id"]: b for b in boxes}

    def path(b):
        out = [b["name"]]
        while b["parentId"]:
            b = by_id[b["parentId"]]
            out.append(b["name"])
        return "/".join(reversed(out))

    ids = {path(b): b["id"] for b in boxes}
    roles = {path(b): b["role"] for b in boxes if b["role"]}
    assert roles == {"INBOX": "inbox", "Sent Items": "sent", "Deleted Items": "trash", "Junk": "junk",
                     "Drafts": "drafts", "Archive": "archive"}
    subscribed = {path(b) for b in boxes if b["isSubscribed"]}
    assert "Lists/python-dev" not in subscribed and "Früchte & Gemüse" in subscribed

    # (mailbox, UID) -> EMAILID over IMAP (RFC 8474), then Email/get of every id
    def emailids():
        out = {}
        for p, box in before.items():
            dm.select_folder(p, readonly=True)
            uids = sorted(box.messages)
            if uids:
                for u, d in dm.fetch(uids, ["EMAILID"]).items():
                    out[(p, u)] = d[b"EMAILID"][0].decode() if isinstance(d[b"EMAILID"], tuple) \
                        else d[b"EMAILID"].decode().strip("()")
        return out

    eids = await in_thread(emailids)
    want: dict[str, dict] = {}
    for (p, u), e in eids.items():
        _raw, flags, date, _ms = before[p].messages[u]
        w = want.setdefault(e, {"mailboxIds": set(), "flags": set(), "date": date})
        if "\\deleted" not in flags:
            w["mailboxIds"].add(ids[p])
            w["flags"].add(flags - {"\\deleted"})
    visible = {e: w for e, w in want.items() if w["mailboxIds"]}
    q = await jmap.call("Email/query", {"limit": 5000, "calculateTotal": True})
    assert q["total"] == len(visible)
    assert set(q["ids"]) == set(visible)
    got = []
    for i in range(0, len(q["ids"]), 500):  # maxObjectsInGet
        got += (await jmap.call("Email/get", {"ids": q["ids"][i:i + 500],
                                              "properties": ["mailboxIds", "keywords", "receivedAt"]}))["list"]
    system = {"$seen": "\\seen", "$flagged": "\\flagged", "$answered": "\\answered", "$draft": "\\draft"}
    merged = 0
    for em in got:
        w = visible[em["id"]]
        assert set(em["mailboxIds"]) == w["mailboxIds"]
        [flags] = w["flags"]  # one keyword set per Email (CONTRACT §2)
        assert norm_flags(system.get(k, k) for k in em["keywords"]) == flags
        assert em["receivedAt"] == datetime.fromtimestamp(w["date"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        merged += len(em["mailboxIds"]) > 1
    assert merged > 0
