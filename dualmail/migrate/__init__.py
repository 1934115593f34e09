"""``dualmail migrate`` (from a live IMAP server, keeping UIDs) and ``dualmail export``.

- ``names``: sans-I/O: source mailbox names -> dualmail paths, SPECIAL-USE and
  well-known names -> roles, the migration URL.
- ``source``: the source server over IMAP (imapclient), reads only (``BODY.PEEK``).
- ``sync``: one account: mailboxes, then each mailbox's expunges, flag changes and new
  messages, written through the store's migration operations (``store/txn.py``).
- ``mapping``: many accounts from a CSV file, several at a time.
- ``export``: an account to a Maildir++ tree with ``dovecot-uidlist`` files.

The rules (UIDs, modseqs, the safety rule when dualmail's side changed) are written in
docs/operating.md, "Migrating from another IMAP server".  Imports no twisted.
"""
