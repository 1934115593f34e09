"""IMAP URLs (RFC 5092) as CATENATE (RFC 4469) and URLAUTH (RFC 4467) use them.

One job: text -> ``ImapUrl`` (or ``UrlError``), sans-I/O; imports only ``wire``.  Accepted:

* absolute ``imap://[enc-user[;AUTH=...]@]host[:port]/...`` and, for CATENATE, the
  absolute-path form ``/...`` that names the current server and user (RFC 4469 §3);
* one message or message part: ``enc-mailbox [;UIDVALIDITY=n] /;UID=n [/;SECTION=s]
  [/;PARTIAL=o[.n]]``, then the URLAUTH tail ``[;EXPIRE=date-time] ;URLAUTH=access
  [:mechanism:token]`` (RFC 5092 §11, RFC 4467 §9).

Everything else (mailbox lists, searches, relative references, junk) is a ``UrlError``: a
server answers [BADURL] (CATENATE) or NIL (URLFETCH) for it.  Keys are case-insensitive;
mailbox, section and user are %-decoded UTF-8.  ``rump`` is the URL up to and including
the access identifier: what a URLAUTH token signs (RFC 4467 §3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from dualmail.imap.wire import commands as c
from dualmail.imap.wire.parser import parse_section

MAX_URL = 8192

# RFC 5092 §11: achar / bchar, with %-escapes checked separately
_UCHAR = r"A-Za-z0-9\-._~!$'()*+,:@&="
_BCHAR_RE = re.compile(rf"(?:[{_UCHAR}/]|%[0-9A-Fa-f]{{2}})*")
_ACHAR_RE = re.compile(rf"(?:[{_UCHAR}]|%[0-9A-Fa-f]{{2}})+")
_HOST_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,=]|%[0-9A-Fa-f]{2})+|\[[0-9A-Fa-f:.]+\]")
_PARAM_RE = re.compile(r"(/?);([A-Za-z]+)=")
_NZ_RE = re.compile(r"[1-9][0-9]{0,9}")
_NUM_RE = re.compile(r"[0-9]{1,10}")
_MECH_RE = re.compile(r"[A-Za-z0-9\-.]+")
_TOKEN_RE = re.compile(r"[0-9A-Fa-f]{32,}")
_ACCESS_RE = re.compile(r"(submit\+|user\+)(.+)|authuser|anonymous", re.I)
# the grammar's order: (key, separator) in the sequence they may appear
_ORDER = (("UIDVALIDITY", ""), ("UID", "/"), ("SECTION", "/"), ("PARTIAL", "/"),
          ("EXPIRE", ""), ("URLAUTH", ""))


class UrlError(ValueError):
    """Not an IMAP URL of one message or part this server can resolve."""


@dataclass(frozen=True, slots=True)
class ImapUrl:
    mailbox: str
    uid: int
    uidvalidity: int | None = None
    section: c.Section | None = None
    section_text: str | None = None  # as given (decoded), for the echo in responses
    partial: tuple[int, int | None] | None = None  # (offset, length or None: to the end)
    user: str | None = None  # None: the absolute-path form (the current user)
    host: str | None = None
    expire: datetime | None = None
    access: str | None = None  # "user+NAME", "submit+NAME", "authuser", "anonymous"
    mechanism: str | None = None  # upper-cased
    token: str | None = None  # lower-case hex
    rump: str = ""  # the URL up to and including the access identifier

    @property
    def absolute(self) -> bool:
        return self.host is not None

    def access_user(self) -> str | None:
        """The user of ``user+``/``submit+`` access, decoded."""
        if self.access and "+" in self.access:
            return self.access.split("+", 1)[1]
        return None


def _decode(text: str, what: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise UrlError(f"{what} is not UTF-8") from None


def parse(url: str) -> ImapUrl:
    """Parse one URL; raises ``UrlError`` with the reason."""
    if not url or len(url) > MAX_URL or not url.isascii() or any(ch <= " " or ch == "\x7f" for ch in url):
        raise UrlError("not a URL")
    user: str | None = None
    host: str | None = None
    if url[:7].lower() == "imap://":
        slash = url.find("/", 7)
        if slash < 0:
            raise UrlError("the URL names no message")
        server, path = url[7:slash], url[slash + 1:]
        userinfo, at, hostport = server.rpartition("@")
        host, _colon, port = hostport.partition(":")
        if not _HOST_RE.fullmatch(host) or (port and not _NUM_RE.fullmatch(port)):
            raise UrlError("bad server")
        if at:
            enc_user = re.split(r";AUTH=", userinfo, maxsplit=1, flags=re.I)[0]
            if not enc_user or not _ACHAR_RE.fullmatch(enc_user):
                raise UrlError("bad user")
            user = _decode(enc_user, "user")
        host = _decode(host, "host")
    elif url.startswith("/") and not url.startswith("//"):
        path = url[1:]
    else:
        raise UrlError("only imap:// and absolute-path URLs are supported")
    pieces = _PARAM_RE.split(path)
    enc_mailbox = pieces[0]
    if not enc_mailbox or not _BCHAR_RE.fullmatch(enc_mailbox):
        raise UrlError("bad mailbox")
    mailbox = _decode(enc_mailbox, "mailbox")
    fields: dict[str, str] = {}
    at = 0
    rump_end: int | None = None
    offset = len(enc_mailbox)
    for i in range(1, len(pieces), 3):
        sep, key, value = pieces[i], pieces[i + 1].upper(), pieces[i + 2]
        for j in range(at, len(_ORDER) + 1):
            if j == len(_ORDER):
                raise UrlError(f"unexpected ;{key}=")
            if _ORDER[j][0] == key:
                break
        if _ORDER[j][1] != sep:
            raise UrlError(f"bad separator before ;{key}=")
        at = j + 1
        start = offset + len(sep) + len(key) + 2
        offset = start + len(value)
        if key == "URLAUTH":
            access, colon, verifier = value.partition(":")
            rump_end = start + len(access)
            fields["URLAUTH"] = access
            if colon:
                mech, colon2, token = verifier.partition(":")
                if not colon2 or not _MECH_RE.fullmatch(mech) or not _TOKEN_RE.fullmatch(token):
                    raise UrlError("bad URLAUTH verifier")
                fields["MECH"], fields["TOKEN"] = mech.upper(), token.lower()
        else:
            fields[key] = value
    if "UID" not in fields:
        raise UrlError("the URL names no message")
    uidvalidity = _number(fields.get("UIDVALIDITY"), _NZ_RE, "UIDVALIDITY")
    uid = _number(fields["UID"], _NZ_RE, "UID")
    assert uid is not None
    section = section_text = None
    if "SECTION" in fields:
        if not _BCHAR_RE.fullmatch(fields["SECTION"]):
            raise UrlError("bad section")
        section_text = _decode(fields["SECTION"], "section")
        try:
            section = parse_section(section_text.encode("utf-8"))
        except ValueError as exc:
            raise UrlError(f"bad section: {exc}") from None
    partial: tuple[int, int | None] | None = None
    if "PARTIAL" in fields:
        off, dot, length = fields["PARTIAL"].partition(".")
        o = _number(off, _NUM_RE, "PARTIAL")
        n = _number(length, _NZ_RE, "PARTIAL") if dot else None
        assert o is not None
        partial = (o, n)
    expire = None
    if "EXPIRE" in fields:
        expire = _datetime(_decode(fields["EXPIRE"], "expire"))
        if "URLAUTH" not in fields:
            raise UrlError(";EXPIRE= needs ;URLAUTH=")
    access = None
    if "URLAUTH" in fields:
        m = _ACCESS_RE.fullmatch(fields["URLAUTH"])
        if m is None or (m.group(2) is not None and not _ACHAR_RE.fullmatch(m.group(2))):
            raise UrlError("bad access identifier")
        access = (m.group(1).lower() + _decode(m.group(2), "access user")) if m.group(1) \
            else fields["URLAUTH"].lower()
    path_start = len(url) - len(path)
    rump = url[: path_start + rump_end] if rump_end is not None else ""
    return ImapUrl(mailbox, uid, uidvalidity, section, section_text, partial, user, host,
                   expire, access, fields.get("MECH"), fields.get("TOKEN"), rump)


def _number(text: str | None, pattern: re.Pattern[str], what: str) -> int | None:
    if text is None:
        return None
    if not pattern.fullmatch(text) or int(text) > 0xFFFFFFFF:
        raise UrlError(f"bad {what}")
    return int(text)


def _datetime(text: str) -> datetime:
    """RFC 3339 date-time, with a zone (RFC 4467 §3: ``expire = ";EXPIRE=" date-time``)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", text):
        raise UrlError("bad ;EXPIRE= date-time")
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise UrlError("bad ;EXPIRE= date-time") from None
