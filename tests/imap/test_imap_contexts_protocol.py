"""ESORT, CONTEXT=SEARCH/SORT, PARTIAL and SORT=DISPLAY over the sans-I/O session.

RFC 5267 (ESORT §3, contexts §4: UPDATE §4.3, ADDTO §4.3.3, REMOVEFROM §4.3.4,
CANCELUPDATE §4.3.5, NOUPDATE §4.3.1), RFC 9394 (PARTIAL §3.1, SAVE §3.2), RFC 5957.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings, strategies as st

from dualmail.imap import contexts
from dualmail.imap.ops.search import _partial
from dualmail.imap.wire.parser import CommandParser, ParseError
from dualmail.imap.wire import commands as c
from imap_util import Client, deliver, lines, message


def _fill(store: Any, account: int, n: int = 5) -> None:
    for i in range(1, n + 1):
        deliver(store, account, raw=message(f"s{i}", body=f"body {i}\r\n"))


def _selected(store: Any, account: int, n: int = 5) -> Client:
    _fill(store, account, n)
    cl = Client(store)
    cl.login()
    cl.ok("s SELECT INBOX")
    return cl


def _esearch(out: str, tag: str) -> list[str]:
    return [ln for ln in lines(out) if ln.startswith(f'* ESEARCH (TAG "{tag}")')]


def test_capabilities_advertised(client: Client) -> None:
    caps = client.ok("c CAPABILITY")
    for cap in ("ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT", "PARTIAL", "SORT=DISPLAY"):
        assert f" {cap}" in caps


# -- ESORT (RFC 5267 §3) -----------------------------------------------------------------


def test_esort_min_max_all_count_in_sort_order(store: Any, account: int) -> None:
    cl = _selected(store, account)
    out = cl.ok("e1 SORT RETURN (MIN MAX COUNT ALL) (REVERSE SUBJECT) US-ASCII ALL")
    # §3.1: MIN/MAX are the first/last in sort order; §3.2: ALL keeps that order and never
    # uses a descending range (5,4,3,2,1 -- not 5:1)
    assert _esearch(out, "e1") == ['* ESEARCH (TAG "e1") MIN 5 MAX 1 ALL 5,4,3,2,1 COUNT 5']
    out = cl.ok("e2 UID SORT RETURN () (SUBJECT) US-ASCII ALL")
    assert _esearch(out, "e2") == ['* ESEARCH (TAG "e2") UID ALL 1:5']


def test_esort_ordered_set_keeps_ascending_runs() -> None:
    from dualmail.imap.wire.responses import ordered_set

    assert ordered_set([5, 3, 4, 2, 1]) == b"5,3:4,2,1"
    assert ordered_set([1, 2, 3, 7, 8, 4]) == b"1:3,7:8,4"


# -- PARTIAL (RFC 9394 §3.1) -------------------------------------------------------------


def test_partial_search_ranges(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cases = {
        "1:1": "(1:1 1)", "4:2": "(2:4 2:4)", "1:6": "(1:6 1:5)", "6:9": "(6:9 NIL)",
        "-1:-2": "(-1:-2 4:5)", "-3:-1": "(-1:-3 3:5)", "-5:-9": "(-5:-9 1)",
        "-6:-9": "(-6:-9 NIL)",
    }
    for i, (rng, want) in enumerate(cases.items()):
        out = cl.ok(f"p{i} SEARCH RETURN (PARTIAL {rng}) ALL")
        assert _esearch(out, f"p{i}") == [f'* ESEARCH (TAG "p{i}") PARTIAL {want}'], rng


def test_partial_sort_is_in_sort_order(store: Any, account: int) -> None:
    cl = _selected(store, account)
    out = cl.ok("p SORT RETURN (PARTIAL 2:4) (REVERSE SUBJECT) US-ASCII ALL")
    assert _esearch(out, "p") == ['* ESEARCH (TAG "p") PARTIAL (2:4 4,3,2)']
    out = cl.ok("q UID SORT RETURN (PARTIAL -1:-2 COUNT) (SUBJECT) US-ASCII ALL")
    assert _esearch(out, "q") == ['* ESEARCH (TAG "q") UID PARTIAL (-1:-2 4:5) COUNT 5']


def test_partial_with_save_sets_dollar_to_the_page(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("p SEARCH RETURN (SAVE PARTIAL 2:3) ALL")  # §3.2 table 1: $ = the PARTIAL
    out = cl.ok("q UID SEARCH RETURN () UID $")
    assert _esearch(out, "q") == ['* ESEARCH (TAG "q") UID ALL 2:3']
    cl.ok("r SEARCH RETURN (SAVE PARTIAL 1:1 COUNT) ALL")  # with COUNT: all found
    out = cl.ok("t UID SEARCH RETURN () UID $")
    assert _esearch(out, "t") == ['* ESEARCH (TAG "t") UID ALL 1:5']


def test_bad_partial_is_bad_and_changes_nothing(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("k SEARCH RETURN (SAVE) 2")
    for i, bad in enumerate(["PARTIAL 1", "PARTIAL 1:*", "PARTIAL *:1", "PARTIAL 0:3",
                             "PARTIAL -1:3", "PARTIAL 1:2 ALL", "PARTIAL 1:4294967296",
                             "UPDATE UPDATE", "PARTIAL 1:2 SAVE UPDATE FOO"]):
        out = cl.cmd(f"b{i} SEARCH RETURN ({bad}) ALL")
        assert lines(out) == [ln for ln in lines(out) if ln.startswith(f"b{i} BAD")], (bad, out)
    assert cl.session.selected is not None and cl.session.selected.contexts == {}
    out = cl.ok("q UID SEARCH RETURN () UID $")  # $ untouched
    assert _esearch(out, "q") == ['* ESEARCH (TAG "q") UID ALL 2']


@settings(max_examples=200, deadline=None)
@given(a=st.integers(1, 2**32 - 1), b=st.integers(1, 2**32 - 1), neg=st.booleans())
def test_partial_range_parses_normalised(a: int, b: int, neg: bool) -> None:
    m = "-" if neg else ""
    p = CommandParser()
    p.feed(f"t SEARCH RETURN (PARTIAL {m}{a}:{m}{b}) ALL\r\n".encode())
    ev = p.next_event()
    assert isinstance(ev, c.Search)
    lo, hi = min(a, b), max(a, b)
    assert ev.partial == ((-lo, -hi) if neg else (lo, hi))


@given(st.text(alphabet="0123456789:-*, ", max_size=12))
def test_partial_range_garbage_never_crashes(junk: str) -> None:
    p = CommandParser()
    p.feed(f"t SEARCH RETURN (PARTIAL {junk}) ALL\r\n".encode())
    ev = p.next_event()
    assert isinstance(ev, (c.Search, ParseError))
    if isinstance(ev, c.Search):
        assert ev.partial is not None and 0 < abs(ev.partial[0]) <= abs(ev.partial[1])


@given(st.lists(st.integers(1, 50), unique=True, max_size=30), st.integers(1, 40),
       st.integers(1, 40), st.booleans())
def test_partial_matches_position_model(items: list[int], a: int, b: int, neg: bool) -> None:
    lo, hi = min(a, b), max(a, b)
    n = len(items)
    if neg:  # -1 is the last result (RFC 9394 §3.1)
        want = [x for i, x in enumerate(items) if lo <= n - i <= hi]
        assert _partial(items, (-lo, -hi)) == want
    else:
        assert _partial(items, (lo, hi)) == [x for i, x in enumerate(items) if lo <= i + 1 <= hi]


# -- UPDATE contexts (RFC 5267 §4.3) -----------------------------------------------------


def test_update_addto_removefrom_on_own_store(store: Any, account: int) -> None:
    cl = _selected(store, account)
    out = cl.ok("u1 SEARCH RETURN (UPDATE) SEEN")
    assert _esearch(out, "u1") == ['* ESEARCH (TAG "u1")']
    out = cl.ok("s1 STORE 1,2,4 +FLAGS (\\Seen)")
    assert _esearch(out, "u1") == ['* ESEARCH (TAG "u1") ADDTO (0 1:2,4)']
    out = cl.ok("s2 STORE 1 -FLAGS (\\Seen)")
    assert _esearch(out, "u1") == ['* ESEARCH (TAG "u1") REMOVEFROM (0 1)']
    out = cl.ok("s3 STORE 3 -FLAGS (\\Seen)")  # no change to the result: nothing sent
    assert _esearch(out, "u1") == []


def test_update_removefrom_precedes_expunge(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("a STORE 2,4 +FLAGS (\\Seen)")
    cl.ok("u2 SEARCH RETURN (UPDATE ALL) SEEN")
    out = cl.ok("b STORE 3:5 +FLAGS.SILENT (\\Deleted)")
    assert _esearch(out, "u2") == []
    out = cl.ok("x EXPUNGE")
    ls = lines(out)
    # §4.3.4: the REMOVEFROM comes first, with the sequence number still valid
    assert ls[0] == '* ESEARCH (TAG "u2") REMOVEFROM (0 4)'
    assert ls[1:4] == ["* 5 EXPUNGE", "* 4 EXPUNGE", "* 3 EXPUNGE"]


def test_update_from_another_session_and_delivery_in_idle(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("u3 UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
    other = Client(store)
    other.login()
    other.ok("o SELECT INBOX")
    other.ok("o2 UID STORE 2 +FLAGS (\\Flagged)")
    pushed = cl.cmd("i IDLE") + cl.push()  # told when IDLE starts, or by the push
    assert _esearch(pushed, "u3") == ['* ESEARCH (TAG "u3") UID ADDTO (0 2)']
    uid = deliver(store, account, raw=message("late"), flags=("\\Flagged",))
    pushed = lines(cl.push())
    # §4.3.3: an ADDTO for an arrival comes after its EXISTS
    assert pushed.index("* 6 EXISTS") < pushed.index(f'* ESEARCH (TAG "u3") UID ADDTO (0 {uid})')
    cl.cmd("DONE")


def test_update_from_jmap_write(store: Any, account: int) -> None:
    from dualmail.mail import ops

    cl = _selected(store, account)
    cl.ok("u4 SEARCH RETURN (UPDATE) KEYWORD $label")
    with store.read(account) as v:
        inbox = v.mailbox_by_path(["INBOX"])
        e = v.email_at(inbox, 3)
    with store.write(account) as tx:  # what Email/set keywords does (one transaction)
        tx.set_keywords(e, ["$label"])
    out = cl.ok("n NOOP")
    assert _esearch(out, "u4") == ['* ESEARCH (TAG "u4") ADDTO (0 3)']
    assert ops is not None


def test_sort_context_positions(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("f STORE 1,5 +FLAGS (\\Flagged)")
    out = cl.ok("u5 SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) US-ASCII FLAGGED")
    assert _esearch(out, "u5") == ['* ESEARCH (TAG "u5") ALL 5,1']
    out = cl.ok("g STORE 2:3 +FLAGS (\\Flagged)")  # order 5 3 2 1: 3,2 go in at position 2
    assert _esearch(out, "u5") == ['* ESEARCH (TAG "u5") ADDTO (2 3,2)']
    out = cl.ok("h STORE 3 -FLAGS (\\Flagged)")
    assert _esearch(out, "u5") == ['* ESEARCH (TAG "u5") REMOVEFROM (2 3)']


def test_cancelupdate_and_tag_reuse(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("u6 SEARCH RETURN (UPDATE) SEEN")
    out = cl.cmd("u6 SORT RETURN (UPDATE) (ARRIVAL) US-ASCII FLAGGED")  # §4.3
    assert lines(out) == ["u6 BAD Tag reuse: an updating context already has this tag"]
    out = cl.cmd("c1 CANCELUPDATE \"u6\" \"nope\"")
    assert lines(out) == ["c1 BAD No updating context with tag nope"]
    assert "u6" in cl.session.selected.contexts  # nothing cancelled
    cl.ok("c2 CANCELUPDATE \"u6\"")
    out = cl.ok("s STORE 1 +FLAGS (\\Seen)")
    assert _esearch(out, "u6") == []


def test_contexts_end_with_the_selection(store: Any, account: int) -> None:
    cl = _selected(store, account)
    cl.ok("u7 SEARCH RETURN (UPDATE) SEEN")
    cl.ok("x SELECT INBOX")
    out = cl.ok("s STORE 1 +FLAGS (\\Seen)")
    assert _esearch(out, "u7") == []


def test_noupdate_beyond_the_limit(store: Any, account: int) -> None:
    cl = _selected(store, account)
    for i in range(contexts.MAX_CONTEXTS):
        cl.ok(f"v{i} SEARCH RETURN (UPDATE) SEEN")
    out = cl.ok("over SEARCH RETURN (UPDATE COUNT) SEEN")  # §4.3.1: other options honoured
    assert '* NO [NOUPDATE "over"] Too many updating contexts' in lines(out)
    assert _esearch(out, "over") == ['* ESEARCH (TAG "over") COUNT 0']
    assert "over" not in cl.session.selected.contexts


# -- SORT=DISPLAY (RFC 5957) -------------------------------------------------------------


def test_sort_display_uses_names_and_group_names(store: Any, account: int) -> None:
    froms = ["foo bar <a@b.c>", "b@c.d", "z: aa@aa.org;", "=?iso-8859-1?q?foo_aar?= <e@f.g>"]
    for f in froms:
        deliver(store, account, raw=f"From: {f}\r\nSubject: x\r\n\r\nx\r\n".encode())
    cl = Client(store)
    cl.login()
    cl.ok("s SELECT INBOX")
    out = cl.ok("d SORT (DISPLAYFROM) UTF-8 ALL")
    assert "* SORT 2 4 1 3" in lines(out)
    out = cl.ok("e SORT (REVERSE DISPLAYFROM) UTF-8 ALL")
    assert "* SORT 3 1 4 2" in lines(out)
    assert re.search(r"^e OK", out, re.M)


# -- UID FETCH (PARTIAL) (RFC 9394 §3.3) -------------------------------------------------


def test_uid_fetch_partial(store: Any, account: int) -> None:
    cl = _selected(store, account)
    out = cl.ok("f1 UID FETCH 2:* (FLAGS) (PARTIAL -1:-2)")
    assert [ln.split(" (")[0] for ln in lines(out)[:-1]] == ["* 4 FETCH", "* 5 FETCH"]
    out = cl.ok("f2 UID FETCH 1:* (FLAGS) (PARTIAL 2:3)")
    assert [ln.split(" (")[0] for ln in lines(out)[:-1]] == ["* 2 FETCH", "* 3 FETCH"]
    out = cl.ok("f3 UID FETCH 1:* (FLAGS) (PARTIAL 9:10)")
    assert lines(out) == ["f3 OK FETCH completed"]
    cl.ok("s UID STORE 1,5 +FLAGS.SILENT (\\Flagged)")
    with store.read(account) as v:
        ms = int(v.mailbox(v.mailbox_by_path(["INBOX"]))["hms"]) - 1
    # the last three first (3, 4, 5), then only those changed since: 5
    out = cl.ok(f"f4 UID FETCH 1:* (FLAGS) (PARTIAL -1:-3 CHANGEDSINCE {ms})")
    assert [ln.split(" (")[0] for ln in lines(out) if "FETCH (" in ln] == ["* 5 FETCH"]
    for i, bad in enumerate(["FETCH 1:* (FLAGS) (PARTIAL 1:2)", "UID FETCH 1:* FLAGS (PARTIAL 1)",
                             "UID FETCH 1:* FLAGS (PARTIAL 1:2 PARTIAL 1:2)"]):
        out = cl.cmd(f"b{i} {bad}")
        assert lines(out)[0].startswith(f"b{i} BAD") and len(lines(out)) == 1, out


# -- I18NLEVEL=1 (RFC 5255 §4.4: i;unicode-casemap, RFC 5051) ----------------------------


def test_i18nlevel1_search_is_unicode_casemap(store: Any, account: int) -> None:
    for subj in ("=?utf-8?q?Stra=C3=9Fe?=", "=?utf-8?q?CAF=C3=89?=", "plain"):
        deliver(store, account, raw=f"From: a@b.c\r\nSubject: {subj}\r\n\r\nx\r\n".encode())
    cl = Client(store)
    cl.login()
    assert " I18NLEVEL=1" in cl.ok("c CAPABILITY")
    cl.ok("s SELECT INBOX")
    assert "* SEARCH 1" in lines(cl.ok("a SEARCH CHARSET UTF-8 SUBJECT STRASSE"))
    out = cl.send(b"b SEARCH CHARSET UTF-8 SUBJECT {2+}\r\n\xc3\xa9\r\n")
    assert "* SEARCH 2" in lines(out)  # é matches É (and the decomposed forms)


_OPTS = ["MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT", "PARTIAL 1:10", "PARTIAL -1:-5"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_OPTS), max_size=6), st.booleans())
def test_return_options_parse(opts: list[str], sort: bool) -> None:
    """RFC 4731 §3.1 / RFC 5267 §4 / RFC 9394 §3.1: any order; no option twice; PARTIAL
    and ALL never together -- else BAD."""
    names = [o.split()[0] for o in opts]
    ok = len(set(names)) == len(names) and not {"ALL", "PARTIAL"} <= set(names)
    line = (f"t SORT RETURN ({' '.join(opts)}) (DATE) UTF-8 ALL" if sort
            else f"t UID SEARCH RETURN ({' '.join(opts)}) ALL")
    p = CommandParser()
    p.feed(line.encode() + b"\r\n")
    ev = p.next_event()
    if not ok:
        assert isinstance(ev, ParseError) and ev.tag == "t"
        return
    assert isinstance(ev, c.Sort if sort else c.Search), ev
    assert ev.return_opts == tuple(names)
    part = next((o for o in opts if o.startswith("PARTIAL")), None)
    assert ev.partial == (None if part is None else ((1, 10) if "1:10" in part else (-1, -5)))
