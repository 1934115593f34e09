"""``dualmail export ADDRESS DIR``: an account as a Maildir++ tree Dovecot reads with its UIDs.

Layout (Maildir++, as Dovecot's ``maildir:`` with the default layout): INBOX is ``DIR``
itself, every other mailbox ``DIR/.A.B`` (the path joined with ``.``, each name in
modified UTF-7, RFC 3501 §5.1.3; a ``.`` inside a name becomes ``_``, since ``.`` is
the separator there).  Each message is one file in ``cur/`` named
``<receivedAt>.M<email>P<uid>.dualmail,S=<size>:2,<flags>`` (the Maildir ``:2,`` info:
D draft, F flagged, R answered, S seen, T ``\\Deleted``, then ``a``-``z`` for the
mailbox's first 26 other keywords, listed in ``dovecot-keywords``), its time set to the
INTERNALDATE.  ``dovecot-uidlist`` (version 3) keeps each mailbox's UIDVALIDITY, UIDNEXT
and every message's UID, so an IMAP client sees the same UIDs from Dovecot.
``subscriptions`` lists the subscribed mailboxes.  Reads one consistent snapshot.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ..store.store import Store

SYSTEM_LETTERS = {"$draft": "D", "$flagged": "F", "$answered": "R", "$seen": "S"}


@dataclass
class ExportResult:
    mailboxes: int = 0
    messages: int = 0
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        line = f"exported {self.mailboxes} mailboxes, {self.messages} messages ({self.bytes} bytes)"
        return line + "".join(f"\n  note: {n}" for n in self.notes)


class ExportError(Exception):
    pass


def _mutf7(name: str) -> str:
    from imapclient import imap_utf7

    return imap_utf7.encode(name).decode("ascii")


def folder_dir(root: str, path: list[str]) -> str:
    if path == ["INBOX"]:
        return root
    parts = [_mutf7(p.replace(".", "_")) for p in path]
    return os.path.join(root, "." + ".".join(parts))


def export_account(store: Store, account: int, root: str) -> ExportResult:
    if os.path.exists(root) and os.listdir(root):
        raise ExportError(f"{root} exists and is not empty")
    res = ExportResult()
    subs: list[str] = []
    with store.read(account) as r:
        for box in sorted(r.mailboxes(), key=lambda b: r.mailbox_path(int(b["id"]))):
            m = int(box["id"])
            path = r.mailbox_path(m)
            if any("." in p for p in path):
                res.notes.append(f"{'/'.join(path)}: '.' in a name written as '_' (the Maildir++ separator)")
            d = folder_dir(root, path)
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if d != root:
                open(os.path.join(d, "maildirfolder"), "wb").close()
            if box.get("sub"):
                subs.append(".".join(_mutf7(p.replace(".", "_")) for p in path))
            keywords: list[str] = []
            lines = []
            for u, e in r.uid_items(m):
                rec = r.email(e)
                if rec is None:
                    continue
                raw = r.blob(rec["blob"]) or b""
                letters = set()
                for k in rec["kw"]:
                    if k in SYSTEM_LETTERS:
                        letters.add(SYSTEM_LETTERS[k])
                        continue
                    if k not in keywords:
                        if len(keywords) >= 26:
                            res.notes.append(f"{'/'.join(path)}: keyword {k!r} dropped (26 per Maildir)")
                            continue
                        keywords.append(k)
                    letters.add(chr(ord("a") + keywords.index(k)))
                if rec["mbx"][str(m)][1]:
                    letters.add("T")
                base = f"{max(0, int(rec['recv']))}.M{e}P{u}.dualmail,S={len(raw)}"
                name = f"{base}:2,{''.join(sorted(letters))}"
                fpath = os.path.join(d, "cur", name)
                with open(fpath, "wb") as f:
                    f.write(raw)
                os.utime(fpath, (int(rec["recv"]), int(rec["recv"])))
                lines.append(f"{u} :{base}\n")
                res.messages += 1
                res.bytes += len(raw)
            guid = hashlib.md5(f"{account}/{m}/{box['uidvalidity']}".encode(), usedforsecurity=False).hexdigest()
            with open(os.path.join(d, "dovecot-uidlist"), "w", encoding="ascii") as f:
                f.write(f"3 V{int(box['uidvalidity'])} N{int(box['uidnext'])} G{guid}\n")
                f.writelines(lines)
            if keywords:
                with open(os.path.join(d, "dovecot-keywords"), "w", encoding="utf-8") as f:
                    f.writelines(f"{i} {k}\n" for i, k in enumerate(keywords))
            res.mailboxes += 1
    with open(os.path.join(root, "subscriptions"), "w", encoding="ascii") as f:
        f.writelines(s + "\n" for s in subs)
    return res
