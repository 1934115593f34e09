"""Hypothesis: random flag / copy / move / expunge / append sequences from several sessions
(and expunge-log compaction); after each step a QRESYNC resync from every earlier
(UIDVALIDITY, HIGHESTMODSEQ) checkpoint, applied to the mailbox as it was then,
reconstructs the mailbox exactly -- UID set and flags (RFC 7162 §3.2.5, §3.2.5.2)."""

from __future__ import annotations

import re
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from imap_util import PASSWORD, USER, Client, deliver, message
from dualmail.imap.wire.sequence import SequenceSet
from dualmail.store.store import open_store

FLAGS = ["\\Seen", "\\Flagged", "\\Deleted", "$label"]

op = st.one_of(
    st.tuples(st.just("flag"), st.integers(0, 2), st.integers(0, 50), st.booleans(),
              st.sampled_from(FLAGS)),
    st.tuples(st.just("copy"), st.integers(0, 2), st.integers(0, 50), st.sampled_from(["INBOX", "Other"])),
    st.tuples(st.just("move"), st.integers(0, 2), st.integers(0, 50)),
    st.tuples(st.just("expunge"), st.integers(0, 2)),
    st.tuples(st.just("append"), st.integers(0, 2)),
    st.tuples(st.just("noop"), st.integers(0, 2)),
    st.tuples(st.just("compact"), st.integers(0, 50)),
)


def truth(store: Any, account: int) -> dict[int, frozenset[str]]:
    """UID -> flags of INBOX, straight from the store."""
    from dualmail.mail.ops import imap_flags

    with store.read(account) as v:
        m = v.mailbox_by_path(["INBOX"])
        return {u: frozenset(f.lower() for f in imap_flags(v.email(e), m))
                for u, e in v.uid_items(m)}


def resync(client: Client, uidvalidity: int, modseq: int,
           before: dict[int, frozenset[str]]) -> dict[int, frozenset[str]]:
    out = client.ok(f"r SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    state = dict(before)
    for m in re.finditer(r"^\* VANISHED \(EARLIER\) (\S+)\r$", out, re.M):
        for u in SequenceSet.parse(m.group(1)).resolve(2**32 - 1):
            state.pop(u, None)
    for m in re.finditer(r"^\* \d+ FETCH \((.*)\)\r$", out, re.M):
        uid = int(re.search(r"UID (\d+)", m.group(1)).group(1))
        flags = re.search(r"FLAGS \(([^)]*)\)", m.group(1)).group(1).split()
        state[uid] = frozenset(f.lower() for f in flags if f != "\\Recent")
    assert "EXPUNGE" not in out
    return state


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=14))
def test_qresync_from_every_checkpoint_reconstructs(ops: list[tuple]) -> None:
    tmp = tempfile.mkdtemp()
    store = open_store(tmp + "/data", sync=False)
    try:
        account = store.create_account(USER, PASSWORD)
        with store.write(account) as tx:
            other = tx.create_mailbox("Other")
        for i in range(5):
            deliver(store, account, raw=message(subject=f"m{i}"))
        sessions = []
        for i in range(3):
            c = Client(store)
            c.login()
            if i != 2:
                c.ok("e ENABLE QRESYNC")  # session 2 stays a plain IMAP4rev1 client
            c.ok("s SELECT INBOX")
            sessions.append(c)
        with store.read(account) as v:
            inbox = v.mailbox_by_path(["INBOX"])
            uidvalidity = int(v.require_mailbox(inbox)["uidvalidity"])

        def hms() -> int:
            with store.read(account) as v:
                return int(v.require_mailbox(inbox)["hms"])

        checkpoints = [(hms(), truth(store, account))]
        checker = Client(store)
        checker.login()
        checker.ok("e ENABLE QRESYNC")
        for step in ops:
            kind = step[0]
            if kind == "compact":
                floor = checkpoints[step[1] % len(checkpoints)][0]
                with store.write(account) as tx:
                    tx.compact_expunges(inbox, floor)
            elif kind == "append":
                deliver(store, account, raw=message(subject="new"))
            else:
                c = sessions[step[1]]
                c.ok("n NOOP")
                n = c.session.selected.exists
                if kind == "flag" and n:
                    sign = "+" if step[3] else "-"
                    c.ok(f"f STORE {step[2] % n + 1} {sign}FLAGS ({step[4]})")
                elif kind == "copy" and n:
                    c.ok(f"c COPY {step[2] % n + 1} {step[3]}")
                elif kind == "move" and n:
                    c.ok(f"m MOVE {step[2] % n + 1} Other")
                elif kind == "expunge":
                    c.ok("x EXPUNGE")
            now = truth(store, account)
            for modseq, then in checkpoints:
                assert resync(checker, uidvalidity, modseq, then) == now, (modseq, ops)
            checkpoints.append((hms(), now))
        assert other
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
