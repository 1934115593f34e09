"""Sans-I/O IMAP4 wire layer: bytes -> commands, responses -> bytes.

Nothing in this package does I/O or imports twisted, lmdb or any other part of dualmail.
"""
