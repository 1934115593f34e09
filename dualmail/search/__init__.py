"""One search engine for IMAP SEARCH/SORT/THREAD and JMAP Email/query (docs/search.md).

``query``: the condition tree and sort keys (and the JMAP filter/sort compilers);
``imap_keys``: IMAP search keys -> conditions; ``engine``: search, sort, collapse;
``thread``: RFC 5256 THREAD; ``fts``: the full-text index and its indexer;
``collate``: folding and tokens.  Imports no twisted.
"""

from .engine import JMAP, AccountScope, MailboxScope, collapse_threads, query, query_page, search, sort
from .fts import index_all, index_pending
from .query import Context, SortKey, from_jmap_filter, from_jmap_sort, from_imap_sort
from .thread import format_threads, thread

__all__ = [
    "JMAP", "AccountScope", "Context", "MailboxScope", "SortKey", "collapse_threads",
    "format_threads", "from_imap_sort", "from_jmap_filter", "from_jmap_sort", "index_all",
    "index_pending", "query", "query_page", "search", "sort", "thread",
]
