"""Domain errors, raised low and mapped once at each protocol's edge.

No protocol words here: IMAP maps these to NO [CODE] (RFC 5530), JMAP to SetErrors and
method errors.  Imports nothing outside the standard library.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the mail model raises on purpose."""

    def __init__(self, message: str = "", **fields: object) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.fields = fields


class NotFoundError(DomainError):
    """The object (account, mailbox, email, blob) does not exist."""


class AlreadyExistsError(DomainError):
    """A mailbox of that name exists under that parent, or the account exists."""


class InvalidNameError(DomainError):
    """A mailbox name is empty, too long, or contains the separator."""


class HasChildrenError(DomainError):
    """Mailbox delete refused: it has child mailboxes."""


class HasEmailError(DomainError):
    """Mailbox delete refused: it holds emails and removal was not asked for."""


class CannotError(DomainError):
    """The operation can never succeed as asked (e.g. INBOX cannot be deleted)."""


class LimitError(DomainError):
    """A configured limit was exceeded (message size, mailbox count...)."""


class OverQuotaError(LimitError):
    """The account's storage or message-count quota would be exceeded (RFC 9208 OVERQUOTA,
    RFC 8620 overQuota)."""


class InvalidKeywordError(DomainError):
    """A keyword outside RFC 8621 §4.1.1's alphabet."""


class RoleError(DomainError):
    """A role is unknown or already used by another mailbox."""


class CycleError(DomainError):
    """A mailbox would become its own ancestor."""


class StoreFormatError(DomainError):
    """The store was written by a newer or unknown format version."""


class StoreLockedError(DomainError):
    """The store directory cannot be opened (permissions, lock)."""


class InvalidSourceError(DomainError):
    """An import path that is neither an mbox file nor a Maildir."""


class UnavailableError(Exception):
    """The store is temporarily unreachable (a shared database restarted, a connection was
    lost, a lock wait timed out): the operation was rolled back, trying again later may
    succeed.  IMAP answers ``NO [UNAVAILABLE]`` (RFC 5530), JMAP ``serverUnavailable``
    (RFC 8620 §3.6.2).  Deliberately not a ``DomainError``: it must abort the whole
    command or method call, never become a per-object refusal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
