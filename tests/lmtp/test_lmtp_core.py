"""The sans-I/O LMTP core (RFC 2033 over RFC 5321): every script is fed whole, split at
each CRLF and byte by byte, and must give the same replies (RFC 2920 pipelining)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from dualmail.lmtp.core import Address, Limits, PathError, Reply, parse_path

from lmtp_util import FakeHandler, run_all_ways, session

LHLO_REPLY = (b"250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
              b"250-SIZE 52428800\r\n250 LIMITS RCPTMAX=100\r\n")


def lines(*replies: str) -> bytes:
    return b"".join(r.encode() + b"\r\n" for r in replies)


def script(*commands: str | bytes) -> bytes:
    return b"".join((c.encode() if isinstance(c, str) else c) + b"\r\n" for c in commands)


def test_greeting_and_lhlo_advertise_the_extensions():
    s = session()
    assert s.greeting() == b"220 mx.test LMTP dualmail ready\r\n"
    out, _ = run_all_ways(script("LHLO client.test"))
    assert out == LHLO_REPLY


def test_rfc2033_example_one_reply_per_accepted_rcpt_in_order():
    # RFC 2033 §4.2: after the final ".", one reply per successful RCPT, in RCPT order;
    # a refused RCPT gets none.
    made: list[FakeHandler] = []

    def make():
        h = FakeHandler()
        made.append(h)
        return session(h)

    out, _ = run_all_ways(script("LHLO foo.edu", "MAIL FROM:<chris@bar.com>", "RCPT TO:<pat@foo.edu>",
                                 "RCPT TO:<unknown@foo.edu>", "RCPT TO:<green@foo.edu>",
                                 "RCPT TO:<pat@foo.edu>", "DATA", "Subject: x", "", "Blah blah", ".",
                                 "QUIT"), make)
    assert out == LHLO_REPLY + lines(
        "250 2.1.0 Sender ok", "250 2.1.5 Recipient ok", "550 5.1.1 no such user", "250 2.1.5 Recipient ok",
        "250 2.1.5 Recipient ok", "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 <pat@foo.edu> delivered", "250 2.0.0 <green@foo.edu> delivered",
        "250 2.0.0 <pat@foo.edu> delivered", "221 2.0.0 mx.test closing connection")
    for h in made:
        [(env, data)] = h.delivered
        assert data == b"Subject: x\r\n\r\nBlah blah\r\n"
        assert str(env.sender) == "chris@bar.com" and env.lhlo == "foo.edu"
        assert [str(r.address) for r in env.recipients] == ["pat@foo.edu", "green@foo.edu", "pat@foo.edu"]


def test_closed_after_quit_and_later_bytes_are_ignored():
    s = session()
    assert s.receive(b"QUIT\r\nNOOP\r\n") == b"221 2.0.0 mx.test closing connection\r\n"
    assert s.closed and s.receive(b"NOOP\r\n") == b""


def test_dot_unstuffing_and_a_message_after_another():
    # RFC 5321 §4.5.2: a leading "." is removed; "..": "."; the next transaction follows.
    h_list: list[FakeHandler] = []

    def make():
        h_list.append(FakeHandler())
        return session(h_list[-1])

    out, _ = run_all_ways(script("LHLO c", "MAIL FROM:<>", "RCPT TO:<a@b.c>", "DATA", ".hidden", "..",
                                 "a.b", " .", ".", "MAIL FROM:<x@y.z>", "RCPT TO:<a@b.c>", "DATA", "two", "."),
                          make)
    assert out.count(b"250 2.0.0 <a@b.c> delivered") == 2
    for h in h_list:
        assert [d for _e, d in h.delivered] == [b"hidden\r\n.\r\na.b\r\n .\r\n", b"two\r\n"]
        assert h.delivered[0][0].sender.null


@pytest.mark.parametrize("commands, replies", [
    # RFC 5321 §4.2.4 / §4.3.2 and RFC 2033 §4.1-4.2
    (["MAIL FROM:<a@b.c>"], ["503 5.5.1 Say LHLO first"]),
    (["HELO c"], ["500 5.5.1 This is LMTP: say LHLO (RFC 2033 section 4.1)"]),
    (["EHLO c"], ["500 5.5.1 This is LMTP: say LHLO (RFC 2033 section 4.1)"]),
    (["LHLO"], ["501 5.5.4 LHLO needs one domain or address literal"]),
    (["FOO bar"], ["500 5.5.1 Command unrecognized"]),
    ([""], ["500 5.5.2 Syntax error"]),
    (["12 x"], ["500 5.5.2 Syntax error"]),
    (["LHLO c", "RCPT TO:<a@b.c>"], ["503 5.5.1 Need MAIL before RCPT"]),
    (["LHLO c", "DATA"], ["503 5.5.1 Need MAIL before DATA"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "DATA"], ["250 2.1.0 Sender ok", "503 5.5.1 No valid recipients"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<unknown@b.c>", "DATA"],
     ["250 2.1.0 Sender ok", "550 5.1.1 no such user", "503 5.5.1 No valid recipients"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "MAIL FROM:<a@b.c>"], ["250 2.1.0 Sender ok", "503 5.5.1 Sender already given"]),
    (["LHLO c", "MAIL <a@b.c>"], ["501 5.5.4 Syntax: MAIL FROM:<address>"]),
    (["LHLO c", "MAIL FROM:a@b.c"], ["501 5.1.7 Bad sender address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c"], ["501 5.1.7 Bad sender address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c.>"], ["501 5.1.7 Bad sender address syntax"]),
    (["LHLO c", "MAIL FROM:<a@@b.c>"], ["501 5.1.7 Bad sender address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c>x"], ["501 5.1.7 Bad sender address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c> FOO=1"], ["555 5.5.4 MAIL FROM parameter FOO not recognized"]),
    (["LHLO c", "MAIL FROM:<a@b.c> SMTPUTF8"], ["555 5.5.4 MAIL FROM parameter SMTPUTF8 not recognized"]),
    (["LHLO c", "MAIL FROM:<a@b.c> BODY=BINARYMIME"], ["555 5.5.4 BODY must be 7BIT or 8BITMIME"]),
    (["LHLO c", "MAIL FROM:<a@b.c> SIZE=abc"], ["501 5.5.4 Bad SIZE value"]),
    (["LHLO c", "MAIL FROM:<a@b.c> SIZE=1 SIZE=1"], ["501 5.5.4 Duplicate SIZE parameter"]),
    (["LHLO c", "MAIL FROM:<a@b.c> SIZE=52428801"], ["552 5.3.4 Message size exceeds fixed maximum message size"]),
    (["LHLO c", "MAIL FROM:<a@b.c> SIZE=52428800 BODY=8bitmime"], ["250 2.1.0 Sender ok"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT <x@b.c>"], ["250 2.1.0 Sender ok", "501 5.5.4 Syntax: RCPT TO:<address>"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<>"], ["250 2.1.0 Sender ok", "501 5.1.3 Bad recipient address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c> NOTIFY=NEVER"],
     ["250 2.1.0 Sender ok", "555 5.5.4 RCPT TO parameter NOTIFY not recognized"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<" + "x" * 65 + "@b.c>"],
     ["250 2.1.0 Sender ok", "501 5.1.3 Bad recipient address syntax"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "DATA x"],
     ["250 2.1.0 Sender ok", "250 2.1.5 Recipient ok", "501 5.5.4 DATA takes no argument"]),
    (["RSET x", "QUIT x"], ["501 5.5.4 RSET takes no argument", "501 5.5.4 QUIT takes no argument"]),
    (["NOOP", "NOOP anything", "noop"], ["250 2.0.0 Ok"] * 3),
    (["VRFY", "VRFY alice", "EXPN list"],
     ["501 5.5.4 VRFY needs an argument", "252 2.5.0 Cannot VRFY user; try RCPT", "502 5.5.1 EXPN not implemented"]),
    (["HELP"], ["214 2.0.0 LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RSET", "RCPT TO:<x@b.c>"],
     ["250 2.1.0 Sender ok", "250 2.0.0 Ok", "503 5.5.1 Need MAIL before RCPT"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "LHLO c", "RCPT TO:<x@b.c>"],  # LHLO resets, as EHLO does
     ["250 2.1.0 Sender ok"] + LHLO_REPLY.decode().splitlines() + ["503 5.5.1 Need MAIL before RCPT"]),
    (["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<caf\u00e9@b.c>"],
     ["250 2.1.0 Sender ok", "501 5.5.4 Non-ASCII argument (SMTPUTF8 is not offered)"]),
    ([b"NOOP\x00", b"NOOP\nNOOP", b"NOOP\rx"], ["500 5.5.2 Syntax error: bare CR, LF or NUL in command"] * 3),
])
def test_bad_commands_get_the_precise_reply(commands, replies):
    out, sessions = run_all_ways(script(*commands))
    expected = lines(*replies)
    if commands[0] in ("LHLO c",):
        expected = LHLO_REPLY + expected
    assert out == expected
    for s in sessions:
        assert s.handler.delivered == []


def test_command_case_and_lenient_space_after_colon():
    out, _ = run_all_ways(script("lhlo c", "mail from: <a@b.c>", "rcpt to: <@relay.x,@r2.y:x@B.C>"))
    assert out == LHLO_REPLY + lines("250 2.1.0 Sender ok", "250 2.1.5 Recipient ok")


def test_command_line_longer_than_512_is_refused_and_the_session_goes_on():
    # RFC 5321 §4.5.3.1.4: 512 octets with CRLF; the rest of the long line is discarded.
    ok = "NOOP " + "x" * (512 - 7)
    too_long = ok + "x"
    out, sessions = run_all_ways(script(ok, too_long, "NOOP " + "y" * 5000, "NOOP"))
    assert out == lines("250 2.0.0 Ok", "500 5.5.2 Line too long", "500 5.5.2 Line too long", "250 2.0.0 Ok")
    assert all(len(s._buf) < 600 for s in sessions)


def test_rcpt_limit_is_enforced_with_452_and_earlier_rcpts_are_kept():
    # RFC 5321 §4.5.3.1.8 / §4.5.3.1.10: reject additional addresses, keep the accepted.
    rcpts = [f"RCPT TO:<u{i}@b.c>" for i in range(1000)]
    out, sessions = run_all_ways(script("LHLO c", "MAIL FROM:<a@b.c>", *rcpts, "DATA", "hi", "."))
    assert out.count(b"250 2.1.5 Recipient ok") == 100
    assert out.count(b"452 4.5.3 Too many recipients") == 900
    assert out.count(b"250 2.0.0 <") == 100
    for s in sessions:
        [(env, _d)] = s.handler.delivered
        assert [str(r.address) for r in env.recipients] == [f"u{i}@b.c" for i in range(100)]


def test_size_limit_while_reading_data_delivers_nothing():
    body = ("x" * 70 + "\r\n") * 20  # 1440 octets
    out, sessions = run_all_ways(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "RCPT TO:<y@b.c>",
                                        "DATA") + body.encode() + script(".", "NOOP"), max_message_size=1000)
    assert out.endswith(lines("552 5.3.4 Message size exceeds fixed maximum message size",
                              "552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 Ok"))
    for s in sessions:
        assert s.handler.delivered == [] and len(s._data) == 0


def test_size_limit_counts_octets_after_unstuffing():
    body = ".\u0078\r\n" * 10  # 40 octets on the wire, 30 delivered
    out, sessions = run_all_ways(script("LHLO c", "MAIL FROM:<a@b.c> SIZE=30", "RCPT TO:<x@b.c>", "DATA")
                                 + body.encode() + script("."), max_message_size=30)
    assert out.endswith(b"250 2.0.0 <x@b.c> delivered\r\n")
    assert [d for _e, d in sessions[0].handler.delivered] == [b"x\r\n" * 10]


@pytest.mark.parametrize("data, problem", [
    (b"a\nb\r\n", "554 5.6.0 Message contains a bare CR or LF (RFC 5321 section 2.3.8)"),
    (b"a\rb\r\n", "554 5.6.0 Message contains a bare CR or LF (RFC 5321 section 2.3.8)"),
    (b"a\x00b\r\n", "554 5.6.0 Message contains NUL octets (8BITMIME data has none)"),
    (b"x" * 999 + b"\r\n", "554 5.6.0 Message has a line over 1000 octets (RFC 5321 section 4.5.3.1.6)"),
    (b"", "554 5.6.0 Empty message"),
])
def test_bad_message_data_is_refused_for_every_recipient(data, problem):
    out, sessions = run_all_ways(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "RCPT TO:<y@b.c>",
                                        "DATA") + data + script(".", "NOOP"))
    assert out.endswith(lines(problem, problem, "250 2.0.0 Ok"))
    assert all(s.handler.delivered == [] for s in sessions)


def test_998_octet_lines_are_fine():
    data = b"x" * 998 + b"\r\n"
    out, sessions = run_all_ways(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "DATA") + data
                                 + script("."))
    assert out.endswith(b"250 2.0.0 <x@b.c> delivered\r\n")


def test_bare_lf_dot_lf_does_not_end_the_data():
    # RFC 5321 §4.1.1.4: <LF>.<LF> MUST NOT be taken as the end of the data (smuggling).
    s = session()
    out = s.receive(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "DATA") + b"a\n.\nMAIL FROM:<e@v.il>\r\n")
    assert out.endswith(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
    assert s.receive(b"\r\n.\r\n") == lines("554 5.6.0 Message contains a bare CR or LF (RFC 5321 section 2.3.8)")
    assert s.handler.delivered == []


def test_connection_lost_mid_data_delivers_nothing():
    s = session()
    s.receive(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "DATA", "Subject: half", "", "body"))
    s.connection_lost()
    assert s.receive(b".\r\n") == b""
    assert s.handler.delivered == [] and s.closed


def test_timeout_reply():
    s = session()
    assert s.timeout_reply() == b"421 4.4.2 mx.test idle too long, closing\r\n" and s.closed


def test_a_handler_giving_the_wrong_number_of_replies_does_not_desynchronize():
    class Bad(FakeHandler):
        def deliver(self, envelope, data):
            return []

    s = session(Bad())
    out = s.receive(script("LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>", "RCPT TO:<y@b.c>", "DATA", "x", "."))
    assert out.endswith(lines("451 4.3.0 Local error in processing") * 2)


def test_multiline_reply_format():
    assert Reply(250, "", "a\nb").to_bytes() == b"250-a\r\n250 b\r\n"
    assert Reply(550, "5.1.1", "x").to_bytes() == b"550 5.1.1 x\r\n"


# -- paths (RFC 5321 §4.1.2) -------------------------------------------------------------------


@pytest.mark.parametrize("text, local, domain, dot", [
    ("<a@b.c>", "a", "b.c", True),
    ("<A.B+tag@Example.ORG>", "A.B+tag", "Example.ORG", True),
    ('<"a"@b.c>', "a", "b.c", True),
    ('<"a b"@b.c>', "a b", "b.c", False),
    ('<"a\\"b"@b.c>', 'a"b', "b.c", False),
    ('<"bob@example.org"@b.c>', "bob@example.org", "b.c", False),
    ("<@r1.x,@r2.y:a@b.c>", "a", "b.c", True),
    ("<a@[127.0.0.1]>", "a", "[127.0.0.1]", True),
])
def test_parse_path(text, local, domain, dot):
    addr, params = parse_path(text, Limits(), allow_null=False)
    assert (addr.local, addr.domain, addr.dot_string, params) == (local, domain, dot, [])


@pytest.mark.parametrize("text", ["a@b.c", "<a@b.c", "<a.@b.c>", "<.a@b.c>", "<a@b..c>", "<a@-b.c>",
                                  "<a@b.c-.d>", "<@b.c>", "<a@>", "<a b@c.d>", '<"a@b.c>', "<>",
                                  "<a@b.c>x", "<a@b@c.d>", "<" + "a" * 250 + "@b.c>"])
def test_parse_path_rejects(text):
    with pytest.raises(PathError):
        parse_path(text, Limits(), allow_null=False)


def test_params():
    addr, params = parse_path("<> SIZE=10  BODY=8BITMIME", Limits(), allow_null=True)
    assert addr == Address("", "") and params == [("SIZE", "10"), ("BODY", "8BITMIME")]
    with pytest.raises(ValueError):
        parse_path("<a@b.c> =x", Limits(), allow_null=True)


@given(st.text(alphabet="abcAB.+-\"\\@<>:,[] 0", max_size=40))
@settings(max_examples=400, deadline=None)
def test_path_parser_raises_only_its_errors(text):
    try:
        addr, _ = parse_path(text, Limits(), allow_null=True)
    except ValueError:
        return
    if not addr.null:
        assert "@" in str(addr)


@given(st.lists(st.sampled_from([b"LHLO c\r\n", b"MAIL FROM:<a@b.c>\r\n", b"RCPT TO:<x@b.c>\r\n",
                                 b"RCPT TO:<unknown@b.c>\r\n", b"DATA\r\n", b".\r\n", b"RSET\r\n",
                                 b"hello\r\n", b"\r\n", b"\n", b"\x00", b"..\r\n", b"x" * 600,
                                 b"NOOP\r\n", b"MAIL FROM:<> SIZE=5\r\n"]), max_size=30),
       st.integers(1, 7))
@settings(max_examples=300, deadline=None)
def test_any_input_gives_one_reply_per_complete_command_and_never_crashes(chunks, split):
    script_bytes = b"".join(chunks)
    a, b = session(max_message_size=20), session(max_message_size=20)
    whole = a.receive(script_bytes)
    pieces = b"".join(b.receive(script_bytes[i:i + split]) for i in range(0, len(script_bytes), split))
    assert whole == pieces
    for reply in whole.split(b"\r\n")[:-1]:
        assert reply[:3].isdigit() and reply[3:4] in (b" ", b"-")
    for env, data in a.handler.delivered:
        assert env.recipients and len(data) <= 20


# -- every (state, verb) pair (STYLE: the h2-style state table) ----------------------------

STATES = {  # how to reach each state from a fresh session
    "fresh": [],
    "greeted": ["LHLO c"],
    "mail": ["LHLO c", "MAIL FROM:<a@b.c>"],
    "rcpt": ["LHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<x@b.c>"],
}
VERBS = {
    "LHLO c": {"fresh": "250", "greeted": "250", "mail": "250", "rcpt": "250"},
    "MAIL FROM:<s@b.c>": {"fresh": "503 5.5.1", "greeted": "250 2.1.0", "mail": "503 5.5.1", "rcpt": "503 5.5.1"},
    "RCPT TO:<y@b.c>": {"fresh": "503 5.5.1", "greeted": "503 5.5.1", "mail": "250 2.1.5", "rcpt": "250 2.1.5"},
    "DATA": {"fresh": "503 5.5.1", "greeted": "503 5.5.1", "mail": "503 5.5.1", "rcpt": "354"},
    "RSET": {s: "250 2.0.0" for s in STATES},
    "NOOP": {s: "250 2.0.0" for s in STATES},
    "VRFY x": {s: "252 2.5.0" for s in STATES},
    "EXPN x": {s: "502 5.5.1" for s in STATES},
    "HELP": {s: "214 2.0.0" for s in STATES},
    "HELO c": {s: "500 5.5.1" for s in STATES},
    "EHLO c": {s: "500 5.5.1" for s in STATES},
    "STARTTLS": {s: "500 5.5.1" for s in STATES},  # not offered: unknown (RFC 5321 §4.2.4)
    "BDAT 10 LAST": {s: "500 5.5.1" for s in STATES},
    "QUIT": {s: "221 2.0.0" for s in STATES},
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_in_every_state(state, verb):
    s = session()
    s.receive(script(*STATES[state]))
    out = s.receive(script(verb)).decode()
    final = [line for line in out.split("\r\n") if line[3:4] == " "]
    assert len(final) == 1 and final[0].startswith(VERBS[verb][state] + " "), (state, verb, out)
    assert s.handler.delivered == []
    # RSET and a new LHLO clear the transaction; QUIT ends the session
    after = s.receive(b"RCPT TO:<z@b.c>\r\n").decode()
    if verb in ("RSET", "LHLO c") or state in ("fresh", "greeted") and verb != "MAIL FROM:<s@b.c>":
        assert after == ("" if verb == "QUIT" else "503 5.5.1 Need MAIL before RCPT\r\n")
    elif verb == "QUIT":
        assert after == "" and s.closed
