"""IMAP4 front end of dualmail: wire format, session state, command handlers."""
