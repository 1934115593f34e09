"""Mail operations shared by IMAP, JMAP, LMTP and the CLI, on top of the store."""

from . import listing as _listing  # noqa: F401,E402  (registers the IMAP listing renderer with the store)
