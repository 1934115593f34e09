"""Sans-I/O units of ``dualmail.submission.message``: the RFC 8621 §7
envelope, Bcc removal, DATA encoding (RFC 5321 §4.5.2), smtpReply rendering
(RFC 8621 §7), and what one relay attempt means for each recipient."""

from __future__ import annotations

from hypothesis import given, strategies as st

from dualmail.submission.config import SubmissionConfig
from dualmail.submission.message import (
    Attempt,
    InvalidEmailError,
    apply_attempt,
    delivery_status,
    derive_envelope,
    received_field,
    smtp_data,
    smtp_reply,
    strip_header,
    valid_mailbox,
)


def test_smtp_reply_example_of_rfc_8621():
    """RFC 8621 §7 (deliveryStatus smtpReply): the multi-line example."""
    text = b"5.7.1 Our system has detected that this message is\n5.7.1 likely spam."
    assert smtp_reply(550, text) == "550 5.7.1 Our system has detected that this message is likely spam."
    assert smtp_reply(250, b"2.0.0 Ok: queued as 4711") == "250 2.0.0 Ok: queued as 4711"
    assert smtp_reply(-1, "connection refused") == "connection refused"


def test_envelope_derivation_rfc_8621_section_7():
    raw = (b"From: Alice <alice@example.org>\r\nSender: secretary@example.org\r\n"
           b"To: a@x.example, B <b@x.example>\r\nCc: A@X.example, group: c@x.example;\r\n"
           b"Bcc: d@x.example\r\n\r\nbody\r\n")
    # the Sender is not the Identity's address: the Identity's email is used
    env = derive_envelope(raw, "alice@example.org")
    assert env["mailFrom"] == {"email": "alice@example.org", "parameters": None}
    assert [r["email"] for r in env["rcptTo"]] == ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]
    assert derive_envelope(raw, "Secretary@example.org")["mailFrom"]["email"] == "secretary@example.org"
    try:
        derive_envelope(b"Sender: a@x\r\nSender: b@x\r\nFrom: a@x\r\n\r\n", "a@x")
    except InvalidEmailError as e:
        assert e.properties == ["sender"]
    else:
        raise AssertionError("two Sender fields must be refused")


def test_strip_bcc_keeps_every_other_byte():
    raw = (b"From: a@x\r\nBcc: secret@x,\r\n  other@x\r\nTo: b@x\r\nbcc: again@x\r\n\r\n"
           b"Bcc: in the body stays\r\n")
    assert strip_header(raw, "bcc") == b"From: a@x\r\nTo: b@x\r\n\r\nBcc: in the body stays\r\n"
    assert strip_header(b"From: a@x\n\nbody", "bcc") == b"From: a@x\n\nbody"


def _undot(data: bytes) -> bytes:
    """What an RFC 5321 §4.5.2 receiver restores."""
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@given(st.lists(st.sampled_from([b".", b"..", b"x", b"\r\n", b"\n", b"\r", b" .", b"\x00", b"\xff"]), max_size=40))
def test_smtp_data_dot_stuffing_round_trips(parts):
    message = b"".join(parts)
    data = smtp_data(message)
    assert data.endswith(b"\r\n")
    assert b"\r\n.\r\n" not in b"\r\n" + data  # the message can never end the DATA early
    expected = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert _undot(data) == expected


def test_valid_mailbox():
    for good in ("a@example.org", "first.last+tag@sub.example.org", '"odd name"@example.org', "x@[192.0.2.1]"):
        assert valid_mailbox(good), good
    for bad in ("", "a", "a@", "@b", "a b@c.d", "a@b..c", "a@-b.c", "ü@example.org", "a@b\r\nRCPT TO:<x@y>",
                "x" * 65 + "@example.org", None, 5):
        assert not valid_mailbox(bad), bad


def test_received_field_is_folded_and_names_the_user():
    field = received_field(login="alice@example.org", client="2001:db8::1", hostname="mx.example.org",
                           submission_id="S1", now=0)
    lines = field.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 78 for line in lines)
    assert b"from [2001:db8::1] (authenticated user alice@example.org)" in field
    # nothing from the user can break out of the comment or the field
    field = received_field(login="a)\r\nX: y", client="", hostname="h", submission_id="S1", now=0)
    assert b"\r\nX:" not in field and b"a_" in field


def entry(*rcpts):
    return {"created": 1000, "tries": 0, "rcpt": [{"email": r, "state": "queued", "reply": ""} for r in rcpts]}


def test_apply_attempt_per_recipient():
    e = entry("ok@x", "no@x", "later@x")
    attempt = Attempt(True, 250, "250 2.0.0 Ok", {"ok@x": (250, "250 ok"), "no@x": (550, "550 no"),
                                                  "later@x": (451, "451 later")})
    assert apply_attempt(e, attempt, 1010, lifetime=100, backoff=60) is False
    assert [(r["state"], r["reply"]) for r in e["rcpt"]] == [("sent", "250 ok"), ("failed", "550 no"),
                                                            ("queued", "451 later")]
    assert e["next"] == 1070 and e["tries"] == 1
    assert delivery_status(e["rcpt"])["no@x"] == {"smtpReply": "550 no", "delivered": "no", "displayed": "unknown"}
    # the connection fails: the reply changes, nothing is final ...
    assert apply_attempt(e, Attempt(False, -1, "451 4.4.1 down", {}), 1070, lifetime=100, backoff=60) is False
    assert e["rcpt"][2] == {"email": "later@x", "state": "queued", "reply": "451 4.4.1 down"}
    # ... until the lifetime is over
    assert apply_attempt(e, Attempt(False, -1, "451 4.4.1 down", {}), 1100, lifetime=100, backoff=60) is True
    assert e["rcpt"][2]["state"] == "failed" and "given up" in e["rcpt"][2]["reply"]


def test_apply_attempt_data_refused():
    e = entry("a@x", "b@x")
    rcpt = {"a@x": (250, "250 ok"), "b@x": (250, "250 ok")}
    assert apply_attempt(e, Attempt(True, 554, "554 5.6.0 spam", rcpt), 1000, lifetime=100, backoff=60) is True
    assert {r["state"] for r in e["rcpt"]} == {"failed"} and e["rcpt"][0]["reply"] == "554 5.6.0 spam"
    e = entry("a@x")
    assert apply_attempt(e, Attempt(True, 452, "452 full", {"a@x": (250, "ok")}), 1000, lifetime=100,
                         backoff=60) is False


def test_backoff_doubles_up_to_the_maximum():
    c = SubmissionConfig()
    assert [c.backoff(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_bounce_message_is_an_rfc_3464_report():
    import email
    import email.policy

    from dualmail.mime.parse import summarize
    from dualmail.submission.message import bounce_message

    original = b"From: alice@example.org\r\nTo: x@y.example\r\nSubject: hi\r\n\r\nsecret body\r\n"
    raw = bounce_message(to="alice@example.org", hostname="mx.test", now=0, boundary="b0", original=original,
                         failed=[{"email": "x@y.example", "reply": "550 5.1.1 no such user"},
                                 {"email": "z@y.example", "reply": "451 4.4.1 down (given up after 120 hours)"}])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert b"Status: 5.1.1" in raw and b"Status: 5.4.1" in raw  # a 4xx given up is permanent now
    assert b"secret body" not in raw  # headers only
    assert summarize(raw)["subject"] == "Undelivered Mail Returned to Sender"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
