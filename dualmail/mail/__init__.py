"""Mail operations shared by IMAP, JMAP, LMTP and the CLI, on top of the store."""
