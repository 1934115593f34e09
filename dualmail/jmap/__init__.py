"""JMAP (RFC 8620 core, RFC 8621 mail) for dualmail.

The core framework lives here: errors, JSON pointer and PatchObject, request
parsing and dispatch, the generic standard methods, the Session object and the
Klein HTTP app. Data types (Mailbox, Email, ...) sit on top in ``types/``.

This package must not import the store (``dualmail.store``) or ``lmdb``; data
types receive their backend through the small protocols documented in
``standard.py`` and ``app.py``.
"""
