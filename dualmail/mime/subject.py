"""RFC 5256 §2.1 base subject, for SORT SUBJECT, THREAD and JMAP threading.

One job: ``base_subject(subject)`` on an already RFC 2047-decoded subject.
The steps are numbered as in RFC 5256 §2.1; the ABNF is its §5:

    subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
    subj-blob    = "[" *BLOBCHAR "]" *WSP
    subj-leader  = (*subj-blob subj-refwd) / WSP
    subj-trailer = "(fwd)" / WSP
    subj-fwd-hdr = "[fwd:"   subj-fwd-trl = "]"

"re", "fw", "fwd" and "[fwd:" match ASCII case-insensitively.  BLOBCHAR is
read as any character but ``[`` and ``]`` (also non-ASCII, as after step 1
the text is UTF-8; Dovecot does the same).  The result is not case-folded.

Must not import: twisted, lmdb, or anything from dualmail outside
dualmail.mime.
"""

from __future__ import annotations

import re

__all__ = ["base_subject"]

_WS = re.compile(r"[ \t\r\n]+")
_BLOB = r"\[[^\[\]]*\] *"
_LEADER = re.compile(r"(?:(?:" + _BLOB + r")*(?:re|fwd?) *(?:" + _BLOB + r")?:| )", re.I | re.A)
_BLOB_RE = re.compile(_BLOB)


def base_subject(subject: str) -> str:
    """The RFC 5256 §2.1 base subject of a decoded subject string."""
    # (1) tabs and continuations to space, runs of spaces to one space
    s = _WS.sub(" ", subject)
    while True:
        # (2) remove trailing subj-trailer, repeatedly
        while True:
            if s.endswith(" "):
                s = s.rstrip(" ")
            elif s[-5:].lower() == "(fwd)":
                s = s[:-5]
            else:
                break
        # (3)-(5) remove subj-leader and leading subj-blob until no change
        while True:
            m = _LEADER.match(s)
            if m is not None and m.end():
                s = s[m.end() :]
                continue
            m = _BLOB_RE.match(s)
            if m is not None and s[m.end() :].strip(" "):
                s = s[m.end() :]
                continue
            break
        # (6) [fwd: ... ] wrapper: remove and repeat from step (2)
        if s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            continue
        # (7)
        return s
