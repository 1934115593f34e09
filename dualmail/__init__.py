"""dualmail: one process serving the same mailboxes over IMAP4 and JMAP from one LMDB store."""

__version__ = "0.1.0"
