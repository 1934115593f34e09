"""Read messages out of mbox files and Maildir directories for import.

This module only *reads*: it turns an mbox file or a Maildir tree into a
stream of :class:`SourceMessage` records.  Writing them into the store is
the caller's job.

mbox
    Messages are separated by ``From `` lines (the "From_" line).  A line
    starting with ``From `` is a separator when it is the first line of the
    file or follows an empty line; one that does not follow an empty line
    (sloppy writers omit it) is still accepted as a separator when the rest
    of the line carries a recognisable date.  The empty line in front of a
    separator, and one empty line at the end of the file, belong to the mbox
    framing and are removed from the message.

    Body lines are unescaped the mboxrd way: a line of one or more ``>``
    followed by ``From `` loses one ``>`` (``>From `` -> ``From ``,
    ``>>From `` -> ``>From ``).  mboxo files are read the same way.  That is
    ambiguous: mboxo escapes only ``From `` and leaves a genuine ``>From ``
    alone, so a body line that really was ``>From `` in an mboxo file comes
    back as ``From ``.  Nothing in the file tells the two formats apart, and
    mboxrd is the one that round-trips, so it wins.

    The internal date is the date in the From_ line (asctime layout, e.g.
    ``Mon Jan  1 00:00:00 2024``; a weekday, seconds, a time zone before or
    after the year, and day-before-month layouts are tolerated; no zone
    means UTC).  When it cannot be read the ``Date:`` header is used, then
    the file's modification time.

    Flags come from ``Status:`` (``R`` -> ``\\Seen``; ``O`` only means "not
    recent" and sets nothing), ``X-Status:`` (``A`` -> ``\\Answered``,
    ``F`` -> ``\\Flagged``, ``D`` -> ``\\Deleted``, ``T`` -> ``\\Draft``) and
    ``X-Keywords:`` (keywords, spelling kept).  These fields and ``X-UID``,
    ``X-IMAPbase``, ``X-IMAP`` and ``Content-Length`` are the mbox's own
    bookkeeping (the fields Dovecot's mbox driver hides): they are removed from
    the top-level header, so the stored message is byte-exact as it was before
    it went into the mbox.

Maildir
    The top folder is INBOX (mailbox ``()``); Maildir++ subfolders
    (``.Sent``, ``.Archive.2024``) become mailbox paths (``("Sent",)``,
    ``("Archive", "2024")``) with each segment decoded from IMAP modified
    UTF-7.  Files in ``cur/`` and ``new/`` are read (``tmp/`` and dot-files
    are skipped); flags come from the ``:2,`` info suffix (``S`` ``F`` ``R``
    ``D`` ``T`` ``P`` -> ``\\Seen`` ``\\Flagged`` ``\\Answered`` ``\\Draft``
    ``\\Deleted`` ``$Forwarded``; lowercase keyword letters are ignored), and
    the internal date is the leading timestamp of the file name, else the
    file's modification time.  Folders come INBOX first then by name;
    messages in a folder by (internal date, file name).

Line endings
    IMAP needs CRLF, so every bare LF is turned into CRLF here, once, for
    both formats.  Apart from that (and the From_ line and the unescaping
    in mbox) the message bytes are kept exactly as they were.

De-duplication (:func:`dedup_key`)
    A re-import must not duplicate messages.  The key of a message with a
    ``Message-ID`` header is ``b"mid:" + id + b"\\n" + internal date + b"\\n"
    + size`` where *id* is the first ``<...>`` token of the header with
    whitespace removed and the domain part lower-cased, the internal date is
    decimal epoch seconds and the size is ``len(raw)`` (after the CRLF
    conversion) in decimal.  Without a usable ``Message-ID`` the key is
    ``b"sha256:" + sha256(raw)`` (32 raw digest bytes).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import email.utils
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Literal

__all__ = [
    "ImportSourceError",
    "SourceMessage",
    "detect",
    "iter_mbox",
    "iter_maildir",
    "iter_source",
    "dedup_key",
    "decode_modified_utf7",
]

log = logging.getLogger(__name__)


class ImportSourceError(Exception):
    """The import source is missing, unreadable or of no known format."""


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message read from an import source."""

    #: Mailbox path segments; ``()`` means the import target (INBOX).
    mailbox: tuple[str, ...]
    #: The message, CRLF line endings.
    raw: bytes = field(repr=False)
    #: IMAP flags such as ``\\Seen``.
    flags: frozenset[str]
    #: Internal date, UTC epoch seconds.
    internal_date: int
    #: Where the message came from (file, and byte offset for mbox).
    origin: str

    @property
    def size(self) -> int:
        return len(self.raw)


# ---------------------------------------------------------------------------
# detection

_MBOX_MAGIC = b"From "


def detect(path: str | os.PathLike[str]) -> Literal["mbox", "maildir"]:
    """Say whether *path* is an mbox file or a Maildir directory.

    Raises :class:`ImportSourceError` with a one-line message otherwise.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise ImportSourceError(f"{p}: no such file or directory") from None
    except OSError as e:
        raise ImportSourceError(f"{p}: cannot access: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        if _is_maildir_dir(p) or _maildirpp_folders(p):
            return "maildir"
        raise ImportSourceError(
            f"{p}: directory is not a Maildir "
            "(no cur/, new/ or tmp/ and no Maildir++ subfolders)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ImportSourceError(f"{p}: not a regular file or directory")
    if st.st_size == 0:
        raise ImportSourceError(f"{p}: empty file, not an mbox")
    try:
        with open(p, "rb") as f:
            head = f.read(len(_MBOX_MAGIC))
    except OSError as e:
        raise ImportSourceError(f"{p}: cannot read: {e.strerror}") from None
    if head != _MBOX_MAGIC:
        raise ImportSourceError(
            f"{p}: not an mbox (does not start with a 'From ' line)"
        )
    return "mbox"


def iter_source(path: str | os.PathLike[str]) -> Iterator[SourceMessage]:
    """:func:`detect` the format of *path* and iterate over its messages."""
    if detect(path) == "mbox":
        return iter_mbox(path)
    return iter_maildir(path)


# ---------------------------------------------------------------------------
# shared helpers


def _to_crlf(data: bytes) -> bytes:
    """Turn every bare LF into CRLF; leave existing CRLF alone."""
    lf = data.count(b"\n")
    if lf == 0 or lf == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _header_block(raw: bytes) -> bytes:
    if raw.startswith(b"\r\n"):
        return b""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


_HEADER_RE_CACHE: dict[bytes, re.Pattern[bytes]] = {}
_UNFOLD = re.compile(rb"\r?\n")


def _header(block: bytes, name: bytes) -> bytes | None:
    """First value of header *name* in *block*, unfolded and stripped."""
    return _header_nl(b"\n" + block, name)


def _header_nl(nl_block: bytes, name: bytes) -> bytes | None:
    """:func:`_header` on ``b"\\n" + block``.

    The pattern is ``^name...`` in multi-line mode, spelt ``\\nname...``
    on a block with an LF in front: the same matches, but the literal LF
    lets the regex engine skip from line to line instead of trying every
    byte.
    """
    rx = _HEADER_RE_CACHE.get(name)
    if rx is None:
        rx = re.compile(
            rb"\n" + re.escape(name) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
            re.I,
        )
        _HEADER_RE_CACHE[name] = rx
    m = rx.search(nl_block)
    if m is None:
        return None
    return _UNFOLD.sub(b"", m.group(1)).strip()


def _date_header_epoch(block: bytes) -> int | None:
    value = _header(block, b"Date")
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    if parsed is None:
        return None
    try:
        return int(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


# ---------------------------------------------------------------------------
# mbox

_MONTHS = {
    m: i
    for i, m in enumerate(
        (b"jan", b"feb", b"mar", b"apr", b"may", b"jun",
         b"jul", b"aug", b"sep", b"oct", b"nov", b"dec"),
        1,
    )
}
_ZONES = {
    b"UT": 0, b"UTC": 0, b"GMT": 0, b"Z": 0, b"WET": 0, b"BST": 60,
    b"CET": 60, b"CEST": 120, b"MET": 60, b"MEST": 120, b"EET": 120,
    b"EEST": 180, b"MSK": 180,
    b"EST": -300, b"EDT": -240, b"CST": -360, b"CDT": -300,
    b"MST": -420, b"MDT": -360, b"PST": -480, b"PDT": -420,
    b"JST": 540, b"KST": 540, b"IST": 330, b"AEST": 600, b"AEDT": 660,
}
_MON = rb"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_TIME = rb"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?"
_ZONE = rb"(?:[+-]\d{4}|[a-z]{1,5})"
# asctime and relatives: [Wkd[,]] Mon DD HH:MM[:SS] [ZONE] YYYY [ZONE]
_ASCTIME_RE = re.compile(
    rb"(?:^|\s)(?:[a-z]{3}[a-z]*,?\s+)?" + _MON + rb"\s+(?P<d>\d{1,2}),?\s+"
    + _TIME + rb"(?:\s+(?P<z1>" + _ZONE + rb"))?\s+(?P<y>\d{4}|\d{2})"
    rb"(?:\s+(?P<z2>" + _ZONE + rb"))?(?:\s+remote from \S+)?\s*$",
    re.I,
)
# RFC 822 style: [Wkd,] DD Mon YYYY HH:MM[:SS] [ZONE]
_RFC822_RE = re.compile(
    rb"(?:^|\s)(?:[a-z]{3}[a-z]*,?\s+)?(?P<d>\d{1,2})\s+" + _MON
    + rb"\s+(?P<y>\d{4}|\d{2})\s+" + _TIME
    + rb"(?:\s+(?P<z1>" + _ZONE + rb"))?(?P<z2>)\s*$",
    re.I,
)


def _zone_minutes(z: bytes | None) -> int:
    if not z:
        return 0
    if z[:1] in b"+-":
        minutes = int(z[1:3]) * 60 + int(z[3:5])
        return -minutes if z[:1] == b"-" else minutes
    return _ZONES.get(z.upper(), 0)


def _from_line_epoch(line: bytes) -> int | None:
    """Epoch seconds of the date in a From_ line, or None if there is none."""
    rest = line[5:].rstrip(b"\r\n")
    m = _ASCTIME_RE.search(rest) or _RFC822_RE.search(rest)
    if m is None:
        return None
    year = int(m["y"])
    if year < 100:
        year += 1900 if year >= 70 else 2000
    try:
        secs = calendar.timegm((
            year, _MONTHS[m["mon"][:3].lower()], int(m["d"]),
            int(m["h"]), int(m["mi"]), int(m["s"] or 0), 0, 0, 0,
        ))
    except (ValueError, OverflowError):
        return None
    if not (1 <= int(m["d"]) <= 31 and int(m["h"]) < 24 and int(m["mi"]) < 60):
        return None
    return secs - 60 * _zone_minutes(m["z1"] or m["z2"])


_STATUS_FLAGS = {ord("R"): "\\Seen"}
_XSTATUS_FLAGS = {
    ord("A"): "\\Answered",
    ord("F"): "\\Flagged",
    ord("D"): "\\Deleted",
    ord("T"): "\\Draft",
}
#: The mbox's own bookkeeping fields, hidden as Dovecot's mbox driver hides them
#: (docs/operating.md): a field of one of these names (with its continuation lines)
#: anywhere in the top-level header is removed from the stored message.
MBOX_META_FIELDS = ("status", "x-status", "x-keywords", "x-uid", "x-imapbase", "x-imap", "content-length")
_META_FIELD = re.compile(
    rb"\n(" + b"|".join(re.escape(n.encode()) for n in MBOX_META_FIELDS) + rb")[ \t]*:"
    rb"([^\n]*(?:\n[ \t][^\n]*)*)",
    re.I,
)
_KEYWORD_SPLIT = re.compile(rb"[\s,]+")


def _mbox_meta(raw: bytes) -> tuple[bytes, frozenset[str]]:
    """Strip the mbox metadata fields from the header of ``raw`` (CRLF line ends);
    return the message as it was before it went into the mbox, and its flags.

    ``Status:`` R -> \\Seen (O only means "not recent"); ``X-Status:`` A F D T ->
    \\Answered \\Flagged \\Deleted \\Draft; ``X-Keywords:`` (space or comma separated)
    -> keywords.  ``X-UID``, ``X-IMAPbase``, ``X-IMAP`` and ``Content-Length`` go too.
    """
    if raw.startswith(b"\r\n"):
        return raw, frozenset()
    end = raw.find(b"\r\n\r\n")
    head_end = len(raw) if end < 0 else end + 2
    nl_block = b"\n" + raw[:head_end]
    flags: set[str] = set()
    cuts: list[tuple[int, int]] = []
    for m in _META_FIELD.finditer(nl_block):
        name = m.group(1).lower()
        value = m.group(2)
        # nl_block[k] is raw[k - 1]: the field is raw[m.start() : m.end()], its line
        # end included (the LF after the match is raw[m.end() - 1]).
        start, stop = m.start(), min(m.end(), head_end)
        cuts.append((start, stop))
        if name == b"status":
            flags.update(_STATUS_FLAGS[c] for c in value if c in _STATUS_FLAGS)
        elif name == b"x-status":
            flags.update(_XSTATUS_FLAGS[c] for c in value if c in _XSTATUS_FLAGS)
        elif name == b"x-keywords":
            for word in _KEYWORD_SPLIT.split(value.strip()):
                kw = word.decode("ascii", "replace")
                if kw and not kw.startswith("\\") and _is_atom(kw):
                    flags.add(kw)
    if not cuts:
        return raw, frozenset(flags)
    out: list[bytes] = []
    pos = 0
    for start, stop in cuts:
        out.append(raw[pos:start])
        pos = stop
    out.append(raw[pos:])
    return b"".join(out), frozenset(flags)


def _is_atom(word: str) -> bool:
    """An IMAP flag-keyword: printable ASCII without ( ) { ] % * " \\ (RFC 9051 §9)."""
    return all(0x21 <= ord(c) <= 0x7E and c not in '(){]%*"\\' for c in word) and len(word) <= 255


_ESCAPED_FROM = re.compile(rb">+From ")


def iter_mbox(path: str | os.PathLike[str]) -> Iterator[SourceMessage]:
    """Stream the messages of an mbox file (mboxrd, mboxo read alike).

    Only one message is held in memory at a time.  Every message gets the
    mailbox ``()``.  See the module docstring for the rules.
    """
    p = os.fspath(path)
    try:
        f = open(p, "rb", buffering=1 << 20)
    except FileNotFoundError:
        raise ImportSourceError(f"{p}: no such file or directory") from None
    except IsADirectoryError:
        raise ImportSourceError(f"{p}: is a directory, not an mbox") from None
    except OSError as e:
        raise ImportSourceError(f"{p}: cannot read: {e.strerror}") from None
    return _mbox_reader(f, p)


def _mbox_reader(f: BinaryIO, p: str) -> Iterator[SourceMessage]:
    with f:
        mtime = int(os.fstat(f.fileno()).st_mtime)
        yield from _mbox_messages(f, p, mtime)


#: Bytes read from an mbox file at a time (more when a message is larger).
_MBOX_CHUNK = 1 << 20
# One ">" off every line of the form ">+From " (mboxrd unescaping) but
# the first; the literal LF in front is much faster than "^" with re.M.
_UNESCAPE_FROM = re.compile(rb"\n>(?=>*From )")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def _mbox_messages(f: BinaryIO, p: str, mtime: int) -> Iterator[SourceMessage]:
    """Split the mbox read from *f* into messages (rules: module docstring).

    The file is read in large chunks; the buffer holds the current message
    and what has been read after it, so memory follows the largest message,
    not the file.  Messages are sliced out of the buffer whole: candidate
    separators are found with ``bytes.find``, a candidate is a separator
    when the bytes in front of it are an empty line or its line has a date,
    and the unescaping and CRLF conversion work on the whole message.

    ``s`` is the buffer index of the current From_ line; other positions
    are kept relative to it, because reading more drops the buffer in front
    of ``s`` (and sets ``s`` to 0).
    """
    buf = b""
    base = 0  # file offset of buf[0]
    eof = False
    s = 0
    read = f.read

    def more(keep: int) -> bool:
        """Drop ``buf[:keep]``, append the next chunk; False at end of file."""
        nonlocal buf, base, eof
        if eof:
            return False
        # Read at least as much as is kept, so a large message costs
        # linear time, not one copy of it per chunk.
        chunk = read(max(_MBOX_CHUNK, len(buf) - keep))
        if not chunk:
            eof = True
            return False
        buf = buf[keep:] + chunk
        base += keep
        return True

    def find(sub: bytes, rel: int) -> int:
        """Index of *sub* at or after ``s + rel``, relative to ``s``; -1: none."""
        nonlocal s
        while True:
            i = buf.find(sub, s + rel)
            if i >= 0:
                return i - s
            searched = len(buf) - s - len(sub) + 1
            if not more(s):
                return -1
            s = 0
            if searched > rel:
                rel = searched

    # Lines of nothing but CR and LF may come before the first From_ line.
    more(0)
    while True:
        blank_end = len(buf) - len(buf.lstrip(b"\r\n"))
        if blank_end < len(buf):
            break
        if not more(buf.rfind(b"\n") + 1):
            return  # empty, or nothing but empty lines
    s = buf.rfind(b"\n", 0, blank_end) + 1
    while len(buf) - s < 5 and more(s):
        s = 0
    if buf[s : s + 5] != b"From ":
        raise ImportSourceError(
            f"{p}: not an mbox (does not start with a 'From ' line)"
        )

    number = 0
    line_end = find(b"\n", 0)  # of the From_ line, relative to s
    if line_end < 0:
        from_date = _from_line_epoch(buf[s:])
    else:
        from_date = _from_line_epoch(buf[s : s + line_end + 1])
    while True:
        number += 1
        start = base + s
        if line_end < 0:
            # The From_ line is the last line and has no newline.
            raw = b""
            nxt = -1
            nxt_end = -1
            nxt_date = None
        else:
            body = line_end + 1  # relative start of the content
            # Every "From " of the content, in order, up to the separator:
            # at a line start it is a candidate separator; after a ">" it
            # may be an escaped line.  (One scan for both is faster than
            # searching b"\\nFrom " and b">From " separately.)
            k = body
            escaped = False
            while True:
                k = find(b"From ", k)
                if k < 0:
                    nxt = -1
                    break
                at = s + k
                c = buf[at - 1]  # k >= body: at - 1 is in the buffer
                if c != 10:
                    if c == 62:  # ">"
                        escaped = True
                    k += 5
                    continue
                nxt = k  # a line starting with "From "
                # Is the line in front an empty line?  (nxt >= body: the
                # bytes looked at are content or the From_ line's end.)
                c = buf[at - 2]
                blank = c == 10 or (c == 13 and buf[at - 3] == 10)
                nxt_end = find(b"\n", nxt)
                at = s + nxt
                if nxt_end < 0:
                    nxt_date = _from_line_epoch(buf[at:])
                else:
                    nxt_date = _from_line_epoch(buf[at : s + nxt_end + 1])
                if blank or nxt_date is not None:
                    break
                k = nxt + 5
            a = s + body
            e = len(buf) if nxt < 0 else s + nxt
            # An empty last line is framing (in front of the next From_
            # line, or at the end of the file).  buf[a - 1] is the From_
            # line's LF, so looking back from e > a stays in the buffer.
            if e > a and buf[e - 1] == 10:
                c = buf[e - 2]
                if c == 10:
                    e -= 1
                elif c == 13 and buf[e - 3] == 10:
                    e -= 2
            raw = buf[a:e]
            if escaped:
                raw = _UNESCAPE_FROM.sub(b"\n", raw)
                if raw[:1] == b">" and _ESCAPED_FROM.match(raw):
                    raw = raw[1:]
            if b"\r" not in raw:
                raw = raw.replace(b"\n", b"\r\n")
            elif raw.count(b"\n") != raw.count(b"\r\n"):
                raw = _BARE_LF.sub(b"\r\n", raw)
        raw, flags = _mbox_meta(raw)
        block = _header_block(raw)
        date = from_date
        if date is None:
            date = _date_header_epoch(block)
        if date is None:
            date = mtime
        yield SourceMessage(
            mailbox=(),
            raw=raw,
            flags=flags,
            internal_date=date,
            origin=f"{p}: message {number} at byte {start}",
        )
        if nxt < 0:
            return
        s += nxt
        line_end = nxt_end - nxt if nxt_end >= 0 else -1
        from_date = nxt_date


# ---------------------------------------------------------------------------
# Maildir

_MAILDIR_FLAGS = {
    "S": "\\Seen",
    "F": "\\Flagged",
    "R": "\\Answered",
    "D": "\\Draft",
    "T": "\\Deleted",
    "P": "$Forwarded",
}
_LEADING_TIME = re.compile(r"^(\d{1,12})[._]")


def _is_maildir_dir(p: str) -> bool:
    return any(os.path.isdir(os.path.join(p, sub)) for sub in ("cur", "new", "tmp"))


def _maildirpp_folders(p: str) -> list[str]:
    """Names (with the leading dot) of the Maildir++ subfolders of *p*."""
    try:
        names = os.listdir(p)
    except OSError:
        return []
    return sorted(
        n for n in names
        if n.startswith(".") and len(n) > 1
        and os.path.isdir(os.path.join(p, n)) and _is_maildir_dir(os.path.join(p, n))
    )


def decode_modified_utf7(name: str) -> str:
    """Decode an IMAP modified UTF-7 name (RFC 3501 5.1.3).

    Names that are not valid modified UTF-7 (including names that already
    contain non-ASCII characters) are returned unchanged.
    """
    if "&" not in name or not name.isascii():
        return name
    out: list[str] = []
    i = 0
    try:
        while i < len(name):
            c = name[i]
            if c != "&":
                out.append(c)
                i += 1
                continue
            j = name.index("-", i + 1)
            if j == i + 1:
                out.append("&")
            else:
                b64 = name[i + 1 : j].replace(",", "/")
                b64 += "=" * (-len(b64) % 4)
                out.append(
                    base64.b64decode(b64, validate=True).decode("utf-16-be")
                )
            i = j + 1
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return name
    return "".join(out)


def _maildir_info_flags(name: str) -> frozenset[str]:
    for sep in (":2,", "!2,", ";2,"):
        k = name.rfind(sep)
        if k >= 0:
            letters = name[k + 3 :]
            return frozenset(_MAILDIR_FLAGS[c] for c in letters if c in _MAILDIR_FLAGS)
    return frozenset()


def _folder_files(folder: str) -> list[tuple[int, str, str]]:
    """(internal date, file name, full path) of the messages in *folder*."""
    entries: list[tuple[int, str, str]] = []
    for sub in ("cur", "new"):
        d = os.path.join(folder, sub)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            full = os.path.join(d, name)
            m = _LEADING_TIME.match(name)
            if m is not None and int(m.group(1)) > 0:
                if not os.path.isfile(full):
                    continue
                date = int(m.group(1))
            else:
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                date = int(st.st_mtime)
            entries.append((date, name, full))
    entries.sort()
    return entries


def iter_maildir(path: str | os.PathLike[str]) -> Iterator[SourceMessage]:
    """Iterate over a Maildir and its Maildir++ subfolders.

    INBOX (the top folder, mailbox ``()``) comes first, then the subfolders
    by name.  See the module docstring for flags and dates.
    """
    p = os.fspath(path)
    if detect(p) != "maildir":
        raise ImportSourceError(f"{p}: not a Maildir")
    return _maildir_reader(p)


def _maildir_reader(p: str) -> Iterator[SourceMessage]:
    folders: list[tuple[tuple[str, ...], str]] = []
    if _is_maildir_dir(p):
        folders.append(((), p))
    for dotted in _maildirpp_folders(p):
        segments = dotted[1:].split(".")
        if not all(segments):
            log.warning("%s: skipping Maildir++ folder with an empty name part",
                        os.path.join(p, dotted))
            continue
        folders.append(
            (tuple(decode_modified_utf7(s) for s in segments), os.path.join(p, dotted))
        )
    for mailbox, folder in folders:
        for date, name, full in _folder_files(folder):
            try:
                with open(full, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                # Moved away (e.g. new/ -> cur/ by a running client).
                log.warning("%s: vanished while importing, skipped", full)
                continue
            yield SourceMessage(
                mailbox=mailbox,
                raw=_to_crlf(data),
                flags=_maildir_info_flags(name),
                internal_date=date,
                origin=full,
            )


# ---------------------------------------------------------------------------
# de-duplication

_MSGID_RE = re.compile(rb"<([^<>]*)>")


def _normalised_message_id(raw: bytes) -> bytes | None:
    value = _header(_header_block(raw), b"Message-ID")
    if value is None:
        return None
    m = _MSGID_RE.search(value)
    ident = m.group(1) if m is not None else value
    ident = re.sub(rb"\s+", b"", ident)
    if not ident:
        return None
    at = ident.rfind(b"@")
    if at >= 0:
        ident = ident[:at] + ident[at:].lower()
    return b"<" + ident + b">"


def dedup_key(msg: SourceMessage) -> bytes:
    """Re-import de-duplication key of *msg* (rule in the module docstring)."""
    mid = _normalised_message_id(msg.raw)
    if mid is None:
        return b"sha256:" + hashlib.sha256(msg.raw).digest()
    return b"mid:%s\n%d\n%d" % (mid, msg.internal_date, len(msg.raw))
