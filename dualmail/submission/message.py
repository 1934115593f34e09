"""Sans-I/O work on messages going out: the envelope of RFC 8621 §7, address
checks, removing Bcc, the ``Received:`` trace field (RFC 5321 §4.4, RFC 8621
§9), the bytes handed to SMTP, SMTP reply strings (RFC 8621 §7
``smtpReply``) and what one relay attempt means for each recipient.

No I/O: imports nothing from twisted, lmdb or the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from ..mime.addresses import jmap_addresses, parse_address_list
from ..mime.headers import split_header_block, unfold

# -- addresses -------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf'(?:{_ATOM}(?:\.{_ATOM})*|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")\Z')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[\x21-\x5a\x5e-\x7e]+\])\Z")


def valid_mailbox(address: Any) -> bool:
    """An RFC 5321 §4.1.2 ``Mailbox`` we can hand to the smarthost: local-part
    @ domain, ASCII (dualmail's SMTP client does not speak SMTPUTF8), at most
    64 + 255 octets (RFC 5321 §4.5.3.1)."""
    if not isinstance(address, str) or len(address) > 320:
        return False
    local, at, domain = address.rpartition("@")
    return bool(at) and 0 < len(local) <= 64 and 0 < len(domain) <= 255 \
        and bool(_LOCAL.match(local)) and bool(_DOMAIN.match(domain))


def same_address(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


class InvalidEmailError(ValueError):
    """The message cannot be sent as it is: ``properties`` names the Email
    properties at fault (RFC 8621 §7.5 ``invalidEmail``)."""

    def __init__(self, message: str, properties: Sequence[str]):
        super().__init__(message)
        self.properties = list(properties)


def _fields(raw: bytes) -> list[tuple[str, bytes]]:
    block = split_header_block(raw, 0, len(raw))
    return [(f.name.lower(), f.value) for f in block.fields]


def header_addresses(raw: bytes, name: str) -> list[list[str]]:
    """The addresses of every ``name`` header field, one list per field."""
    out = []
    for key, value in _fields(raw):
        if key == name:
            out.append([a["email"] or "" for a in jmap_addresses(parse_address_list(unfold(value)))])
    return out


def header_values(raw: bytes, name: str) -> list[str]:
    return [unfold(value).strip() for key, value in _fields(raw) if key == name]


def check_originator(raw: bytes) -> list[str]:
    """RFC 8621 §7 / RFC 5322 §3.6.2: exactly one From field with at least one
    address, at most one Sender field with one address, and a Sender when From
    names several. Returns the From addresses; else ``InvalidEmailError``."""
    froms = header_addresses(raw, "from")
    senders = header_addresses(raw, "sender")
    if len(froms) != 1 or not froms[0] or not all(froms[0]):
        raise InvalidEmailError("the message needs exactly one From field with an address", ["from"])
    if len(senders) > 1 or (senders and len(senders[0]) != 1) or (senders and not senders[0][0]):
        raise InvalidEmailError("the message may have one Sender field with one address", ["sender"])
    if len(froms[0]) > 1 and not senders:
        raise InvalidEmailError("a From field with several addresses needs a Sender field", ["sender"])
    return froms[0]


def derive_envelope(raw: bytes, identity_email: str) -> dict[str, Any]:
    """The envelope of RFC 8621 §7 for ``envelope: null``: mailFrom is the
    Sender (else the From) address, or the Identity's email when that address
    is not the Identity's; rcptTo the de-duplicated To, Cc and Bcc addresses."""
    froms = check_originator(raw)
    senders = header_addresses(raw, "sender")
    mail_from = senders[0][0] if senders else froms[0]
    if not same_address(mail_from, identity_email):
        mail_from = identity_email
    seen: set[str] = set()
    rcpts = []
    for name in ("to", "cc", "bcc"):
        for field_addresses in header_addresses(raw, name):
            for address in field_addresses:
                key = address.lower()
                if key not in seen:
                    seen.add(key)
                    rcpts.append({"email": address, "parameters": None})
    return {"mailFrom": {"email": mail_from, "parameters": None}, "rcptTo": rcpts}


# -- the bytes for the smarthost --------------------------------------------------------


def strip_header(raw: bytes, name: str) -> bytes:
    """``raw`` without any ``name`` field of its top-level header (continuation
    lines included); the body and every other byte unchanged."""
    block = split_header_block(raw, 0, len(raw))
    drop = [(f.start, f.end) for f in block.fields if f.name.lower() == name.lower()]
    if not drop:
        return raw
    out, pos = [], 0
    for start, end in drop:
        out.append(raw[pos:start])
        pos = end
    out.append(raw[pos:])
    return b"".join(out)


def _fold(text: str, limit: int = 78) -> str:
    """Fold a structured field at spaces so lines stay within ``limit``
    (RFC 5322 §2.1.1); continuation lines start with a tab."""
    words = text.split(" ")
    lines, line = [], words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) > limit:
            lines.append(line)
            line = "\t" + word
        else:
            line += " " + word
    lines.append(line)
    return "\r\n".join(lines)


def _comment(text: str) -> str:
    """Text safe inside an RFC 5322 comment."""
    return "".join(c if 0x21 <= ord(c) <= 0x7E and c not in "()\\" else "_" for c in text) or "unknown"


def received_field(*, login: str, client: str, hostname: str, submission_id: str, now: float) -> bytes:
    """The trace field prepended to what goes to the smarthost (RFC 5321
    §4.4; RFC 8621 §9 asks relays for what the server knows of the sender):
    who authenticated, from which address, through which server."""
    client_part = f"[{_comment(client)}]" if client else "unknown"
    text = (f"Received: from {client_part} (authenticated user {_comment(login)}) "
            f"by {_comment(hostname)} (dualmail) with JMAP id {submission_id}; {formatdate(now, usegmt=True)}")
    return _fold(text).encode("ascii") + b"\r\n"


def outgoing_bytes(raw: bytes, trace: bytes | None) -> bytes:
    """What the smarthost receives: the trace field, then the message without
    Bcc (RFC 8621 §7.5 "MUST remove any Bcc header field")."""
    return (trace or b"") + strip_header(raw, "bcc")


def smtp_data(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), ending
    with CRLF; the terminating ``.`` line is the client's."""
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


# -- replies and outcomes -------------------------------------------------------------


def smtp_reply(code: int, text: bytes | str) -> str:
    """RFC 8621 §7 ``smtpReply``: one string from a (multi-line) reply: lines
    joined by spaces, the prefix each later line shares with the first (the
    enhanced status code) removed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    first = lines[0].split(" ") if lines else [""]
    out = list(first)
    for line in lines[1:]:
        words = line.split(" ")
        n = 0
        while n < len(words) - 1 and n < len(first) and words[n] == first[n]:
            n += 1
        out.extend(words[n:])
    body = " ".join(w for w in out if w)
    return f"{code:03d} {body}".rstrip() if code >= 0 else body


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one relay attempt got. ``transaction``: the smarthost answered the
    mail transaction (``rcpt``: address -> (code, text) of its RCPT, ``code``/
    ``text``: the reply that ended it -- DATA's, or MAIL's when that failed);
    otherwise the connection, TLS or AUTH failed before (``text`` says how)."""

    transaction: bool
    code: int
    text: str
    rcpt: Mapping[str, tuple[int, str]]


def apply_attempt(entry: dict[str, Any], attempt: Attempt, now: int, *, lifetime: int,
                  backoff: int) -> bool:
    """Update the queued recipients of ``entry`` from ``attempt``; return True
    when nothing is left to try (every recipient sent or failed). 2xx: sent;
    5xx: failed; anything else: tried again after ``backoff`` seconds, until
    ``lifetime`` seconds after submission."""
    for r in entry["rcpt"]:
        if r["state"] != "queued":
            continue
        if not attempt.transaction:
            r["reply"] = attempt.text
            continue
        rcode, rtext = attempt.rcpt.get(r["email"].lower(), (attempt.code, attempt.text))
        if 200 <= rcode < 300:
            if 200 <= attempt.code < 300:
                r["state"], r["reply"] = "sent", rtext
            else:  # accepted, then the message as a whole refused at DATA
                r["reply"] = attempt.text
                if 500 <= attempt.code < 600:
                    r["state"] = "failed"
        else:
            r["reply"] = rtext
            if 500 <= rcode < 600:
                r["state"] = "failed"
    entry["tries"] = int(entry.get("tries", 0)) + 1
    entry["last"] = now
    pending = [r for r in entry["rcpt"] if r["state"] == "queued"]
    if pending and now - int(entry["created"]) >= lifetime:
        for r in pending:
            r["state"] = "failed"
            r["reply"] = (r.get("reply") or "451 4.4.1 not delivered") + \
                f" (given up after {lifetime // 3600} hours in the queue)"
        pending = []
    entry["next"] = now + backoff if pending else None
    return not pending


_DELIVERED = {"queued": "queued", "sent": "unknown", "failed": "no"}


def delivery_status(rcpts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """RFC 8621 §7 ``deliveryStatus`` of queue recipients. A message the
    smarthost accepted is ``unknown``: relaying is not final delivery."""
    return {
        r["email"]: {"smtpReply": r.get("reply") or "", "delivered": _DELIVERED[r["state"]], "displayed": "unknown"}
        for r in rcpts
    }


# -- the bounce (RFC 3464 delivery status notification) ---------------------------------

_STATUS = re.compile(r"\d{3} ([245]\.\d{1,3}\.\d{1,3})\b")


def bounce_message(*, to: str, hostname: str, failed: Sequence[Mapping[str, Any]], original: bytes, now: float,
                   boundary: str) -> bytes:
    """The DSN (RFC 3464, multipart/report of RFC 6522) dualmail puts into the
    sender's INBOX when recipients of a submission failed for good: a text
    part, ``message/delivery-status`` with one block per recipient, and the
    original's header (``text/rfc822-headers``)."""
    header_end = original.find(b"\r\n\r\n")
    headers = original[: header_end + 2] if header_end >= 0 else original
    lines = [f"This is the mail system at {hostname}.", "",
             "Your message could not be delivered to these recipients:", ""]
    blocks = [f"Reporting-MTA: dns; {_comment(hostname)}", f"Arrival-Date: {formatdate(now, usegmt=True)}"]
    for r in failed:
        reply = " ".join(str(r.get("reply") or "").split()) or "550 5.0.0 failed"
        lines.append(f"<{r['email']}>: {reply}")
        m = _STATUS.match(reply)
        status = m.group(1) if m else ("4.4.7" if "given up" in reply else "5.0.0")
        if status.startswith("4"):
            status = "5" + status[1:]  # given up: permanent now (RFC 3463 §3.1)
        blocks.append("")
        blocks += [f"Final-Recipient: rfc822; {r['email']}", "Action: failed", f"Status: {status}",
                   f"Diagnostic-Code: smtp; {reply}"]
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{_comment(hostname)}>",
        f"To: {to}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {formatdate(now, usegmt=True)}",
        f"Message-ID: <{boundary}@{_comment(hostname)}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    text = "\r\n".join(head) + "\r\n\r\n" + "\r\n".join([
        f"--{boundary}", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
        *lines, "",
        f"--{boundary}", "Content-Type: message/delivery-status", "", *blocks, "",
        f"--{boundary}", "Content-Type: text/rfc822-headers", "", ""])
    return text.encode("utf-8") + headers + f"\r\n--{boundary}--\r\n".encode("ascii")
