"""Seed a source IMAP account (Dovecot in the tests and the benchmark) over APPEND.

Mailboxes: INBOX, the special-use ones of ``tests/dovecot_util.py`` ("Sent Items",
"Deleted Items", Junk, Drafts), nested ones (Archive.2023.Q1) and non-ASCII names;
messages: the malformed-MIME corpus (tests/data/mime) and bench/mailgen.py mail, with a
deterministic mix of flags and keywords (and some \\Deleted), a few messages copied
into a second mailbox byte for byte (one Email with several mailboxIds after migration).
"""

from __future__ import annotations

import glob
import os
import random
import sys
from datetime import datetime, timezone
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import mailgen  # noqa: E402

MAILBOXES = ["INBOX", "Sent Items", "Deleted Items", "Junk", "Drafts", "Archive", "Archive.2023",
             "Archive.2023.Q1", "Früchte & Gemüse", "日本語.メール", "Lists.python-dev"]
KEYWORDS = ["$Label1", "Work", "$Forwarded", "$MDNSent", "Later"]


def corpus() -> list[bytes]:
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "mime", "*.eml"))):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def flags_for(r: random.Random) -> list[str]:
    flags = []
    if r.random() < 0.6:
        flags.append("\\Seen")
    if r.random() < 0.1:
        flags.append("\\Flagged")
    if r.random() < 0.1:
        flags.append("\\Answered")
    if r.random() < 0.03:
        flags.append("\\Deleted")
    if r.random() < 0.02:
        flags.append("\\Draft")
    if r.random() < 0.15:
        flags.append(r.choice(KEYWORDS))
    return flags


def seed(client: Any, count: int, *, seed_no: int = 7, batch: int = 100) -> dict[str, int]:
    """Create the mailboxes and APPEND ``count`` generated messages plus the corpus;
    how many went into each mailbox."""
    r = random.Random(seed_no)
    existing = {name for _f, _d, name in client.list_folders()}
    for name in MAILBOXES:
        if name not in existing:
            client.create_folder(name)
        if name != "Lists.python-dev":
            client.subscribe_folder(name)
    per: dict[str, list[dict[str, Any]]] = {name: [] for name in MAILBOXES}
    when = 1500000000
    for raw in corpus():
        per["INBOX"].append({"msg": raw, "flags": flags_for(r), "date": _dt(when)})
        when += 3600
    for g in mailgen.generate_records(count, seed_no):
        box = r.choice(MAILBOXES)
        item = {"msg": g.raw, "flags": flags_for(r), "date": _dt(g.date)}
        per[box].append(item)
        if r.random() < 0.02:  # the same message (bytes and flags) in a second mailbox
            other = r.choice([b for b in MAILBOXES if b != box])
            per[other].append(dict(item))
    for name, items in per.items():
        for i in range(0, len(items), batch):
            client.multiappend(name, items[i:i + batch])
    return {name: len(items) for name, items in per.items()}


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
