"""The one table from domain errors to IMAP ``NO [CODE]`` answers (RFC 5530, RFC 9051 §7.1).

Handlers raise ``dualmail.model.errors`` exceptions (or ``ImapNo`` / ``ImapBad`` for
protocol-level refusals); the session maps them here, once.  Imports no twisted.
"""

from __future__ import annotations

from dualmail.imap.wire import responses as r
from dualmail.model import errors as e


class ImapNo(Exception):
    """Answer ``tag NO [code] text``."""

    def __init__(self, text: str, code: str | r.ResponseCode | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = r.code(code) if isinstance(code, str) else code


class ImapBad(Exception):
    """Answer ``tag BAD [code] text``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = r.code(code) if code else None


# Most specific first: the first matching class wins.
TABLE: tuple[tuple[type[e.DomainError], str, str | None], ...] = (
    (e.NotFoundError, "NONEXISTENT", None),
    (e.AlreadyExistsError, "ALREADYEXISTS", None),
    (e.InvalidNameError, "CANNOT", None),
    (e.HasChildrenError, "CANNOT", None),
    (e.HasEmailError, "CANNOT", None),
    (e.CycleError, "CANNOT", None),
    (e.RoleError, "USEATTR", None),
    (e.InvalidKeywordError, "CANNOT", None),
    (e.OverQuotaError, "OVERQUOTA", None),  # RFC 9208 §4.3.1
    (e.LimitError, "LIMIT", None),
    (e.CannotError, "CANNOT", None),
)


def domain_response(tag: str, exc: e.DomainError) -> r.Tagged:
    """``tag NO [CODE] message`` for a domain error; unknown ones become [SERVERBUG]."""
    for cls, code, text in TABLE:
        if isinstance(exc, cls):
            return r.Tagged(tag, "NO", text or exc.message, r.code(code))
    return r.Tagged(tag, "NO", exc.message, r.code("SERVERBUG"))


def no(tag: str, exc: ImapNo) -> r.Tagged:
    return r.Tagged(tag, "NO", exc.text, exc.code)


def bad(tag: str, exc: ImapBad) -> r.Tagged:
    return r.Tagged(tag, "BAD", exc.text, exc.code)
