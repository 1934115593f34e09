"""The ``twistd dualmail`` plugin: a lazy ServiceMaker pointing at ``dualmail.tap``."""

from twisted.application.service import ServiceMaker

dualmail = ServiceMaker(
    "dualmail",
    "dualmail.tap",
    "IMAP4 and JMAP over one shared LMDB mail store",
    "dualmail",
)
