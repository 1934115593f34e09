"""Import existing mail (mbox files, Maildir trees) into dualmail."""

from dualmail.importer.sources import (
    ImportSourceError,
    SourceMessage,
    dedup_key,
    detect,
    iter_maildir,
    iter_mbox,
    iter_source,
)

__all__ = [
    "ImportSourceError",
    "SourceMessage",
    "dedup_key",
    "detect",
    "iter_maildir",
    "iter_mbox",
    "iter_source",
]
