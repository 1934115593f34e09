"""CONDSTORE, QRESYNC (RFC 7162) and OBJECTID (RFC 8474) on the sans-I/O session.

The RFC examples adapted to a real store: every MODSEQ / HIGHESTMODSEQ asserted here is
the store's own modseq (CONTRACT §4), every id the JMAP id (CONTRACT §1).  Bad input gets
the exact BAD the RFC names and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from imap_util import Client, deliver, lines, message
from dualmail.model import ids


def tagged(out: str, tag: str) -> str:
    m = re.search(rf"^{re.escape(tag)} (.*?)\r?$", out, re.M)
    assert m, out
    return m.group(1)


def inbox(store: Any, account: int, name: str = "INBOX") -> dict[str, Any]:
    with store.read(account) as v:
        return v.require_mailbox(v.mailbox_by_path(name.split("/")))


def hms(store: Any, account: int, name: str = "INBOX") -> int:
    return int(inbox(store, account, name)["hms"])


def modseq_of(store: Any, account: int, uid: int, name: str = "INBOX") -> int:
    with store.read(account) as v:
        m = v.mailbox_by_path(name.split("/"))
        rec = v.email(v.email_at(m, uid))
        return int(rec["mbx"][str(m)][2])


def fetches(out: str) -> dict[int, str]:
    """seq -> the FETCH item text."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\* (\d+) FETCH \((.*)\)\r?$", out, re.M)}


@pytest.fixture
def five(store: Any, account: int) -> Client:
    for i in range(5):
        deliver(store, account, raw=message(subject=f"m{i}", body=f"body {i}\r\n"))
    c = Client(store)
    c.login()
    return c


@pytest.fixture
def snapshot(store: Any, account: int):
    """Call it after the setup; asserts at the end that the store did not change."""
    marks: list[Any] = []

    def state() -> Any:
        with store.read(account) as v:
            return (v.highest_modseq, sorted((m["id"], m["uidnext"], m["hms"],
                                              tuple(sorted(m["counts"].items())))
                                             for m in v.mailboxes()))

    def mark() -> None:
        marks.append(state())

    yield mark
    if marks:
        assert state() == marks[0]


# -- CONDSTORE (RFC 7162 §3.1) -----------------------------------------------------------


def test_capabilities_and_enable(five: Client) -> None:
    out = five.ok("a CAPABILITY")
    for cap in ("CONDSTORE", "QRESYNC", "OBJECTID", "ENABLE"):
        assert f" {cap}" in out
    # §3.2.3: QRESYNC implies CONDSTORE; ENABLED lists what this command switched on
    assert lines(five.ok("b ENABLE QRESYNC CONDSTORE"))[0] == "* ENABLED QRESYNC CONDSTORE"
    assert lines(five.ok("c ENABLE CONDSTORE QRESYNC"))[0] == "* ENABLED"


def test_select_condstore_example_18(five: Client, store, account) -> None:
    out = five.ok("a SELECT INBOX (CONDSTORE)")
    assert f"* OK [HIGHESTMODSEQ {hms(store, account)}]" in out
    assert "[MAILBOXID (" in out
    # enabled: a later SELECT/EXAMINE without the parameter still reports it (§3.1.2.1)
    assert f"* OK [HIGHESTMODSEQ {hms(store, account)}]" in five.ok("b EXAMINE INBOX")


def test_no_highestmodseq_before_enabling(five: Client) -> None:
    assert "HIGHESTMODSEQ" not in five.ok("a SELECT INBOX")


def test_first_enabling_command_reports_highestmodseq_example_5(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX")
    before = hms(store, account)
    out = five.ok("b FETCH 1:3 (MODSEQ)")  # Example 13
    ls = lines(out)
    assert ls[0] == f"* OK [HIGHESTMODSEQ {before}] Highest"
    assert ls[1:4] == [f"* {n} FETCH (MODSEQ ({modseq_of(store, account, n)}))" for n in (1, 2, 3)]
    assert "HIGHESTMODSEQ" not in five.ok("c FETCH 1 (MODSEQ)")  # only the first time


@pytest.mark.parametrize("command", [
    "STATUS INBOX (HIGHESTMODSEQ)",
    "SEARCH MODSEQ 1",
    "FETCH 1 (FLAGS) (CHANGEDSINCE 1)",
    "STORE 1 (UNCHANGEDSINCE 99999) +FLAGS.SILENT (\\Seen)",
])
def test_every_enabling_command_makes_fetch_carry_modseq(five: Client, store, account, command) -> None:
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    five.ok("a SELECT INBOX")
    five.ok("b " + command)
    other.ok("o2 STORE 2 +FLAGS (\\Flagged)")
    out = five.ok("c NOOP")  # Example 14: the unsolicited FETCH carries UID and MODSEQ
    assert f"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({modseq_of(store, account, 2)}))" in out


def test_unsolicited_fetch_without_condstore_has_no_modseq(five: Client, store, account) -> None:
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    five.ok("a SELECT INBOX")
    other.ok("o2 STORE 2 +FLAGS (\\Flagged)")
    out = five.ok("c NOOP")
    assert "* 2 FETCH (UID 2 FLAGS (\\Flagged))" in out and "MODSEQ" not in out


def test_conditional_store_example_3(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX (CONDSTORE)")
    out = five.ok(f"b UID STORE 4,2,5 (UNCHANGEDSINCE {hms(store, account)}) +FLAGS.SILENT (\\Deleted)")
    new = hms(store, account)
    # .SILENT still answers UID and MODSEQ (the store's new modseq), no FLAGS
    assert fetches(out) == {n: f"UID {n} MODSEQ ({new})" for n in (2, 4, 5)}
    assert tagged(out, "b") == "OK STORE completed"


def test_conditional_store_modified_example_6(five: Client, store, account) -> None:
    other = Client(store)
    other.login()
    five.ok("a SELECT INBOX (CONDSTORE)")
    other.ok("o SELECT INBOX")
    base = hms(store, account)
    other.ok("o1 STORE 3,5 +FLAGS (\\Answered)")
    out = five.ok(f"b STORE 5,2,3 (UNCHANGEDSINCE {base}) +FLAGS.SILENT (\\Deleted)")
    assert tagged(out, "b") == "OK [MODIFIED 3,5] Conditional STORE failed for some messages"
    f = fetches(out)
    assert f[2] == f"UID 2 MODSEQ ({hms(store, account)})"
    # the failed ones get their current FLAGS and MODSEQ at once (Example 10)
    assert f[3] == f"UID 3 FLAGS (\\Answered \\Recent) MODSEQ ({modseq_of(store, account, 3)})"
    assert "\\Deleted" not in f[5]
    # UID STORE reports UIDs, not sequence numbers
    five.ok("c STORE 1 +FLAGS (\\Deleted)")
    five.ok("d EXPUNGE")
    out = five.ok(f"e UID STORE 3:5 (UNCHANGEDSINCE {base}) +FLAGS (\\Seen)")
    assert tagged(out, "e").startswith("OK [MODIFIED 3,5]")


def test_unchangedsince_zero_always_fails_examples_7_8(five: Client, store, account, snapshot) -> None:
    five.ok("a SELECT INBOX (CONDSTORE)")
    snapshot()
    out = five.ok("b STORE 1 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)")
    assert tagged(out, "b").startswith("OK [MODIFIED 1]")


def test_conditional_store_without_change_keeps_modseq(five: Client, store, account, snapshot) -> None:
    """§3.1.11: setting a flag that is set does not move the modseq; the FETCH still comes."""
    five.ok("a SELECT INBOX (CONDSTORE)")
    five.ok("b STORE 1 +FLAGS (\\Seen)")
    ms = modseq_of(store, account, 1)
    snapshot()
    out = five.ok(f"c STORE 1 (UNCHANGEDSINCE {ms}) +FLAGS.SILENT (\\Seen)")
    assert fetches(out) == {1: f"UID 1 MODSEQ ({ms})"} and tagged(out, "c") == "OK STORE completed"
    out = five.ok(f"d STORE 1 (UNCHANGEDSINCE {ms}) -FLAGS (\\Draft)")
    assert fetches(out) == {1: f"UID 1 FLAGS (\\Seen \\Recent) MODSEQ ({ms})"}


def test_conditional_store_on_expunged_example_11(five: Client, store, account) -> None:
    other = Client(store)
    other.login()
    five.ok("a SELECT INBOX (CONDSTORE)")
    other.ok("o SELECT INBOX")
    base = hms(store, account)
    other.ok("o1 STORE 2 +FLAGS (\\Answered)")
    other.ok("o2 STORE 4:5 +FLAGS (\\Deleted)")
    other.ok("o3 EXPUNGE")
    out = five.cmd(f"b STORE 1:5 (UNCHANGEDSINCE {base}) +FLAGS (\\Seen)")
    assert "EXPUNGE" not in out  # not during STORE (RFC 9051 §7.5.1)
    assert tagged(out, "b").startswith("NO [MODIFIED 2]")
    assert set(fetches(out)) == {1, 2, 3}
    out = five.ok("c NOOP")
    assert lines(out)[:2] == ["* 5 EXPUNGE", "* 4 EXPUNGE"]


def test_plain_store_on_expunged_succeeds(five: Client, store, account) -> None:
    other = Client(store)
    other.login()
    five.ok("a SELECT INBOX")
    other.ok("o SELECT INBOX")
    other.ok("o2 STORE 4 +FLAGS (\\Deleted)")
    other.ok("o3 EXPUNGE")
    out = five.ok("b STORE 3:5 +FLAGS (\\Seen)")  # RFC 2180 §4.2.1
    assert set(fetches(out)) == {3, 5}


def test_fetch_changedsince_example_12(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX")
    base = hms(store, account)
    five.ok("b STORE 2,4 +FLAGS ($NoJunk)")
    out = five.ok(f"c UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base})")
    ms = hms(store, account)
    assert lines(out) == [
        f"* OK [HIGHESTMODSEQ {ms}] Highest",  # the first CONDSTORE enabling command
        f"* 2 FETCH (UID 2 FLAGS ($NoJunk \\Recent) MODSEQ ({ms}))",
        f"* 4 FETCH (UID 4 FLAGS ($NoJunk \\Recent) MODSEQ ({ms}))",
        "c OK FETCH completed",
    ]
    # the set still restricts, by sequence number for FETCH
    assert set(fetches(five.ok(f"d FETCH 3:5 (FLAGS) (CHANGEDSINCE {base})"))) == {4}
    assert five.ok(f"e FETCH 1:* (FLAGS) (CHANGEDSINCE {ms})") == "e OK FETCH completed\r\n"


def test_search_modseq_examples_15_16(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX")
    base = hms(store, account)
    five.ok("b STORE 2 +FLAGS (\\Draft)")
    five.ok("c STORE 5 +FLAGS (\\Draft)")
    out = five.ok(f'd SEARCH MODSEQ "/flags/\\\\draft" all {base + 1}')
    assert f"* SEARCH 2 5 (MODSEQ {hms(store, account)})" in out
    assert "* OK [HIGHESTMODSEQ" in out  # SEARCH MODSEQ enabled CONDSTORE
    out = five.ok("e SEARCH OR NOT MODSEQ 1 LARGER 50000")
    assert lines(out)[0] == "* SEARCH"  # nothing found: no (MODSEQ)
    assert "MODSEQ" not in five.ok("f UID SEARCH 1:3")  # no MODSEQ key: plain answer


def test_esearch_modseq_example_19_and_rfc4731(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX (CONDSTORE)")
    five.ok("b STORE 3 +FLAGS (\\Seen)")
    m3 = modseq_of(store, account, 3)
    five.ok("c STORE 1 +FLAGS (\\Seen)")
    m1 = modseq_of(store, account, 1)
    five.ok("d STORE 2 +FLAGS (\\Seen)")
    m2 = modseq_of(store, account, 2)
    assert f'* ESEARCH (TAG "e") ALL 1:3 MODSEQ {m2}' in five.ok(f"e SEARCH RETURN (ALL) MODSEQ {m3}")
    assert f'* ESEARCH (TAG "f") MIN 1 MODSEQ {m1}' in five.ok(f"f SEARCH RETURN (MIN) MODSEQ {m3}")
    assert f'* ESEARCH (TAG "g") MAX 3 MODSEQ {m3}' in five.ok(f"g SEARCH RETURN (MAX) MODSEQ {m3}")
    assert f'* ESEARCH (TAG "h") MIN 1 MAX 3 MODSEQ {m1}' in five.ok(f"h SEARCH RETURN (MIN MAX) MODSEQ {m3}")
    assert f'* ESEARCH (TAG "i") MIN 1 COUNT 3 MODSEQ {m2}' in five.ok(f"i SEARCH RETURN (MIN COUNT) MODSEQ {m3}")
    assert lines(five.ok(f"j SEARCH RETURN (ALL) MODSEQ {m2 + 1}"))[0] == '* ESEARCH (TAG "j")'
    # SORT carries it too (§3.1.9)
    assert f"(MODSEQ {m2})" in five.ok(f"k SORT (ARRIVAL) UTF-8 MODSEQ {m3}")


def test_status_highestmodseq_example_17(five: Client, store, account) -> None:
    out = five.ok("a STATUS INBOX (MESSAGES UIDNEXT HIGHESTMODSEQ)")
    assert f"* STATUS \"INBOX\" (MESSAGES 5 UIDNEXT 6 HIGHESTMODSEQ {hms(store, account)})" in out
    five.ok("b CREATE empty")
    out = five.ok('c LIST "" "empty" RETURN (STATUS (HIGHESTMODSEQ MAILBOXID))')
    rec = inbox(store, account, "empty")
    assert f"HIGHESTMODSEQ {rec['hms']} MAILBOXID ({ids.format_id(ids.MAILBOX, rec['id'])})" in out
    assert rec["hms"] > 0  # never 0 (CONTRACT §4)


def test_implicit_seen_fetch_carries_uid_and_modseq(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX (CONDSTORE)")
    out = five.ok("b FETCH 2 (BODY[TEXT])")
    assert f"FLAGS (\\Seen \\Recent) MODSEQ ({modseq_of(store, account, 2)})" in out
    assert "UID 2" in out


# -- QRESYNC (RFC 7162 §3.2) ---------------------------------------------------------------


def qresync_client(store: Any) -> Client:
    c = Client(store)
    c.login()
    c.ok("q0 ENABLE QRESYNC")
    return c


def test_qresync_needs_enable(five: Client, store, account, snapshot) -> None:
    five.ok("a SELECT INBOX")
    snapshot()
    uv = inbox(store, account)["uidvalidity"]
    out = five.cmd(f"b SELECT INBOX (QRESYNC ({uv} 1))")
    assert tagged(out, "b") == "BAD QRESYNC parameter needs ENABLE QRESYNC first"
    assert five.session.selected is not None  # BAD changes nothing: INBOX stays selected
    out = five.cmd("c UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert tagged(out, "c") == "BAD VANISHED needs ENABLE QRESYNC"
    # VANISHED only on UID FETCH and only with CHANGEDSINCE (§3.2.6)
    assert tagged(five.cmd("d FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)"), "d").startswith("BAD")
    assert tagged(five.cmd("e UID FETCH 1:* (FLAGS) (VANISHED)"), "e").startswith("BAD")
    assert tagged(five.cmd("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)"), "f").startswith("BAD")


def test_qresync_select_example(store, account) -> None:
    for i in range(8):
        deliver(store, account, raw=message(subject=f"m{i}"))
    b = Client(store)
    b.login()
    b.ok("b0 SELECT INBOX")
    uv = inbox(store, account)["uidvalidity"]
    base = hms(store, account)
    b.ok("b1 STORE 2,4,6 +FLAGS (\\Deleted)")
    b.ok("b2 EXPUNGE")
    b.ok("b3 UID STORE 7 +FLAGS (\\Seen \\Answered)")
    b.ok("b4 UID STORE 3 +FLAGS ($MDNSent)")
    a = qresync_client(store)
    a.ok("a0 SELECT Drafts")
    out = a.ok(f"a1 SELECT INBOX (QRESYNC ({uv} {base} 1:5,7:8))")
    ls = lines(out)
    assert ls[0] == "* OK [CLOSED] Previous mailbox closed"
    assert f"* OK [HIGHESTMODSEQ {hms(store, account)}] Highest" in ls
    i = ls.index("* VANISHED (EARLIER) 2,4")  # 6 is not in the known set
    assert ls[i + 1:] == [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $MDNSent)",  # a new keyword, spelt as set (the RFC 7162 §3.2.5.1 example)
        f"* 2 FETCH (UID 3 FLAGS ($MDNSent) MODSEQ ({modseq_of(store, account, 3)}))",
        f"* 4 FETCH (UID 7 FLAGS (\\Answered \\Seen) MODSEQ ({modseq_of(store, account, 7)}))",
        "a1 OK [READ-WRITE] SELECT completed",
    ]
    # without known UIDs: 1:UIDNEXT-1
    out = a.ok(f"a2 EXAMINE INBOX (QRESYNC ({uv} {base}))")
    assert "* VANISHED (EARLIER) 2,4,6" in out and len(fetches(out)) == 2


def test_qresync_uidvalidity_mismatch(five: Client, store, account) -> None:
    c = qresync_client(store)
    out = c.ok("a SELECT INBOX (QRESYNC (67890007 1 1:5))")
    assert "VANISHED" not in out and not fetches(out)
    assert "[HIGHESTMODSEQ" in out


def test_qresync_vanished_instead_of_expunge(five: Client, store, account) -> None:
    c = qresync_client(store)
    c.ok("a SELECT INBOX")
    c.ok("b STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("c EXPUNGE")
    assert lines(out) == ["* VANISHED 2:3,5",
                          f"c OK [HIGHESTMODSEQ {hms(store, account)}] EXPUNGE completed"]
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    other.ok("o1 STORE 1 +FLAGS (\\Deleted)")
    other.ok("o2 EXPUNGE")
    out = c.ok("d NOOP")
    assert lines(out) == ["* VANISHED 1", f"* OK [HIGHESTMODSEQ {hms(store, account)}] Highest",
                          "d OK NOOP completed"]
    c.ok("e STORE 1 +FLAGS (\\Deleted)")
    assert c.ok("f CLOSE") == "f OK CLOSE completed\r\n"  # §3.2.8: nothing untagged


def test_uid_fetch_vanished_reports_expunged_last_message(five: Client, store, account) -> None:
    c = qresync_client(store)
    c.ok("a SELECT INBOX")
    base = hms(store, account)
    c.ok("b STORE 4:5 +FLAGS (\\Deleted)")
    c.ok("c EXPUNGE")
    c.ok("d STORE 1 +FLAGS (\\Flagged)")
    out = c.ok(f"e UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    ls = lines(out)
    assert ls[0] == "* VANISHED (EARLIER) 4:5"  # before any FETCH; 5 was the last UID
    assert ls[1].startswith("* 1 FETCH (UID 1 FLAGS (\\Flagged")
    out = c.ok(f"f UID FETCH 2:3 (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    assert out == "f OK FETCH completed\r\n"


def test_uid_fetch_vanished_excludes_messages_still_in_the_session(five: Client, store, account) -> None:
    """An expunge the session has not reported yet goes out as plain VANISHED, not EARLIER."""
    c = qresync_client(store)
    c.ok("a SELECT INBOX")
    base = hms(store, account)
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    other.ok("o1 STORE 2 +FLAGS (\\Deleted)")
    other.ok("o2 EXPUNGE")
    out = c.ok(f"b UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    assert "VANISHED (EARLIER)" not in out and "* VANISHED 2" in out


def test_qresync_fallback_after_compaction(store, account) -> None:
    for i in range(10):
        deliver(store, account, raw=message(subject=f"m{i}"))
    b = Client(store)
    b.login()
    b.ok("b0 SELECT INBOX")
    uv = inbox(store, account)["uidvalidity"]
    base = hms(store, account)
    b.ok("b1 UID STORE 2,5,6,9 +FLAGS.SILENT (\\Deleted)")
    b.ok("b2 UID EXPUNGE 2,5")
    mid = hms(store, account)
    b.ok("b3 UID EXPUNGE 6,9")
    with store.read(account) as v:
        m = v.mailbox_by_path(["INBOX"])
    with store.write(account) as tx:
        assert tx.compact_expunges(m, mid) == 2
    with store.read(account) as v:
        assert v.expunge_floor(m) == mid and v.expunged_since(m, 0) == [6, 9]
    assert hms(store, account) == mid + 1  # compaction takes no modseq
    a = qresync_client(store)
    # after the floor: exact, from the log
    assert "* VANISHED (EARLIER) 6,9\r\n" in a.ok(f"a1 SELECT INBOX (QRESYNC ({uv} {mid}))")
    # before it: every known UID that no longer exists (§3.2.6 note)
    out = a.ok(f"a2 SELECT INBOX (QRESYNC ({uv} {base} 1:12))")
    assert "* VANISHED (EARLIER) 2,5:6,9\r\n" in out  # 11, 12 never existed (UIDNEXT 11)
    # sequence match data: seq 3 is UID 4 (matches), seq 6 is not UID 8: report from 5 up
    out = a.ok(f"a3 SELECT INBOX (QRESYNC ({uv} {base} 1:10 (3,6 4,8)))")
    assert "* VANISHED (EARLIER) 5:6,9\r\n" in out
    out = a.ok(f"a4 UID FETCH 3:* (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    assert lines(out)[0] == "* VANISHED (EARLIER) 5:6,9"


def test_closed_on_reselect_without_qresync(five: Client) -> None:
    five.ok("a SELECT INBOX")
    assert lines(five.ok("b EXAMINE Drafts"))[0] == "* OK [CLOSED] Previous mailbox closed"
    assert "CLOSED" not in five.ok("c UNSELECT")
    out = five.cmd("d SELECT INBOX")
    assert "CLOSED" not in out


# -- OBJECTID (RFC 8474) -----------------------------------------------------------------


def test_objectid_mailboxid(five: Client, store, account) -> None:
    out = five.ok("a CREATE foo")
    foo = inbox(store, account, "foo")["id"]
    fid = ids.format_id(ids.MAILBOX, foo)
    assert tagged(out, "a") == f"OK [MAILBOXID ({fid})] CREATE completed"
    assert f"* OK [MAILBOXID ({fid})]" in five.ok("b SELECT foo")
    five.ok("c RENAME foo renamed")
    assert f'* STATUS "renamed" (MAILBOXID ({fid}))' in five.ok("d STATUS renamed (MAILBOXID)")
    out = five.ok('e LIST "" "*" RETURN (STATUS (MAILBOXID))')
    assert f'* STATUS "renamed" (MAILBOXID ({fid}))' in out
    assert tagged(five.cmd("f CREATE renamed"), "f").startswith("NO [ALREADYEXISTS]")


def test_objectid_emailid_threadid(store, account) -> None:
    deliver(store, account, raw=message(subject="Message A", msgid="<a@x>"))
    deliver(store, account, raw=message(subject="Re: Message A", msgid="<b@x>",
                                        extra="References: <a@x>\r\n"))
    deliver(store, account, raw=message(subject="Message C", msgid="<c@x>"))
    c = Client(store)
    c.login()
    c.ok("a SELECT INBOX")
    with store.read(account) as v:
        m = v.mailbox_by_path(["INBOX"])
        es = [v.email_at(m, u) for u in (1, 2, 3)]
        ts = [int(v.email(e)["thread"]) for e in es]
    eid = [ids.format_id(ids.EMAIL, e) for e in es]
    tid = [ids.format_id(ids.THREAD, t) for t in ts]
    assert ts[0] == ts[1] != ts[2]
    out = c.ok("b FETCH 1:* (EMAILID THREADID)")
    assert fetches(out) == {n + 1: f"EMAILID ({eid[n]}) THREADID ({tid[n]})" for n in range(3)}
    assert "* SEARCH 1\r\n" in c.ok(f"c SEARCH EMAILID {eid[0]}")
    assert "* SEARCH 1 2\r\n" in c.ok(f"d SEARCH THREADID {tid[0]}")
    assert "* SEARCH\r\n" in c.ok("e SEARCH EMAILID Mnothere")
    c.ok("f CREATE foo")
    c.ok("g MOVE 2 foo")
    c.ok("h SELECT foo")
    # MOVE and COPY keep the Email, so its EMAILID (RFC 8474 §5.1)
    assert fetches(c.ok("i FETCH 1 (EMAILID THREADID)")) == {1: f"EMAILID ({eid[1]}) THREADID ({tid[1]})"}


def test_move_onto_the_selected_mailbox(five: Client, store, account) -> None:
    """RFC 6851: MOVE into the mailbox itself expunges the message and gives it a new UID
    (imaptest ``move``); with QRESYNC the expunge is a VANISHED."""
    five.ok("q ENABLE QRESYNC")
    five.ok("a SELECT INBOX")
    uv = inbox(store, account)["uidvalidity"]
    out = five.ok("b MOVE 1 INBOX")
    assert lines(out)[:3] == [f"* OK [COPYUID {uv} 1 6] Moved", "* VANISHED 1", "* 5 EXISTS"]
    assert sorted(u for u in range(1, 8) if fetches(five.ok(f"c UID FETCH {u} UID"))) == [2, 3, 4, 5, 6]


def test_selected_session_learns_expunges_after_compaction_past_it():
    """A session selected before an expunge whose tombstone was compacted away must still
    drop the message from its map (RFC 9051 §7.5.1), not keep a ghost forever."""
    import shutil
    import tempfile

    from dualmail.store.store import open_store
    from imap_util import PASSWORD, USER, Client, deliver, message

    tmp = tempfile.mkdtemp()
    store = open_store(tmp + "/data", sync=False)
    try:
        account = store.create_account(USER, PASSWORD)
        for i in range(3):
            deliver(store, account, raw=message(subject=f"m{i}"))
        a, b = Client(store), Client(store)
        for c in (a, b):
            c.login()
            c.ok("s SELECT INBOX")
        a.ok("m MOVE 1 Trash")
        with store.write(account) as tx:
            m = tx.mailbox_by_path(["INBOX"])
            assert tx.compact_expunges(m, tx.mailbox(m)["hms"]) == 1
        out = b.ok("n NOOP")
        assert "* 1 EXPUNGE" in out and b.session.selected.exists == 2
        b.ok("c COPY 1 Trash")
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


# -- group commit (STORE, COPY, MOVE, EXPUNGE share a transaction with other writers) ----


def _shared_with(store: Any, account: int, other_uid: int, monkeypatch) -> None:
    """Make the next grouped write share its transaction (and modseq) with another
    session's STORE +FLAGS (\\Flagged) on ``other_uid``, as a group commit can."""
    from dualmail.mail.ops import apply_flags

    real = store.write_grouped_alone

    def shared(a: int, fn: Any) -> Any:
        def both(tx: Any) -> Any:
            m = tx.mailbox_by_path(["INBOX"])
            apply_flags(tx, m, tx.email_at(m, other_uid), "+", ["\\Flagged"])
            return fn(tx)
        result, _alone = real(a, both)
        return result, False
    monkeypatch.setattr(store, "write_grouped_alone", shared)


def test_a_store_sharing_its_modseq_still_reports_the_other_change(five: Client, store, account,
                                                                    monkeypatch) -> None:
    """The session's STORE and another writer's took one modseq in one group commit: the
    session cannot tell them apart by modseq, so it must not take the whole step as its
    own: the other change is reported (RFC 7162 §3.1.4, RFC 9051 §7.5.2)."""
    five.ok("a SELECT INBOX (CONDSTORE)")
    _shared_with(store, account, 3, monkeypatch)
    out = five.ok("b STORE 1 +FLAGS (\\Seen)")
    monkeypatch.undo()
    # the other change comes with the STORE's own (untagged responses before the tagged OK)
    assert "\\Seen" in fetches(out)[1]
    assert fetches(out)[3] == f"UID 3 FLAGS (\\Flagged \\Recent) MODSEQ ({hms(store, account)})", out
    assert fetches(five.ok("c NOOP")) == {}


def test_a_store_alone_in_its_group_is_not_reported_again(five: Client, store, account) -> None:
    five.ok("a SELECT INBOX (CONDSTORE)")
    five.ok("b STORE 1 +FLAGS (\\Seen)")
    assert fetches(five.ok("c NOOP")) == {}
