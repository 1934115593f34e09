"""The JMAP data types of dualmail, one module each, thin over
``dualmail.jmap.standard``; ``store_methods(store, now)`` is the registry.

Implemented: Mailbox, Thread, Email (RFC 8621 §2-§4: the standard methods
plus Email/import and Email/parse), SearchSnippet (§5), Identity (§6),
VacationResponse (§8), Quota (RFC 9425, ``quota.py``), Blob/copy (RFC 8620 §6.3), EmailSubmission (§7,
``email_submission.py``).

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...store.store import Store
from ..dispatch import Method
from ..standard import standard_methods
from .blob import blob_methods
from .email import SORT_OPTIONS, EmailType
from .email_import import email_methods
from .email_submission import submission_methods
from .identity import SUBMISSION, IdentityType
from .mailbox import MAIL, MailboxType
from .quota import QUOTA, QuotaType
from .searchsnippet import snippet_methods
from .thread import ThreadType
from .vacation import VACATION, VacationResponseType

__all__ = ["MAIL", "QUOTA", "SORT_OPTIONS", "SUBMISSION", "VACATION", "store_methods"]


def store_methods(store: Store, now: Callable[[], float], submission: Any = None, *,
                  sanitize_html: bool = True) -> dict[str, Method]:
    """Every store-backed method: ``{"Mailbox/get": Method(...), ...}``.
    ``submission``: the ``dualmail.submission.config.SubmissionConfig``
    (None: no smarthost, EmailSubmission/set answers forbiddenToSend).
    ``sanitize_html``: clean text/html bodyValues (RFC 8621 §9.1; docs/security.md)."""
    methods: dict[str, Method] = {}
    for datatype in (MailboxType(store), ThreadType(store), EmailType(store, now, sanitize_html=sanitize_html),
                     IdentityType(store), VacationResponseType(store), QuotaType(store)):
        methods.update(standard_methods(datatype))
    methods.update(email_methods(store, now, sanitize_html=sanitize_html))
    methods.update(snippet_methods(store))
    methods.update(blob_methods(store, now))
    methods.update(submission_methods(store, now, submission))
    return methods
